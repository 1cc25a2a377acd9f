//! `verify`: prove that a running stack is usable and closed. Positive checks connect as each
//! application user (TLS verify-full, login, a real query); negative checks try what must be
//! refused; the production checklist is derived from both and from the engine's view of the
//! containers. Every check runs, concurrently; a failure never stops the others. Checks return
//! results; they never print and never exit.

mod checklist;
mod declared;
mod front;
pub mod inside;
mod monitoring;
mod peers;
mod pgbouncer;
mod postgres;
mod qdrant;
mod redis;
pub mod refusal;
mod replica;
mod sentinel;

use std::future::Future;
use std::net::SocketAddr;
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

/// Where the service checks run from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Vantage {
    /// The host: the published ports, at the loopback (or bind) address.
    Host,
    /// Inside the stack network: each service by its alias and container port, from a
    /// short-lived container on that network (`verify::inside`).
    Network,
}

impl Vantage {
    /// Where checks can reach the services: the host when the stack publishes its ports, its
    /// network otherwise.
    pub fn reaching(profile: &Profile) -> Vantage {
        if profile.network.publish { Vantage::Host } else { Vantage::Network }
    }
}

/// Everything the checks need, gathered once.
pub struct Context {
    pub profile: Profile,
    pub dir: StackDir,
    /// Where the service checks connect from.
    pub vantage: Vantage,
    /// Each service's address and the name its certificate is verified against.
    endpoints: std::collections::BTreeMap<Service, (SocketAddr, String)>,
    /// PostgreSQL's replicas, node 1 first: the address and the name verified, as `endpoints`.
    replicas: Vec<(SocketAddr, String)>,
    /// The nodes of replicated services by alias (Redis's nodes and Sentinels: `redis-1`,
    /// `redis-sentinel`; Qdrant's peers: `qdrant`, `qdrant-1`): where the checks reach them on
    /// the stack network, verified against the alias.
    pub nodes: std::collections::BTreeMap<String, SocketAddr>,
    /// The stack CA only.
    pub ca_pem: Vec<u8>,
    /// A client certificate for `app` (CN = app) from a CA the stack does not know.
    pub foreign_client: (Vec<u8>, Secret),
    /// The current version of every secret of the stack (and Qdrant's alternate key), read once.
    pub secrets: Versions,
    /// Whether the secrets are in the file store (whose files the checklist inspects).
    pub file_store: bool,
    /// The engine's view of each service's container, read once on the host (the checklist
    /// reads it); empty inside the stack network, where there is no engine.
    /// Each is named by its alias (`postgres`, a replica's `postgres-1`).
    pub containers: Vec<(String, crate::runtime::ContainerInfo)>,
    /// PostgreSQL's admin session, made by the first check that needs it and shared by all
    /// (admin's connection limit is small; the checks' queries are pipelined on it).
    admin: tokio::sync::OnceCell<Result<crate::probe::PgSession, String>>,
    /// The checks started before the engine was reached (`prepare`), running, then their
    /// results: a refused password waits out the server's `auth_delay`, the longest wait of a
    /// verify, so it starts before the other checks compete with it for the machine.
    early_task: std::sync::Mutex<Option<tokio::task::JoinHandle<Vec<Check>>>>,
    early: tokio::sync::OnceCell<Vec<Check>>,
}

impl Context {
    /// Gathers the context on the host, for service checks from `vantage`; `EnvironmentError`
    /// when the stack cannot be reached (a container not running, or nothing published for
    /// checks from the host). [`Context::prepare`], then [`Context::attach`].
    pub async fn gather(profile: Profile, dir: StackDir, engine: &Engine, vantage: Vantage) -> anyhow::Result<Context> {
        let mut context = Context::prepare(profile, dir, vantage).await?;
        context.attach(engine).await?;
        Ok(context)
    }

