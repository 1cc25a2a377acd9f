//! The container posture of each service: one `ContainerSpec` per service and the file
//! deliveries into its volumes. Both `docker-compose.yml` and `up` are made from these specs,
//! so the two can never drift apart. Pure: profile in, specs out.

use serde::Serialize;

use crate::layout::{self, Reach, StackFile, Volume};
use crate::profile::{DataMode, Profile, Service};

/// The image images/build.sh makes for a service (Qdrant's from a release binary the user has,
/// `--qdrant-binary`): what `up` uses when the profile's image is missing and cannot be pulled.
pub fn local_image(service: Service) -> &'static str {
    match service {
        Service::Postgres => "hardstack-local/postgres:17",
        Service::Redis | Service::RedisSentinel => "hardstack-local/redis:8",
        Service::Qdrant => "hardstack-local/qdrant:v1.18.3-unprivileged",
        Service::Pgbouncer => crate::profile::PGBOUNCER_LOCAL_IMAGE,
        Service::QdrantFront => crate::profile::QDRANT_FRONT_LOCAL_IMAGE,
        Service::PostgresExporter | Service::RedisExporter | Service::PgbouncerExporter | Service::Prometheus => {
            crate::profile::MONITORING_LOCAL_IMAGE
        }
    }
}

/// Where Prometheus's data volume is mounted.
pub const PROMETHEUS_DATA_MOUNT: &str = "/prometheus";

/// Where PostgreSQL's WAL volume is mounted.
pub const POSTGRES_WAL_MOUNT: &str = "/var/lib/postgresql/wal";

/// Label every object of a stack carries; `down` and cleanup filter on it.
pub const STACK_LABEL: &str = "hardstack.stack";
/// Label naming the service of a container or volume.
pub const SERVICE_LABEL: &str = "hardstack.service";
/// Label carrying the identity of the stack directory that made an object (`identity`).
pub const ID_LABEL: &str = "hardstack.stack-id";
/// Label carrying the absolute path of that directory, to name it in a refusal.
pub const DIR_LABEL: &str = "hardstack.dir";

/// A named volume and where it is mounted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeMount {
    /// Short name in the compose file (`postgres-config`).
    pub key: String,
    /// Engine-wide volume name (`<stack>-postgres-config`).
    pub name: String,
    /// Mount point in the container.
    pub target: String,
    pub read_only: bool,
}

/// A directory of the engine's host mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BindMount {
    /// The host directory as the profile names it: absolute, or relative to the stack directory.
    pub source: String,
    pub target: String,
}

impl BindMount {
    /// The host directory, a relative source resolved against the stack directory.
    pub fn host_path(&self, stack_dir: &std::path::Path) -> std::path::PathBuf {
        stack_dir.join(&self.source)
    }
}

/// A tmpfs mount with its options (`uid=999,gid=999,mode=0700`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TmpfsMount {
    pub target: String,
    pub options: String,
}

/// One file copied from the stack directory into a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// The file of the stack directory (serialized as its path, `source`).
    #[serde(rename = "source", serialize_with = "serialize_path")]
    pub file: StackFile,
    /// Volume key the file goes into.
    pub volume: String,
    /// Path inside the volume.
    pub path: String,
    /// Owner uid and gid.
    pub uid: u32,
    /// Octal mode.
    pub mode: String,
    /// How a change reaches the running server once delivered.
    pub reach: Reach,
}

fn serialize_path<S: serde::Serializer>(file: &StackFile, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&file.path())
}

impl Delivery {
    /// Where it lands: the volume, the path in it, owner and mode.
    pub fn placement(&self) -> crate::containers::Placement {
        Placement { volume: self.volume.clone(), path: self.path.clone(), uid: self.uid, mode: self.mode.clone() }
    }

    /// The file's path inside the container of `spec`.
    pub fn container_path(&self, spec: &ContainerSpec) -> String {
        let mount = spec.volumes.iter().find(|v| v.key == self.volume).map(|v| v.target.as_str()).unwrap_or_default();
        format!("{mount}/{}", self.path)
    }
}

