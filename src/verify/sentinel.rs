//! Redis's replicas and Sentinels (`redis.replicas`, `redis.sentinels`): every Sentinel watches
//! the same primary and knows every replica and the other Sentinels; each replica receives a
//! write made on the primary (within a bound) and refuses writes (`READONLY`); the Sentinels
//! refuse a client without a login (`NOAUTH`) and the discovery login anything that changes
//! them (`NOPERM` on `SENTINEL FAILOVER`). Each node and Sentinel is reached at its address
//! on the stack network, verified against its alias.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use super::{CheckFuture, Context, Refusal, accepted, bounded, prepare, refused};
use crate::layout;
use crate::probe::{self, Target};
use crate::profile::{Profile, Service};
use crate::report::Check;
use crate::retry::Attempt;

/// How long a key written on the primary may take to be readable on a replica.
pub const VISIBLE_WITHIN: Duration = Duration::from_secs(5);

const READ_ONLY: Refusal = Refusal::Redis(&["READONLY"]);
const NO_LOGIN: Refusal = Refusal::Redis(&["NOAUTH"]);
const NO_PERMISSION: Refusal = Refusal::Redis(&["NOPERM"]);

/// Every Redis node and Sentinel of the profile, as (service, node): the nodes beyond 0 and
/// every Sentinel (node 0 of Redis is the service's own endpoint).
pub fn nodes(profile: &Profile) -> Vec<(Service, u8)> {
    if profile.redis.replicas == 0 || !profile.runs(Service::Redis) {
        return Vec::new();
    }
    let redis = profile.redis.nodes().map(|node| (Service::Redis, node));
    redis.chain(profile.redis.sentinel_nodes().map(|node| (Service::RedisSentinel, node))).collect()
}

/// Every replica and Sentinel check.
pub fn checks(context: &Context) -> Vec<CheckFuture<'_>> {
    let mut checks: Vec<CheckFuture<'_>> = Vec::new();
    let profile = &context.profile;
    if nodes(profile).is_empty() {
        return checks;
    }
    let id = "redis.sentinels".to_owned();
    checks.push(bounded(id.clone(), async move {
        let what = "every Sentinel watches the same primary, every replica and the other Sentinels";
        accepted(&id, what, sentinels_agree(context)).await
    }));
    for node in profile.redis.nodes() {
        let alias = crate::sentinel::alias(Service::Redis, node);
        let id = format!("redis.replica.{node}.streams");
        let what = format!("a key written on the primary is read on {alias} within {VISIBLE_WITHIN:?}");
        checks.push(bounded(id.clone(), async move {
            match primary(context).await {
                Ok(primary) if primary == node => Check::not_applicable(&id, format!("{alias} is the primary")),
                _ => accepted(&id, &what, streams(context, node)).await,
            }
        }));
        let id = format!("redis.replica.{node}.write_refused");
        let alias = crate::sentinel::alias(Service::Redis, node);
        let what = format!("a write by the application on {alias}");
        checks.push(bounded(id.clone(), async move {
            if let Ok(primary) = primary(context).await
                && primary == node
            {
                return Check::not_applicable(&id, format!("{alias} is the primary"));
            }
            refused(&id, &what, READ_ONLY, async {
                let (mut connection, key) = prepare(app_on(context, node).await)?;
                redis::cmd("SET").arg(key).arg("x").query_async::<()>(&mut connection).await?;
                anyhow::Ok(())
            })
            .await
        }));
    }
    let id = "redis.sentinel.login_required".to_owned();
    checks.push(bounded(id.clone(), async move {
        refused(&id, "SENTINEL MASTERS without a login", NO_LOGIN, async {
            let mut target = prepare(sentinel_target(context, 0, layout::DISCOVERY))?;
            target.user.clear();
            let mut connection = prepare(unauthenticated(&target).await)?;
            redis::cmd("SENTINEL").arg("MASTERS").query_async::<redis::Value>(&mut connection).await?;
            anyhow::Ok(())
        })
        .await
    }));
    let id = "redis.sentinel.failover_refused".to_owned();
    checks.push(bounded(id.clone(), async move {
        refused(&id, "SENTINEL FAILOVER as the applications' discovery login", NO_PERMISSION, async {
            let target = prepare(sentinel_target(context, 0, layout::DISCOVERY))?;
            let mut connection = prepare(probe::redis_connection(&target).await)?;
            let master = crate::sentinel::master_name(&context.profile);
            redis::cmd("SENTINEL").arg("FAILOVER").arg(master).query_async::<()>(&mut connection).await?;
            anyhow::Ok(())
        })
        .await
    }));
    checks
}

/// A login at a Redis node or Sentinel by alias.
fn target(context: &Context, service: Service, node: u8, login: &str, secret: &str) -> anyhow::Result<Target> {
    let alias = crate::sentinel::alias(service, node);
    let address = *context.nodes.get(&alias).with_context(|| format!("{alias} is not reached"))?;
    Ok(Target {
        host: alias,
        port: address.port(),
        user: login.to_owned(),
        password: context.secret(secret)?,
        database: String::new(),
        tls: context.tls_for(crate::converge::sentinel::certificate_of(login), context.mutual())?,
        address: Some(address),
    })
}

