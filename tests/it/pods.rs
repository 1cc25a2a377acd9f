//! The Kubernetes target's pods, run on the Docker engine as a kubelet would run them: each
//! delivers its files, starts with the real image and passes its startup probe; a PostgreSQL
//! replica's pod makes its copy and streams; Redis's replica follows the primary and the
//! Sentinels know both and each other.

use std::os::unix::fs::PermissionsExt as _;

use serde_yaml_ng::Value;

use crate::common::{Sandbox, text};
use crate::kubernetes::{documents, strings};

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
        // Redis's replica starts as the primary's, and the Sentinels find it and each other
        // (redis.replicas = 1, redis.sentinels = 3).
        ("redis-1", crate::common::REDIS_IMAGE),
        ("redis-sentinel", crate::common::REDIS_IMAGE),
        ("redis-sentinel-1", crate::common::REDIS_IMAGE),
        ("redis-sentinel-2", crate::common::REDIS_IMAGE),
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
        .args(["--set", "postgres.replicas=1", "--set", "redis.replicas=1", "--set", "redis.sentinels=3"])
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

    // Redis's replica made its copy of the primary's Service over TLS as its own login; each
    // Sentinel learned the replica and the two other Sentinels (their hello messages).
    let logs = |pod: &str| {
        let out = std::process::Command::new("docker").args(["logs", &format!("{}-{pod}-0", stack.name)]).output();
        text(&out.unwrap())
    };
    let until = |pod: &str, seen: &dyn Fn(&str) -> bool| {
        let found = (0..150).any(|_| {
            let found = seen(&logs(pod));
            if !found {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            found
        });
        assert!(found, "{pod}: {}", logs(pod));
    };
    until("redis-1", &|log| log.contains("MASTER <-> REPLICA sync: Finished with success"));
    for sentinel in ["redis-sentinel", "redis-sentinel-1", "redis-sentinel-2"] {
        until(sentinel, &|log| {
            log.contains("+slave slave redis-1:6379") && log.matches("+sentinel sentinel").count() >= 2
        });
    }
}
