//! The services hardstack knows, and the per-service parts of the profile: images, host
//! ports and limits. A service added later has serde defaults, so profiles written before it
//! still load and round-trip unchanged.

use serde::{Deserialize, Serialize};

use super::{ByteSize, Limits};

/// The services hardstack knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Postgres,
    Redis,
    Qdrant,
    /// The connection pooler in front of PostgreSQL.
    Pgbouncer,
    /// Prometheus's exporter of PostgreSQL's statistics, logging in as `monitor`.
    #[serde(rename = "postgres-exporter")]
    PostgresExporter,
    /// Prometheus's exporter of Redis's INFO, logging in as `monitor`.
    #[serde(rename = "redis-exporter")]
    RedisExporter,
    /// Prometheus's exporter of PgBouncer's pools and stats (its admin console), logging in
    /// as `monitor`.
    #[serde(rename = "pgbouncer-exporter")]
    PgbouncerExporter,
    /// Scrapes the exporters (and Qdrant) and evaluates the alert rules hardstack renders.
    Prometheus,
    /// HAProxy in front of Qdrant: TLS for REST and gRPC, each application user's own key,
    /// Qdrant's keys towards Qdrant, which then listens on the stack network only.
    #[serde(rename = "qdrant-front")]
    QdrantFront,
    /// Redis Sentinel (`redis.sentinels`): watches Redis's nodes and promotes a replica when
    /// the primary is gone; applications ask it where the primary is. Run by `redis.sentinels`,
    /// never listed in `stack.services`.
    #[serde(rename = "redis-sentinel")]
    RedisSentinel,
}

impl Service {
    /// Every service, in start-up and reporting order.
    pub const ALL: [Service; 10] = [
        Service::Postgres,
        Service::Redis,
        Service::RedisSentinel,
        Service::Qdrant,
        Service::QdrantFront,
        Service::Pgbouncer,
        Service::PostgresExporter,
        Service::RedisExporter,
        Service::PgbouncerExporter,
        Service::Prometheus,
    ];

