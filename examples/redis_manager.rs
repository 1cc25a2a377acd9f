//! An application's Redis access over TLS verified against the stack CA, as an ACL user
//! confined to its keys: a deadpool pool of multiplexed connections, each new one logging in
//! with the password current when it is made, so the pool rides through rotation (the old
//! password keeps working for `rotation.grace`, the connections made since use the new one).
//!
//!     cargo run --example redis_manager -- stack [SECONDS]
//!
//! With SECONDS it keeps writing for that long, replacing a connection every few operations,
//! and fails when any operation failed.

mod common;

use std::path::PathBuf;

use anyhow::Context as _;
use deadpool::managed::{Metrics, Object, Pool, RecycleResult};
use redis::AsyncCommands as _;
use serde_json::Value;

/// Makes connections with the password current when each is made.
struct FreshLogin {
    dir: PathBuf,
    /// The `redis` entry of connections.json.
    entry: Value,
}

impl deadpool::managed::Manager for FreshLogin {
    type Type = redis::aio::MultiplexedConnection;
    type Error = anyhow::Error;

    async fn create(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        let r = &self.entry;
        let password = common::resolve_secret(&self.dir, &r["password"])?;
        let url = format!(
            "rediss://{}:{password}@{}:{}/0",
            r["user"].as_str().context("user")?,
            r["host"].as_str().context("host")?,
            r["port"].as_u64().context("port")?
        );
        let read = |key: &str| std::fs::read(self.dir.join(r[key].as_str().unwrap_or_default()));
        let client_tls = if r["client_certificate_required"] == true {
            Some(redis::ClientTlsConfig { client_cert: read("cert")?, client_key: read("key")? })
        } else {
            None
        };
        let client =
            redis::Client::build_with_tls(url, redis::TlsCertificates { client_tls, root_cert: Some(read("ca")?) })?;
        Ok(client.get_multiplexed_async_connection().await?)
    }

    async fn recycle(&self, _: &mut redis::aio::MultiplexedConnection, _: &Metrics) -> RecycleResult<anyhow::Error> {
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (dir, entry) = common::connection("app")?;
    let r = entry["redis"].clone();
    let prefix = r["key_pattern"].as_str().context("key_pattern")?.trim_end_matches('*').to_owned();
    let seconds = common::seconds()?;
    let pool: Pool<FreshLogin> = Pool::builder(FreshLogin { dir, entry: r }).max_size(4).build()?;

    let (operations, failures) = common::rounds_until(seconds, || {
        (0..50)
            .map(|i| {
                let pool = pool.clone();
                let key = format!("{prefix}example:{i}");
                tokio::spawn(async move {
                    let mut connection = pool.get().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                    connection.set_ex::<_, _, ()>(key, i, 60).await?;
                    // Replace a connection now and then: its successor logs in afresh.
                    if i % 10 == 0 {
                        drop(Object::take(connection));
                    }
                    anyhow::Ok(())
                })
            })
            .collect()
    })
    .await?;
    let mut connection = pool.get().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let value: i64 = connection.get(format!("{prefix}example:49")).await?;
    // Outside its key pattern the ACL refuses, as it should.
    let refused = connection.get::<_, Option<String>>("not-mine").await.is_err();
    println!(
        "redis: 50 concurrent SETs at a time through a pool of {} connections, {operations} operations, {} failed; read back {value}; other keys refused: {refused}",
        pool.status().size,
        failures.len()
    );
    anyhow::ensure!(refused, "the ACL let the app read outside its key pattern");
    anyhow::ensure!(failures.is_empty(), "{} operations failed, the first: {}", failures.len(), failures[0]);
    Ok(())
}
