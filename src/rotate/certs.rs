//! Server certificates: re-issued from the stack's CA before they expire, copied into the
//! running container's volume and hot-reloaded (PostgreSQL and Redis on request; Qdrant by
//! itself within `tls.cert_ttl`), so open connections keep their session and new ones get the
//! new certificate. The new pair waits as `server.{crt,key}.pending` until the
//! server presents it; then it replaces the old pair in the stack directory.

use std::time::SystemTime;

use anyhow::Context as _;

use super::{Context, Step};
use crate::fsio;
use crate::layout::{self, StackFile};
use crate::pki;
use crate::probe;
use crate::profile::Service;
use crate::secrets::Secret;

/// The server's pair, as files of the layout.
fn pair(service: Service) -> [StackFile; 2] {
    [StackFile::ServerCert(service), StackFile::ServerKey(service)]
}

/// The files that are (or are about to be) the server's pair: the pending copy where there is
/// one.
fn sources(context: &Context<'_>, service: Service) -> [String; 2] {
    pair(service).map(|file| {
        let path = file.path();
        if context.dir.path(&layout::pending(&path)).exists() { layout::pending(&path) } else { path }
    })
}

/// Whether a re-issued pair waits as `.pending` files.
pub fn pending(context: &Context<'_>, service: Service) -> bool {
    pair(service).iter().any(|file| context.dir.path(&layout::pending(&file.path())).exists())
}

/// `None` when due: a rotation in progress, `force`, or expiry within `rotation.cert_renew_before`;
/// otherwise the days until it is due.
pub fn due(context: &Context<'_>, service: Service, force: bool) -> anyhow::Result<Option<u64>> {
    if pending(context, service) {
        return Ok(None);
    }
    let crt = StackFile::ServerCert(service).path();
    let pem = std::fs::read_to_string(context.dir.path(&crt)).with_context(|| format!("reading {crt}"))?;
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let left = pki::not_after(&pem)? - now;
    let renew = context.profile.rotation.cert_renew_before.0.as_secs() as i64;
    Ok(if force || left <= renew { None } else { Some(((left - renew) / 86_400) as u64) })
}