/// Where a file lands in a volume, with its owner and mode: a delivery's, or a file hardstack
/// puts there itself (the delivery record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Volume key.
    pub volume: String,
    /// Path inside the volume.
    pub path: String,
    pub uid: u32,
    /// Octal mode.
    pub mode: String,
}

/// Everything the engine needs to run one service with its hardened posture.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerSpec {
    pub service: Service,
    pub name: String,
    pub alias: String,
    pub image: String,
    /// `uid:gid`: never root.
    pub user: String,
    pub entrypoint: Option<Vec<String>>,
    pub command: Vec<String>,
    /// Environment: paths and flags only, never a secret.
    pub environment: Vec<(String, String)>,
    pub volumes: Vec<VolumeMount>,
    /// Host directories (PostgreSQL's WAL archive). Left out of the config hash when empty, so
    /// adding the field recreated no container.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub binds: Vec<BindMount>,
    pub tmpfs: Vec<TmpfsMount>,
    /// Capabilities kept after dropping ALL.
    pub cap_add: Vec<String>,
    pub memory_bytes: u64,
    pub nano_cpus: u64,
    pub pids: u32,
    /// Host port binding, when published.
    pub publish: Option<(String, u16)>,
    pub container_port: u16,
    /// Ports beyond the first (the front's gRPC port), each with its host binding when
    /// published. Left out of the config hash when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_ports: Vec<ExtraPort>,
    /// The resolver's options (`resolv.conf`). Left out of the config hash when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_options: Vec<String>,
    /// Healthcheck command (CMD-SHELL).
    pub healthcheck: String,
    pub deliveries: Vec<Delivery>,
    /// Directories made in volumes before the server starts, owned by its uid (0700): where it
    /// must create something in a volume whose root belongs to root.
    pub directories: Vec<OwnedDir>,
    /// The stack network the container joins (by `alias`).
    pub network: String,
    /// Read-only root, capabilities dropped, no new privileges, seccomp, restart, healthcheck
    /// timing.
    pub posture: Posture,
}

/// A port beyond a container's first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtraPort {
    /// What it serves (`grpc`): the port's name in Kubernetes.
    pub name: String,
    pub container_port: u16,
    /// Host binding, when published.
    pub publish: Option<(String, u16)>,
}

/// The hardening of a container beyond its user, mounts and limits; `up`, the compose file and
/// the Kubernetes manifests all apply it from here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Posture {
    /// The root filesystem is read-only; the server writes only to its volumes and tmpfs.
    pub read_only_root: bool,
    /// Capabilities dropped (`cap_add` keeps the few a server needs back).
    pub cap_drop: Vec<String>,
    /// `no-new-privileges`: no setuid binary or file capability raises a process's privileges.
    pub no_new_privileges: bool,
    /// The seccomp profile.
    pub seccomp: Seccomp,
    /// The engine's restart policy.
    pub restart: String,
    /// When the engine runs the healthcheck.
    pub health: HealthTiming,
}

/// A seccomp profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Seccomp {
    /// The container runtime's default profile (the engine applies it unless told otherwise;
    /// Kubernetes names it `RuntimeDefault`).
    RuntimeDefault,
}

/// The healthcheck's timing, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HealthTiming {
    pub interval: u32,
    pub timeout: u32,
    pub retries: u32,
    /// Failures in this first period do not count (initdb, a first start).
    pub start_period: u32,
}

impl Posture {
    /// Every service's posture.
    pub fn hardened() -> Posture {
        Posture {
            read_only_root: true,
            cap_drop: vec!["ALL".into()],
            no_new_privileges: true,
            seccomp: Seccomp::RuntimeDefault,
            restart: "unless-stopped".into(),
            health: HealthTiming { interval: 2, timeout: 5, retries: 30, start_period: 60 },
        }
    }
}

/// A directory made in a volume, owned by the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnedDir {
    /// The volume key.
    pub volume: String,
    /// The path inside the volume.
    pub path: String,
    pub uid: u32,
}

/// Stack-wide names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StackNames {
    pub stack: String,
    pub network: String,
    /// Whether the network is internal (no egress, nothing published).
    pub internal: bool,
}

