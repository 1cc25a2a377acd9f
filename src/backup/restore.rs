//! Filling a stack with no data from a checked set, before `up` starts its servers.
//!
//! PostgreSQL: a short-lived container (root, with only the capabilities to copy and re-own)
//! copies the base backup into the data volume and its WAL into the WAL volume, and for a
//! point in time the archived WAL of the backup's timeline plus the recovery settings; a second
//! one, as the server's uid, runs the server on a private socket until recovery ends, gives the
//! superuser and every login the stack's current credentials (the superuser's verifier, then the
//! init SQL) and stops it. Old passwords never come back with the data.
//! Redis: the RDB into the data volume (and as the base of an append-only file when the profile
//! has one, which Redis would otherwise load instead). Qdrant: after `up`, each collection's
//! snapshot by upload (`upload_snapshots`).

use std::path::Path;
use std::time::SystemTime;

use anyhow::Context as _;

use super::{Manifest, ServiceSet};
use crate::containers::{self, ContainerSpec};
use crate::layout::{self, StackFile};
use crate::profile::{DataMode, Profile, Service};
use crate::runtime::{Engine, OneOff};
use crate::secrets::store::Store;
use crate::stackdir::StackDir;

/// The data volumes a stack already has: a restore does not overwrite them without `--force`.
pub async fn occupied(engine: &Engine, profile: &Profile, services: &[Service]) -> anyhow::Result<Vec<String>> {
    let existing = engine.stack_volumes(&profile.stack.name).await?;
    let mut occupied = Vec::new();
    for service in services {
        let spec = containers::container_spec(profile, *service);
        for volume in spec.volumes.iter().filter(|v| v.key.ends_with("-data") || v.key.ends_with("-wal")) {
            if existing.contains(&volume.name) {
                occupied.push(volume.name.clone());
            }
        }
    }
    Ok(occupied)
}

/// Checks that the profile can take the set: it runs each service of the set, with its data
/// in a volume; a point in time needs PostgreSQL and the archive, and must follow the backup.
pub fn preflight(profile: &Profile, manifest: &Manifest, to_time: Option<SystemTime>) -> anyhow::Result<()> {
    anyhow::ensure!(
        !manifest.services.is_empty(),
        "the set holds none of the services the profile runs ({})",
        profile.stack.services.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ")
    );
    for part in &manifest.services {
        let service = part.service;
        let data = match service {
            Service::Postgres => profile.postgres.data,
            Service::Redis => profile.redis.data,
            Service::Qdrant => profile.qdrant.data,
            Service::Pgbouncer
            | Service::PostgresExporter
            | Service::RedisExporter
            | Service::PgbouncerExporter
            | Service::Prometheus
            | Service::QdrantFront
            | Service::RedisSentinel => continue,
        };
        anyhow::ensure!(
            data == DataMode::Volume,
            "{service} keeps its data in memory ({service}.data = \"tmpfs\"): a restore needs {service}.data = \"volume\""
        );
    }
    if let Some(time) = to_time {
        anyhow::ensure!(
            manifest.services.iter().any(|s| s.service == Service::Postgres),
            "--to-time recovers PostgreSQL to a point in time, and the set has no PostgreSQL backup"
        );
        let finished = super::parse_time(&manifest.finished)?;
        anyhow::ensure!(
            time >= finished,
            "--to-time {} is before the set's end ({}): choose a time after it, or an older set",
            super::rfc3339(time),
            manifest.finished
        );
    }
    Ok(())
}

/// The image to run the tools of `service` with (`Engine::image_of`).
async fn tool_image(engine: &Engine, profile: &Profile, service: Service) -> anyhow::Result<String> {
    engine.image_of(&containers::container_spec(profile, service)).await
}

/// What a restore restores: a checked set, to its end or to a point in time, with the WAL
/// archive beside it.
pub struct Source<'a> {
    pub set: &'a Path,
    pub manifest: &'a Manifest,
    pub to_time: Option<SystemTime>,
    pub archive: &'a Path,
}

/// Fills the data volumes of every PostgreSQL and Redis part of the set.
pub async fn fill(
    engine: &Engine,
    profile: &Profile,
    dir: &StackDir,
    store: &Store,
    source: &Source<'_>,
) -> anyhow::Result<()> {
    for part in &source.manifest.services {
        let spec = containers::container_spec(profile, part.service);
        engine.ensure_volumes(&profile.stack.name, &spec).await?;
        match part.service {
            Service::Postgres => postgres(engine, profile, dir, store, source, part, &spec).await?,
            Service::Redis => redis(engine, profile, source.set, &spec).await?,
            Service::Qdrant
            | Service::Pgbouncer
            | Service::PostgresExporter
            | Service::RedisExporter
            | Service::PgbouncerExporter
            | Service::Prometheus
            | Service::QdrantFront
            | Service::RedisSentinel => {}
        }
    }
    Ok(())
}

