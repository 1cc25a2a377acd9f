//! Convergence: what it takes to make a running service match the stack directory, with the
//! least disruption that applies the change, and doing it. [`plan`] reads the service (its
//! container, the record of what was delivered into its volume, the settings it runs with) and
//! changes nothing; [`apply`] carries a plan out. `up` and `plan` share both, so `plan` shows
//! exactly what `up` then does.
//!
//! Every delivered file is recorded in the service's config volume by its digest
//! ([`layout::DELIVERY_RECORD`]): a file whose digest differs is delivered, whatever its reach,
//! so no change is silently skipped. The container itself is recreated only when its spec
//! changed (the `hardstack.config-hash` label); its limits are updated in place.

pub mod peers;
mod postgres;
mod redis;
pub mod replica;
pub mod sentinel;
pub mod switchover;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::containers::{ContainerSpec, Delivery, Placement};
use crate::layout::{self, Reach, StackFile};
use crate::profile::{Profile, Service};
use crate::runtime::{CONFIG_HASH_LABEL, ContainerInfo, Engine, deliver};
use crate::secrets::Secret;
use crate::stackdir::{StackDir, digest};

/// How much a change disturbs a running service, least first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Disruption {
    /// Nothing changes on the server (or files only it reads afresh at each use).
    Nothing,
    /// The server re-reads its configuration; connections stay.
    Reload,
    /// Commands change the running server (`CONFIG SET`, `ACL LOAD`); connections stay.
    Live,
    /// The container's limits change in place; the process runs on.
    Update,
    /// The server process restarts: connections drop, the container stays.
    Restart,
    /// A new container: connections drop; the volumes, and so the data, stay.
    Recreate,
}

/// What happens to the container itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "step")]
pub enum ContainerStep {
    /// It is there, running, with the spec it should have.
    Keep,
    /// It does not exist yet.
    Create,
    /// Its spec changed (image, command, mounts, ports, posture): a new container.
    Recreate { reason: String },
    /// It exists, stopped: it starts, with whatever changed delivered first.
    Start,
}

/// One thing done to a running service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    /// Files whose content changed, copied into the volumes with their owner and mode.
    Deliver { files: Vec<String> },
    /// Memory, CPU or pids limits set on the running container.
    UpdateLimits { changes: Vec<String> },
    /// PostgreSQL re-reads its configuration (`pg_reload_conf()`): the settings or files named.
    Reload { what: Vec<String> },
    /// A Redis setting changed at runtime.
    ConfigSet { key: String, value: String },
    /// Redis loads its ACL file again: the users it adds and removes (any other user's rules
    /// or passwords may change too).
    AclLoad { add_users: Vec<String>, remove_users: Vec<String> },
    /// PostgreSQL runs the init SQL again (idempotent): roles, databases and grants of the
    /// profile's users, passwords as SCRAM verifiers, the logins of removed users disabled
    /// (their owner role, database and data kept).
    ApplySql { file: String, add_users: Vec<String>, disable_logins: Vec<String> },
    /// With `--prune`: the databases, owner roles and logins of users no longer in the profile
    /// are dropped, their data with them.
    Prune { users: Vec<String> },
    /// The server restarts, for the reasons named (a postmaster setting, a file read at start).
    Restart { why: Vec<String> },
}

impl Action {
    fn disruption(&self) -> Disruption {
        match self {
            Action::Deliver { .. } => Disruption::Nothing,
            Action::Reload { .. } => Disruption::Reload,
            Action::ConfigSet { .. } | Action::AclLoad { .. } | Action::ApplySql { .. } | Action::Prune { .. } => {
                Disruption::Live
            }
            Action::UpdateLimits { .. } => Disruption::Update,
            Action::Restart { .. } => Disruption::Restart,
        }
    }
}

/// What converging one service takes.
#[derive(Debug, Clone, Serialize)]
pub struct ServicePlan {
    pub service: Service,
    /// The container's alias: the service's name, or a replica's (`postgres-1`).
    pub name: String,
    pub container: ContainerStep,
    pub actions: Vec<Action>,
    /// What the plan read and [`apply`] delivers: the record found in the volume, and the
    /// changed files with the content they will have.
    #[serde(skip)]
    record: DeliveryRecord,
    #[serde(skip)]
    changed: Vec<(Delivery, Vec<u8>)>,
}

