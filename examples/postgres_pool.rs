//! An application's PostgreSQL access: a deadpool pool over TLS verify-full against the stack
//! CA, through PgBouncer when the stack runs it (connections.json's `pgbouncer` entry), with
//! concurrent queries. Each new connection reads its login and password again from the secret
//! store, so the pool rides through rotation: open connections keep working, new ones log in
//! with the current login (rotation alternates two).
//!
//!     cargo run --example postgres_pool -- stack [SECONDS]
//!
//! With SECONDS it keeps inserting for that long, replacing a connection every few operations,
//! and fails when any operation failed.

mod common;

use std::path::PathBuf;

use anyhow::Context as _;
use deadpool::managed::{Metrics, Object, Pool, RecycleError, RecycleResult};
use serde_json::Value;

/// Makes connections with the credential current when each is made.
struct FreshLogin {
    dir: PathBuf,
    /// The `pgbouncer` (or `postgres`) entry of connections.json.
    entry: Value,
}

impl deadpool::managed::Manager for FreshLogin {
    type Type = tokio_postgres::Client;
    type Error = anyhow::Error;

    async fn create(&self) -> anyhow::Result<tokio_postgres::Client> {
        let entry = &self.entry;
        let (password, login) = common::resolve_login(&self.dir, &entry["password"])?;
        let login = login.unwrap_or_else(|| entry["user"].as_str().unwrap_or_default().to_owned());
        let mut config = tokio_postgres::Config::new();
        config
            .host(entry["host"].as_str().context("host")?)
            .port(entry["port"].as_u64().context("port")? as u16)
            .user(&login)
            .dbname(entry["dbname"].as_str().context("dbname")?)
            .password(password)
            .application_name("postgres_pool example")
            // verify-full: tokio-postgres-rustls checks the chain against the stack CA and the
            // host name against the certificate.
            .ssl_mode(tokio_postgres::config::SslMode::Require);
        let tls = common::tls_config(&self.dir, entry, "sslrootcert", &login)?;
        let (client, connection) = config.connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls)).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    async fn recycle(&self, client: &mut tokio_postgres::Client, _: &Metrics) -> RecycleResult<anyhow::Error> {
        match client.is_closed() {
            true => Err(RecycleError::message("the connection is closed")),
            false => Ok(()),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (dir, entry) = common::connection("app")?;
    let (through, entry) = match entry.get("pgbouncer") {
        Some(pooled) => ("PgBouncer", pooled.clone()),
        None => ("PostgreSQL directly", entry["postgres"].clone()),
    };
    let seconds = common::seconds()?;
    let pool: Pool<FreshLogin> = Pool::builder(FreshLogin { dir, entry }).max_size(4).build()?;

    pool.get()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .batch_execute("CREATE TABLE IF NOT EXISTS example_events (id bigserial PRIMARY KEY, note text)")
        .await?;
    let (operations, failures) = common::rounds_until(seconds, || {
        (0..16)
            .map(|worker| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let client = pool.get().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                    let note = format!("worker {worker}");
                    client.execute("INSERT INTO example_events (note) VALUES ($1)", &[&note]).await?;
                    // Replace a connection now and then: its successor logs in afresh.
                    if worker % 4 == 0 {
                        drop(Object::take(client));
                    }
                    anyhow::Ok(())
                })
            })
            .collect()
    })
    .await?;
    let client = pool.get().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let count: i64 = client.query_one("SELECT count(*) FROM example_events", &[]).await?.get(0);
    let owner: String = client
        .query_one("SELECT tableowner::text FROM pg_tables WHERE tablename = 'example_events'", &[])
        .await?
        .get(0);
    println!(
        "postgres: 16 concurrent inserts at a time through {through}, {operations} operations, {} failed, with a pool of {} TLS connections; {count} rows, table owned by {owner}",
        failures.len(),
        pool.status().size
    );
    anyhow::ensure!(failures.is_empty(), "{} operations failed, the first: {}", failures.len(), failures[0]);
    Ok(())
}
