//! The stack layout, in one place: every file of the stack directory with its mode, which
//! service receives it and where, and how a change to it reaches a running server; the names
//! of secrets and logins; and where a client reaches each service, from the host and inside
//! the stack network.
//!
//! A leaf: it names things and computes nothing else, reads and writes nothing, and depends on
//! the profile model only. No other module spells a path of the stack directory (the tidy test
//! `only_layout_spells_stack_directory_paths` holds it to that).

use crate::profile::{Profile, Service};

/// The directory of the file secret store, relative to the stack directory.
pub const SECRETS_DIR: &str = "secrets";

/// The directories of the stack directory hardstack writes files into (besides its root), the
/// backup directory aside.
pub const WRITTEN_DIRS: &[&str] = &["ca", "certs", "config", SECRETS_DIR, "systemd", KUBERNETES_DIR, "templates"];

/// Where PostgreSQL finds its delivered files (its config volume's mount point).
pub const POSTGRES_DIR: &str = "/etc/hardstack";
/// Where Redis finds its delivered files; writable, for ACL SAVE.
pub const REDIS_DIR: &str = "/usr/local/etc/redis";
/// Where a Sentinel finds its delivered files; writable, for the Sentinel rewrites its file.
pub const SENTINEL_DIR: &str = "/usr/local/etc/redis-sentinel";
/// Where Qdrant finds its delivered files.
pub const QDRANT_DIR: &str = "/qdrant/hardstack";
/// Where PgBouncer finds its delivered files.
pub const PGBOUNCER_DIR: &str = "/etc/hardstack";
/// Where an exporter finds its delivered files.
pub const EXPORTER_DIR: &str = "/etc/hardstack";
/// Where the Qdrant front's files are (the official haproxy image's configuration directory).
pub const FRONT_DIR: &str = "/usr/local/etc/haproxy";
/// What the Redis monitor user may run: what redis_exporter reads (INFO, CONFIG GET, the slow
/// log and latency), naming itself, and PING; no key, no channel, nothing that changes or
/// ends anything (`+@connection` would allow CLIENT KILL).
pub const REDIS_MONITOR_COMMANDS: &[&str] = &[
    "+ping",
    "+info",
    "+config|get",
    "+client|setname",
    "+slowlog|get",
    "+slowlog|len",
    "+latency|latest",
    "+latency|histogram",
];
/// The address redis-exporter reads Redis at: TLS, by the alias its certificate covers.
pub const REDIS_EXPORTER_TARGET: &str = "rediss://redis:6379";
/// The key of the monitor user's password in redis-exporter's password file: the address
/// with the user (`--redis.user`) in it, as redis_exporter looks it up.
pub const REDIS_EXPORTER_PASSWORD_KEY: &str = "rediss://monitor@redis:6379";
/// Where the PostgreSQL image runs its init scripts from (the initdb volume's mount point).
pub const POSTGRES_INITDB_DIR: &str = "/docker-entrypoint-initdb.d";

/// The login every service has for hardstack's own administration (rotation, checks).
pub const ADMIN: &str = "admin";
/// The login of the containers' healthchecks: it may only connect and ping.
pub const HEALTH: &str = "health";
/// The login of `hardstack backup`: replication only in PostgreSQL (client certificate and
/// password), the RDB transfer only in Redis.
pub const BACKUP: &str = "backup";
/// Logins that get a client certificate and a password besides the application users.
pub const SERVICE_LOGINS: &[&str] = &[ADMIN, HEALTH, BACKUP];
/// Prometheus's client certificate (no password, no login anywhere): what it presents to the
/// targets it scrapes.
pub const SCRAPER: &str = "scraper";
/// The Qdrant front's client certificate (no password, no login): what it presents to Qdrant.
pub const FRONT: &str = "front";
/// The exporters' login, where the server's exporter runs: `pg_monitor` in PostgreSQL, what
/// redis_exporter reads in Redis; a client certificate and a password.
pub const MONITOR: &str = "monitor";

