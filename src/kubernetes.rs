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
    let specs = containers::container_specs(profile);
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
            file: KubeFile::Service(spec.service),
            content: yaml(&service_resources(profile, spec, &namespace, &public, !templated.is_empty()))?,
        });
        secrets.push(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata(profile, spec.service, &format!("{}-files", spec.alias), &namespace),
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
    resources.extend(specs.iter().map(|s| KubeFile::Service(s.service).name()));
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

fn labels(profile: &Profile, service: Service) -> Value {
    json!({
        "app.kubernetes.io/name": service.name(),
        "app.kubernetes.io/instance": profile.stack.name,
        "app.kubernetes.io/managed-by": "hardstack",
    })
}

fn selector(profile: &Profile, service: Service) -> Value {
    json!({ "app.kubernetes.io/name": service.name(), "app.kubernetes.io/instance": profile.stack.name })
}

fn metadata(profile: &Profile, service: Service, name: &str, namespace: &str) -> Value {
    json!({ "name": name, "namespace": namespace, "labels": labels(profile, service) })
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
        let content = read(&delivery.source).with_context(|| format!("reading {}", delivery.source))?;
        let private_file = StackFile::parse(&delivery.source).is_none_or(|f| f.mode() == crate::layout::Mode::Private);
        if private_file {
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

/// A quantity of bytes (`1073741824` → `1Gi`).
fn quantity(bytes: u64) -> String {
    for (shift, unit) in [(40, "Ti"), (30, "Gi"), (20, "Mi"), (10, "Ki")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// The container security context every container of the stack has (restricted profile).
fn container_security() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "privileged": false,
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
        "capabilities": { "drop": ["ALL"] },
        "seccompProfile": { "type": "RuntimeDefault" },
    })
}

/// The volume claims of a spec's data volumes (PostgreSQL's data and WAL, Redis's and Qdrant's
/// data): its named volumes that are neither delivered into nor read-only.
fn claimed(spec: &ContainerSpec) -> Vec<&containers::VolumeMount> {
    spec.volumes.iter().filter(|v| v.key.ends_with("-data") || v.key.ends_with("-wal")).collect()
}

fn service_resources(
    profile: &Profile,
    spec: &ContainerSpec,
    namespace: &str,
    public: &Files,
    external: bool,
) -> Vec<Value> {
    let service = spec.service;
    let name = spec.alias.as_str();
    let uid = service.uid();
    let port = spec.container_port;
    let limits = profile.resources.of(service);
    let millicores = ((limits.cpus * 1000.0).round() as u64).max(1);
    let resources = json!({
        "limits": { "cpu": format!("{millicores}m"), "memory": quantity(limits.memory.0) },
        "requests": { "cpu": format!("{millicores}m"), "memory": quantity(limits.memory.0) },
    });

    // Volumes: claims for the data, emptyDirs for what is delivered and for tmpfs.
    let claims = claimed(spec);
    let mut volumes = vec![
        json!({ "name": "public", "configMap": { "name": format!("{name}-config"), "defaultMode": 0o400 } }),
        private_volume(name, external),
    ];
    let mut mounts = Vec::new();
    for volume in &spec.volumes {
        if !claims.iter().any(|c| c.key == volume.key) {
            volumes.push(json!({ "name": volume.key, "emptyDir": {} }));
        }
        mounts.push(json!({ "name": volume.key, "mountPath": volume.target, "readOnly": volume.read_only }));
    }
    // A host directory of the engine (PostgreSQL's WAL archive) is a volume claim of its own.
    for bind in &spec.binds {
        mounts.push(json!({ "name": bind_claim(spec, bind), "mountPath": bind.target, "readOnly": false }));
    }
    for (index, tmpfs) in spec.tmpfs.iter().enumerate() {
        let key = format!("tmpfs-{index}");
        volumes.push(json!({ "name": key, "emptyDir": { "medium": "Memory" } }));
        mounts.push(json!({ "name": key, "mountPath": tmpfs.target }));
    }

    // The init container: every delivered file with mode 0600, owned by the server's uid it
    // runs as; the directories the server needs in its volumes.
    let mut script = String::from("set -e\numask 077\n");
    // A volume's root is the kubelet's (root, group fsGroup); what is below is the server's.
    let mut made: std::collections::BTreeSet<String> =
        spec.volumes.iter().map(|v| format!("{DESTINATION}/{}", v.key)).collect();
    let mut init_mounts = vec![
        json!({ "name": "public", "mountPath": PUBLIC, "readOnly": true }),
        json!({ "name": "private", "mountPath": PRIVATE, "readOnly": true }),
    ];
    let mut init_volumes = std::collections::BTreeSet::new();
    for delivery in &spec.deliveries {
        let destination = format!("{DESTINATION}/{}/{}", delivery.volume, delivery.path);
        if let Some((parent, _)) = destination.rsplit_once('/')
            && made.insert(parent.to_owned())
        {
            script.push_str(&format!("install -d -m 0700 {parent}\n"));
        }
        // What is not in the ConfigMap is in a Secret.
        let source = if public.contains_key(&key(delivery)) { PUBLIC } else { PRIVATE };
        script.push_str(&format!("install -m {} {source}/{} {destination}\n", delivery.mode, key(delivery)));
        init_volumes.insert(delivery.volume.clone());
    }
    for directory in &spec.directories {
        script.push_str(&format!("install -d -m 0700 {DESTINATION}/{}/{}\n", directory.volume, directory.path));
        init_volumes.insert(directory.volume.clone());
    }
    for volume in &init_volumes {
        init_mounts.push(json!({ "name": volume, "mountPath": format!("{DESTINATION}/{volume}") }));
    }

    // The server: the spec's command, environment and healthcheck.
    let mut environment: Vec<Value> = spec.environment.iter().map(|(k, v)| json!({ "name": k, "value": v })).collect();
    let mut args = spec.command.clone();
    if service == Service::Postgres {
        if profile.postgres.data == DataMode::Volume {
            // A volume claim's root holds lost+found: the data directory is below it.
            environment.push(json!({ "name": "PGDATA", "value": format!("{}/pgdata", POSTGRES_DATA) }));
        }
        // The pod's own name resolves to its address (/etc/hosts); the Service's name does not.
        args.extend(["-c".to_owned(), format!("listen_addresses=localhost, {name}-0")]);
    }
    let probe = |period: u32, failures: u32| {
        json!({
            "exec": { "command": ["/bin/sh", "-c", spec.healthcheck] },
            "periodSeconds": period,
            "timeoutSeconds": 5,
            "failureThreshold": failures,
        })
    };
    let mut container = json!({
        "name": name,
        "image": spec.image,
        "imagePullPolicy": "Always",
        "args": args,
        "env": environment,
        "ports": [{ "name": name, "containerPort": port, "protocol": "TCP" }],
        "resources": resources,
        "securityContext": container_security(),
        "volumeMounts": mounts,
        // Initdb and first start may take minutes; then the same check every 10 s.
        "startupProbe": probe(5, 60),
        "readinessProbe": probe(10, 3),
        "livenessProbe": probe(20, 6),
    });
    if let Some(entrypoint) = &spec.entrypoint {
        container["command"] = json!(entrypoint);
    }
    let init = json!({
        "name": "deliver",
        "image": spec.image,
        "imagePullPolicy": "Always",
        "command": ["/bin/sh", "-c", script],
        "resources": {
            "limits": { "cpu": "100m", "memory": "64Mi" },
            "requests": { "cpu": "100m", "memory": "64Mi" },
        },
        "securityContext": container_security(),
        "volumeMounts": init_mounts,
    });

    let mut annotations = serde_json::Map::new();
    // checkov's reasons are kept next to the resource they concern.
    annotations.insert(
        "checkov.io/skip1".into(),
        json!(format!("CKV_K8S_40=runs as the image's own uid {uid}, which owns the server's files; runAsNonRoot holds and no host uid is involved")),
    );
    if !spec.image.contains("@sha256:") {
        annotations.insert(
            "checkov.io/skip2".into(),
            json!("CKV_K8S_43=the profile names the image by tag; write images.<service> as name@sha256:<digest> to pin it"),
        );
    }
    let mut statefulset_metadata = metadata(profile, service, name, namespace);
    statefulset_metadata["annotations"] = Value::Object(annotations);
    let claim_names =
        claims.iter().map(|volume| volume.key.clone()).chain(spec.binds.iter().map(|bind| bind_claim(spec, bind)));
    let claim_templates: Vec<Value> = claim_names
        .map(|claim| {
            let size = profile.kubernetes.storage.of(service).0;
            let size = if claim.ends_with("-data") { size } else { size / 4 };
            let mut claim_spec = json!({
                "accessModes": ["ReadWriteOnce"],
                "resources": { "requests": { "storage": quantity(size) } },
            });
            if !profile.kubernetes.storage_class.is_empty() {
                claim_spec["storageClassName"] = json!(profile.kubernetes.storage_class);
            }
            json!({ "metadata": { "name": claim, "labels": labels(profile, service) }, "spec": claim_spec })
        })
        .collect();
    let statefulset = json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": statefulset_metadata,
        "spec": {
            "serviceName": format!("{name}-headless"),
            "replicas": 1,
            "selector": { "matchLabels": selector(profile, service) },
            "template": {
                "metadata": { "labels": labels(profile, service) },
                "spec": {
                    "serviceAccountName": name,
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": uid,
                        "runAsGroup": uid,
                        "fsGroup": uid,
                        "fsGroupChangePolicy": "OnRootMismatch",
                        "seccompProfile": { "type": "RuntimeDefault" },
                    },
                    "initContainers": [init],
                    "containers": [container],
                    "volumes": volumes,
                },
            },
            "volumeClaimTemplates": claim_templates,
        },
    });
    let text = |files: &Files| -> serde_json::Map<String, Value> {
        files.iter().map(|(k, v)| (k.clone(), Value::String(String::from_utf8_lossy(v).into_owned()))).collect()
    };
    vec![
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": metadata(profile, service, name, namespace),
            "automountServiceAccountToken": false,
        }),
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(profile, service, &format!("{name}-config"), namespace),
            "data": text(public),
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(profile, service, name, namespace),
            "spec": {
                "type": "ClusterIP",
                "selector": selector(profile, service),
                "ports": [{ "name": name, "port": port, "targetPort": port, "protocol": "TCP" }],
            },
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(profile, service, &format!("{name}-headless"), namespace),
            "spec": {
                "clusterIP": "None",
                "selector": selector(profile, service),
                "ports": [{ "name": name, "port": port, "targetPort": port, "protocol": "TCP" }],
            },
        }),
        statefulset,
        json!({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": metadata(profile, service, name, namespace),
            // One replica holding the data: a drain waits for the operator rather than evict it.
            "spec": { "minAvailable": 1, "selector": { "matchLabels": selector(profile, service) } },
        }),
    ]
}