impl ServicePlan {
    fn of(
        spec: &ContainerSpec,
        container: ContainerStep,
        actions: Vec<Action>,
        record: DeliveryRecord,
        changed: Vec<(Delivery, Vec<u8>)>,
    ) -> ServicePlan {
        ServicePlan { service: spec.service, name: spec.alias.clone(), container, actions, record, changed }
    }

    /// The plan as `up` and `plan` report it.
    pub fn report(&self) -> serde_json::Value {
        serde_json::json!({
            "service": self.name, "change": self.change(), "disruption": self.disruption(),
            "container": self.container, "actions": self.actions,
        })
    }

    /// The most disruptive thing the plan does.
    pub fn disruption(&self) -> Disruption {
        match self.container {
            ContainerStep::Create | ContainerStep::Recreate { .. } => Disruption::Recreate,
            ContainerStep::Start => Disruption::Restart,
            ContainerStep::Keep => self.actions.iter().map(Action::disruption).max().unwrap_or(Disruption::Nothing),
        }
    }

    /// One word for what happened to the service: `created`, `recreated`, `started`,
    /// `restarted`, `updated`, `live`, `reloaded`, `delivered` or `unchanged`.
    pub fn change(&self) -> &'static str {
        match &self.container {
            ContainerStep::Create => "created",
            ContainerStep::Recreate { .. } => "recreated",
            ContainerStep::Start => "started",
            ContainerStep::Keep => match self.disruption() {
                Disruption::Restart => "restarted",
                Disruption::Update => "updated",
                Disruption::Live => "live",
                Disruption::Reload => "reloaded",
                _ if self.actions.is_empty() => "unchanged",
                _ => "delivered",
            },
        }
    }
}

/// The record of what was delivered into a service's volumes: source path to digest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub files: BTreeMap<String, String>,
}

/// Where the record itself goes: the container's config volume (a replica's is its own).
fn record_placement(spec: &ContainerSpec) -> Placement {
    let config = layout::config_dir(spec.service);
    let volume = spec.volumes.iter().find(|v| v.target == config).map(|v| v.key.clone());
    Placement {
        volume: volume.unwrap_or_else(|| layout::Volume::Config.key(spec.service)),
        path: layout::DELIVERY_RECORD.into(),
        uid: spec.service.uid(),
        mode: "0600".into(),
    }
}

/// The keys of the volumes a first delivery into `spec` writes to (its files, the directories
/// it makes, the record): the volumes its helper mounts.
pub fn delivery_volume_keys(spec: &ContainerSpec) -> std::collections::BTreeSet<String> {
    let files = spec.deliveries.iter().map(|d| d.volume.clone());
    let directories = spec.directories.iter().map(|d| d.volume.clone());
    files.chain(directories).chain([record_placement(spec).volume]).collect()
}

/// Reads the record from the service's container; `None` when there is none.
pub async fn read_record(engine: &Engine, spec: &ContainerSpec) -> anyhow::Result<Option<DeliveryRecord>> {
    let path = format!("{}/{}", layout::config_dir(spec.service), layout::DELIVERY_RECORD);
    match engine.read_file(&spec.name, &path).await? {
        Some(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        None => Ok(None),
    }
}

/// Delivers files into a service's volumes with their owner and mode, and records their
/// digests in the record (the other entries kept). `up`, and rotation when it hands a running
/// server a new file, deliver through here.
pub async fn deliver(
    engine: &Engine,
    stack: &str,
    spec: &ContainerSpec,
    files: Vec<(Delivery, Vec<u8>)>,
) -> anyhow::Result<()> {
    let helper = deliver_keeping_helper(engine, stack, spec, files, None).await?;
    engine.force_remove(&helper).await
}

/// [`deliver`], for a container that may not exist yet (`record` then starts from nothing),
/// returning the helper container for the caller to remove.
pub async fn deliver_keeping_helper(
    engine: &Engine,
    stack: &str,
    spec: &ContainerSpec,
    files: Vec<(Delivery, Vec<u8>)>,
    record: Option<DeliveryRecord>,
) -> anyhow::Result<String> {
    let record = match record {
        Some(record) => record,
        None => read_record(engine, spec).await?.unwrap_or_default(),
    };
    let archives = archives_recorded(spec, files, record)?;
    engine.deliver_keeping_helper(stack, spec, &archives).await
}

/// A first delivery into a container that does not exist yet, through a helper made
/// beforehand for its volumes (`up`'s early one, `Engine::create_deliverer`); the helper is
/// removed when the delivery fails, and left for the caller to remove otherwise.
pub async fn deliver_through(
    engine: &Engine,
    helper: &str,
    spec: &ContainerSpec,
    files: Vec<(Delivery, Vec<u8>)>,
) -> anyhow::Result<()> {
    let delivered = match first_archives(spec, files) {
        Ok(archives) => engine.upload(helper, &archives).await,
        Err(err) => Err(err),
    };
    if delivered.is_err() {
        let _ = engine.force_remove(helper).await;
    }
    delivered
}

/// What a first delivery of `files` puts into `spec`'s volumes: the files, the directories
/// the spec makes, and a fresh record of what was delivered. The same files and spec give the
/// same bytes (no time is in them).
pub fn first_archives(spec: &ContainerSpec, files: Vec<(Delivery, Vec<u8>)>) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    archives_recorded(spec, files, DeliveryRecord::default())
}

