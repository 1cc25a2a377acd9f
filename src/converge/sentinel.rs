//! Redis's topology under Sentinel, on the running stack: which node is the primary (what the
//! Sentinels say, recorded in `topology.json`), each node's role as the node says, and `settle`:
//! every node but the primary replicating from it (`REPLICAOF`), as `up` leaves the stack. A
//! node that comes back after a failover (the old primary) starts as a primary of its own data;
//! `settle` points it at the new primary at once, before Sentinel would.
//!
//! hardstack reaches each node and Sentinel at its address on the stack network (a local
//! engine routes its bridge), verified as its alias, as the admin and discovery logins.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;

use crate::layout;
use crate::probe::{self, Target};
use crate::profile::{Profile, Service};
use crate::retry::{Attempt, Backoff};
use crate::runtime::Engine;
use crate::secrets::store::Store;
use crate::sentinel;
use crate::stackdir::StackDir;

/// A node's role as the node itself says (`ROLE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Primary,
    /// A replica, and the alias of the primary it follows.
    Replica(String),
    /// Not running, or not answering.
    Down(String),
}

/// A login at node `node` of `service` (Redis or Sentinel), at its address on the stack network.
pub async fn target(
    engine: &Engine,
    profile: &Profile,
    dir: &StackDir,
    (service, node): (Service, u8),
    login: &str,
    password: crate::secrets::Secret,
) -> anyhow::Result<Target> {
    let name = sentinel::container_name(profile, service, node);
    let network = crate::containers::stack_names(profile).network;
    let address = engine.address_on(&name, &network).await?;
    Ok(Target {
        address: Some(std::net::SocketAddr::new(address, service.container_port())),
        host: sentinel::alias(service, node),
        port: service.container_port(),
        user: login.to_owned(),
        password,
        database: String::new(),
        tls: probe::client_tls(dir, certificate_of(login), profile.demands_client_cert(service))?,
    })
}

/// The login whose client certificate a login presents: its own, but for the discovery login,
/// which has none (applications present their own), where hardstack presents admin's.
pub fn certificate_of(login: &str) -> &str {
    if login == layout::DISCOVERY { layout::ADMIN } else { login }
}

/// An admin connection to Redis node `node`.
pub async fn admin(
    engine: &Engine,
    profile: &Profile,
    dir: &StackDir,
    store: &Store,
    node: u8,
) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    login(engine, (profile, dir, store), (Service::Redis, node), layout::ADMIN).await
}

/// A discovery connection to Sentinel `node`: what an application logs in as.
pub async fn discovery(
    engine: &Engine,
    profile: &Profile,
    dir: &StackDir,
    store: &Store,
    node: u8,
) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    login(engine, (profile, dir, store), (Service::RedisSentinel, node), layout::DISCOVERY).await
}

/// A connection to a node or Sentinel as `user`, with its current password.
async fn login(
    engine: &Engine,
    (profile, dir, store): (&Profile, &StackDir, &Store),
    at: (Service, u8),
    user: &str,
) -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let password = store.current(&layout::redis_login_secret(user)).await?.value;
    let target = target(engine, profile, dir, at, user, password).await?;
    probe::redis_connection(&target).await.with_context(|| format!("logging in to {} as {user}", target.host))
}

/// The primary's node as the Sentinels say, asked in turn until one answers with a node of
/// the stack; `None` when none answers.
pub async fn primary_by_sentinels(
    engine: &Engine,
    profile: &Profile,
    dir: &StackDir,
    store: &Store,
) -> anyhow::Result<Option<u8>> {
    for node in profile.redis.sentinel_nodes() {
        let name = sentinel::container_name(profile, Service::RedisSentinel, node);
        if !engine.running(&name).await? {
            continue;
        }
        let Ok(mut connection) = discovery(engine, profile, dir, store, node).await else { continue };
        let answer: redis::RedisResult<Option<(String, u16)>> = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(sentinel::master_name(profile))
            .query_async(&mut connection)
            .await;
        if let Ok(Some((host, _))) = answer
            && let Some(primary) = redis_node(profile, &host)
        {
            return Ok(Some(primary));
        }
    }
    Ok(None)
}

/// The node of the stack's Redis that `alias` names, if any.
fn redis_node(profile: &Profile, alias: &str) -> Option<u8> {
    sentinel::node_of_alias(alias).filter(|n| *n <= profile.redis.replicas)
}

/// Each Redis node's role, as the node says.
pub async fn roles(engine: &Engine, profile: &Profile, dir: &StackDir, store: &Store) -> BTreeMap<u8, Role> {
    let mut roles = BTreeMap::new();
    for node in profile.redis.nodes() {
        roles.insert(
            node,
            role(engine, profile, dir, store, node).await.unwrap_or_else(|err| Role::Down(format!("{err:#}"))),
        );
    }
    roles
}