/// hardstack's logins on `service` for a profile: [`SERVICE_LOGINS`], and [`MONITOR`] where
/// the service's exporter runs.
pub fn service_logins(profile: &Profile, service: Service) -> Vec<&'static str> {
    let monitored = Service::ALL.into_iter().any(|e| e.login_of() == Some(service) && profile.runs(e));
    SERVICE_LOGINS.iter().copied().chain(monitored.then_some(MONITOR)).collect()
}
/// PostgreSQL's replication login, where the stack runs replicas: the replication protocol
/// only, by client certificate and password (CloudNativePG's name for it).
pub const REPLICATION: &str = "streaming_replica";

/// Redis's replication user: what a replica logs in to its primary as (PSYNC, REPLCONF,
/// PING), with its client certificate (`tls-client-cert-file`).
pub const REDIS_REPLICA: &str = "replica";
/// The Sentinels' user on Redis's nodes (what Sentinel runs there: INFO, ROLE, REPLICAOF,
/// its hello channel) and on each other; a client certificate too.
pub const SENTINEL: &str = "sentinel";
/// The applications' user on the Sentinels: asking where the primary and the replicas are,
/// nothing that changes them.
pub const DISCOVERY: &str = "discovery";
/// What the discovery user may run on a Sentinel.
pub const DISCOVERY_COMMANDS: &[&str] = &[
    "+ping",
    "+hello",
    "+client|setname",
    "+client|setinfo",
    "+sentinel|get-master-addr-by-name",
    "+sentinel|masters",
    "+sentinel|master",
    "+sentinel|replicas",
    "+sentinel|slaves",
    "+sentinel|sentinels",
    "+subscribe",
    "+psubscribe",
    "+unsubscribe",
    "+punsubscribe",
];
/// What the Sentinels' user may run on a Redis node (Redis's Sentinel documentation, "Redis
/// access control list authentication").
pub const SENTINEL_COMMANDS: &[&str] = &[
    "+multi",
    "+slaveof",
    "+replicaof",
    "+ping",
    "+exec",
    "+subscribe",
    "+config|rewrite",
    "+role",
    "+publish",
    "+info",
    "+client|setname",
    "+client|kill",
    "+script|kill",
];
/// What the replication user may run on a Redis node.
pub const REPLICA_COMMANDS: &[&str] = &["+psync", "+replconf", "+ping"];

/// The physical replication slot of PostgreSQL's replica `node` (`postgres_1`).
pub fn replica_slot(node: u8) -> String {
    format!("{}_{node}", Service::Postgres.name())
}

/// PostgreSQL's superuser: local socket only, used by the image's init.
pub const POSTGRES_SUPERUSER: &str = "postgres";
/// PgBouncer's own PostgreSQL login: by its client certificate only, to look up the SCRAM
/// verifier of a login (`auth_query`); also the certificate PgBouncer presents to PostgreSQL.
pub const POOLER: &str = "pgbouncer";

/// The secret of PostgreSQL's superuser.
pub const POSTGRES_SUPERUSER_SECRET: &str = "postgres/superuser";
/// The secret of Qdrant's read-write API key.
pub const QDRANT_API_KEY: &str = "qdrant/api-key";
/// The secret of Qdrant's read-only API key.
pub const QDRANT_READ_ONLY_API_KEY: &str = "qdrant/read-only-api-key";

/// The secret of a Redis login: `redis/<login>`, but the discovery login's, which is the
/// Sentinels' (`redis-sentinel/discovery`).
pub fn redis_login_secret(login: &str) -> String {
    match login {
        DISCOVERY => login_secret(Service::RedisSentinel, login),
        _ => login_secret(Service::Redis, login),
    }
}

/// The secret holding the password of `login` on `service` (`postgres/app`, `redis/admin`).
pub fn login_secret(service: Service, login: &str) -> String {
    format!("{service}/{login}")
}

/// The secret an application user's Qdrant access uses; `None` without access.
pub fn qdrant_key_secret(access: crate::profile::QdrantAccess) -> Option<&'static str> {
    use crate::profile::QdrantAccess;
    match access {
        QdrantAccess::None => None,
        QdrantAccess::ReadOnly => Some(QDRANT_READ_ONLY_API_KEY),
        QdrantAccess::ReadWrite => Some(QDRANT_API_KEY),
    }
}

