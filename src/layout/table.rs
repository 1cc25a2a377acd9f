//! The layout table: every file of the stack directory with one fixed path, with its mode
//! and, for the files rendered for the servers, how each is made and where its service
//! receives it. Adding such a file is one entry here, a variant of [`StackFile`] and a
//! template.

use super::{
    HEALTH, MONITOR, Mode, POSTGRES_SUPERUSER_SECRET, REPLICATION, Reach, StackFile, Volume, login_secret, paths,
};
use crate::profile::Service;

/// How the content of a rendered file is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A tera template, by name (its path under `templates/`).
    Template(&'static str),
    /// A JSON document from a template: it ends with a newline whatever the template does.
    Json(&'static str),
    /// A password file: the secret's value and a newline (initdb's `--pwfile`, Redis's
    /// healthcheck).
    Password(SecretOf),
    /// A pgpass file: the secret as the health login's password for any host.
    Pgpass(SecretOf),
    /// A pgpass file for the secret's login, any host, port and database.
    LoginPgpass(SecretOf),
    /// redis_exporter's password file: a JSON object of the secret by the address the
    /// exporter reads (`redis.addr`).
    PasswordByAddress(SecretOf, &'static str),
}

/// The secret a password file carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretOf {
    /// PostgreSQL's superuser's.
    Superuser,
    /// The healthcheck login's on a service.
    Health(Service),
    /// The exporters' login's on a service.
    Monitor(Service),
    /// PostgreSQL's replication login's.
    Replication,
}

impl SecretOf {
    /// The login the secret is the password of.
    pub fn login(self) -> &'static str {
        match self {
            SecretOf::Superuser => super::POSTGRES_SUPERUSER,
            SecretOf::Health(_) => HEALTH,
            SecretOf::Monitor(_) => MONITOR,
            SecretOf::Replication => REPLICATION,
        }
    }

    /// The secret's name in the store.
    pub fn name(self) -> String {
        match self {
            SecretOf::Superuser => POSTGRES_SUPERUSER_SECRET.into(),
            SecretOf::Health(service) => login_secret(service, HEALTH),
            SecretOf::Monitor(service) => login_secret(service, MONITOR),
            SecretOf::Replication => login_secret(Service::Postgres, REPLICATION),
        }
    }
}

/// Where a service receives a file: the volume, the path inside it, and how a change reaches
/// the running server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destination {
    pub volume: Volume,
    pub path: &'static str,
    pub reach: Reach,
}

/// One entry of the layout table: a file of the stack directory with one fixed path, its
/// mode, and, for a file rendered for the services, the service whose presence renders it
/// (`None`: every stack), how it is made and where that service receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub file: StackFile,
    pub path: &'static str,
    pub mode: Mode,
    pub service: Option<Service>,
    pub source: Option<Source>,
    pub destination: Option<Destination>,
    /// Rendered only where the stack runs PostgreSQL replicas (`postgres.replicas`).
    pub replicas_only: bool,
    /// Rendered only where the stack runs Redis replicas (`redis.replicas`).
    pub redis_replicas_only: bool,
}

impl Entry {
    /// A file hardstack keeps in the stack directory without rendering it.
    const fn kept(file: StackFile, path: &'static str, mode: Mode) -> Entry {
        Entry {
            file,
            path,
            mode,
            service: None,
            source: None,
            destination: None,
            replicas_only: false,
            redis_replicas_only: false,
        }
    }

    /// A file rendered in every stack.
    const fn rendered(file: StackFile, path: &'static str, mode: Mode, source: Source) -> Entry {
        Entry {
            file,
            path,
            mode,
            service: None,
            source: Some(source),
            destination: None,
            replicas_only: false,
            redis_replicas_only: false,
        }
    }

