//! The one place where flags, environment, the stack directory's resolved profile and the
//! shipped defaults are merged into the profile a command works with.

use crate::cli::GlobalArgs;
use crate::layout::StackFile;
use crate::profile::{self, ProfileSource, ResolvedProfile};
use crate::stackdir::StackDir;

/// The profile for this invocation: `--profile` if given, else the stack directory's
/// `hardstack.toml`, else `dev`; then the `--set` overrides.
pub fn resolve_profile(global: &GlobalArgs) -> anyhow::Result<ResolvedProfile> {
    resolve_named(global, global.profile.as_deref())
}

/// The profile `name` names (a shipped one or a path) instead of --profile, with the same
/// default, overrides and services.
pub fn resolve_named(global: &GlobalArgs, name: Option<&str>) -> anyhow::Result<ResolvedProfile> {
    let dir = StackDir::new(&global.dir);
    let source = match name {
        Some(text) => ProfileSource::parse(text),
        None if dir.file(&StackFile::Profile).exists() => ProfileSource::File(dir.file(&StackFile::Profile)),
        None => ProfileSource::Shipped("dev".into()),
    };
    let mut overrides = global.overrides.clone();
    if !global.services.is_empty() {
        let list: Vec<String> = global.services.iter().map(|s| format!("\"{}\"", s.trim())).collect();
        overrides.push(format!("stack.services=[{}]", list.join(",")));
    }
    let mut resolved = profile::load(&source, &overrides)?;
    if let Some(topology) = crate::topology::read(&dir)? {
        let primary = topology.postgres_primary;
        anyhow::ensure!(
            primary <= resolved.profile.postgres.replicas,
            "{}: the primary is PostgreSQL node {primary}, which postgres.replicas = {} leaves out; \
             run `hardstack switchover postgres --to 0` before taking it out",
            dir.file(&StackFile::Topology).display(),
            resolved.profile.postgres.replicas
        );
        resolved.profile.postgres.primary = Some(primary);
        // A recorded Redis primary beyond redis.replicas is forgotten: node 0 is declared the
        // primary again, and `up` asks the Sentinels.
        resolved.profile.redis.primary = topology.redis_primary.filter(|node| *node <= resolved.profile.redis.replicas);
    }
    Ok(resolved)
}

/// The profile of an initialised stack directory (commands other than `init`).
pub fn stack_profile(global: &GlobalArgs) -> anyhow::Result<ResolvedProfile> {
    let dir = StackDir::new(&global.dir);
    if global.profile.is_none() && !dir.file(&StackFile::Profile).exists() {
        anyhow::bail!(
            "{} has no {}: run `hardstack init --dir {}` first",
            global.dir.display(),
            StackFile::Profile.path(),
            global.dir.display()
        );
    }
    resolve_profile(global)
}
