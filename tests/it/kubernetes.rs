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
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect()
}

fn strings(value: &Value) -> Vec<String> {
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

/// Runs the StatefulSet's pod of one service on the Docker engine as a kubelet would (the
/// ConfigMap and the Secret as files of mode 0440 owned by root:fsGroup, volume roots owned by
/// the fsGroup, the init containers in order, then the server with the same user, arguments, environment,
/// mounts and read-only root, under the pod's host name) and waits for its startup probe: the
/// delivery, the arguments and the probe work with the real image.
fn run_pod(sandbox: &Sandbox, stack: &str, service: &str, image: &str, network: &str) {
    let file = sandbox.stack().join(format!("kubernetes/{service}.yaml"));
    let docs = documents(&file);
    let statefulset = docs.iter().find(|d| d["kind"] == "StatefulSet").unwrap();
    let config = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    let secrets = documents(&sandbox.stack().join("kubernetes/secrets.yaml"));
    let secret = secrets.iter().find(|d| d["metadata"]["name"].as_str() == Some(&format!("{service}-files"))).unwrap();
    let pod = &statefulset["spec"]["template"]["spec"];
    let uid = pod["securityContext"]["fsGroup"].as_u64().unwrap();
    let docker = |args: &[&str]| {
        let out = std::process::Command::new("docker").args(args).output().unwrap();
        assert!(out.status.success(), "docker {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    // The ConfigMap and the Secret, projected.
    let projected = sandbox.root().join(format!("pod-{service}"));
    for (dir, data, decode) in [("public", &config["data"], false), ("private", &secret["data"], true)] {
        let at = projected.join(dir);
        std::fs::create_dir_all(&at).unwrap();
        for (key, value) in data.as_mapping().unwrap() {
            let value = value.as_str().unwrap();
            let bytes = if decode {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.decode(value).unwrap()
            } else {
                value.as_bytes().to_vec()
            };
            let path = at.join(key.as_str().unwrap());
            std::fs::write(&path, bytes).unwrap();
            std::os::unix::fs::chown(&path, Some(0), Some(uid as u32)).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o440)).unwrap();
        }
    }
    // Volumes: each emptyDir and claim a Docker volume whose root belongs to the fsGroup.
    let volume = |name: &str| format!("{stack}-{name}");
    let mut names: Vec<String> = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter(|v| !v["emptyDir"].is_null() && v["emptyDir"]["medium"].is_null())
        .map(|v| v["name"].as_str().unwrap().to_owned())
        .collect();
    names.extend(
        statefulset["spec"]["volumeClaimTemplates"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|c| c["metadata"]["name"].as_str().unwrap().to_owned()),
    );
    for name in &names {
        docker(&["volume", "create", "--label", &format!("hardstack.stack={stack}"), &volume(name)]);
        docker(&[
            "run",
            "--rm",
            "--user",
            "0:0",
            "-v",
            &format!("{}:/v", volume(name)),
            "--entrypoint",
            "sh",
            image,
            "-c",
            &format!("chown 0:{uid} /v && chmod 2775 /v"),
        ]);
    }
    let mounts_of = |container: &Value| -> Vec<String> {
        let mut args = Vec::new();
        for mount in container["volumeMounts"].as_sequence().unwrap() {
            let name = mount["name"].as_str().unwrap();
            let path = mount["mountPath"].as_str().unwrap();
            let read_only = mount["readOnly"].as_bool().unwrap_or(false);
            let memory = pod["volumes"]
                .as_sequence()
                .unwrap()
                .iter()
                .any(|v| v["name"].as_str() == Some(name) && !v["emptyDir"]["medium"].is_null());
            if memory {
                args.extend(["--tmpfs".to_owned(), format!("{path}:uid={uid},gid={uid},mode=0770")]);
            } else if name == "public" || name == "private" {
                args.extend(["-v".to_owned(), format!("{}:{path}:ro", projected.join(name).display())]);
            } else {
                args.extend([
                    "-v".to_owned(),
                    format!("{}:{path}{}", volume(name), if read_only { ":ro" } else { "" }),
                ]);
            }
        }
        args
    };
    let posture = |container: &Value| -> Vec<String> {
        let mut args = vec![
            "--user".to_owned(),
            format!("{uid}:{uid}"),
            "--group-add".to_owned(),
            uid.to_string(),
            "--cap-drop".to_owned(),
            "ALL".to_owned(),
            "--security-opt".to_owned(),
            "no-new-privileges:true".to_owned(),
            "--read-only".to_owned(),
            "--label".to_owned(),
            format!("hardstack.stack={stack}"),
        ];
        args.extend(mounts_of(container));
        for env in container["env"].as_sequence().into_iter().flatten() {
            args.extend([
                "-e".to_owned(),
                format!("{}={}", env["name"].as_str().unwrap(), env["value"].as_str().unwrap()),
            ]);
        }
        args
    };
    // The init containers in order (a replica's copy reaches the primary's Service).
    for init in pod["initContainers"].as_sequence().unwrap() {
        let mut run: Vec<String> = vec!["run".into(), "--rm".into(), "--network".into(), network.into()];
        run.extend(posture(init));
        run.extend(["--entrypoint".into(), strings(&init["command"])[0].clone(), image.into()]);
        run.extend(strings(&init["command"])[1..].iter().cloned());
        docker(&run.iter().map(String::as_str).collect::<Vec<_>>());
    }

    let server = &pod["containers"][0];
    let name = format!("{stack}-{service}-0");
    let mut run: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), name.clone()];
    run.extend(["--hostname".into(), format!("{service}-0")]);
    // The Service's name resolves to the pod, as the cluster's DNS has it.
    run.extend(["--network".into(), network.into(), "--network-alias".into(), service.into()]);
    run.extend(posture(server));
    let command = strings(&server["command"]);
    if let Some(entrypoint) = command.first() {
        run.extend(["--entrypoint".into(), entrypoint.clone()]);
    }
    run.push(image.into());
    run.extend(command.iter().skip(1).cloned());
    run.extend(strings(&server["args"]));
    docker(&run.iter().map(String::as_str).collect::<Vec<_>>());
    // An exec probe runs its command in the container; a tcpSocket probe is the kubelet opening
    // the port, done here from inside the pod's network namespace.
    let probe = match server["startupProbe"]["tcpSocket"]["port"].as_u64() {
        Some(port) => vec!["bash".to_owned(), "-c".to_owned(), format!(":> /dev/tcp/127.0.0.1/{port}")],
        None => strings(&server["startupProbe"]["exec"]["command"]),
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let mut exec = vec!["exec".to_owned(), name.clone()];
        exec.extend(probe.iter().cloned());
        let out = std::process::Command::new("docker").args(&exec).output().unwrap();
        if out.status.success() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let logs = std::process::Command::new("docker").args(["logs", "--tail", "30", &name]).output().unwrap();
            panic!("{service}: the startup probe never passed: {}\n{}", text(&out), text(&logs));
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

#[test]
fn the_pods_deliver_their_files_start_and_pass_their_probes_with_the_real_images() {
    if !crate::common::docker_available("kubernetes pods") {
        return;
    }
    let stack = crate::common::DockerStack::new("kubernetes pods");
    // A replica's pod makes its copy from the primary's, then streams (postgres.replicas = 1).
    let mut services = vec![
        ("postgres", crate::common::POSTGRES_IMAGE),
        ("postgres-1", crate::common::POSTGRES_IMAGE),
        ("redis", crate::common::REDIS_IMAGE),
    ];
    if let Some(image) = crate::common::qdrant_image("kubernetes pods: Qdrant's pod") {
        services.push(("qdrant", image));
    }
    // PgBouncer looks its logins up in PostgreSQL before it answers its probe; the exporters
    // and Prometheus reach theirs by Service name.
    services.push(("pgbouncer", hardstack::profile::PGBOUNCER_LOCAL_IMAGE));
    for monitoring in ["postgres-exporter", "redis-exporter", "pgbouncer-exporter", "prometheus"] {
        services.push((monitoring, crate::common::MONITORING_IMAGE));
    }
    // The prod posture: mutual TLS, TLS 1.3, the WAL archive, pgAudit (the local image has it).
    let out = stack
        .sandbox
        .cmd()
        .args(["init", "--profile", "prod", "--target", "kubernetes", "--set", &format!("stack.name={}", stack.name)])
        .args(["--set", &format!("images.postgres={}", crate::common::POSTGRES_IMAGE)])
        .args(["--set", &format!("images.redis={}", crate::common::REDIS_IMAGE)])
        .args(["--set", "resources.postgres.memory=1GiB", "--set", "resources.postgres.cpus=1"])
        .args(["--set", "postgres.replicas=1"])
        .args(["--set", &format!("images.postgres_exporter={}", crate::common::MONITORING_IMAGE)])
        .args(["--set", &format!("images.redis_exporter={}", crate::common::MONITORING_IMAGE)])
        .args(["--set", &format!("images.pgbouncer_exporter={}", crate::common::MONITORING_IMAGE)])
        .args(["--set", &format!("images.prometheus={}", crate::common::MONITORING_IMAGE)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let network = format!("{}-pods", stack.name);
    let out = std::process::Command::new("docker")
        .args(["network", "create", "--label", &format!("hardstack.stack={}", stack.name), &network])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    for (service, image) in services {
        run_pod(&stack.sandbox, &stack.name, service, image, &network);
    }
    // The replica's pod made its copy and streams from the primary's Service.
    let replica = format!("{}-postgres-1-0", stack.name);
    let streams = (0..100).any(|_| {
        let logs = std::process::Command::new("docker").args(["logs", &replica]).output().unwrap();
        let found = text(&logs).contains("started streaming WAL from primary");
        if !found {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        found
    });
    assert!(streams, "the replica's pod does not stream from the primary");
}