    /// What needs no engine: the published endpoints, the CA, the secrets. From the host, the
    /// checks that wait out PostgreSQL's `auth_delay` start here (see `early`), while the
    /// caller reaches the engine.
    pub async fn prepare(profile: Profile, dir: StackDir, vantage: Vantage) -> anyhow::Result<Context> {
        let mut endpoints = std::collections::BTreeMap::new();
        if vantage == Vantage::Host {
            for service in layout::services(&profile).filter(|s| !hidden(&profile, *s)) {
                let Some(crate::endpoint::HostAddress { address, port }) =
                    crate::endpoint::host_address(&profile, service)
                else {
                    return Err(EnvironmentError(format!(
                        "stack {} publishes no port, so its servers cannot be reached from the host; verify from inside its network (--from network)",
                        profile.stack.name
                    ))
                    .into());
                };
                endpoints.insert(service, (SocketAddr::new(address, port), address.to_string()));
            }
        }
        // PostgreSQL's replicas at their published ports.
        let mut replicas = Vec::new();
        for node in
            profile.postgres.standby_nodes().filter(|_| vantage == Vantage::Host && profile.runs(Service::Postgres))
        {
            let address = crate::endpoint::replica_host_address(&profile, node)
                .context("the stack publishes no port for its replicas")?;
            replicas.push((SocketAddr::new(address.address, address.port), address.address.to_string()));
        }
        let context = Context::common(profile, dir, vantage, endpoints, replicas).await?;
        if vantage == Vantage::Host && context.profile.runs(Service::Postgres) {
            let copy = context.copy();
            let task = tokio::spawn(async move {
                let checks = postgres::waiting_out_auth_delay(&copy);
                futures_util::future::join_all(checks).await
            });
            *context.early_task.lock().expect("never poisoned") = Some(task);
        }
        Ok(context)
    }

    /// Reads each service's container from the engine (every one must be running) and the
    /// addresses of the services never published.
    pub async fn attach(&mut self, engine: &Engine) -> anyhow::Result<()> {
        let attached = self.inspect(engine).await;
        if attached.is_err()
            && let Some(task) = self.early_task.lock().expect("never poisoned").take()
        {
            task.abort();
        }
        attached
    }

    async fn inspect(&mut self, engine: &Engine) -> anyhow::Result<()> {
        for service in layout::services(&self.profile) {
            let name = crate::containers::running_name(&self.profile, service);
            let info = running(engine, &name).await?;
            if self.vantage == Vantage::Host && hidden(&self.profile, service) {
                // Never published: its address on the stack network, which a local engine's
                // host routes to, verified against its alias.
                let network = crate::containers::stack_names(&self.profile).network;
                let address = crate::runtime::address_in(&info, &network)
                    .with_context(|| format!("container {name} has no address on {network}"))?;
                let addr = SocketAddr::new(address, service.container_port());
                self.endpoints.insert(service, (addr, service.name().to_owned()));
            }
            self.containers.push((service.name().to_owned(), info))
        }
        // PostgreSQL's replicas: their posture is checked as every server's.
        for spec in crate::replica::specs(&self.profile) {
            let info = running(engine, &spec.name).await?;
            self.containers.push((spec.alias, info));
        }
        // Redis's nodes and Sentinels, Qdrant's peers: reached at their addresses on the stack
        // network, and the posture of those beyond node 0 checked as every server's.
        let network = crate::containers::stack_names(&self.profile).network;
        for (alias, name, port, node) in other_nodes(&self.profile) {
            let info = running(engine, &name).await?;
            let address = crate::runtime::address_in(&info, &network)
                .with_context(|| format!("container {name} has no address on {network}"))?;
            self.nodes.insert(alias.clone(), SocketAddr::new(address, port));
            if node > 0 {
                self.containers.push((alias, info));
            }
        }
        Ok(())
    }

    /// The same context without the engine's view, for the checks started early.
    fn copy(&self) -> Context {
        Context {
            profile: self.profile.clone(),
            dir: self.dir.clone(),
            vantage: self.vantage,
            endpoints: self.endpoints.clone(),
            replicas: self.replicas.clone(),
            nodes: self.nodes.clone(),
            ca_pem: self.ca_pem.clone(),
            foreign_client: self.foreign_client.clone(),
            secrets: self.secrets.clone(),
            file_store: self.file_store,
            containers: Vec::new(),
            admin: tokio::sync::OnceCell::new(),
            early_task: std::sync::Mutex::new(None),
            early: tokio::sync::OnceCell::new(),
        }
    }

