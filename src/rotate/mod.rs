//! Rotation: the four-step protocol AWS Secrets Manager uses (create a pending version, set it
//! on the server, test it, finish), once per credential, each step idempotent. A rotation
//! stopped after any step (killed, `--until`, SIGTERM) is completed by the next run, and at no
//! moment does the stack lack a working current credential:
//!
//! - PostgreSQL application users alternate between two logins under their NOLOGIN owner role:
//!   the pending password is set on the login that is not current, so the current one keeps
//!   working, and the previous one keeps working until the next rotation.
//! - Redis users get a second password (`ACL SETUSER u #new`, `ACL SAVE`); the old one is
//!   removed once the profile's grace period has passed since the rotation.
//! - Qdrant's read-write key: the pending key is configured as `alt_api_key` (Qdrant 1.17+) next
//!   to the current one, and the server restarted (Qdrant reads its keys at start): one short
//!   window per rotation. Finishing needs no restart: the config then names the previous key and
//!   the current one, the same two, and the previous key is accepted until the next rotation.
//! - Server certificates are re-issued from the same CA, copied into the container's volume and
//!   hot-reloaded (`pg_reload_conf()`, `CONFIG SET tls-cert-file`); open connections keep their
//!   TLS session.

mod certs;
mod front;
mod monitor;
mod postgres;
mod qdrant;
mod redis;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;

use crate::layout::{self, StackFile};
use crate::profile::{Profile, Service};
use crate::runtime::Engine;
use crate::secrets::store::{SecretStore as _, SecretVersion, Stage, Store};
use crate::stackdir::StackDir;

/// A step of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// A new version, labelled pending, is in the store.
    Create,
    /// The server accepts the pending version.
    Set,
    /// A login with the pending version worked.
    Test,
    /// The pending version is current; the old one is previous.
    Finish,
}

/// Something rotation renews.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A PostgreSQL application user (alternating logins).
    PostgresUser { user: String, database: String },
    /// PostgreSQL's admin login (one role: a short window for admin connections only).
    PostgresAdmin,
    /// PostgreSQL's health login, used by the container's healthcheck through a delivered file.
    PostgresHealth,
    /// PostgreSQL's backup login (one replication-only role: a backup that meets the short
    /// window between set and finish retries with the pending password).
    PostgresBackup,
    /// PostgreSQL's monitor login (one `pg_monitor` role), which postgres-exporter reads from a
    /// delivered file at start: set, then the exporter restarts with the new password.
    PostgresMonitor,
    /// PostgreSQL's replication login (`streaming_replica`, one role), which the replicas read
    /// from a delivered pgpass file at each connection to the primary.
    PostgresReplication,
    /// A Redis user (dual passwords).
    RedisUser { user: String },
    /// A service's server certificate.
    Certificate { service: Service },
    /// Qdrant's read-write API key (`alt_api_key`).
    QdrantApiKey,
    /// An application user's own key at the Qdrant front (the front's key map, changed in
    /// place).
    FrontKey { user: String },
}

impl Credential {
    /// Stable name: the secret's name, or `certificate/<service>`.
    pub fn name(&self) -> String {
        match self {
            Credential::PostgresUser { user, .. } => layout::login_secret(Service::Postgres, user),
            Credential::PostgresAdmin => layout::login_secret(Service::Postgres, layout::ADMIN),
            Credential::PostgresHealth => layout::login_secret(Service::Postgres, layout::HEALTH),
            Credential::PostgresBackup => layout::login_secret(Service::Postgres, layout::BACKUP),
            Credential::PostgresMonitor => layout::login_secret(Service::Postgres, layout::MONITOR),
            Credential::PostgresReplication => layout::login_secret(Service::Postgres, layout::REPLICATION),
            Credential::RedisUser { user } => layout::redis_login_secret(user),
            Credential::Certificate { service } => format!("certificate/{service}"),
            Credential::QdrantApiKey => layout::QDRANT_API_KEY.into(),
            Credential::FrontKey { user } => layout::login_secret(Service::QdrantFront, user),
        }
    }
}

