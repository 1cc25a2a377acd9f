//! The exporters' monitor logins. Each exporter reads its password file at start, so a new
//! password is set on the server, delivered into the exporter's volume, and the exporter
//! restarts; the test is a login with the new password and a scrape that says the restarted
//! exporter reaches its server again. Redis keeps the previous password as well, so no scrape
//! fails; PostgreSQL's monitor role has one password, so a scrape between the set and the
//! restart may (a missed sample, never a client's request).

use anyhow::Context as _;

use super::Context;
use crate::layout::{self, StackFile};
use crate::probe::{self, scrape};
use crate::profile::Service;
use crate::secrets::store::SecretVersion;

/// Hands `exporter` its new password file and restarts it, when the profile runs it.
pub async fn deliver(context: &Context<'_>, exporter: Service, pending: &SecretVersion) -> anyhow::Result<()> {
    if !context.profile.runs(exporter) {
        return Ok(());
    }
    let (file, content) = match exporter {
        Service::PostgresExporter => {
            (StackFile::PostgresExporterPassword, crate::render::password_file(&pending.value))
        }
        Service::PgbouncerExporter => {
            (StackFile::PgbouncerExporterPgpass, crate::render::login_pgpass(layout::MONITOR, &pending.value))
        }
        Service::RedisExporter => (
            StackFile::RedisExporterPasswords,
            crate::render::password_by_address(layout::REDIS_EXPORTER_PASSWORD_KEY, &pending.value),
        ),
        other => anyhow::bail!("{other} reads no monitor password"),
    };
    context.deliver_content(exporter, &file, content.as_bytes()).await?;
    let name = crate::containers::container_name(context.profile, exporter);
    context.engine.restart(&name).await
}

/// Logs in to PostgreSQL as monitor with the pending password (a client certificate always:
/// pg_hba.conf asks monitor for one), then waits for the exporters to reach PostgreSQL and
/// PgBouncer's console.
pub async fn test_postgres(context: &Context<'_>, pending: &SecretVersion) -> anyhow::Result<()> {
    let mut target = probe::login_target(
        context.profile,
        context.dir,
        Service::Postgres,
        layout::MONITOR,
        pending.value.clone(),
        "postgres",
    )?
    .context("PostgreSQL is not published, so rotation cannot reach it from here; set network.publish=true")?;
    target.tls = probe::client_tls(context.dir, layout::MONITOR, true)?;
    let session = probe::postgres_client(&target).await.context("logging in to PostgreSQL as monitor")?;
    session.query_one("SELECT 1", &[]).await.context("a query as monitor")?;
    session.close().await;
    exporter_up(context, Service::PostgresExporter).await?;
    exporter_up(context, Service::PgbouncerExporter).await
}

/// Waits until `exporter`, restarted with the new password, says it reaches its server (its
/// up series is 1), when the profile runs it.
pub async fn exporter_up(context: &Context<'_>, exporter: Service) -> anyhow::Result<()> {
    if !context.profile.runs(exporter) {
        return Ok(());
    }
    let target = context.monitoring_target(exporter).await?;
    let (up, _) = scrape::series(exporter);
    let poll = std::time::Duration::from_millis(250);
    crate::retry::Backoff::every(poll, 120 * poll)
        .run(|| async {
            match scrape::scrape(&target).await.map(|metrics| scrape::sample(&metrics, up)) {
                Ok(Some(1.0)) => crate::retry::Attempt::Done(()),
                Ok(value) => crate::retry::Attempt::Retry(anyhow::anyhow!("{up} is {value:?}")),
                Err(err) => crate::retry::Attempt::Retry(err),
            }
        })
        .await
        .with_context(|| format!("{exporter}, restarted with the new password, reaching its server"))
}
