//! The files of the stack directory: [`StackFile`] names each, with its path, its mode and
//! the inverse of its path; the files of the Kubernetes target and of `init --systemd`.

use super::{Entry, KUBERNETES_DIR, Mode, SECRETS_DIR, TABLE, client_dir};
use crate::profile::Service;

/// Paths of the stack directory's files that have one fixed path, relative to its root.
pub mod paths {
    pub const PROFILE: &str = "hardstack.toml";
    pub const MANIFEST: &str = ".hardstack-manifest.json";
    pub const CA_CERT: &str = "ca/ca.crt";
    pub const CA_KEY: &str = "ca/ca.key";
    pub const POSTGRESQL_CONF: &str = "config/postgres/postgresql.conf";
    pub const PG_HBA: &str = "config/postgres/pg_hba.conf";
    pub const PG_IDENT: &str = "config/postgres/pg_ident.conf";
    pub const INIT_SQL: &str = "config/postgres/initdb/10-hardstack.sql";
    pub const SUPERUSER_PASSWORD: &str = "config/postgres/secrets/superuser.password";
    pub const HEALTH_PGPASS: &str = "config/postgres/secrets/health.pgpass";
    pub const REPLICATION_PGPASS: &str = "config/postgres/secrets/streaming_replica.pgpass";
    pub const REDIS_CONF: &str = "config/redis/redis.conf";
    pub const USERS_ACL: &str = "config/redis/users.acl";
    pub const REDIS_HEALTH_PASSWORD: &str = "config/redis/secrets/health.password";
    pub const REDIS_REPLICATION: &str = "config/redis/secrets/replication.conf";
    pub const SENTINEL_CONF: &str = "config/redis-sentinel/sentinel.conf";
    pub const SENTINEL_HEALTH_PASSWORD: &str = "config/redis-sentinel/secrets/health.password";
    pub const QDRANT_CONFIG: &str = "config/qdrant/config.yaml";
    pub const PGBOUNCER_INI: &str = "config/pgbouncer/pgbouncer.ini";
    pub const FRONT_CONFIG: &str = "config/qdrant-front/haproxy.cfg";
    pub const FRONT_USERS: &str = "config/qdrant-front/users.map";
    pub const FRONT_ROLES: &str = "config/qdrant-front/roles.map";
    pub const POSTGRES_EXPORTER_WEB: &str = "config/postgres-exporter/web.yml";
    pub const POSTGRES_EXPORTER_QUERIES: &str = "config/postgres-exporter/queries.yml";
    pub const POSTGRES_EXPORTER_PASSWORD: &str = "config/postgres-exporter/secrets/monitor.password";
    pub const REDIS_EXPORTER_PASSWORDS: &str = "config/redis-exporter/secrets/passwords.json";
    pub const PGBOUNCER_EXPORTER_WEB: &str = "config/pgbouncer-exporter/web.yml";
    pub const PGBOUNCER_EXPORTER_PGPASS: &str = "config/pgbouncer-exporter/secrets/monitor.pgpass";
    pub const PROMETHEUS_CONFIG: &str = "config/prometheus/prometheus.yml";
    pub const PROMETHEUS_RULES: &str = "config/prometheus/alerts.yml";
    pub const PROMETHEUS_WEB: &str = "config/prometheus/web.yml";
    pub const COMPOSE: &str = "docker-compose.yml";
    pub const CONNECTIONS: &str = "connections.json";
    /// The lock of mutating runs (`lock`), the identity (`identity`) and render inputs (`inputs`).
    pub const LOCK: &str = ".hardstack.lock";
    /// Held by the run that takes the lock next: waiters take turns (`lock`).
    pub const LOCK_QUEUE: &str = ".hardstack.lock.next";
    pub const IDENTITY: &str = "identity.json";
    pub const INPUTS: &str = "inputs.json";
    pub const TOPOLOGY: &str = "topology.json";
    /// The copy of the templates the stack was rendered with (`up --templates`).
    pub const TEMPLATES: &str = "templates";
}

