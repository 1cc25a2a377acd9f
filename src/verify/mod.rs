//! `verify`: prove that a running stack is usable and closed. Positive checks connect as each
//! application user (TLS verify-full, login, a real query); negative checks try what must be
//! refused; the production checklist is derived from both and from the engine's view of the
//! containers. Every check runs, concurrently; a failure never stops the others. Checks return
//! results; they never print and never exit.

mod checklist;
mod postgres;
mod qdrant;
mod redis;
pub mod refusal;

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Context as _;

use crate::error::EnvironmentError;
use crate::layout::{self, StackFile};
use crate::pki::{self, CertSpec, Purpose};
use crate::probe::ClientTls;
use crate::profile::{AppUser, Profile, Service};
use crate::report::Check;
use crate::runtime::Engine;
use crate::secrets::Secret;
use crate::secrets::store::Versions;
use crate::stackdir::StackDir;
pub use refusal::{Refusal, prepare};

/// How long any one check may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(15);

/// A name no certificate of the stack covers, for the host-name check.
pub const UNCOVERED_NAME: &str = "not-covered.hardstack.invalid";

/// Everything the checks need, gathered once.
pub struct Context {
    pub profile: Profile,
    pub dir: StackDir,
    pub engine: Engine,
    /// The host address the published ports are reached at.
    pub address: IpAddr,
    /// The stack CA only.
    pub ca_pem: Vec<u8>,
    /// A client certificate for `app` (CN = app) from a CA the stack does not know.
    pub foreign_client: (Vec<u8>, Secret),
    /// The current version of every secret of the stack (and Qdrant's alternate key), read once.
    pub secrets: Versions,
    /// Whether the secrets are in the file store (whose files the checklist inspects).
    pub file_store: bool,
    /// The engine's view of each service's container, read once (the checklist reads it).
    pub containers: Vec<(Service, crate::runtime::ContainerInfo)>,
}

impl Context {
    /// Gathers the context; `EnvironmentError` when the stack cannot be reached.
    pub async fn gather(profile: Profile, dir: StackDir, engine: Engine) -> anyhow::Result<Context> {
        let Some(layout::HostAddress { address, .. }) = layout::host_address(&profile, Service::Postgres) else {
            return Err(EnvironmentError(format!(
                "stack {} publishes no port, so its servers cannot be reached from here; run verify where the stack network is reachable, or set network.publish=true",
                profile.stack.name
            ))
            .into());
        };
        let mut containers = Vec::new();
        for service in Service::ALL.into_iter().filter(|s| profile.runs(*s)) {
            let name = crate::containers::container_name(&profile, service);
            let info = engine.inspect(&name).await?;
            let running = info.as_ref().and_then(|i| i.state.as_ref()?.running).unwrap_or(false);
            match info {
                Some(info) if running => containers.push((service, info)),
                _ => {
                    return Err(
                        EnvironmentError(format!("container {name} is not running; run `hardstack up` first")).into()
                    );
                }
            }
        }
        let ca = dir.file(&StackFile::CaCert);
        let ca_pem = std::fs::read(&ca).with_context(|| format!("reading {}", ca.display()))?;
        let foreign_ca = pki::create_ca("foreign", profile.tls.key_algorithm, Duration::from_secs(86_400))?;
        let foreign = pki::issue(
            &foreign_ca,
            profile.tls.key_algorithm,
            &CertSpec { common_name: "app".into(), purpose: Purpose::Client, lifetime: Duration::from_secs(86_400) },
        )?;
        let store = crate::secrets::store::Store::open(&profile, &dir).await?;
        let secrets = store.versions(&profile).await?;
        let file_store = matches!(store, crate::secrets::store::Store::File(_));
        Ok(Context {
            profile,
            dir,
            engine,
            address,
            ca_pem,
            foreign_client: (foreign.cert_pem.into_bytes(), foreign.key_pem),
            secrets,
            file_store,
            containers,
        })
    }

    /// The current value of a secret.
    pub fn secret(&self, name: &str) -> anyhow::Result<Secret> {
        Ok(self.current(name)?.value)
    }

    /// The current version of a secret.
    pub fn current(&self, name: &str) -> anyhow::Result<crate::secrets::store::SecretVersion> {
        self.secrets.current.get(name).cloned().with_context(|| format!("secret {name} has no current version"))
    }

    /// The published port of a service.
    pub fn port(&self, service: Service) -> u16 {
        self.profile.network.ports.of(service)
    }

    /// The server name the checks verify: the address, which every server certificate covers.
    pub fn server_name(&self) -> String {
        self.address.to_string()
    }

    /// TLS material for a login: the stack CA, and the login's client certificate.
    pub fn tls_for(&self, login: &str, with_client_cert: bool) -> anyhow::Result<ClientTls> {
        crate::probe::client_tls(&self.dir, login, with_client_cert)
    }

    /// TLS that presents the foreign client certificate.
    pub fn foreign_tls(&self) -> ClientTls {
        ClientTls { ca_pem: self.ca_pem.clone(), client: Some(self.foreign_client.clone()) }
    }

    /// Whether servers require client certificates.
    pub fn mutual(&self) -> bool {
        self.profile.mutual_tls()
    }

    /// The application users.
    pub fn users(&self) -> &[AppUser] {
        &self.profile.users
    }
}

/// A check in flight.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Check> + Send + 'a>>;