/// The archives of `files`, the directories the spec makes and `record` with the files'
/// digests added.
fn archives_recorded(
    spec: &ContainerSpec,
    files: Vec<(Delivery, Vec<u8>)>,
    mut record: DeliveryRecord,
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    for (delivery, content) in &files {
        record.files.insert(delivery.file.path(), digest(content));
    }
    let mut placed: Vec<(Placement, Vec<u8>)> =
        files.into_iter().map(|(d, content)| (d.placement(), content)).collect();
    let bytes = serde_json::to_vec_pretty(&record).expect("a record serializes");
    placed.push((record_placement(spec), bytes));
    deliver::archives_of_contents(&placed, &spec.directories)
}

/// What converging reads of the stack directory: each delivered file's content, as it is (for
/// `up`) or as `init` would write it (for `plan`).
pub type Contents<'a> = &'a (dyn Fn(&StackFile) -> anyhow::Result<Vec<u8>> + Sync);

/// The plan of one service. Reads the container and its volume; changes nothing.
pub async fn plan(
    engine: &Engine,
    profile: &Profile,
    spec: &ContainerSpec,
    contents: Contents<'_>,
    prune: bool,
) -> anyhow::Result<ServicePlan> {
    let empty = |container| {
        let (record, changed) = (DeliveryRecord::default(), Vec::new());
        Ok(ServicePlan::of(spec, container, Vec::new(), record, changed))
    };
    let Some(info) = engine.inspect(&spec.name).await? else {
        return empty(ContainerStep::Create);
    };
    let hash = deliver::config_hash(spec)?;
    let label = info.config.as_ref().and_then(|c| c.labels.as_ref()?.get(CONFIG_HASH_LABEL).cloned());
    if label.as_deref() != Some(hash.as_str()) {
        return empty(ContainerStep::Recreate { reason: spec_change(&info, spec) });
    }
    let record = read_record(engine, spec).await?.unwrap_or_default();
    let mut changed = Vec::new();
    for delivery in &spec.deliveries {
        let content = contents(&delivery.file)?;
        if record.files.get(&delivery.file.path()) != Some(&digest(&content)) {
            changed.push((delivery.clone(), content));
        }
    }
    let mut actions = Vec::new();
    if !changed.is_empty() {
        actions.push(Action::Deliver { files: changed.iter().map(|(d, _)| d.file.path()).collect() });
    }
    let limits = limit_changes(&info, spec);
    if !limits.is_empty() {
        actions.push(Action::UpdateLimits { changes: limits });
    }
    let running = info.state.as_ref().and_then(|s| s.running).unwrap_or(false);
    if !running {
        // It reads everything when it starts.
        let container = ContainerStep::Start;
        return Ok(ServicePlan::of(spec, container, actions, record, changed));
    }
    actions.extend(server_actions(engine, profile, spec, &changed).await?);
    if prune && spec.service == Service::Postgres {
        let users = postgres::removed_users(engine, profile, spec).await?;
        if !users.is_empty() {
            actions.push(Action::Prune { users });
        }
    }
    // A restart reads every file: what would have been reloaded or set comes with it.
    if actions.iter().any(|a| matches!(a, Action::Restart { .. })) {
        // (Not the init SQL: no start runs it on a data directory that is not empty.)
        actions.retain(|a| !matches!(a, Action::Reload { .. } | Action::ConfigSet { .. } | Action::AclLoad { .. }));
    }
    Ok(ServicePlan::of(spec, ContainerStep::Keep, actions, record, changed))
}

