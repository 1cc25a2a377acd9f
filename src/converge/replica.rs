//! A PostgreSQL replica's first copy: a base backup from the primary into the replica's own
//! volumes, made before its container first starts (the image's entrypoint then finds a data
//! directory and starts the server, which `standby.signal` keeps in recovery, following the
//! primary by `primary_conninfo`). The copy runs in a one-off container of the stack's image on
//! its network, as the server's uid, with the replica's volumes mounted where the replica has
//! them: its config volume (already delivered) gives the replication login's certificate and
//! pgpass file, so no secret passes through the one-off's command or environment.

use crate::containers::ContainerSpec;
use crate::layout;
use crate::profile::Profile;
use crate::runtime::{Engine, OneOff};

/// Where the replica's WAL volume is mounted: the copy marks itself there while it runs.
const WAL_MOUNT: &str = crate::containers::POSTGRES_WAL_MOUNT;

/// Makes replica `node`'s data directory a copy of the primary's, unless it holds a complete
/// one already (a replica whose container was removed, its volumes kept). A copy that did not
/// finish (its mark is still there) is wiped and made again.
pub async fn copy(engine: &Engine, profile: &Profile, spec: &ContainerSpec, node: u8) -> anyhow::Result<()> {
    let conninfo = format!("{} replication=true application_name={}", crate::replica::conninfo(profile), spec.alias);
    let data = "/var/lib/postgresql/data";
    let wal = format!("{WAL_MOUNT}/pg/pg_wal");
    let mark = format!("{WAL_MOUNT}/pg/copying");
    let slot = layout::replica_slot(node);
    // SECURITY: the password is read from the pgpass file of the config volume (passfile=).
    let script = format!(
        "set -eu\n\
         if [ -s {data}/PG_VERSION ] && [ ! -e {mark} ]; then echo kept; exit 0; fi\n\
         touch {mark}\n\
         find {data} -mindepth 1 -delete\n\
         rm -rf {wal}\n\
         pg_basebackup -d \"{conninfo}\" -D {data} --waldir={wal} -X stream -S {slot} -c fast --no-password --no-manifest\n\
         touch {data}/standby.signal\n\
         sync -f {data}\n\
         rm {mark}\n\
         echo copied\n"
    );
    on_volumes(engine, profile, spec, "copy", script).await.map(|_| ())
}

/// Runs `script` as the server's uid in a one-off of `spec`'s image, on the node's volumes
/// (mounted where its container has them) and the stack network, while the node's own
/// container is not running; returns the script's output. The one-off's role is
/// `<alias>-<what>`.
pub(super) async fn on_volumes(
    engine: &Engine,
    profile: &Profile,
    spec: &ContainerSpec,
    what: &str,
    script: String,
) -> anyhow::Result<String> {
    let mounts = spec
        .volumes
        .iter()
        .map(|v| format!("{}:{}{}", v.name, v.target, if v.read_only { ":ro" } else { "" }))
        .collect();
    let run = OneOff {
        image: spec.image.clone(),
        user: spec.user.clone(),
        command: vec!["/bin/sh".into(), "-c".into(), script],
        archive: Vec::new(),
        mounts,
        cap_add: Vec::new(),
    };
    let role = format!("{}-{what}", spec.alias);
    let names = crate::containers::stack_names(profile);
    Ok(engine.run_once(&names.stack, &names.network, &role, run).await?.output)
}

/// A replica taken out of the profile (its container already removed): its slot on the primary
/// goes, so the primary stops keeping WAL for it. Its stream may outlive the container until
/// the primary notices: it is ended first. Nothing to do without a running primary.
pub async fn forget(engine: &Engine, primary: &ContainerSpec, node: u8) -> anyhow::Result<()> {
    if !engine.running(&primary.name).await? {
        return Ok(());
    }
    let slot = layout::replica_slot(node);
    let end = format!(
        "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '{slot}' AND active"
    );
    crate::superuser::sql(engine, primary, &end).await?;
    let drop = format!(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{slot}' AND NOT active;\n\
         SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot}'"
    );
    let poll = std::time::Duration::from_millis(100);
    crate::retry::Backoff::every(poll, std::time::Duration::from_secs(15))
        .run(|| async {
            match crate::superuser::sql(engine, primary, &drop).await {
                Ok(left) if left.trim().ends_with('0') => crate::retry::Attempt::Done(()),
                Ok(_) => crate::retry::Attempt::Retry(anyhow::anyhow!("slot {slot} is still in use")),
                Err(err) => crate::retry::Attempt::Retry(err),
            }
        })
        .await
}