/// The Qdrant key an application user holds and where it is served: its own key at the front
/// where the stack runs one, else Qdrant's key for its access; `None` without access or Qdrant.
pub fn qdrant_client_key(profile: &Profile, user: &crate::profile::AppUser) -> Option<(String, Service)> {
    if !profile.runs(Service::Qdrant) {
        return None;
    }
    let secret = qdrant_key_secret(user.qdrant)?;
    Some(match profile.runs(Service::QdrantFront) {
        true => (login_secret(Service::QdrantFront, &user.name), Service::QdrantFront),
        false => (secret.to_owned(), Service::Qdrant),
    })
}

/// The second PostgreSQL login of an application user; rotation alternates between the two.
pub fn alternate_login(user: &str) -> String {
    format!("{user}_alt")
}

/// The NOLOGIN role that owns an application user's objects; both of its logins act as it.
pub fn owner_role(user: &str) -> String {
    format!("{user}_owner")
}

/// Names of every secret a profile needs, with whether PostgreSQL stores it as a SCRAM
/// verifier.
pub fn secret_names(profile: &Profile) -> Vec<(String, bool)> {
    let mut names = Vec::new();
    let logins =
        |service| service_logins(profile, service).into_iter().chain(profile.users.iter().map(|u| u.name.as_str()));
    if profile.runs(Service::Postgres) {
        names.push((POSTGRES_SUPERUSER_SECRET.to_owned(), false));
        names.extend(logins(Service::Postgres).map(|login| (login_secret(Service::Postgres, login), true)));
        if profile.postgres.replicas > 0 {
            names.push((login_secret(Service::Postgres, REPLICATION), true));
        }
    }
    if profile.runs(Service::Redis) {
        names.extend(logins(Service::Redis).map(|login| (login_secret(Service::Redis, login), false)));
    }
    if profile.redis.replicas > 0 && profile.runs(Service::Redis) {
        names.push((login_secret(Service::Redis, REDIS_REPLICA), false));
        names.push((login_secret(Service::Redis, SENTINEL), false));
        names.push((login_secret(Service::RedisSentinel, DISCOVERY), false));
    }
    if profile.runs(Service::Qdrant) {
        names.push((QDRANT_API_KEY.to_owned(), false));
        names.push((QDRANT_READ_ONLY_API_KEY.to_owned(), false));
    }
    if profile.runs(Service::QdrantFront) {
        names.extend(front_key_users(profile).map(|user| (login_secret(Service::QdrantFront, &user.name), false)));
    }
    names
}

/// The application users with a key of their own at the Qdrant front: those with Qdrant access.
pub fn front_key_users(profile: &Profile) -> impl Iterator<Item = &crate::profile::AppUser> {
    profile.users.iter().filter(|u| u.qdrant != crate::profile::QdrantAccess::None)
}

/// Every login that gets a client certificate, which is every PostgreSQL login hardstack
/// manages: the service logins, then each application user and its alternate login
/// (PostgreSQL's `clientcert=verify-full` wants CN = login role).
pub fn client_logins(profile: &Profile) -> Vec<String> {
    let redis_replicas = profile.redis.replicas > 0 && profile.runs(Service::Redis);
    SERVICE_LOGINS
        .iter()
        .map(|s| s.to_string())
        .chain(profile.users.iter().flat_map(|u| [u.name.clone(), alternate_login(&u.name)]))
        .chain(profile.runs(Service::Pgbouncer).then(|| POOLER.to_owned()))
        .chain(Service::ALL.iter().any(|s| s.is_exporter() && profile.runs(*s)).then(|| MONITOR.to_owned()))
        .chain(profile.runs(Service::Prometheus).then(|| SCRAPER.to_owned()))
        .chain(profile.runs(Service::QdrantFront).then(|| FRONT.to_owned()))
        .chain((profile.postgres.replicas > 0).then(|| REPLICATION.to_owned()))
        .chain(redis_replicas.then(|| REDIS_REPLICA.to_owned()))
        .chain(redis_replicas.then(|| SENTINEL.to_owned()))
        .collect()
}

