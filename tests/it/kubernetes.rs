//! The Kubernetes target: every shipped profile's manifests pass kubernetes-validate --strict
//! (oldest and newest schemas it ships), checkov and yamllint; re-rendering is byte-identical;
//! Secrets stay in their own private, git-ignored file; and the posture is the one compose and
//! `up` have, field by field.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

use crate::common::{Sandbox, text};

const PROFILES: [&str; 3] = ["dev", "test", "prod"];
/// The oldest and the newest Kubernetes versions kubernetes-validate 1.37 ships schemas for.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.25.0", "1.37.0"];

/// A validator from .ci/setup's virtualenv, or from PATH; `None` (and a loud skip, or a failure
/// under CI) when it is not installed.
pub fn validator(name: &str) -> Option<PathBuf> {
    let installed = Path::new("/opt/hardstack-k8s/bin").join(name);
    if installed.is_file() {
        return Some(installed);
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|p| p.is_file()))
        .unwrap_or_default();
    if on_path.is_none() {
        assert!(std::env::var_os("CI").is_none(), "{name} is not installed, and CI needs it (.ci/setup installs it)");
        crate::common::skipped(&format!("{name} is not installed (.ci/setup installs it)"));
    }
    on_path
}

/// A stack directory of a shipped profile with its Kubernetes target.
fn rendered(profile: &str) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.init(&["--profile", profile, "--target", "kubernetes"]);
    sandbox
}

/// The resource files of the directory (not kustomization.yaml, which is kustomize's).
fn resource_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_profile_passes_kubernetes_validate_checkov_and_yamllint() {
    for profile in PROFILES {
        let sandbox = rendered(profile);
        if !validate_directory(&sandbox.stack().join("kubernetes"), profile) {
            return;
        }
    }
}

#[test]
fn prod_with_the_qdrant_front_passes_the_validators_and_only_the_front_reaches_qdrant() {
    let sandbox = Sandbox::new();
    let services = r#"stack.services=["postgres","redis","qdrant","qdrant-front","pgbouncer"]"#;
    sandbox.init(&["--profile", "prod", "--target", "kubernetes", "--set", services]);
    let dir = sandbox.stack().join("kubernetes");
    // The front's Service serves REST and gRPC.
    let front = documents(&dir.join("qdrant-front.yaml"));
    let service = front.iter().find(|d| d["kind"] == "Service" && d["metadata"]["name"] == "qdrant-front").unwrap();
    let ports: Vec<u64> =
        service["spec"]["ports"].as_sequence().unwrap().iter().map(|p| p["port"].as_u64().unwrap()).collect();
    assert_eq!(ports, [6333, 6334], "{service:?}");
    // Qdrant's ingress comes from its front and Prometheus's scrapes only, not from clients.
    let policies = documents(&dir.join("network-policies.yaml"));
    let qdrant = policies.iter().find(|p| p["metadata"]["name"] == "qdrant-clients").unwrap();
    let from = serde_yaml_ng::to_string(&qdrant["spec"]["ingress"][0]["from"]).unwrap();
    assert!(from.contains("qdrant-front") && !from.contains("namespaceSelector"), "{from}");
    assert!(!policies.iter().any(|p| p["metadata"]["name"] == "qdrant-from-clients"), "clients may reach Qdrant");
    validate_directory(&dir, "prod with qdrant-front");
}