/// Why a container's spec differs, as far as the engine shows it.
fn spec_change(info: &ContainerInfo, spec: &ContainerSpec) -> String {
    let config = info.config.as_ref();
    let image = config.and_then(|c| c.image.clone()).unwrap_or_default();
    if image != spec.image {
        return format!("image {image} -> {}", spec.image);
    }
    if config.and_then(|c| c.labels.as_ref()?.get(CONFIG_HASH_LABEL)).is_none() {
        return "the container carries no config hash".into();
    }
    "its spec changed (command, environment, mounts, ports or posture)".into()
}

/// The limits that differ between the container and its spec.
fn limit_changes(info: &ContainerInfo, spec: &ContainerSpec) -> Vec<String> {
    let host = info.host_config.clone().unwrap_or_default();
    let mut changes = Vec::new();
    let memory = host.memory.unwrap_or(0);
    if memory != spec.memory_bytes as i64 {
        changes.push(format!("memory {} -> {} MiB", memory / 1_048_576, spec.memory_bytes / 1_048_576));
    }
    let cpus = host.nano_cpus.unwrap_or(0);
    if cpus != spec.nano_cpus as i64 {
        changes.push(format!("cpus {} -> {}", cpus as f64 / 1e9, spec.nano_cpus as f64 / 1e9));
    }
    let pids = host.pids_limit.unwrap_or(0);
    if pids != i64::from(spec.pids) {
        changes.push(format!("pids {pids} -> {}", spec.pids));
    }
    changes
}

/// What the changed files take on the running server, per service (`postgres`, `redis`;
/// Qdrant reads its files at start, and re-reads its certificate by itself within
/// `tls.cert_ttl`).
async fn server_actions(
    engine: &Engine,
    profile: &Profile,
    spec: &ContainerSpec,
    changed: &[(Delivery, Vec<u8>)],
) -> anyhow::Result<Vec<Action>> {
    let mut found = Found::default();
    for (delivery, content) in changed {
        let change = Change { engine, profile, spec, delivery, content };
        match spec.service {
            Service::Postgres => postgres::file_actions(&change, &mut found).await?,
            Service::Redis => redis::file_actions(&change, &mut found).await?,
            // A Sentinel rewrites its own file: a new one is read at start.
            Service::Qdrant | Service::Pgbouncer | Service::QdrantFront | Service::RedisSentinel => {
                match delivery.reach {
                    Reach::Restart => found.restart.push(format!("{} (read at start)", delivery.path)),
                    // PgBouncer reads its configuration and certificates again on SIGHUP; a changed
                    // TLS setting makes it reconnect to the server by itself.
                    Reach::Reload => found.reload.push(delivery.path.clone()),
                    Reach::Live | Reach::Nothing => {}
                }
            }
            // An exporter reads its web config and certificate afresh for each connection.
            Service::PostgresExporter | Service::RedisExporter | Service::PgbouncerExporter => match delivery.reach {
                Reach::Restart => found.restart.push(format!("{} (read at start)", delivery.path)),
                Reach::Reload | Reach::Live | Reach::Nothing => {}
            },
            // Prometheus reads its configuration, rules and client certificate again on SIGHUP.
            Service::Prometheus => match delivery.reach {
                Reach::Restart => found.restart.push(format!("{} (read at start)", delivery.path)),
                Reach::Reload => found.reload.push(delivery.path.clone()),
                Reach::Live | Reach::Nothing => {}
            },
        }
    }
    let Found { reload, restart, mut actions } = found;
    if !reload.is_empty() {
        actions.push(Action::Reload { what: reload });
    }
    // The init SQL after the reload: it connects to a new user's database, which the reloaded
    // pg_hba.conf lets the superuser reach.
    if let Some(at) = actions.iter().position(|a| matches!(a, Action::ApplySql { .. })) {
        let sql = actions.remove(at);
        actions.push(sql);
    }
    if !restart.is_empty() {
        actions.push(Action::Restart { why: restart });
    }
    Ok(actions)
}

