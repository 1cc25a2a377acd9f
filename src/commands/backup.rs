//! `hardstack backup`: take a set (see `backup`), or with `--test` restore the latest set into a
//! throwaway stack on the same engine, compare, record the result for `checklist.backups` and
//! `status`, and remove the throwaway stack whatever happened.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use serde_json::json;

use crate::backup::{self, Backups};
use crate::cli::{BackupArgs, GlobalArgs, UpArgs};
use crate::layout;
use crate::output::{Format, Output};
use crate::profile::{DataMode, Profile, Service, StoreKind};
use crate::runtime::Engine;
use crate::secrets::store::Store;
use crate::settings;
use crate::stackdir::StackDir;

/// How long a restore test's throwaway stack may take to become usable.
const TEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// Runs `backup`.
pub async fn run(global: &GlobalArgs, args: &BackupArgs) -> anyhow::Result<ExitCode> {
    let output = super::output(global);
    let profile = settings::stack_profile(global)?.profile;
    let dir = StackDir::new(&global.dir);
    let _lock = super::lock(global, if args.test { "backup --test" } else { "backup" }).await?;
    let engine = super::engine_for(&dir, &profile, true).await?;
    if args.test {
        let (passed, document) = test(&output, &engine, &profile, &dir).await?;
        output.json(&document);
        return Ok(if passed { ExitCode::SUCCESS } else { ExitCode::from(1) });
    }
    let document = take(&output, &engine, &profile, &dir).await?;
    output.json(&document);
    Ok(ExitCode::SUCCESS)
}

/// Takes a set of the running stack (the caller holds the lock): its lines for a person, and its
/// `hardstack.backup/v1` document.
pub async fn take(
    output: &Output,
    engine: &Engine,
    profile: &Profile,
    dir: &StackDir,
) -> anyhow::Result<serde_json::Value> {
    let store = Store::open(profile, dir).await?;
    let started = Instant::now();
    let context = backup::Context { profile, dir, store: &store, engine };
    let taken = backup::take(&context).await?;
    let seconds = started.elapsed().as_secs_f64();
    let size: u64 = taken.manifest.services.iter().flat_map(|s| &s.files).map(|f| f.size).sum();
    let document = json!({
        "schema": "hardstack.backup/v1",
        "stack": profile.stack.name,
        "set": taken.set,
        "path": taken.path,
        "bytes": size,
        "seconds": seconds,
        "services": taken.manifest.services.iter().map(|s| json!({
            "service": s.service,
            "server_version": s.server_version,
            "method": s.method,
            "files": s.files.len(),
            "bytes": s.files.iter().map(|f| f.size).sum::<u64>(),
        })).collect::<Vec<_>>(),
        "removed": taken.removed,
        "incomplete_removed": taken.incomplete_removed,
    });
    for phase in &taken.phases {
        output.detail(phase);
    }
    for id in &taken.incomplete_removed {
        output.line(format!("removed incomplete set {id} (a backup that did not finish)"));
    }
    for part in &taken.manifest.services {
        let bytes: u64 = part.files.iter().map(|f| f.size).sum();
        output.line(format!(
            "{}: {} in {} file(s), {} ({})",
            part.service,
            bytesize::ByteSize(bytes).display().si(),
            part.files.len(),
            part.method,
            part.server_version
        ));
    }
    output.line(format!(
        "backup set {} complete: {} ({:.1} s){}",
        taken.path.display(),
        bytesize::ByteSize(size).display().si(),
        seconds,
        if taken.removed.is_empty() { String::new() } else { format!("; removed {} old set(s)", taken.removed.len()) }
    ));
    Ok(document)
}

