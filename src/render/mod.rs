//! Rendering with tera: templates embedded in the binary (or overridden from a directory), one
//! context built from the profile and the secret material, and the list of files it yields.
//! Pure: values in, file contents out; writing them is `init`'s job.

pub mod front;
mod prometheus;
pub mod tuning;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;
use serde_json::json;

use crate::containers::{self, ContainerSpec};
use crate::layout::{self, Source, StackFile};
use crate::profile::{Profile, RedisRole, Service, TlsVersion};
use crate::secrets::{self, Secret};

pub const SYSTEMD_SERVICE: &str = "systemd/hardstack-job.service.tera";
pub const SYSTEMD_TIMER: &str = "systemd/hardstack-job.timer.tera";

/// The templates embedded in the binary: every file under `templates/`, by its path there. The
/// layout table names the template of each rendered file.
static EMBEDDED: include_dir::Dir<'_> = include_dir::include_dir!("$CARGO_MANIFEST_DIR/templates");

/// Every embedded template: its name and text.
pub fn templates() -> impl Iterator<Item = (&'static str, &'static str)> {
    fn walk(dir: &'static include_dir::Dir<'static>, into: &mut Vec<(&'static str, &'static str)>) {
        for file in dir.files() {
            let name = file.path().to_str().expect("template paths are UTF-8");
            if name.ends_with(".tera") {
                into.push((name, file.contents_utf8().expect("templates are UTF-8")));
            }
        }
        for sub in dir.dirs() {
            walk(sub, into);
        }
    }
    let mut all = Vec::new();
    walk(&EMBEDDED, &mut all);
    all.sort();
    all.into_iter()
}

/// One rendered file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    /// Path relative to the stack directory.
    pub path: String,
    pub content: String,
    pub mode: u32,
}

/// The secret material rendering needs: the current version of every credential.
#[derive(Debug, Clone, Default)]
pub struct Material {
    /// Current values by secret name (`postgres/app`).
    pub values: BTreeMap<String, Secret>,
    /// SCRAM verifiers by secret name, for PostgreSQL logins.
    pub verifiers: BTreeMap<String, Secret>,
    /// Qdrant's `alt_api_key`: the pending key during a rotation, the previous one after it.
    pub qdrant_alt_api_key: Option<Secret>,
    /// Qdrant's `api_key` when it is not the current key (the previous one, after a rotation).
    pub qdrant_api_key: Option<Secret>,
    /// Previous Redis passwords still within their grace period, by secret name.
    pub redis_previous: BTreeMap<String, Secret>,
    /// The login each PostgreSQL application password belongs to now, by secret name (the
    /// user's name until a rotation alternates it).
    pub postgres_logins: BTreeMap<String, String>,
    /// The previous version of each PostgreSQL application password, by secret name: its login
    /// and SCRAM verifier.
    pub postgres_previous: BTreeMap<String, (String, Secret)>,
    /// The keys the Qdrant front accepts beside the current ones (pending, previous within the
    /// grace period), by secret name.
    pub front_other_keys: BTreeMap<String, Vec<Secret>>,
    /// When each server certificate expires (Unix seconds), by service.
    pub certificates: BTreeMap<Service, i64>,
}

impl Material {
    fn value(&self, name: &str) -> anyhow::Result<&Secret> {
        self.values
            .get(name)
            .with_context(|| format!("secret {name} is missing from the store; run `hardstack init` to create it"))
    }

    fn verifier(&self, name: &str) -> anyhow::Result<&Secret> {
        self.verifiers.get(name).with_context(|| format!("the SCRAM verifier of {name} is missing from the store"))
    }
}

/// Loads templates: the embedded ones, each replaced by `DIR/<name>` when that file exists.
pub fn load_templates(dir: Option<&Path>) -> anyhow::Result<tera::Tera> {
    let mut replaced = BTreeMap::new();
    for (name, _) in templates() {
        if let Some(path) = dir.map(|d| d.join(name)).filter(|p| p.exists()) {
            let text =
                std::fs::read_to_string(&path).with_context(|| format!("reading template {}", path.display()))?;
            replaced.insert((*name).to_owned(), text);
        }
    }
    templates_with(&replaced)
}

