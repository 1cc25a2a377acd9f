//! The NetworkPolicies: default deny, DNS, and one allow per service for the clients the
//! profile names.

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
    for spec in specs {
        let port = json!([{ "port": spec.container_port, "protocol": "TCP" }]);
        policies.push(json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": policy_metadata(&format!("{}-clients", spec.alias)),
            "spec": {
                "podSelector": { "matchLabels": selector(profile, spec.service) },
                "policyTypes": ["Ingress"],
                "ingress": [{ "from": peers, "ports": port }],
            },
        }));
        // The namespace's own clients may reach it (their egress is denied by default too).
        policies.push(json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": policy_metadata(&format!("{}-from-clients", spec.alias)),
            "spec": {
                "podSelector": { "matchLabels": { CLIENT_LABEL: "true" } },
                "policyTypes": ["Egress"],
                "egress": [{ "to": [{ "podSelector": { "matchLabels": selector(profile, spec.service) } }], "ports": port }],
            },
        }));
    }
    policies
}