    /// The service's name in files, containers and messages.
    pub fn name(self) -> &'static str {
        match self {
            Service::Postgres => "postgres",
            Service::Redis => "redis",
            Service::Qdrant => "qdrant",
            Service::Pgbouncer => "pgbouncer",
            Service::PostgresExporter => "postgres-exporter",
            Service::RedisExporter => "redis-exporter",
            Service::PgbouncerExporter => "pgbouncer-exporter",
            Service::Prometheus => "prometheus",
            Service::QdrantFront => "qdrant-front",
            Service::RedisSentinel => "redis-sentinel",
        }
    }

    /// The port the server listens on inside the container.
    pub fn container_port(self) -> u16 {
        match self {
            Service::Postgres => 5432,
            Service::Redis => 6379,
            Service::Qdrant => 6333,
            Service::Pgbouncer => 6432,
            Service::PostgresExporter => 9187,
            Service::RedisExporter => 9121,
            Service::PgbouncerExporter => 9127,
            Service::Prometheus => 9090,
            Service::QdrantFront => 6333,
            Service::RedisSentinel => 26379,
        }
    }

    /// The server whose login an exporter logs in with (`monitor`): PgBouncer's exporter reads
    /// its admin console with PostgreSQL's login, which PgBouncer looks up there.
    pub fn login_of(self) -> Option<Service> {
        match self {
            Service::PostgresExporter | Service::PgbouncerExporter => Some(Service::Postgres),
            Service::RedisExporter => Some(Service::Redis),
            _ => None,
        }
    }

    /// Whether the service is an exporter: never published, only for scrapes on the stack
    /// network.
    pub fn is_exporter(self) -> bool {
        matches!(self, Service::PostgresExporter | Service::RedisExporter | Service::PgbouncerExporter)
    }

    /// The services this one connects to: its server (the pooler's and an exporter's), what
    /// Prometheus scrapes. The Kubernetes target's NetworkPolicies allow exactly these.
    pub fn upstreams(self) -> &'static [Service] {
        match self {
            Service::Pgbouncer | Service::PostgresExporter => &[Service::Postgres],
            Service::RedisExporter => &[Service::Redis],
            Service::PgbouncerExporter => &[Service::Pgbouncer],
            Service::QdrantFront => &[Service::Qdrant],
            Service::RedisSentinel => &[Service::Redis],
            Service::Prometheus => &[
                Service::PostgresExporter,
                Service::RedisExporter,
                Service::PgbouncerExporter,
                Service::Qdrant,
                Service::Prometheus,
            ],
            Service::Postgres | Service::Redis | Service::Qdrant => &[],
        }
    }

    /// Whether the service is part of monitoring: an HTTPS server that answers only a client
    /// presenting a certificate of the stack CA, and reads its certificate for each connection.
    pub fn is_monitoring(self) -> bool {
        self.is_exporter() || self == Service::Prometheus
    }

    /// The uid (and gid) the server runs as in its image: 999 in the official postgres and redis
    /// images (docker-library/postgres 17/bookworm, redis/docker-library-redis debian/), 1000 in
    /// `qdrant/qdrant:<version>-unprivileged` (built with `USER_ID=1000`, qdrant's
    /// .github/workflows/docker-image.yml). PgBouncer runs as 999 too, set by hardstack, so one
    /// uid owns PostgreSQL's and PgBouncer's keys alike. The exporters run as nobody (65534),
    /// as the upstream postgres-exporter image does.
    pub fn uid(self) -> u32 {
        match self {
            Service::Postgres | Service::Redis | Service::Pgbouncer | Service::RedisSentinel => 999,
            Service::Qdrant => 1000,
            // The official haproxy image's `haproxy` user.
            Service::QdrantFront => 99,
            Service::PostgresExporter | Service::RedisExporter | Service::PgbouncerExporter | Service::Prometheus => {
                65534
            }
        }
    }
}

