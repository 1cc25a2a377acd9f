//! `hardstack init`: profile in, complete stack directory out. Everything is computed first
//! (a dry run), conflicts are checked, and only then are files written (`bundle::write`).

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use serde_json::json;

use crate::bundle;
use crate::cli::{GlobalArgs, InitArgs};
use crate::output::Output;
use crate::profile::ResolvedProfile;
use crate::render;
use crate::settings;
use crate::stackdir::{self, Change, StackDir};

/// Runs `init`.
pub async fn run(global: &GlobalArgs, args: &InitArgs) -> anyhow::Result<ExitCode> {
    let output = super::output(global);
    // Bad input is refused before the directory is made (for its lock).
    settings::resolve_profile(global)?;
    let _lock = super::lock(global, "init").await?;
    crate::identity::Identity::ensure(&StackDir::new(&global.dir))?;
    let given = bundle::Given { templates: args.templates.as_deref(), accept: args.accept.as_deref() };
    let (resolved, mut changed) = ensure_changes(global, given, args.force, false, &output, &|_| {}).await?;
    if args.systemd {
        changed.extend(write_systemd_units(global, args, &resolved, &output)?);
    }
    if args.target == crate::cli::Target::Kubernetes {
        changed.extend(write_kubernetes(global, args, &resolved, &output).await?);
    }
    output.json(&json!({
        "schema": "hardstack.init/v1",
        "dir": global.dir,
        "profile": resolved.profile.name,
        "changed": changed.iter().map(|(p, c)| json!({"path": p, "change": c})).collect::<Vec<_>>(),
    }));
    Ok(ExitCode::SUCCESS)
}

/// Writes the systemd units, pointing at this binary and the stack directory by absolute path.
fn write_systemd_units(
    global: &GlobalArgs,
    args: &InitArgs,
    resolved: &ResolvedProfile,
    output: &Output,
) -> anyhow::Result<Vec<(String, Change)>> {
    let dir = StackDir::new(&global.dir);
    let binary = std::env::current_exe().context("finding the hardstack binary")?;
    let root = std::path::absolute(&dir.root).with_context(|| format!("resolving {}", dir.root.display()))?;
    let tera = crate::inputs::resolve(&dir, None, None)?.tera;
    let files: Vec<stackdir::PlannedFile> =
        render::render_systemd(&tera, &resolved.profile, &binary.display().to_string(), &root.display().to_string())?
            .into_iter()
            .map(|f| stackdir::PlannedFile { path: f.path, content: f.content.into_bytes(), mode: f.mode })
            .collect();
    apply_extra_files(&dir, args, &files, output)
}

/// Writes the Kubernetes target's kustomize directory from the stack directory just written.
async fn write_kubernetes(
    global: &GlobalArgs,
    args: &InitArgs,
    resolved: &ResolvedProfile,
    output: &Output,
) -> anyhow::Result<Vec<(String, Change)>> {
    let dir = StackDir::new(&global.dir);
    let read = |path: &str| -> anyhow::Result<Vec<u8>> {
        dir.read(path)?.with_context(|| format!("{} has no {path}: run init again", dir.root.display()))
    };
    // With the aws store, the manifests fetch its values through External Secrets Operator.
    let aws = match resolved.profile.secrets.store {
        crate::profile::StoreKind::Aws => {
            let store = crate::secrets::store::Store::open(&resolved.profile, &dir).await?;
            Some(crate::kubernetes::substitutions(&resolved.profile, &store.versions(&resolved.profile).await?))
        }
        crate::profile::StoreKind::File => None,
    };
    let files: Vec<stackdir::PlannedFile> = crate::kubernetes::render(&resolved.profile, &read, aws.as_deref())?
        .into_iter()
        .map(|f| stackdir::PlannedFile::of(crate::layout::StackFile::Kubernetes(f.file), f.content.into_bytes()))
        .collect();
    apply_extra_files(&dir, args, &files, output)
}

/// Writes files beyond the bundle (systemd units, Kubernetes manifests) through the manifest:
/// a foreign or edited file is refused without --force; says and returns what changed.
fn apply_extra_files(
    dir: &StackDir,
    args: &InitArgs,
    files: &[stackdir::PlannedFile],
    output: &Output,
) -> anyhow::Result<Vec<(String, Change)>> {
    let mut manifest = dir.manifest()?;
    let stackdir::Diff { changes, conflicts } = stackdir::diff(dir, &manifest, files)?;
    if !conflicts.is_empty() && !args.force {
        bail!("refusing to overwrite {}: not written by hardstack; rerun with --force", conflicts[0].path);
    }
    stackdir::apply(dir, &mut manifest, files, &changes)?;
    let changed: Vec<(String, Change)> = changes.into_iter().filter(|(_, c)| *c != Change::Unchanged).collect();
    for (path, change) in &changed {
        output.line(format!("{}: {path}", format!("{change:?}").to_lowercase()));
    }
    Ok(changed)
}

/// Brings the stack directory in line with the profile (what `init` does, and `up` first),
/// says what it wrote, and returns the profile.
///
/// With `audited` (`up`, `restore`: they deliver what it writes), a file that fails an audit
/// rule the user did not accept stops it before anything is written; otherwise (`init`) the
/// failing rules are said. `planned` is told the files as they are about to be written
/// (`bundle::write_telling`).
pub async fn ensure(
    global: &GlobalArgs,
    given: bundle::Given<'_>,
    force: bool,
    audited: bool,
    output: &Output,
    planned: bundle::Planned<'_>,
) -> anyhow::Result<ResolvedProfile> {
    Ok(ensure_changes(global, given, force, audited, output, planned).await?.0)
}

/// `ensure`, and the files it changed.
async fn ensure_changes(
    global: &GlobalArgs,
    given: bundle::Given<'_>,
    force: bool,
    audited: bool,
    output: &Output,
    planned: bundle::Planned<'_>,
) -> anyhow::Result<(ResolvedProfile, Vec<(String, Change)>)> {
    let resolved = settings::resolve_profile(global)?;
    let profile = &resolved.profile;
    let dir = StackDir::new(&global.dir);
    let written = bundle::write_telling(profile, &dir, given, force, audited, planned).await?;
    for check in &written.failing {
        output.line(format!("warning: audit rule {} fails: {}", check.id, check.evidence));
    }
    for name in &written.created_secrets {
        output.detail(format!("  created  secret {name} in the {:?} store", profile.secrets.store).to_lowercase());
    }
    let changed: Vec<&(String, Change)> = written.changed().collect();
    if written.is_empty() {
        output.line(format!("{} is up to date (profile {}): nothing written", dir.root.display(), profile.name));
    } else {
        let created = changed.iter().filter(|(_, c)| *c == Change::Created).count();
        output.line(format!(
            "{}: {} file(s) created, {} updated (profile {})",
            dir.root.display(),
            created,
            changed.len() - created,
            profile.name
        ));
        for (path, change) in &changed {
            output.detail(format!("  {:<8} {path}", format!("{change:?}").to_lowercase()));
        }
    }
    let changed = changed.into_iter().cloned().collect();
    Ok((resolved, changed))
}
