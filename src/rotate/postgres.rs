//! PostgreSQL: passwords reach the server as SCRAM verifiers through the admin login, which
//! holds ADMIN on the application logins (granted by the init SQL).

use anyhow::Context as _;

use super::Context;
use crate::layout::{self, StackFile};
use crate::probe;
use crate::profile::Service;
use crate::secrets::Secret;
use crate::secrets::store::SecretVersion;

/// A session as `login` with `password`.
async fn connect(
    context: &Context<'_>,
    login: &str,
    password: Secret,
    database: &str,
) -> anyhow::Result<probe::PgSession> {
    let target = probe::login_target(context.profile, context.dir, Service::Postgres, login, password, database)?
        .context("PostgreSQL is not published, so rotation cannot reach it from here; set network.publish=true")?;
    probe::postgres_client(&target).await.with_context(|| format!("logging in to PostgreSQL as {login}"))
}

/// An admin session: with the current password, or the pending one when an earlier run of
/// the admin's own rotation already set it.
pub(super) async fn admin(context: &Context<'_>) -> anyhow::Result<probe::PgSession> {
    use crate::secrets::store::{SecretStore as _, Stage};
    let current = context.store.current(&layout::login_secret(Service::Postgres, layout::ADMIN)).await?;
    match connect(context, layout::ADMIN, current.value, "postgres").await {
        Ok(client) => Ok(client),
        Err(err) => {
            match context.store.get(&layout::login_secret(Service::Postgres, layout::ADMIN), Stage::Pending).await? {
                Some(pending) => connect(context, layout::ADMIN, pending.value, "postgres").await,
                None => Err(err),
            }
        }
    }
}

/// An admin session whose statements stay out of the server log, for statements that carry a
/// verifier. Its own statement, sent alone, since the server decides whether to log a query
/// string when it arrives. The init SQL lets admin set this parameter.
///
/// Its commits are synchronous even where the profile's are not (`synchronous_commit = off`
/// in `test`): a password's commit is then in the WAL that `standbys_have_it` waits for, not
/// in a buffer the WAL writer sends on up to `wal_writer_delay` later.
async fn quiet_admin(context: &Context<'_>) -> anyhow::Result<probe::PgSession> {
    let client = admin(context).await?;
    client
        .batch_execute("SET log_statement = 'none'; SET synchronous_commit = on")
        .await
        .context("turning statement logging off and synchronous commits on for the session")?;
    Ok(client)
}

fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn verifier(version: &SecretVersion) -> anyhow::Result<String> {
    let verifier = version.verifier.as_ref().context("a PostgreSQL version has a SCRAM verifier")?;
    // SECURITY: the verifier, never the password, goes into SQL (log_statement = ddl logs it).
    anyhow::ensure!(
        verifier.expose().starts_with("SCRAM-SHA-256$") && !verifier.expose().contains('\''),
        "malformed SCRAM verifier"
    );
    Ok(verifier.expose().to_owned())
}

/// Sets the pending password on the pending version's login (the one that is not current).
pub async fn set(context: &Context<'_>, pending: &SecretVersion, _database: &str) -> anyhow::Result<()> {
    let login = pending.username.as_deref().context("a PostgreSQL application version names its login")?;
    let client = quiet_admin(context).await?;
    client
        .batch_execute(&format!("ALTER ROLE {} PASSWORD '{}'", quote_identifier(login), verifier(pending)?))
        .await
        .with_context(|| format!("setting the password of {login}"))?;
    standbys_have_it(context).await
}

/// Waits until every standby connected to the primary has replayed the primary's WAL as it is
/// now: a password just set is then known on every node, so a client of a standby, and
/// verify's checks there, log in with it (replication is asynchronous; it takes milliseconds).
/// A standby still catching up (a node just started or rewound, which may already take
/// read-only logins) is waited for too, not only one that has caught up once; the replicas'
/// login tells standbys from backups (pg_basebackup streams as the backup login).
async fn standbys_have_it(context: &Context<'_>) -> anyhow::Result<()> {
    if context.profile.postgres.replicas == 0 {
        return Ok(());
    }
    let primary = crate::replica::primary_spec(context.profile);
    let lsn = crate::superuser::sql(context.engine, &primary, "SELECT pg_current_wal_lsn()").await?;
    let behind = format!(
        "SELECT count(*) FROM pg_stat_replication WHERE usename = '{}' AND (replay_lsn IS NULL OR replay_lsn < '{}'::pg_lsn)",
        layout::REPLICATION,
        lsn.trim()
    );
    let poll = std::time::Duration::from_millis(20);
    crate::retry::Backoff::every(poll, std::time::Duration::from_secs(30))
        .run(|| async {
            match crate::superuser::sql(context.engine, &primary, &behind).await {
                Ok(count) if count.trim() == "0" => crate::retry::Attempt::Done(()),
                Ok(count) => crate::retry::Attempt::Retry(anyhow::anyhow!(
                    "{} standby(s) have not replayed the new password yet",
                    count.trim()
                )),
                Err(err) => crate::retry::Attempt::Retry(err),
            }
        })
        .await
}

/// Sets the admin's own pending password (its current sessions keep working).
pub async fn set_admin(context: &Context<'_>, _current: &SecretVersion, pending: &SecretVersion) -> anyhow::Result<()> {
    let client = quiet_admin(context).await?;
    client
        .batch_execute(&format!("ALTER ROLE admin PASSWORD '{}'", verifier(pending)?))
        .await
        .context("setting the admin password")?;
    standbys_have_it(context).await
}

/// Sets the backup login's new password. A backup running keeps its session; one starting
/// before the finish retries with the pending password when the current one is refused.
pub async fn set_backup(context: &Context<'_>, pending: &SecretVersion) -> anyhow::Result<()> {
    set_service_login(context, layout::BACKUP, pending).await
}

