//! `hardstack switchover postgres`: the primary role moves to a standby with no committed row
//! lost (see `converge::switchover`), then the stack is brought to what its directory now
//! declares, as `up` does: the old primary starts as a standby of the new one, every file that
//! names the primary (env, connections.json, the init SQL's slots) follows, and `verify` runs.

use std::process::ExitCode;

use serde_json::json;

use crate::cli::{GlobalArgs, SwitchoverArgs, UpArgs};
use crate::output::Output;
use crate::profile::{Profile, Service};
use crate::runtime::Engine;
use crate::settings;
use crate::stackdir::StackDir;

/// Runs `switchover`.
pub async fn run(global: &GlobalArgs, args: &SwitchoverArgs) -> anyhow::Result<ExitCode> {
    let output = super::output(global);
    let profile = settings::stack_profile(global)?.profile;
    anyhow::ensure!(
        profile.runs(Service::Postgres) && profile.postgres.replicas > 0,
        "the stack runs no PostgreSQL replica to promote: set postgres.replicas (see docs/replicas.md)"
    );
    let dir = StackDir::new(&global.dir);
    let _lock = super::lock(global, "switchover").await?;
    let engine = super::engine_for(&dir, &profile, true).await?;
    let promoted = crate::converge::switchover::switchover(&engine, &profile, &dir, args.to).await?;
    output.line(format!(
        "postgres: node {} ({}) is the primary; node {} had replayed the old primary's last WAL ({}) before its promotion",
        promoted.to,
        crate::replica::container_name(&profile, promoted.to),
        promoted.to,
        promoted.caught_up_at.as_deref().unwrap_or("-"),
    ));
    let up = UpArgs {
        accept: None,
        templates: None,
        force: false,
        timeout: std::time::Duration::from_secs(180),
        no_verify: args.no_verify,
        dry_run: false,
        prune: false,
    };
    let brought = super::up::bring(global, &up, &output, engine, profile, None).await?;
    output.json(&json!({
        "schema": "hardstack.switchover/v1",
        "service": "postgres",
        "from": promoted.from,
        "to": promoted.to,
        "caught_up_at": promoted.caught_up_at,
        "up": brought.document,
    }));
    brought.into_result()
}

/// Where PostgreSQL's primary died and a standby runs: the standby is promoted (a failover),
/// and said so; a promotion an earlier run recorded but did not finish is finished. Before
/// anything is rendered: the stack's files follow the new primary.
pub async fn take_over(output: &Output, engine: &Engine, profile: &Profile, dir: &StackDir) -> anyhow::Result<()> {
    if !profile.runs(Service::Postgres) || profile.postgres.replicas == 0 {
        return Ok(());
    }
    if crate::converge::switchover::finish(engine, profile, dir).await? {
        output.line(format!(
            "postgres: finished the promotion of node {} an earlier run recorded",
            crate::replica::primary(profile)
        ));
    }
    for said in crate::converge::switchover::rewind_pending(engine, profile, dir).await? {
        output.line(format!("postgres: an old primary a failover left follows the new primary ({said})"));
    }
    if let Some(promoted) = crate::converge::switchover::failover(engine, profile, dir).await? {
        output.line(format!(
            "postgres: the primary (node {}) is not running: promoted node {} ({}); the old primary follows it as a standby{}",
            promoted.from,
            promoted.to,
            crate::replica::container_name(profile, promoted.to),
            promoted.rewound.map(|said| format!(" ({said})")).unwrap_or_default()
        ));
    }
    Ok(())
}