    /// The check `id` if it was started early (its result, once it is done), else `otherwise`.
    pub fn started_early<'a>(&'a self, id: &'static str, otherwise: CheckFuture<'a>) -> CheckFuture<'a> {
        Box::pin(async move {
            let early = self
                .early
                .get_or_init(|| async {
                    let task = self.early_task.lock().expect("never poisoned").take();
                    match task {
                        Some(task) => task.await.unwrap_or_default(),
                        None => Vec::new(),
                    }
                })
                .await;
            match early.iter().find(|check| check.id == id) {
                Some(check) => check.clone(),
                None => otherwise.await,
            }
        })
    }

    /// Gathers the context inside the stack network: each service by its alias (the stack
    /// network's DNS) and container port, verified against the alias, which every server
    /// certificate covers.
    pub async fn gather_inside(profile: Profile, dir: StackDir) -> anyhow::Result<Context> {
        let mut endpoints = std::collections::BTreeMap::new();
        for service in layout::services(&profile) {
            let crate::endpoint::Endpoint { host, port } = crate::endpoint::network_endpoint(&profile, service);
            endpoints.insert(service, (resolve(&host, port).await?, host));
        }
        let mut replicas = Vec::new();
        for node in profile.postgres.standby_nodes().filter(|_| profile.runs(Service::Postgres)) {
            let alias = crate::endpoint::replica_alias(node);
            replicas.push((resolve(&alias, Service::Postgres.container_port()).await?, alias));
        }
        let mut nodes = std::collections::BTreeMap::new();
        for (alias, _, port, _) in other_nodes(&profile) {
            nodes.insert(alias.clone(), resolve(&alias, port).await?);
        }
        let mut context = Context::common(profile, dir, Vantage::Network, endpoints, replicas).await?;
        context.nodes = nodes;
        Ok(context)
    }

    async fn common(
        profile: Profile,
        dir: StackDir,
        vantage: Vantage,
        endpoints: std::collections::BTreeMap<Service, (SocketAddr, String)>,
        replicas: Vec<(SocketAddr, String)>,
    ) -> anyhow::Result<Context> {
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
            vantage,
            endpoints,
            replicas,
            nodes: std::collections::BTreeMap::new(),
            ca_pem,
            foreign_client: (foreign.cert_pem.into_bytes(), foreign.key_pem),
            secrets,
            file_store,
            containers: Vec::new(),
            admin: tokio::sync::OnceCell::new(),
            early_task: std::sync::Mutex::new(None),
            early: tokio::sync::OnceCell::new(),
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

    /// Where the checks reach a service.
    pub fn addr(&self, service: Service) -> SocketAddr {
        self.endpoints.get(&service).map(|(addr, _)| *addr).unwrap_or_else(|| ([127, 0, 0, 1], 0).into())
    }

    /// Where the checks reach PostgreSQL's replica `node`, and the name they verify.
    pub fn replica(&self, node: u8) -> Option<&(SocketAddr, String)> {
        self.replicas.get(self.profile.postgres.standby_nodes().position(|standby| standby == node)?)
    }

    /// The port the checks reach a service at.
    pub fn port(&self, service: Service) -> u16 {
        self.addr(service).port()
    }

    /// The name the checks verify a service's certificate against: the loopback address from
    /// the host, the alias inside the stack network; every server certificate covers both.
    pub fn server_name(&self, service: Service) -> String {
        self.endpoints.get(&service).map(|(_, name)| name.clone()).unwrap_or_default()
    }

    /// TLS material for a login: the stack CA, and the login's client certificate.
    pub fn tls_for(&self, login: &str, with_client_cert: bool) -> anyhow::Result<ClientTls> {
        let client = if with_client_cert { Some(crate::probe::client_cert(&self.dir, login)?) } else { None };
        Ok(ClientTls { ca_pem: self.ca_pem.clone(), client })
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

    /// PostgreSQL's admin session (see `admin`): logged in once, the first time it is asked for.
    pub async fn admin(&self) -> anyhow::Result<&crate::probe::PgSession> {
        let session =
            self.admin.get_or_init(|| async { postgres::admin_login(self).await.map_err(|err| format!("{err:#}")) });
        session.await.as_ref().map_err(|err| anyhow::anyhow!("{err}"))
    }
}

/// The engine's view of container `name`, which must be running (`EnvironmentError` otherwise).
async fn running(engine: &Engine, name: &str) -> anyhow::Result<crate::runtime::ContainerInfo> {
    match engine.inspect(name).await? {
        Some(info) if info.state.as_ref().and_then(|s| s.running).unwrap_or(false) => Ok(info),
        _ => Err(EnvironmentError(format!("container {name} is not running; run `hardstack up` first")).into()),
    }
}

/// The address of `host` on the stack network (its DNS), from inside it.
async fn resolve(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("resolving {host} on the stack network"))?
        .next()
        .with_context(|| format!("{host} has no address on the stack network"))
}