#[test]
fn prod_with_replicas_renders_each_replica_with_its_copy_and_passes_the_validators() {
    let sandbox = Sandbox::new();
    sandbox.init(&["--profile", "prod", "--target", "kubernetes", "--set", "postgres.replicas=2"]);
    let dir = sandbox.stack().join("kubernetes");
    let kustomization = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
    assert!(kustomization.contains("postgres-1.yaml") && kustomization.contains("postgres-2.yaml"), "{kustomization}");
    // The `postgres` Service selects the primary's pods only; each replica has its own.
    let primary = documents(&dir.join("postgres.yaml"));
    let service = primary.iter().find(|d| d["kind"] == "Service" && d["metadata"]["name"] == "postgres").unwrap();
    assert_eq!(service["spec"]["selector"]["app.kubernetes.io/name"], "postgres", "{service:?}");
    let replica = documents(&dir.join("postgres-2.yaml"));
    let set = replica.iter().find(|d| d["kind"] == "StatefulSet").unwrap();
    assert_eq!(set["metadata"]["name"], "postgres-2");
    assert_eq!(set["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"], "postgres-2");
    // Its first copy: an init container after the delivery, pg_basebackup over its slot.
    let init = set["spec"]["template"]["spec"]["initContainers"].as_sequence().unwrap();
    let names: Vec<&str> = init.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["deliver", "copy"]);
    let script = init[1]["command"][2].as_str().unwrap();
    assert!(script.contains("pg_basebackup") && script.contains("-S postgres_2") && script.contains("standby.signal"));
    assert!(script.contains("sslmode=verify-full") && !script.contains("password="), "{script}");
    let args = serde_yaml_ng::to_string(&set["spec"]["template"]["spec"]["containers"][0]["args"]).unwrap();
    assert!(args.contains("primary_slot_name=postgres_2") && args.contains("listen_addresses=localhost, postgres-2-0"));
    // The replica's egress reaches the primary, whose ingress takes it.
    let policies = documents(&dir.join("network-policies.yaml"));
    let egress = policies.iter().find(|p| p["metadata"]["name"] == "postgres-2-upstreams").unwrap();
    assert_eq!(
        egress["spec"]["egress"][0]["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "postgres"
    );
    let ingress = policies.iter().find(|p| p["metadata"]["name"] == "postgres-clients").unwrap();
    assert!(serde_yaml_ng::to_string(&ingress["spec"]["ingress"][0]["from"]).unwrap().contains("postgres-2"));
    validate_directory(&dir, "prod with 2 replicas");
}

#[test]
fn prod_with_redis_replicas_renders_each_node_and_sentinel_and_passes_the_validators() {
    let sandbox = Sandbox::new();
    sandbox.init(&[
        "--profile",
        "prod",
        "--target",
        "kubernetes",
        "--set",
        "redis.replicas=2",
        "--set",
        "redis.sentinels=3",
    ]);
    let dir = sandbox.stack().join("kubernetes");
    let kustomization = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
    for file in ["redis.yaml", "redis-1.yaml", "redis-2.yaml", "redis-sentinel.yaml", "redis-sentinel-1.yaml"] {
        assert!(kustomization.contains(file), "{file}: {kustomization}");
    }
    // Node 0 is the primary; a replica starts as its replica, announcing its own Service name.
    let args = |file: &str| {
        let documents = documents(&dir.join(file));
        let set = documents.iter().find(|d| d["kind"] == "StatefulSet").unwrap().clone();
        (strings(&set["spec"]["template"]["spec"]["containers"][0]["args"]), set)
    };
    let (primary, _) = args("redis.yaml");
    assert!(!primary.contains(&"--replicaof".to_owned()), "{primary:?}");
    let (replica, set) = args("redis-2.yaml");
    assert!(replica.windows(3).any(|w| w == ["--replicaof", "redis", "6379"]), "{replica:?}");
    assert!(replica.windows(2).any(|w| w == ["--replica-announce-ip", "redis-2"]), "{replica:?}");
    let claims = &set["spec"]["volumeClaimTemplates"];
    assert_eq!(claims[0]["metadata"]["name"], "redis-2-data", "{claims:?}");
    // As the compose file's dns_opt: a node that is gone fails a lookup within a second.
    let options = serde_yaml_ng::to_string(&set["spec"]["template"]["spec"]["dnsConfig"]).unwrap();
    assert!(options.contains("name: timeout") && options.contains("value: '1'"), "{options}");
    // Each Sentinel announces its own Service name, waits a second more than the one before it
    // to mark the primary down, and copies the declared file into its (writable) config volume.
    let (sentinel, _) = args("redis-sentinel-1.yaml");
    assert!(sentinel.ends_with(&["redis-sentinel-1".into(), "6000".into()]), "{sentinel:?}");
    assert!(sentinel.iter().any(|a| a.contains("cp declared.conf sentinel.conf")), "{sentinel:?}");
    // Each Sentinel reaches every node and the other Sentinels; each node every other node.
    let policies = documents(&dir.join("network-policies.yaml"));
    let reaches = |policy: &str| -> Vec<String> {
        let policy = policies.iter().find(|p| p["metadata"]["name"] == policy).unwrap();
        let mut names: Vec<String> = policy["spec"]["egress"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|rule| {
                rule["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"].as_str().unwrap().to_owned()
            })
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        reaches("redis-sentinel-1-upstreams"),
        ["redis", "redis-1", "redis-2", "redis-sentinel", "redis-sentinel-2"]
    );
    assert_eq!(reaches("redis-1-upstreams"), ["redis", "redis-2"]);
    let ingress = policies.iter().find(|p| p["metadata"]["name"] == "redis-clients").unwrap();
    let from = serde_yaml_ng::to_string(&ingress["spec"]["ingress"][0]["from"]).unwrap();
    assert!(from.contains("redis-sentinel-2") && from.contains("redis-1"), "{from}");
    validate_directory(&dir, "prod with 2 Redis replicas and 3 Sentinels");
}

