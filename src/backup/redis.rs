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
    let endpoint = crate::endpoint::network_endpoint(context.profile, Service::Redis);
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
        contents: contents(context.engine, context.profile, context.dir, context.store, None).await?,
        wal: None,
    })
}

/// Keys per database, and the SHA-256 of `DUMP` of a sample of keys (the keys `backed_up`
/// sampled, when given), read as admin by `redis-cli` in a one-off container on the stack
/// network, so an unpublished stack is read as well as a published one.
pub async fn contents(
    engine: &crate::runtime::Engine,
    profile: &crate::profile::Profile,
    dir: &crate::stackdir::StackDir,
    store: &crate::secrets::store::Store,
    backed_up: Option<&Contents>,
) -> anyhow::Result<Contents> {
    let image = super::running_image(engine, profile, Service::Redis).await?;
    let owner = super::owner_of(&dir.absolute())?;
    let admin = store.current(&layout::login_secret(Service::Redis, layout::ADMIN)).await?;
    let mut password = admin.value.expose().as_bytes().to_vec();
    password.push(b'\n');
    // The keys to sample again, as `<db>\t<key>` lines (none: sample anew).
    let wanted: String = backed_up
        .map(|c| {
            c.checksums.keys().filter_map(|k| k.split_once(':')).map(|(db, key)| format!("{db}\t{key}\n")).collect()
        })
        .unwrap_or_default();
    let files = vec![("password".into(), password), ("wanted".into(), wanted.into_bytes())];
    let archive = super::login_files(dir, layout::ADMIN, &owner, files)?;
    let endpoint = crate::endpoint::network_endpoint(profile, Service::Redis);
    let root = super::ROOT;
    // Output: `count <db> <keys>` per database, then `sample <db> <sha256> <key>`.
    let script = format!(
        r#"set -e
r() {{ redis-cli --tls --cacert /{root}/ca.crt --cert /{root}/client.crt --key /{root}/client.key -h {host} -p {port} --user {admin} --askpass "$@" < /{root}/password; }}
r INFO keyspace | tr -d '\r' | sed -n 's/^db\([0-9]*\):keys=\([0-9]*\).*/count db\1 \2/p' > /tmp/counts
cat /tmp/counts
if [ -s /{root}/wanted ]; then cp /{root}/wanted /tmp/sample
else
  : > /tmp/sample
  while read -r _ db _; do
    r -n "${{db#db}}" --scan --count 1000 | head -n 1000 | LC_ALL=C sort | head -n {SAMPLES} | sed "s/^/$db\t/" >> /tmp/sample
  done < /tmp/counts
fi
while IFS="$(printf '\t')" read -r db key; do
  sum=$(r -n "${{db#db}}" --no-raw DUMP "$key" | sha256sum | cut -d' ' -f1)
  printf 'sample %s %s %s
' "$db" "$sum" "$key"
done < /tmp/sample
"#,
        host = endpoint.host,
        port = endpoint.port,
        admin = layout::ADMIN,
    );
    let names = crate::containers::stack_names(profile);
    let run = OneOff {
        image,
        user: owner,
        command: vec!["/bin/sh".into(), "-c".into(), script],
        archive,
        mounts: Vec::new(),
        cap_add: Vec::new(),
    };
    let ran = engine
        .run_once(&names.stack, &names.network, "contents-redis", run)
        .await
        .context("reading what Redis holds")?;
    let mut contents = Contents::default();
    for line in ran.output.lines() {
        let mut fields = line.splitn(4, ' ');
        match (fields.next(), fields.next(), fields.next(), fields.next()) {
            (Some("count"), Some(db), Some(keys), None) => {
                contents.counts.insert(db.to_owned(), keys.parse().with_context(|| format!("INFO keyspace: {line}"))?);
            }
            (Some("sample"), Some(db), Some(sum), Some(key)) => {
                contents.checksums.insert(format!("{db}:{key}"), sum.to_owned());
            }
            _ => {}
        }
    }
    Ok(contents)
}
