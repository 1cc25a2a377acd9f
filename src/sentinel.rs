//! Redis's nodes and Sentinels as containers. Node 0 is `<stack>-redis` (alias `redis`); the
//! replicas (`redis.replicas`) are node N: container `<stack>-redis-N`, alias `redis-N`,
//! volumes of their own, the host port after Redis's. The Sentinels (`redis.sentinels`) are
//! `<stack>-redis-sentinel`, `<stack>-redis-sentinel-1`, ... Each node's spec is node 0's
//! with its own name, so it has the primary's posture, files and limits; the role is not in
//! the spec: a node starts as it was, and `up` (or Sentinel) points a replica at the primary
//! with `REPLICAOF`.
//!
//! Which node is the primary is what the Sentinels say; the stack directory records the last
//! answer (`topology.json`, `redis.primary`), which the Sentinels' file starts from and
//! `env` gives as `REDIS_URL`. Pure: no engine, no disk.

use crate::containers::{self, ContainerSpec};
use crate::profile::{Profile, Service};

/// The alias of a node of `service` (Redis or Sentinel): the service's name for node 0,
/// `<service>-N` for node N.
pub fn alias(service: Service, node: u8) -> String {
    match node {
        0 => service.name().to_owned(),
        node => format!("{}-{node}", service.name()),
    }
}

/// Whether `service` runs as several nodes that are Redis's: Redis with replicas, the
/// Sentinels.
pub fn is_replicated(profile: &Profile, service: Service) -> bool {
    match service {
        Service::Redis => profile.redis.replicas > 0,
        Service::RedisSentinel => profile.runs(service),
        _ => false,
    }
}

/// The container name of a node of `service`.
pub fn container_name(profile: &Profile, service: Service, node: u8) -> String {
    format!("{}-{}", profile.stack.name, alias(service, node))
}

/// The name the Sentinels watch the primary under (`REDIS_MASTER_NAME`): the stack's.
pub fn master_name(profile: &Profile) -> String {
    profile.stack.name.clone()
}

/// How long Sentinel `node` waits before it marks a silent primary down, in milliseconds: 5 s,
/// and one more for each node before it. A killed primary's connections drop for every Sentinel
/// at the same moment: Sentinels that mark it down together start an election together, each
/// votes for itself, none wins, and none tries again for twice the failover timeout (seen on a
/// loaded machine, where a Sentinel's config write stalled it past the others' requests). A
/// second apart, the first two to agree hold the election and the third's vote decides it.
pub fn down_after_ms(node: u8) -> u32 {
    5000 + 1000 * u32::from(node)
}

/// The specs of Redis's replicas and of every Sentinel but node 0 (which is the service's own
/// spec), in node order: what `up` brings up beside the services.
pub fn specs(profile: &Profile) -> Vec<ContainerSpec> {
    if !profile.runs(Service::Redis) {
        return Vec::new();
    }
    let redis = (1..=profile.redis.replicas).map(|node| spec(profile, Service::Redis, node));
    let sentinels = profile.redis.sentinel_nodes().skip(1).map(|node| spec(profile, Service::RedisSentinel, node));
    redis.chain(sentinels).collect()
}

/// Every Redis node's container name, node 0 first.
pub fn redis_names(profile: &Profile) -> Vec<String> {
    profile.redis.nodes().map(|node| container_name(profile, Service::Redis, node)).collect()
}

/// Every Sentinel's container name.
pub fn sentinel_names(profile: &Profile) -> Vec<String> {
    profile.redis.sentinel_nodes().map(|node| container_name(profile, Service::RedisSentinel, node)).collect()
}

/// The node of a Redis node's or a Sentinel's spec; `None` for every other service's.
pub fn node(spec: &ContainerSpec) -> Option<u8> {
    if !matches!(spec.service, Service::Redis | Service::RedisSentinel) {
        return None;
    }
    match spec.alias.strip_prefix(&format!("{}-", spec.service.name())) {
        Some(number) => number.parse().ok(),
        None => (spec.alias == spec.service.name()).then_some(0),
    }
}

