//! `hardstack connect SERVICE [-- ARGS]`: a client on one service of the stack, as a login of
//! the stack, TLS verified against the stack CA. Here (the published port) when the client is
//! installed and the service published; otherwise from the stack's own image in a one-off
//! container on the stack network. The secret travels as a file of mode 0600 (psql's passfile,
//! curl's header file) or in the client's own environment (redis-cli's `REDISCLI_AUTH`), never
//! on a command line and never in a container's configuration.

mod client;
mod http;

use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::json;

use crate::cli::{ConnectArgs, ConnectService, GlobalArgs, VantageArg};
use crate::error::EnvironmentError;
use crate::layout;
use crate::output::Format;
use crate::profile::{Profile, QdrantAccess, Service};
use crate::secrets::Secret;
use crate::secrets::store::Store;
use crate::settings;
use crate::stackdir::StackDir;

/// Runs `connect`.
pub async fn run(global: &GlobalArgs, args: &ConnectArgs) -> anyhow::Result<ExitCode> {
    if args.inside {
        return http::inside(&args.args).await;
    }
    let output = super::output(global);
    let profile = settings::stack_profile(global)?.profile;
    let dir = StackDir::new(&global.dir);
    let service = service_of(&profile, args);
    anyhow::ensure!(
        profile.runs(service),
        "stack {} does not run {service} (stack.services); `hardstack status` lists what it runs",
        profile.stack.name
    );
    let store = Store::open(&profile, &dir).await?;
    let login = login(&profile, &store, service, args).await?;
    let program = client::program(service);
    let published = crate::endpoint::host_address(&profile, service);
    let installed = which::which(program).is_ok();
    let from = match (args.from, published) {
        (Some(VantageArg::Host), None) => {
            return Err(EnvironmentError(format!(
                "{service} is not published (network.publish = false): only the stack network reaches it; drop --from host"
            ))
            .into());
        }
        (Some(VantageArg::Host), Some(_)) if !installed => {
            return Err(EnvironmentError(format!(
                "{program} is not installed here: install it, or drop --from host to run it from the stack's image"
            ))
            .into());
        }
        (Some(from), _) => from,
        (None, Some(_)) if installed => VantageArg::Host,
        (None, _) => VantageArg::Network,
    };
    let captured = output.format == Format::Json;
    let (code, stdout) = match from {
        VantageArg::Host => {
            let address = published.context("a published service has an address")?;
            let invocation = client::host(&profile, &dir, service, &login, address, &args.args)?;
            client::run_here(&invocation, captured).await?
        }
        VantageArg::Network => {
            let engine = super::engine_for(&dir, &profile, false).await?;
            client::run_in_network(&engine, &profile, &dir, service, &login, &args.args, captured).await?
        }
    };
    output.json(&json!({
        "schema": "hardstack.connect/v1",
        "stack": profile.stack.name,
        "service": service,
        "login": login.name,
        "from": match from { VantageArg::Host => "host", VantageArg::Network => "network" },
        "client": program,
        "exit_code": code,
        "stdout": String::from_utf8_lossy(&stdout),
    }));
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// The login a client connects as.
pub struct Login {
    /// The name the server knows (a PostgreSQL login alternates with rotation).
    pub name: String,
    /// Whose client certificate it presents.
    pub certificate: String,
    /// PostgreSQL's database (empty elsewhere).
    pub database: String,
    pub secret: Secret,
}

/// The server a client connects to: Qdrant's front where the stack runs one (an application
/// user's key opens it), Qdrant itself for `--admin` (Qdrant's own key, which the front refuses).
fn service_of(profile: &Profile, args: &ConnectArgs) -> Service {
    match args.service {
        ConnectService::Postgres => Service::Postgres,
        ConnectService::Pgbouncer => Service::Pgbouncer,
        ConnectService::Redis => Service::Redis,
        ConnectService::Qdrant if profile.runs(Service::QdrantFront) && !args.admin => Service::QdrantFront,
        ConnectService::Qdrant => Service::Qdrant,
    }
}

/// The application user's login (or the admin's) and its current secret from the store.
async fn login(profile: &Profile, store: &Store, service: Service, args: &ConnectArgs) -> anyhow::Result<Login> {
    let user = profile.user(args.user.as_deref())?;
    let (name, secret) = match service {
        Service::Postgres | Service::Pgbouncer => {
            let of = if args.admin { layout::ADMIN } else { &user.name };
            let version = store.current(&layout::login_secret(Service::Postgres, of)).await?;
            (version.username.clone().unwrap_or_else(|| of.to_owned()), version.value)
        }
        Service::Redis => {
            let of = if args.admin { layout::ADMIN } else { &user.name };
            (of.to_owned(), store.current(&layout::login_secret(Service::Redis, of)).await?.value)
        }
        Service::Qdrant => {
            let secret = match (args.admin, user.qdrant) {
                (true, _) => layout::QDRANT_API_KEY,
                (false, QdrantAccess::None) => anyhow::bail!(
                    "user {} has no Qdrant access (users.qdrant = \"none\"); --admin connects with the read-write key",
                    user.name
                ),
                (false, access) => layout::qdrant_key_secret(access).context("a user with access has a key")?,
            };
            let name = if args.admin { layout::ADMIN.to_owned() } else { user.name.clone() };
            (name, store.current(secret).await?.value)
        }
        Service::QdrantFront => {
            let (secret, _) = layout::qdrant_client_key(profile, user).with_context(|| {
                format!(
                    "user {} has no Qdrant access (users.qdrant = \"none\"); --admin connects to Qdrant with its own key",
                    user.name
                )
            })?;
            (user.name.clone(), store.current(&secret).await?.value)
        }
        other => anyhow::bail!("connect opens postgres, pgbouncer, redis or qdrant, not {other}"),
    };
    let database = match (service, args.admin) {
        (Service::Postgres, true) => "postgres".to_owned(),
        (Service::Pgbouncer, true) => "pgbouncer".to_owned(),
        (Service::Postgres | Service::Pgbouncer, false) => user.database.clone(),
        _ => String::new(),
    };
    // Each login has its certificate (PostgreSQL's alternating logins one each); Qdrant has no
    // login, so the user's.
    let certificate = match (args.admin, service) {
        (true, _) => layout::ADMIN.to_owned(),
        (false, Service::Qdrant | Service::QdrantFront) => user.name.clone(),
        (false, _) => name.clone(),
    };
    Ok(Login { name, certificate, database, secret })
}

/// The exit code of a client that ended: its own, or 128 + the signal that ended it.
fn code_of(status: std::process::ExitStatus) -> i64 {
    use std::os::unix::process::ExitStatusExt as _;
    status.code().map(i64::from).or_else(|| status.signal().map(|s| 128 + i64::from(s))).unwrap_or(1)
}