impl Service {
    /// Whether the service keeps data of its own (backed up, restored, on a data volume).
    pub fn holds_data(self) -> bool {
        matches!(self, Service::Postgres | Service::Redis | Service::Qdrant)
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An image field's serde default and the test that leaves it out of `hardstack.toml` while it
/// keeps it, from the image's constant.
macro_rules! default_image {
    ($default:ident, $is_default:ident, $image:ident) => {
        fn $default() -> String {
            $image.into()
        }

        fn $is_default(image: &str) -> bool {
            image == $image
        }
    };
}

/// Image references.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Images {
    /// PostgreSQL 17 (the official image, or one with its entrypoint and pgAudit); without a
    /// registry, `up` falls back to the one images/build.sh makes.
    pub postgres: String,
    /// Redis (the official image or one like it), with the same fallback.
    pub redis: String,
    /// Qdrant (the official `-unprivileged` image or one like it), with the same fallback.
    pub qdrant: String,
    /// PgBouncer. No official PgBouncer image exists; the default is the one images/build.sh makes from
    /// Debian's package. Another must run pgbouncer as its entrypoint with the config's path as
    /// its argument.
    #[serde(default = "default_pgbouncer_image", skip_serializing_if = "is_default_pgbouncer_image")]
    #[schemars(extend("default" = default_pgbouncer_image()))]
    pub pgbouncer: String,
    /// The upstream image (its entrypoint `/bin/postgres_exporter`); without a registry, `up`
    /// falls back to the one images/build.sh makes from Debian's package.
    #[serde(default = "default_postgres_exporter_image", skip_serializing_if = "is_default_postgres_exporter_image")]
    #[schemars(extend("default" = default_postgres_exporter_image()))]
    pub postgres_exporter: String,
    /// The upstream image (its entrypoint `/redis_exporter`), with the same fallback.
    #[serde(default = "default_redis_exporter_image", skip_serializing_if = "is_default_redis_exporter_image")]
    #[schemars(extend("default" = default_redis_exporter_image()))]
    pub redis_exporter: String,
    /// The upstream image (its entrypoint `/bin/pgbouncer_exporter`), with the same fallback.
    #[serde(default = "default_pgbouncer_exporter_image", skip_serializing_if = "is_default_pgbouncer_exporter_image")]
    #[schemars(extend("default" = default_pgbouncer_exporter_image()))]
    pub pgbouncer_exporter: String,
    /// The upstream image (its entrypoint `/bin/prometheus`), with the same fallback.
    #[serde(default = "default_prometheus_image", skip_serializing_if = "is_default_prometheus_image")]
    #[schemars(extend("default" = default_prometheus_image()))]
    pub prometheus: String,
    /// The official HAProxy image (runs as uid 99, `haproxy -W -db -f FILE`), with the same
    /// fallback (Debian trixie's package).
    #[serde(default = "default_qdrant_front_image", skip_serializing_if = "is_default_qdrant_front_image")]
    #[schemars(extend("default" = default_qdrant_front_image()))]
    pub qdrant_front: String,
}

/// The official HAProxy image, at the LTS branch Debian trixie packages.
pub const QDRANT_FRONT_IMAGE: &str = "haproxy:3.0";
/// The image images/build.sh makes from Debian trixie's haproxy package.
pub const QDRANT_FRONT_LOCAL_IMAGE: &str = "hardstack-local/haproxy:3.0";

default_image!(default_qdrant_front_image, is_default_qdrant_front_image, QDRANT_FRONT_IMAGE);

/// The upstream PgBouncer exporter image, at the version Debian trixie packages.
pub const PGBOUNCER_EXPORTER_IMAGE: &str = "prometheuscommunity/pgbouncer-exporter:v0.10.2";

default_image!(default_pgbouncer_exporter_image, is_default_pgbouncer_exporter_image, PGBOUNCER_EXPORTER_IMAGE);

/// The upstream Prometheus image, at the version Debian trixie packages.
pub const PROMETHEUS_IMAGE: &str = "prom/prometheus:v2.53.3";

default_image!(default_prometheus_image, is_default_prometheus_image, PROMETHEUS_IMAGE);

/// The upstream exporter images, at the versions Debian trixie packages (the local fallback).
pub const POSTGRES_EXPORTER_IMAGE: &str = "quay.io/prometheuscommunity/postgres-exporter:v0.17.1";
pub const REDIS_EXPORTER_IMAGE: &str = "oliver006/redis_exporter:v1.69.0";
/// The image images/build.sh makes from Debian trixie's exporter and Prometheus packages.
pub const MONITORING_LOCAL_IMAGE: &str = "hardstack-local/monitoring:trixie";

default_image!(default_postgres_exporter_image, is_default_postgres_exporter_image, POSTGRES_EXPORTER_IMAGE);

default_image!(default_redis_exporter_image, is_default_redis_exporter_image, REDIS_EXPORTER_IMAGE);

/// The image images/build.sh makes from Debian trixie's pgbouncer package.
pub const PGBOUNCER_LOCAL_IMAGE: &str = "hardstack-local/pgbouncer:1.24";

default_image!(default_pgbouncer_image, is_default_pgbouncer_image, PGBOUNCER_LOCAL_IMAGE);

impl Images {
    /// The image of one service.
    pub fn of(&self, service: Service) -> &str {
        match service {
            Service::Postgres => &self.postgres,
            // Sentinel is the Redis server in another mode.
            Service::Redis | Service::RedisSentinel => &self.redis,
            Service::Qdrant => &self.qdrant,
            Service::Pgbouncer => &self.pgbouncer,
            Service::PostgresExporter => &self.postgres_exporter,
            Service::RedisExporter => &self.redis_exporter,
            Service::PgbouncerExporter => &self.pgbouncer_exporter,
            Service::Prometheus => &self.prometheus,
            Service::QdrantFront => &self.qdrant_front,
        }
    }
}

/// Host port per service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ports {
    /// PostgreSQL's host port.
    pub postgres: u16,
    /// Redis's host port.
    pub redis: u16,
    /// Qdrant's host port (its HTTPS API).
    pub qdrant: u16,
    /// PgBouncer's host port.
    #[serde(default = "default_pgbouncer_port", skip_serializing_if = "is_default_pgbouncer_port")]
    #[schemars(extend("default" = default_pgbouncer_port()))]
    pub pgbouncer: u16,
    /// Prometheus's host port (its HTTPS API, a client certificate required).
    #[serde(default = "default_prometheus_port", skip_serializing_if = "is_default_prometheus_port")]
    #[schemars(extend("default" = default_prometheus_port()))]
    pub prometheus: u16,
    /// Qdrant's gRPC host port, served by `qdrant-front` (which serves REST on `network.ports.qdrant`).
    #[serde(default = "default_qdrant_grpc_port", skip_serializing_if = "is_default_qdrant_grpc_port")]
    #[schemars(extend("default" = default_qdrant_grpc_port()))]
    pub qdrant_grpc: u16,
    /// The host port of PostgreSQL's first replica (`postgres.replicas`); replica N takes this
    /// port + N - 1. 0: the ports after PostgreSQL's.
    #[serde(default, skip_serializing_if = "is_zero_port")]
    pub postgres_replicas: u16,
}