/// The embedded templates, each replaced by the text `replaced` has under its name.
pub fn templates_with(replaced: &BTreeMap<String, String>) -> anyhow::Result<tera::Tera> {
    let mut tera = tera::Tera::default();
    let mut sources = Vec::new();
    for (name, text) in templates() {
        let text = replaced.get(name).cloned().unwrap_or_else(|| text.to_owned());
        sources.push((name, text));
    }
    tera.add_raw_templates(sources).map_err(|err| anyhow::anyhow!("{}", tera_chain(&err)))?;
    tera.register_filter("pad", pad);
    tera.autoescape_on(vec![]);
    Ok(tera)
}

fn tera_chain(err: &tera::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// `{{ value | pad(n=10) }}`: left-aligns a value in a column of n characters.
fn pad(value: &tera::Value, args: &HashMap<String, tera::Value>) -> tera::Result<tera::Value> {
    let width = args.get("n").and_then(|n| n.as_u64()).unwrap_or(0) as usize;
    let text = value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string());
    Ok(tera::Value::String(format!("{text:<width$}")))
}

/// Renders every file of the stack directory that comes from a template.
pub fn render_all(tera: &tera::Tera, profile: &Profile, material: &Material) -> anyhow::Result<Vec<RenderedFile>> {
    let context = build_context(profile, material)?;
    let ctx = tera::Context::from_serialize(&context).context("building the template context")?;
    let render = |template: &str| -> anyhow::Result<String> {
        tera.render(template, &ctx).map_err(|err| anyhow::anyhow!("rendering {template}: {}", tera_chain(&err)))
    };
    let mut files = Vec::new();
    for entry in layout::rendered(profile) {
        let content = match entry.source.expect("a rendered file has a source") {
            Source::Template(template) => render(template)?,
            Source::Json(template) => {
                let mut document = render(template)?;
                if !document.ends_with('\n') {
                    document.push('\n');
                }
                document
            }
            Source::Password(secret) => password_file(material.value(&secret.name())?),
            Source::Pgpass(secret) => health_pgpass(material.value(&secret.name())?),
            Source::LoginPgpass(secret) => login_pgpass(secret.login(), material.value(&secret.name())?),
            Source::PasswordByAddress(secret, address) => password_by_address(address, material.value(&secret.name())?),
        };
        files.push(RenderedFile { path: entry.path.into(), content, mode: entry.mode.bits() });
    }
    Ok(files)
}

/// A password file: the password and a newline (the superuser's for initdb, Redis's health
/// login's for its healthcheck).
pub fn password_file(password: &Secret) -> String {
    format!("{}\n", password.expose())
}

/// redis_exporter's password file: the password by the address (with the user) it reads.
pub fn password_by_address(address: &str, password: &Secret) -> String {
    format!("{}\n", serde_json::json!({ address: password.expose() }))
}

/// A pgpass file: `login`'s password for any host, port and database (`:` and `\` escaped).
pub fn login_pgpass(login: &str, password: &Secret) -> String {
    let escaped = password.expose().replace('\\', "\\\\").replace(':', "\\:");
    format!("*:*:*:{login}:{escaped}\n")
}

/// The PostgreSQL healthcheck's pgpass file: the health login's password for any host.
pub fn health_pgpass(password: &Secret) -> String {
    format!("*:*:postgres:{}:{}\n", layout::HEALTH, password.expose())
}

/// The systemd services and timers that run `rotate`, `backup` and `backup --test` on the profile's schedules, for the binary
/// and stack directory given as absolute paths.
pub fn render_systemd(
    tera: &tera::Tera,
    profile: &Profile,
    binary: &str,
    dir: &str,
) -> anyhow::Result<Vec<RenderedFile>> {
    let name = &profile.stack.name;
    let mut files = Vec::new();
    for job in layout::Job::ALL {
        let (schedule, what, why) = match job {
            layout::Job::Rotate => (
                &profile.rotation.schedule,
                "rotate the credentials",
                "`rotate` renews only what is older than the profile's maximum ages, so any schedule is safe.",
            ),
            layout::Job::Backup => (
                &profile.backup.schedule,
                "back up",
                "Each run adds a set and keeps the profile's number (backup.keep).",
            ),
            layout::Job::RestoreTest => (
                &profile.backup.test_schedule,
                "restore the latest backup set into a throwaway stack and compare",
                "checklist.backups passes only while a tested set is younger than backup.max_age.",
            ),
        };
        let context = json!({
            "stack": name,
            "profile": profile.name,
            "binary": binary,
            "dir": dir,
            "job": job.name(),
            "arguments": job.arguments(),
            "what": what,
            "why": why,
            "schedule": schedule,
        });
        let ctx = tera::Context::from_serialize(&context).context("building the template context")?;
        for (template, file) in [
            (SYSTEMD_SERVICE, StackFile::SystemdService(job, name.clone())),
            (SYSTEMD_TIMER, StackFile::SystemdTimer(job, name.clone())),
        ] {
            let content = tera
                .render(template, &ctx)
                .map_err(|err| anyhow::anyhow!("rendering {template}: {}", tera_chain(&err)))?;
            files.push(RenderedFile { path: file.path(), content, mode: file.mode().bits() });
        }
    }
    Ok(files)
}