/// Wraps a check so a timeout or an internal error becomes a failed check with that evidence.
pub fn bounded<'a>(id: String, check: impl Future<Output = Check> + Send + 'a) -> CheckFuture<'a> {
    Box::pin(async move {
        match tokio::time::timeout(CHECK_TIMEOUT, check).await {
            Ok(result) => result,
            Err(_) => Check::fail(
                id,
                "the check did not finish in time",
                format!("no answer within {}s", CHECK_TIMEOUT.as_secs()),
            ),
        }
    })
}

/// A negative check: `attempt` must fail with the `expected` refusal, and only that passes.
/// Its error is the evidence. An error while preparing the attempt, or any other error, fails
/// the check with that error as evidence.
pub async fn refused<T>(
    id: &str,
    what: &str,
    expected: Refusal,
    attempt: impl Future<Output = anyhow::Result<T>>,
) -> Check {
    match attempt.await {
        Ok(_) => Check::fail(id, format!("{what} was accepted"), format!("expected {expected}; nothing refused it")),
        Err(err) if refusal::is_preparation(&err) => {
            Check::fail(id, format!("the attempt at {what} could not be made"), one_line(&format!("{err:#}")))
        }
        Err(err) if expected.is_in(&err) => {
            Check::pass(id, format!("{what} is refused"), one_line(&format!("{expected}: {err:#}")))
        }
        Err(err) => Check::fail(
            id,
            format!("{what} was not refused as expected"),
            one_line(&format!("expected {expected}; got: {err:#}")),
        ),
    }
}

/// Sends `request` in plaintext to a TLS port and reads the answer. `Ok` with the answer when
/// the server answers in plaintext; [`refusal::NoPlaintextAnswer`] when it closes the connection
/// or answers with a TLS record; any other error when the port cannot be reached.
pub async fn plaintext_exchange(context: &Context, service: Service, request: &[u8]) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::time::timeout(
        crate::probe::CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((context.address, context.port(service))),
    )
    .await
    .context("connecting timed out")??;
    stream.write_all(request).await?;
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buffer)).await;
    match read {
        Ok(Ok(0)) => Err(refusal::NoPlaintextAnswer("the server closed the connection".into()).into()),
        // A TLS record: content type 20-23, then major version 3.
        Ok(Ok(n)) if n >= 2 && (20..=23).contains(&buffer[0]) && buffer[1] == 3 => {
            Err(refusal::NoPlaintextAnswer(format!("the server answered with a TLS record ({n} bytes)")).into())
        }
        Ok(Ok(n)) => Ok(String::from_utf8_lossy(&buffer[..n]).into_owned()),
        Ok(Err(err)) if err.kind() == std::io::ErrorKind::ConnectionReset => {
            Err(refusal::NoPlaintextAnswer("the server reset the connection".into()).into())
        }
        Ok(Err(err)) => Err(err.into()),
        Err(_) => anyhow::bail!("no answer within 3s"),
    }
}

/// A TLS session with `service` as `server_name`, presenting `tls`'s client certificate if
/// any: the handshake, then `request` and one read, which is where a server's alert about the
/// client's certificate arrives in TLS 1.3. Returns what the server answered.
pub async fn tls_exchange(
    context: &Context,
    service: Service,
    server_name: &str,
    tls: anyhow::Result<ClientTls>,
    request: &[u8],
) -> anyhow::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let config = prepare(tls.and_then(|tls| crate::probe::rustls_config(&tls)))?;
    let name = prepare(rustls::pki_types::ServerName::try_from(server_name.to_owned()).map_err(anyhow::Error::from))?;
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let stream = tokio::net::TcpStream::connect((context.address, context.port(service))).await?;
    let mut session = tokio::time::timeout(crate::probe::CONNECT_TIMEOUT, connector.connect(name, stream))
        .await
        .context("the TLS handshake timed out")??;
    session.write_all(request).await?;
    let mut buffer = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(3), session.read(&mut buffer)).await.context("no answer")??;
    buffer.truncate(n);
    Ok(buffer)
}

/// A positive check: `attempt` must succeed with evidence.
pub async fn accepted(id: &str, what: &str, attempt: impl Future<Output = anyhow::Result<String>>) -> Check {
    match attempt.await {
        Ok(evidence) => Check::pass(id, what, evidence),
        Err(err) => Check::fail(id, format!("{what} failed"), one_line(&format!("{err:#}"))),
    }
}

fn one_line(text: &str) -> String {
    let line = text.replace('\n', " ");
    if line.len() > 300 {
        format!("{}...", &line[..line.char_indices().nth(300).map(|(i, _)| i).unwrap_or(line.len())])
    } else {
        line
    }
}

/// Runs every check concurrently and returns them in a stable order.
pub async fn verify(context: &Context) -> Vec<Check> {
    let mut checks: Vec<CheckFuture<'_>> = Vec::new();
    if context.profile.runs(Service::Postgres) {
        checks.extend(postgres::checks(context));
    }
    if context.profile.runs(Service::Redis) {
        checks.extend(redis::checks(context));
    }
    if context.profile.runs(Service::Qdrant) {
        checks.extend(qdrant::checks(context));
    }
    checks.extend(checklist::engine_checks(context));
    let mut results = futures_util::future::join_all(checks).await;
    let derived = checklist::derived(context, &results);
    results.extend(derived);
    results
}