/// Every credential rotation manages for a profile.
pub fn credentials(profile: &Profile) -> Vec<Credential> {
    let mut all = Vec::new();
    if profile.runs(Service::Postgres) {
        all.extend(
            profile
                .users
                .iter()
                .map(|u| Credential::PostgresUser { user: u.name.clone(), database: u.database.clone() }),
        );
        all.push(Credential::PostgresAdmin);
        all.push(Credential::PostgresHealth);
        all.push(Credential::PostgresBackup);
        if layout::service_logins(profile, Service::Postgres).contains(&layout::MONITOR) {
            all.push(Credential::PostgresMonitor);
        }
        if profile.postgres.replicas > 0 {
            all.push(Credential::PostgresReplication);
        }
    }
    if profile.runs(Service::Redis) {
        all.extend(profile.users.iter().map(|u| Credential::RedisUser { user: u.name.clone() }));
        all.extend(
            layout::service_logins(profile, Service::Redis)
                .into_iter()
                .map(|login| Credential::RedisUser { user: login.into() }),
        );
        // Where replicas run: their login to the primary, the Sentinels' and the applications'
        // login to the Sentinels.
        if profile.redis.replicas > 0 {
            all.extend(
                [layout::REDIS_REPLICA, layout::SENTINEL, layout::DISCOVERY]
                    .map(|login| Credential::RedisUser { user: login.into() }),
            );
        }
    }
    if profile.runs(Service::Qdrant) {
        all.push(Credential::QdrantApiKey);
    }
    if profile.runs(Service::QdrantFront) {
        all.extend(layout::front_key_users(profile).map(|u| Credential::FrontKey { user: u.name.clone() }));
    }
    for service in Service::ALL {
        if profile.runs(service) {
            all.push(Credential::Certificate { service });
        }
    }
    all
}

/// What rotation works with.
pub struct Context<'a> {
    pub profile: &'a Profile,
    pub dir: &'a StackDir,
    pub store: &'a Store,
    pub engine: &'a Engine,
    /// Set by SIGTERM: finish the current step, then stop.
    pub stop: &'a AtomicBool,
}

impl Context<'_> {
    /// Where rotation reaches a monitoring service from the host: its address on the stack
    /// network (a local engine routes its bridge), verified against its alias, presenting the
    /// admin's client certificate.
    pub async fn monitoring_target(&self, service: Service) -> anyhow::Result<crate::probe::scrape::MetricsTarget> {
        let name = crate::containers::container_name(self.profile, service);
        let network = crate::containers::stack_names(self.profile).network;
        let address = self.engine.address_on(&name, &network).await?;
        Ok(crate::probe::scrape::MetricsTarget {
            address: std::net::SocketAddr::new(address, service.container_port()),
            name: service.name().to_owned(),
            tls: crate::probe::client_tls(self.dir, layout::ADMIN, true)?,
        })
    }

    /// Hands a running container new content for one of the files it is delivered, with that
    /// delivery's owner and mode; nothing is written on the host.
    pub async fn deliver_content(&self, service: Service, file: &StackFile, content: &[u8]) -> anyhow::Result<()> {
        let mut delivered = false;
        for spec in receivers(self.engine, self.profile, service).await? {
            // The replicas' own files (their login's pgpass) are not the primary's.
            let Some(delivery) = spec.deliveries.iter().find(|d| d.file == *file) else { continue };
            let files = vec![(delivery.clone(), content.to_vec())];
            crate::converge::deliver(self.engine, &self.profile.stack.name, &spec, files).await?;
            delivered = true;
        }
        anyhow::ensure!(
            delivered || file == &StackFile::ReplicationPgpass,
            "no container of {service} receives {}",
            file.path()
        );
        Ok(())
    }
}

/// The containers that receive a service's files: its own, and each other node of it whose
/// container exists (PostgreSQL's and Redis's replicas, the Sentinels, Qdrant's peers; a node
/// made later gets the current files then).
pub async fn receivers(
    engine: &Engine,
    profile: &Profile,
    service: Service,
) -> anyhow::Result<Vec<crate::containers::ContainerSpec>> {
    let mut specs = vec![match service {
        Service::Postgres => crate::replica::primary_spec(profile),
        _ => crate::containers::container_spec(profile, service),
    }];
    // Redis's replicas, the Sentinels beyond the first, Qdrant's peers.
    let nodes = crate::sentinel::specs(profile).into_iter().chain(crate::peers::specs(profile));
    let nodes = nodes.filter(|spec| spec.service == service);
    specs.extend(created(engine, nodes).await?);
    if service == Service::Postgres {
        specs.extend(created(engine, crate::replica::specs(profile)).await?);
    }
    Ok(specs)
}