fn is_zero_port(port: &u16) -> bool {
    *port == 0
}

fn default_qdrant_grpc_port() -> u16 {
    6334
}

fn is_default_qdrant_grpc_port(port: &u16) -> bool {
    *port == default_qdrant_grpc_port()
}

fn default_prometheus_port() -> u16 {
    9090
}

fn is_default_prometheus_port(port: &u16) -> bool {
    *port == default_prometheus_port()
}

fn default_pgbouncer_port() -> u16 {
    6432
}

fn is_default_pgbouncer_port(port: &u16) -> bool {
    *port == default_pgbouncer_port()
}

impl Ports {
    /// The host port of one service; an exporter is never published (its container port).
    /// The host port of PostgreSQL's replica `node` (1-based).
    pub fn postgres_replica(&self, node: u8) -> u16 {
        let first = match self.postgres_replicas {
            0 => self.postgres.saturating_add(1),
            port => port,
        };
        first.saturating_add(u16::from(node) - 1)
    }

    /// The host port of Redis's node `node`: node 0's is `redis`, replica N's the port + N.
    pub fn redis_node(&self, node: u8) -> u16 {
        self.redis.saturating_add(u16::from(node))
    }

    /// The host port of PostgreSQL's node `node`: node 0's is `postgres`.
    pub fn postgres_node(&self, node: u8) -> u16 {
        match node {
            0 => self.postgres,
            node => self.postgres_replica(node),
        }
    }

    pub fn of(&self, service: Service) -> u16 {
        match service {
            Service::Postgres => self.postgres,
            Service::Redis => self.redis,
            // The front takes Qdrant's REST port; Qdrant is then published by it alone.
            Service::Qdrant | Service::QdrantFront => self.qdrant,
            Service::Pgbouncer => self.pgbouncer,
            Service::Prometheus => self.prometheus,
            Service::PostgresExporter | Service::RedisExporter | Service::PgbouncerExporter => service.container_port(),
            // Sentinel answers with the nodes' names on the stack network: it is for clients
            // there and never published.
            Service::RedisSentinel => service.container_port(),
        }
    }
}