/// One changed file of a service, with what it takes to judge it.
struct Change<'a> {
    engine: &'a Engine,
    profile: &'a Profile,
    spec: &'a ContainerSpec,
    delivery: &'a Delivery,
    /// The new content.
    content: &'a [u8],
}

/// What the changed files of a service take, as each service's module finds it.
#[derive(Default)]
struct Found {
    /// What a reload applies (PostgreSQL).
    reload: Vec<String>,
    /// Why a restart is needed.
    restart: Vec<String>,
    /// Live commands and SQL.
    actions: Vec<Action>,
}

/// Settings of a config file, last value of each key.
pub(super) fn settings(text: &[u8], parse: fn(&str) -> Vec<(usize, String, String)>) -> BTreeMap<String, String> {
    parse(&String::from_utf8_lossy(text)).into_iter().map(|(_, key, value)| (key, value)).collect()
}

/// The keys whose value differs between two versions of a config file (added and removed too).
pub(super) fn changed_settings(
    before: &[u8],
    after: &[u8],
    parse: fn(&str) -> Vec<(usize, String, String)>,
) -> Vec<String> {
    let (before, after) = (settings(before, parse), settings(after, parse));
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter().filter(|k| before.get(*k) != after.get(*k)).cloned().collect()
}

/// Carries a plan out on a service that exists (creation is `up`'s). Returns when the actions
/// are done, with the plan as carried out: a live command the server refuses (an ACL file that
/// locked admin out, a value `CONFIG SET` rejects) becomes a restart, which reads the delivered
/// files, and says why. The caller waits until the service is usable. `redis_admin` is the Redis
/// admin password, for the live commands.
pub async fn apply(
    engine: &Engine,
    profile: &Profile,
    dir: &StackDir,
    spec: &ContainerSpec,
    plan: &ServicePlan,
    redis_admin: Option<&Secret>,
) -> anyhow::Result<ServicePlan> {
    let mut done = plan.clone();
    let mut fallback = Vec::new();
    for action in &plan.actions {
        match action {
            // The files and the record the plan read: nothing is read twice.
            Action::Deliver { .. } => {
                let (files, record) = (plan.changed.clone(), Some(plan.record.clone()));
                let helper = deliver_keeping_helper(engine, &profile.stack.name, spec, files, record).await?;
                engine.force_remove(&helper).await?;
            }
            Action::UpdateLimits { .. } => {
                engine.update_limits(&spec.name, spec.memory_bytes, spec.nano_cpus, spec.pids).await?
            }
            Action::Reload { .. } if matches!(spec.service, Service::Pgbouncer | Service::Prometheus) => {
                engine.signal(&spec.name, "HUP").await?
            }
            // HAProxy's master starts a new worker on the new files; the old one finishes its
            // connections.
            Action::Reload { .. } if spec.service == Service::QdrantFront => engine.signal(&spec.name, "USR2").await?,
            Action::Reload { .. } => postgres::reload(engine, spec).await?,
            Action::ConfigSet { key, .. } => {
                if let Err(err) = redis::live(engine, (profile, dir), spec, redis_admin, action).await {
                    fallback.push(format!("CONFIG SET {key} failed ({err:#})"));
                }
            }
            Action::AclLoad { .. } => {
                if let Err(err) = redis::live(engine, (profile, dir), spec, redis_admin, action).await {
                    fallback.push(format!("ACL LOAD failed ({err:#})"));
                }
            }
            Action::ApplySql { file, .. } => {
                crate::superuser::run_file(engine, spec, file).await.context("applying the init SQL")?;
            }
            Action::Prune { users } => postgres::prune_users(engine, spec, users).await?,
            Action::Restart { .. } => {}
        }
    }
    if !fallback.is_empty() {
        done.actions.retain(|a| !matches!(a, Action::ConfigSet { .. } | Action::AclLoad { .. }));
        done.actions.push(Action::Restart { why: fallback });
    }
    if done.container == ContainerStep::Start {
        engine.start(&spec.name).await?;
    } else if done.actions.iter().any(|a| matches!(a, Action::Restart { .. })) {
        engine.restart(&spec.name).await?;
    }
    Ok(done)
}