/// The restore test of the latest set (the caller holds the lock): whether it passed, and its
/// `hardstack.backup-test/v1` document.
pub async fn test(
    output: &Output,
    engine: &Engine,
    profile: &Profile,
    dir: &StackDir,
) -> anyhow::Result<(bool, serde_json::Value)> {
    let backups = Backups::of(profile, dir);
    let set = backups.latest()?.with_context(|| {
        format!("no complete backup set in {}: run `hardstack backup` first", backups.root.display())
    })?;
    let started = Instant::now();
    let manifest = backup::read_manifest(&set.path)?;
    let throwaway = throwaway_profile(engine, profile, &manifest).await?;
    let throwaway_dir = StackDir::new(backups.root.join(layout::backups::TEST_STACK));
    // The throwaway stack has an identity of its own, derived from this stack's.
    let identity = crate::identity::Identity::ensure(dir)?.derived("restore-test");
    let engine = &crate::runtime::connect().await?.acting_for(identity.owner(&throwaway.stack.name, &throwaway_dir));
    output.line(format!("restore test of set {}: throwaway stack {}", manifest.id, throwaway.stack.name));
    // Whatever a killed earlier test left.
    super::restore::remove_stack(engine, &throwaway).await?;
    remove_dir(&throwaway_dir)?;
    let outcome = async {
        backup::check(&set.path)?;
        identity.record(&throwaway_dir)?;
        crate::bundle::write(&throwaway, &throwaway_dir, crate::bundle::Given::default(), false, true).await?;
        let up = UpArgs {
            templates: None,
            accept: None,
            force: false,
            timeout: TEST_TIMEOUT,
            no_verify: true,
            dry_run: false,
            prune: false,
        };
        let quiet = Output { format: Format::Human, quiet: true, ..*output };
        let archive = set.path.parent().unwrap_or(&backups.root).join(layout::backups::ARCHIVE);
        let source = backup::restore::Source { set: &set.path, manifest: &manifest, to_time: None, archive: &archive };
        let brought = super::restore::restore_into(&quiet, engine, &throwaway, &throwaway_dir, &source, &up).await?;
        if let Some(failure) = brought.failure {
            anyhow::bail!("the restored stack did not come up: {failure}");
        }
        let store = Store::open(&throwaway, &throwaway_dir).await?;
        backup::test::compare(engine, &throwaway, &throwaway_dir, &store, &manifest).await
    }
    .await;
    // The throwaway stack goes, also when the test failed.
    let removed = super::restore::remove_stack(engine, &throwaway).await.and_then(|()| remove_dir(&throwaway_dir));
    let problems = match outcome {
        Ok(problems) => problems,
        Err(err) => vec![format!("{err:#}")],
    };
    let seconds = started.elapsed().as_secs_f64();
    let record = backup::test::record(&backups, &manifest, seconds, problems)?;
    removed.context("removing the throwaway stack")?;
    let document = json!({
        "schema": "hardstack.backup-test/v1",
        "stack": profile.stack.name,
        "set": record.set,
        "passed": record.passed,
        "seconds": seconds,
        "problems": record.problems,
    });
    for problem in &record.problems {
        output.line(format!("  {problem}"));
    }
    output.line(format!(
        "restore test of set {}: {} ({:.1} s)",
        record.set,
        if record.passed { "passed: the restored stack holds what was backed up" } else { "FAILED" },
        seconds
    ));
    Ok((record.passed, document))
}

/// The throwaway stack: the profile under another name, with the set's services, data in
/// volumes, ports published on loopback where nothing listens, a file store of its own, no
/// archive, no replica, and no more CPUs than the engine has.
async fn throwaway_profile(engine: &Engine, profile: &Profile, manifest: &backup::Manifest) -> anyhow::Result<Profile> {
    let mut throwaway = profile.clone();
    throwaway.stack.name = format!("{}-restore-test", profile.stack.name);
    throwaway.stack.services = manifest.services.iter().map(|s| s.service).collect();
    throwaway.network.publish = true;
    throwaway.network.bind_address = std::net::Ipv4Addr::LOCALHOST.into();
    for service in Service::ALL {
        let port = free_port()?;
        match service {
            Service::Postgres => throwaway.network.ports.postgres = port,
            Service::Redis => throwaway.network.ports.redis = port,
            Service::Qdrant => throwaway.network.ports.qdrant = port,
            Service::Pgbouncer => throwaway.network.ports.pgbouncer = port,
            Service::Prometheus => throwaway.network.ports.prometheus = port,
            // The front takes Qdrant's REST port, and its gRPC port.
            Service::QdrantFront => throwaway.network.ports.qdrant_grpc = port,
            // Never published.
            Service::PostgresExporter
            | Service::RedisExporter
            | Service::PgbouncerExporter
            | Service::RedisSentinel => {}
        }
    }
    // What is compared is the primary's data: the throwaway runs no replica.
    throwaway.postgres.replicas = 0;
    throwaway.postgres.primary = None;
    throwaway.redis.replicas = 0;
    throwaway.redis.sentinels = 0;
    throwaway.redis.primary = None;
    throwaway.postgres.data = DataMode::Volume;
    throwaway.redis.data = DataMode::Volume;
    throwaway.qdrant.data = DataMode::Volume;
    throwaway.secrets.store = StoreKind::File;
    throwaway.rotation.enabled = false;
    throwaway.backup.wal_archive = false;
    // It holds restored data, never a first backup of its own (see `up`).
    throwaway.backup.required = false;
    let cpus = engine.cpus().await? as f64;
    for limits in [&mut throwaway.resources.postgres, &mut throwaway.resources.redis, &mut throwaway.resources.qdrant] {
        limits.cpus = limits.cpus.min(cpus);
    }
    Ok(throwaway)
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn remove_dir(path: &StackDir) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(&path.root) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("removing {}", path.root.display())),
    }
}
