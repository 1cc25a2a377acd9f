//! Redis: an RDB snapshot streamed over the replication protocol (`redis-cli --rdb`, which
//! sends `REPLCONF` and `SYNC`, all the `backup` user may run), from a short-lived container of
//! the server's own image on the stack network, then checked with `redis-check-rdb`. Never a
//! file read under a running server.

use std::path::Path;

use anyhow::Context as _;

use super::{Contents, Context, ServiceSet};
use crate::layout;
use crate::profile::Service;
use crate::runtime::OneOff;

/// The snapshot's name in the set's Redis directory.
pub const RDB: &str = "dump.rdb";
/// How many keys per database the restore test compares value by value.
const SAMPLES: usize = 32;

/// Streams the RDB into `part`.
pub async fn backup(context: &Context<'_>, part: &Path) -> anyhow::Result<ServiceSet> {
    let image = super::running_image(context.engine, context.profile, Service::Redis).await?;
    let owner = super::owner_of(part)?;
    // Redis keeps the previous password through a rotation's grace period: the current one
    // always works.
    let password = context.store.current(&layout::login_secret(Service::Redis, layout::BACKUP)).await?;
    let mut line = password.value.expose().as_bytes().to_vec();
    line.push(b'\n');
    let archive = super::login_files(context.dir, layout::BACKUP, &owner, vec![("password".into(), line)])?;
    let endpoint = layout::network_endpoint(Service::Redis);
    let root = super::ROOT;
    // --askpass reads the password from stdin: it is on no command line.
    let script = format!(
        "set -e; umask 077\n\
         redis-cli --tls --cacert /{root}/ca.crt --cert /{root}/client.crt --key /{root}/client.key -h {} -p {} --user {} --askpass --rdb /backup/{RDB} < /{root}/password >&2\n\
         redis-check-rdb /backup/{RDB} >&2\n\
         redis-server --version\n",
        endpoint.host,
        endpoint.port,
        layout::BACKUP
    );
    let names = crate::containers::stack_names(context.profile);
    let run = OneOff {
        image,
        user: owner,
        command: vec!["/bin/sh".into(), "-c".into(), script],
        archive,
        mounts: vec![format!("{}:/backup", part.display())],
        cap_add: Vec::new(),
    };
    let ran = context.engine.run_once(&names.stack, &names.network, "backup-redis", run).await?;
    Ok(ServiceSet {
        service: Service::Redis,
        server_version: ran.output.trim().to_owned(),
        method: "redis-cli --rdb, redis-check-rdb".into(),
        files: Vec::new(),
        contents: contents(context.profile, context.dir, context.store, None).await?,
        wal: None,
    })
}

/// Keys per database, and the SHA-256 of `DUMP` of a sample of keys (the keys `backed_up`
/// sampled, when given), read as admin from the host.
pub async fn contents(
    profile: &crate::profile::Profile,
    dir: &crate::stackdir::StackDir,
    store: &crate::secrets::store::Store,
    backed_up: Option<&Contents>,
) -> anyhow::Result<Contents> {
    let admin = store.current(&layout::login_secret(Service::Redis, layout::ADMIN)).await?;
    let target = crate::probe::login_target(profile, dir, Service::Redis, layout::ADMIN, admin.value, "")?
        .context("Redis is not published, so its contents cannot be read from here; set network.publish=true")?;
    let client = crate::probe::redis_client(&target)?;
    let mut connection = client.get_multiplexed_async_connection().await.context("logging in to Redis as admin")?;
    let keyspace: String = redis::cmd("INFO").arg("keyspace").query_async(&mut connection).await?;
    let mut contents = Contents::default();
    for line in keyspace.lines() {
        let Some((db, fields)) = line.split_once(':') else { continue };
        let Some(keys) = fields.split(',').find_map(|f| f.strip_prefix("keys=")) else { continue };
        contents.counts.insert(db.to_owned(), keys.parse().with_context(|| format!("INFO keyspace: {line}"))?);
        let index: u32 = db.trim_start_matches("db").parse().with_context(|| format!("INFO keyspace: {line}"))?;
        redis::cmd("SELECT").arg(index).query_async::<()>(&mut connection).await?;
        let keys: Vec<Vec<u8>> = match backed_up {
            Some(backed_up) => backed_up
                .checksums
                .keys()
                .filter_map(|name| name.strip_prefix(&format!("{db}:")))
                .map(|key| key.as_bytes().to_vec())
                .collect(),
            None => {
                let (_, mut keys): (String, Vec<Vec<u8>>) =
                    redis::cmd("SCAN").arg(0).arg("COUNT").arg(1000).query_async(&mut connection).await?;
                keys.sort();
                keys.truncate(SAMPLES);
                keys
            }
        };
        for key in keys {
            let dumped: Option<Vec<u8>> = redis::cmd("DUMP").arg(&key).query_async(&mut connection).await?;
            if let Some(dumped) = dumped {
                use sha2::{Digest, Sha256};
                let name = format!("{db}:{}", String::from_utf8_lossy(&key));
                contents.checksums.insert(name, hex::encode(Sha256::digest(&dumped)));
            }
        }
    }
    Ok(contents)
}
