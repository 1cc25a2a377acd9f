//! The Kubernetes target: the same stack as a kustomize directory, made from the same
//! `ContainerSpec` per service as the compose file and `up`, so the three cannot drift.
//!
//! Per service: a ServiceAccount without a token, a ConfigMap (the public files), a client and
//! a headless Service, a StatefulSet with volume claims and the restricted Pod Security posture
//! (non-root with the image's uid, seccomp RuntimeDefault, every capability dropped, no
//! privilege escalation, read-only root with emptyDirs where the server writes), the
//! healthcheck of the compose file as startup, readiness and liveness probes, and a
//! PodDisruptionBudget. The files a server reads arrive as in compose: an init container of
//! the server's image, as the server's uid, copies them from the ConfigMap and the Secret into
//! emptyDirs with mode 0600 (PostgreSQL refuses a key others can read). The namespace enforces
//! the restricted profile; a default-deny NetworkPolicy and one allow per service let in only
//! the clients the profile names. Secrets go to their own file, 0600 and git-ignored.
//!
//! Pure: the profile and the stack directory's files in, YAML out; byte-identical for the same
//! input.

use std::collections::BTreeMap;

use anyhow::Context as _;
use base64::Engine as _;
use serde_json::{Value, json};

use crate::containers::{self, ContainerSpec};
use crate::layout::{KubeFile, StackFile};
use crate::profile::{DataMode, Profile, Service};
use crate::secrets::Secret;

/// Marks the pods of the stack's namespace that may connect to the servers.
pub const CLIENT_LABEL: &str = "hardstack.io/client";
/// Where the init container finds the public and the private files.
const PUBLIC: &str = "/hardstack/public";
const PRIVATE: &str = "/hardstack/private";
/// Where the init container writes into the server's volumes.
const DESTINATION: &str = "/hardstack/volumes";

/// One rendered file of the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub file: KubeFile,
    pub content: String,
}

/// Renders the kustomize directory. `read` gives the content of a file of the stack directory
/// by its path. With `aws` (the aws store's values and how to fetch each), no password, key or
/// verifier of the store is carried: the files that hold one are made in the cluster by
/// External Secrets Operator from AWS Secrets Manager; `secrets.yaml` keeps the TLS keys only.
pub fn render(
    profile: &Profile,
    read: &dyn Fn(&str) -> anyhow::Result<Vec<u8>>,
    aws: Option<&[Substitution]>,
) -> anyhow::Result<Vec<Rendered>> {
    let namespace = profile.kubernetes_namespace().to_owned();
    // PostgreSQL's node 0 is the primary here (switchover and failover are `up`'s, on a Docker
    // engine); Redis's is the one the stack records, which the Sentinels watch.
    let mut specs = containers::container_specs(profile);
    specs.extend(crate::replica::nodes(profile).filter(|n| *n > 0).map(|node| crate::replica::spec(profile, node)));
    specs.extend(crate::sentinel::specs(profile));
    specs.extend(crate::peers::specs(profile));
    let mut files = Vec::new();
    let mut secrets = Vec::new();
    let mut external = Vec::new();
    for spec in &specs {
        let (public, mut private) = split_files(spec, read)?;
        let templated = match aws {
            Some(substitutions) => take_templated(&mut private, substitutions),
            None => BTreeMap::new(),
        };
        if !templated.is_empty() {
            external.push(external_secret(profile, spec, &namespace, &templated));
        }
        files.push(Rendered {
            file: kube_file(spec),
            content: yaml(&service_resources(profile, spec, &namespace, &public, !templated.is_empty()))?,
        });
        secrets.push(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata(profile, &spec.alias, &format!("{}-files", spec.alias), &namespace),
            "type": "Opaque",
            "data": private.iter().map(|(k, v)| (k.clone(), Value::String(base64::engine::general_purpose::STANDARD.encode(v)))).collect::<serde_json::Map<_, _>>(),
        }));
    }
    files.push(Rendered { file: KubeFile::Secrets, content: yaml(&secrets)? });
    if !external.is_empty() {
        let mut documents = vec![secret_store(profile, &namespace)];
        documents.extend(external);
        files.push(Rendered { file: KubeFile::ExternalSecrets, content: yaml(&documents)? });
    }
    files.push(Rendered { file: KubeFile::Namespace, content: yaml(&[namespace_resource(profile, &namespace)])? });
    files.push(Rendered {
        file: KubeFile::NetworkPolicies,
        content: yaml(&network_policies(profile, &specs, &namespace))?,
    });
    let mut resources: Vec<String> =
        [KubeFile::Namespace, KubeFile::NetworkPolicies].iter().map(|f| f.name()).collect();
    resources.extend(specs.iter().map(|s| kube_file(s).name()));
    resources.push(KubeFile::Secrets.name());
    if files.iter().any(|f| f.file == KubeFile::ExternalSecrets) {
        resources.push(KubeFile::ExternalSecrets.name());
    }
    let kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": namespace,
        "resources": resources,
    });
    files.push(Rendered { file: KubeFile::Kustomization, content: yaml(&[kustomization])? });
    files.push(Rendered {
        file: KubeFile::GitIgnore,
        content: format!("# Generated by hardstack: the Secrets stay out of git.\n{}\n", KubeFile::Secrets.name()),
    });
    files.push(Rendered {
        file: KubeFile::YamlLint,
        content: "# yamllint's configuration for this directory. Generated by hardstack.\n\
                  ---\n\
                  extends: default\n\
                  rules:\n  \
                    # The configuration files a ConfigMap or Secret carries keep their own lines.\n  \
                    line-length: disable\n  \
                    # Sequences are written flush with their key, the same way throughout.\n  \
                    indentation:\n    indent-sequences: consistent\n"
            .to_owned(),
    });
    files.sort_by_key(|f| f.file);
    Ok(files)
}