/// Where a volume of `spec` is mounted.
fn mount_of(spec: &ContainerSpec, key: &str) -> anyhow::Result<(String, String)> {
    spec.volumes
        .iter()
        .find(|v| v.key == key)
        .map(|v| (v.name.clone(), v.target.clone()))
        .with_context(|| format!("{} has no {key} volume", spec.name))
}

const COPY_CAPABILITIES: [&str; 3] = ["CHOWN", "DAC_OVERRIDE", "FOWNER"];

async fn postgres(
    engine: &Engine,
    profile: &Profile,
    dir: &StackDir,
    store: &Store,
    source: &Source<'_>,
    part: &ServiceSet,
    spec: &ContainerSpec,
) -> anyhow::Result<()> {
    let (set, archive) = (source.set, source.archive);
    let image = tool_image(engine, profile, Service::Postgres).await?;
    let names = containers::stack_names(profile);
    engine.ensure_network(&names).await?;
    let (data_volume, data) = mount_of(spec, "postgres-data")?;
    let (wal_volume, wal_mount) = mount_of(spec, "postgres-wal")?;
    let wal = format!("{wal_mount}/pg/pg_wal");
    let uid = Service::Postgres.uid();
    let root = super::ROOT;
    let mut mounts = vec![
        format!("{}:/set:ro", set.join(layout::backups::service_dir(Service::Postgres)).display()),
        format!("{data_volume}:{data}"),
        format!("{wal_volume}:{wal_mount}"),
    ];
    let mut files = Vec::new();
    let mut recovery = String::new();
    if let Some(time) = source.to_time {
        let start = part.wal.as_ref().context("the set's PostgreSQL part names no start WAL segment")?;
        let segments = archived_segments(archive, start)?;
        anyhow::ensure!(
            !segments.is_empty(),
            "the WAL archive {} holds no WAL after the set's base backup, so no later time can be reached",
            archive.display()
        );
        files.push((format!("{root}/segments"), 0, 0o600, format!("{}\n", segments.join("\n")).into_bytes()));
        mounts.push(format!("{}:/archive:ro", archive.display()));
        // Recovery reads the copied segments from pg_wal: a restore_command that finds nothing
        // makes it fall back to them.
        let settings = format!(
            "restore_command = 'false'\nrecovery_target_time = '{}'\nrecovery_target_action = 'promote'\nrecovery_target_timeline = 'current'\n",
            humantime::format_rfc3339_millis(time).to_string().replace('T', " ").replace('Z', "+00")
        );
        files.push((format!("{root}/recovery.conf"), 0, 0o600, settings.into_bytes()));
        recovery = format!(
            "while read -r f; do [ -n \"$f\" ] && cp -f \"/archive/$f\" \"{wal}/$f\"; done < /{root}/segments\n\
             cat /{root}/recovery.conf >> {data}/postgresql.auto.conf\n\
             touch {data}/recovery.signal\n"
        );
    }
    let copy = format!(
        "set -e\n\
         [ -z \"$(ls -A {data})\" ] || {{ echo 'the data volume is not empty' >&2; exit 1; }}\n\
         cp -a /set/base/. {data}/\n\
         mkdir -p {wal}\n\
         cp -a {data}/pg_wal/. {wal}/\n\
         rm -rf {data}/pg_wal\n\
         ln -s {wal} {data}/pg_wal\n\
         {recovery}\
         chown -R {uid}:{uid} {data} {wal_mount}/pg\n\
         chmod 0700 {data} {wal_mount}/pg {wal}\n"
    );
    let run = OneOff {
        image: image.clone(),
        user: "0:0".into(),
        command: vec!["/bin/sh".into(), "-c".into(), copy],
        archive: crate::runtime::deliver::archive_of_files(&files)?,
        mounts,
        cap_add: COPY_CAPABILITIES.iter().map(|c| c.to_string()).collect(),
    };
    engine.run_once(&names.stack, &names.network, "restore-postgres", run).await.context("copying the base backup")?;

    // Recovery, then the stack's current credentials.
    let superuser = store.current(layout::POSTGRES_SUPERUSER_SECRET).await?.value;
    let verifier = crate::secrets::scram_verifier(&superuser);
    let superuser_sql =
        format!("SET log_statement = 'none';\nALTER ROLE {} PASSWORD '{}';\n", layout::POSTGRES_SUPERUSER, verifier);
    let init_sql = std::fs::read(dir.file(&StackFile::InitSql)).context("reading the init SQL")?;
    let files = vec![
        (format!("{root}/superuser.sql"), uid, 0o600, superuser_sql.into_bytes()),
        (format!("{root}/init.sql"), uid, 0o600, init_sql),
    ];
    let psql = format!("psql -X -q -v ON_ERROR_STOP=1 -h /tmp/hs -U {} -d postgres", layout::POSTGRES_SUPERUSER);
    let reset: String =
        ["restore_command", "recovery_target_time", "recovery_target_action", "recovery_target_timeline"]
            .iter()
            .map(|setting| format!(" -c 'ALTER SYSTEM RESET {setting}'"))
            .collect();
    let recover = format!(
        "set -e; umask 077\n\
         mkdir -p /tmp/hs\n\
         printf 'local all {superuser} trust\\n' > /tmp/hs/hba\n\
         fail() {{ cat /tmp/hs/log >&2; exit 1; }}\n\
         pg_ctl -D {data} -l /tmp/hs/log -w -t 3600 -o \"-c config_file={data}/postgresql.conf -c hba_file=/tmp/hs/hba -c listen_addresses='' -c unix_socket_directories=/tmp/hs -c archive_mode=off -c ssl=off -c hot_standby=off\" start >&2 || fail\n\
         n=0; until [ \"$({psql} -tAc 'SELECT pg_is_in_recovery()')\" = f ]; do n=$((n+1)); [ $n -lt 36000 ] || fail; sleep 0.1; done\n\
         {psql} -f /{root}/superuser.sql\n\
         {psql} -f /{root}/init.sql\n\
         {psql}{reset}\n\
         pg_ctl -D {data} -m fast -w stop >&2\n",
        superuser = layout::POSTGRES_SUPERUSER
    );
    let run = OneOff {
        image,
        user: format!("{uid}:{uid}"),
        command: vec!["/bin/sh".into(), "-c".into(), recover],
        archive: crate::runtime::deliver::archive_of_files(&files)?,
        mounts: vec![format!("{data_volume}:{data}"), format!("{wal_volume}:{wal_mount}")],
        cap_add: Vec::new(),
    };
    engine
        .run_once(&names.stack, &names.network, "restore-postgres", run)
        .await
        .context("recovering the restored PostgreSQL data")?;
    Ok(())
}

