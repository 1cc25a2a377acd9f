//! The NetworkPolicies: default deny, DNS, one allow per service for the clients the profile
//! names (not for an exporter, which only Prometheus reads), and the stack's own connections:
//! each service to the ones it connects to (`Service::upstreams`; a PostgreSQL replica to the
//! primary, for its copy and its stream; Redis's nodes and Sentinels to each other), both ways;
//! Qdrant's peers to each other on the p2p port, which nothing else reaches.

use super::*;

pub(super) fn network_policies(profile: &Profile, specs: &[ContainerSpec], namespace: &str) -> Vec<Value> {
    let policy_metadata = |name: &str| {
        json!({
            "name": name,
            "namespace": namespace,
            "labels": { "app.kubernetes.io/instance": profile.stack.name, "app.kubernetes.io/managed-by": "hardstack" },
        })
    };
    let mut policies = vec![
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": policy_metadata("default-deny"),
            "spec": { "podSelector": {}, "policyTypes": ["Ingress", "Egress"] },
        }),
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": policy_metadata("allow-dns"),
            "spec": {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [{
                    "to": [{
                        "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "kube-system" } },
                        "podSelector": { "matchLabels": { "k8s-app": "kube-dns" } },
                    }],
                    "ports": [{ "port": 53, "protocol": "UDP" }, { "port": 53, "protocol": "TCP" }],
                }],
            },
        }),
    ];
    let mut peers = vec![json!({ "podSelector": { "matchLabels": { CLIENT_LABEL: "true" } } })];
    for client in &profile.kubernetes.clients {
        let mut peer = json!({
            "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": client.namespace } },
        });
        if !client.pods.is_empty() {
            peer["podSelector"] = json!({ "matchLabels": client.pods });
        }
        peers.push(peer);
    }
    let pods = |spec: &ContainerSpec| json!({ "podSelector": { "matchLabels": selector(profile, &spec.alias) } });
    // Qdrant's p2p port is its peers' only: no client or other service reaches it.
    let open_ports = |spec: &ContainerSpec| -> Vec<Value> {
        let ports = spec.ports().into_iter().filter(|(name, _)| name != "p2p");
        ports.map(|(_, port)| json!({ "port": port, "protocol": "TCP" })).collect()
    };
    for spec in specs {
        let port = open_ports(spec);
        // An exporter is for Prometheus only; Qdrant behind its front for the front (and
        // Prometheus) only.
        let hidden = spec.service.is_exporter()
            || (spec.service == Service::Qdrant && specs.iter().any(|s| s.service == Service::QdrantFront));
        let mut from = if hidden { Vec::new() } else { peers.clone() };
        from.extend(specs.iter().filter(|d| upstreams(d, specs).iter().any(|u| u.alias == spec.alias)).map(pods));
        if !from.is_empty() {
            policies.push(json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": policy_metadata(&format!("{}-clients", spec.alias)),
                "spec": {
                    "podSelector": { "matchLabels": selector(profile, &spec.alias) },
                    "policyTypes": ["Ingress"],
                    "ingress": [{ "from": from, "ports": port }],
                },
            }));
        }
        let egress: Vec<Value> =
            upstreams(spec, specs).into_iter().map(|u| json!({ "to": [pods(u)], "ports": open_ports(u) })).collect();
        if !egress.is_empty() {
            policies.push(json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": policy_metadata(&format!("{}-upstreams", spec.alias)),
                "spec": {
                    "podSelector": { "matchLabels": selector(profile, &spec.alias) },
                    "policyTypes": ["Egress"],
                    "egress": egress,
                },
            }));
        }
        if let Some(mut policy) = peer_policy(spec, specs, &pods) {
            policy["metadata"] = policy_metadata(&format!("{}-peers", spec.alias));
            policies.push(policy);
        }
        if hidden {
            continue;
        }
        // The namespace's own clients may reach it (their egress is denied by default too).
        policies.push(json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": policy_metadata(&format!("{}-from-clients", spec.alias)),
            "spec": {
                "podSelector": { "matchLabels": { CLIENT_LABEL: "true" } },
                "policyTypes": ["Egress"],
                "egress": [{ "to": [{ "podSelector": { "matchLabels": selector(profile, &spec.alias) } }], "ports": port }],
            },
        }));
    }
    policies
}

/// A Qdrant peer's policy: to and from every other peer, on the p2p port only.
fn peer_policy(spec: &ContainerSpec, specs: &[ContainerSpec], pods: &dyn Fn(&ContainerSpec) -> Value) -> Option<Value> {
    crate::peers::node(spec)?;
    let others: Vec<Value> =
        specs.iter().filter(|u| u.alias != spec.alias && crate::peers::node(u).is_some()).map(pods).collect();
    let p2p = spec.extra_ports.iter().find(|p| p.name == "p2p")?;
    let ports = json!([{ "port": p2p.container_port, "protocol": "TCP" }]);
    (!others.is_empty()).then(|| {
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "spec": {
                "podSelector": pods(spec)["podSelector"],
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{ "from": others, "ports": ports }],
                "egress": [{ "to": others, "ports": ports }],
            },
        })
    })
}

/// The workloads `spec` connects to: its service's upstreams at their node 0 (PostgreSQL's
/// primary, not its replicas; Redis's node 0), a PostgreSQL replica to the primary; where Redis
/// runs replicas, each node to every other (a replica streams from whichever is primary) and
/// each Sentinel to every node and every other Sentinel.
fn upstreams<'a>(spec: &ContainerSpec, specs: &'a [ContainerSpec]) -> Vec<&'a ContainerSpec> {
    let postgres_replica = |s: &ContainerSpec| crate::replica::node(s).is_some_and(|node| node > 0);
    let redis_node = |s: &ContainerSpec| s.service == Service::Redis && crate::sentinel::node(s).is_some();
    let sentinel = |s: &ContainerSpec| s.service == Service::RedisSentinel;
    let node = |s: &ContainerSpec| crate::sentinel::node(s).or(crate::peers::node(s));
    let first = |s: &ContainerSpec| !postgres_replica(s) && node(s).is_none_or(|node| node == 0);
    specs
        .iter()
        .filter(|u| {
            let other = u.alias != spec.alias;
            (spec.service.upstreams().contains(&u.service) && first(u))
                || (postgres_replica(spec) && u.service == Service::Postgres && first(u))
                || (other && redis_node(spec) && redis_node(u) && specs.iter().any(sentinel))
                || (other && sentinel(spec) && (redis_node(u) || sentinel(u)))
        })
        .collect()
}
