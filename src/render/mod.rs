//! Rendering with tera: templates embedded in the binary (or overridden from a directory), one
//! context built from the profile and the secret material, and the list of files it yields.
//! Pure: values in, file contents out; writing them is `init`'s job.

pub mod tuning;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;
use serde_json::json;

use crate::containers::{self, ContainerSpec};
use crate::fsio;
use crate::profile::{Profile, QdrantAccess, RedisRole, Service, TlsVersion};
use crate::secrets::{self, Secret};

pub const POSTGRESQL_CONF: &str = "postgres/postgresql.conf.tera";
pub const PG_HBA_CONF: &str = "postgres/pg_hba.conf.tera";
pub const PG_IDENT_CONF: &str = "postgres/pg_ident.conf.tera";
pub const POSTGRES_INIT_SQL: &str = "postgres/init.sql.tera";
pub const REDIS_CONF: &str = "redis/redis.conf.tera";
pub const USERS_ACL: &str = "redis/users.acl.tera";
pub const QDRANT_CONFIG: &str = "qdrant/config.yaml.tera";
pub const DOCKER_COMPOSE: &str = "docker-compose.yml.tera";
pub const CONNECTIONS: &str = "connections.json.tera";
pub const SYSTEMD_SERVICE: &str = "systemd/hardstack-rotate.service.tera";
pub const SYSTEMD_TIMER: &str = "systemd/hardstack-rotate.timer.tera";

/// Every template, with its embedded text.
pub const TEMPLATES: &[(&str, &str)] = &[
    (POSTGRESQL_CONF, include_str!("../../templates/postgres/postgresql.conf.tera")),
    (PG_HBA_CONF, include_str!("../../templates/postgres/pg_hba.conf.tera")),
    (PG_IDENT_CONF, include_str!("../../templates/postgres/pg_ident.conf.tera")),
    (POSTGRES_INIT_SQL, include_str!("../../templates/postgres/init.sql.tera")),
    (REDIS_CONF, include_str!("../../templates/redis/redis.conf.tera")),
    (USERS_ACL, include_str!("../../templates/redis/users.acl.tera")),
    (QDRANT_CONFIG, include_str!("../../templates/qdrant/config.yaml.tera")),
    (DOCKER_COMPOSE, include_str!("../../templates/docker-compose.yml.tera")),
    (CONNECTIONS, include_str!("../../templates/connections.json.tera")),
    (SYSTEMD_SERVICE, include_str!("../../templates/systemd/hardstack-rotate.service.tera")),
    (SYSTEMD_TIMER, include_str!("../../templates/systemd/hardstack-rotate.timer.tera")),
];

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

/// Names of every secret a profile needs, with whether PostgreSQL stores it as a verifier.
pub fn secret_names(profile: &Profile) -> Vec<(String, bool)> {
    let mut names = Vec::new();
    if profile.runs(Service::Postgres) {
        names.push(("postgres/superuser".to_owned(), false));
        for login in ["admin", "health"].into_iter().chain(profile.users.iter().map(|u| u.name.as_str())) {
            names.push((format!("postgres/{login}"), true));
        }
    }
    if profile.runs(Service::Redis) {
        for login in ["admin", "health"].into_iter().chain(profile.users.iter().map(|u| u.name.as_str())) {
            names.push((format!("redis/{login}"), false));
        }
    }
    if profile.runs(Service::Qdrant) {
        names.push(("qdrant/api-key".to_owned(), false));
        names.push(("qdrant/read-only-api-key".to_owned(), false));
    }
    names
}