/// The DNS names of a service in a Kubernetes cluster (`init --target kubernetes`): its Service
/// in the namespace, short and fully qualified.
pub fn kubernetes_names(profile: &Profile, service: Service) -> Vec<String> {
    let namespace = profile.kubernetes_namespace();
    vec![format!("{service}.{namespace}.svc"), format!("{service}.{namespace}.svc.cluster.local")]
}

/// The backup directory: sets, the WAL archive and the restore-test record. Its place on the
/// host is the profile's `backup.dir` (relative: under the stack directory).
pub mod backups {
    /// The WAL archive, beside the sets.
    pub const ARCHIVE: &str = "wal";
    /// A set is complete once this file exists: it is written last, atomically.
    pub const SET_MANIFEST: &str = "manifest.json";
    /// The last restore test's result.
    pub const RESTORE_TEST: &str = "restore-test.json";
    /// Held while a backup runs.
    pub const LOCK: &str = ".lock";
    /// The throwaway stack directory of `backup --test`.
    pub const TEST_STACK: &str = ".restore-test";
    /// Where PostgreSQL sees the archive.
    pub const ARCHIVE_MOUNT: &str = "/var/lib/postgresql/archive";
    /// A set's directory for one service's files.
    pub fn service_dir(service: crate::profile::Service) -> &'static str {
        service.name()
    }
}

/// The permission bits a file of the stack directory must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 0600: keys, secrets and files that contain either.
    Private,
    /// 0644: certificates and configs without secrets.
    Public,
}

impl Mode {
    /// The permission bits.
    pub fn bits(self) -> u32 {
        match self {
            Mode::Private => 0o600,
            Mode::Public => 0o644,
        }
    }
}

/// How a change to a delivered file reaches the running server, once `up` (or rotation) has
/// delivered it. No file needs a new container: `up` recreates one only when its spec changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reach {
    /// Read once, by initdb on an empty data directory (or by nothing that runs): delivered,
    /// and nothing more to do.
    Nothing,
    /// The server reads it again on request: PostgreSQL on `pg_reload_conf()` (a setting whose
    /// context is postmaster needs a restart, which `up` names), Redis's TLS files on
    /// `CONFIG SET`, Qdrant's certificate by itself within `tls.cert_ttl`.
    Reload,
    /// Applied by commands to the running server (Redis `CONFIG SET` for redis.conf, `ACL LOAD`
    /// for the ACL file), or read afresh at each use (the healthchecks' files).
    Live,
    /// Read at start only: the server restarts.
    Restart,
}

/// The volume of a service a file is delivered into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Volume {
    /// The service's config volume, mounted at [`config_dir`].
    Config,
    /// PostgreSQL's init scripts, mounted at [`POSTGRES_INITDB_DIR`].
    Initdb,
}

impl Volume {
    /// The volume's short name for a service (`postgres-config`).
    pub fn key(self, service: Service) -> String {
        match self {
            Volume::Config => format!("{service}-config"),
            Volume::Initdb => format!("{service}-initdb"),
        }
    }

    /// Where the volume is mounted in the service's container.
    pub fn mount_point(self, service: Service) -> &'static str {
        match self {
            Volume::Config => config_dir(service),
            Volume::Initdb => POSTGRES_INITDB_DIR,
        }
    }
}

/// Where a service's delivered files are, inside its container.
pub fn config_dir(service: Service) -> &'static str {
    match service {
        Service::Postgres => POSTGRES_DIR,
        Service::Redis => REDIS_DIR,
        Service::RedisSentinel => SENTINEL_DIR,
        Service::Qdrant => QDRANT_DIR,
        Service::Pgbouncer => PGBOUNCER_DIR,
        Service::QdrantFront => FRONT_DIR,
        Service::PostgresExporter | Service::RedisExporter | Service::PgbouncerExporter | Service::Prometheus => {
            EXPORTER_DIR
        }
    }
}