/// One step of a certificate's rotation.
pub async fn step(context: &Context<'_>, service: Service, step: Step) -> anyhow::Result<()> {
    let [crt, key] = pair(service);
    match step {
        Step::Create => {
            let crt_pending = context.dir.path(&layout::pending(&crt.path()));
            let key_pending = context.dir.path(&layout::pending(&key.path()));
            if crt_pending.exists() || key_pending.exists() {
                return Ok(());
            }
            let read = |file: StackFile| {
                std::fs::read_to_string(context.dir.file(&file)).with_context(|| format!("reading {}", file.path()))
            };
            let ca =
                pki::load_ca(&read(StackFile::CaCert)?, &Secret::new(read(StackFile::CaKey)?)).with_context(|| {
                    format!("loading the CA ({}, {})", StackFile::CaCert.path(), StackFile::CaKey.path())
                })?;
            let spec = crate::bundle::cert_files(context.profile)
                .into_iter()
                .find(|c| c.cert == crt)
                .context("the service has a server certificate")?
                .spec;
            let issued = pki::issue(&ca, context.profile.tls.key_algorithm, &spec)?;
            // The key first: a crash in between leaves a pending key and no pending certificate,
            // which the next run overwrites.
            fsio::write_atomic(&key_pending, issued.key_pem.expose().as_bytes(), key.mode().bits())?;
            fsio::write_atomic(&crt_pending, issued.cert_pem.as_bytes(), crt.mode().bits())
        }
        Step::Set => {
            // The pending pair goes where the pair goes, recorded under the pair's names: once
            // finished, the stack directory holds exactly what the server has.
            // PostgreSQL's replicas present its certificate too.
            for spec in super::receivers(context.engine, context.profile, service).await? {
                let mut files = Vec::new();
                for (file, source) in [&crt, &key].into_iter().zip(sources(context, service)) {
                    let content =
                        std::fs::read(context.dir.path(&source)).with_context(|| format!("reading {source}"))?;
                    let delivery =
                        spec.deliveries.iter().find(|d| d.file == *file).context("the service receives its pair")?;
                    files.push((delivery.clone(), content));
                }
                crate::converge::deliver(context.engine, &context.profile.stack.name, &spec, files).await?;
            }
            Ok(())
        }
        Step::Test if service == Service::Qdrant => {
            // Qdrant re-reads its certificate by itself every tls.cert_ttl seconds; until then it
            // presents the old one, which chains to the same CA. The test is a verified
            // handshake and a real request. A cluster's peers read theirs for the p2p port at
            // start only: they restart one by one.
            let key = context.store.current(layout::QDRANT_API_KEY).await?.value;
            if crate::peers::is_cluster(context.profile) {
                super::qdrant::restart(context, &key).await?;
            }
            let login = super::qdrant::login(context)?;
            let target = probe::reach(context.engine, context.profile, context.dir, service, &login, key, "").await?;
            probe::qdrant(&target).await
        }
        Step::Test if service.is_monitoring() => {
            // An exporter reads its certificate for each connection; it requires a client
            // certificate, and only the stack network reaches it.
            let [crt_source, _] = sources(context, service);
            let expected = pem_der(&std::fs::read_to_string(context.dir.path(&crt_source))?)?;
            let target = context.monitoring_target(service).await?;
            let stream = tokio::net::TcpStream::connect(target.address).await?;
            let served = probe::served_certificate_on(stream, &target.name, &target.tls, false).await?;
            anyhow::ensure!(served == expected, "{service} still presents the old certificate");
            Ok(())
        }
        Step::Test if crate::sentinel::is_replicated(context.profile, service) => {
            // Each Redis node reads its pair again (CONFIG SET), each Sentinel restarts; then
            // each presents the new certificate, at its address on the stack network.
            reload(context, service).await?;
            let [crt_source, _] = sources(context, service);
            let expected = pem_der(&std::fs::read_to_string(context.dir.path(&crt_source))?)?;
            for spec in super::receivers(context.engine, context.profile, service).await? {
                let node = (service, crate::sentinel::node(&spec).unwrap_or(0));
                let (engine, profile, dir) = (context.engine, context.profile, context.dir);
                let target =
                    crate::converge::sentinel::target(engine, profile, dir, node, layout::ADMIN, Secret::new(""));
                let target = target.await?;
                serves(&target, false, &expected).await.with_context(|| format!("after the reload, {}", spec.alias))?;
            }
            Ok(())
        }
        Step::Test => {
            reload(context, service).await?;
            let [crt_source, _] = sources(context, service);
            let expected = pem_der(&std::fs::read_to_string(context.dir.path(&crt_source))?)?;
            let target = match service {
                // The front has no admin login: a user's key reaches it.
                Service::QdrantFront => {
                    let user = layout::front_key_users(context.profile).next().context("no user has Qdrant access")?;
                    let key = context.store.current(&layout::login_secret(service, &user.name)).await?.value;
                    probe::reach(context.engine, context.profile, context.dir, service, &user.name, key, "").await?
                }
                _ => admin_target(context, service).await?,
            };
            let starttls = matches!(service, Service::Postgres | Service::Pgbouncer);
            serves(&target, starttls, &expected).await.with_context(|| format!("after the reload, {service}"))?;
            if service == Service::Postgres {
                replicas_serve(context, target, &expected).await?;
            }
            Ok(())
        }
        // The pending pair replaces the old one, and the manifest records it.
        Step::Finish => crate::stackdir::promote_pending(context.dir, &[key, crt]),
    }
}

/// Each replica reloads its files (over its socket, as the superuser: a replica takes no
/// writes, and a reload is none) and then presents the certificate `expected`, at its own port
/// of the primary's `target`.
async fn replicas_serve(context: &Context<'_>, mut target: probe::Target, expected: &[u8]) -> anyhow::Result<()> {
    let replicas = super::receivers(context.engine, context.profile, Service::Postgres).await?;
    let standbys =
        replicas.iter().filter_map(|spec| Some((spec, crate::replica::standby_node(context.profile, spec)?)));
    for (spec, node) in standbys {
        crate::superuser::sql(context.engine, spec, "SELECT pg_reload_conf()").await?;
        let address = crate::endpoint::replica_host_address(context.profile, node)
            .context("the replicas are published where the primary is")?;
        target.port = address.port;
        serves(&target, true, expected).await.with_context(|| format!("after the reload, {}", spec.alias))?;
    }
    Ok(())
}

