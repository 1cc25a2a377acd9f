//! `hardstack env`: what an application needs to reach the stack as one application user.
//! The only command that prints secrets, because printing them is what the user asked for.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::{EnvArgs, EnvFormat, GlobalArgs};
use crate::endpoint::Endpoint;
use crate::layout::{self, StackFile};
use crate::output;
use crate::profile::{Profile, Service};
use crate::secrets::Secret;
use crate::secrets::store::Store;
use crate::settings;
use crate::stackdir::StackDir;

/// Runs `env`.
pub async fn run(global: &GlobalArgs, args: &EnvArgs) -> anyhow::Result<ExitCode> {
    let resolved = settings::stack_profile(global)?;
    let profile = &resolved.profile;
    let dir = StackDir::new(&global.dir);
    let root = std::path::absolute(&dir.root).with_context(|| format!("resolving {}", dir.root.display()))?;
    let store = Store::open(profile, &dir).await?;
    let variables = variables(profile, &root, &store, args.user.as_deref()).await?;
    if global.output == crate::cli::OutputFormat::Json {
        let variables: serde_json::Map<String, serde_json::Value> =
            variables.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
        let user = args.user.clone().or_else(|| profile.users.first().map(|u| u.name.clone()));
        let document = serde_json::json!({
            "schema": "hardstack.env/v1", "stack": profile.stack.name, "user": user, "variables": variables,
        });
        output::secret_stdout(&format!("{}\n", serde_json::to_string_pretty(&document)?))?;
        return Ok(ExitCode::SUCCESS);
    }
    let format = match global.output {
        crate::cli::OutputFormat::Env => EnvFormat::Dotenv,
        _ => args.format,
    };
    output::secret_stdout(&format_variables(&variables, format))?;
    Ok(ExitCode::SUCCESS)
}

async fn current(store: &Store, name: &str) -> anyhow::Result<Secret> {
    Ok(store.current(name).await?.value)
}