/// The Kubernetes target's directory, relative to the stack directory.
pub const KUBERNETES_DIR: &str = "kubernetes";

mod files;
mod table;

pub use files::{Job, KubeFile, StackFile, paths};
pub use table::{Destination, Entry, SecretOf, Source, TABLE};

/// The directory of a login's client certificate and key.
pub fn client_dir(login: &str) -> String {
    format!("certs/clients/{login}")
}

/// Where a rotation keeps a new file until the server presents it (`server.crt.pending`).
pub fn pending(path: &str) -> String {
    format!("{path}.pending")
}

/// The mode a path of the stack directory must have: the mode of the file it names, or of the
/// file it is the pending replacement of. `None` for a path that is not hardstack's.
pub fn expected_mode(path: &str) -> Option<Mode> {
    let path = path.strip_suffix(".pending").unwrap_or(path);
    StackFile::parse(path).map(|file| file.mode())
}

/// Every file the stack directory of a profile holds once `init` ran (without `--systemd`).
/// The secrets are listed for the file store only.
pub fn files(profile: &Profile) -> Vec<StackFile> {
    let mut files = vec![StackFile::Profile, StackFile::Manifest, StackFile::CaCert, StackFile::CaKey];
    for service in services(profile) {
        files.push(StackFile::ServerCert(service));
        files.push(StackFile::ServerKey(service));
    }
    for login in client_logins(profile) {
        files.push(StackFile::ClientCert(login.clone()));
        files.push(StackFile::ClientKey(login));
    }
    if profile.secrets.store == crate::profile::StoreKind::File {
        files.extend(secret_names(profile).into_iter().map(|(name, _)| StackFile::Secret(name)));
    }
    files.extend(rendered(profile).map(|entry| entry.file.clone()));
    files
}

/// The entries of the files rendered for a profile, in rendering order.
pub fn rendered(profile: &Profile) -> impl Iterator<Item = &'static Entry> + '_ {
    TABLE.iter().filter(|entry| {
        entry.source.is_some()
            && entry.service.is_none_or(|s| profile.runs(s))
            && (!entry.replicas_only || profile.postgres.replicas > 0)
            && (!entry.redis_replicas_only || profile.redis.replicas > 0)
    })
}

/// The services a profile runs, in start order.
pub fn services(profile: &Profile) -> impl Iterator<Item = Service> + '_ {
    Service::ALL.into_iter().filter(|s| profile.runs(*s))
}

/// One file a service receives: which, into which volume and where, and how a change reaches
/// the running server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub file: StackFile,
    pub volume: Volume,
    /// The path inside the volume.
    pub path: &'static str,
    pub reach: Reach,
}

impl Delivered {
    /// What a layout entry delivers, if it is delivered at all.
    fn of(entry: &Entry) -> Option<Delivered> {
        let Destination { volume, path, reach } = entry.destination?;
        Some(Delivered { file: entry.file.clone(), volume, path, reach })
    }

    /// The file's path inside the service's container.
    pub fn container_path(&self, service: Service) -> String {
        format!("{}/{}", self.volume.mount_point(service), self.path)
    }
}