/// The private files: the service's Secret, and with the aws store the Secret External Secrets
/// Operator makes, projected together.
fn private_volume(name: &str, external: bool) -> Value {
    if !external {
        return json!({ "name": "private", "secret": { "secretName": format!("{name}-files"), "defaultMode": 0o400 } });
    }
    json!({
        "name": "private",
        "projected": {
            "defaultMode": 0o400,
            "sources": [
                { "secret": { "name": format!("{name}-files") } },
                { "secret": { "name": format!("{name}-credentials") } },
            ],
        },
    })
}

/// A value of the aws store as it appears in the rendered files, and how External Secrets
/// Operator fetches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Substitution {
    /// The literal in the rendered files (a password, a SCRAM verifier, `#<sha256>` of a
    /// password): a `Secret`, so a debug print redacts it.
    pub literal: Secret,
    /// The template expression that makes it in the cluster.
    pub expression: String,
    /// The ExternalSecret's data key.
    pub alias: String,
    /// The secret's name in AWS Secrets Manager (with the profile's prefix).
    pub remote: String,
    /// `password` or `scram_verifier`.
    pub property: &'static str,
    /// `AWSCURRENT`, `AWSPREVIOUS` or `AWSPENDING`.
    pub stage: &'static str,
}

/// The substitutions for the aws store's versions (current, and the previous or pending ones
/// the servers still accept).
pub fn substitutions(profile: &Profile, versions: &crate::secrets::store::Versions) -> Vec<Substitution> {
    let mut all = Vec::new();
    let mut add = |name: &str, version: &crate::secrets::store::SecretVersion, stage: &'static str| {
        let alias = format!("{}_{}", name.replace(['/', '-'], "_"), stage.trim_start_matches("AWS").to_lowercase());
        let remote = format!("{}{name}", profile.secrets.aws.prefix);
        if let Some(verifier) = &version.verifier {
            all.push(Substitution {
                literal: verifier.clone(),
                expression: format!("{{{{ .{alias}_verifier }}}}"),
                alias: format!("{alias}_verifier"),
                remote: remote.clone(),
                property: "scram_verifier",
                stage,
            });
        }
        if name.starts_with("redis/") {
            all.push(Substitution {
                literal: Secret::new(format!("#{}", crate::secrets::redis_acl_hash(&version.value))),
                expression: format!("#{{{{ .{alias} | sha256sum }}}}"),
                alias: alias.clone(),
                remote: remote.clone(),
                property: "password",
                stage,
            });
        }
        all.push(Substitution {
            literal: version.value.clone(),
            expression: format!("{{{{ .{alias} }}}}"),
            alias,
            remote,
            property: "password",
            stage,
        });
    };
    for (name, version) in &versions.current {
        add(name, version, "AWSCURRENT");
    }
    for (name, version) in versions.redis_previous.iter().chain(&versions.postgres_previous) {
        add(name, version, "AWSPREVIOUS");
    }
    if let Some(version) = &versions.qdrant_previous {
        add(crate::layout::QDRANT_API_KEY, version, "AWSPREVIOUS");
    }
    if let Some(version) = &versions.qdrant_pending {
        add(crate::layout::QDRANT_API_KEY, version, "AWSPENDING");
    }
    // Longest first: a literal never hides inside a longer one.
    all.sort_by(|a, b| b.literal.expose().len().cmp(&a.literal.expose().len()).then(a.alias.cmp(&b.alias)));
    all
}

