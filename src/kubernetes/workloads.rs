//! Each service's workload: a ServiceAccount, a ConfigMap, a client and a headless Service, a
//! StatefulSet with the restricted posture and its claims, and a PodDisruptionBudget.

use super::*;

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
/// Kubernetes' name of a seccomp profile.
fn seccomp(posture: &containers::Posture) -> &'static str {
    match posture.seccomp {
        containers::Seccomp::RuntimeDefault => "RuntimeDefault",
    }
}

fn container_security(posture: &containers::Posture) -> Value {
    json!({
        "allowPrivilegeEscalation": !posture.no_new_privileges,
        "privileged": false,
        "readOnlyRootFilesystem": posture.read_only_root,
        "runAsNonRoot": true,
        "capabilities": { "drop": posture.cap_drop },
        "seccompProfile": { "type": seccomp(posture) },
    })
}

/// The volume claims of a spec's data volumes (PostgreSQL's data and WAL, Redis's and Qdrant's
/// data): its named volumes that are neither delivered into nor read-only.
fn claimed(spec: &ContainerSpec) -> Vec<&containers::VolumeMount> {
    spec.volumes.iter().filter(|v| v.key.ends_with("-data") || v.key.ends_with("-wal")).collect()
}

/// The resources of one service: its ServiceAccount, ConfigMap, client and headless Services,
/// StatefulSet and PodDisruptionBudget.
pub(super) fn service_resources(
    profile: &Profile,
    spec: &ContainerSpec,
    namespace: &str,
    public: &Files,
    external: bool,
) -> Vec<Value> {
    let name = spec.alias.as_str();
    let ports: Vec<Value> = spec
        .ports()
        .into_iter()
        .map(|(name, port)| json!({ "name": name, "port": port, "targetPort": port, "protocol": "TCP" }))
        .collect();
    let text = |files: &Files| -> serde_json::Map<String, Value> {
        files.iter().map(|(k, v)| (k.clone(), Value::String(String::from_utf8_lossy(v).into_owned()))).collect()
    };
    vec![
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": metadata(profile, name, name, namespace),
            "automountServiceAccountToken": false,
        }),
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(profile, name, &format!("{name}-config"), namespace),
            "data": text(public),
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(profile, name, name, namespace),
            "spec": {
                "type": "ClusterIP",
                "selector": selector(profile, name),
                "ports": ports,
            },
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(profile, name, &format!("{name}-headless"), namespace),
            "spec": {
                "clusterIP": "None",
                "selector": selector(profile, name),
                "ports": ports,
            },
        }),
        statefulset(profile, spec, namespace, public, external),
        json!({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": metadata(profile, name, name, namespace),
            // One replica holding the data: a drain waits for the operator rather than evict it.
            "spec": { "minAvailable": 1, "selector": { "matchLabels": selector(profile, name) } },
        }),
    ]
}

/// The StatefulSet: the pod's restricted security context, the init container that delivers
/// the files, the server, its volumes and claims.
fn statefulset(profile: &Profile, spec: &ContainerSpec, namespace: &str, public: &Files, external: bool) -> Value {
    let service = spec.service;
    let name = spec.alias.as_str();
    let uid = service.uid();
    let (volumes, mounts) = pod_volumes(spec, external);
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
    let mut statefulset_metadata = metadata(profile, name, name, namespace);
    statefulset_metadata["annotations"] = Value::Object(annotations);
    let mut statefulset = json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": statefulset_metadata,
        "spec": {
            "serviceName": format!("{name}-headless"),
            "replicas": 1,
            "selector": { "matchLabels": selector(profile, name) },
            "template": {
                "metadata": { "labels": labels(profile, name) },
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
                        "seccompProfile": { "type": seccomp(&spec.posture) },
                    },
                    "initContainers": init_containers(profile, spec, public, &mounts),
                    "containers": [server_container(profile, spec, mounts)],
                    "volumes": volumes,
                },
            },
            "volumeClaimTemplates": claim_templates(profile, spec),
        },
    });
    if let Some(dns) = dns_config(spec) {
        statefulset["spec"]["template"]["spec"]["dnsConfig"] = dns;
    }
    statefulset
}