async fn role(engine: &Engine, profile: &Profile, dir: &StackDir, store: &Store, node: u8) -> anyhow::Result<Role> {
    let name = sentinel::container_name(profile, Service::Redis, node);
    if !engine.running(&name).await? {
        return Ok(Role::Down("not running".into()));
    }
    let mut connection = admin(engine, profile, dir, store, node).await?;
    let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut connection).await.context("ROLE")?;
    let text = |value: Option<&redis::Value>| -> Option<String> { redis::from_redis_value(value?).ok() };
    match text(role.first()).as_deref() {
        Some("master") => Ok(Role::Primary),
        Some("slave") => Ok(Role::Replica(text(role.get(1)).unwrap_or_default())),
        other => anyhow::bail!("ROLE answered {other:?}"),
    }
}

/// Records node `primary` as Redis's primary in `topology.json`.
pub fn record_primary(dir: &StackDir, primary: u8) -> anyhow::Result<()> {
    let topology = crate::topology::Topology { redis_primary: Some(primary), ..crate::topology::current(dir)? };
    crate::topology::record(dir, &topology)
}

/// What `settle` did.
#[derive(Debug, Default)]
pub struct Settled {
    /// The primary's node.
    pub primary: u8,
    /// The node recorded as primary before, where the Sentinels moved it.
    pub moved_from: Option<u8>,
    /// The nodes pointed at the primary (a new replica, an old primary come back).
    pub pointed: Vec<u8>,
    /// The Sentinels told to forget what they knew (`SENTINEL RESET`): they knew replicas or
    /// Sentinels that no longer run.
    pub reset: Vec<u8>,
}

/// Leaves the stack with one primary, the one the Sentinels say (or the recorded one where no
/// Sentinel answers: a new stack), recorded; every other node replicating from it, its link
/// up. Where the Sentinels promote another node meanwhile (`up` ran just after a primary died,
/// before they agreed it was down), the stack settles again on theirs, up to three times.
pub async fn settle(engine: &Engine, profile: &Profile, dir: &StackDir, store: &Store) -> anyhow::Result<Settled> {
    let mut settled = Settled::default();
    for _ in 0..3 {
        if settle_on(engine, (profile, dir, store), &mut settled).await? == Watch::Watching {
            return Ok(settled);
        }
    }
    anyhow::bail!("the Sentinels promoted another Redis node three times while up settled the stack: run up again")
}

/// One round of `settle`, on the primary the Sentinels name now.
async fn settle_on(
    engine: &Engine,
    (profile, dir, store): (&Profile, &StackDir, &Store),
    settled: &mut Settled,
) -> anyhow::Result<Watch> {
    let recorded = profile.redis.primary_node();
    let primary = primary_by_sentinels(engine, profile, dir, store).await?.unwrap_or(recorded);
    settled.primary = primary;
    if primary != recorded || crate::topology::current(dir)?.redis_primary.is_none() {
        record_primary(dir, primary)?;
        settled.moved_from = (primary != recorded).then_some(recorded);
    }
    let primary_alias = sentinel::alias(Service::Redis, primary);
    for node in profile.redis.nodes().filter(|node| *node != primary) {
        let follows = match role(engine, profile, dir, store, node).await? {
            Role::Replica(of) => of == primary_alias,
            Role::Primary => false,
            Role::Down(why) => anyhow::bail!("{}: {why}", sentinel::alias(Service::Redis, node)),
        };
        if !follows {
            let mut connection = admin(engine, profile, dir, store, node).await?;
            redis::cmd("REPLICAOF")
                .arg(&primary_alias)
                .arg(Service::Redis.container_port())
                .query_async::<()>(&mut connection)
                .await
                .with_context(|| format!("REPLICAOF {primary_alias} on {}", sentinel::alias(Service::Redis, node)))?;
            if !settled.pointed.contains(&node) {
                settled.pointed.push(node);
            }
        }
    }
    for node in profile.redis.nodes().filter(|node| *node != primary) {
        linked(engine, profile, dir, store, node).await?;
    }
    for node in profile.redis.sentinel_nodes() {
        match watching(engine, (profile, dir, store), node, primary).await? {
            Watch::Watching => {}
            Watch::Reset => settled.reset.push(node),
            Watch::Moved => return Ok(Watch::Moved),
        }
    }
    Ok(Watch::Watching)
}

/// What a Sentinel does once `watching` is done with it.
#[derive(Debug, PartialEq, Eq)]
enum Watch {
    /// It names the primary and knows every replica and the other Sentinels.
    Watching,
    /// The same, after it was told to forget what no longer runs.
    Reset,
    /// It names another node the primary, and that node says it is one: a failover happened.
    Moved,
}