/// Every file a service receives, in delivery order: its files of the layout table, those of
/// its config volume first, then the server's key pair and the CA, with the healthcheck's
/// client certificate where servers require client certificates.
pub fn deliveries(profile: &Profile, service: Service) -> Vec<Delivered> {
    use Reach::{Live, Reload, Restart};
    let mut files: Vec<Delivered> = TABLE
        .iter()
        .filter(|entry| entry.service == Some(service) && !entry.replicas_only)
        .filter(|entry| !entry.redis_replicas_only || profile.redis.replicas > 0)
        .filter_map(Delivered::of)
        .collect();
    files.sort_by_key(|delivered| delivered.volume != Volume::Config);
    let config =
        |file: StackFile, path: &'static str, reach: Reach| Delivered { file, volume: Volume::Config, path, reach };
    // Qdrant re-reads its own certificate, but not the CA it verifies clients with; an
    // exporter verifies its server with the CA it read at start.
    let ca = if service == Service::Qdrant || service.is_monitoring() { Restart } else { Reload };
    files.extend([
        config(StackFile::ServerCert(service), "tls/server.crt", Reload),
        config(StackFile::ServerKey(service), "tls/server.key", Reload),
        config(StackFile::CaCert, "tls/ca.crt", ca),
    ]);
    if service == Service::Pgbouncer {
        // The certificate PgBouncer presents to PostgreSQL, for its own login and every other.
        files.push(config(StackFile::ClientCert(POOLER.into()), "tls/pooler.crt", Reload));
        files.push(config(StackFile::ClientKey(POOLER.into()), "tls/pooler.key", Reload));
    }
    if service.is_exporter() {
        // The monitor login's certificate, which the exporter presents to its server.
        files.push(config(StackFile::ClientCert(MONITOR.into()), "tls/monitor.crt", Restart));
        files.push(config(StackFile::ClientKey(MONITOR.into()), "tls/monitor.key", Restart));
    }
    if service == Service::QdrantFront {
        // The certificate the front presents to Qdrant.
        files.push(config(StackFile::ClientCert(FRONT.into()), "tls/front.crt", Reload));
        files.push(config(StackFile::ClientKey(FRONT.into()), "tls/front.key", Reload));
    }
    if service == Service::Prometheus {
        // The certificate Prometheus presents to the targets it scrapes.
        files.push(config(StackFile::ClientCert(SCRAPER.into()), "tls/scraper.crt", Reload));
        files.push(config(StackFile::ClientKey(SCRAPER.into()), "tls/scraper.key", Reload));
    }
    if service == Service::Redis && profile.redis.replicas > 0 {
        // The certificate a replica presents to its primary (`tls-client-cert-file`).
        files.push(config(StackFile::ClientCert(REDIS_REPLICA.into()), "tls/replica.crt", Live));
        files.push(config(StackFile::ClientKey(REDIS_REPLICA.into()), "tls/replica.key", Live));
    }
    if service == Service::RedisSentinel {
        // The certificate a Sentinel presents to the nodes and to the other Sentinels.
        files.push(config(StackFile::ClientCert(SENTINEL.into()), "tls/sentinel.crt", Restart));
        files.push(config(StackFile::ClientKey(SENTINEL.into()), "tls/sentinel.key", Restart));
    }
    if profile.mutual_tls() && !matches!(service, Service::Qdrant | Service::QdrantFront) && !service.is_monitoring() {
        // The healthcheck inside the container needs a client certificate too.
        files.push(config(StackFile::ClientCert(HEALTH.into()), "tls/health.crt", Live));
        files.push(config(StackFile::ClientKey(HEALTH.into()), "tls/health.key", Live));
    }
    files
}

/// Every file a PostgreSQL replica receives, in its own config volume at the same paths as
/// node 0's: node 0's files, the init SQL in the config volume (a replica is a copy, never
/// initdb'd; it applies the file over its socket once it is the primary), then the replication
/// login's pgpass file and client certificate, which it presents to the primary
/// (`primary_conninfo`). Node 0 has the init SQL in its initdb volume and receives the
/// replication login's files too (`replication_deliveries`).
pub fn replica_deliveries(profile: &Profile) -> Vec<Delivered> {
    let mut files: Vec<Delivered> =
        deliveries(profile, Service::Postgres).into_iter().filter(|d| d.volume != Volume::Initdb).collect();
    files.push(Delivered { file: StackFile::InitSql, volume: Volume::Config, path: "init.sql", reach: Reach::Nothing });
    files.extend(replication_deliveries());
    files
}

/// The replication login's files a standby reads (`primary_conninfo`): its pgpass file and
/// client certificate, in the config volume. Every node receives them where the stack runs
/// replicas; they are left out of the config hash, so the first replica added recreates no
/// node 0.
pub fn replication_deliveries() -> Vec<Delivered> {
    let config =
        |file: StackFile, path: &'static str| Delivered { file, volume: Volume::Config, path, reach: Reach::Live };
    let mut files: Vec<Delivered> =
        TABLE.iter().filter(|entry| entry.replicas_only).filter_map(Delivered::of).collect();
    files.push(config(StackFile::ClientCert(REPLICATION.into()), "tls/replication.crt"));
    files.push(config(StackFile::ClientKey(REPLICATION.into()), "tls/replication.key"));
    files
}

