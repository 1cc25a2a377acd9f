//! The container posture of each service: one `ContainerSpec` per service and the file
//! deliveries into its volumes. Both `docker-compose.yml` and `up` are made from these specs,
//! so the two can never drift apart. Pure: profile in, specs out.

use serde::Serialize;

use crate::profile::{DataMode, Profile, Service};

/// Where PostgreSQL finds its delivered files.
pub const POSTGRES_DIR: &str = "/etc/hardstack";
/// Where Redis finds its delivered files; writable, for ACL SAVE.
pub const REDIS_DIR: &str = "/usr/local/etc/redis";
/// Where Qdrant finds its delivered files.
pub const QDRANT_DIR: &str = "/qdrant/hardstack";

/// Label every object of a stack carries; `down` and cleanup filter on it.
pub const STACK_LABEL: &str = "hardstack.stack";
/// Label naming the service of a container or volume.
pub const SERVICE_LABEL: &str = "hardstack.service";

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

/// A tmpfs mount with its options (`uid=999,gid=999,mode=0700`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TmpfsMount {
    pub target: String,
    pub options: String,
}

/// One file copied from the stack directory into a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// Path relative to the stack directory.
    pub source: String,
    /// Volume key the file goes into.
    pub volume: String,
    /// Path inside the volume.
    pub path: String,
    /// Owner uid and gid.
    pub uid: u32,
    /// Octal mode.
    pub mode: String,
    /// Changed on the running server by rotation (certificates, ACL file, init SQL, health
    /// passwords), so its
    /// content is not part of the container's config hash: a rotation never recreates a container.
    pub live: bool,
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
    pub tmpfs: Vec<TmpfsMount>,
    /// Capabilities kept after dropping ALL.
    pub cap_add: Vec<String>,
    pub memory_bytes: u64,
    pub nano_cpus: u64,
    pub pids: u32,
    /// Host port binding, when published.
    pub publish: Option<(String, u16)>,
    pub container_port: u16,
    /// Healthcheck command (CMD-SHELL).
    pub healthcheck: String,
    pub deliveries: Vec<Delivery>,
}

/// Stack-wide names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StackNames {
    pub stack: String,
    pub network: String,
    /// Whether the network is internal (no egress, nothing published).
    pub internal: bool,
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

fn volume(profile: &Profile, service: Service, what: &str, target: &str, read_only: bool) -> VolumeMount {
    let key = format!("{}-{what}", service.name());
    VolumeMount { name: format!("{}-{key}", profile.stack.name), key, target: target.into(), read_only }
}

fn deliver(source: impl Into<String>, volume: &VolumeMount, path: &str, uid: u32) -> Delivery {
    // SECURITY: 0600 and owned by the server's uid: PostgreSQL refuses a key group or others can read.
    Delivery {
        source: source.into(),
        volume: volume.key.clone(),
        path: path.into(),
        uid,
        mode: "0600".into(),
        live: false,
    }
}

fn live(delivery: Delivery) -> Delivery {
    Delivery { live: true, ..delivery }
}

