//! Probes: connect to a service the way an application does (TLS verified against the stack CA
//! with a host name check, login as an application user, a real query) and report what
//! happened. Used by `up` to decide a service is usable, and by the tests. Never exits, never
//! prints: a probe returns `Ok` or the server's own error.

pub mod cluster;
pub mod replication;
pub mod scrape;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::layout::{self, StackFile};
use crate::secrets::Secret;

/// How long one connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Client-side TLS material: the stack CA, and a client certificate where the profile wants one.
#[derive(Clone)]
pub struct ClientTls {
    pub ca_pem: Vec<u8>,
    /// Client certificate and key, PEM.
    pub client: Option<(Vec<u8>, Secret)>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").field("client", &self.client.is_some()).finish()
    }
}

/// Where to reach a service and as whom.
#[derive(Debug, Clone)]
pub struct Target {
    /// Host name or address to connect to; also the name the server certificate must cover.
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Secret,
    /// PostgreSQL database.
    pub database: String,
    pub tls: ClientTls,
    /// Where to connect when `host` is a name only the stack network resolves (its alias):
    /// the container's address there, which a local engine routes from the host.
    pub address: Option<std::net::SocketAddr>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes ring the process-wide rustls provider. The AWS SDK brings aws-lc-rs as well, and
/// clients that build their own rustls config (redis) refuse to guess between two. Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A rustls client config that trusts only the stack CA and presents the client certificate.
pub fn rustls_config(tls: &ClientTls) -> anyhow::Result<rustls::ClientConfig> {
    rustls_config_with(tls, rustls::DEFAULT_VERSIONS)
}

/// [`rustls_config`] offering only `versions`.
pub fn rustls_config_with(
    tls: &ClientTls,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &tls.ca_pem[..]) {
        roots.add(cert.context("reading the stack CA")?).context("adding the stack CA")?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .context("TLS versions")?
        .with_root_certificates(roots);
    Ok(match &tls.client {
        Some((cert_pem, key_pem)) => {
            let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &cert_pem[..])
                .collect::<Result<_, _>>()
                .context("reading the client certificate")?;
            let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.expose().as_bytes())
                .context("reading the client key")?
                .context("no key in the client key file")?;
            builder.with_client_auth_cert(certs, key).context("using the client certificate")?
        }
        None => builder.with_no_client_auth(),
    })
}

/// PostgreSQL: verify-full TLS, SCRAM login, `SELECT 1`, and a clean goodbye.
pub async fn postgres(target: &Target) -> anyhow::Result<()> {
    let session = postgres_client(target).await?;
    let one: i32 = session.query_one("SELECT 1", &[]).await?.get(0);
    session.close().await;
    anyhow::ensure!(one == 1, "SELECT 1 returned {one}");
    Ok(())
}

/// A PostgreSQL client whose connection runs on a task. `close` ends the session with a
/// Terminate message and waits for it to go out, so the server logs a disconnection and not
/// "connection reset by peer" when the process exits right after.
pub struct PgSession {
    client: tokio_postgres::Client,
    connection: tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
}

impl PgSession {
    /// Runs the connection of a freshly made client on a task.
    pub fn spawn<S, T>(client: tokio_postgres::Client, connection: tokio_postgres::Connection<S, T>) -> PgSession
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        PgSession { client, connection: tokio::spawn(connection) }
    }

    /// Says goodbye to the server and waits until that is sent.
    pub async fn close(self) {
        drop(self.client);
        let _ = self.connection.await;
    }
}

impl std::ops::Deref for PgSession {
    type Target = tokio_postgres::Client;

    fn deref(&self) -> &tokio_postgres::Client {
        &self.client
    }
}

/// A PostgreSQL session for `target` over verify-full TLS.
pub async fn postgres_client(target: &Target) -> anyhow::Result<PgSession> {
    let connector = tokio_postgres_rustls::MakeRustlsConnect::new(rustls_config(&target.tls)?);
    let mut config = tokio_postgres::Config::new();
    config
        .host(&target.host)
        .port(target.port)
        .user(&target.user)
        .password(target.password.expose())
        .dbname(&target.database)
        .application_name("hardstack")
        .ssl_mode(tokio_postgres::config::SslMode::Require)
        .connect_timeout(CONNECT_TIMEOUT);
    if let Some(address) = target.address {
        config.hostaddr(address.ip());
    }
    let (client, connection) = config.connect(connector).await?;
    Ok(PgSession::spawn(client, connection))
}

