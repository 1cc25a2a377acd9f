//! The profile model: what a stack is made of, as the user declares it.
//!
//! These serde types are a stability promise: a key renamed here breaks every user's profile.
//! Every struct denies unknown keys, so a typo is an error with its file and line, never a
//! silently ignored setting. This module parses and validates; it never touches the disk
//! except through `load` (reading the user's file) and never generates anything.

pub mod explain;
mod load;
mod pgbouncer;
pub mod schema;
mod service;
mod units;
mod validate;

pub use load::{ProfileSource, ResolvedProfile, apply_override, load};
pub use pgbouncer::{PgbouncerSettings, PoolMode, PrometheusSettings};
pub use service::{
    Images, MONITORING_LOCAL_IMAGE, PGBOUNCER_LOCAL_IMAGE, Ports, QDRANT_FRONT_LOCAL_IMAGE, Resources, Service,
};
pub use units::{ByteSize, Span};
pub use validate::{Invalid, validate};

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A fully resolved profile: the single source of truth for everything `init` generates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Profile name (`dev`, `test`, `prod` or the user's own).
    pub name: String,
    /// Stack identity: container, network and volume names and the label `down` filters by.
    pub stack: StackSettings,
    /// Image references, one per service.
    pub images: Images,
    /// Where and whether ports are published on the host.
    pub network: Network,
    /// Memory, CPUs and pids per service: the input of tuning and of container limits.
    pub resources: Resources,
    /// PostgreSQL settings beyond resources.
    pub postgres: PostgresSettings,
    /// Redis settings beyond resources.
    pub redis: RedisSettings,
    /// Qdrant settings beyond resources.
    pub qdrant: QdrantSettings,
    /// Certificate authority and certificate settings.
    pub tls: TlsSettings,
    /// Application users: one login per service for each.
    pub users: Vec<AppUser>,
    /// Where secrets live.
    pub secrets: SecretSettings,
    /// How often credentials are rotated.
    pub rotation: RotationPolicy,
    /// Backup sets, the WAL archive and the restore test.
    #[serde(default)]
    pub backup: BackupSettings,
    /// The Kubernetes manifests of `init --target kubernetes`.
    #[serde(default)]
    pub kubernetes: KubernetesSettings,
    /// The connection pooler, when `stack.services` lists `pgbouncer`.
    #[serde(default, skip_serializing_if = "PgbouncerSettings::is_default")]
    #[schemars(extend("default" = PgbouncerSettings::default()))]
    pub pgbouncer: PgbouncerSettings,
    /// Prometheus, when `stack.services` lists `prometheus`.
    #[serde(default, skip_serializing_if = "PrometheusSettings::is_default")]
    #[schemars(extend("default" = PrometheusSettings::default()))]
    pub prometheus: PrometheusSettings,
}

/// Stack identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StackSettings {
    /// Prefix of every container, network and volume name; the value of the `hardstack.stack` label.
    pub name: String,
    /// The services this stack runs.
    pub services: Vec<Service>,
}

/// Publishing of ports on the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Publish the services' ports on the host at all.
    pub publish: bool,
    /// Host address ports are bound to; `127.0.0.1` keeps them off the network.
    pub bind_address: std::net::IpAddr,
    /// Host port per service.
    pub ports: Ports,
}

/// Container limits; memory and CPUs are also the tuning input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Memory limit, for example `"1GiB"` or `"512MiB"`.
    pub memory: ByteSize,
    /// CPU limit (may be fractional).
    pub cpus: f64,
    /// Maximum number of processes.
    pub pids: u32,
}

/// pgtune's workload types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    Web,
    Oltp,
    Dw,
    Desktop,
    Mixed,
}

impl Workload {
    /// pgtune's `max_connections` for the workload, taken when the profile says 0.
    pub fn default_max_connections(self) -> u32 {
        match self {
            Workload::Web => 200,
            Workload::Oltp => 300,
            Workload::Dw => 40,
            Workload::Desktop => 20,
            Workload::Mixed => 100,
        }
    }
}