/// A file of the stack directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackFile {
    /// `hardstack.toml`: the resolved profile, the stack's source of truth.
    Profile,
    /// `.hardstack-manifest.json`: the hash of every file hardstack wrote.
    Manifest,
    CaCert,
    /// SECURITY: signs every certificate of the stack; it never leaves the directory.
    CaKey,
    ServerCert(Service),
    ServerKey(Service),
    ClientCert(String),
    ClientKey(String),
    /// A secret of the file store, by name (`postgres/app`).
    Secret(String),
    PostgresConf,
    PgHba,
    PgIdent,
    /// The init SQL: roles (with SCRAM verifiers), databases and grants.
    InitSql,
    SuperuserPassword,
    /// The PostgreSQL healthcheck's password file.
    HealthPgpass,
    /// The replication login's pgpass file (`primary_conninfo`'s `passfile`), where the stack
    /// runs replicas.
    ReplicationPgpass,
    RedisConf,
    UsersAcl,
    /// The Redis healthcheck's password file.
    RedisHealthPassword,
    /// What a Redis replica logs in to its primary with (`masteruser`, `masterauth`), included
    /// by redis.conf where the stack runs replicas.
    RedisReplication,
    /// A Sentinel's configuration: what it watches, its logins to the nodes and to the other
    /// Sentinels (their passwords in clear, as Sentinel reads them), its own ACL users.
    SentinelConf,
    /// A Sentinel healthcheck's password file (Redis's health login's).
    SentinelHealthPassword,
    /// Qdrant's config; carries its API keys.
    QdrantConfig,
    /// PgBouncer's config; no secret (it looks verifiers up in PostgreSQL).
    PgbouncerIni,
    /// The Qdrant front's HAProxy configuration.
    FrontConfig,
    /// The front's key map: the SHA-256 of each valid application key (current, pending,
    /// previous) and the access it gives (`rw`, `ro`).
    FrontUsers,
    /// The front's role map: Qdrant's own key for each access; what no application holds.
    FrontRoles,
    /// postgres-exporter's web config (exporter-toolkit): TLS with client certificates.
    PostgresExporterWeb,
    /// postgres-exporter's own queries (`--extend.query-path`): the WAL archiver's counters.
    PostgresExporterQueries,
    /// postgres-exporter's password file (`DATA_SOURCE_PASS_FILE`): the monitor login's.
    PostgresExporterPassword,
    /// redis-exporter's password file (`--redis.password-file`): the monitor user's, by address.
    RedisExporterPasswords,
    /// pgbouncer-exporter's web config, as postgres-exporter's.
    PgbouncerExporterWeb,
    /// pgbouncer-exporter's pgpass file (`PGPASSFILE`): the monitor login's password.
    PgbouncerExporterPgpass,
    /// Prometheus's scrape configuration; carries Qdrant's read-only key where Qdrant runs.
    PrometheusConfig,
    /// The alert rules hardstack renders.
    PrometheusRules,
    /// Prometheus's web config (exporter-toolkit): TLS with client certificates.
    PrometheusWeb,
    Compose,
    Connections,
    /// The systemd units of `init --systemd`, by job and stack name.
    SystemdService(Job, String),
    SystemdTimer(Job, String),
    /// A file of the Kubernetes target (`init --target kubernetes`), by name.
    Kubernetes(KubeFile),
    /// The lock of mutating runs; holds who holds it.
    Lock,
    /// Held by the waiter next in turn for the lock, so a run that keeps coming back (a
    /// schedule of backups) cannot starve one that waits.
    LockQueue,
    /// The stack's identity (`identity`), and its render inputs (`inputs`).
    Identity,
    Inputs,
    /// Which PostgreSQL node is the primary once a switchover or failover moved it
    /// (`topology.json`).
    Topology,
    /// The recorded copy of a template the stack is rendered with, by template name.
    Template(String),
}