    /// A file rendered when the profile runs `service`, which receives it in `volume` at `at`.
    const fn delivered(
        file: StackFile,
        path: &'static str,
        mode: Mode,
        source: Source,
        destination: (Service, Volume, &'static str, Reach),
    ) -> Entry {
        Entry::delivered_when(file, (path, mode), source, destination, false)
    }

    /// A file [`Entry::delivered`] to Redis's nodes where the stack runs Redis replicas.
    const fn for_redis_replicas(
        file: StackFile,
        path: &'static str,
        mode: Mode,
        source: Source,
        destination: (Service, Volume, &'static str, Reach),
    ) -> Entry {
        Entry::delivered_when(file, (path, mode), source, destination, true)
    }

    const fn delivered_when(
        file: StackFile,
        (path, mode): (&'static str, Mode),
        source: Source,
        (service, volume, at, reach): (Service, Volume, &'static str, Reach),
        redis_replicas_only: bool,
    ) -> Entry {
        let destination = Destination { volume, path: at, reach };
        Entry {
            file,
            path,
            mode,
            service: Some(service),
            source: Some(source),
            destination: Some(destination),
            replicas_only: false,
            redis_replicas_only,
        }
    }

    /// A file [`Entry::delivered`] to PostgreSQL where the stack runs replicas.
    const fn for_replicas(file: StackFile, path: &'static str, mode: Mode, source: Source, at: &'static str) -> Entry {
        let destination = Destination { volume: Volume::Config, path: at, reach: Reach::Live };
        Entry {
            file,
            path,
            mode,
            service: Some(Service::Postgres),
            source: Some(source),
            destination: Some(destination),
            replicas_only: true,
            redis_replicas_only: false,
        }
    }
}

/// The layout table: every file of the stack directory that has one fixed path, in rendering
/// order. Adding a file the servers receive is one entry here (and a variant of
/// [`StackFile`]) plus its template under `templates/`: paths, modes, parsing, rendering and
/// delivery all follow from it.
pub const TABLE: &[Entry] = {
    use Mode::{Private, Public};
    use Reach::{Live, Nothing, Reload, Restart};
    use Service::{
        Pgbouncer, PgbouncerExporter, Postgres, PostgresExporter, Prometheus, Qdrant, QdrantFront, Redis,
        RedisExporter, RedisSentinel,
    };
    use Volume::{Config, Initdb};
    &[
        Entry::kept(StackFile::Profile, paths::PROFILE, Public),
        Entry::kept(StackFile::Manifest, paths::MANIFEST, Private),
        Entry::kept(StackFile::CaCert, paths::CA_CERT, Public),
        // SECURITY: signs every certificate of the stack; it never leaves the directory.
        Entry::kept(StackFile::CaKey, paths::CA_KEY, Private),
        Entry::delivered(
            StackFile::PostgresConf,
            paths::POSTGRESQL_CONF,
            Public,
            Source::Template("postgres/postgresql.conf.tera"),
            (Postgres, Config, "postgresql.conf", Reload),
        ),
        Entry::delivered(
            StackFile::PgHba,
            paths::PG_HBA,
            Public,
            Source::Template("postgres/pg_hba.conf.tera"),
            (Postgres, Config, "pg_hba.conf", Reload),
        ),
        Entry::delivered(
            StackFile::PgIdent,
            paths::PG_IDENT,
            Public,
            Source::Template("postgres/pg_ident.conf.tera"),
            (Postgres, Config, "pg_ident.conf", Reload),
        ),
        // Read once, by initdb on an empty data directory.
        Entry::delivered(
            StackFile::InitSql,
            paths::INIT_SQL,
            Private,
            Source::Template("postgres/init.sql.tera"),
            (Postgres, Initdb, "10-hardstack.sql", Nothing),
        ),
        Entry::delivered(
            StackFile::SuperuserPassword,
            paths::SUPERUSER_PASSWORD,
            Private,
            Source::Password(SecretOf::Superuser),
            (Postgres, Config, "secrets/superuser.password", Nothing),
        ),
        Entry::delivered(
            StackFile::HealthPgpass,
            paths::HEALTH_PGPASS,
            Private,
            Source::Pgpass(SecretOf::Health(Postgres)),
            (Postgres, Config, "secrets/health.pgpass", Live),
        ),
        // Read by the replica's WAL receiver at each connection to the primary.
        Entry::for_replicas(
            StackFile::ReplicationPgpass,
            paths::REPLICATION_PGPASS,
            Private,
            Source::LoginPgpass(SecretOf::Replication),
            "secrets/streaming_replica.pgpass",
        ),
        Entry::delivered(
            StackFile::RedisConf,
            paths::REDIS_CONF,
            Public,
            Source::Template("redis/redis.conf.tera"),
            (Redis, Config, "redis.conf", Live),
        ),
        // In a directory of its own that Redis owns: ACL SAVE writes a temporary file beside the
        // ACL file and renames it, and the volume's root belongs to root.
        Entry::delivered(
            StackFile::UsersAcl,
            paths::USERS_ACL,
            Private,
            Source::Template("redis/users.acl.tera"),
            (Redis, Config, "acl/users.acl", Live),
        ),
        Entry::delivered(
            StackFile::RedisHealthPassword,
            paths::REDIS_HEALTH_PASSWORD,
            Private,
            Source::Password(SecretOf::Health(Redis)),
            (Redis, Config, "secrets/health.password", Live),
        ),
        // Included by redis.conf where the stack runs replicas; applied by CONFIG SET.
        Entry::for_redis_replicas(
            StackFile::RedisReplication,
            paths::REDIS_REPLICATION,
            Private,
            Source::Template("redis/replication.conf.tera"),
            (Redis, Config, "secrets/replication.conf", Live),
        ),
        // What a new Sentinel starts from: it copies the file once to `conf/sentinel.conf` and
        // then keeps that one (its id, the replicas and Sentinels it learned, the primary after
        // a failover) across restarts; the directory is the Sentinel's, for its rewrites.
        Entry::for_redis_replicas(
            StackFile::SentinelConf,
            paths::SENTINEL_CONF,
            Private,
            Source::Template("redis-sentinel/sentinel.conf.tera"),
            (RedisSentinel, Config, "conf/declared.conf", Nothing),
        ),
        Entry::for_redis_replicas(
            StackFile::SentinelHealthPassword,
            paths::SENTINEL_HEALTH_PASSWORD,
            Private,
            Source::Password(SecretOf::Health(Redis)),
            (RedisSentinel, Config, "secrets/health.password", Live),
        ),
        // Qdrant reads its config, keys included, at start only.
        Entry::delivered(
            StackFile::QdrantConfig,
            paths::QDRANT_CONFIG,
            Private,
            Source::Template("qdrant/config.yaml.tera"),
            (Qdrant, Config, "config.yaml", Restart),
        ),
        // HAProxy reads its files again on a graceful reload (SIGUSR2 to its master); rotation
        // also changes the key map in place through its admin socket.
        Entry::delivered(
            StackFile::FrontConfig,
            paths::FRONT_CONFIG,
            Public,
            Source::Template("qdrant-front/haproxy.cfg.tera"),
            (QdrantFront, Config, "haproxy.cfg", Reload),
        ),
        Entry::delivered(
            StackFile::FrontUsers,
            paths::FRONT_USERS,
            // The SHA-256 of each key, never a key.
            Public,
            Source::Template("qdrant-front/users.map.tera"),
            (QdrantFront, Config, "users.map", Reload),
        ),
        Entry::delivered(
            StackFile::FrontRoles,
            paths::FRONT_ROLES,
            Private,
            Source::Template("qdrant-front/roles.map.tera"),
            (QdrantFront, Config, "roles.map", Reload),
        ),
        Entry::delivered(
            StackFile::PgbouncerIni,
            paths::PGBOUNCER_INI,
            Public,
            Source::Template("pgbouncer/pgbouncer.ini.tera"),
            (Pgbouncer, Config, "pgbouncer.ini", Reload),
        ),
        // exporter-toolkit reads it again for each connection.
        Entry::delivered(
            StackFile::PostgresExporterWeb,
            paths::POSTGRES_EXPORTER_WEB,
            Public,
            Source::Template("exporters/web.yml.tera"),
            (PostgresExporter, Config, "web.yml", Live),
        ),
        Entry::delivered(
            StackFile::PostgresExporterQueries,
            paths::POSTGRES_EXPORTER_QUERIES,
            Public,
            Source::Template("exporters/queries.yml.tera"),
            (PostgresExporter, Config, "queries.yml", Restart),
        ),
        // Read at start (DATA_SOURCE_PASS_FILE, --redis.password-file): a new one restarts it.
        Entry::delivered(
            StackFile::PostgresExporterPassword,
            paths::POSTGRES_EXPORTER_PASSWORD,
            Private,
            Source::Password(SecretOf::Monitor(Postgres)),
            (PostgresExporter, Config, "secrets/monitor.password", Restart),
        ),
        Entry::delivered(
            StackFile::RedisExporterPasswords,
            paths::REDIS_EXPORTER_PASSWORDS,
            Private,
            Source::PasswordByAddress(SecretOf::Monitor(Redis), super::REDIS_EXPORTER_PASSWORD_KEY),
            (RedisExporter, Config, "secrets/passwords.json", Restart),
        ),
        Entry::delivered(
            StackFile::PgbouncerExporterWeb,
            paths::PGBOUNCER_EXPORTER_WEB,
            Public,
            Source::Template("exporters/web.yml.tera"),
            (PgbouncerExporter, Config, "web.yml", Live),
        ),
        Entry::delivered(
            StackFile::PgbouncerExporterPgpass,
            paths::PGBOUNCER_EXPORTER_PGPASS,
            Private,
            Source::LoginPgpass(SecretOf::Monitor(Postgres)),
            (PgbouncerExporter, Config, "secrets/monitor.pgpass", Restart),
        ),
        // Read again on SIGHUP; the web config for each connection.
        Entry::delivered(
            StackFile::PrometheusConfig,
            paths::PROMETHEUS_CONFIG,
            Private,
            Source::Template("prometheus/prometheus.yml.tera"),
            (Prometheus, Config, "prometheus.yml", Reload),
        ),
        Entry::delivered(
            StackFile::PrometheusRules,
            paths::PROMETHEUS_RULES,
            Public,
            Source::Template("prometheus/alerts.yml.tera"),
            (Prometheus, Config, "alerts.yml", Reload),
        ),
        Entry::delivered(
            StackFile::PrometheusWeb,
            paths::PROMETHEUS_WEB,
            Public,
            Source::Template("prometheus/web.yml.tera"),
            (Prometheus, Config, "web.yml", Live),
        ),
        Entry::rendered(StackFile::Compose, paths::COMPOSE, Public, Source::Template("docker-compose.yml.tera")),
        Entry::rendered(StackFile::Connections, paths::CONNECTIONS, Public, Source::Json("connections.json.tera")),
        Entry::kept(StackFile::Lock, paths::LOCK, Private),
        Entry::kept(StackFile::LockQueue, paths::LOCK_QUEUE, Private),
        Entry::kept(StackFile::Identity, paths::IDENTITY, Public),
        Entry::kept(StackFile::Inputs, paths::INPUTS, Public),
        Entry::kept(StackFile::Topology, paths::TOPOLOGY, Public),
    ]
};