fn sentinel_target(context: &Context, node: u8, login: &str) -> anyhow::Result<Target> {
    target(context, Service::RedisSentinel, node, login, &layout::login_secret(Service::RedisSentinel, login))
}

/// A TLS connection without AUTH (the login left empty).
async fn unauthenticated(target: &Target) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let target = Target { password: crate::secrets::Secret::new(""), ..target.clone() };
    probe::redis_connection(&target).await
}

/// The first application user on Redis node `node`, and a key of its pattern.
async fn app_on(context: &Context, node: u8) -> anyhow::Result<(redis::aio::MultiplexedConnection, String)> {
    let user = context.users().first().context("the profile has no application user")?;
    let target = target(context, Service::Redis, node, &user.name, &layout::login_secret(Service::Redis, &user.name))?;
    // A key of each node's own: the checks of the replicas run at once.
    let key = format!("{}hardstack-verify-replica-{node}", user.redis_keys.trim_end_matches('*'));
    Ok((probe::redis_connection(&target).await?, key))
}

/// What one Sentinel says of the primary: its alias, the replicas and the other Sentinels it
/// knows, as `SENTINEL MASTER` gives them to the discovery login.
async fn view(context: &Context, node: u8) -> anyhow::Result<BTreeMap<String, String>> {
    let target = sentinel_target(context, node, layout::DISCOVERY)?;
    let mut connection = probe::redis_connection(&target).await?;
    let master = crate::sentinel::master_name(&context.profile);
    let fields: Vec<String> = redis::cmd("SENTINEL").arg("MASTER").arg(master).query_async(&mut connection).await?;
    Ok(fields.chunks(2).filter_map(|pair| Some((pair.first()?.clone(), pair.get(1)?.clone()))).collect())
}

/// The primary's node, as Sentinel 0 says.
async fn primary(context: &Context) -> anyhow::Result<u8> {
    let view = view(context, 0).await?;
    let ip = view.get("ip").context("SENTINEL MASTER gave no address")?;
    crate::sentinel::node_of_alias(ip).with_context(|| format!("the Sentinels' primary {ip} is no node of the stack"))
}

async fn sentinels_agree(context: &Context) -> anyhow::Result<String> {
    let profile = &context.profile;
    let mut primaries = Vec::new();
    for node in profile.redis.sentinel_nodes() {
        let alias = crate::sentinel::alias(Service::RedisSentinel, node);
        let view = view(context, node).await.with_context(|| format!("asking {alias}"))?;
        let field = |name: &str| view.get(name).cloned().unwrap_or_default();
        anyhow::ensure!(field("flags") == "master", "{alias}: the primary's flags are {}", field("flags"));
        let replicas = profile.redis.replicas.to_string();
        anyhow::ensure!(
            field("num-slaves") == replicas,
            "{alias} knows {} replicas, not {replicas}",
            field("num-slaves")
        );
        let others = (profile.redis.sentinels - 1).to_string();
        anyhow::ensure!(
            field("num-other-sentinels") == others,
            "{alias} knows {} other Sentinels, not {others}",
            field("num-other-sentinels")
        );
        primaries.push(field("ip"));
    }
    primaries.dedup();
    anyhow::ensure!(primaries.len() == 1, "the Sentinels name different primaries: {}", primaries.join(", "));
    Ok(format!(
        "primary {}; {} replicas and {} Sentinels, quorum {}",
        primaries[0],
        profile.redis.replicas,
        profile.redis.sentinels,
        profile.redis.sentinels / 2 + 1
    ))
}

/// A key written on the primary, read on replica `node` within the bound; how long it took.
async fn streams(context: &Context, node: u8) -> anyhow::Result<String> {
    let primary = primary(context).await?;
    let alias = crate::sentinel::alias(Service::Redis, node);
    if primary == node {
        return Ok(format!("{alias} is the primary"));
    }
    let (mut writer, _) = app_on(context, primary).await?;
    let (reader, key) = app_on(context, node).await?;
    let value = format!("{:?}", Instant::now());
    redis::cmd("SET").arg(&key).arg(&value).arg("EX").arg(60).query_async::<()>(&mut writer).await?;
    let written = Instant::now();
    let backoff = crate::retry::Backoff::every(Duration::from_millis(20), VISIBLE_WITHIN);
    backoff
        .run(|| async {
            let read: redis::RedisResult<Option<String>> =
                redis::cmd("GET").arg(&key).query_async(&mut reader.clone()).await;
            match read {
                Ok(read) if read.as_deref() == Some(value.as_str()) => Attempt::Done(()),
                Ok(_) => Attempt::Retry(anyhow::anyhow!("{key} written on the primary is not on {alias} yet")),
                Err(err) => Attempt::Fail(err.into()),
            }
        })
        .await?;
    Ok(format!("{key} read on {alias} {} ms after the write", written.elapsed().as_millis()))
}