/// pgtune's storage types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    Ssd,
    Hdd,
    San,
    Nvme,
}

/// Where a service keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DataMode {
    /// A named volume that survives container recreation.
    Volume,
    /// Memory only: fast and gone with the container (test suites).
    Tmpfs,
}

/// TLS protocol floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
pub enum TlsVersion {
    #[serde(rename = "TLSv1.2")]
    V12,
    #[serde(rename = "TLSv1.3")]
    V13,
}

impl TlsVersion {
    /// The spelling PostgreSQL and Redis use.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::V12 => "TLSv1.2",
            TlsVersion::V13 => "TLSv1.3",
        }
    }
}

/// PostgreSQL settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    /// pgtune workload type.
    pub workload: Workload,
    /// pgtune storage type.
    pub storage: Storage,
    /// `max_connections`; 0 takes pgtune's value for the workload (size it for a pooler in front).
    pub max_connections: u32,
    /// Lowest TLS version the server accepts.
    pub tls_min_version: TlsVersion,
    /// `fsync` and `synchronous_commit`: only `test` turns them off.
    pub durable: bool,
    /// Data in a volume or in memory.
    pub data: DataMode,
    /// Statements slower than this are logged (`log_min_duration_statement`), in milliseconds.
    pub slow_statement_ms: u32,
    /// Connection limit of each application login role.
    pub connection_limit: u32,
    /// pgAudit (CIS 3.2): DDL and writes logged. The image must carry it (`up` checks its
    /// `hardstack.pgaudit` label); the local image does, the official one does not.
    #[serde(default)]
    pub pgaudit: bool,
    /// Streaming replicas of the primary (`postgres-1` ... `postgres-N`): each a copy made by a
    /// base backup over a physical replication slot, on volumes of its own, streaming over TLS
    /// as `streaming_replica` (client certificate and password), read-only.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub replicas: u8,
    /// Which node is the primary where a switchover or failover moved it (the stack
    /// directory's `topology.json`, never a profile key): `None` until the first one, when node
    /// 0 (`<stack>-postgres`) is the primary.
    #[serde(skip)]
    #[schemars(skip)]
    pub primary: Option<u8>,
}

/// The most `postgres.replicas` may be: beyond it, a cluster of its own, not a stack's read
/// copies.
pub const MAX_POSTGRES_REPLICAS: u8 = 5;

fn is_zero(n: &u8) -> bool {
    *n == 0
}

/// How Redis is used; decides the eviction policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RedisRole {
    /// Evict least recently used keys when full (`allkeys-lru`).
    Cache,
    /// Never evict; refuse writes when full (`noeviction`).
    Store,
}

impl PostgresSettings {
    /// The replicas' node numbers, 1 to `replicas`.
    pub fn replica_nodes(&self) -> impl Iterator<Item = u8> + use<> {
        1..=self.replicas
    }

    /// The primary's node: the recorded one, node 0 without a record.
    pub fn primary_node(&self) -> u8 {
        self.primary.unwrap_or(0)
    }

    /// The standbys' node numbers: every node (0 to `replicas`) but the primary.
    pub fn standby_nodes(&self) -> impl Iterator<Item = u8> + use<> {
        let primary = self.primary_node();
        (0..=self.replicas).filter(move |node| *node != primary)
    }

    /// `max_connections` as the server gets it: the profile's, or pgtune's for the workload
    /// when the profile says 0.
    pub fn effective_max_connections(&self) -> u32 {
        match self.max_connections {
            0 => self.workload.default_max_connections(),
            n => n,
        }
    }
}

