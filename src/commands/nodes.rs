//! What `up` does about the nodes of a replicated service beyond what each container's
//! bring-up does: removing the nodes the profile no longer declares, and leaving Redis's
//! replicas following the primary the Sentinels name.

use crate::converge;
use crate::output::Output;
use crate::profile::{Profile, Service};
use crate::runtime::Engine;
use crate::secrets::store::Store;
use crate::stackdir::StackDir;

/// Removes the stack's containers the profile no longer declares (their volumes stay, as
/// `down` keeps them), so the running stack is the declared one: a service taken out of
/// stack.services, replicas and Sentinels beyond their counts.
pub async fn remove_undeclared(output: &Output, engine: &Engine, profile: &Profile) -> anyhow::Result<()> {
    for name in engine.undeclared_containers(profile).await? {
        engine.remove(&name).await?;
        let why = match (crate::replica::node_of(profile, &name), crate::sentinel::node_of(profile, &name)) {
            (Some(node), _) if profile.runs(Service::Postgres) => {
                let primary = crate::replica::primary_spec(profile);
                converge::replica::forget(engine, &primary, node).await?;
                "a replica beyond postgres.replicas; its slot on the primary is dropped"
            }
            (Some(_), _) => "a replica beyond postgres.replicas",
            (None, Some((Service::Redis, _))) => "a replica beyond redis.replicas",
            (None, Some(_)) => "a Sentinel beyond redis.sentinels",
            (None, None) if crate::peers::node_of(profile, &name).is_some() => {
                "a Qdrant peer, and qdrant no longer runs"
            }
            (None, None) => "its service is no longer in stack.services",
        };
        output.line(format!("{name}: removed, {why} (its volumes are kept)"));
    }
    Ok(())
}

/// Before `up` changes anything: a running Qdrant cluster keeps its peers. Fewer peers would
/// drop shard replicas, some maybe the last of their shard, and one peer alone is no cluster;
/// moving shards off a peer is Qdrant's own work, done by hand.
pub async fn refuse_fewer_peers(engine: &Engine, profile: &Profile) -> anyhow::Result<()> {
    if !profile.runs(Service::Qdrant) {
        return Ok(());
    }
    let existing = engine.stack_containers(&profile.stack.name).await?;
    let peers = existing.iter().filter_map(|name| crate::peers::node_of(profile, name)).max();
    match peers {
        Some(last) if last >= profile.qdrant.nodes => Err(anyhow::anyhow!(
            "qdrant.nodes = {} but the running cluster has {} peers: hardstack does not remove Qdrant peers. \
             Move each collection's shards off the peers to remove (POST /collections/NAME/cluster, move_shard), \
             remove them from the cluster (DELETE /cluster/peer/ID) and their containers, or set qdrant.nodes = {} again",
            profile.qdrant.nodes,
            last + 1,
            last + 1
        )),
        _ => Ok(()),
    }
}

/// Before `up` renders the stack directory: the Redis primary the Sentinels name, recorded where
/// a failover moved it, so the files `up` renders and delivers say so.
pub async fn follow_sentinels(
    output: &Output,
    engine: &Engine,
    profile: &Profile,
    dir: &StackDir,
) -> anyhow::Result<()> {
    if !profile.runs(Service::RedisSentinel) || !dir.file(&crate::layout::StackFile::Profile).exists() {
        return Ok(());
    }
    let store = Store::open(profile, dir).await?;
    let Some(primary) = converge::sentinel::primary_by_sentinels(engine, profile, dir, &store).await? else {
        return Ok(());
    };
    let recorded = profile.redis.primary_node();
    if primary != recorded {
        converge::sentinel::record_primary(dir, primary)?;
        output.line(promoted(primary, recorded));
    }
    Ok(())
}

/// Redis's topology as `up` leaves it (`converge::sentinel::settle`), and what changed said:
/// the primary's node.
pub async fn settle_redis(
    output: &Output,
    engine: &Engine,
    profile: &Profile,
    dir: &StackDir,
    store: &Store,
) -> anyhow::Result<u8> {
    let settled = converge::sentinel::settle(engine, profile, dir, store).await?;
    let alias = |node| crate::sentinel::alias(Service::Redis, node);
    if let Some(from) = settled.moved_from {
        output.line(promoted(settled.primary, from));
    }
    for node in settled.pointed {
        output.line(format!("{}: now a replica of {}", alias(node), alias(settled.primary)));
    }
    for node in settled.reset {
        let sentinel = crate::sentinel::alias(Service::RedisSentinel, node);
        output.line(format!("{sentinel}: told to forget the nodes that no longer run (SENTINEL RESET)"));
    }
    Ok(settled.primary)
}

/// What `up` says when the Sentinels moved Redis's primary from node `from` to `primary`.
fn promoted(primary: u8, from: u8) -> String {
    let alias = |node| crate::sentinel::alias(Service::Redis, node);
    format!(
        "redis: the Sentinels promoted {} in place of {}; `hardstack env` gives its address",
        alias(primary),
        alias(from)
    )
}