/// A private file made by External Secrets Operator: its template, and what it fetches.
#[derive(Debug, Clone)]
struct Templated {
    text: String,
    used: Vec<Substitution>,
}

/// Moves out of `private` every file that holds a value of the store, as a template.
fn take_templated(private: &mut Files, substitutions: &[Substitution]) -> BTreeMap<String, Templated> {
    let mut templated = BTreeMap::new();
    let keys: Vec<String> = private.keys().cloned().collect();
    for key in keys {
        let text = String::from_utf8_lossy(&private[&key]).into_owned();
        let used: Vec<Substitution> =
            substitutions.iter().filter(|s| text.contains(s.literal.expose())).cloned().collect();
        if used.is_empty() {
            continue;
        }
        let mut template = text.replace("{{", "{{ \"{{\" }}");
        for substitution in &used {
            template = template.replace(substitution.literal.expose(), &substitution.expression);
        }
        private.remove(&key);
        templated.insert(key, Templated { text: template, used });
    }
    templated
}

/// The SecretStore of the aws store's region, reached with the cluster's own AWS identity.
fn secret_store(profile: &Profile, namespace: &str) -> Value {
    json!({
        "apiVersion": "external-secrets.io/v1beta1",
        "kind": "SecretStore",
        "metadata": {
            "name": "hardstack-aws",
            "namespace": namespace,
            "labels": { "app.kubernetes.io/instance": profile.stack.name, "app.kubernetes.io/managed-by": "hardstack" },
        },
        "spec": {
            "provider": {
                "aws": {
                    "service": "SecretsManager",
                    "region": profile.secrets.aws.region,
                    // IRSA or Pod Identity: the ServiceAccount the operator acts as, which the
                    // cluster's operator binds to a role that may read the prefix.
                    "auth": { "jwt": { "serviceAccountRef": { "name": "hardstack-external-secrets" } } },
                },
            },
        },
    })
}