/// Redis settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// Cache or store.
    pub role: RedisRole,
    /// `maxmemory`; must leave room below the container's memory limit.
    pub maxmemory: ByteSize,
    /// Lowest TLS version the server accepts.
    pub tls_min_version: TlsVersion,
    /// Append-only persistence.
    pub appendonly: bool,
    /// Data in a volume or in memory.
    pub data: DataMode,
    /// Replicas of the primary (`redis-1` ... `redis-N`), each replicating over TLS as the
    /// `replica` user with a client certificate, read-only; Sentinel promotes one when the
    /// primary is gone, so replicas need `redis.sentinels = 3`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub replicas: u8,
    /// Sentinels watching the nodes (`redis-sentinel`, `redis-sentinel-1`, ...): 0, or 3 with
    /// replicas. Over TLS, logging in to Redis as the `sentinel` user; applications ask them
    /// where the primary is as the `discovery` user (`REDIS_SENTINELS`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sentinels: u8,
    /// Which node is the primary as the stack directory last recorded it (`topology.json`,
    /// written by `up` from what the Sentinels say; never a profile key): `None` until the
    /// first failover, when node 0 (`<stack>-redis`) is the primary.
    #[serde(skip)]
    #[schemars(skip)]
    pub primary: Option<u8>,
}

/// The most `redis.replicas` may be.
pub const MAX_REDIS_REPLICAS: u8 = 5;
/// The Sentinels a stack with Redis replicas runs: a quorum of two survives one lost.
pub const SENTINELS: u8 = 3;

impl RedisSettings {
    /// Every Redis node: 0, then the replicas'.
    pub fn nodes(&self) -> impl Iterator<Item = u8> + use<> {
        0..=self.replicas
    }

    /// The primary's node: the recorded one, node 0 without a record.
    pub fn primary_node(&self) -> u8 {
        self.primary.unwrap_or(0)
    }

    /// The Sentinels' node numbers.
    pub fn sentinel_nodes(&self) -> impl Iterator<Item = u8> + use<> {
        0..self.sentinels
    }
}

/// Qdrant settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QdrantSettings {
    /// Serve the web UI at `/dashboard`.
    pub web_ui: bool,
    /// Data in a volume or in memory.
    pub data: DataMode,
    /// Seconds after which the REST server reloads its certificate from disk.
    pub cert_ttl_secs: u32,
    /// The lowest TLS version the Qdrant front (`qdrant-front`) accepts, on REST and gRPC.
    #[serde(default = "default_front_tls_min", skip_serializing_if = "is_default_front_tls_min")]
    #[schemars(extend("default" = default_front_tls_min()))]
    pub tls_min_version: TlsVersion,
    /// Qdrant's peers: 1, or a cluster in distributed mode (`qdrant`, `qdrant-1`, ...), the
    /// peers talking over mutual TLS and the API key (`enforce_internal_auth`), each
    /// collection's shards on two peers. A cluster needs `qdrant.data = "volume"`.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    #[schemars(extend("default" = 1))]
    pub nodes: u8,
}

/// The most `qdrant.nodes` may be.
pub const MAX_QDRANT_NODES: u8 = 7;

fn one() -> u8 {
    1
}

fn is_one(n: &u8) -> bool {
    *n == 1
}

impl QdrantSettings {
    /// Every peer's node number: 0, then the others'.
    pub fn node_numbers(&self) -> impl Iterator<Item = u8> + use<> {
        0..self.nodes.max(1)
    }

    /// How many peers hold each shard of a collection created without a factor of its own:
    /// two in a cluster, so a peer down loses nothing.
    pub fn replication_factor(&self) -> u8 {
        self.nodes.clamp(1, 2)
    }
}

fn default_front_tls_min() -> TlsVersion {
    TlsVersion::V12
}

fn is_default_front_tls_min(version: &TlsVersion) -> bool {
    *version == default_front_tls_min()
}

/// The key algorithm of every certificate of the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum KeyAlgorithm {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
}

/// Whether servers demand a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClientCerts {
    /// Client certificates are issued and accepted, passwords suffice.
    Optional,
    /// Every connection must present a certificate of the stack CA (mutual TLS).
    Required,
}