/// The files of the Kubernetes target's kustomize directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KubeFile {
    Kustomization,
    Namespace,
    NetworkPolicies,
    /// One service's resources.
    Service(Service),
    /// The resources of a node beyond a service's node 0: a PostgreSQL or Redis replica, a
    /// Sentinel, a Qdrant peer (`postgres-1.yaml`, `redis-2.yaml`, `redis-sentinel-1.yaml`,
    /// `qdrant-1.yaml`).
    Node(Service, u8),
    /// The Secrets: keys, passwords and the files that carry them. Private, and in the
    /// directory's .gitignore.
    Secrets,
    /// With the aws store: External Secrets Operator resources in place of values.
    ExternalSecrets,
    GitIgnore,
    /// yamllint's configuration for the directory.
    YamlLint,
}

impl KubeFile {
    /// The file's name in the directory.
    pub fn name(self) -> String {
        match self {
            KubeFile::Kustomization => "kustomization.yaml".into(),
            KubeFile::Namespace => "namespace.yaml".into(),
            KubeFile::NetworkPolicies => "network-policies.yaml".into(),
            KubeFile::Service(service) => format!("{service}.yaml"),
            KubeFile::Node(service, node) => format!("{service}-{node}.yaml"),
            KubeFile::Secrets => "secrets.yaml".into(),
            KubeFile::ExternalSecrets => "external-secrets.yaml".into(),
            KubeFile::GitIgnore => ".gitignore".into(),
            KubeFile::YamlLint => ".yamllint.yaml".into(),
        }
    }

    pub(super) fn all() -> impl Iterator<Item = KubeFile> {
        [KubeFile::Kustomization, KubeFile::Namespace, KubeFile::NetworkPolicies, KubeFile::Secrets]
            .into_iter()
            .chain([KubeFile::ExternalSecrets, KubeFile::GitIgnore, KubeFile::YamlLint])
            .chain(Service::ALL.into_iter().map(KubeFile::Service))
            .chain((1..=crate::profile::MAX_POSTGRES_REPLICAS).map(|node| KubeFile::Node(Service::Postgres, node)))
            .chain((1..=crate::profile::MAX_REDIS_REPLICAS).map(|node| KubeFile::Node(Service::Redis, node)))
            .chain((1..crate::profile::SENTINELS).map(|node| KubeFile::Node(Service::RedisSentinel, node)))
            .chain((1..crate::profile::MAX_QDRANT_NODES).map(|node| KubeFile::Node(Service::Qdrant, node)))
    }
}

/// What a systemd timer of `init --systemd` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Job {
    Rotate,
    Backup,
    RestoreTest,
}

impl Job {
    pub const ALL: [Job; 3] = [Job::Rotate, Job::Backup, Job::RestoreTest];

    /// The job's part of the unit name (`hardstack-<job>-<stack>.service`).
    pub fn name(self) -> &'static str {
        match self {
            Job::Rotate => "rotate",
            Job::Backup => "backup",
            Job::RestoreTest => "restore-test",
        }
    }

    /// The hardstack arguments the unit runs.
    pub fn arguments(self) -> &'static str {
        match self {
            Job::Rotate => "rotate",
            Job::Backup => "backup",
            Job::RestoreTest => "backup --test",
        }
    }
}

