//! An application's PostgreSQL access: a deadpool-postgres pool over TLS verify-full against
//! the stack CA, credentials from connections.json and the secret store, concurrent queries.
//!
//!     cargo run --example postgres_pool -- stack

mod common;

use anyhow::Context as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (dir, entry) = common::connection("app")?;
    let pg = &entry["postgres"];
    let (password, login) = common::resolve_login(&dir, &pg["password"])?;
    let login = login.unwrap_or_else(|| pg["user"].as_str().unwrap_or_default().to_owned());
    let mut config = tokio_postgres::Config::new();
    config
        .host(pg["host"].as_str().context("host")?)
        .port(pg["port"].as_u64().context("port")? as u16)
        .user(&login)
        .dbname(pg["dbname"].as_str().context("dbname")?)
        .password(password)
        .application_name("postgres_pool example")
        // verify-full: tokio-postgres-rustls checks the chain against the stack CA and the
        // host name against the certificate.
        .ssl_mode(tokio_postgres::config::SslMode::Require);
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(common::tls_config(&dir, pg, "sslrootcert", &login)?);
    let manager = deadpool_postgres::Manager::from_config(
        config,
        tls,
        deadpool_postgres::ManagerConfig { recycling_method: deadpool_postgres::RecyclingMethod::Fast },
    );
    let pool = deadpool_postgres::Pool::builder(manager).max_size(4).build()?;

    pool.get()
        .await?
        .batch_execute("CREATE TABLE IF NOT EXISTS example_events (id bigserial PRIMARY KEY, note text)")
        .await?;
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let client = pool.get().await?;
            client.execute("INSERT INTO example_events (note) VALUES ($1)", &[&format!("worker {worker}")]).await?;
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let client = pool.get().await?;
    let count: i64 = client.query_one("SELECT count(*) FROM example_events", &[]).await?.get(0);
    let owner: String = client
        .query_one("SELECT tableowner::text FROM pg_tables WHERE tablename = 'example_events'", &[])
        .await?
        .get(0);
    println!(
        "postgres: 16 concurrent inserts through a pool of {} TLS connections; {count} rows, table owned by {owner}",
        pool.status().size
    );
    Ok(())
}