/// Waits until Sentinel `node` names `primary` the primary and knows every replica and the
/// other Sentinels: until then it could not promote one (it learns replicas from the primary's
/// INFO, every 10 seconds, and Sentinels from their hello messages, every 2; one that stalled,
/// in TILT mode, learns a failover late). A Sentinel never forgets a replica or a Sentinel by
/// itself: one that knows more than run (a replica removed) is told to forget (`SENTINEL
/// RESET`, as the `sentinel` login) and learns again what runs. A Sentinel that names another
/// node, which says it is the primary, has seen a failover: `settle` starts again.
async fn watching(
    engine: &Engine,
    (profile, dir, store): (&Profile, &StackDir, &Store),
    node: u8,
    primary: u8,
) -> anyhow::Result<Watch> {
    let alias = sentinel::alias(Service::RedisSentinel, node);
    let primary_alias = sentinel::alias(Service::Redis, primary);
    let (replicas, others) = (profile.redis.replicas, profile.redis.sentinels - 1);
    let reset = std::cell::Cell::new(false);
    Backoff { first: Duration::from_millis(200), most: Duration::from_secs(1), deadline: Duration::from_secs(30) }
        .run(|| async {
            let mut connection = match discovery(engine, profile, dir, store, node).await {
                Ok(connection) => connection,
                Err(err) => return Attempt::Retry(err),
            };
            let fields: redis::RedisResult<Vec<String>> = redis::cmd("SENTINEL")
                .arg("MASTER")
                .arg(sentinel::master_name(profile))
                .query_async(&mut connection)
                .await;
            let fields = match fields {
                Ok(fields) => fields,
                Err(err) => {
                    return Attempt::Retry(anyhow::Error::new(err).context(format!("SENTINEL MASTER on {alias}")));
                }
            };
            let text = |name: &str| {
                let at = fields.iter().position(|f| f == name)?;
                fields.get(at + 1).map(String::as_str)
            };
            let field = |name: &str| text(name)?.parse::<u8>().ok();
            if text("ip") != Some(primary_alias.as_str()) {
                let named = text("ip").unwrap_or("no node");
                if let Some(other) = redis_node(profile, named)
                    && role(engine, profile, dir, store, other).await.is_ok_and(|role| role == Role::Primary)
                {
                    return Attempt::Done(Watch::Moved);
                }
                return Attempt::Retry(anyhow::anyhow!("{alias} names {named} the primary, not {primary_alias}"));
            }
            match (field("num-slaves"), field("num-other-sentinels")) {
                (Some(r), Some(o)) if r == replicas && o == others => {
                    Attempt::Done(if reset.get() { Watch::Reset } else { Watch::Watching })
                }
                (Some(r), Some(o)) if (r > replicas || o > others) && !reset.get() => {
                    match forget(engine, (profile, dir, store), node).await {
                        Ok(()) => {
                            reset.set(true);
                            Attempt::Retry(anyhow::anyhow!("{alias} is learning again what runs"))
                        }
                        Err(err) => Attempt::Fail(err),
                    }
                }
                (r, o) => Attempt::Retry(anyhow::anyhow!(
                    "{alias} knows {} replicas and {} other Sentinels, not {replicas} and {others}",
                    r.map_or("no".into(), |r| r.to_string()),
                    o.map_or("no".into(), |o| o.to_string())
                )),
            }
        })
        .await
}

/// Tells Sentinel `node` to forget the replicas and Sentinels it knows (`SENTINEL RESET`): it
/// learns again, within seconds, those that run.
async fn forget(engine: &Engine, (profile, dir, store): (&Profile, &StackDir, &Store), node: u8) -> anyhow::Result<()> {
    let mut connection = login(engine, (profile, dir, store), (Service::RedisSentinel, node), layout::SENTINEL).await?;
    redis::cmd("SENTINEL")
        .arg("RESET")
        .arg(sentinel::master_name(profile))
        .query_async::<i64>(&mut connection)
        .await
        .with_context(|| format!("SENTINEL RESET on {}", sentinel::alias(Service::RedisSentinel, node)))?;
    Ok(())
}

/// Waits until replica `node`'s link to its primary is up (its first copy made).
async fn linked(engine: &Engine, profile: &Profile, dir: &StackDir, store: &Store, node: u8) -> anyhow::Result<()> {
    let alias = sentinel::alias(Service::Redis, node);
    Backoff { first: Duration::from_millis(100), most: Duration::from_secs(1), deadline: Duration::from_secs(60) }
        .run(|| async {
            let mut connection = match admin(engine, profile, dir, store, node).await {
                Ok(connection) => connection,
                Err(err) => return Attempt::Retry(err),
            };
            let info: redis::RedisResult<String> =
                redis::cmd("INFO").arg("replication").query_async(&mut connection).await;
            match info {
                Ok(info) if info.lines().any(|line| line.trim() == "master_link_status:up") => Attempt::Done(()),
                Ok(_) => Attempt::Retry(anyhow::anyhow!("{alias}: its link to the primary is not up")),
                Err(err) => Attempt::Retry(anyhow::Error::new(err).context(format!("INFO replication on {alias}"))),
            }
        })
        .await
}