#[derive(Serialize)]
struct PgUser {
    name: String,
    login: String,
    alternate: String,
    owner: String,
    database: String,
    /// `'<SCRAM verifier>'` or `NULL`, for each login.
    login_password: String,
    alternate_password: String,
}

#[derive(Serialize)]
struct RedisUser {
    name: String,
    /// `#<sha256>` of the current password, and of the previous one within its grace period.
    passwords: String,
    keys: String,
}

#[derive(Serialize)]
struct DeliverDir {
    path: String,
    uid: u32,
}

fn build_context(profile: &Profile, material: &Material) -> anyhow::Result<serde_json::Value> {
    let mut context = json!({
        "stack": profile.stack.name,
        "profile": profile.name,
        "labels": { "stack": containers::STACK_LABEL, "service": containers::SERVICE_LABEL },
    });
    if profile.runs(Service::Postgres) {
        let limits = &profile.resources.postgres;
        let tuning = tuning::tune(tuning::input(profile));
        let users = profile
            .users
            .iter()
            .map(|user| {
                let name = layout::login_secret(Service::Postgres, &user.name);
                let alternate = layout::alternate_login(&user.name);
                let current = material.postgres_logins.get(&name).cloned().unwrap_or_else(|| user.name.clone());
                let quoted = |verifier: &Secret| format!("'{}'", verifier.expose());
                let mut passwords = BTreeMap::from([(current.clone(), quoted(material.verifier(&name)?))]);
                if let Some((login, verifier)) = material.postgres_previous.get(&name)
                    && *login != current
                {
                    passwords.insert(login.clone(), quoted(verifier));
                }
                let password = |login: &str| passwords.get(login).cloned().unwrap_or_else(|| "NULL".into());
                Ok(PgUser {
                    name: user.name.clone(),
                    login: user.name.clone(),
                    login_password: password(&user.name),
                    alternate_password: password(&alternate),
                    alternate,
                    owner: layout::owner_role(&user.name),
                    database: user.database.clone(),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let databases = |first: &[&str]| {
            let mut names: Vec<String> = first.iter().map(|d| d.to_string()).collect();
            names.extend(profile.users.iter().map(|u| u.database.clone()).filter(|d| !first.contains(&d.as_str())));
            names.join(",")
        };
        let logins: Vec<String> = layout::client_logins(profile).iter().map(|l| format!("'{l}'")).collect();
        let replicas = match profile.postgres.replicas {
            0 => None,
            n => {
                let slots: Vec<String> = profile.postgres.standby_nodes().map(layout::replica_slot).collect();
                let verifier = material.verifier(&layout::login_secret(Service::Postgres, layout::REPLICATION))?;
                Some(json!({
                    "login": layout::REPLICATION,
                    "verifier": verifier.expose(),
                    // Each replica's stream, and room for a copy being made beside it.
                    "connection_limit": u32::from(n) + 2,
                    "slots_quoted": slots.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", "),
                    "slots": slots,
                    "conninfo": crate::replica::conninfo(profile),
                    "node0_slot": layout::replica_slot(0),
                }))
            }
        };
        context["pg"] = json!({
            "replicas": replicas,
            "dir": layout::POSTGRES_DIR,
            "alias": Service::Postgres.name(),
            "pgaudit": profile.postgres.pgaudit,
            "tuning": tuning,
            "memory": limits.memory.to_string(),
            "cpus": limits.cpus,
            "workload": profile.postgres.workload,
            "storage": profile.postgres.storage,
            "tls_min_version": profile.postgres.tls_min_version.as_str(),
            "durable": profile.postgres.durable,
            "slow_statement_ms": profile.postgres.slow_statement_ms,
            "connection_limit": profile.postgres.connection_limit,
            "clientcert": if profile.mutual_tls() { " clientcert=verify-full" } else { "" },
            "users": users,
            "logins": logins.join(", "),
            "superuser_databases": databases(&["postgres", "template1"]),
            "admin_databases": databases(&["postgres"]),
            "admin_verifier": material.verifier(&layout::login_secret(Service::Postgres, layout::ADMIN))?.expose(),
            "health_verifier": material.verifier(&layout::login_secret(Service::Postgres, layout::HEALTH))?.expose(),
            "backup_verifier": material.verifier(&layout::login_secret(Service::Postgres, layout::BACKUP))?.expose(),
            "wal_archive": profile.backup.wal_archive,
            "archive_dir": layout::backups::ARCHIVE_MOUNT,
            "pooler": profile.runs(Service::Pgbouncer),
            "pooler_hosts": containers::pooler_hosts(profile),
            "monitor": match layout::service_logins(profile, Service::Postgres).contains(&layout::MONITOR) {
                true => Some(material.verifier(&layout::login_secret(Service::Postgres, layout::MONITOR))?.expose()),
                false => None,
            },
        });
    }
    // The exporters' web configs name the same paths: each mounts its files at the same place.
    let exporter = Service::ALL.into_iter().find(|s| s.is_exporter() && profile.runs(*s));
    for service in exporter.into_iter().chain(profile.runs(Service::Prometheus).then_some(Service::Prometheus)) {
        let at = |file: StackFile| layout::container_path(profile, service, &file);
        context[if service == Service::Prometheus { "prometheus_web" } else { "exporter" }] = json!({
            "server_cert": at(StackFile::ServerCert(service)),
            "server_key": at(StackFile::ServerKey(service)),
            "ca": at(StackFile::CaCert),
        });
    }
    if profile.runs(Service::Prometheus) {
        context["prometheus"] = prometheus::context(profile, material)?;
    }
    if profile.runs(Service::Pgbouncer) {
        let settings = &profile.pgbouncer;
        let at = |file: StackFile| layout::container_path(profile, Service::Pgbouncer, &file);
        context["pgbouncer"] = json!({
            "dir": layout::PGBOUNCER_DIR,
            // The primary's alias: the pooler follows a switchover on a reload.
            "postgres": crate::endpoint::network_endpoint(profile, Service::Postgres).host,
            "postgres_port": Service::Postgres.container_port(),
            "port": Service::Pgbouncer.container_port(),
            "auth_user": layout::POOLER,
            "admin": layout::ADMIN,
            "stats_users": match profile.runs(Service::PgbouncerExporter) {
                true => format!("{}, {}", layout::ADMIN, layout::MONITOR),
                false => layout::ADMIN.to_owned(),
            },
            "pool_mode": settings.pool_mode.as_str(),
            "pool_size": settings.pool_size,
            "max_client_connections": settings.max_client_connections,
            "max_prepared_statements": settings.max_prepared_statements,
            "client_sslmode": if profile.mutual_tls() { "verify-ca" } else { "require" },
            "tls_protocols": match profile.postgres.tls_min_version {
                TlsVersion::V12 => "tlsv1.2,tlsv1.3",
                TlsVersion::V13 => "tlsv1.3",
            },
            "server_cert": at(StackFile::ServerCert(Service::Pgbouncer)),
            "server_key": at(StackFile::ServerKey(Service::Pgbouncer)),
            "ca": at(StackFile::CaCert),
            "pooler_cert": at(StackFile::ClientCert(layout::POOLER.into())),
            "pooler_key": at(StackFile::ClientKey(layout::POOLER.into())),
        });
    }
    if profile.runs(Service::Redis) {
        let passwords = |login: &str| -> anyhow::Result<String> {
            let name = layout::redis_login_secret(login);
            let mut hashes = vec![format!("#{}", secrets::redis_acl_hash(material.value(&name)?))];
            if let Some(previous) = material.redis_previous.get(&name) {
                hashes.push(format!("#{}", secrets::redis_acl_hash(previous)));
            }
            Ok(hashes.join(" "))
        };
        let users: Vec<RedisUser> = profile
            .users
            .iter()
            .map(|user| {
                Ok(RedisUser {
                    name: user.name.clone(),
                    passwords: passwords(&user.name)?,
                    keys: user.redis_keys.clone(),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        context["redis"] = json!({
            "dir": layout::REDIS_DIR,
            "tls_auth_clients": if profile.mutual_tls() { "yes" } else { "optional" },
            "tls_protocols": match profile.redis.tls_min_version { TlsVersion::V12 => "TLSv1.2 TLSv1.3", TlsVersion::V13 => "TLSv1.3" },
            "maxmemory": profile.redis.maxmemory.0,
            "policy": match profile.redis.role { RedisRole::Cache => "allkeys-lru", RedisRole::Store => "noeviction" },
            "role": profile.redis.role,
            "appendonly": if profile.redis.appendonly { "yes" } else { "no" },
            "admin_passwords": passwords(layout::ADMIN)?,
            "health_passwords": passwords(layout::HEALTH)?,
            "backup_passwords": passwords(layout::BACKUP)?,
            "monitor_commands": layout::REDIS_MONITOR_COMMANDS.join(" "),
            "monitor_passwords": match profile.runs(Service::RedisExporter) {
                true => Some(passwords(layout::MONITOR)?),
                false => None,
            },
            "users": users,
            "replication": match profile.redis.replicas {
                0 => serde_json::Value::Null,
                _ => json!({
                    "replica_passwords": passwords(layout::REDIS_REPLICA)?,
                    "replica_commands": layout::REPLICA_COMMANDS.join(" "),
                    "replica_password": material.value(&layout::login_secret(Service::Redis, layout::REDIS_REPLICA))?.expose(),
                    "sentinel_passwords": passwords(layout::SENTINEL)?,
                    "sentinel_commands": layout::SENTINEL_COMMANDS.join(" "),
                }),
            },
        });
        if profile.runs(Service::RedisSentinel) {
            context["sentinel"] = json!({
                "dir": layout::SENTINEL_DIR,
                "port": Service::RedisSentinel.container_port(),
                "master": crate::sentinel::master_name(profile),
                "primary": crate::sentinel::alias(Service::Redis, profile.redis.primary_node()),
                "primary_port": Service::Redis.container_port(),
                "quorum": profile.redis.sentinels / 2 + 1,
                "down_after": crate::sentinel::down_after_ms(0),
                "sentinel_password": material.value(&layout::login_secret(Service::Redis, layout::SENTINEL))?.expose(),
                "sentinel_passwords": passwords(layout::SENTINEL)?,
                "health_passwords": passwords(layout::HEALTH)?,
                "discovery_passwords": passwords(layout::DISCOVERY)?,
                "discovery_commands": layout::DISCOVERY_COMMANDS.join(" "),
            });
        }
    }
    if profile.runs(Service::Qdrant) {
        context["qdrant"] = json!({
            "dir": layout::QDRANT_DIR,
            "api_key": match &material.qdrant_api_key {
                Some(key) => key.expose(),
                None => material.value(layout::QDRANT_API_KEY)?.expose(),
            },
            "read_only_api_key": material.value(layout::QDRANT_READ_ONLY_API_KEY)?.expose(),
            "alt_api_key": material.qdrant_alt_api_key.as_ref().map(|k| k.expose().to_owned()),
            // Behind the front, Qdrant answers only clients with a certificate of the stack CA
            // (the front, and hardstack's own requests).
            "verify_client": profile.demands_client_cert(Service::Qdrant),
            "front": profile.runs(Service::QdrantFront),
            "grpc_port": containers::QDRANT_GRPC_PORT,
            "web_ui": profile.qdrant.web_ui,
            "cert_ttl": profile.qdrant.cert_ttl_secs,
            "cluster": crate::peers::is_cluster(profile),
            "p2p_port": crate::peers::P2P_PORT,
            "replication_factor": profile.qdrant.replication_factor(),
        });
    }
    if profile.runs(Service::QdrantFront) {
        context["front"] = front::context(profile, material)?;
    }
    let specs: Vec<ContainerSpec> = containers::container_specs(profile);
    let deliveries: Vec<_> = specs.iter().flat_map(|s| s.deliveries.clone()).collect();
    let mut dirs: Vec<DeliverDir> = Vec::new();
    for file in &deliveries {
        let mut path = file.volume.clone();
        let parents: Vec<&str> = file.path.split('/').collect();
        for part in std::iter::once(None).chain(parents[..parents.len() - 1].iter().map(Some)) {
            if let Some(part) = part {
                path = format!("{path}/{part}");
            }
            if !dirs.iter().any(|d| d.path == path) {
                dirs.push(DeliverDir { path: path.clone(), uid: file.uid });
            }
        }
    }
    context["deliver_image"] = json!(specs.first().map(|s| s.image.clone()).unwrap_or_default());
    for spec in &specs {
        for dir in &spec.directories {
            dirs.push(DeliverDir { path: format!("{}/{}", dir.volume, dir.path), uid: dir.uid });
        }
    }
    context["deliver_dirs"] = serde_json::to_value(dirs)?;
    context["deliveries"] = serde_json::to_value(deliveries)?;
    context["specs"] = serde_json::to_value(&specs)?;
    context["network"] = serde_json::to_value(containers::stack_names(profile))?;
    context["connections"] = connections(profile);
    Ok(context)
}

/// The content of connections.json: per application user, how to reach each service, with
/// paths relative to the stack directory and secrets by reference only.
pub fn connections(profile: &Profile) -> serde_json::Value {
    let store = json!(profile.secrets.store);
    let ca = StackFile::CaCert.path();
    let mut users = serde_json::Map::new();
    for user in &profile.users {
        let (cert, key) =
            (StackFile::ClientCert(user.name.clone()).path(), StackFile::ClientKey(user.name.clone()).path());
        let mut entry = serde_json::Map::new();
        let postgres = |service: Service| {
            let crate::endpoint::Endpoint { host, port } = crate::endpoint::client_endpoint(profile, service);
            json!({
                "url": format!("postgresql://{}@{host}:{port}/{}?sslmode=verify-full", user.name, user.database),
                "host": host, "port": port, "dbname": user.database, "user": user.name,
                "sslmode": "verify-full", "sslrootcert": ca,
                "sslcert": cert, "sslkey": key,
                "client_certificate_required": profile.mutual_tls(),
                "password": { "store": store, "secret": layout::login_secret(Service::Postgres, &user.name), "stage": "current" },
            })
        };
        if profile.runs(Service::Postgres) {
            entry.insert("postgres".into(), postgres(Service::Postgres));
            // The replicas, read-only (`DATABASE_READ_URL` in `env`): each as the primary's entry.
            if profile.postgres.replicas > 0 {
                let replicas: Vec<serde_json::Value> = profile
                    .postgres
                    .standby_nodes()
                    .map(|node| {
                        let crate::endpoint::Endpoint { host, port } =
                            crate::endpoint::replica_client_endpoint(profile, node);
                        let mut replica = postgres(Service::Postgres);
                        replica["url"] = json!(format!(
                            "postgresql://{}@{host}:{port}/{}?sslmode=verify-full&target_session_attrs=standby",
                            user.name, user.database
                        ));
                        (replica["host"], replica["port"]) = (json!(host), json!(port));
                        replica
                    })
                    .collect();
                entry.insert("postgres_replicas".into(), json!(replicas));
            }
        }
        // Through the pooler: what applications should use (`DATABASE_URL` in `env`).
        if profile.runs(Service::Pgbouncer) {
            let mut pooled = postgres(Service::Pgbouncer);
            pooled["pool_mode"] = json!(profile.pgbouncer.pool_mode.as_str());
            entry.insert("pgbouncer".into(), pooled);
        }
        if profile.runs(Service::Redis) {
            let crate::endpoint::Endpoint { host, port } = crate::endpoint::client_endpoint(profile, Service::Redis);
            entry.insert(
                "redis".into(),
                json!({
                    "url": format!("rediss://{}@{host}:{port}/0", user.name),
                    "host": host, "port": port, "user": user.name, "ca": ca,
                    "cert": cert, "key": key,
                    "client_certificate_required": profile.mutual_tls(),
                    "key_pattern": user.redis_keys,
                    "password": { "store": store, "secret": layout::login_secret(Service::Redis, &user.name), "stage": "current" },
                }),
            );
        }
        if let Some((secret, server)) = layout::qdrant_client_key(profile, user) {
            let crate::endpoint::Endpoint { host, port } = crate::endpoint::client_endpoint(profile, server);
            entry.insert(
                "qdrant".into(),
                json!({
                    "url": format!("https://{host}:{port}"), "ca": ca,
                    "cert": cert, "key": key,
                    "client_certificate_required": profile.mutual_tls(),
                    "access": user.qdrant,
                    "api_key": { "store": store, "secret": secret, "stage": "current" },
                }),
            );
        }
        users.insert(user.name.clone(), serde_json::Value::Object(entry));
    }
    json!({ "stack": profile.stack.name, "paths_relative_to": "the directory of this file", "users": users })
}