/// Redis: TLS verified against the stack CA, AUTH as the user, `PING` answered with `PONG`.
pub async fn redis(target: &Target) -> anyhow::Result<()> {
    let mut connection = redis_connection(target).await?;
    let pong: String = redis::cmd("PING").query_async(&mut connection).await?;
    anyhow::ensure!(pong == "PONG", "PING answered {pong}");
    Ok(())
}

/// An authenticated Redis connection for `target`.
pub async fn redis_connection(target: &Target) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    if let Some(address) = target.address {
        return tokio::time::timeout(CONNECT_TIMEOUT, redis_at(target, address)).await.context("timed out")?;
    }
    let client = redis_client(target)?;
    Ok(tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection())
        .await
        .context("timed out")??)
}

/// A Redis connection to an address on the stack network, its certificate verified against
/// the target's name (the redis crate verifies the name it dials): TLS by hand, then the
/// crate's connection over that stream.
async fn redis_at(target: &Target, address: std::net::SocketAddr) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let tcp = tokio::net::TcpStream::connect(address).await.with_context(|| format!("connecting to {address}"))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(rustls_config(&target.tls)?));
    let name = rustls::pki_types::ServerName::try_from(target.host.clone())?;
    let tls = connector.connect(name, tcp).await.with_context(|| format!("TLS with {} at {address}", target.host))?;
    let info = redis::RedisConnectionInfo {
        db: 0,
        // An empty login: a connection that never authenticates (what a refusal check needs).
        username: Some(target.user.clone()).filter(|user| !user.is_empty()),
        password: Some(target.password.expose().to_owned()).filter(|password| !password.is_empty()),
        protocol: redis::ProtocolVersion::RESP2,
    };
    let (connection, driver) = redis::aio::MultiplexedConnection::new(&info, tls).await?;
    tokio::spawn(driver);
    Ok(connection)
}

/// A Redis client for `target` (rediss://, the stack CA, the client certificate if any).
pub fn redis_client(target: &Target) -> anyhow::Result<redis::Client> {
    // The redis crate verifies the name it connects to: it cannot take an address beside it.
    anyhow::ensure!(target.address.is_none(), "Redis is reached from here only where it is published");
    let url = format!("rediss://{}:{}@{}:{}/0", target.user, target.password.expose(), target.host, target.port);
    let client_tls = target.tls.client.as_ref().map(|(cert, key)| redis::ClientTlsConfig {
        client_cert: cert.clone(),
        client_key: key.expose().as_bytes().to_vec(),
    });
    redis::Client::build_with_tls(
        url,
        redis::TlsCertificates { client_tls, root_cert: Some(target.tls.ca_pem.clone()) },
    )
    .context("building the Redis client")
}

/// Qdrant: HTTPS verified against the stack CA, the API key, listing collections.
pub async fn qdrant(target: &Target) -> anyhow::Result<()> {
    let client = https_client(target, CONNECT_TIMEOUT)?;
    let url = format!("https://{}:{}/collections", target.host, target.port);
    let response = client.get(&url).header("api-key", target.password.expose()).send().await?;
    anyhow::ensure!(response.status().is_success(), "GET /collections answered {}", response.status());
    Ok(())
}

/// Prometheus: ready to serve queries (`/-/ready` answers 200 once its storage is loaded; 503
/// before), over TLS with a client certificate.
pub async fn prometheus(target: &Target) -> anyhow::Result<()> {
    let client = https_client(target, CONNECT_TIMEOUT)?;
    let url = format!("https://{}:{}/-/ready", target.host, target.port);
    let response = client.get(&url).send().await?;
    anyhow::ensure!(response.status().is_success(), "GET /-/ready answered {}", response.status());
    Ok(())
}

/// An HTTPS client for one target: it trusts only the stack CA, presents the client
/// certificate if any, and connects to the target's address where it has one.
pub fn https_client(target: &Target, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().use_preconfigured_tls(rustls_config(&target.tls)?).timeout(timeout);
    if let Some(address) = target.address {
        builder = builder.resolve(&target.host, address);
    }
    builder.build().context("building the HTTPS client")
}

/// An HTTPS client that trusts only the stack CA, with the client certificate if any.
pub fn qdrant_client(tls: &ClientTls) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .use_preconfigured_tls(rustls_config(tls)?)
        .timeout(CONNECT_TIMEOUT)
        .build()
        .context("building the HTTPS client")
}