/// The ExternalSecret that makes a service's password-bearing files from AWS Secrets Manager.
fn external_secret(
    profile: &Profile,
    spec: &ContainerSpec,
    namespace: &str,
    templated: &BTreeMap<String, Templated>,
) -> Value {
    let mut data: BTreeMap<String, Value> = BTreeMap::new();
    for substitution in templated.values().flat_map(|t| &t.used) {
        data.insert(
            substitution.alias.clone(),
            json!({
                "secretKey": substitution.alias,
                "remoteRef": { "key": substitution.remote, "property": substitution.property, "version": substitution.stage },
            }),
        );
    }
    json!({
        "apiVersion": "external-secrets.io/v1beta1",
        "kind": "ExternalSecret",
        "metadata": metadata(profile, spec.service, &format!("{}-credentials", spec.alias), namespace),
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": { "name": "hardstack-aws", "kind": "SecretStore" },
            "target": {
                "name": format!("{}-credentials", spec.alias),
                "creationPolicy": "Owner",
                "template": {
                    "engineVersion": "v2",
                    "type": "Opaque",
                    "data": templated.iter().map(|(k, t)| (k.clone(), Value::String(t.text.clone()))).collect::<serde_json::Map<_, _>>(),
                },
            },
            "data": data.into_values().collect::<Vec<_>>(),
        },
    })
}

/// The volume claim that stands for a host directory of the engine (`postgres-archive`).
fn bind_claim(spec: &ContainerSpec, bind: &containers::BindMount) -> String {
    let index = spec.binds.iter().position(|b| b == bind).unwrap_or(0);
    if index == 0 { format!("{}-archive", spec.alias) } else { format!("{}-archive-{index}", spec.alias) }
}

/// Where PostgreSQL's data volume is mounted.
const POSTGRES_DATA: &str = "/var/lib/postgresql/data";

fn network_policies(profile: &Profile, specs: &[ContainerSpec], namespace: &str) -> Vec<Value> {
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
        assert_eq!(peers.len(), 3, "{peers:?}");
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