#[test]
fn prod_with_a_qdrant_cluster_renders_each_peer_and_passes_the_validators() {
    let sandbox = Sandbox::new();
    let sets = ["qdrant.nodes=3", "backup.required=false"];
    let mut args = vec!["--profile", "prod", "--target", "kubernetes"];
    args.extend(sets.iter().flat_map(|set| ["--set", set]));
    sandbox.init(&args);
    let dir = sandbox.stack().join("kubernetes");
    let kustomization = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
    for file in ["qdrant.yaml", "qdrant-1.yaml", "qdrant-2.yaml"] {
        assert!(kustomization.contains(file), "{file}: {kustomization}");
    }
    // Node 0 starts the cluster; each other peer joins through it, giving its own Service name.
    let peer = |file: &str| {
        let documents = documents(&dir.join(file));
        let set = documents.iter().find(|d| d["kind"] == "StatefulSet").unwrap().clone();
        let service = documents.iter().find(|d| d["kind"] == "Service").unwrap().clone();
        (strings(&set["spec"]["template"]["spec"]["containers"][0]["args"]), service)
    };
    let (first, _) = peer("qdrant.yaml");
    assert!(first.ends_with(&["--uri".into(), "https://qdrant:6335".into()]), "{first:?}");
    let (second, service) = peer("qdrant-2.yaml");
    let joins = ["--uri", "https://qdrant-2:6335", "--bootstrap", "https://qdrant:6335"];
    assert!(second.ends_with(&joins.map(str::to_owned)), "{second:?}");
    let ports = serde_yaml_ng::to_string(&service["spec"]["ports"]).unwrap();
    assert!(ports.contains("6335"), "{ports}");
    // The config every peer carries: the cluster, p2p over TLS, the internal API keyed.
    let config = std::fs::read_to_string(sandbox.stack().join("config/qdrant/config.yaml")).unwrap();
    for line in ["enabled: true", "enable_tls: true", "enforce_internal_auth: true", "replication_factor: 2"] {
        assert!(config.contains(line), "{line}: {config}");
    }
    // The p2p port is the peers' only: each reaches the others there, and no client does.
    let policies = documents(&dir.join("network-policies.yaml"));
    let policy = |name: &str| policies.iter().find(|p| p["metadata"]["name"] == name).unwrap().clone();
    let peers = serde_yaml_ng::to_string(&policy("qdrant-1-peers")["spec"]).unwrap();
    assert!(
        peers.contains("name: qdrant\n") && peers.contains("name: qdrant-2") && peers.contains("port: 6335"),
        "{peers}"
    );
    for policy in &policies {
        let name = policy["metadata"]["name"].as_str().unwrap();
        let text = serde_yaml_ng::to_string(policy).unwrap();
        assert!(name.ends_with("-peers") || !text.contains("6335"), "{name} opens the p2p port: {text}");
    }
    validate_directory(&dir, "prod with a Qdrant cluster of 3");
}

