//! An application's PostgreSQL access: a deadpool pool over TLS verify-full against the stack
//! CA (through PgBouncer when the stack runs it: `hardstack env`'s DATABASE_URL), with
//! concurrent inserts. Each new connection asks `hardstack env` for DATABASE_URL again
//! (`FreshLogin::create`), so the pool rides through rotation: open connections keep working,
//! new ones log in with the current login (rotation alternates two) and password.
//!
//!     HARDSTACK_DIR=stack cargo run --example postgres_pool -- --seconds 30
//!
//! It replaces a connection every few operations, and ends with `N operations, F failures`
//! (exit 1 when F > 0).

mod common;

use anyhow::Context as _;
use deadpool::managed::{Metrics, Object, Pool, RecycleError, RecycleResult};

/// Makes connections with the credential current when each is made.
struct FreshLogin;

impl deadpool::managed::Manager for FreshLogin {
    type Type = tokio_postgres::Client;
    type Error = anyhow::Error;

    async fn create(&self) -> anyhow::Result<tokio_postgres::Client> {
        let credentials = common::credentials()?;
        let url = url::Url::parse(common::variable(&credentials, "DATABASE_URL")?)?;
        let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        let param = |name: &str| query.get(name).map(String::as_str);
        let decode = |text: &str| percent_decode(text);
        let mut config = tokio_postgres::Config::new();
        config
            .host(url.host_str().context("the URL's host")?)
            .port(url.port().unwrap_or(5432))
            .user(decode(url.username()))
            .password(decode(url.password().unwrap_or_default()))
            .dbname(url.path().trim_start_matches('/'))
            .application_name("postgres_pool example")
            // verify-full: tokio-postgres-rustls checks the chain against the stack CA and the
            // host name against the certificate.
            .ssl_mode(tokio_postgres::config::SslMode::Require);
        let client = param("sslcert").zip(param("sslkey"));
        let tls = common::tls_config(param("sslrootcert").context("sslrootcert in DATABASE_URL")?, client)?;
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

/// A URL's user or password as written before percent-encoding.
fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    let seconds = common::seconds()?;
    let pool: Pool<FreshLogin> = Pool::builder(FreshLogin).max_size(4).build()?;
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
        "postgres: 16 concurrent inserts at a time, a pool of {} TLS connections; {count} rows, table owned by {owner}",
        pool.status().size
    );
    Ok(common::finish(operations, &failures))
}