/// The names of the stack's data volumes (WAL and configuration aside): what a backup holds.
pub fn data_volumes(profile: &Profile) -> Vec<String> {
    container_specs(profile)
        .into_iter()
        .flat_map(|spec| spec.volumes.into_iter().filter(|v| v.key.ends_with("-data")).map(|v| v.name))
        .collect()
}

/// Names of the stack's network.
pub fn stack_names(profile: &Profile) -> StackNames {
    StackNames {
        stack: profile.stack.name.clone(),
        network: format!("{}-net", profile.stack.name),
        internal: !profile.network.publish,
    }
}

/// The container name of a service.
pub fn container_name(profile: &Profile, service: Service) -> String {
    format!("{}-{}", profile.stack.name, service.name())
}

/// The names PostgreSQL sees PgBouncer's connections come from, when the stack runs it, as
/// pg_hba.conf matches a host name (the reverse lookup of the address, confirmed forward): the
/// engine's DNS answers the container's address with `<container>.<network>`; in a cluster,
/// the pod of the StatefulSet is `pgbouncer-0.pgbouncer-headless.<namespace>.svc.cluster.local`,
/// matched by its suffix (a leading dot). Empty without PgBouncer.
pub fn pooler_hosts(profile: &Profile) -> Vec<String> {
    if !profile.runs(Service::Pgbouncer) {
        return Vec::new();
    }
    let service = Service::Pgbouncer;
    vec![
        format!("{}.{}", container_name(profile, service), stack_names(profile).network),
        format!(".{service}-headless.{}.svc.cluster.local", profile.kubernetes_namespace()),
    ]
}

fn volume(profile: &Profile, service: Service, what: &str, target: &str, read_only: bool) -> VolumeMount {
    let key = format!("{}-{what}", service.name());
    VolumeMount { name: format!("{}-{key}", profile.stack.name), key, target: target.into(), read_only }
}

fn delivered_volume(profile: &Profile, service: Service, kind: Volume, read_only: bool) -> VolumeMount {
    let key = kind.key(service);
    VolumeMount {
        name: format!("{}-{key}", profile.stack.name),
        key,
        target: kind.mount_point(service).into(),
        read_only,
    }
}

/// The deliveries of a service, from the layout, with the server's owner.
fn deliveries(profile: &Profile, service: Service) -> Vec<Delivery> {
    let mut delivered = layout::deliveries(profile, service);
    // Node 0 follows a new primary once a switchover made it a standby: it holds the
    // replication login's files wherever the stack runs replicas.
    if service == Service::Postgres && profile.postgres.replicas > 0 {
        delivered.extend(layout::replication_deliveries());
    }
    delivered.into_iter().map(|delivered| delivery(service, delivered)).collect()
}

/// One file of the layout as `service`'s container receives it, owned by the server.
pub fn delivery(service: Service, delivered: layout::Delivered) -> Delivery {
    Delivery {
        file: delivered.file,
        volume: delivered.volume.key(service),
        path: delivered.path.into(),
        uid: service.uid(),
        // SECURITY: 0600 and owned by the server's uid: PostgreSQL refuses a key group or
        // others can read.
        mode: "0600".into(),
        reach: delivered.reach,
    }
}

fn data_mount(
    profile: &Profile,
    service: Service,
    mode: DataMode,
    target: &str,
    volumes: &mut Vec<VolumeMount>,
    tmpfs: &mut Vec<TmpfsMount>,
) {
    let uid = service.uid();
    match mode {
        DataMode::Volume => volumes.push(volume(profile, service, "data", target, false)),
        DataMode::Tmpfs => {
            tmpfs.push(TmpfsMount { target: target.into(), options: format!("uid={uid},gid={uid},mode=0700") })
        }
    }
}

/// The WAL archive's host directory as the profile names it (absolute, or relative to the
/// stack directory).
pub fn archive_dir(profile: &Profile) -> String {
    format!("{}/{}", profile.backup.dir.trim_end_matches('/'), layout::backups::ARCHIVE)
}

impl ContainerSpec {
    /// Every port the container serves, each with its name: the first (named as the service),
    /// then the others (the gRPC port of Qdrant and its front).
    pub fn ports(&self) -> Vec<(String, u16)> {
        std::iter::once((self.alias.clone(), self.container_port))
            .chain(self.extra_ports.iter().map(|p| (p.name.clone(), p.container_port)))
            .collect()
    }

