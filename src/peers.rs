//! Qdrant's peers as containers. With `qdrant.nodes = N` (N > 1) Qdrant runs in distributed
//! mode: node 0 is `<stack>-qdrant` (alias `qdrant`), node N is `<stack>-qdrant-N` (alias
//! `qdrant-N`) with volumes of its own and no host port. Each peer's spec is node 0's with its
//! own name, so it has the same posture, files, keys and limits; only the address it gives the
//! others (`--uri https://<alias>:6335`) differs, and every peer but node 0 joins through node 0
//! (`--bootstrap`) on its first start. The peers talk over mutual TLS on the p2p port with the
//! Qdrant certificate (which then carries every peer's alias and both server and client usage)
//! and present the API key, which each peer demands (`service.enforce_internal_auth`).
//! Pure: no engine, no disk.

use crate::containers::{self, ContainerSpec, ExtraPort};
use crate::profile::{Profile, Service};

/// The port the peers talk on (`cluster.p2p.port`), in every container.
pub const P2P_PORT: u16 = 6335;

/// Whether Qdrant runs as a cluster.
pub fn is_cluster(profile: &Profile) -> bool {
    profile.runs(Service::Qdrant) && profile.qdrant.nodes > 1
}

/// The alias of peer `node`: `qdrant` for node 0, `qdrant-N` for node N.
pub fn alias(node: u8) -> String {
    match node {
        0 => Service::Qdrant.name().to_owned(),
        node => format!("{}-{node}", Service::Qdrant.name()),
    }
}

/// The aliases of the peers beyond node 0, which Qdrant's certificate carries too.
pub fn other_aliases(profile: &Profile) -> Vec<String> {
    match is_cluster(profile) {
        true => profile.qdrant.node_numbers().skip(1).map(alias).collect(),
        false => Vec::new(),
    }
}

/// The container name of peer `node`.
pub fn container_name(profile: &Profile, node: u8) -> String {
    format!("{}-{}", profile.stack.name, alias(node))
}

/// The arguments that make peer `node` a member of the cluster (none for a single node): the
/// address the others reach it at and, beyond node 0, the peer it joins through.
pub fn arguments(profile: &Profile, node: u8) -> Vec<String> {
    if !is_cluster(profile) {
        return Vec::new();
    }
    let uri = |node| format!("https://{}:{P2P_PORT}", alias(node));
    let mut args = vec!["--uri".to_owned(), uri(node)];
    if node > 0 {
        args.extend(["--bootstrap".to_owned(), uri(0)]);
    }
    args
}

/// The p2p port, which the Kubernetes Service of each peer names.
pub fn extra_ports(profile: &Profile) -> Vec<ExtraPort> {
    match is_cluster(profile) {
        true => vec![ExtraPort { name: "p2p".into(), container_port: P2P_PORT, publish: None }],
        false => Vec::new(),
    }
}

/// The specs of the peers beyond node 0, in node order: what `up` brings up beside Qdrant.
pub fn specs(profile: &Profile) -> Vec<ContainerSpec> {
    match is_cluster(profile) {
        true => profile.qdrant.node_numbers().skip(1).map(|node| spec(profile, node)).collect(),
        false => Vec::new(),
    }
}

/// Every peer's container name, node 0 first.
pub fn names(profile: &Profile) -> Vec<String> {
    profile.qdrant.node_numbers().map(|node| container_name(profile, node)).collect()
}

/// The node of a Qdrant spec; `None` for every other service's.
pub fn node(spec: &ContainerSpec) -> Option<u8> {
    if spec.service != Service::Qdrant {
        return None;
    }
    node_of_alias(&spec.alias)
}

/// The node an alias names (`qdrant-2` is 2); `None` for another name.
pub fn node_of_alias(alias: &str) -> Option<u8> {
    if alias == Service::Qdrant.name() {
        return Some(0);
    }
    alias.strip_prefix(&format!("{}-", Service::Qdrant.name()))?.parse().ok()
}

/// The node of a container name of the stack that is a peer's beyond node 0
/// (`<stack>-qdrant-2`).
pub fn node_of(profile: &Profile, container: &str) -> Option<u8> {
    let rest = container.strip_prefix(&format!("{}-", profile.stack.name))?;
    let node: u8 = rest.strip_prefix(&format!("{}-", Service::Qdrant.name()))?.parse().ok()?;
    (node > 0).then_some(node)
}

/// Peer `node`'s spec: node 0's is the service's own; another is node 0's with the node's
/// name, alias, volumes (each `<alias>-...`), no host port, and its own cluster arguments.
pub fn spec(profile: &Profile, node: u8) -> ContainerSpec {
    let first = containers::container_spec(profile, Service::Qdrant);
    if node == 0 {
        return first;
    }
    let mut spec = crate::node::renamed(&first, profile, container_name(profile, node), &alias(node));
    let cluster = arguments(profile, 0);
    let at = spec.command.len() - cluster.len();
    spec.command.truncate(at);
    spec.command.extend(arguments(profile, node));
    spec.publish = None;
    spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{ProfileSource, load};

    #[test]
    fn peers_are_node_zero_under_names_of_their_own_joining_through_node_zero() {
        let sets = ["stack.name=t", "qdrant.nodes=3", "qdrant.data=volume"].map(str::to_owned);
        let profile = load(&ProfileSource::Shipped("dev".into()), &sets).unwrap().profile;
        let names: Vec<String> = specs(&profile).into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["t-qdrant-1", "t-qdrant-2"]);
        let first = containers::container_spec(&profile, Service::Qdrant);
        assert!(first.command.ends_with(&["--uri".into(), "https://qdrant:6335".into()]), "{:?}", first.command);
        let second = spec(&profile, 2);
        assert!(
            second.command.ends_with(&[
                "--uri".into(),
                "https://qdrant-2:6335".into(),
                "--bootstrap".into(),
                "https://qdrant:6335".into()
            ]),
            "{:?}",
            second.command
        );
        assert_eq!(second.command.iter().filter(|a| *a == "--uri").count(), 1);
        let volumes: Vec<&str> = second.volumes.iter().map(|v| v.name.as_str()).collect();
        assert!(volumes.iter().all(|v| v.starts_with("t-qdrant-2-")), "{volumes:?}");
        assert!(second.deliveries.iter().all(|d| d.volume.starts_with("qdrant-2-")));
        assert_eq!(second.publish, None);
        assert_eq!((&second.posture, second.memory_bytes), (&first.posture, first.memory_bytes));
        assert_eq!(node(&second), Some(2));
        assert_eq!(node_of(&profile, "t-qdrant-2"), Some(2));
        assert_eq!(node_of(&profile, "t-qdrant-front"), None);
        assert_eq!(other_aliases(&profile), ["qdrant-1", "qdrant-2"]);
        let single = load(&ProfileSource::Shipped("dev".into()), &[]).unwrap().profile;
        assert!(specs(&single).is_empty() && arguments(&single, 0).is_empty());
    }
}