fn tls_deliveries(profile: &Profile, service: Service, config: &VolumeMount) -> Vec<Delivery> {
    let uid = service.uid();
    let mut files = vec![
        live(deliver(format!("certs/{service}/server.crt"), config, "tls/server.crt", uid)),
        live(deliver(format!("certs/{service}/server.key"), config, "tls/server.key", uid)),
        deliver("ca/ca.crt", config, "tls/ca.crt", uid),
    ];
    if profile.mutual_tls() && service != Service::Qdrant {
        // The healthcheck inside the container needs a client certificate too.
        files.push(deliver("certs/clients/health/client.crt", config, "tls/health.crt", uid));
        files.push(deliver("certs/clients/health/client.key", config, "tls/health.key", uid));
    }
    files
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

/// The spec of every service the profile runs, in start order.
pub fn container_specs(profile: &Profile) -> Vec<ContainerSpec> {
    Service::ALL.into_iter().filter(|s| profile.runs(*s)).map(|s| container_spec(profile, s)).collect()
}

/// The spec of one service.
pub fn container_spec(profile: &Profile, service: Service) -> ContainerSpec {
    let uid = service.uid();
    let mut volumes = Vec::new();
    let mut tmpfs = vec![TmpfsMount { target: "/tmp".into(), options: format!("uid={uid},gid={uid},mode=0700") }];
    let mut environment = Vec::new();
    let mut entrypoint = None;
    let mutual = profile.mutual_tls();
    let (command, healthcheck, deliveries) = match service {
        Service::Postgres => {
            let config = volume(profile, service, "config", POSTGRES_DIR, true);
            let initdb = volume(profile, service, "initdb", "/docker-entrypoint-initdb.d", true);
            let mut files = vec![
                deliver("config/postgres/postgresql.conf", &config, "postgresql.conf", uid),
                deliver("config/postgres/pg_hba.conf", &config, "pg_hba.conf", uid),
                deliver("config/postgres/pg_ident.conf", &config, "pg_ident.conf", uid),
                deliver("config/postgres/secrets/superuser.password", &config, "secrets/superuser.password", uid),
                live(deliver("config/postgres/secrets/health.pgpass", &config, "secrets/health.pgpass", uid)),
                live(deliver("config/postgres/initdb/10-hardstack.sql", &initdb, "10-hardstack.sql", uid)),
            ];
            files.extend(tls_deliveries(profile, service, &config));
            environment.push(("POSTGRES_PASSWORD_FILE".into(), format!("{POSTGRES_DIR}/secrets/superuser.password")));
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
            let client = if mutual {
                format!(" sslcert={POSTGRES_DIR}/tls/health.crt sslkey={POSTGRES_DIR}/tls/health.key")
            } else {
                String::new()
            };
            // Over TCP with verify-full and a real query: the entrypoint's init server listens on the
            // socket only, so this cannot pass before the real server is up (pg_isready on the socket can).
            let health = format!(
                "PGPASSFILE={POSTGRES_DIR}/secrets/health.pgpass psql -w -tA -c 'select 1' \"host=127.0.0.1 port=5432 dbname=postgres user=health sslmode=verify-full sslrootcert={POSTGRES_DIR}/tls/ca.crt{client}\" | grep -qx 1"
            );
            (vec!["postgres".into(), "-c".into(), format!("config_file={POSTGRES_DIR}/postgresql.conf")], health, files)
        }
        Service::Redis => {
            let config = volume(profile, service, "config", REDIS_DIR, false);
            let mut files = vec![
                deliver("config/redis/redis.conf", &config, "redis.conf", uid),
                // In a directory of its own that Redis owns: ACL SAVE writes a temporary file beside
                // the ACL file and renames it, and the volume's root belongs to root.
                live(deliver("config/redis/users.acl", &config, "acl/users.acl", uid)),
                live(deliver("config/redis/secrets/health.password", &config, "secrets/health.password", uid)),
            ];
            files.extend(tls_deliveries(profile, service, &config));
            volumes.push(config);
            data_mount(profile, service, profile.redis.data, "/data", &mut volumes, &mut tmpfs);
            let client = if mutual {
                format!(" --cert {REDIS_DIR}/tls/health.crt --key {REDIS_DIR}/tls/health.key")
            } else {
                String::new()
            };
            // redis-cli exits 0 on NOAUTH, so the answer itself must be PONG.
            let health = format!(
                "REDISCLI_AUTH=\"$(cat {REDIS_DIR}/secrets/health.password)\" redis-cli --tls --cacert {REDIS_DIR}/tls/ca.crt{client} -h 127.0.0.1 -p 6379 --user health --no-auth-warning ping | grep -qx PONG"
            );
            (vec!["redis-server".into(), format!("{REDIS_DIR}/redis.conf")], health, files)
        }
        Service::Qdrant => {
            let config = volume(profile, service, "config", QDRANT_DIR, true);
            let mut files = vec![deliver("config/qdrant/config.yaml", &config, "config.yaml", uid)];
            files.extend(tls_deliveries(profile, service, &config));
            volumes.push(config);
            data_mount(profile, service, profile.qdrant.data, "/qdrant/storage", &mut volumes, &mut tmpfs);
            tmpfs.push(TmpfsMount {
                target: "/qdrant/snapshots".into(),
                options: format!("uid={uid},gid={uid},mode=0700"),
            });
            entrypoint = Some(vec!["/qdrant/qdrant".into()]);
            // The image has no curl (reference C4): the healthcheck can only see the port open.
            let health = "bash -c ':> /dev/tcp/127.0.0.1/6333'".to_owned();
            (vec!["--config-path".into(), format!("{QDRANT_DIR}/config.yaml")], health, files)
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
        tmpfs,
        cap_add: Vec::new(),
        memory_bytes: limits.memory.0,
        nano_cpus: (limits.cpus * 1e9) as u64,
        pids: limits.pids,
        publish: profile
            .network
            .publish
            .then(|| (profile.network.bind_address.to_string(), profile.network.ports.of(service))),
        container_port: service.container_port(),
        healthcheck,
        deliveries,
    }
}