/// The pod's resolver options (Redis's and the Sentinels' where replicas run: a name that is
/// gone fails within a second), as the compose file's `dns_opt`.
fn dns_config(spec: &ContainerSpec) -> Option<Value> {
    if spec.dns_options.is_empty() {
        return None;
    }
    let options: Vec<Value> = spec
        .dns_options
        .iter()
        .map(|option| match option.split_once(':') {
            Some((name, value)) => json!({ "name": name, "value": value }),
            None => json!({ "name": option }),
        })
        .collect();
    Some(json!({ "options": options }))
}

/// The pod's volumes (claims for the data, emptyDirs for what is delivered and for tmpfs) and
/// the server's mounts of them.
fn pod_volumes(spec: &ContainerSpec, external: bool) -> (Vec<Value>, Vec<Value>) {
    let name = spec.alias.as_str();
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
    (volumes, mounts)
}

/// The init containers: the delivery of the files, then for a PostgreSQL replica its first copy.
fn init_containers(profile: &Profile, spec: &ContainerSpec, public: &Files, mounts: &[Value]) -> Vec<Value> {
    let mut containers = vec![deliver_container(spec, public)];
    if let Some(node) = crate::replica::node(spec).filter(|node| *node > 0) {
        containers.push(copy_container(profile, spec, node, mounts));
    }
    containers
}

/// A PostgreSQL replica's first copy, as `up` makes it on a Docker engine: where its data
/// claim holds no data directory yet, `pg_basebackup` from the primary's Service over the
/// replica's slot, as `streaming_replica` with its certificate and pgpass file (delivered into
/// its config volume by the container before), then `standby.signal`. A claim that holds a
/// copy keeps it.
fn copy_container(profile: &Profile, spec: &ContainerSpec, node: u8, mounts: &[Value]) -> Value {
    let data = format!("{POSTGRES_DATA}/pgdata");
    let wal = format!("{}/pg/pg_wal", containers::POSTGRES_WAL_MOUNT);
    let conninfo = format!("{} replication=true application_name={}", crate::replica::conninfo(profile), spec.alias);
    let script = format!(
        "set -eu
         if [ -s {data}/PG_VERSION ]; then exit 0; fi
         rm -rf {data} {wal}
         pg_basebackup -d \"{conninfo}\" -D {data} --waldir={wal} -X stream -S {slot} -c fast --no-password --no-manifest
         touch {data}/standby.signal
",
        slot = crate::layout::replica_slot(node),
    );
    json!({
        "name": "copy",
        "image": spec.image,
        "imagePullPolicy": "Always",
        "command": ["/bin/sh", "-c", script],
        "resources": container_resources(profile, spec),
        "securityContext": container_security(&spec.posture),
        "volumeMounts": mounts,
    })
}

/// The init container: every delivered file with mode 0600, owned by the server's uid it runs
/// as; the directories the server needs in its volumes.
fn deliver_container(spec: &ContainerSpec, public: &Files) -> Value {
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
    json!({
        "name": "deliver",
        "image": spec.image,
        "imagePullPolicy": "Always",
        "command": ["/bin/sh", "-c", script],
        "resources": {
            "limits": { "cpu": "100m", "memory": "64Mi" },
            "requests": { "cpu": "100m", "memory": "64Mi" },
        },
        "securityContext": container_security(&spec.posture),
        "volumeMounts": init_mounts,
    })
}