/// The node an alias a Sentinel gives names (`redis-2` is 2); `None` for another name.
pub fn node_of_alias(alias: &str) -> Option<u8> {
    if alias == Service::Redis.name() {
        return Some(0);
    }
    alias.strip_prefix(&format!("{}-", Service::Redis.name()))?.parse().ok()
}

/// The node of a container name of the stack that is a Redis replica's or a Sentinel's
/// beyond node 0 (`<stack>-redis-2`, `<stack>-redis-sentinel-1`), with its service.
pub fn node_of(profile: &Profile, container: &str) -> Option<(Service, u8)> {
    let rest = container.strip_prefix(&format!("{}-", profile.stack.name))?;
    [Service::RedisSentinel, Service::Redis].into_iter().find_map(|service| {
        let node: u8 = rest.strip_prefix(&format!("{}-", service.name()))?.parse().ok()?;
        (node > 0).then_some((service, node))
    })
}

/// Node `node`'s spec of `service` (Redis or Sentinel): node 0's is the service's own; another
/// is node 0's with the node's name, alias, volumes (each `<alias>-...`), published port
/// (Redis's only) and the alias it announces.
pub fn spec(profile: &Profile, service: Service, node: u8) -> ContainerSpec {
    let first = containers::container_spec(profile, service);
    if node == 0 {
        return first;
    }
    let alias = alias(service, node);
    let mut spec = crate::node::renamed(&first, profile, container_name(profile, service, node), &alias);
    if let Some(at) = spec.command.iter().position(|arg| arg == "--replica-announce-ip") {
        spec.command[at + 1] = alias;
    } else if service == Service::RedisSentinel {
        // The Sentinel's script takes the alias it announces and its delay as its arguments.
        let args = spec.command.len() - 2;
        spec.command[args..].clone_from_slice(&[alias, down_after_ms(node).to_string()]);
    }
    spec.publish = first.publish.map(|(address, _)| (address, profile.network.ports.redis_node(node)));
    spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{ProfileSource, load};

    #[test]
    fn replicas_and_sentinels_are_node_zero_under_names_of_their_own() {
        let sets = ["stack.name=t", "redis.replicas=2", "redis.sentinels=3"].map(str::to_owned);
        let profile = load(&ProfileSource::Shipped("dev".into()), &sets).unwrap().profile;
        let names: Vec<String> = specs(&profile).into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["t-redis-1", "t-redis-2", "t-redis-sentinel-1", "t-redis-sentinel-2"]);
        let second = spec(&profile, Service::Redis, 2);
        let volumes: Vec<&str> = second.volumes.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(volumes, ["t-redis-2-config", "t-redis-2-data"]);
        assert!(second.deliveries.iter().all(|d| d.volume == "redis-2-config"));
        assert!(second.command.windows(2).any(|w| w == ["--replica-announce-ip", "redis-2"]));
        assert_eq!(second.publish.map(|p| p.1), Some(profile.network.ports.redis + 2));
        let first = containers::container_spec(&profile, Service::Redis);
        assert_eq!((&second.posture, second.memory_bytes), (&first.posture, first.memory_bytes));
        let sentinel = spec(&profile, Service::RedisSentinel, 1);
        assert_eq!(sentinel.publish, None);
        assert!(sentinel.command.ends_with(&["redis-sentinel-1".into(), "6000".into()]), "{:?}", sentinel.command);
        let first_sentinel = containers::container_spec(&profile, Service::RedisSentinel);
        assert!(first_sentinel.command.ends_with(&["redis-sentinel".into(), "5000".into()]));
        let script = &first_sentinel.command[2];
        assert!(
            script.ends_with("--sentinel announce-ip \"$1\" --sentinel down-after-milliseconds t \"$2\""),
            "{script}"
        );
        assert_eq!(node(&sentinel), Some(1));
        assert_eq!(node_of(&profile, "t-redis-sentinel-1"), Some((Service::RedisSentinel, 1)));
        assert_eq!(node_of(&profile, "t-redis-2"), Some((Service::Redis, 2)));
        assert_eq!(node_of(&profile, "t-redis-exporter"), None);
        assert_eq!(node_of_alias("redis-2"), Some(2));
        assert_eq!(node_of_alias("redis-sentinel"), None);
    }
}
