//! `hardstack init`: profile in, complete stack directory out. Everything is computed first
//! (a dry run), conflicts are checked, and only then are files written.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use serde_json::json;

use crate::bundle;
use crate::cli::{GlobalArgs, InitArgs};
use crate::output::Output;
use crate::profile::ResolvedProfile;
use crate::render;
use crate::secrets::store::{SecretStore as _, Store};
use crate::settings;
use crate::stackdir::{self, Change, StackDir};

/// Runs `init`.
pub fn run(global: &GlobalArgs, args: &InitArgs) -> anyhow::Result<ExitCode> {
    let output = Output::new(global);
    let resolved = ensure(global, args.templates.as_deref(), args.force, &output)?;
    if args.systemd {
        write_systemd_units(global, args, &resolved, &output)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the systemd units, pointing at this binary and the stack directory by absolute path.
fn write_systemd_units(
    global: &GlobalArgs,
    args: &InitArgs,
    resolved: &ResolvedProfile,
    output: &Output,
) -> anyhow::Result<()> {
    let dir = StackDir::new(&global.dir);
    let binary = std::env::current_exe().context("finding the hardstack binary")?;
    let root = std::path::absolute(&dir.root).with_context(|| format!("resolving {}", dir.root.display()))?;
    let tera = render::load_templates(args.templates.as_deref())?;
    let files: Vec<stackdir::PlannedFile> =
        render::render_systemd(&tera, &resolved.profile, &binary.display().to_string(), &root.display().to_string())?
            .into_iter()
            .map(|f| stackdir::PlannedFile { path: f.path, content: f.content.into_bytes(), mode: f.mode })
            .collect();
    let mut manifest = dir.manifest()?;
    let stackdir::Diff { changes, conflicts } = stackdir::diff(&dir, &manifest, &files)?;
    if !conflicts.is_empty() && !args.force {
        bail!("refusing to overwrite {}: not written by hardstack; rerun with --force", conflicts[0].path);
    }
    stackdir::apply(&dir, &mut manifest, &files, &changes)?;
    for (path, change) in changes.iter().filter(|(_, c)| *c != Change::Unchanged) {
        output.line(format!("{}: {path}", format!("{change:?}").to_lowercase()));
    }
    Ok(())
}

/// Brings the stack directory in line with the profile (what `init` does, and `up` first),
/// and returns the profile.
pub fn ensure(
    global: &GlobalArgs,
    templates: Option<&Path>,
    force: bool,
    output: &Output,
) -> anyhow::Result<ResolvedProfile> {
    let resolved = settings::resolve_profile(global)?;
    let dir = StackDir::new(&global.dir);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(write_bundle(&resolved.profile, &dir, templates, force, output))?;
    Ok(resolved)
}

/// Computes the bundle from the profile and the store, refuses to overwrite foreign files
/// unless `force`, creates new secrets in the store, then writes the files.
pub async fn write_bundle(
    profile: &crate::profile::Profile,
    dir: &StackDir,
    templates: Option<&Path>,
    force: bool,
    output: &Output,
) -> anyhow::Result<()> {
    let dir = dir.clone();
    let tera = render::load_templates(templates)?;
    let store = Store::open(profile, &dir).await?;
    let existing = bundle::existing_secrets(&store, profile).await?;
    let bundle::Plan { files: plan, new_secrets } =
        bundle::plan(&dir, profile, &tera, &existing, &mut rand::rngs::OsRng)?;

    let mut manifest = dir.manifest()?;
    let stackdir::Diff { changes, conflicts } = stackdir::diff(&dir, &manifest, &plan)?;
    if !conflicts.is_empty() && !force {
        let list: Vec<String> = conflicts
            .iter()
            .map(|c| {
                format!(
                    "{} ({})",
                    dir.path(&c.path).display(),
                    if c.edited { "edited since hardstack wrote it" } else { "not written by hardstack" }
                )
            })
            .collect();
        bail!(
            "refusing to overwrite {} file(s):\n  {}\nmove them away, or rerun with --force to replace them",
            list.len(),
            list.join("\n  ")
        );
    }
    // Secrets first, so rendered files always match what the store holds.
    for (name, version) in &new_secrets {
        store.create(name, version).await?;
        output.detail(format!("  created  secret {name} in the {:?} store", profile.secrets.store).to_lowercase());
    }
    stackdir::apply(&dir, &mut manifest, &plan, &changes)?;

    let written: Vec<&(String, Change)> = changes.iter().filter(|(_, c)| *c != Change::Unchanged).collect();
    let written_count = written.len() + new_secrets.len();
    output.json(&json!({
        "dir": dir.root,
        "profile": profile.name,
        "changed": written.iter().map(|(p, c)| json!({"path": p, "change": c})).collect::<Vec<_>>(),
    }));
    if written_count == 0 {
        output.line(format!("{} is up to date (profile {}): nothing written", dir.root.display(), profile.name));
    } else {
        let created = written.iter().filter(|(_, c)| *c == Change::Created).count();
        output.line(format!(
            "{}: {} file(s) created, {} updated (profile {})",
            dir.root.display(),
            created,
            written.len() - created,
            profile.name
        ));
        for (path, change) in &written {
            output.detail(format!("  {:<8} {path}", format!("{change:?}").to_lowercase()));
        }
    }
    Ok(())
}