/// The host-side target of a service for the profile's first application user: the published
/// port on loopback (the name checked is the IP, which every server certificate covers), the
/// current password from the store, the client certificate when the profile requires one.
/// `None` when the service is not published: only the stack network reaches it.
pub async fn app_target(
    profile: &crate::profile::Profile,
    dir: &crate::stackdir::StackDir,
    store: &crate::secrets::store::Store,
    service: crate::profile::Service,
) -> anyhow::Result<Option<Target>> {
    use crate::profile::Service;
    if crate::endpoint::host_address(profile, service).is_none() {
        return Ok(None);
    }
    let user = profile.users.first().context("the profile has no application user")?;
    let secret = match service {
        Service::Postgres | Service::Redis => layout::login_secret(service, &user.name),
        // Through the pooler, with the login's PostgreSQL password.
        Service::Pgbouncer => layout::login_secret(Service::Postgres, &user.name),
        // For a user without Qdrant access, the read-write key proves the server usable.
        Service::Qdrant => layout::qdrant_key_secret(user.qdrant).unwrap_or(layout::QDRANT_API_KEY).to_owned(),
        // Prometheus's API answers the user's client certificate, no password.
        Service::Prometheus => {
            let Some(mut target) = login_target(profile, dir, service, &user.name, Secret::new(""), "")? else {
                return Ok(None);
            };
            target.tls = client_tls(dir, &user.name, true)?;
            return Ok(Some(target));
        }
        // Through the front, with the user's own key.
        Service::QdrantFront => match layout::front_key_users(profile).next() {
            Some(user) => {
                let key = store.current(&layout::login_secret(Service::QdrantFront, &user.name)).await?.value;
                return login_target(profile, dir, service, &user.name, key, "");
            }
            None => return Ok(None),
        },
        // Sentinel is reached on the stack network only (`sentinel`).
        Service::PostgresExporter | Service::RedisExporter | Service::PgbouncerExporter | Service::RedisSentinel => {
            return Ok(None);
        }
    };
    let version = store.current(&secret).await?;
    // PostgreSQL logins alternate with rotation: the version names its login.
    let login = version.username.clone().unwrap_or_else(|| user.name.clone());
    login_target(profile, dir, service, &login, version.value, &user.database)
}

/// The host-side target of PostgreSQL's replica `node` for the first application user, as
/// [`app_target`] gives the primary's. `None` when nothing is published.
pub async fn replica_target(
    profile: &crate::profile::Profile,
    dir: &crate::stackdir::StackDir,
    store: &crate::secrets::store::Store,
    node: u8,
) -> anyhow::Result<Option<Target>> {
    let Some(address) = crate::endpoint::replica_host_address(profile, node) else {
        return Ok(None);
    };
    let target = app_target(profile, dir, store, crate::profile::Service::Postgres).await?;
    Ok(target.map(|target| Target { port: address.port, ..target }))
}

/// The host-side target of hardstack's admin login on a service: PostgreSQL's `postgres`
/// database; PgBouncer's admin console, which takes PostgreSQL's admin login. `None` when not
/// published.
pub async fn admin_target(
    profile: &crate::profile::Profile,
    dir: &crate::stackdir::StackDir,
    store: &crate::secrets::store::Store,
    service: crate::profile::Service,
) -> anyhow::Result<Option<Target>> {
    use crate::profile::Service;
    let (secret_of, database) = match service {
        Service::Postgres => (Service::Postgres, "postgres"),
        Service::Pgbouncer => (Service::Postgres, "pgbouncer"),
        Service::Redis | Service::Qdrant => (service, ""),
        // Only the stack network reaches an exporter, and it has no login of its own; the
        // front's keys are the application users'.
        Service::PostgresExporter
        | Service::RedisExporter
        | Service::PgbouncerExporter
        | Service::Prometheus
        | Service::QdrantFront
        | Service::RedisSentinel => {
            return Ok(None);
        }
    };
    let password = store.current(&layout::login_secret(secret_of, layout::ADMIN)).await?.value;
    login_target(profile, dir, service, layout::ADMIN, password, database)
}

/// The host-side target of a service for one login and password, with the login's client
/// certificate when the profile requires client certificates. `None` when not published.
pub fn login_target(
    profile: &crate::profile::Profile,
    dir: &crate::stackdir::StackDir,
    service: crate::profile::Service,
    login: &str,
    password: Secret,
    database: &str,
) -> anyhow::Result<Option<Target>> {
    let Some(crate::endpoint::HostAddress { address, port }) = crate::endpoint::host_address(profile, service) else {
        return Ok(None);
    };
    Ok(Some(Target {
        host: address.to_string(),
        port,
        user: login.to_owned(),
        password,
        database: database.to_owned(),
        tls: client_tls(dir, login, profile.mutual_tls())?,
        address: None,
    }))
}

