//! Live numbers from the running servers, for `status --details`: connections used and
//! allowed and the slowest statements (pg_stat_statements), PgBouncer's clients active and
//! waiting, Redis's memory against maxmemory and its evictions, Qdrant's collections and
//! points. Read from the host as hardstack's admin logins (Qdrant with its API key);
//! nothing is changed. A service that cannot be read says why instead of failing the command.

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::probe;
use crate::profile::{Profile, Service};
use crate::runtime::Engine;
use crate::secrets::store::Store;
use crate::stackdir::StackDir;

/// How many statements `status --details` lists, slowest mean time first.
pub const SLOWEST: i64 = 5;

/// The numbers of one service: its own fields, or `{"error": why}`.
pub async fn numbers(engine: &Engine, profile: &Profile, dir: &StackDir, store: &Store, service: Service) -> Value {
    let read = async {
        match service {
            Service::Postgres => postgres(engine, profile, dir, store).await,
            Service::Pgbouncer => pgbouncer(engine, profile, dir, store).await,
            Service::Redis => redis(engine, profile, dir, store).await,
            Service::Qdrant => qdrant(engine, profile, dir, store).await,
            // `status` asks none: a monitoring service's numbers are its servers', the front's
            // Qdrant's.
            Service::PostgresExporter
            | Service::RedisExporter
            | Service::PgbouncerExporter
            | Service::Prometheus
            | Service::QdrantFront
            | Service::RedisSentinel => {
                Err(anyhow::anyhow!("{service} has no numbers of its own: its servers' are theirs"))
            }
        }
    };
    match tokio::time::timeout(probe::CONNECT_TIMEOUT * 2, read).await {
        Ok(Ok(numbers)) => numbers,
        Ok(Err(err)) => json!({ "error": format!("{err:#}") }),
        Err(_) => json!({ "error": "no answer in time" }),
    }
}

/// The admin login's target on a service: its published port, or else PostgreSQL's and
/// PgBouncer's address on the stack network. Redis's client verifies the name it dials, so an
/// unpublished Redis is not read from here.
async fn admin(
    engine: &Engine,
    profile: &Profile,
    dir: &StackDir,
    store: &Store,
    service: Service,
) -> anyhow::Result<probe::Target> {
    if let Some(target) = probe::admin_target(profile, dir, store, service).await? {
        return Ok(target);
    }
    let database = match service {
        Service::Postgres => "postgres",
        Service::Pgbouncer => "pgbouncer",
        _ => anyhow::bail!("{service} is not published, so its numbers cannot be read from here"),
    };
    let password = store.current(&crate::layout::login_secret(Service::Postgres, crate::layout::ADMIN)).await?.value;
    probe::reach(engine, profile, dir, service, crate::layout::ADMIN, password, database).await
}

async fn postgres(engine: &Engine, profile: &Profile, dir: &StackDir, store: &Store) -> anyhow::Result<Value> {
    let session = probe::postgres_client(&admin(engine, profile, dir, store, Service::Postgres).await?).await?;
    let row = session
        .query_one(
            "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::bigint,
                    current_setting('max_connections')::bigint",
            &[],
        )
        .await?;
    let (used, allowed): (i64, i64) = (row.get(0), row.get(1));
    // pg_monitor (admin's) may read every statement's text.
    let slowest = match session
        .query(
            "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 80), calls, round(mean_exec_time::numeric, 2)::float8
               FROM monitoring.pg_stat_statements ORDER BY mean_exec_time DESC LIMIT $1",
            &[&SLOWEST],
        )
        .await
    {
        Ok(rows) => json!(rows
            .iter()
            .map(|r| json!({"query": r.get::<_, String>(0), "calls": r.get::<_, i64>(1), "mean_ms": r.get::<_, f64>(2)}))
            .collect::<Vec<_>>()),
        Err(err) => json!({ "error": format!("pg_stat_statements: {err}") }),
    };
    session.close().await;
    Ok(json!({ "connections": used, "max_connections": allowed, "slowest_statements": slowest }))
}

async fn pgbouncer(engine: &Engine, profile: &Profile, dir: &StackDir, store: &Store) -> anyhow::Result<Value> {
    let session = probe::postgres_client(&admin(engine, profile, dir, store, Service::Pgbouncer).await?).await?;
    // The admin console speaks the simple protocol only, and answers in text.
    let messages = session.simple_query("SHOW POOLS").await.context("SHOW POOLS")?;
    session.close().await;
    let (mut active, mut waiting, mut servers) = (0u64, 0u64, 0u64);
    for message in messages {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
            let number = |column: &str| row.get(column).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            if row.get("database") == Some("pgbouncer") {
                continue;
            }
            active += number("cl_active");
            waiting += number("cl_waiting");
            servers += number("sv_active") + number("sv_idle") + number("sv_used");
        }
    }
    let settings = &profile.pgbouncer;
    Ok(json!({
        "active": active, "waiting": waiting, "server_connections": servers,
        "pool_mode": settings.pool_mode.as_str(), "pool_size": settings.pool_size,
        "max_client_connections": settings.max_client_connections,
    }))
}

async fn redis(engine: &Engine, profile: &Profile, dir: &StackDir, store: &Store) -> anyhow::Result<Value> {
    let mut connection = probe::redis_connection(&admin(engine, profile, dir, store, Service::Redis).await?).await?;
    let info: String = ::redis::cmd("INFO").arg("memory").arg("stats").query_async(&mut connection).await?;
    let field = |name: &str| {
        info.lines().find_map(|l| l.strip_prefix(&format!("{name}:"))).and_then(|v| v.trim().parse::<u64>().ok())
    };
    Ok(json!({
        "used_memory": field("used_memory"), "maxmemory": field("maxmemory"), "evicted_keys": field("evicted_keys"),
    }))
}

async fn qdrant(engine: &Engine, profile: &Profile, dir: &StackDir, store: &Store) -> anyhow::Result<Value> {
    let contents = crate::backup::qdrant::Api::connect(engine, profile, dir, store).await?.contents().await?;
    Ok(json!({
        "collections": contents.counts.len(),
        "points": contents.counts.values().sum::<u64>(),
    }))
}