/// The variables for one user, in a stable order.
pub async fn variables(
    profile: &Profile,
    root: &Path,
    store: &Store,
    user: Option<&str>,
) -> anyhow::Result<Vec<(String, String)>> {
    let user = profile.user(user)?;
    let path = |file: StackFile| root.join(file.path()).display().to_string();
    let ca = path(StackFile::CaCert);
    let cert = path(StackFile::ClientCert(user.name.clone()));
    let key = path(StackFile::ClientKey(user.name.clone()));
    let mutual = profile.mutual_tls();
    let mut vars = Vec::new();
    if profile.runs(Service::Postgres) {
        // The login alternates with rotation; each login has its own client certificate.
        let version = store.current(&layout::login_secret(Service::Postgres, &user.name)).await?;
        let login = version.username.clone().unwrap_or_else(|| user.name.clone());
        let at = |endpoints: &[Endpoint]| {
            let hosts: Vec<String> = endpoints.iter().map(|Endpoint { host, port }| format!("{host}:{port}")).collect();
            let mut url = format!(
                "postgresql://{login}:{}@{}/{}?sslmode=verify-full&sslrootcert={ca}",
                version.value.expose(),
                hosts.join(","),
                user.database
            );
            if mutual {
                let (cert, key) =
                    (path(StackFile::ClientCert(login.clone())), path(StackFile::ClientKey(login.clone())));
                url.push_str(&format!("&sslcert={cert}&sslkey={key}"));
            }
            url
        };
        let url = |service: Service| at(&[crate::endpoint::client_endpoint(profile, service)]);
        // With a pooler, applications go through it; the direct URL is for what a pool in
        // transaction mode cannot carry (session state, LISTEN, migrations that take locks).
        if profile.runs(Service::Pgbouncer) {
            vars.push(("DATABASE_URL".to_owned(), url(Service::Pgbouncer)));
            vars.push(("DATABASE_DIRECT_URL".to_owned(), url(Service::Postgres)));
        } else {
            vars.push(("DATABASE_URL".to_owned(), url(Service::Postgres)));
        }
        // The replicas, read-only: libpq's multi-host form, a standby only (a replica that has
        // been promoted is skipped). Not load_balance_hosts: libpq before 16 refuses the URL.
        if profile.postgres.replicas > 0 {
            let replicas: Vec<Endpoint> = profile
                .postgres
                .standby_nodes()
                .map(|node| crate::endpoint::replica_client_endpoint(profile, node))
                .collect();
            vars.push(("DATABASE_READ_URL".to_owned(), format!("{}&target_session_attrs=standby", at(&replicas))));
        }
    }
    if profile.runs(Service::Redis) {
        let Endpoint { host, port } = crate::endpoint::client_endpoint(profile, Service::Redis);
        let password = current(store, &layout::login_secret(Service::Redis, &user.name)).await?;
        vars.push(("REDIS_URL".into(), format!("rediss://{}:{}@{host}:{port}/0", user.name, password.expose())));
        vars.push(("REDIS_CA_CERT".into(), ca.clone()));
        // Where the primary is, as the Sentinels say: their addresses on the stack network
        // (what they answer are the nodes' names there), and the login to ask them with.
        if profile.runs(Service::RedisSentinel) {
            let port = Service::RedisSentinel.container_port();
            let sentinels: Vec<String> = profile
                .redis
                .sentinel_nodes()
                .map(|node| format!("{}:{port}", crate::sentinel::alias(Service::RedisSentinel, node)))
                .collect();
            vars.push(("REDIS_SENTINELS".into(), sentinels.join(",")));
            vars.push(("REDIS_MASTER_NAME".into(), crate::sentinel::master_name(profile)));
            vars.push(("REDIS_SENTINEL_USER".into(), layout::DISCOVERY.into()));
            let secret = layout::login_secret(Service::RedisSentinel, layout::DISCOVERY);
            vars.push(("REDIS_SENTINEL_PASSWORD".into(), current(store, &secret).await?.expose().to_owned()));
        }
        if mutual {
            vars.push(("REDIS_CLIENT_CERT".into(), cert.clone()));
            vars.push(("REDIS_CLIENT_KEY".into(), key.clone()));
        }
    }
    if profile.runs(Service::Prometheus) {
        // Its API answers a client with a certificate of the stack CA only: the user's.
        let Endpoint { host, port } = crate::endpoint::client_endpoint(profile, Service::Prometheus);
        vars.push(("PROMETHEUS_URL".into(), format!("https://{host}:{port}")));
        vars.push(("PROMETHEUS_CA_CERT".into(), ca.clone()));
        vars.push(("PROMETHEUS_CLIENT_CERT".into(), cert.clone()));
        vars.push(("PROMETHEUS_CLIENT_KEY".into(), key.clone()));
    }
    if let Some((secret, server)) = layout::qdrant_client_key(profile, user) {
        let Endpoint { host, port } = crate::endpoint::client_endpoint(profile, server);
        vars.push(("QDRANT_URL".into(), format!("https://{host}:{port}")));
        if server == Service::QdrantFront {
            let grpc = crate::endpoint::front_grpc_endpoint(profile);
            vars.push(("QDRANT_GRPC_URL".into(), format!("https://{}:{}", grpc.host, grpc.port)));
        }
        vars.push(("QDRANT_API_KEY".into(), current(store, &secret).await?.expose().to_owned()));
        vars.push(("QDRANT_CA_CERT".into(), ca.clone()));
        if mutual {
            vars.push(("QDRANT_CLIENT_CERT".into(), cert));
            vars.push(("QDRANT_CLIENT_KEY".into(), key));
        }
    }
    Ok(vars)
}

fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// Formats the variables.
pub fn format_variables(vars: &[(String, String)], format: EnvFormat) -> String {
    match format {
        EnvFormat::Shell => vars.iter().map(|(k, v)| format!("export {k}={}\n", shell_quote(v))).collect(),
        EnvFormat::Dotenv => {
            vars.iter().map(|(k, v)| format!("{k}=\"{}\"\n", v.replace('\\', "\\\\").replace('"', "\\\""))).collect()
        }
        EnvFormat::Json => {
            let map: serde_json::Map<String, serde_json::Value> =
                vars.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
            format!("{}\n", serde_json::to_string_pretty(&map).expect("strings serialize"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_format_quotes_single_quotes() {
        let vars = vec![("A".to_owned(), "it's".to_owned())];
        assert_eq!(format_variables(&vars, EnvFormat::Shell), "export A='it'\\''s'\n");
        assert_eq!(format_variables(&vars, EnvFormat::Dotenv), "A=\"it's\"\n");
    }
}
