//! PostgreSQL's replicas (`postgres.replicas`): each streams from the primary (a row written
//! there is read back on the replica, within a bound, and the primary's view of the stream
//! gives the lag), each refuses writes (SQLSTATE 25006), and the replication login is refused
//! without its client certificate (SQLSTATE 28000) and accepted with it.

use std::time::{Duration, Instant};

use super::postgres::{Login, connect_at, current_login};
use super::{CheckFuture, Context, Refusal, accepted, bounded, prepare, refused};
use crate::layout;
use crate::probe::replication;
use crate::profile::Service;

/// How long a row written on the primary may take to be readable on a replica.
pub const VISIBLE_WITHIN: Duration = Duration::from_secs(5);

/// A write in a read-only transaction: what a replica answers to any write.
const READ_ONLY: Refusal = Refusal::Sqlstate(&["25006"]);
/// pg_hba.conf's clientcert=verify-full without a certificate.
const NO_CERTIFICATE: Refusal = Refusal::Sqlstate(&["28000"]);

/// Every replica check.
pub fn checks(context: &Context) -> Vec<CheckFuture<'_>> {
    let mut checks: Vec<CheckFuture<'_>> = Vec::new();
    if context.profile.postgres.replicas == 0 {
        return checks;
    }
    for node in context.profile.postgres.standby_nodes() {
        let alias = crate::endpoint::replica_alias(node);
        let id = format!("pg.replica.{node}.streams");
        let what = format!("a row written on the primary is read on {alias} within {VISIBLE_WITHIN:?}");
        checks.push(bounded(id.clone(), async move { accepted(&id, &what, streams(context, node)).await }));
        let id = format!("pg.replica.{node}.lag");
        checks.push(bounded(id.clone(), async move {
            accepted(&id, "the primary streams to it (pg_stat_replication), with this lag", lag(context, node)).await
        }));
        let id = format!("pg.replica.{node}.write_refused");
        let what = format!("a write by the application on {alias}");
        checks.push(bounded(id.clone(), async move {
            let user = context.users().first().map(|u| (u.name.clone(), u.database.clone()));
            refused(&id, &what, READ_ONLY, async {
                let (name, database) = prepare(user.ok_or_else(|| anyhow::anyhow!("the profile has no user")))?;
                let (login, password) = prepare(current_login(context, &name))?;
                let session = on_replica(context, node, &login, password, &database).await?;
                session.batch_execute("CREATE TABLE hardstack_verify_write_refused (x int)").await?;
                anyhow::Ok(())
            })
            .await
        }));
    }
    let id = "pg.replication_login".to_owned();
    checks.push(bounded(id.clone(), async move {
        accepted(&id, "the replicas' login over the replication protocol, with its certificate", async {
            replication_login(context, true).await?;
            Ok(format!("{} with {} and its password", layout::REPLICATION, client_cert()))
        })
        .await
    }));
    let id = "pg.replication_without_certificate_refused".to_owned();
    checks.push(bounded(id.clone(), async move {
        let what = format!("a replication login as {} with its password but no certificate", layout::REPLICATION);
        refused(&id, &what, NO_CERTIFICATE, replication_login(context, false)).await
    }));
    checks
}

fn client_cert() -> String {
    layout::StackFile::ClientCert(layout::REPLICATION.into()).path()
}

async fn replication_login(context: &Context, with_certificate: bool) -> anyhow::Result<()> {
    let password = prepare(context.secret(&layout::login_secret(Service::Postgres, layout::REPLICATION)))?;
    let tls = prepare(context.tls_for(layout::REPLICATION, with_certificate))?;
    let address = context.addr(Service::Postgres);
    replication::login(address, &context.server_name(Service::Postgres), &tls, layout::REPLICATION, &password).await
}

/// A session on replica `node` as `login`.
async fn on_replica(
    context: &Context,
    node: u8,
    login: &str,
    password: crate::secrets::Secret,
    database: &str,
) -> anyhow::Result<crate::probe::PgSession> {
    let (address, name) = prepare(context.replica(node).cloned().ok_or_else(|| anyhow::anyhow!("no replica {node}")))?;
    let tls = prepare(context.tls_for(login, context.mutual()))?;
    let login = Login {
        via: Service::Postgres,
        user: login,
        password: Some(password),
        database,
        tls: Some(tls),
        server_name: name,
    };
    connect_at(address, login).await
}