/// Certificate settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// Key algorithm of the CA and every certificate.
    pub key_algorithm: KeyAlgorithm,
    /// Lifetime of the CA.
    pub ca_lifetime: Span,
    /// Lifetime of server certificates.
    pub server_lifetime: Span,
    /// Lifetime of client certificates.
    pub client_lifetime: Span,
    /// Extra DNS names or IP addresses for every server certificate.
    pub extra_sans: Vec<String>,
    /// Whether servers demand client certificates.
    pub client_certs: ClientCerts,
}

/// Qdrant access of an application user; Qdrant has one read-write and one read-only key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum QdrantAccess {
    ReadWrite,
    ReadOnly,
    None,
}

/// An application user and its rights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppUser {
    /// Login name in PostgreSQL and Redis, and the CN of its client certificate.
    pub name: String,
    /// The PostgreSQL database it owns (only this one may be connected to).
    pub database: String,
    /// Redis key pattern it may touch (`app:*`).
    pub redis_keys: String,
    /// Which Qdrant key it gets.
    pub qdrant: QdrantAccess,
}

/// Which secret store holds the credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// The stack directory's `secrets/`.
    File,
    /// AWS Secrets Manager.
    Aws,
}

/// Secret store settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretSettings {
    /// `file` or `aws`.
    pub store: StoreKind,
    /// AWS settings, used when `store = "aws"`.
    pub aws: AwsSettings,
}

/// AWS Secrets Manager settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    /// Region.
    pub region: String,
    /// Endpoint override (a local emulator in tests); empty for AWS itself.
    pub endpoint: String,
    /// Prefix of every secret name.
    pub prefix: String,
}

/// Rotation policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotationPolicy {
    /// Whether `rotate` does anything.
    pub enabled: bool,
    /// Passwords older than this are rotated.
    pub password_max_age: Span,
    /// API keys older than this are rotated.
    pub api_key_max_age: Span,
    /// Certificates are re-issued when they expire within this span.
    pub cert_renew_before: Span,
    /// How long an old Redis password keeps working after a rotation.
    pub grace: Span,
    /// systemd `OnCalendar` expression for the timer `init --systemd` emits.
    pub schedule: String,
}

/// Backups (`hardstack backup`, `restore`, `backup --test`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BackupSettings {
    /// Where backup sets and the WAL archive go, on the engine's host; a relative path is
    /// under the stack directory.
    pub dir: String,
    /// Complete sets kept; older ones are removed once a new one is complete.
    pub keep: u32,
    /// `checklist.backups` passes only when a restore test of a set younger than this passed.
    pub max_age: Span,
    /// Whether the stack must be backed up: `checklist.backups` fails without a recent passed
    /// restore test (prod), rather than being not applicable (dev). The first `up` of a new
    /// stack (its data volumes made by that run) takes the first backup and its restore test.
    pub required: bool,
    /// Continuous WAL archiving into the backup directory, for `restore --to-time`.
    pub wal_archive: bool,
    /// systemd `OnCalendar` of the backup timer `init --systemd` writes.
    pub schedule: String,
    /// systemd `OnCalendar` of the restore-test timer.
    pub test_schedule: String,
}

impl Default for BackupSettings {
    fn default() -> Self {
        BackupSettings {
            dir: "backups".into(),
            keep: 7,
            max_age: Span(Duration::from_secs(8 * 86_400)),
            required: false,
            wal_archive: false,
            schedule: "daily".into(),
            test_schedule: "weekly".into(),
        }
    }
}

/// The Kubernetes target (`init --target kubernetes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct KubernetesSettings {
    /// The namespace of every resource; empty: the stack's name.
    pub namespace: String,
    /// The StorageClass of the volume claims; empty: the cluster's default.
    pub storage_class: String,
    /// Size of each service's data volume claim (PostgreSQL's WAL gets a quarter of its size).
    pub storage: VolumeSizes,
    /// Who may connect, besides pods of the stack's namespace labelled
    /// `hardstack.io/client: "true"`: pods of other namespaces (all of a namespace's pods when
    /// `pods` is empty).
    pub clients: Vec<KubernetesClient>,
}