/// Runs the three validators over a rendered directory; `false` when they are not installed
/// (a loud skip, or a failure under CI). kubernetes-validate reads the resources of Kubernetes
/// itself: External Secrets Operator's resources are its CRDs, whose schemas it does not ship.
pub fn validate_directory(dir: &Path, label: &str) -> bool {
    let (Some(validate), Some(checkov), Some(yamllint)) =
        (validator("kubernetes-validate"), validator("checkov"), validator("yamllint"))
    else {
        return false;
    };
    let files = resource_files(dir);
    assert!(files.len() >= 5, "{label}: {files:?}");
    let core: Vec<&PathBuf> = files.iter().filter(|f| !f.ends_with("external-secrets.yaml")).collect();
    for version in KUBERNETES_VERSIONS {
        let out = std::process::Command::new(&validate).args(["-k", version, "--strict"]).args(&core).output().unwrap();
        assert!(out.status.success(), "{label}, Kubernetes {version}: {}", text(&out));
        assert!(!text(&out).contains("WARN"), "{label}, Kubernetes {version}: {}", text(&out));
    }
    // File by file: checkov leaves out directories whose name starts with a dot (.tmpXXXX).
    let mut command = std::process::Command::new(&checkov);
    for file in &files {
        command.arg("-f").arg(file);
    }
    let out = command
        .args(["--framework", "kubernetes", "--skip-download", "--compact"])
        .env("LOG_LEVEL", "ERROR")
        .output()
        .unwrap();
    let report = text(&out);
    assert!(out.status.success(), "{label}: checkov: {report}");
    assert!(report.contains("Failed checks: 0"), "{label}: checkov: {report}");
    // Every skip is written next to its resource, with its reason.
    for file in &files {
        let yaml = std::fs::read_to_string(file).unwrap();
        for line in yaml.lines().filter(|l| l.contains("checkov.io/skip")) {
            let (_, skip) = line.split_once(": ").unwrap();
            let (id, reason) =
                skip.split_once('=').unwrap_or_else(|| panic!("{label}: a skip without a reason: {line}"));
            assert!(id.starts_with("CKV") && reason.len() > 20, "{label}: {line}");
        }
    }
    // With the directory's own configuration, as `cd kubernetes && yamllint .` reads it.
    let out = std::process::Command::new(&yamllint).arg("-s").arg(".").current_dir(dir).output().unwrap();
    assert!(out.status.success(), "{label}: yamllint: {}", text(&out));
    true
}

#[test]
fn rerendering_is_byte_identical_and_secrets_stay_private_and_out_of_git() {
    for profile in PROFILES {
        let sandbox = rendered(profile);
        let dir = sandbox.stack().join("kubernetes");
        let read_all = || -> BTreeMap<String, Vec<u8>> {
            std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap())
                .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
                .collect()
        };
        let first = read_all();
        let again = sandbox.init(&["--profile", profile, "--target", "kubernetes"]);
        assert!(!again.contains("kubernetes/"), "{profile}: a second init changed manifests: {again}");
        assert_eq!(read_all(), first, "{profile}: not byte-identical");

        let mode = |name: &str| std::fs::metadata(dir.join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("secrets.yaml"), 0o600, "{profile}");
        assert_eq!(mode("postgres.yaml"), 0o644, "{profile}");
        let ignored = String::from_utf8(first[".gitignore"].clone()).unwrap();
        assert!(ignored.lines().any(|l| l == "secrets.yaml"), "{profile}: {ignored}");

        // No secret value, and no private key, outside secrets.yaml.
        let mut values = Vec::new();
        for file in crate::common::files_under(&sandbox.stack().join("secrets")) {
            let record: serde_json::Value = serde_json::from_slice(&sandbox.read(&format!("secrets/{file}"))).unwrap();
            for version in record["versions"].as_array().unwrap() {
                values.push(version["value"].as_str().unwrap().to_owned());
            }
        }
        assert!(values.len() >= 9, "{profile}: {values:?}");
        for (name, content) in first.iter().filter(|(n, _)| n.as_str() != "secrets.yaml") {
            let content = String::from_utf8_lossy(content);
            assert!(!content.contains("PRIVATE KEY"), "{profile}: a private key in {name}");
            for value in &values {
                assert!(!content.contains(value.as_str()), "{profile}: a secret in {name}");
            }
            assert!(!content.contains("secretKeyRef"), "{profile}: {name} reads a Secret into the environment");
        }
        // Every environment variable is a literal value (a path or a flag), none from elsewhere.
        for service in ["postgres", "redis", "qdrant"] {
            let statefulset = documents(&dir.join(format!("{service}.yaml")))
                .into_iter()
                .find(|d| d["kind"] == "StatefulSet")
                .unwrap();
            let pod = &statefulset["spec"]["template"]["spec"];
            for container in
                pod["containers"].as_sequence().unwrap().iter().chain(pod["initContainers"].as_sequence().unwrap())
            {
                for variable in container["env"].as_sequence().into_iter().flatten() {
                    assert!(
                        variable["valueFrom"].is_null() && variable["value"].is_string(),
                        "{profile}: {variable:?}"
                    );
                }
                assert!(container["envFrom"].is_null(), "{profile}: {service} takes its environment from elsewhere");
            }
        }
    }
}