/// The archived segments a recovery from `start` reads: the base backup's timeline from its
/// first segment on, and every timeline history file.
fn archived_segments(archive: &Path, start: &super::WalStart) -> anyhow::Result<Vec<String>> {
    let timeline = format!("{:08X}", start.timeline);
    let mut segments = Vec::new();
    let entries =
        std::fs::read_dir(archive).with_context(|| format!("reading the WAL archive {}", archive.display()))?;
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        // Whole segments only (not `.partial` or `.backup` files).
        let segment = name.len() == 24
            && super::postgres::segment_of(&name).is_some_and(|s| s[..8] == timeline && s[8..] >= start.segment[8..]);
        if segment || name.ends_with(".history") {
            segments.push(name);
        }
    }
    segments.sort();
    Ok(segments)
}

async fn redis(engine: &Engine, profile: &Profile, set: &Path, spec: &ContainerSpec) -> anyhow::Result<()> {
    let image = tool_image(engine, profile, Service::Redis).await?;
    let names = containers::stack_names(profile);
    engine.ensure_network(&names).await?;
    let (data_volume, data) = mount_of(spec, "redis-data")?;
    let uid = Service::Redis.uid();
    let rdb = super::redis::RDB;
    // With appendonly, Redis loads the append-only file and ignores an RDB: the RDB becomes the
    // base of a new one.
    let aof = if profile.redis.appendonly {
        format!(
            "mkdir -p {data}/appendonlydir\n\
             cp /set/{rdb} {data}/appendonlydir/appendonly.aof.1.base.rdb\n\
             printf 'file appendonly.aof.1.base.rdb seq 1 type b\\n' > {data}/appendonlydir/appendonly.aof.manifest\n"
        )
    } else {
        String::new()
    };
    let copy = format!(
        "set -e; umask 077\n\
         [ -z \"$(ls -A {data})\" ] || {{ echo 'the data volume is not empty' >&2; exit 1; }}\n\
         cp /set/{rdb} {data}/{rdb}\n\
         {aof}\
         chown -R {uid}:{uid} {data}\n"
    );
    let run = OneOff {
        image,
        user: "0:0".into(),
        command: vec!["/bin/sh".into(), "-c".into(), copy],
        archive: crate::runtime::deliver::archive_of_files(&[])?,
        mounts: vec![
            format!("{}:/set:ro", set.join(layout::backups::service_dir(Service::Redis)).display()),
            format!("{data_volume}:{data}"),
        ],
        cap_add: COPY_CAPABILITIES.iter().map(|c| c.to_string()).collect(),
    };
    engine.run_once(&names.stack, &names.network, "restore-redis", run).await.context("copying the RDB")?;
    Ok(())
}

/// Uploads each collection's snapshot of the set to the running Qdrant.
pub async fn upload_snapshots(
    engine: &Engine,
    profile: &Profile,
    dir: &StackDir,
    store: &Store,
    set: &Path,
    manifest: &Manifest,
) -> anyhow::Result<()> {
    let Some(part) = manifest.services.iter().find(|s| s.service == Service::Qdrant) else { return Ok(()) };
    let api = super::qdrant::Api::connect(engine, profile, dir, store).await?;
    for file in &part.files {
        let path = set.join(&file.path);
        let collection = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".snapshot"))
            .with_context(|| format!("{} is not a collection snapshot", path.display()))?
            .to_owned();
        api.recover(&collection, &path).await?;
    }
    Ok(())
}
