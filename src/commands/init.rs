//! `hardstack init`: profile in, complete stack directory out. Everything is computed first
//! (a dry run), conflicts are checked, and only then are files written.

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use serde_json::json;

use crate::bundle;
use crate::cli::{GlobalArgs, InitArgs};
use crate::output::Output;
use crate::profile::{ResolvedProfile, StoreKind};
use crate::render;
use crate::settings;
use crate::stackdir::{self, Change, StackDir};

/// Runs `init`.
pub fn run(global: &GlobalArgs, args: &InitArgs) -> anyhow::Result<ExitCode> {
    ensure(global, args.templates.as_deref(), args.force, &Output::new(global))?;
    Ok(ExitCode::SUCCESS)
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
    let profile = &resolved.profile;
    if profile.secrets.store == StoreKind::Aws {
        bail!(
            "{}: key secrets.store: the aws store is not implemented yet; use --set secrets.store=file",
            resolved.origin
        );
    }
    let dir = StackDir::new(&global.dir);
    let tera = render::load_templates(templates)?;
    let plan = bundle::plan(&dir, profile, &tera, &mut rand::rngs::OsRng)?;

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
    stackdir::apply(&dir, &mut manifest, &plan, &changes)?;

    let written: Vec<&(String, Change)> = changes.iter().filter(|(_, c)| *c != Change::Unchanged).collect();
    output.json(&json!({
        "dir": dir.root,
        "profile": profile.name,
        "changed": written.iter().map(|(p, c)| json!({"path": p, "change": c})).collect::<Vec<_>>(),
    }));
    if written.is_empty() {
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
    Ok(resolved)
}
