//! Moving PostgreSQL's primary role to a standby: a switchover (the primary stopped cleanly
//! first, so the standby has every committed row before it is promoted) and a failover (the
//! primary's container died: the standby that received most is promoted, and the old primary
//! is rewound onto the new timeline by `pg_rewind` before it follows it).
//!
//! The order makes every interruption finishable by `up`: the new primary is recorded
//! (`topology.json`) before it is promoted, and `up` promotes a recorded primary found in
//! recovery; the old primary gets `standby.signal` before it could start again, so it never
//! comes back as a second primary. The files that name the primary follow the record when `up`
//! renders them next (see `replica`).

use anyhow::Context as _;

use crate::containers::ContainerSpec;
use crate::profile::{Profile, Service};
use crate::runtime::Engine;
use crate::stackdir::StackDir;
use crate::superuser;
use crate::topology::Topology;

/// The data directory in every PostgreSQL node's container.
const DATA: &str = "/var/lib/postgresql/data";

/// What a promotion did.
#[derive(Debug, Clone)]
pub struct Promoted {
    pub from: u8,
    pub to: u8,
    /// For a switchover: the old primary's last WAL position (its shutdown checkpoint), which
    /// the new primary had replayed before its promotion: no committed row is lost.
    pub caught_up_at: Option<String>,
    /// For a failover: what `pg_rewind` said of the old primary.
    pub rewound: Option<String>,
}

/// A switchover to `to` (the most advanced streaming standby when `None`): the primary is
/// stopped cleanly, the standby is seen to have replayed its shutdown checkpoint, is recorded
/// and promoted, and the old primary is left stopped with `standby.signal` (the next `up`
/// starts it as a standby of the new primary).
pub async fn switchover(
    engine: &Engine,
    profile: &Profile,
    dir: &StackDir,
    to: Option<u8>,
) -> anyhow::Result<Promoted> {
    let from = crate::replica::primary(profile);
    let mut old = crate::replica::primary_spec(profile);
    anyhow::ensure!(
        engine.running(&old.name).await?,
        "the primary, {}, is not running: `hardstack up` promotes a standby when the primary died",
        old.name
    );
    let to = match to {
        Some(node) => node,
        None => most_advanced(engine, profile).await?.context("no standby is running: `hardstack up` starts them")?,
    };
    anyhow::ensure!(to != from, "node {to} is the primary already");
    // Its one-offs run the image it runs (the profile's, or the local one `up` fell back to).
    old.image = engine.image_of(&old).await?;
    anyhow::ensure!(
        crate::replica::nodes(profile).any(|node| node == to),
        "postgres.replicas = {}: there is no node {to} (the nodes are 0 to {})",
        profile.postgres.replicas,
        profile.postgres.replicas
    );
    let new = crate::replica::spec(profile, to);
    let streaming =
        superuser::sql(engine, &new, "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'")
            .await
            .with_context(|| format!("asking {} whether it streams", new.name))?;
    anyhow::ensure!(
        streaming.trim() == "1",
        "{} does not stream from the primary: a switchover to it could lose rows; `hardstack verify` says why",
        new.alias
    );
    // A fast shutdown: the walsenders send everything up to the shutdown checkpoint first.
    engine.stop(&old.name, 60).await?;
    // One one-off reads its last checkpoint and, where it shut down cleanly, marks it a standby
    // at once: from here it cannot start as a primary again.
    let control = control_and_mark(engine, profile, &old).await?;
    if control.state != "shut down" {
        // Not marked: it starts again as the primary it was, and nothing moved.
        engine.start(&old.name).await?;
        anyhow::bail!(
            "{} did not shut down cleanly within 60 s ({}); it runs again as the primary and nothing moved: retry",
            old.name,
            control.state
        );
    }
    let checkpoint = control.checkpoint;
    let replayed = format!("SELECT pg_last_wal_replay_lsn() > '{checkpoint}'::pg_lsn");
    let poll = std::time::Duration::from_millis(50);
    let caught_up = crate::retry::Backoff::every(poll, std::time::Duration::from_secs(30))
        .run(|| async {
            match superuser::sql(engine, &new, &replayed).await {
                Ok(answer) if answer.trim() == "t" => crate::retry::Attempt::Done(()),
                Ok(_) => crate::retry::Attempt::Retry(anyhow::anyhow!("not replayed up to {checkpoint} yet")),
                Err(err) => crate::retry::Attempt::Retry(err),
            }
        })
        .await;
    if let Err(err) = caught_up {
        // Nothing moved: the old primary starts again as it was.
        let script = format!("set -eu\nrm -f {DATA}/standby.signal\nsync -f {DATA}\n");
        super::replica::on_volumes(engine, profile, &old, "unmark", script).await?;
        engine.start(&old.name).await?;
        return Err(
            err.context(format!("{} did not receive the primary's last WAL; the primary runs again", new.alias))
        );
    }
    promote(
        engine,
        profile,
        dir,
        Topology { postgres_primary: to, postgres_rewind: Vec::new(), ..crate::topology::current(dir)? },
    )
    .await?;
    Ok(Promoted { from, to, caught_up_at: Some(checkpoint), rewound: None })
}