/// The file of a spec's resources: its service's, or a node's own beyond node 0 (a PostgreSQL
/// or Redis replica, a Sentinel, a Qdrant peer).
fn kube_file(spec: &ContainerSpec) -> KubeFile {
    let node = crate::replica::node(spec).or_else(|| crate::sentinel::node(spec)).or_else(|| crate::peers::node(spec));
    match node {
        Some(node) if node > 0 => KubeFile::Node(spec.service, node),
        _ => KubeFile::Service(spec.service),
    }
}

/// The YAML documents of a file, each after `---`, with hardstack's header.
fn yaml(documents: &[Value]) -> anyhow::Result<String> {
    let mut out = String::from(
        "# Generated by hardstack (init --target kubernetes) from the stack's profile: edit the\n# profile and run init again, not this file.\n",
    );
    for document in documents {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(document).context("writing YAML")?);
    }
    Ok(out)
}

/// A workload's labels: its name is the spec's alias (`postgres`, a replica's `postgres-1`, so
/// the `postgres` Service selects the primary only).
fn labels(profile: &Profile, name: &str) -> Value {
    json!({
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/instance": profile.stack.name,
        "app.kubernetes.io/managed-by": "hardstack",
    })
}

fn selector(profile: &Profile, name: &str) -> Value {
    json!({ "app.kubernetes.io/name": name, "app.kubernetes.io/instance": profile.stack.name })
}

/// A resource's metadata: its name, and the labels of the workload `workload` (an alias).
fn metadata(profile: &Profile, workload: &str, name: &str, namespace: &str) -> Value {
    json!({ "name": name, "namespace": namespace, "labels": labels(profile, workload) })
}

/// The key of a delivered file in its ConfigMap or Secret.
fn key(delivery: &containers::Delivery) -> String {
    data_key(&delivery.volume, &delivery.path)
}

/// The key of the file delivered into `volume` (its key, `postgres-config`) at `path`.
fn data_key(volume: &str, path: &str) -> String {
    format!("{volume}.{}", path.replace('/', "."))
}

/// The key under which the manifests carry a file of the stack directory, if a service the
/// profile runs receives it.
pub fn data_key_of(profile: &Profile, file: &StackFile) -> Option<String> {
    crate::layout::services(profile)
        .flat_map(|service| crate::layout::deliveries(profile, service).into_iter().map(move |d| (service, d)))
        .find(|(_, delivered)| &delivered.file == file)
        .map(|(service, delivered)| data_key(&delivered.volume.key(service), delivered.path))
}

/// The service's delivered files, public (ConfigMap) and private (Secret), by key.
type Files = BTreeMap<String, Vec<u8>>;