impl Default for KubernetesSettings {
    fn default() -> Self {
        let gib = |n: u64| ByteSize(n << 30);
        KubernetesSettings {
            namespace: String::new(),
            storage_class: String::new(),
            storage: VolumeSizes { postgres: gib(10), redis: gib(2), qdrant: gib(10), prometheus: gib(10) },
            clients: Vec::new(),
        }
    }
}

/// A volume size per service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeSizes {
    /// PostgreSQL's data volume.
    pub postgres: ByteSize,
    /// Redis's data volume.
    pub redis: ByteSize,
    /// Qdrant's storage volume.
    pub qdrant: ByteSize,
    /// Prometheus's TSDB, where it runs.
    #[serde(default = "default_prometheus_storage", skip_serializing_if = "is_default_prometheus_storage")]
    #[schemars(extend("default" = default_prometheus_storage()))]
    pub prometheus: ByteSize,
}

fn default_prometheus_storage() -> ByteSize {
    ByteSize(10 << 30)
}

fn is_default_prometheus_storage(size: &ByteSize) -> bool {
    *size == default_prometheus_storage()
}

impl VolumeSizes {
    /// The size of one service's data volume.
    pub fn of(&self, service: Service) -> ByteSize {
        match service {
            Service::Postgres => self.postgres,
            Service::Redis => self.redis,
            Service::Qdrant => self.qdrant,
            Service::Prometheus => self.prometheus,
            Service::Pgbouncer
            | Service::PostgresExporter
            | Service::RedisExporter
            | Service::PgbouncerExporter
            | Service::QdrantFront
            | Service::RedisSentinel => ByteSize(0),
        }
    }
}

/// Clients of another namespace that may connect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubernetesClient {
    /// The namespace's name.
    pub namespace: String,
    /// Labels the client pods carry; empty: every pod of the namespace.
    #[serde(default)]
    pub pods: std::collections::BTreeMap<String, String>,
}

impl Profile {
    /// The application user `name`, or the first one; an unknown name is refused with the
    /// names the profile has.
    pub fn user(&self, name: Option<&str>) -> anyhow::Result<&AppUser> {
        use anyhow::Context as _;
        match name {
            Some(name) => self.users.iter().find(|u| u.name == name).with_context(|| {
                let names: Vec<_> = self.users.iter().map(|u| u.name.as_str()).collect();
                format!("no application user `{name}` in the profile; pick one of: {}", names.join(", "))
            }),
            None => self.users.first().context("the profile has no application user"),
        }
    }

    /// The namespace of the Kubernetes manifests.
    pub fn kubernetes_namespace(&self) -> &str {
        if self.kubernetes.namespace.is_empty() { &self.stack.name } else { &self.kubernetes.namespace }
    }

    /// Whether the profile runs a service.
    pub fn runs(&self, service: Service) -> bool {
        match service {
            Service::RedisSentinel => self.redis.sentinels > 0 && self.runs(Service::Redis),
            _ => self.stack.services.contains(&service),
        }
    }

    /// Whether servers demand client certificates.
    pub fn mutual_tls(&self) -> bool {
        self.tls.client_certs == ClientCerts::Required
    }

    /// Whether a service sits behind a front of its own (Qdrant behind `qdrant-front`): never
    /// published, reached by clients through the front.
    pub fn fronted(&self, service: Service) -> bool {
        service == Service::Qdrant && self.runs(Service::QdrantFront)
    }

    /// Whether a service demands a client certificate of the stack CA: every server where the
    /// profile requires them, and a fronted one always (it answers its front and hardstack).
    pub fn demands_client_cert(&self, service: Service) -> bool {
        self.mutual_tls() || self.fronted(service)
    }
}