/// The specs whose containers exist.
async fn created(
    engine: &Engine,
    specs: impl IntoIterator<Item = crate::containers::ContainerSpec>,
) -> anyhow::Result<Vec<crate::containers::ContainerSpec>> {
    let mut existing = Vec::new();
    for spec in specs {
        if engine.inspect(&spec.name).await?.is_some() {
            existing.push(spec);
        }
    }
    Ok(existing)
}

/// How a credential's rotation ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Outcome {
    /// Not due: younger than its maximum age and no rotation in progress.
    NotDue { age_days: u64 },
    /// All four steps done.
    Rotated { millis: u128 },
    /// Stopped after this step (`--until`, or SIGTERM); the next run resumes.
    Stopped { after: Step },
}

/// Whether a rotation of the credential is in progress: a pending version in the store (or a
/// certificate's pending pair in the stack directory) that no run has finished yet.
pub async fn in_progress(context: &Context<'_>, credential: &Credential) -> anyhow::Result<bool> {
    Ok(match credential {
        Credential::Certificate { service } => certs::pending(context, *service),
        _ => context.store.get(&credential.name(), Stage::Pending).await?.is_some(),
    })
}

/// Whether a credential is due: a rotation in progress always is; otherwise its age.
pub async fn due(context: &Context<'_>, credential: &Credential, force: bool) -> anyhow::Result<Option<u64>> {
    let age = match credential {
        Credential::Certificate { service } => return certs::due(context, *service, force),
        _ => {
            let name = credential.name();
            if context.store.get(&name, Stage::Pending).await?.is_some() {
                return Ok(None);
            }
            let current = context.store.current(&name).await?;
            SystemTime::now().duration_since(current.created).unwrap_or_default()
        }
    };
    let max = match credential {
        Credential::QdrantApiKey | Credential::FrontKey { .. } => context.profile.rotation.api_key_max_age.0,
        _ => context.profile.rotation.password_max_age.0,
    };
    Ok(if force || age >= max { None } else { Some(age.as_secs() / 86_400) })
}

/// Runs the protocol for one credential, up to `until` (all four steps by default).
pub async fn rotate(context: &Context<'_>, credential: &Credential, until: Option<Step>) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let last = until.unwrap_or(Step::Finish);
    let steps = [Step::Create, Step::Set, Step::Test, Step::Finish];
    let mut state = State::default();
    for step in steps {
        run_step(context, credential, step, &mut state).await?;
        if step == last && step != Step::Finish {
            return Ok(Outcome::Stopped { after: step });
        }
        if step != Step::Finish && context.stop.load(Ordering::SeqCst) {
            return Ok(Outcome::Stopped { after: step });
        }
    }
    Ok(Outcome::Rotated { millis: started.elapsed().as_millis() })
}

/// What the steps of one rotation pass to each other.
#[derive(Default)]
struct State {
    current: Option<SecretVersion>,
    pending: Option<SecretVersion>,
}