/// Sets the pending password of one of hardstack's own single-role logins, as admin.
async fn set_service_login(context: &Context<'_>, login: &str, pending: &SecretVersion) -> anyhow::Result<()> {
    let client = quiet_admin(context).await?;
    client
        .batch_execute(&format!("ALTER ROLE {login} PASSWORD '{}'", verifier(pending)?))
        .await
        .with_context(|| format!("setting the {login} password"))?;
    standbys_have_it(context).await
}

/// Sets the monitor login's new password (postgres-exporter gets it next, and restarts).
pub async fn set_monitor(context: &Context<'_>, pending: &SecretVersion) -> anyhow::Result<()> {
    set_service_login(context, layout::MONITOR, pending).await
}

/// Sets the replication login's new password, then hands each replica its new pgpass file:
/// a stream keeps its session; a replica that reconnects in between retries (its WAL
/// receiver does, every few seconds) and gets in with the file it then has.
pub async fn set_replication(context: &Context<'_>, pending: &SecretVersion) -> anyhow::Result<()> {
    set_service_login(context, layout::REPLICATION, pending).await?;
    let content = crate::render::login_pgpass(layout::REPLICATION, &pending.value);
    context.deliver_content(Service::Postgres, &StackFile::ReplicationPgpass, content.as_bytes()).await
}

/// The new password over the replication protocol (with the login's certificate), then every
/// replica made to connect again (its stream ended by the superuser on the primary) and seen
/// streaming again: each has the new password in hand, not only at some later reconnection.
pub async fn test_replication(context: &Context<'_>, pending: &SecretVersion) -> anyhow::Result<()> {
    // Its published port, or else its address on the stack network (verified as its alias).
    let (engine, profile, dir) = (context.engine, context.profile, context.dir);
    let target =
        probe::reach(engine, profile, dir, Service::Postgres, layout::REPLICATION, pending.value.clone(), "").await?;
    let socket = match target.address {
        Some(address) => address,
        None => std::net::SocketAddr::new(target.host.parse().context("a published address")?, target.port),
    };
    let name = target.host;
    let tls = crate::probe::ClientTls {
        ca_pem: std::fs::read(context.dir.file(&StackFile::CaCert))?,
        client: Some(crate::probe::client_cert(context.dir, layout::REPLICATION)?),
    };
    crate::probe::replication::login(socket, &name, &tls, layout::REPLICATION, &pending.value)
        .await
        .context("the new password over the replication protocol")?;
    let primary = crate::replica::primary_spec(context.profile);
    // Each standby streams over its slot (node 0's walreceiver has no name of its own).
    let replicas: Vec<String> = super::receivers(context.engine, context.profile, Service::Postgres)
        .await?
        .iter()
        .filter_map(|spec| crate::replica::standby_node(context.profile, spec))
        .map(layout::replica_slot)
        .collect();
    crate::superuser::sql(
        context.engine,
        &primary,
        &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE usename = '{}'", layout::REPLICATION),
    )
    .await?;
    let names = replicas.iter().map(|r| format!("'{r}'")).collect::<Vec<_>>().join(",");
    if names.is_empty() {
        return Ok(());
    }
    let query = format!(
        "SELECT count(*) FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid \
          WHERE r.state = 'streaming' AND s.slot_name IN ({names}) AND r.backend_start > now() - interval '1 minute'"
    );
    let poll = std::time::Duration::from_millis(200);
    crate::retry::Backoff::every(poll, 30 * std::time::Duration::from_secs(1))
        .run(|| async {
            match crate::superuser::sql(context.engine, &primary, &query).await {
                Ok(count) if count.trim() == replicas.len().to_string() => crate::retry::Attempt::Done(()),
                Ok(count) => crate::retry::Attempt::Retry(anyhow::anyhow!(
                    "{} of {} replicas stream again with the new password",
                    count.trim(),
                    replicas.len()
                )),
                Err(err) => crate::retry::Attempt::Retry(err),
            }
        })
        .await
}

/// Logs in with the pending version and runs a real query; for an application login, checks
/// it acts as the owner role, so objects made through either login stay usable.
pub async fn test(context: &Context<'_>, pending: &SecretVersion, database: &str) -> anyhow::Result<()> {
    let login = pending.username.clone().unwrap_or_else(|| layout::ADMIN.into());
    let client = connect(context, &login, pending.value.clone(), database).await?;
    let row = client.query_one("SELECT current_user::text, session_user::text", &[]).await?;
    let (current, session): (String, String) = (row.get(0), row.get(1));
    anyhow::ensure!(session == login, "logged in as {session}, expected {login}");
    if pending.username.is_some() {
        anyhow::ensure!(current.ends_with("_owner"), "{login} acts as {current}, not as its owner role");
    }
    Ok(())
}

/// Sets the health login's new password and hands the container's healthcheck the new pgpass
/// file at once (one role, one password: the healthcheck may miss one beat, and retries).
pub async fn set_health(context: &Context<'_>, pending: &SecretVersion) -> anyhow::Result<()> {
    set_service_login(context, layout::HEALTH, pending).await?;
    let content = crate::render::health_pgpass(&pending.value);
    context.deliver_content(Service::Postgres, &StackFile::HealthPgpass, content.as_bytes()).await
}

/// Runs the container's healthcheck, which logs in as health with the file just delivered:
/// health may only connect from inside the container.
pub async fn test_health(context: &Context<'_>, _pending: &SecretVersion) -> anyhow::Result<()> {
    let spec = crate::replica::primary_spec(context.profile);
    context.engine.run_healthcheck(&spec).await
}