/// A failover, when the primary's container is not running but a standby is: the standby that
/// received most is recorded and promoted, then the old primary is rewound onto its timeline
/// (`pg_rewind`, which first finishes the crash recovery of an old primary that died) and
/// marked a standby. Rows the old primary committed that no standby received are lost: the
/// replication is asynchronous, and `pg_rewind` says from where.
pub async fn failover(engine: &Engine, profile: &Profile, dir: &StackDir) -> anyhow::Result<Option<Promoted>> {
    let from = crate::replica::primary(profile);
    let old = crate::replica::primary_spec(profile);
    let Some(info) = engine.inspect(&old.name).await? else { return Ok(None) };
    if info.state.and_then(|s| s.running).unwrap_or(false) {
        return Ok(None);
    }
    let Some(to) = most_advanced(engine, profile).await? else { return Ok(None) };
    // Until it is rewound, the old primary must not start: the record says so first.
    promote(
        engine,
        profile,
        dir,
        Topology { postgres_primary: to, postgres_rewind: vec![from], ..crate::topology::current(dir)? },
    )
    .await?;
    let mut promoted = profile.clone();
    promoted.postgres.primary = Some(to);
    let rewound = rewind(engine, &promoted, dir, from).await?;
    Ok(Some(Promoted { from, to, caught_up_at: None, rewound: Some(rewound) }))
}

/// What `up` would do first about PostgreSQL's primary, in words, for `plan`: rewinds a
/// failover left, and a failover where the primary's container is not running and a standby
/// is. Reads the engine and the standbys; changes nothing.
pub async fn foreseen(engine: &Engine, profile: &Profile, dir: &StackDir) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    if !profile.runs(Service::Postgres) || profile.postgres.replicas == 0 {
        return Ok(lines);
    }
    for node in crate::topology::read(dir)?.map(|t| t.postgres_rewind).unwrap_or_default() {
        lines.push(format!(
            "postgres: bring the old primary, node {node}, onto the new primary's timeline (pg_rewind) before it starts"
        ));
    }
    let old = crate::replica::primary_spec(profile);
    let stopped = engine.inspect(&old.name).await?.is_some() && !engine.running(&old.name).await?;
    if stopped && let Some(to) = most_advanced(engine, profile).await? {
        lines.push(format!(
            "postgres: the primary (node {}) is not running: promote node {to}, the standby that received most (a failover), then bring the old primary back as its standby",
            crate::replica::primary(profile)
        ));
    }
    Ok(lines)
}

/// Rewinds the old primaries a failover left unrewound (an interrupted run): before `up`
/// starts any of them.
pub async fn rewind_pending(engine: &Engine, profile: &Profile, dir: &StackDir) -> anyhow::Result<Vec<String>> {
    let pending = crate::topology::read(dir)?.map(|t| t.postgres_rewind).unwrap_or_default();
    let mut said = Vec::new();
    for node in pending {
        said.push(rewind(engine, profile, dir, node).await?);
    }
    Ok(said)
}