/// Waits until the server at `target` presents the certificate `expected`: a reload is
/// asynchronous in PostgreSQL (a signal to the postmaster), so it is asked again briefly.
async fn serves(target: &probe::Target, starttls: bool, expected: &[u8]) -> anyhow::Result<()> {
    let poll = std::time::Duration::from_millis(100);
    crate::retry::Backoff::every(poll, 50 * poll)
        .run(|| async {
            match probe::served_certificate(target, starttls).await {
                Ok(served) if served == expected => crate::retry::Attempt::Done(()),
                Ok(_) => crate::retry::Attempt::Retry(anyhow::anyhow!("the server still presents the old certificate")),
                Err(err) => crate::retry::Attempt::Retry(err),
            }
        })
        .await
}

fn pem_der(pem: &str) -> anyhow::Result<Vec<u8>> {
    let (_, parsed) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).context("not a PEM certificate")?;
    Ok(parsed.contents)
}

async fn admin_target(context: &Context<'_>, service: Service) -> anyhow::Result<probe::Target> {
    probe::admin_target(context.profile, context.dir, context.store, service)
        .await?
        .context("the service is not published, so rotation cannot reach it from here; set network.publish=true")
}

/// Makes the server load the certificate files again.
async fn reload(context: &Context<'_>, service: Service) -> anyhow::Result<()> {
    match service {
        Service::Postgres => {
            // With the current password, or the pending one an unfinished rotation set.
            let client = super::postgres::admin(context).await?;
            client.query_one("SELECT pg_reload_conf()", &[]).await.context("pg_reload_conf()")?;
        }
        Service::Redis => {
            let [crt, key] = pair(service)
                .map(|file| layout::container_path(context.profile, service, &file).expect("Redis receives its pair"));
            // Every node: the primary where it is published, the others on the stack network.
            for spec in super::receivers(context.engine, context.profile, service).await? {
                let node = crate::sentinel::node(&spec).unwrap_or(0);
                let mut connection = match node == context.profile.redis.primary_node() {
                    true => probe::redis_connection(&admin_target(context, service).await?).await,
                    false => {
                        let (engine, profile, dir, store) =
                            (context.engine, context.profile, context.dir, context.store);
                        crate::converge::sentinel::admin(engine, profile, dir, store, node).await
                    }
                }
                .with_context(|| format!("logging in to {} as admin", spec.alias))?;
                // Setting the same paths makes Redis read the files again (they are volatile configs).
                ::redis::cmd("CONFIG")
                    .arg("SET")
                    .arg("tls-cert-file")
                    .arg(&crt)
                    .arg("tls-key-file")
                    .arg(&key)
                    .query_async::<()>(&mut connection)
                    .await
                    .context("CONFIG SET tls-cert-file")?;
            }
        }
        Service::Qdrant => {
            // Qdrant re-reads its certificate itself every tls.cert_ttl seconds.
        }
        Service::Pgbouncer => {
            let name = crate::containers::container_name(context.profile, service);
            context.engine.signal(&name, "HUP").await?;
        }
        // In place through its admin socket: no reload, no connection closed.
        Service::QdrantFront => super::front::replace_certificate(context).await?,
        // Sentinel has no CONFIG SET: each restarts, one after the other (the others answer
        // meanwhile).
        Service::RedisSentinel => {
            for name in crate::sentinel::sentinel_names(context.profile) {
                context.engine.restart(&name).await?;
            }
        }
        Service::PostgresExporter | Service::RedisExporter | Service::PgbouncerExporter | Service::Prometheus => {
            // A monitoring service reads its certificate afresh for each connection.
        }
    }
    Ok(())
}