/// The server: the spec's command, environment, limits and healthcheck (as startup, readiness
/// and liveness probes).
fn server_container(profile: &Profile, spec: &ContainerSpec, mounts: Vec<Value>) -> Value {
    let name = spec.alias.as_str();
    let resources = container_resources(profile, spec);
    let mut environment: Vec<Value> = spec.environment.iter().map(|(k, v)| json!({ "name": k, "value": v })).collect();
    let mut args = spec.command.clone();
    if spec.service == Service::Postgres {
        if profile.postgres.data == DataMode::Volume {
            // A volume claim's root holds lost+found: the data directory is below it.
            environment.push(json!({ "name": "PGDATA", "value": format!("{}/pgdata", POSTGRES_DATA) }));
        }
        // The pod's own name resolves to its address (/etc/hosts); the Service's name does not.
        args.extend(["-c".to_owned(), format!("listen_addresses=localhost, {name}-0")]);
    }
    // A Redis node that is not the primary starts as its replica: no `up` points it there.
    // The Sentinels then move the roles as on a Docker engine.
    let primary = profile.redis.primary_node();
    if spec.service == Service::Redis && crate::sentinel::node(spec).is_some_and(|node| node != primary) {
        let primary = crate::sentinel::alias(Service::Redis, primary);
        args.extend(["--replicaof".to_owned(), primary, Service::Redis.container_port().to_string()]);
    }
    // A monitoring service's healthcheck is its port open, which the kubelet checks itself
    // (the upstream images have no shell that opens a socket).
    let check = match spec.port_check() {
        Some(port) => json!({ "tcpSocket": { "port": port } }),
        None => json!({ "exec": { "command": ["/bin/sh", "-c", spec.healthcheck] } }),
    };
    let probe = |period: u32, failures: u32| {
        let mut probe = check.clone();
        probe["periodSeconds"] = json!(period);
        probe["timeoutSeconds"] = json!(5);
        probe["failureThreshold"] = json!(failures);
        probe
    };
    let mut container = json!({
        "name": name,
        "image": spec.image,
        "imagePullPolicy": "Always",
        "args": args,
        "env": environment,
        "ports": spec.ports().into_iter().map(|(name, port)| json!({ "name": name, "containerPort": port, "protocol": "TCP" })).collect::<Vec<_>>(),
        "resources": resources,
        "securityContext": container_security(&spec.posture),
        "volumeMounts": mounts,
        // Initdb and first start may take minutes; then the same check every 10 s.
        "startupProbe": probe(5, 60),
        "readinessProbe": probe(10, 3),
        "livenessProbe": probe(20, 6),
    });
    if let Some(entrypoint) = &spec.entrypoint {
        container["command"] = json!(entrypoint);
    }
    container
}

/// The server's CPU and memory, requested as much as limited.
fn container_resources(profile: &Profile, spec: &ContainerSpec) -> Value {
    let limits = profile.resources.of(spec.service);
    let millicores = ((limits.cpus * 1000.0).round() as u64).max(1);
    json!({
        "limits": { "cpu": format!("{millicores}m"), "memory": quantity(limits.memory.0) },
        "requests": { "cpu": format!("{millicores}m"), "memory": quantity(limits.memory.0) },
    })
}

/// The volume claims: the data (and the WAL) at the profile's size, a host directory's stand-in
/// at a quarter of it.
fn claim_templates(profile: &Profile, spec: &ContainerSpec) -> Vec<Value> {
    let service = spec.service;
    let claim_names = claimed(spec)
        .into_iter()
        .map(|volume| volume.key.clone())
        .chain(spec.binds.iter().map(|bind| bind_claim(spec, bind)));
    claim_names
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
            json!({ "metadata": { "name": claim, "labels": labels(profile, &spec.alias) }, "spec": claim_spec })
        })
        .collect()
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

/// The volume claim that stands for a host directory of the engine (`postgres-archive`).
fn bind_claim(spec: &ContainerSpec, bind: &containers::BindMount) -> String {
    let index = spec.binds.iter().position(|b| b == bind).unwrap_or(0);
    if index == 0 { format!("{}-archive", spec.alias) } else { format!("{}-archive-{index}", spec.alias) }
}

/// Where PostgreSQL's data volume is mounted.
const POSTGRES_DATA: &str = "/var/lib/postgresql/data";