/// Writes a fresh token for the node on the primary (as admin), then reads it on the replica
/// until it arrives: the evidence is how long it took.
async fn streams(context: &Context, node: u8) -> anyhow::Result<String> {
    let alias = crate::endpoint::replica_alias(node);
    let token = crate::secrets::generate(&mut rand::thread_rng()).expose().chars().take(16).collect::<String>();
    let admin = context.admin().await?;
    let password = prepare(context.secret(&layout::login_secret(Service::Postgres, layout::ADMIN)))?;
    let replica = on_replica(context, node, layout::ADMIN, password, "postgres").await?;
    // Committed synchronously whatever the profile's synchronous_commit (`off` in `test`, where
    // the WAL writer sends a commit on up to wal_writer_delay later): the bound is the stream's.
    // One query string, so no other check's statement on the shared session runs inside it;
    // the alias is a node's name and the token alphanumeric.
    admin
        .batch_execute(&format!(
            "BEGIN; SET LOCAL synchronous_commit = local; \
             INSERT INTO monitoring.replication_check (node, token, at) VALUES ('{alias}', '{token}', now()) \
             ON CONFLICT (node) DO UPDATE SET token = excluded.token, at = excluded.at; COMMIT"
        ))
        .await?;
    let written = Instant::now();
    let backoff = crate::retry::Backoff {
        first: Duration::from_millis(2),
        most: Duration::from_millis(50),
        deadline: VISIBLE_WITHIN,
    };
    backoff
        .run(|| async {
            let row =
                replica.query_opt("SELECT token FROM monitoring.replication_check WHERE node = $1", &[&alias]).await;
            match row {
                Ok(Some(row)) if row.get::<_, String>(0) == token => crate::retry::Attempt::Done(()),
                Ok(_) => crate::retry::Attempt::Retry(anyhow::anyhow!("the row has not arrived on {alias}")),
                Err(err) => crate::retry::Attempt::Fail(err.into()),
            }
        })
        .await?;
    let seen = written.elapsed();
    replica.close().await;
    Ok(format!(
        "written as admin on the primary, read on {alias} after {} ms (bound {} ms)",
        seen.as_millis(),
        VISIBLE_WITHIN.as_millis()
    ))
}

/// The primary's view of the standby's stream over its slot: its state and how far behind it
/// is.
async fn lag(context: &Context, node: u8) -> anyhow::Result<String> {
    let alias = crate::endpoint::replica_alias(node);
    let slot = layout::replica_slot(node);
    let admin = context.admin().await?;
    // A standby that has just started (a switchover's old primary) connects within moments:
    // asked again until it streams, within the same bound as a row's arrival.
    let backoff = crate::retry::Backoff {
        first: Duration::from_millis(20),
        most: Duration::from_millis(200),
        deadline: VISIBLE_WITHIN,
    };
    let (bytes, millis): (i64, f64) = backoff
        .run(|| async {
            let row = admin
                .query_opt(
                    "SELECT r.state, \
                            coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn), 0)::bigint, \
                            coalesce(extract(epoch FROM r.replay_lag) * 1000, 0)::float8 \
                       FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid \
                      WHERE s.slot_name = $1",
                    &[&slot],
                )
                .await;
            match row {
                Ok(Some(row)) if row.get::<_, String>(0) == "streaming" => {
                    crate::retry::Attempt::Done((row.get(1), row.get(2)))
                }
                Ok(Some(row)) => crate::retry::Attempt::Retry(anyhow::anyhow!(
                    "{alias}'s stream is {}, not streaming",
                    row.get::<_, String>(0)
                )),
                Ok(None) => crate::retry::Attempt::Retry(anyhow::anyhow!(
                    "no stream over {alias}'s slot {slot} among the primary's (pg_replication_slots, pg_stat_replication)"
                )),
                Err(err) => crate::retry::Attempt::Fail(err.into()),
            }
        })
        .await?;
    Ok(format!("{alias}: streaming over slot {slot}, replay lag {bytes} bytes, {millis:.0} ms"))
}