fn split_files(spec: &ContainerSpec, read: &dyn Fn(&str) -> anyhow::Result<Vec<u8>>) -> anyhow::Result<(Files, Files)> {
    let (mut public, mut private) = (Files::new(), Files::new());
    for delivery in &spec.deliveries {
        let source = delivery.file.path();
        let content = read(&source).with_context(|| format!("reading {source}"))?;
        if delivery.file.mode() == crate::layout::Mode::Private {
            private.insert(key(delivery), content)
        } else {
            public.insert(key(delivery), content)
        };
    }
    Ok((public, private))
}

fn namespace_resource(profile: &Profile, namespace: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": namespace,
            "labels": {
                "app.kubernetes.io/instance": profile.stack.name,
                "app.kubernetes.io/managed-by": "hardstack",
                // The cluster refuses a pod of this namespace that breaks the restricted profile.
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
                "pod-security.kubernetes.io/audit": "restricted",
                "pod-security.kubernetes.io/warn": "restricted",
            },
        },
    })
}

mod external_secrets;
mod network;
mod workloads;

pub use external_secrets::{Substitution, substitutions};
use external_secrets::{external_secret, secret_store, take_templated};
use network::network_policies;
use workloads::service_resources;

#[cfg(test)]
mod tests {
    use super::*;

    fn prod() -> Profile {
        crate::profile::load(&crate::profile::ProfileSource::Shipped("prod".into()), &[]).unwrap().profile
    }

    #[test]
    fn only_the_clients_the_profile_names_may_connect() {
        let mut profile = prod();
        profile.kubernetes.clients = vec![
            crate::profile::KubernetesClient {
                namespace: "shop".into(),
                pods: BTreeMap::from([("app".to_owned(), "web".to_owned())]),
            },
            crate::profile::KubernetesClient { namespace: "batch".into(), pods: BTreeMap::new() },
        ];
        let specs = containers::container_specs(&profile);
        let policies = network_policies(&profile, &specs, "hardstack-prod");
        let postgres = policies.iter().find(|p| p["metadata"]["name"] == "postgres-clients").unwrap();
        let peers = postgres["spec"]["ingress"][0]["from"].as_array().unwrap();
        // The profile's clients, then the stack's own: the pooler and the exporter.
        assert_eq!(peers.len(), 5, "{peers:?}");
        for (peer, service) in peers[3..].iter().zip([Service::Pgbouncer, Service::PostgresExporter]) {
            assert_eq!(peer["podSelector"]["matchLabels"], selector(&profile, service.name()));
        }
        // An exporter takes no client: Prometheus only.
        let exporter = policies.iter().find(|p| p["metadata"]["name"] == "postgres-exporter-clients").unwrap();
        assert_eq!(
            exporter["spec"]["ingress"][0]["from"],
            json!([{ "podSelector": { "matchLabels": selector(&profile, Service::Prometheus.name()) } }])
        );
        assert!(!policies.iter().any(|p| p["metadata"]["name"] == "postgres-exporter-from-clients"));
        assert_eq!(peers[0], json!({ "podSelector": { "matchLabels": { CLIENT_LABEL: "true" } } }));
        assert_eq!(
            peers[1],
            json!({
                "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "shop" } },
                "podSelector": { "matchLabels": { "app": "web" } },
            })
        );
        assert_eq!(
            peers[2],
            json!({ "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "batch" } } })
        );
        assert_eq!(postgres["spec"]["ingress"][0]["ports"], json!([{ "port": 5432, "protocol": "TCP" }]));
        let deny = policies.iter().find(|p| p["metadata"]["name"] == "default-deny").unwrap();
        assert_eq!(deny["spec"], json!({ "podSelector": {}, "policyTypes": ["Ingress", "Egress"] }));
    }

    #[test]
    fn a_namespace_that_is_no_dns_label_is_refused_naming_the_key() {
        let profile = prod();
        let mut bad = profile.clone();
        bad.kubernetes.namespace = "Hard_Stack".into();
        bad.kubernetes.clients = vec![crate::profile::KubernetesClient { namespace: "".into(), pods: BTreeMap::new() }];
        let problems = crate::profile::validate(&bad);
        let text = format!("{problems:?}");
        assert!(text.contains("kubernetes.namespace"), "{text}");
        assert!(text.contains("kubernetes.clients.0.namespace"), "{text}");
        assert!(crate::profile::validate(&profile).is_empty());
    }
}