async fn run_step(context: &Context<'_>, credential: &Credential, step: Step, state: &mut State) -> anyhow::Result<()> {
    if let Credential::Certificate { service } = credential {
        return certs::step(context, *service, step).await;
    }
    let name = credential.name();
    if state.current.is_none() {
        state.current = Some(context.store.current(&name).await?);
    }
    let current = state.current.clone().expect("set just above");
    if step == Step::Create {
        let pending = match context.store.get(&name, Stage::Pending).await? {
            Some(pending) => pending,
            None => {
                let pending = new_version(credential, &current);
                context.store.put_pending(&name, &pending).await?;
                pending
            }
        };
        state.pending = Some(pending);
        return Ok(());
    }
    let pending = state.pending.clone().expect("create ran first");
    if pending.id == current.id {
        // An earlier run finished in the store but stopped before dropping the pending label.
        return if step == Step::Finish { context.store.finish(&name, &pending.id).await } else { Ok(()) };
    }
    match (credential, step) {
        (Credential::PostgresUser { database, .. }, Step::Set) => postgres::set(context, &pending, database).await,
        (Credential::PostgresUser { database, .. }, Step::Test) => postgres::test(context, &pending, database).await,
        (Credential::PostgresAdmin, Step::Set) => postgres::set_admin(context, &current, &pending).await,
        (Credential::PostgresAdmin, Step::Test) => postgres::test(context, &pending, "postgres").await,
        (Credential::PostgresHealth, Step::Set) => postgres::set_health(context, &pending).await,
        (Credential::PostgresHealth, Step::Test) => postgres::test_health(context, &pending).await,
        (Credential::PostgresBackup, Step::Set) => postgres::set_backup(context, &pending).await,
        (Credential::PostgresBackup, Step::Test) => {
            let backup = crate::backup::Context {
                profile: context.profile,
                dir: context.dir,
                store: context.store,
                engine: context.engine,
            };
            crate::backup::postgres::check_login(&backup, &pending.value).await
        }
        (Credential::PostgresMonitor, Step::Set) => {
            postgres::set_monitor(context, &pending).await?;
            monitor::deliver(context, Service::PostgresExporter, &pending).await?;
            monitor::deliver(context, Service::PgbouncerExporter, &pending).await
        }
        (Credential::PostgresMonitor, Step::Test) => monitor::test_postgres(context, &pending).await,
        (Credential::PostgresReplication, Step::Set) => postgres::set_replication(context, &pending).await,
        (Credential::PostgresReplication, Step::Test) => postgres::test_replication(context, &pending).await,
        (Credential::RedisUser { user }, Step::Set) => {
            // A user has the current password and the previous one, no more (users.acl says
            // so): the one before the previous leaves the store with this rotation, and the
            // server now, even when its grace period has not passed.
            if let Some(previous) = context.store.get(&name, Stage::Previous).await? {
                redis::remove_password(context, user, &previous, &current).await?;
            }
            redis::set(context, user, &current, &pending).await?;
            if user == layout::HEALTH {
                // The healthcheck reads its password from a file in the container's volume.
                redis::deliver_health_password(context, &pending).await?;
            }
            if user == layout::MONITOR {
                monitor::deliver(context, Service::RedisExporter, &pending).await?;
            }
            Ok(())
        }
        (Credential::RedisUser { user }, Step::Test) => {
            redis::test(context, user, &pending).await?;
            if user == layout::MONITOR {
                monitor::exporter_up(context, Service::RedisExporter).await?;
            }
            Ok(())
        }
        (Credential::QdrantApiKey, Step::Set) => qdrant::reconfigure(context, &current.value).await,
        (Credential::QdrantApiKey, Step::Test) => qdrant::test(context, &pending.value).await,
        // Qdrant already accepts both keys, and keeps doing so until the next rotation: the
        // config rendered after the finish names the same two (previous, current).
        // A cluster's peers send each other their configured key: each restarts with the
        // rendered config, so all send the current key, which the next rotation's config still
        // accepts (as its key) on the peers it restarts first.
        (Credential::QdrantApiKey, Step::Finish) => {
            context.store.finish(&name, &pending.id).await?;
            if crate::peers::is_cluster(context.profile) {
                qdrant::reconfigure(context, &pending.value).await?;
            }
            // The front sends Qdrant's current key, which Qdrant accepts beside the previous.
            if context.profile.runs(Service::QdrantFront) {
                front::apply(context, StackFile::FrontRoles).await?;
            }
            Ok(())
        }
        // The map gets the pending key beside the current and previous ones, in place.
        (Credential::FrontKey { .. }, Step::Set) => front::apply(context, StackFile::FrontUsers).await.map(|_| ()),
        (Credential::FrontKey { user }, Step::Test) => front::test(context, user, &pending.value).await,
        (_, Step::Finish) => context.store.finish(&name, &pending.id).await,
        _ => Ok(()),
    }
}

/// A new version for a credential: a fresh value, its verifier where PostgreSQL needs one, and
/// for an alternating PostgreSQL user, the login that is not current.
fn new_version(credential: &Credential, current: &SecretVersion) -> SecretVersion {
    let value = crate::secrets::generate(&mut rand::rngs::OsRng);
    let (username, verifier) = match credential {
        Credential::PostgresUser { user, .. } => {
            let alternate = layout::alternate_login(user);
            let login = if current.username.as_deref() == Some(alternate.as_str()) { user.clone() } else { alternate };
            (Some(login), Some(crate::secrets::Secret::new(crate::secrets::scram_verifier(&value))))
        }
        Credential::PostgresAdmin
        | Credential::PostgresHealth
        | Credential::PostgresBackup
        | Credential::PostgresMonitor
        | Credential::PostgresReplication => {
            (None, Some(crate::secrets::Secret::new(crate::secrets::scram_verifier(&value))))
        }
        _ => (None, None),
    };
    let id: [u8; 16] = rand::random();
    SecretVersion {
        id: hex::encode(id),
        value,
        username,
        verifier,
        created: SystemTime::now(),
        stages: vec![Stage::Pending],
    }
}