/// The documents of a YAML file with several.
pub fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect()
}

pub fn strings(value: &Value) -> Vec<String> {
    value.as_sequence().map(|s| s.iter().map(|v| v.as_str().unwrap().to_owned()).collect()).unwrap_or_default()
}

#[test]
fn compose_up_and_kubernetes_have_the_same_posture_field_by_field() {
    for profile_name in PROFILES {
        let sandbox = rendered(profile_name);
        let source = hardstack::profile::ProfileSource::File(sandbox.stack().join("hardstack.toml"));
        let profile = hardstack::profile::load(&source, &[]).unwrap().profile;
        let compose: Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(sandbox.stack().join("docker-compose.yml")).unwrap())
                .unwrap();
        for spec in hardstack::containers::container_specs(&profile) {
            let at = format!("{profile_name}/{}", spec.service);
            // up creates its container from `spec` (runtime::create); compose and the StatefulSet
            // must say the same.
            let service = &compose["services"][spec.alias.as_str()];
            let file = sandbox.stack().join(format!("kubernetes/{}.yaml", spec.alias));
            let statefulset = documents(&file).into_iter().find(|d| d["kind"] == "StatefulSet").unwrap();
            let pod = &statefulset["spec"]["template"]["spec"];
            let container = &pod["containers"][0];
            let uid = spec.user.split(':').next().unwrap().parse::<u64>().unwrap();

            // Identity: image, user, command.
            assert_eq!(service["image"].as_str(), Some(spec.image.as_str()), "{at}");
            assert_eq!(container["image"].as_str(), Some(spec.image.as_str()), "{at}");
            assert_eq!(service["user"].as_str(), Some(spec.user.as_str()), "{at}");
            assert_eq!(pod["securityContext"]["runAsUser"].as_u64(), Some(uid), "{at}");
            assert_eq!(pod["securityContext"]["runAsGroup"].as_u64(), Some(uid), "{at}");
            assert_eq!(strings(&service["command"]), spec.command, "{at}");
            let args = strings(&container["args"]);
            assert_eq!(args[..spec.command.len()], spec.command[..], "{at}");
            assert_eq!(strings(&container["command"]), spec.entrypoint.clone().unwrap_or_default(), "{at}");

            // Posture: the spec's (and it is the hardened one): read-only root, every capability
            // dropped, none added, no escalation, the runtime's seccomp profile, the restart policy.
            let posture = &spec.posture;
            assert_eq!(*posture, hardstack::containers::Posture::hardened(), "{at}");
            let security = &container["securityContext"];
            assert_eq!(service["read_only"].as_bool(), Some(posture.read_only_root), "{at}");
            assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(posture.read_only_root), "{at}");
            assert_eq!(strings(&service["cap_drop"]), posture.cap_drop, "{at}");
            assert_eq!(strings(&security["capabilities"]["drop"]), posture.cap_drop, "{at}");
            assert!(spec.cap_add.is_empty() && security["capabilities"]["add"].is_null(), "{at}");
            let no_new = strings(&service["security_opt"]).contains(&"no-new-privileges:true".to_owned());
            assert_eq!(no_new, posture.no_new_privileges, "{at}");
            assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(!posture.no_new_privileges), "{at}");
            assert_eq!(security["runAsNonRoot"].as_bool(), Some(true), "{at}");
            assert_eq!(security["seccompProfile"]["type"].as_str(), Some("RuntimeDefault"), "{at}");
            assert_eq!(service["restart"].as_str(), Some(posture.restart.as_str()), "{at}");
            let health = &service["healthcheck"];
            assert_eq!(health["interval"].as_str(), Some(format!("{}s", posture.health.interval).as_str()), "{at}");
            assert_eq!(health["timeout"].as_str(), Some(format!("{}s", posture.health.timeout).as_str()), "{at}");
            assert_eq!(health["retries"].as_u64(), Some(u64::from(posture.health.retries)), "{at}");
            let start = format!("{}s", posture.health.start_period);
            assert_eq!(health["start_period"].as_str(), Some(start.as_str()), "{at}");
            // The network, and the published port.
            assert_eq!(strings(&service["networks"]["stack"]["aliases"]), std::slice::from_ref(&spec.alias), "{at}");
            assert_eq!(compose["networks"]["stack"]["name"].as_str(), Some(spec.network.as_str()), "{at}");
            let mut published: Vec<String> = spec
                .publish
                .iter()
                .map(|(address, port)| format!("{address}:{port}:{}", spec.container_port))
                .collect();
            published.extend(spec.extra_ports.iter().filter_map(|extra| {
                let (address, port) = extra.publish.as_ref()?;
                Some(format!("{address}:{port}:{}", extra.container_port))
            }));
            assert_eq!(strings(&service["ports"]), published, "{at}");

            // Limits.
            let limits = &container["resources"]["limits"];
            let memory = limits["memory"].as_str().unwrap();
            let gib = memory.strip_suffix("Gi").map(|n| n.parse::<u64>().unwrap() << 30);
            let mib = memory.strip_suffix("Mi").map(|n| n.parse::<u64>().unwrap() << 20);
            assert_eq!(gib.or(mib), Some(spec.memory_bytes), "{at}: {memory}");
            let millicores = limits["cpu"].as_str().unwrap().strip_suffix('m').unwrap().parse::<u64>().unwrap();
            assert_eq!(millicores * 1_000_000, spec.nano_cpus, "{at}");
            assert_eq!(container["resources"]["requests"], container["resources"]["limits"], "{at}");

            // Environment: paths and flags only, the same; PostgreSQL's data directory one level
            // down a volume claim's root.
            let environment: Vec<(String, String)> = container["env"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|e| (e["name"].as_str().unwrap().to_owned(), e["value"].as_str().unwrap().to_owned()))
                .filter(|(name, _)| name != "PGDATA")
                .collect();
            assert_eq!(environment, spec.environment, "{at}");
            for (name, value) in &spec.environment {
                assert_eq!(service["environment"][name.as_str()].as_str(), Some(value.as_str()), "{at}");
            }

            // Mounts: the same targets, read-only where compose's are.
            let mounts: BTreeMap<String, bool> = container["volumeMounts"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|m| (m["mountPath"].as_str().unwrap().to_owned(), m["readOnly"].as_bool().unwrap_or(false)))
                .collect();
            for volume in &spec.volumes {
                assert_eq!(mounts.get(&volume.target), Some(&volume.read_only), "{at}: {}", volume.target);
                let line = format!("{}:{}{}", volume.key, volume.target, if volume.read_only { ":ro" } else { "" });
                assert!(strings(&service["volumes"]).contains(&line), "{at}: {line}");
            }
            for tmpfs in &spec.tmpfs {
                assert_eq!(mounts.get(&tmpfs.target), Some(&false), "{at}: {}", tmpfs.target);
            }
            for bind in &spec.binds {
                assert_eq!(mounts.get(&bind.target), Some(&false), "{at}: {}", bind.target);
            }
            assert_eq!(mounts.len(), spec.volumes.len() + spec.tmpfs.len() + spec.binds.len(), "{at}: {mounts:?}");

            // Health: the compose healthcheck is each probe's command.
            assert_eq!(
                strings(&service["healthcheck"]["test"]),
                ["CMD-SHELL".to_owned(), spec.healthcheck.replace('$', "$$")],
                "{at}"
            );
            for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
                match spec.port_check() {
                    // The compose healthcheck opens the port; the kubelet does it itself.
                    Some(port) => {
                        assert!(spec.healthcheck.contains(&format!("/dev/tcp/127.0.0.1/{port}")), "{at}");
                        assert_eq!(
                            container[probe]["tcpSocket"]["port"].as_u64(),
                            Some(u64::from(port)),
                            "{at}: {probe}"
                        );
                    }
                    None => assert_eq!(
                        strings(&container[probe]["exec"]["command"]),
                        ["/bin/sh".to_owned(), "-c".to_owned(), spec.healthcheck.clone()],
                        "{at}: {probe}"
                    ),
                }
            }
            // And nothing of the pod's may reach the Kubernetes API.
            assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(false), "{at}");
            assert_eq!(pod["securityContext"]["seccompProfile"]["type"].as_str(), Some("RuntimeDefault"), "{at}");
        }
    }
}