    /// The port whose being open is the service's whole healthcheck (a monitoring service's):
    /// the Kubernetes target makes it a `tcpSocket` probe, which needs no shell in the image.
    pub fn port_check(&self) -> Option<u16> {
        self.service.is_monitoring().then_some(self.container_port)
    }
}

/// A monitoring service's healthcheck: its port open. A scrape needs a client certificate, and the
/// upstream images have no client that presents one; verify scrapes it for real.
fn exporter_health(service: Service) -> String {
    format!(
        "bash -c ':> /dev/tcp/127.0.0.1/{}' 2>/dev/null || nc -z 127.0.0.1 {}",
        service.container_port(),
        service.container_port()
    )
}

/// Qdrant's gRPC port, in its container and in the front's.
pub use crate::endpoint::QDRANT_GRPC_PORT;

/// The spec of every service the profile runs, in start order.
pub fn container_specs(profile: &Profile) -> Vec<ContainerSpec> {
    Service::ALL.into_iter().filter(|s| profile.runs(*s)).map(|s| container_spec(profile, s)).collect()
}

/// The spec of every service's container as the engine runs it: PostgreSQL's is its primary
/// node's (see `replica`; the standbys are `replica::specs`).
pub fn running_specs(profile: &Profile) -> Vec<ContainerSpec> {
    container_specs(profile)
        .into_iter()
        .map(|spec| match spec.service {
            Service::Postgres => crate::replica::primary_spec(profile),
            _ => spec,
        })
        .collect()
}

/// The name of a service's container as the engine runs it: PostgreSQL's primary node's.
pub fn running_name(profile: &Profile, service: Service) -> String {
    match service {
        Service::Postgres => crate::replica::primary_name(profile),
        _ => container_name(profile, service),
    }
}