/// Removes the previous Redis passwords and front keys whose grace period has passed.
/// Idempotent.
pub async fn expire_previous(context: &Context<'_>) -> anyhow::Result<Vec<String>> {
    let mut expired = Vec::new();
    for credential in credentials(context.profile) {
        if let Credential::RedisUser { user } = &credential {
            let name = credential.name();
            let (Some(previous), current) =
                (context.store.get(&name, Stage::Previous).await?, context.store.current(&name).await?)
            else {
                continue;
            };
            let since = SystemTime::now().duration_since(current.created).unwrap_or_default();
            if since >= context.profile.rotation.grace.0
                && redis::remove_password(context, user, &previous, &current).await?
            {
                expired.push(name);
            }
        }
    }
    expired.extend(front::expire(context).await?);
    Ok(expired)
}

/// The files whose content follows the secrets: rotation changes what they say on the
/// running server by commands, and records them as delivered once it re-rendered them.
const SECRET_FILES: [StackFile; 9] = [
    StackFile::UsersAcl,
    StackFile::RedisReplication,
    StackFile::SentinelConf,
    StackFile::SentinelHealthPassword,
    StackFile::InitSql,
    StackFile::HealthPgpass,
    StackFile::RedisHealthPassword,
    StackFile::FrontUsers,
    StackFile::FrontRoles,
];

/// After a rotation re-rendered the stack directory: delivers each file that follows the
/// secrets and changed only because of the rotation (rendered with the versions of `before`,
/// it is what the server was last given), and records it. The server already says what the
/// file says, by the rotation's commands. A file that changed for another reason too (a user
/// added to the profile) is left for `up`, which applies it.
pub async fn deliver_rotated_files(
    engine: &Engine,
    profile: &Profile,
    dir: &StackDir,
    before: &crate::secrets::store::Versions,
) -> anyhow::Result<()> {
    let tera = crate::inputs::resolve(dir, None, None)?.tera;
    let previous = crate::bundle::plan(dir, profile, &tera, before, &mut rand::rngs::OsRng)?.files;
    let mut specs = crate::containers::running_specs(profile);
    specs.extend(created(engine, crate::sentinel::specs(profile)).await?);
    if profile.runs(Service::Postgres) {
        specs.extend(
            receivers(engine, profile, Service::Postgres)
                .await?
                .into_iter()
                .filter(|s| crate::replica::is_standby(profile, s)),
        );
    }
    for spec in specs {
        let Some(record) = crate::converge::read_record(engine, &spec).await? else { continue };
        let mut files = Vec::new();
        for delivery in &spec.deliveries {
            if !SECRET_FILES.contains(&delivery.file) {
                continue;
            }
            let source = delivery.file.path();
            let content = std::fs::read(dir.file(&delivery.file)).with_context(|| format!("reading {source}"))?;
            let recorded = record.files.get(&source);
            let before = previous.iter().find(|f| f.path == source).map(|f| crate::stackdir::digest(&f.content));
            if recorded != Some(&crate::stackdir::digest(&content)) && recorded == before.as_ref() {
                files.push((delivery.clone(), content));
            }
        }
        if !files.is_empty() {
            crate::converge::deliver(engine, &profile.stack.name, &spec, files).await?;
        }
    }
    deliver_rules(engine, profile, dir).await
}

/// Prometheus's rules carry each server certificate's expiry: after a certificate's renewal,
/// the re-rendered rules are delivered and read again (SIGHUP), so the renewal alert follows.
async fn deliver_rules(engine: &Engine, profile: &Profile, dir: &StackDir) -> anyhow::Result<()> {
    if !profile.runs(Service::Prometheus) {
        return Ok(());
    }
    let spec = crate::containers::container_spec(profile, Service::Prometheus);
    let Some(record) = crate::converge::read_record(engine, &spec).await? else { return Ok(()) };
    let Some(delivery) = spec.deliveries.iter().find(|d| d.file == StackFile::PrometheusRules) else {
        return Ok(());
    };
    let source = delivery.file.path();
    let content = std::fs::read(dir.file(&delivery.file)).with_context(|| format!("reading {source}"))?;
    if record.files.get(&source) == Some(&crate::stackdir::digest(&content)) {
        return Ok(());
    }
    crate::converge::deliver(engine, &profile.stack.name, &spec, vec![(delivery.clone(), content)]).await?;
    if engine.running(&spec.name).await? {
        engine.signal(&spec.name, "HUP").await?;
    }
    Ok(())
}

/// How long to wait between scheduled passes when `--every` is not given.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(3600);