/// Where hardstack reaches a service from this machine for one login: its published port, or,
/// when the stack publishes nothing, the container's address on the stack network (a local
/// engine routes its bridge) with the server certificate verified against the service's alias.
pub async fn reach(
    engine: &crate::runtime::Engine,
    profile: &crate::profile::Profile,
    dir: &crate::stackdir::StackDir,
    service: crate::profile::Service,
    login: &str,
    password: Secret,
    database: &str,
) -> anyhow::Result<Target> {
    if let Some(target) = login_target(profile, dir, service, login, password.clone(), database)? {
        return Ok(target);
    }
    let name = crate::containers::running_name(profile, service);
    let network = crate::containers::stack_names(profile).network;
    let address = engine.address_on(&name, &network).await?;
    let endpoint = crate::endpoint::network_endpoint(profile, service);
    Ok(Target {
        address: Some(std::net::SocketAddr::new(address, endpoint.port)),
        host: endpoint.host,
        port: endpoint.port,
        user: login.to_owned(),
        password,
        database: database.to_owned(),
        tls: client_tls(dir, login, profile.demands_client_cert(service))?,
    })
}

/// TLS material for `login` from the stack directory: the stack CA, and the login's client
/// certificate when `with_client_cert`.
pub fn client_tls(dir: &crate::stackdir::StackDir, login: &str, with_client_cert: bool) -> anyhow::Result<ClientTls> {
    let client = if with_client_cert { Some(client_cert(dir, login)?) } else { None };
    Ok(ClientTls { ca_pem: read_file(dir, &StackFile::CaCert)?, client })
}

/// A login's client certificate and key (PEM) from the stack directory.
pub fn client_cert(dir: &crate::stackdir::StackDir, login: &str) -> anyhow::Result<(Vec<u8>, Secret)> {
    let key = read_file(dir, &StackFile::ClientKey(login.to_owned()))?;
    let key = String::from_utf8(key).context("the client key is not text")?;
    Ok((read_file(dir, &StackFile::ClientCert(login.to_owned()))?, Secret::new(key)))
}

fn read_file(dir: &crate::stackdir::StackDir, file: &StackFile) -> anyhow::Result<Vec<u8>> {
    std::fs::read(dir.file(file)).with_context(|| format!("reading {}", dir.file(file).display()))
}

/// Probes one service.
pub async fn probe(service: crate::profile::Service, target: &Target) -> anyhow::Result<()> {
    use crate::profile::Service;
    match service {
        // PgBouncer speaks PostgreSQL's protocol: the login and query reach PostgreSQL through it.
        Service::Postgres | Service::Pgbouncer => postgres(target).await,
        Service::Redis | Service::RedisSentinel => redis(target).await,
        Service::Qdrant | Service::QdrantFront => qdrant(target).await,
        Service::Prometheus => prometheus(target).await,
        Service::PostgresExporter | Service::RedisExporter | Service::PgbouncerExporter => {
            anyhow::bail!("{service} is scraped on the stack network (probe::scrape), not logged in to")
        }
    }
}

/// The certificate a server presents now (DER), after a handshake verified against the stack
/// CA. For PostgreSQL the TLS handshake follows its SSLRequest.
pub async fn served_certificate(target: &Target, postgres: bool) -> anyhow::Result<Vec<u8>> {
    let stream = match target.address {
        Some(address) => tokio::net::TcpStream::connect(address).await?,
        None => tokio::net::TcpStream::connect((target.host.as_str(), target.port)).await?,
    };
    served_certificate_on(stream, &target.host, &target.tls, postgres).await
}

/// The certificate a server presents on a connection made already, verified against `name`.
pub async fn served_certificate_on(
    mut stream: tokio::net::TcpStream,
    name: &str,
    tls: &ClientTls,
    postgres: bool,
) -> anyhow::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    if postgres {
        // SSLRequest: length 8, code 80877103; the server answers 'S'.
        stream.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).await?;
        let mut answer = [0u8; 1];
        stream.read_exact(&mut answer).await?;
        anyhow::ensure!(answer[0] == b'S', "the server refused TLS");
    }
    let connector = tokio_rustls::TlsConnector::from(Arc::new(rustls_config(tls)?));
    let name = rustls::pki_types::ServerName::try_from(name.to_owned())?;
    let tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, stream)).await.context("timed out")??;
    let (_, session) = tls.get_ref();
    let chain = session.peer_certificates().context("the server sent no certificate")?;
    Ok(chain.first().context("empty certificate chain")?.to_vec())
}