/// Finishes a promotion an earlier run recorded but did not make (the recorded primary is
/// still in recovery): what `up` does first.
pub async fn finish(engine: &Engine, profile: &Profile, dir: &StackDir) -> anyhow::Result<bool> {
    if profile.postgres.primary.is_none() {
        return Ok(false);
    }
    let primary = crate::replica::primary_spec(profile);
    if !engine.running(&primary.name).await? {
        return Ok(false);
    }
    // A primary that was just started may still be in its crash recovery: asked until it answers.
    let poll = std::time::Duration::from_millis(100);
    let in_recovery = crate::retry::Backoff::every(poll, std::time::Duration::from_secs(60))
        .run(|| async {
            match superuser::sql(engine, &primary, "SELECT pg_is_in_recovery()").await {
                Ok(answer) => crate::retry::Attempt::Done(answer),
                Err(err) => crate::retry::Attempt::Retry(err),
            }
        })
        .await
        .with_context(|| format!("asking {} whether it is in recovery", primary.name))?;
    let unfinished = in_recovery.trim() == "t";
    if unfinished {
        let topology = crate::topology::read(dir)?.context("the topology is recorded")?;
        promote(engine, profile, dir, topology).await?;
    }
    Ok(unfinished)
}

/// Records `to` as the primary, promotes it and makes the slots of the nodes that now follow
/// it.
async fn promote(engine: &Engine, profile: &Profile, dir: &StackDir, topology: Topology) -> anyhow::Result<()> {
    crate::topology::record(dir, &topology)?;
    let to = topology.postgres_primary;
    let mut promoted = profile.clone();
    promoted.postgres.primary = Some(to);
    let new = crate::replica::primary_spec(&promoted);
    // CASE, not AND: only a server in recovery is asked to promote (pg_promote refuses others).
    let promoting = "SELECT CASE WHEN pg_is_in_recovery() THEN pg_promote(true, 60) ELSE false END";
    let answer = superuser::sql(engine, &new, promoting).await?;
    anyhow::ensure!(
        matches!(answer.trim(), "t" | "f"),
        "promoting {}: PostgreSQL answered {}",
        new.alias,
        answer.trim()
    );
    let slots: Vec<String> = promoted
        .postgres
        .standby_nodes()
        .map(|node| {
            let slot = crate::layout::replica_slot(node);
            format!(
                "SELECT pg_create_physical_replication_slot('{slot}', true) WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = '{slot}');"
            )
        })
        .collect();
    superuser::sql(engine, &new, &slots.join("\n")).await.context("making the standbys' slots on the new primary")?;
    Ok(())
}

/// The running standby that received the most WAL; `None` when none runs.
async fn most_advanced(engine: &Engine, profile: &Profile) -> anyhow::Result<Option<u8>> {
    let mut best: Option<(u64, u8)> = None;
    for spec in crate::replica::specs(profile) {
        if !engine.running(&spec.name).await? {
            continue;
        }
        let asked = "SELECT pg_is_in_recovery(), pg_wal_lsn_diff(coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), '0/0')::bigint";
        let Ok(answer) = superuser::sql(engine, &spec, asked).await else { continue };
        let Some(("t", received)) = answer.trim().split_once('|') else { continue };
        let received: u64 = received.parse().unwrap_or(0);
        let node = crate::replica::node(&spec).expect("a standby is a PostgreSQL node");
        if best.is_none_or(|(most, _)| received > most) {
            best = Some((received, node));
        }
    }
    Ok(best.map(|(_, node)| node))
}

/// What `pg_controldata` says of a stopped node's data directory.
struct Control {
    state: String,
    checkpoint: String,
}

