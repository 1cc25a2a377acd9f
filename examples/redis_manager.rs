//! An application's Redis access over TLS verified against the stack CA, as an ACL user
//! confined to its keys: a deadpool pool of multiplexed connections. Each new connection asks
//! `hardstack env` for REDIS_URL again (`FreshLogin::create`), so the pool rides through
//! rotation (the old password keeps working for `rotation.grace`, the connections made since
//! use the new one).
//!
//!     HARDSTACK_DIR=stack cargo run --example redis_manager -- --seconds 30
//!
//! It replaces a connection every few operations, and ends with `N operations, F failures`
//! (exit 1 when F > 0).

mod common;

use deadpool::managed::{Metrics, Object, Pool, RecycleResult};
use redis::AsyncCommands as _;

/// Makes connections with the password current when each is made.
struct FreshLogin;

impl deadpool::managed::Manager for FreshLogin {
    type Type = redis::aio::MultiplexedConnection;
    type Error = anyhow::Error;

    async fn create(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        let credentials = common::credentials()?;
        let read = |name: &str| -> anyhow::Result<Vec<u8>> {
            let path = common::variable(&credentials, name)?;
            Ok(std::fs::read(path)?)
        };
        let client_tls = match (read("REDIS_CLIENT_CERT"), read("REDIS_CLIENT_KEY")) {
            (Ok(client_cert), Ok(client_key)) => Some(redis::ClientTlsConfig { client_cert, client_key }),
            _ => None,
        };
        let client = redis::Client::build_with_tls(
            common::variable(&credentials, "REDIS_URL")?,
            redis::TlsCertificates { client_tls, root_cert: Some(read("REDIS_CA_CERT")?) },
        )?;
        Ok(client.get_multiplexed_async_connection().await?)
    }

    async fn recycle(&self, _: &mut redis::aio::MultiplexedConnection, _: &Metrics) -> RecycleResult<anyhow::Error> {
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    let seconds = common::seconds()?;
    let pool: Pool<FreshLogin> = Pool::builder(FreshLogin).max_size(4).build()?;
    // The application user's keys are `app:*` in the shipped profiles.
    let prefix = "app:example:rust";
    let (operations, failures) = common::rounds_until(seconds, || {
        (0..50)
            .map(|i| {
                let pool = pool.clone();
                let key = format!("{prefix}:{i}");
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
    let value: i64 = connection.get(format!("{prefix}:49")).await?;
    // Outside its key pattern the ACL refuses, as it should.
    let refused = connection.get::<_, Option<String>>("not-mine").await.is_err();
    println!(
        "redis: 50 concurrent SETs at a time through a pool of {} connections; read back {value}; other keys refused: {refused}",
        pool.status().size
    );
    anyhow::ensure!(refused, "the ACL let the app read outside its key pattern");
    Ok(common::finish(operations, &failures))
}