impl StackFile {
    /// The path relative to the stack directory.
    pub fn path(&self) -> String {
        if let Some(path) = self.fixed_path() {
            return path.into();
        }
        match self {
            StackFile::ServerCert(service) => format!("certs/{service}/server.crt"),
            StackFile::ServerKey(service) => format!("certs/{service}/server.key"),
            StackFile::ClientCert(login) => format!("{}/client.crt", client_dir(login)),
            StackFile::ClientKey(login) => format!("{}/client.key", client_dir(login)),
            StackFile::Secret(name) => format!("{SECRETS_DIR}/{name}.json"),
            StackFile::SystemdService(job, stack) => format!("systemd/hardstack-{}-{stack}.service", job.name()),
            StackFile::SystemdTimer(job, stack) => format!("systemd/hardstack-{}-{stack}.timer", job.name()),
            StackFile::Kubernetes(file) => format!("{KUBERNETES_DIR}/{}", file.name()),
            StackFile::Template(name) => format!("{}/{name}", paths::TEMPLATES),
            _ => unreachable!("{self:?} has a fixed path: it is missing from layout::TABLE"),
        }
    }

    /// The file's entry in the layout table; `None` for the files named by a service, a login,
    /// a secret or a stack.
    pub fn entry(&self) -> Option<&'static Entry> {
        TABLE.iter().find(|entry| entry.file == *self)
    }

    /// The path of a file that has one fixed path; `None` for the files named by a service, a
    /// login, a secret or a stack.
    pub fn fixed_path(&self) -> Option<&'static str> {
        self.entry().map(|entry| entry.path)
    }

    /// The file a path names, the inverse of [`StackFile::path`]; `None` for a path that is not
    /// hardstack's.
    pub fn parse(path: &str) -> Option<StackFile> {
        if let Some(entry) = TABLE.iter().find(|entry| entry.path == path) {
            return Some(entry.file.clone());
        }
        let parts: Vec<&str> = path.split('/').collect();
        match parts.as_slice() {
            ["certs", "clients", login, "client.crt"] => Some(StackFile::ClientCert((*login).to_owned())),
            ["certs", "clients", login, "client.key"] => Some(StackFile::ClientKey((*login).to_owned())),
            ["certs", service, file] => {
                let service = Service::ALL.into_iter().find(|s| s.name() == *service)?;
                match *file {
                    "server.crt" => Some(StackFile::ServerCert(service)),
                    "server.key" => Some(StackFile::ServerKey(service)),
                    _ => None,
                }
            }
            [SECRETS_DIR, ..] => {
                let name = path.strip_prefix(SECRETS_DIR)?.strip_prefix('/')?.strip_suffix(".json")?;
                Some(StackFile::Secret(name.to_owned()))
            }
            [paths::TEMPLATES, ..] => {
                let name = path.strip_prefix(paths::TEMPLATES)?.strip_prefix('/')?;
                name.ends_with(".tera").then(|| StackFile::Template(name.to_owned()))
            }
            [KUBERNETES_DIR, name] => KubeFile::all().find(|f| f.name() == *name).map(StackFile::Kubernetes),
            ["systemd", file] => {
                let job = Job::ALL.into_iter().find(|j| file.starts_with(&format!("hardstack-{}-", j.name())))?;
                let stem = file.strip_prefix(&format!("hardstack-{}-", job.name()))?;
                if let Some(stack) = stem.strip_suffix(".service") {
                    Some(StackFile::SystemdService(job, stack.to_owned()))
                } else {
                    stem.strip_suffix(".timer").map(|stack| StackFile::SystemdTimer(job, stack.to_owned()))
                }
            }
            _ => None,
        }
    }

    /// The mode the file must have.
    pub fn mode(&self) -> Mode {
        if let Some(entry) = self.entry() {
            return entry.mode;
        }
        match self {
            StackFile::ServerKey(_)
            | StackFile::ClientKey(_)
            | StackFile::Secret(_)
            | StackFile::Kubernetes(KubeFile::Secrets) => Mode::Private,
            StackFile::ServerCert(_)
            | StackFile::ClientCert(_)
            | StackFile::SystemdService(..)
            | StackFile::SystemdTimer(..)
            | StackFile::Kubernetes(_)
            | StackFile::Template(_) => Mode::Public,
            _ => unreachable!("{self:?} has a fixed path: it is missing from layout::TABLE"),
        }
    }
}
