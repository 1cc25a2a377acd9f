//! `hardstack restore SET [--to-time T]`: check the set against its manifest before anything is
//! touched, refuse a stack that holds data unless `--force`, write the stack directory if it is
//! new, fill the data volumes (`backup::restore::fill`: the stack's current credentials, never
//! the backed-up ones), then `up` (which verifies) and Qdrant's snapshots by upload.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::json;

use crate::backup::{self, Backups};
use crate::cli::{GlobalArgs, RestoreArgs, UpArgs};
use crate::commands::init;
use crate::output::{Format, Output};
use crate::profile::{Profile, Service};
use crate::runtime::Engine;
use crate::settings;
use crate::stackdir::StackDir;

/// Runs `restore`.
pub async fn run(global: &GlobalArgs, args: &RestoreArgs) -> anyhow::Result<ExitCode> {
    let output = super::output(global);
    let started = std::time::Instant::now();
    let profile = settings::resolve_profile(global)?.profile;
    let dir = StackDir::new(&global.dir);
    let backups = Backups::of(&profile, &dir);
    let set = match args.set.as_str() {
        "latest" => {
            backups.latest()?.with_context(|| format!("no complete backup set in {}", backups.root.display()))?
        }
        set => backups.find(set)?,
    };
    // Nothing is touched before the set has proved whole.
    let (manifest, left_out) = backup::check(&set.path)?.only_run_by(&profile);
    for service in left_out {
        output.line(format!("not restoring {service}: the profile does not run it"));
    }
    let to_time = args.to_time.as_deref().map(backup::parse_time).transpose()?;
    backup::restore::preflight(&profile, &manifest, to_time)?;
    let _lock = super::lock(global, "restore").await?;
    let engine = super::engine_for(&dir, &profile, true).await?;
    let services: Vec<Service> = manifest.services.iter().map(|s| s.service).collect();
    let occupied = backup::restore::occupied(&engine, &profile, &services).await?;
    if !occupied.is_empty() {
        anyhow::ensure!(
            args.force,
            "stack {} holds data ({}): restore into a stack with no data (`hardstack down --volumes` first, or a new --dir), or pass --force to replace it",
            profile.stack.name,
            occupied.join(", ")
        );
        remove_stack(&engine, &profile).await?;
    }
    // The set is filled into node 0, the primary again.
    crate::topology::forget(&dir)?;
    let quiet = Output { format: Format::Human, quiet: true, ..output };
    let profile = init::ensure(global, crate::bundle::Given::default(), false, true, &quiet, &|_| {}).await?.profile;
    let archive = set.path.parent().unwrap_or(Path::new(".")).join(crate::layout::backups::ARCHIVE);
    let up = UpArgs {
        templates: None,
        accept: None,
        force: false,
        timeout: args.timeout,
        no_verify: false,
        dry_run: false,
        prune: false,
    };
    let source = backup::restore::Source { set: &set.path, manifest: &manifest, to_time, archive: &archive };
    let brought = restore_into(&output, &engine, &profile, &dir, &source, &up).await?;
    output.json(&json!({
        "schema": "hardstack.restore/v1",
        "stack": profile.stack.name,
        "set": manifest.id,
        "to_time": to_time.map(backup::rfc3339),
        "seconds": started.elapsed().as_secs_f64(),
        "up": brought.document,
    }));
    if brought.failure.is_some() {
        return brought.into_result();
    }
    output.line(format!(
        "restored set {} into stack {}{} ({:.1} s)",
        manifest.id,
        profile.stack.name,
        to_time.map(|t| format!(" at {}", backup::rfc3339(t))).unwrap_or_default(),
        started.elapsed().as_secs_f64()
    ));
    Ok(ExitCode::SUCCESS)
}

/// Removes a stack's containers, network and volumes (by label), as `down --volumes` does.
pub async fn remove_stack(engine: &Engine, profile: &Profile) -> anyhow::Result<()> {
    engine.remove_stack(&crate::containers::stack_names(profile), true).await.map(|_| ())
}

/// Fills a stack that has no data from a checked set, brings it up, uploads Qdrant's snapshots;
/// what `up` did, its document for the caller's.
pub async fn restore_into(
    output: &Output,
    engine: &Engine,
    profile: &Profile,
    dir: &StackDir,
    source: &backup::restore::Source<'_>,
    up: &UpArgs,
) -> anyhow::Result<super::up::Brought> {
    let store = crate::secrets::store::Store::open(profile, dir).await?;
    let manifest = source.manifest;
    output.line(format!("restoring set {} ({} service(s))", manifest.id, manifest.services.len()));
    backup::restore::fill(engine, profile, dir, &store, source).await?;
    let brought = super::up::up(output, engine.clone(), profile.clone(), dir.clone(), up, None, None).await?;
    if !brought.usable {
        return Ok(brought);
    }
    backup::restore::upload_snapshots(engine, profile, dir, &store, source.set, manifest).await?;
    Ok(brought)
}