/// Where, in a service's config volume, `up` records the digest of every file it delivered,
/// so a changed file is seen and delivered, whatever its reach.
pub const DELIVERY_RECORD: &str = ".hardstack-delivered.json";

/// The path inside a service's container of a file it receives.
pub fn container_path(profile: &Profile, service: Service, file: &StackFile) -> Option<String> {
    deliveries(profile, service).into_iter().find(|d| d.file == *file).map(|d| d.container_path(service))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{ProfileSource, load};

    fn shipped(name: &str) -> Profile {
        load(&ProfileSource::Shipped(name.into()), &[]).unwrap().profile
    }

    #[test]
    fn every_path_parses_back_to_its_file() {
        for name in ["dev", "test", "prod"] {
            let profile = shipped(name);
            let mut all = files(&profile);
            for job in Job::ALL {
                all.push(StackFile::SystemdService(job, profile.stack.name.clone()));
                all.push(StackFile::SystemdTimer(job, profile.stack.name.clone()));
            }
            all.extend(KubeFile::all().map(StackFile::Kubernetes));
            for file in all {
                assert_eq!(StackFile::parse(&file.path()), Some(file.clone()), "{name}: {}", file.path());
            }
        }
        assert_eq!(StackFile::parse("notes.txt"), None);
        assert_eq!(StackFile::parse("certs/mysql/server.crt"), None);
    }

    #[test]
    fn keys_secrets_and_files_holding_them_are_private() {
        let profile = shipped("dev");
        for file in files(&profile) {
            let path = file.path();
            let holds_secret = path.ends_with(".key")
                || path.contains("secrets/")
                || matches!(
                    file,
                    StackFile::UsersAcl
                        | StackFile::QdrantConfig
                        | StackFile::FrontRoles
                        | StackFile::InitSql
                        | StackFile::Manifest
                );
            assert_eq!(file.mode() == Mode::Private, holds_secret, "{path}");
        }
        assert_eq!(expected_mode("certs/postgres/server.key.pending"), Some(Mode::Private));
        assert_eq!(expected_mode("certs/postgres/server.crt.pending"), Some(Mode::Public));
    }

    #[test]
    fn every_delivered_file_is_a_file_of_the_stack() {
        for name in ["dev", "test", "prod"] {
            let profile = shipped(name);
            let all = files(&profile);
            for service in services(&profile) {
                for delivered in deliveries(&profile, service) {
                    assert!(all.contains(&delivered.file), "{name}: {service} receives {:?}", delivered.file);
                }
            }
        }
    }

    #[test]
    fn the_table_names_each_file_and_path_once() {
        for (i, entry) in TABLE.iter().enumerate() {
            for other in &TABLE[i + 1..] {
                assert_ne!(entry.file, other.file);
                assert_ne!(entry.path, other.path);
            }
            assert_eq!(entry.destination.is_some(), entry.service.is_some(), "{:?}", entry.file);
            assert!(
                entry.destination.is_none() || entry.source.is_some(),
                "{:?} is delivered but not rendered",
                entry.file
            );
        }
    }

    #[test]
    fn every_file_is_at_the_root_or_in_a_written_directory() {
        let profile = shipped("prod");
        let mut all = files(&profile);
        all.extend(Job::ALL.map(|job| StackFile::SystemdService(job, "s".into())));
        all.extend(KubeFile::all().map(StackFile::Kubernetes));
        all.push(StackFile::Template("postgres/pg_hba.conf.tera".into()));
        for file in all {
            let path = file.path();
            match path.split_once('/') {
                None => {}
                Some((top, _)) => assert!(WRITTEN_DIRS.contains(&top), "{path}: {top} is not in WRITTEN_DIRS"),
            }
        }
    }
}