/// Reads a stopped node's control file in a one-off container on its volumes and, where it
/// says the server shut down cleanly, leaves `standby.signal` in its data directory.
async fn control_and_mark(engine: &Engine, profile: &Profile, spec: &ContainerSpec) -> anyhow::Result<Control> {
    let script = format!(
        "set -eu\n\
         control=$(pg_controldata -D {DATA})\n\
         printf '%s\\n' \"$control\"\n\
         if printf '%s\\n' \"$control\" | grep -q '^Database cluster state: *shut down$'; then touch {DATA}/standby.signal; sync -f {DATA}; fi\n"
    );
    let ran = super::replica::on_volumes(engine, profile, spec, "control", script).await?;
    let field = |name: &str| {
        ran.lines().find_map(|line| line.strip_prefix(name).map(|v| v.trim_start_matches(':').trim().to_owned()))
    };
    Ok(Control {
        state: field("Database cluster state").context("pg_controldata gave no cluster state")?,
        checkpoint: field("Latest checkpoint location").context("pg_controldata gave no checkpoint")?,
    })
}

/// Rewinds the stopped old primary `node` onto the new primary's timeline (`promoted` names the
/// new one), marks it a standby and takes it off the record's list. `pg_rewind` first runs the
/// crash recovery of a server that died (its lock file, left by the killed server, goes: the
/// container is not running), and does nothing where the old primary had nothing the new one
/// lacks. It logs in as the replication login over the stack network, with its certificate and
/// pgpass file from the node's config volume (the grants `pg_rewind` needs are the init SQL's).
async fn rewind(engine: &Engine, promoted: &Profile, dir: &StackDir, node: u8) -> anyhow::Result<String> {
    let mut old = crate::replica::spec(promoted, node);
    // Its one-offs run the image it runs (the profile's, or the local one `up` fell back to).
    old.image = engine.image_of(&old).await?;
    anyhow::ensure!(
        !engine.running(&old.name).await?,
        "{} runs although it was the primary before a failover: stop it (`docker stop {}`) and run `hardstack up` to rewind it",
        old.name,
        old.name
    );
    let source = crate::replica::conninfo(promoted).replace(" passfile=", " dbname=postgres passfile=");
    let config = crate::layout::container_path(promoted, Service::Postgres, &crate::layout::StackFile::PostgresConf)
        .context("PostgreSQL receives postgresql.conf")?;
    let script = format!(
        "set -eu\n\
         rm -f {DATA}/postmaster.pid\n\
         pg_rewind --target-pgdata={DATA} --source-server=\"{source}\" --config-file={config} --progress 2>&1\n\
         touch {DATA}/standby.signal\n\
         sync -f {DATA}\n"
    );
    let said = match super::replica::on_volumes(engine, promoted, &old, "rewind", script).await {
        Ok(output) => {
            let lines: Vec<&str> = output
                .lines()
                .filter(|line| line.contains("rewind") || line.contains("diverged") || line.contains("Done"))
                .map(|line| line.trim_start_matches("pg_rewind: "))
                .collect();
            format!("pg_rewind: {}", lines.join("; "))
        }
        // Where pg_rewind cannot (the new primary no longer has the WAL since the histories
        // diverged, say), the node is made again as a new replica is: wiped, then a base
        // backup of the new primary over its slot (a mark makes the copy start over).
        Err(err) => {
            let mark = format!("set -eu\ntouch {}/pg/copying\n", crate::containers::POSTGRES_WAL_MOUNT);
            super::replica::on_volumes(engine, promoted, &old, "recopy", mark).await?;
            super::replica::copy(engine, promoted, &old, node).await.with_context(|| {
                format!("copying the new primary into {} after pg_rewind failed: {err:#}", old.alias)
            })?;
            format!("pg_rewind failed ({}); made again from a base backup of the new primary", error_line(&err))
        }
    };
    if let Some(mut topology) = crate::topology::read(dir)? {
        topology.postgres_rewind.retain(|pending| *pending != node);
        crate::topology::record(dir, &topology)?;
    }
    Ok(said)
}

/// The last line of an error's chain that says something (pg_rewind's own `error:` line).
fn error_line(err: &anyhow::Error) -> String {
    let text = format!("{err:#}");
    text.lines().rev().find(|l| l.contains("error")).unwrap_or(text.lines().next().unwrap_or("")).trim().to_owned()
}