/// Limits per service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// PostgreSQL's limits; memory and CPUs are pgtune's input.
    pub postgres: Limits,
    /// Redis's limits; `redis.maxmemory` must fit in its memory.
    pub redis: Limits,
    /// Qdrant's limits.
    pub qdrant: Limits,
    /// PgBouncer's limits.
    #[serde(default = "default_pgbouncer_limits", skip_serializing_if = "is_default_pgbouncer_limits")]
    #[schemars(extend("default" = default_pgbouncer_limits()))]
    pub pgbouncer: Limits,
    /// The PostgreSQL exporter's limits.
    #[serde(default = "default_exporter_limits", skip_serializing_if = "is_default_exporter_limits")]
    #[schemars(extend("default" = default_exporter_limits()))]
    pub postgres_exporter: Limits,
    /// The Redis exporter's limits.
    #[serde(default = "default_exporter_limits", skip_serializing_if = "is_default_exporter_limits")]
    #[schemars(extend("default" = default_exporter_limits()))]
    pub redis_exporter: Limits,
    /// The PgBouncer exporter's limits.
    #[serde(default = "default_exporter_limits", skip_serializing_if = "is_default_exporter_limits")]
    #[schemars(extend("default" = default_exporter_limits()))]
    pub pgbouncer_exporter: Limits,
    /// Prometheus's limits.
    #[serde(default = "default_prometheus_limits", skip_serializing_if = "is_default_prometheus_limits")]
    #[schemars(extend("default" = default_prometheus_limits()))]
    pub prometheus: Limits,
    /// The Qdrant front's limits.
    #[serde(default = "default_front_limits", skip_serializing_if = "is_default_front_limits")]
    #[schemars(extend("default" = default_front_limits()))]
    pub qdrant_front: Limits,
    /// Each Redis Sentinel's limits.
    #[serde(default = "default_sentinel_limits", skip_serializing_if = "is_default_sentinel_limits")]
    #[schemars(extend("default" = default_sentinel_limits()))]
    pub redis_sentinel: Limits,
}

/// A Sentinel's limits unless the profile sets them: one event loop holding a few links.
fn default_sentinel_limits() -> Limits {
    Limits { memory: ByteSize(64 << 20), cpus: 0.25, pids: 32 }
}

fn is_default_sentinel_limits(limits: &Limits) -> bool {
    *limits == default_sentinel_limits()
}

/// The Qdrant front's limits unless the profile sets them: one HAProxy process with a thread
/// per CPU.
fn default_front_limits() -> Limits {
    Limits { memory: ByteSize(128 << 20), cpus: 0.5, pids: 64 }
}

fn is_default_front_limits(limits: &Limits) -> bool {
    *limits == default_front_limits()
}

/// Prometheus's limits unless the profile sets them: a few targets, a few thousand series.
fn default_prometheus_limits() -> Limits {
    Limits { memory: ByteSize(512 << 20), cpus: 0.5, pids: 64 }
}

fn is_default_prometheus_limits(limits: &Limits) -> bool {
    *limits == default_prometheus_limits()
}

/// An exporter's limits unless the profile sets them: one Go process answering a scrape now
/// and then.
fn default_exporter_limits() -> Limits {
    Limits { memory: ByteSize(64 << 20), cpus: 0.25, pids: 32 }
}

fn is_default_exporter_limits(limits: &Limits) -> bool {
    *limits == default_exporter_limits()
}

/// PgBouncer's limits unless the profile sets them: an event loop in one process, a few MiB
/// per thousand clients.
fn default_pgbouncer_limits() -> Limits {
    Limits { memory: ByteSize(128 << 20), cpus: 0.5, pids: 32 }
}

fn is_default_pgbouncer_limits(limits: &Limits) -> bool {
    *limits == default_pgbouncer_limits()
}

impl Resources {
    /// The limits of one service.
    pub fn of(&self, service: Service) -> &Limits {
        match service {
            Service::Postgres => &self.postgres,
            Service::Redis => &self.redis,
            Service::Qdrant => &self.qdrant,
            Service::Pgbouncer => &self.pgbouncer,
            Service::PostgresExporter => &self.postgres_exporter,
            Service::RedisExporter => &self.redis_exporter,
            Service::PgbouncerExporter => &self.pgbouncer_exporter,
            Service::Prometheus => &self.prometheus,
            Service::QdrantFront => &self.qdrant_front,
            Service::RedisSentinel => &self.redis_sentinel,
        }
    }
}