/// The nodes of replicated services the checks reach one by one: Redis's nodes and Sentinels
/// where Redis has replicas, Qdrant's peers in a cluster; each as (alias, container, port on
/// the stack network, node).
fn other_nodes(profile: &Profile) -> Vec<(String, String, u16, u8)> {
    let redis = sentinel::nodes(profile).into_iter().map(|(service, node)| {
        let alias = crate::sentinel::alias(service, node);
        (alias, crate::sentinel::container_name(profile, service, node), service.container_port(), node)
    });
    let peers = profile.qdrant.node_numbers().filter(|_| crate::peers::is_cluster(profile)).map(|node| {
        (crate::peers::alias(node), crate::peers::container_name(profile, node), Service::Qdrant.container_port(), node)
    });
    redis.chain(peers).collect()
}

/// Whether a service is never published by design: an exporter, Qdrant behind its front. From
/// the host, the checks reach it at its address on the stack network.
fn hidden(profile: &Profile, service: Service) -> bool {
    service.is_exporter() || service == Service::RedisSentinel || profile.fronted(service)
}

/// A check in flight.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Check> + Send + 'a>>;

/// Wraps a check so a timeout or an internal error becomes a failed check with that evidence.
pub fn bounded<'a>(id: String, check: impl Future<Output = Check> + Send + 'a) -> CheckFuture<'a> {
    bounded_within(id, CHECK_TIMEOUT, check)
}

/// [`bounded`] with a time of its own, for a check that waits for something on a schedule of
/// the profile's (Prometheus's first scrapes).
pub fn bounded_within<'a>(
    id: String,
    within: Duration,
    check: impl Future<Output = Check> + Send + 'a,
) -> CheckFuture<'a> {
    Box::pin(async move {
        match tokio::time::timeout(within, check).await {
            Ok(result) => result,
            Err(_) => {
                Check::fail(id, "the check did not finish in time", format!("no answer within {}s", within.as_secs()))
            }
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
    let mut stream =
        tokio::time::timeout(crate::probe::CONNECT_TIMEOUT, tokio::net::TcpStream::connect(context.addr(service)))
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
    tls_exchange_at(context.addr(service), server_name, tls, request).await
}

/// [`tls_exchange`] with a server at `address`.
pub async fn tls_exchange_at(
    address: SocketAddr,
    server_name: &str,
    tls: anyhow::Result<ClientTls>,
    request: &[u8],
) -> anyhow::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let config = prepare(tls.and_then(|tls| crate::probe::rustls_config(&tls)))?;
    let name = prepare(rustls::pki_types::ServerName::try_from(server_name.to_owned()).map_err(anyhow::Error::from))?;
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let stream = tokio::net::TcpStream::connect(address).await?;
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

/// The checks that talk to the servers: logins, refusals, and the checklist items that read
/// server settings. They run where the context's vantage point is.
pub async fn server_checks(context: &Context) -> Vec<Check> {
    let mut checks: Vec<CheckFuture<'_>> = Vec::new();
    if context.profile.runs(Service::Postgres) {
        checks.extend(postgres::checks(context));
        checks.extend(postgres::cis_checks(context));
        checks.extend(replica::checks(context));
    }
    if context.profile.runs(Service::Redis) {
        checks.extend(redis::checks(context));
        checks.extend(sentinel::checks(context));
    }
    if context.profile.runs(Service::Qdrant) {
        checks.extend(qdrant::checks(context));
        checks.extend(peers::checks(context));
    }
    if context.profile.runs(Service::QdrantFront) {
        checks.extend(front::checks(context));
    }
    if context.profile.runs(Service::Pgbouncer) {
        checks.extend(pgbouncer::checks(context));
    }
    checks.extend(monitoring::checks(context));
    checks.extend(declared::checks(context));
    checks.extend(checklist::server_checks(context));
    futures_util::future::join_all(checks).await
}

/// Runs every check concurrently and returns them in a stable order: the server checks from
/// the context's vantage point (from inside the stack network through a short-lived container,
/// see `inside`), the engine's checklist items from the host, then the items derived from all.
pub async fn verify(context: &Context, engine: &Engine) -> anyhow::Result<Vec<Check>> {
    let engine_checks = futures_util::future::join_all(checklist::engine_checks(context, engine));
    let (server, engine_results) = match context.vantage {
        Vantage::Host => {
            let (server, engine_results) = tokio::join!(server_checks(context), engine_checks);
            (Ok(server), engine_results)
        }
        Vantage::Network => tokio::join!(inside::run(context, engine), engine_checks),
    };
    let mut results = server?;
    results.extend(engine_results);
    let derived = checklist::derived(context, &results);
    results.extend(derived);
    Ok(results)
}