/// Loads templates: the embedded ones, each replaced by `DIR/<name>` when that file exists.
pub fn load_templates(dir: Option<&Path>) -> anyhow::Result<tera::Tera> {
    let mut tera = tera::Tera::default();
    let mut sources = Vec::new();
    for (name, text) in TEMPLATES {
        let text = match dir.map(|d| d.join(name)).filter(|p| p.exists()) {
            Some(path) => {
                std::fs::read_to_string(&path).with_context(|| format!("reading template {}", path.display()))?
            }
            None => (*text).to_owned(),
        };
        sources.push((*name, text));
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

/// Where an application reaches a service: the published host port, or the service's alias
/// on the stack network when nothing is published.
pub fn endpoint(profile: &Profile, service: Service) -> (String, u16) {
    if profile.network.publish {
        let host = if profile.network.bind_address.is_loopback() || profile.network.bind_address.is_unspecified() {
            "localhost".to_owned()
        } else {
            profile.network.bind_address.to_string()
        };
        (host, profile.network.ports.of(service))
    } else {
        (service.name().to_owned(), service.container_port())
    }
}

/// Renders every file of the stack directory that comes from a template.
pub fn render_all(tera: &tera::Tera, profile: &Profile, material: &Material) -> anyhow::Result<Vec<RenderedFile>> {
    let context = build_context(profile, material)?;
    let ctx = tera::Context::from_serialize(&context).context("building the template context")?;
    let render = |template: &str| -> anyhow::Result<String> {
        tera.render(template, &ctx).map_err(|err| anyhow::anyhow!("rendering {template}: {}", tera_chain(&err)))
    };
    let mut files = Vec::new();
    let mut add =
        |path: &str, content: String, mode: u32| files.push(RenderedFile { path: path.into(), content, mode });
    if profile.runs(Service::Postgres) {
        add("config/postgres/postgresql.conf", render(POSTGRESQL_CONF)?, fsio::PUBLIC_MODE);
        add("config/postgres/pg_hba.conf", render(PG_HBA_CONF)?, fsio::PUBLIC_MODE);
        add("config/postgres/pg_ident.conf", render(PG_IDENT_CONF)?, fsio::PUBLIC_MODE);
        add("config/postgres/initdb/10-hardstack.sql", render(POSTGRES_INIT_SQL)?, fsio::PRIVATE_MODE);
        add(
            "config/postgres/secrets/superuser.password",
            format!("{}\n", material.value("postgres/superuser")?.expose()),
            fsio::PRIVATE_MODE,
        );
        add(
            "config/postgres/secrets/health.pgpass",
            format!("*:*:postgres:health:{}\n", material.value("postgres/health")?.expose()),
            fsio::PRIVATE_MODE,
        );
    }
    if profile.runs(Service::Redis) {
        add("config/redis/redis.conf", render(REDIS_CONF)?, fsio::PUBLIC_MODE);
        add("config/redis/users.acl", render(USERS_ACL)?, fsio::PRIVATE_MODE);
        add(
            "config/redis/secrets/health.password",
            format!("{}\n", material.value("redis/health")?.expose()),
            fsio::PRIVATE_MODE,
        );
    }
    if profile.runs(Service::Qdrant) {
        add("config/qdrant/config.yaml", render(QDRANT_CONFIG)?, fsio::PRIVATE_MODE);
    }
    add("docker-compose.yml", render(DOCKER_COMPOSE)?, fsio::PUBLIC_MODE);
    let mut connections = render(CONNECTIONS)?;
    if !connections.ends_with('\n') {
        connections.push('\n');
    }
    add("connections.json", connections, fsio::PUBLIC_MODE);
    Ok(files)
}

/// The systemd service and timer that run `rotate` on the profile's schedule, for the binary
/// and stack directory given as absolute paths.
pub fn render_systemd(
    tera: &tera::Tera,
    profile: &Profile,
    binary: &str,
    dir: &str,
) -> anyhow::Result<Vec<RenderedFile>> {
    let context = json!({
        "stack": profile.stack.name,
        "profile": profile.name,
        "binary": binary,
        "dir": dir,
        "schedule": profile.rotation.schedule,
    });
    let ctx = tera::Context::from_serialize(&context).context("building the template context")?;
    let name = &profile.stack.name;
    [
        (SYSTEMD_SERVICE, format!("systemd/hardstack-rotate-{name}.service")),
        (SYSTEMD_TIMER, format!("systemd/hardstack-rotate-{name}.timer")),
    ]
    .into_iter()
    .map(|(template, path)| {
        let content =
            tera.render(template, &ctx).map_err(|err| anyhow::anyhow!("rendering {template}: {}", tera_chain(&err)))?;
        Ok(RenderedFile { path, content, mode: fsio::PUBLIC_MODE })
    })
    .collect()
}

#[derive(Serialize)]
struct PgUser {
    name: String,
    login: String,
    alternate: String,
    owner: String,
    database: String,
    verifier: String,
}

#[derive(Serialize)]
struct RedisUser {
    name: String,
    hash: String,
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
        let tuning = tuning::tune(tuning::TuningInput {
            memory_kb: limits.memory.kib(),
            cpus: (limits.cpus.ceil() as u32).max(1),
            workload: profile.postgres.workload,
            storage: profile.postgres.storage,
            max_connections: profile.postgres.max_connections,
        });
        let users = profile
            .users
            .iter()
            .map(|user| {
                Ok(PgUser {
                    name: user.name.clone(),
                    login: user.name.clone(),
                    alternate: crate::bundle::alternate_login(&user.name),
                    owner: format!("{}_owner", user.name),
                    database: user.database.clone(),
                    verifier: material.verifier(&format!("postgres/{}", user.name))?.expose().to_owned(),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        context["pg"] = json!({
            "dir": containers::POSTGRES_DIR,
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
            "admin_verifier": material.verifier("postgres/admin")?.expose(),
            "health_verifier": material.verifier("postgres/health")?.expose(),
        });
    }
    if profile.runs(Service::Redis) {
        let users: Vec<RedisUser> = profile
            .users
            .iter()
            .map(|user| {
                Ok(RedisUser {
                    name: user.name.clone(),
                    hash: secrets::redis_acl_hash(material.value(&format!("redis/{}", user.name))?),
                    keys: user.redis_keys.clone(),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        context["redis"] = json!({
            "dir": containers::REDIS_DIR,
            "tls_auth_clients": if profile.mutual_tls() { "yes" } else { "optional" },
            "tls_protocols": match profile.redis.tls_min_version { TlsVersion::V12 => "TLSv1.2 TLSv1.3", TlsVersion::V13 => "TLSv1.3" },
            "maxmemory": profile.redis.maxmemory.0,
            "policy": match profile.redis.role { RedisRole::Cache => "allkeys-lru", RedisRole::Store => "noeviction" },
            "role": profile.redis.role,
            "appendonly": if profile.redis.appendonly { "yes" } else { "no" },
            "admin_hash": secrets::redis_acl_hash(material.value("redis/admin")?),
            "health_hash": secrets::redis_acl_hash(material.value("redis/health")?),
            "users": users,
        });
    }
    if profile.runs(Service::Qdrant) {
        context["qdrant"] = json!({
            "dir": containers::QDRANT_DIR,
            "api_key": material.value("qdrant/api-key")?.expose(),
            "read_only_api_key": material.value("qdrant/read-only-api-key")?.expose(),
            "alt_api_key": material.qdrant_alt_api_key.as_ref().map(|k| k.expose().to_owned()),
            "verify_client": profile.mutual_tls(),
            "web_ui": profile.qdrant.web_ui,
            "cert_ttl": profile.qdrant.cert_ttl_secs,
        });
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
    let mut users = serde_json::Map::new();
    for user in &profile.users {
        let client = format!("certs/clients/{}", user.name);
        let mut entry = serde_json::Map::new();
        if profile.runs(Service::Postgres) {
            let (host, port) = endpoint(profile, Service::Postgres);
            entry.insert(
                "postgres".into(),
                json!({
                    "url": format!("postgresql://{}@{host}:{port}/{}?sslmode=verify-full", user.name, user.database),
                    "host": host, "port": port, "dbname": user.database, "user": user.name,
                    "sslmode": "verify-full", "sslrootcert": "ca/ca.crt",
                    "sslcert": format!("{client}/client.crt"), "sslkey": format!("{client}/client.key"),
                    "client_certificate_required": profile.mutual_tls(),
                    "password": { "store": store, "secret": format!("postgres/{}", user.name), "stage": "current" },
                }),
            );
        }
        if profile.runs(Service::Redis) {
            let (host, port) = endpoint(profile, Service::Redis);
            entry.insert(
                "redis".into(),
                json!({
                    "url": format!("rediss://{}@{host}:{port}/0", user.name),
                    "host": host, "port": port, "user": user.name, "ca": "ca/ca.crt",
                    "cert": format!("{client}/client.crt"), "key": format!("{client}/client.key"),
                    "client_certificate_required": profile.mutual_tls(),
                    "key_pattern": user.redis_keys,
                    "password": { "store": store, "secret": format!("redis/{}", user.name), "stage": "current" },
                }),
            );
        }
        if profile.runs(Service::Qdrant) && user.qdrant != QdrantAccess::None {
            let (host, port) = endpoint(profile, Service::Qdrant);
            let secret =
                if user.qdrant == QdrantAccess::ReadOnly { "qdrant/read-only-api-key" } else { "qdrant/api-key" };
            entry.insert(
                "qdrant".into(),
                json!({
                    "url": format!("https://{host}:{port}"), "ca": "ca/ca.crt",
                    "cert": format!("{client}/client.crt"), "key": format!("{client}/client.key"),
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
