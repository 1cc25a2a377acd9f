//! An application's Redis access: a redis ConnectionManager (one multiplexed, reconnecting
//! connection) over TLS verified against the stack CA, as an ACL user confined to its keys.
//!
//!     cargo run --example redis_manager -- stack

mod common;

use anyhow::Context as _;
use redis::AsyncCommands as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (dir, entry) = common::connection("app")?;
    let r = &entry["redis"];
    let password = common::resolve_secret(&dir, &r["password"])?;
    let url = format!(
        "rediss://{}:{password}@{}:{}/0",
        r["user"].as_str().context("user")?,
        r["host"].as_str().context("host")?,
        r["port"].as_u64().context("port")?
    );
    let read = |key: &str| std::fs::read(dir.join(r[key].as_str().unwrap_or_default()));
    let client_tls = if r["client_certificate_required"] == true {
        Some(redis::ClientTlsConfig { client_cert: read("cert")?, client_key: read("key")? })
    } else {
        None
    };
    let client =
        redis::Client::build_with_tls(url, redis::TlsCertificates { client_tls, root_cert: Some(read("ca")?) })?;
    let mut manager = redis::aio::ConnectionManager::new(client).await?;

    let prefix = r["key_pattern"].as_str().context("key_pattern")?.trim_end_matches('*').to_owned();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let mut manager = manager.clone();
        let key = format!("{prefix}example:{i}");
        tasks.push(tokio::spawn(async move { manager.set_ex::<_, _, ()>(key, i, 60).await }));
    }
    for task in tasks {
        task.await??;
    }
    let value: i64 = manager.get(format!("{prefix}example:49")).await?;
    // Outside its key pattern the ACL refuses, as it should.
    let refused = manager.get::<_, Option<String>>("not-mine").await.is_err();
    println!(
        "redis: 50 concurrent SETs through one managed connection; read back {value}; other keys refused: {refused}"
    );
    anyhow::ensure!(refused, "the ACL let the app read outside its key pattern");
    Ok(())
}