/// The spec of one service.
pub fn container_spec(profile: &Profile, service: Service) -> ContainerSpec {
    let uid = service.uid();
    let mut volumes = Vec::new();
    let mut tmpfs = vec![TmpfsMount { target: "/tmp".into(), options: format!("uid={uid},gid={uid},mode=0700") }];
    let mut environment = Vec::new();
    let mut entrypoint = None;
    let mut directories = Vec::new();
    let mut binds = Vec::new();
    let mutual = profile.mutual_tls();
    // Where the server finds a delivered file.
    let at = |file: StackFile| layout::container_path(profile, service, &file).expect("the service receives the file");
    let deliveries = deliveries(profile, service);
    // The healthcheck's client certificate in a libpq connection string, where servers demand one.
    let libpq_client_cert = || match mutual {
        true => format!(
            " sslcert={} sslkey={}",
            at(StackFile::ClientCert(layout::HEALTH.into())),
            at(StackFile::ClientKey(layout::HEALTH.into()))
        ),
        false => String::new(),
    };
    let (command, healthcheck) = match service {
        Service::Postgres => {
            let config = delivered_volume(profile, service, Volume::Config, true);
            let initdb = delivered_volume(profile, service, Volume::Initdb, true);
            environment.push(("POSTGRES_PASSWORD_FILE".into(), at(StackFile::SuperuserPassword)));
            environment.push((
                "POSTGRES_INITDB_ARGS".into(),
                "--auth-local=scram-sha-256 --auth-host=scram-sha-256 --data-checksums".into(),
            ));
            tmpfs.push(TmpfsMount {
                target: "/var/run/postgresql".into(),
                options: format!("uid={uid},gid={uid},mode=0770"),
            });
            volumes.push(config);
            volumes.push(initdb);
            data_mount(profile, service, profile.postgres.data, "/var/lib/postgresql/data", &mut volumes, &mut tmpfs);
            if profile.postgres.data == DataMode::Volume {
                // WAL on a volume of its own, not beside the data (CIS 1.4.4), set at initdb.
                let wal = volume(profile, service, "wal", POSTGRES_WAL_MOUNT, false);
                directories.push(OwnedDir { volume: wal.key.clone(), path: "pg".into(), uid });
                environment.push(("POSTGRES_INITDB_WALDIR".into(), format!("{POSTGRES_WAL_MOUNT}/pg/pg_wal")));
                volumes.push(wal);
            }
            if profile.backup.wal_archive {
                binds.push(BindMount { source: archive_dir(profile), target: layout::backups::ARCHIVE_MOUNT.into() });
            }
            let client = libpq_client_cert();
            // Over TCP with verify-full and a real query: the entrypoint's init server listens on the
            // socket only, so this cannot pass before the real server is up (pg_isready on the socket can).
            let health = format!(
                "PGPASSFILE={} psql -w -tA -c 'select 1' \"host=127.0.0.1 port=5432 dbname=postgres user={} sslmode=verify-full sslrootcert={}{client}\" | grep -qx 1",
                at(StackFile::HealthPgpass),
                layout::HEALTH,
                at(StackFile::CaCert)
            );
            (vec!["postgres".into(), "-c".into(), format!("config_file={}", at(StackFile::PostgresConf))], health)
        }
        Service::Redis | Service::RedisSentinel => {
            volumes.push(delivered_volume(profile, service, Volume::Config, false));
            let client = if mutual {
                format!(
                    " --cert {} --key {}",
                    at(StackFile::ClientCert(layout::HEALTH.into())),
                    at(StackFile::ClientKey(layout::HEALTH.into()))
                )
            } else {
                String::new()
            };
            let password = match service {
                Service::Redis => StackFile::RedisHealthPassword,
                _ => StackFile::SentinelHealthPassword,
            };
            // redis-cli exits 0 on NOAUTH, so the answer itself must be PONG.
            let health = format!(
                "REDISCLI_AUTH=\"$(cat {})\" redis-cli --tls --cacert {}{client} -h 127.0.0.1 -p {} --user {} --no-auth-warning ping | grep -qx PONG",
                at(password),
                at(StackFile::CaCert),
                service.container_port(),
                layout::HEALTH
            );
            let command = match service {
                Service::Redis => {
                    data_mount(profile, service, profile.redis.data, "/data", &mut volumes, &mut tmpfs);
                    let mut command = vec!["redis-server".into(), at(StackFile::RedisConf)];
                    // Where the stack runs replicas, each node names itself by its alias, which
                    // Sentinel then gives clients (and the certificate covers).
                    if profile.redis.replicas > 0 {
                        command.extend(["--replica-announce-ip".into(), service.name().into()]);
                    }
                    command
                }
                _ => {
                    // The image declares /data a volume: a tmpfs, so no anonymous volume is made.
                    tmpfs
                        .push(TmpfsMount { target: "/data".into(), options: format!("uid={uid},gid={uid},mode=0700") });
                    // A Sentinel's own file is a copy of the declared one, made once: it holds
                    // the Sentinel's id and what it learned, which a restart must keep. It
                    // announces its alias ($1), not its address, which a restart may change:
                    // the other Sentinels would keep the old address as one more Sentinel.
                    // It marks a silent primary down after its own delay ($2).
                    let declared = at(StackFile::SentinelConf);
                    let dir = declared.rsplit_once('/').map(|(dir, _)| dir.to_owned()).unwrap_or_default();
                    let script = format!(
                        "cd {dir} && {{ [ -s sentinel.conf ] || cp declared.conf sentinel.conf; }} && exec redis-server sentinel.conf --sentinel announce-ip \"$1\" --sentinel down-after-milliseconds {} \"$2\"",
                        crate::sentinel::master_name(profile)
                    );
                    let down_after = crate::sentinel::down_after_ms(0).to_string();
                    vec!["sh".into(), "-c".into(), script, "sh".into(), service.name().into(), down_after]
                }
            };
            (command, health)
        }
        Service::Qdrant => {
            volumes.push(delivered_volume(profile, service, Volume::Config, true));
            data_mount(profile, service, profile.qdrant.data, "/qdrant/storage", &mut volumes, &mut tmpfs);
            tmpfs.push(TmpfsMount {
                target: "/qdrant/snapshots".into(),
                options: format!("uid={uid},gid={uid},mode=0700"),
            });
            entrypoint = Some(vec!["/qdrant/qdrant".into()]);
            // The image has no curl or wget (its Dockerfile installs ca-certificates, tzdata and
            // libunwind8 only; https://github.com/qdrant/qdrant/issues/4250): the healthcheck can
            // only see the port open.
            let health = "bash -c ':> /dev/tcp/127.0.0.1/6333'".to_owned();
            let mut command = vec!["--config-path".into(), at(StackFile::QdrantConfig)];
            command.extend(crate::peers::arguments(profile, 0));
            (command, health)
        }
        Service::QdrantFront => {
            volumes.push(delivered_volume(profile, service, Volume::Config, true));
            entrypoint = Some(vec!["haproxy".into()]);
            // HAProxy's images have no HTTP client: the healthcheck sees the REST port open;
            // `up` and verify go through it with a key.
            let health = format!("bash -c ':> /dev/tcp/127.0.0.1/{}'", service.container_port());
            (vec!["-W".into(), "-db".into(), "-f".into(), at(StackFile::FrontConfig)], health)
        }
        Service::Pgbouncer => {
            volumes.push(delivered_volume(profile, service, Volume::Config, true));
            let client = libpq_client_cert();
            // pg_isready: a TLS handshake verified against the stack CA, and an answer to a
            // startup packet (PgBouncer looks the login up in PostgreSQL first).
            let health = format!(
                "pg_isready -q -t 5 -d \"host=127.0.0.1 port=6432 dbname=postgres user={} sslmode=verify-full sslrootcert={}{client}\"",
                layout::HEALTH,
                at(StackFile::CaCert)
            );
            (vec![at(StackFile::PgbouncerIni)], health)
        }
        Service::PostgresExporter => {
            volumes.push(delivered_volume(profile, service, Volume::Config, true));
            entrypoint = Some(vec!["/bin/postgres_exporter".into()]);
            // lib/pq's connection string: verify-full against the alias, the monitor login's
            // certificate, its password from a file (never in the environment).
            environment.push((
                "DATA_SOURCE_URI".into(),
                format!(
                    "{}:{}/postgres?sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
                    crate::endpoint::network_endpoint(profile, Service::Postgres).host,
                    Service::Postgres.container_port(),
                    at(StackFile::CaCert),
                    at(StackFile::ClientCert(layout::MONITOR.into())),
                    at(StackFile::ClientKey(layout::MONITOR.into()))
                ),
            ));
            environment.push(("DATA_SOURCE_USER".into(), layout::MONITOR.into()));
            environment.push(("DATA_SOURCE_PASS_FILE".into(), at(StackFile::PostgresExporterPassword)));
            let command = vec![
                format!("--web.listen-address=:{}", service.container_port()),
                format!("--web.config.file={}", at(StackFile::PostgresExporterWeb)),
                // 0.17 has no archiver collector; the query is its own (deprecated, still read).
                format!("--extend.query-path={}", at(StackFile::PostgresExporterQueries)),
            ];
            (command, exporter_health(service))
        }
        Service::RedisExporter => {
            volumes.push(delivered_volume(profile, service, Volume::Config, true));
            entrypoint = Some(vec!["/redis_exporter".into()]);
            let command = vec![
                format!("-redis.addr={}", layout::REDIS_EXPORTER_TARGET),
                format!("-redis.user={}", layout::MONITOR),
                format!("-redis.password-file={}", at(StackFile::RedisExporterPasswords)),
                format!("-tls-ca-cert-file={}", at(StackFile::CaCert)),
                format!("-tls-client-cert-file={}", at(StackFile::ClientCert(layout::MONITOR.into()))),
                format!("-tls-client-key-file={}", at(StackFile::ClientKey(layout::MONITOR.into()))),
                // Scrapes over TLS, from a client presenting a certificate of the stack CA.
                format!("-tls-server-cert-file={}", at(StackFile::ServerCert(service))),
                format!("-tls-server-key-file={}", at(StackFile::ServerKey(service))),
                format!("-tls-server-ca-cert-file={}", at(StackFile::CaCert)),
                format!("-web.listen-address=:{}", service.container_port()),
            ];
            (command, exporter_health(service))
        }
        Service::PgbouncerExporter => {
            volumes.push(delivered_volume(profile, service, Volume::Config, true));
            entrypoint = Some(vec!["/bin/pgbouncer_exporter".into()]);
            // lib/pq reads the monitor login's password from the pgpass file the environment
            // names (a path, never the secret).
            environment.push(("PGPASSFILE".into(), at(StackFile::PgbouncerExporterPgpass)));
            let command = vec![
                format!(
                    "--pgBouncer.connectionString=postgres://{}@{}:{}/pgbouncer?sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
                    layout::MONITOR,
                    Service::Pgbouncer.name(),
                    Service::Pgbouncer.container_port(),
                    at(StackFile::CaCert),
                    at(StackFile::ClientCert(layout::MONITOR.into())),
                    at(StackFile::ClientKey(layout::MONITOR.into()))
                ),
                // PgBouncer's process is in another container: no process metrics.
                "--pgBouncer.pid-file=".into(),
                format!("--web.listen-address=:{}", service.container_port()),
                format!("--web.config.file={}", at(StackFile::PgbouncerExporterWeb)),
            ];
            (command, exporter_health(service))
        }
        Service::Prometheus => {
            volumes.push(delivered_volume(profile, service, Volume::Config, true));
            // The TSDB in a directory of its own that Prometheus owns: the volume's root
            // belongs to root.
            let data = volume(profile, service, "data", PROMETHEUS_DATA_MOUNT, false);
            directories.push(OwnedDir { volume: data.key.clone(), path: "tsdb".into(), uid });
            volumes.push(data);
            entrypoint = Some(vec!["/bin/prometheus".into()]);
            let command = vec![
                format!("--config.file={}", at(StackFile::PrometheusConfig)),
                format!("--web.config.file={}", at(StackFile::PrometheusWeb)),
                format!("--web.listen-address=:{}", service.container_port()),
                format!("--storage.tsdb.path={PROMETHEUS_DATA_MOUNT}/tsdb"),
                format!("--storage.tsdb.retention.time={}s", profile.prometheus.retention.0.as_secs()),
            ];
            (command, exporter_health(service))
        }
    };
    let limits = profile.resources.of(service);
    ContainerSpec {
        service,
        name: container_name(profile, service),
        alias: service.name().into(),
        image: profile.images.of(service).into(),
        user: format!("{uid}:{uid}"),
        entrypoint,
        command,
        environment,
        volumes,
        binds,
        tmpfs,
        cap_add: Vec::new(),
        memory_bytes: limits.memory.0,
        nano_cpus: (limits.cpus * 1e9) as u64,
        pids: limits.pids,
        publish: crate::endpoint::publishes(profile, service)
            .then(|| (profile.network.bind_address.to_string(), profile.network.ports.of(service))),
        container_port: service.container_port(),
        // Redis and Sentinel resolve a node's name in their event loop: a lookup of a node that
        // is gone must fail within a second, not block for the resolver's 5 (a Sentinel that
        // stalls 2 seconds enters TILT mode and acts on nothing for 30).
        dns_options: match service {
            Service::Redis | Service::RedisSentinel if profile.redis.replicas > 0 => {
                vec!["timeout:1".into(), "attempts:1".into()]
            }
            _ => Vec::new(),
        },
        extra_ports: match service {
            // Behind a front, Qdrant serves gRPC to it on the stack network.
            Service::Qdrant => {
                let grpc = ExtraPort { name: "grpc".into(), container_port: QDRANT_GRPC_PORT, publish: None };
                profile.fronted(service).then_some(grpc).into_iter().chain(crate::peers::extra_ports(profile)).collect()
            }
            Service::QdrantFront => vec![ExtraPort {
                name: "grpc".into(),
                container_port: QDRANT_GRPC_PORT,
                publish: crate::endpoint::publishes(profile, service)
                    .then(|| (profile.network.bind_address.to_string(), profile.network.ports.qdrant_grpc)),
            }],
            _ => Vec::new(),
        },
        healthcheck,
        deliveries,
        directories,
        network: stack_names(profile).network,
        posture: Posture::hardened(),
    }
}
