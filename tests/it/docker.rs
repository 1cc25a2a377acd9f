//! Against the real engine with the local images: up, usable, idempotent, a config change
//! recreates one service and keeps data, down leaves nothing; pre-flight and wait failures.

use predicates::prelude::*;

use crate::common::{DockerStack, docker_available, text};

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn psql(url: &str, sql: &str) -> std::process::Output {
    std::process::Command::new("psql")
        .args([url, "-w", "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql is installed")
}

#[test]
fn up_is_usable_idempotent_recreates_one_service_and_down_removes_everything() {
    if !docker_available("up_is_usable") {
        return;
    }
    let stack = DockerStack::new("up_is_usable");
    let out = stack.cmd("up", &[]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert!(stdout(&out).contains("is usable"), "{}", stdout(&out));
    // up ends with verify's checks.
    assert!(stdout(&out).contains("verified: ") && stdout(&out).contains(" 0 failed"), "{}", stdout(&out));

    // Independent clients: libpq with verify-full, redis-cli over TLS.
    let url = stack.env("DATABASE_URL");
    assert!(url.contains("sslmode=verify-full"));
    let created = psql(&url, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('survives'); SELECT current_user");
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    // The application's database is a copy of template1 with its public schema closed to
    // PUBLIC (CIS 4.10); the application acts as the database's owner, which may use it.
    let public = "SELECT has_schema_privilege('public', 'public', 'USAGE'), has_schema_privilege('public', 'CREATE')";
    assert_eq!(stdout(&psql(&url, public)).trim(), "f|t");
    let redis = std::process::Command::new("redis-cli")
        .args([
            "-u",
            &stack.env("REDIS_URL"),
            "--tls",
            "--cacert",
            &stack.env("REDIS_CA_CERT"),
            "--no-auth-warning",
            "SET",
            "app:k",
            "v",
        ])
        .output()
        .unwrap();
    assert_eq!(stdout(&redis).trim(), "OK");

    // Unchanged stack: nothing is recreated.
    let again = stack.cmd("up", &["-o", "json"]).output().unwrap();
    assert!(again.status.success());
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    for service in report["services"].as_array().unwrap() {
        assert_eq!(service["change"], "unchanged", "{report}");
    }
    assert_eq!(report["verify"]["schema"], "hardstack.checks/v1", "{report}");
    assert_eq!(report["verify"]["summary"]["fail"], 0, "{report}");
    assert!(report["verify"]["summary"]["pass"].as_u64().unwrap() > 20, "{report}");

    // A PostgreSQL setting changes: postgres reloads it (the same container), and its data stays.
    let id = |name: &str| {
        let out = std::process::Command::new("docker").args(["inspect", "-f", "{{.Id}}", name]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let postgres_id = id(&format!("{}-postgres", stack.name));
    let changed =
        stack.cmd("up", &["-o", "json", "--no-verify", "--set", "postgres.slow_statement_ms=123"]).output().unwrap();
    assert!(changed.status.success(), "{}", String::from_utf8_lossy(&changed.stderr));
    let report: serde_json::Value = serde_json::from_slice(&changed.stdout).unwrap();
    assert!(report["verify"].is_null(), "--no-verify runs no check: {report}");
    let change = |name: &str| {
        report["services"].as_array().unwrap().iter().find(|s| s["service"] == name).unwrap()["change"].clone()
    };
    assert_eq!(change("postgres"), "reloaded", "{report}");
    assert_eq!(change("redis"), "unchanged", "{report}");
    let kept = psql(&url, "SELECT v FROM kept; SHOW log_min_duration_statement");
    assert_eq!(stdout(&kept), "survives\n123ms\n", "{}", String::from_utf8_lossy(&kept.stderr));
    assert_eq!(id(&format!("{}-postgres", stack.name)), postgres_id);

    // Its spec changes (another image name for the same image): only postgres is recreated,
    // and its data survives.
    let tag = format!("{}-retagged", stack.name);
    let image = format!("hardstack-local/postgres:{tag}");
    assert!(
        std::process::Command::new("docker")
            .args(["tag", "hardstack-local/postgres:17", &image])
            .status()
            .unwrap()
            .success()
    );
    let changed = stack
        .cmd(
            "up",
            &[
                "-o",
                "json",
                "--no-verify",
                "--set",
                "postgres.slow_statement_ms=123",
                "--set",
                &format!("images.postgres={image}"),
            ],
        )
        .output()
        .unwrap();
    let _ = std::process::Command::new("docker").args(["rmi", &image]).output();
    assert!(changed.status.success(), "{}", String::from_utf8_lossy(&changed.stderr));
    let report: serde_json::Value = serde_json::from_slice(&changed.stdout).unwrap();
    let postgres = report["services"].as_array().unwrap().iter().find(|s| s["service"] == "postgres").unwrap().clone();
    assert_eq!(postgres["change"], "recreated", "{report}");
    assert!(postgres["container"]["reason"].as_str().unwrap().contains(&image), "{report}");
    assert_ne!(id(&format!("{}-postgres", stack.name)), postgres_id);
    let kept = psql(&url, "SELECT v FROM kept");
    assert_eq!(stdout(&kept), "survives\n", "{}", String::from_utf8_lossy(&kept.stderr));

    let down = stack.cmd("down", &["--volumes"]).output().unwrap();
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert_eq!(stack.objects(), Vec::<String>::new(), "down --volumes leaves nothing of the stack");
}

#[test]
fn down_without_volumes_keeps_data() {
    if !docker_available("down_without_volumes_keeps_data") {
        return;
    }
    let stack = DockerStack::new("down_without_volumes_keeps_data");
    stack.cmd("up", &["-q"]).assert().success();
    let url = stack.env("DATABASE_URL");
    assert!(psql(&url, "CREATE TABLE t (v int); INSERT INTO t VALUES (7)").status.success());
    stack.cmd("down", &[]).assert().success();
    let left = stack.objects();
    assert!(left.iter().all(|o| o.starts_with("volume")), "only volumes stay: {left:?}");
    stack.cmd("up", &["-q"]).assert().success();
    assert_eq!(stdout(&psql(&url, "SELECT v FROM t")), "7\n");
}

#[test]
fn taken_port_is_named_before_anything_is_created() {
    if !docker_available("taken_port") {
        return;
    }
    let stack = DockerStack::new("taken_port");
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    stack.cmd("up", &["--set", &format!("network.ports.redis={port}")]).assert().code(2).stderr(
        predicate::str::contains(format!("port {port} on 127.0.0.1 is taken by process"))
            .and(predicate::str::contains("network.ports.redis")),
    );
    assert_eq!(stack.objects(), Vec::<String>::new());
}

#[test]
fn missing_image_names_the_command_that_builds_it() {
    if !docker_available("missing_image") {
        return;
    }
    // Qdrant: no local image is made without a Qdrant binary (images/build.sh --qdrant-binary).
    let local = hardstack::containers::local_image(hardstack::profile::Service::Qdrant);
    if crate::common::has_image(local) {
        crate::common::skipped(&format!(
            "{local} exists here, so up would use it (the fallback is tested with PostgreSQL)"
        ));
        return;
    }
    let stack = DockerStack::new("missing_image").services(&["postgres", "redis", "qdrant"]);
    stack.cmd("up", &["--set", "images.qdrant=hardstack-local/absent:1"]).assert().code(2).stderr(
        predicate::str::contains("service qdrant: image hardstack-local/absent:1 is missing and cannot be pulled")
            .and(predicate::str::contains("images/build.sh --qdrant-binary"))
            .and(predicate::str::contains("--services postgres,redis")),
    );
    assert_eq!(stack.objects(), Vec::<String>::new());
}

#[test]
fn a_missing_image_falls_back_to_the_local_one_and_says_so() {
    if !docker_available("local_fallback") {
        return;
    }
    // postgres:17 is not in this engine, and no registry is reachable.
    let stack = DockerStack::new("local_fallback")
        .services(&["postgres"])
        .set("images.postgres=absent-registry.invalid/postgres:17");
    let out = stack.cmd("up", &["--no-verify"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout(&out).contains(
            "postgres: image absent-registry.invalid/postgres:17 is missing and cannot be pulled; using hardstack-local/postgres:17"
        ),
        "{}",
        stdout(&out)
    );
    let status = stack.cmd("status", &["-o", "json"]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(report["services"][0]["image"], "hardstack-local/postgres:17", "{report}");
    // The same decision again: nothing changes.
    let again = stack.cmd("up", &["-o", "json", "--no-verify"]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(report["services"][0]["change"], "unchanged", "{report}");
}

#[test]
fn failed_wait_shows_the_probe_error_and_the_log_and_touches_no_other_stack() {
    if !docker_available("failed_wait") {
        return;
    }
    let other = DockerStack::new("failed_wait_other");
    other.cmd("up", &["-q"]).assert().success();
    let stack = DockerStack::new("failed_wait");
    // A setting PostgreSQL refuses (the hardened file otherwise, so audit lets it through): the
    // server exits at start.
    let template = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/postgres/postgresql.conf.tera");
    let hardened = std::fs::read_to_string(template).unwrap();
    stack.sandbox.write("tpl/postgres/postgresql.conf.tera", &format!("{hardened}\nnot_a_setting = 1\n"));
    stack.cmd("up", &["--templates", "tpl", "--timeout", "60s"]).assert().code(1).stderr(
        predicate::str::contains("postgres:")
            .and(predicate::str::contains("last probe error"))
            .and(predicate::str::contains("log:"))
            .and(predicate::str::contains("not_a_setting")),
    );
    // The other stack is still up and usable.
    let out = other.cmd("up", &["-o", "json"]).output().unwrap();
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["services"].as_array().unwrap().iter().all(|s| s["change"] == "unchanged"), "{report}");
}

#[test]
fn compose_brings_up_an_equally_usable_stack() {
    if !docker_available("compose") {
        return;
    }
    let stack = DockerStack::new("compose");
    stack.cmd("init", &["-q"]).assert().success();
    let file = stack.sandbox.stack().join("docker-compose.yml");
    let up = std::process::Command::new("docker")
        .args(["compose", "-f"])
        .arg(&file)
        .args(["up", "-d", "--wait"])
        .output()
        .unwrap();
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    // The same probes `up` uses, from the host.
    let (profile, dir) = stack.library();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for service in profile.stack.services.clone() {
        let store = runtime.block_on(hardstack::secrets::store::Store::open(&profile, &dir)).unwrap();
        let target = runtime
            .block_on(hardstack::probe::app_target(&profile, &dir, &store, service))
            .unwrap()
            .expect("published");
        runtime.block_on(hardstack::probe::probe(service, &target)).unwrap_or_else(|e| panic!("{service}: {e:#}"));
    }
    assert!(psql(&stack.env("DATABASE_URL"), "SELECT 1").status.success());
    let down =
        std::process::Command::new("docker").args(["compose", "-f"]).arg(&file).args(["down", "-v"]).output().unwrap();
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert_eq!(stack.objects(), Vec::<String>::new());
}

/// The delivery helper is made from the service's image, whose `VOLUME` gets an anonymous
/// volume (the helper mounts only the volumes it fills). Removing the helper must remove that
/// volume too, or every `up` leaves one behind that no label can find.
#[test]
fn the_delivery_helper_leaves_no_anonymous_volume() {
    if !docker_available("helper_volumes") {
        return;
    }
    let stack = DockerStack::new("helper_volumes").services(&["postgres"]);
    stack.cmd("init", &["-q"]).assert().success();
    let (profile, dir) = stack.library();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let engine = hardstack::runtime::connect().await.unwrap();
        let spec = hardstack::containers::container_specs(&profile).remove(0);
        let names = hardstack::containers::stack_names(&profile);
        engine.ensure_volumes(&names.stack, &spec).await.unwrap();
        let archives = hardstack::runtime::deliver::archives(&dir, &spec).unwrap();
        let helper = engine.deliver_keeping_helper(&names.stack, &spec, &archives).await.unwrap();
        let info = engine.inspect(&helper).await.unwrap().expect("the helper exists");
        let anonymous: Vec<String> = info
            .mounts
            .unwrap_or_default()
            .into_iter()
            .filter(|m| matches!(m.typ, Some(bollard::models::MountPointTypeEnum::VOLUME)))
            .filter_map(|m| m.name)
            .filter(|name| !spec.volumes.iter().any(|v| v.name == *name))
            .collect();
        assert!(!anonymous.is_empty(), "the image's VOLUME /var/lib/postgresql/data gets an anonymous volume");
        engine.force_remove(&helper).await.unwrap();
        assert!(engine.inspect(&helper).await.unwrap().is_none(), "the helper is gone");
        for name in anonymous {
            assert!(engine.docker.inspect_volume(&name).await.is_err(), "anonymous volume {name} is left behind");
        }
    });
}

/// A stack that publishes nothing (prod's posture) cannot be probed from the host: `up` waits
/// until each container's own healthcheck passes (running it rather than waiting for the
/// engine's first run), then runs verify's checks from inside the stack network.
#[test]
fn an_unpublished_stack_is_up_when_its_healthchecks_pass() {
    if !docker_available("unpublished") {
        return;
    }
    let stack = DockerStack::new("unpublished").set("network.publish=false").services(&["postgres", "redis"]);
    let out = stack.cmd("up", &["-o", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["usable"], true, "{report}");
    assert_eq!(report["verify"]["vantage"], "network", "{report}");
    assert_eq!(report["verify"]["summary"]["fail"], 0, "{report}");
    for container in ["postgres", "redis"] {
        let name = format!("{}-{container}", stack.name);
        let ports = std::process::Command::new("docker").args(["port", &name]).output().unwrap();
        assert_eq!(stdout(&ports).trim(), "", "{name} publishes nothing");
        // The healthcheck that made `up` call it usable passes when run again, independently.
        let health = std::process::Command::new("docker")
            .args(["inspect", "-f", "{{range .Config.Healthcheck.Test}}{{.}}\n{{end}}", &name])
            .output()
            .unwrap();
        let test: Vec<String> = stdout(&health).lines().map(str::to_owned).collect();
        assert_eq!(test[0], "CMD-SHELL", "{test:?}");
        let user = stdout(
            &std::process::Command::new("docker").args(["inspect", "-f", "{{.Config.User}}", &name]).output().unwrap(),
        );
        let run = std::process::Command::new("docker")
            .args(["exec", "-u", user.trim(), &name, "/bin/sh", "-c", &test[1]])
            .output()
            .unwrap();
        assert!(run.status.success(), "{name}: {}", String::from_utf8_lossy(&run.stderr));
    }
}

/// images/build.sh makes a Qdrant image from a binary the user has, with the official
/// `-unprivileged` image's contract. A stand-in executable shows the contract; it is not Qdrant.
#[test]
fn build_sh_makes_a_qdrant_image_with_the_unprivileged_contract() {
    if !docker_available("qdrant_image_contract") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("qdrant");
    std::fs::write(&binary, "#!/bin/sh\necho stand-in \"$@\"\n").unwrap();
    std::fs::set_permissions(&binary, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let image = format!("hardstack-test/qdrant-standin:{}", std::process::id());
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("images/build.sh");
    let built = std::process::Command::new(&script)
        .args(["--qdrant-binary", binary.to_str().unwrap(), "--qdrant-image", &image])
        .output()
        .unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("docker").args(args).output().unwrap();
        assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let checks = std::panic::catch_unwind(|| {
        assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
        let config = run(&[
            "image",
            "inspect",
            &image,
            "--format",
            "{{.Config.User}}|{{.Config.WorkingDir}}|{{json .Config.Cmd}}",
        ]);
        assert_eq!(config, r#"1000:1000|/qdrant|["./entrypoint.sh"]"#);
        assert_eq!(
            run(&["run", "--rm", "--entrypoint", "id", &image]),
            "uid=1000(qdrant) gid=1000(qdrant) groups=1000(qdrant)"
        );
        let modes = run(&[
            "run",
            "--rm",
            "--entrypoint",
            "stat",
            &image,
            "-c",
            "%n %u:%g %a",
            "/qdrant/qdrant",
            "/qdrant/config",
            "/qdrant/storage",
            "/qdrant/snapshots",
            "/qdrant/static",
        ]);
        assert_eq!(
            modes,
            "/qdrant/qdrant 1000:1000 755\n/qdrant/config 1000:1000 755\n/qdrant/storage 1000:1000 755\n\
             /qdrant/snapshots 1000:1000 755\n/qdrant/static 1000:1000 755"
        );
        // The entrypoint hands its arguments to the binary it was given.
        assert_eq!(run(&["run", "--rm", &image, "./entrypoint.sh", "--config-path", "x"]), "stand-in --config-path x");
    });
    let _ = std::process::Command::new("docker").args(["rmi", "-f", &image]).output();
    if let Err(panic) = checks {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn doctor_names_what_up_would_trip_on() {
    if !docker_available("doctor") {
        return;
    }
    let stack = DockerStack::new("doctor").services(&["postgres", "redis"]);
    let doctor = |stack: &DockerStack, extra: &[&str]| {
        let mut cmd = stack.sandbox.cmd();
        cmd.arg("doctor").args(&stack.args).args(["-o", "json"]).args(extra);
        let out = cmd.output().unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        (out.status.code(), report)
    };
    let (code, report) = doctor(&stack, &[]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["schema"], "hardstack.checks/v1");
    assert_eq!(report["command"], "doctor");
    // A port another process holds: named, with the fix.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (code, report) = doctor(&stack, &["--set", &format!("network.ports.postgres={port}")]);
    assert_eq!(code, Some(1), "{report}");
    let check = report["checks"].as_array().unwrap().iter().find(|c| c["id"] == "doctor.port.postgres").unwrap();
    assert_eq!(check["verdict"], "fail", "{report}");
    assert!(check["evidence"].as_str().unwrap().contains(&port), "{check}");
    assert!(check["reason"].as_str().unwrap().contains("network.ports.postgres"), "{check}");
    // An engine that does not answer: exit 2.
    let mut cmd = stack.sandbox.cmd();
    let out = cmd.args(["doctor", "-o", "json"]).env("DOCKER_HOST", "unix:///nonexistent.sock").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Every container `up` makes is its spec, field by field, as the engine reports it: image,
/// user, command, environment, labels, healthcheck and its timing, read-only root, capabilities,
/// no-new-privileges, limits, restart policy, network, published port and mounts.
#[test]
fn up_makes_each_container_exactly_as_its_spec_says() {
    if !docker_available("containers_are_their_specs") {
        return;
    }
    // Every service hardstack knows (Qdrant where its image is).
    let stack = ["pgbouncer", "postgres-exporter", "redis-exporter", "pgbouncer-exporter", "prometheus"]
        .into_iter()
        .fold(DockerStack::new("containers_are_their_specs"), DockerStack::with);
    stack.cmd("up", &["-q", "--no-verify"]).assert().success();
    let (profile, _) = stack.library();
    let identity: serde_json::Value = serde_json::from_slice(&stack.sandbox.read("identity.json")).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let engine = runtime.block_on(hardstack::runtime::connect()).unwrap();
    let second = 1_000_000_000;
    for spec in hardstack::containers::container_specs(&profile) {
        let at = spec.service.name();
        let info =
            runtime.block_on(engine.inspect(&spec.name)).unwrap().unwrap_or_else(|| panic!("{at}: no container"));
        let config = info.config.unwrap();
        let host = info.host_config.unwrap();
        let posture = &spec.posture;
        assert_eq!(config.image.as_deref(), Some(spec.image.as_str()), "{at}");
        assert_eq!(config.user.as_deref(), Some(spec.user.as_str()), "{at}");
        assert_eq!(config.cmd.as_ref(), Some(&spec.command), "{at}");
        if let Some(entrypoint) = &spec.entrypoint {
            assert_eq!(config.entrypoint.as_ref(), Some(entrypoint), "{at}");
        }
        let env = config.env.unwrap_or_default();
        for (name, value) in &spec.environment {
            assert!(env.contains(&format!("{name}={value}")), "{at}: {name} in {env:?}");
        }
        let labels = config.labels.unwrap_or_default();
        assert_eq!(labels.get("hardstack.stack"), Some(&stack.name), "{at}");
        assert_eq!(labels.get("hardstack.service").map(String::as_str), Some(at), "{at}");
        assert_eq!(labels.get("hardstack.stack-id").map(String::as_str), identity["id"].as_str(), "{at}");
        let health = config.healthcheck.unwrap();
        assert_eq!(health.test, Some(vec!["CMD-SHELL".to_owned(), spec.healthcheck.clone()]), "{at}");
        assert_eq!(health.interval, Some(i64::from(posture.health.interval) * second), "{at}");
        assert_eq!(health.timeout, Some(i64::from(posture.health.timeout) * second), "{at}");
        assert_eq!(health.retries, Some(i64::from(posture.health.retries)), "{at}");
        assert_eq!(health.start_period, Some(i64::from(posture.health.start_period) * second), "{at}");

        assert_eq!(host.readonly_rootfs, Some(posture.read_only_root), "{at}");
        assert_eq!(host.cap_drop.as_ref(), Some(&posture.cap_drop), "{at}");
        assert_eq!(host.cap_add.clone().unwrap_or_default(), spec.cap_add, "{at}");
        let no_new = host.security_opt.clone().unwrap_or_default().contains(&"no-new-privileges:true".to_owned());
        assert_eq!(no_new, posture.no_new_privileges, "{at}");
        // The engine's default seccomp profile: nothing asks for another.
        assert!(!host.security_opt.unwrap_or_default().iter().any(|o| o.starts_with("seccomp")), "{at}");
        assert_eq!(host.memory, Some(spec.memory_bytes as i64), "{at}");
        assert_eq!(host.nano_cpus, Some(spec.nano_cpus as i64), "{at}");
        assert_eq!(host.pids_limit, Some(i64::from(spec.pids)), "{at}");
        let restart = host.restart_policy.and_then(|r| r.name).map(|n| n.to_string());
        assert_eq!(restart.as_deref(), Some(posture.restart.as_str()), "{at}");
        assert_eq!(host.network_mode.as_deref(), Some(spec.network.as_str()), "{at}");
        let aliases = info.network_settings.and_then(|n| n.networks?.get(&spec.network)?.aliases.clone());
        assert!(aliases.unwrap_or_default().contains(&spec.alias), "{at}");
        let bindings = host.port_bindings.unwrap_or_default();
        let published = bindings.get(&format!("{}/tcp", spec.container_port)).cloned().flatten().unwrap_or_default();
        let published: Vec<(String, String)> =
            published.into_iter().map(|b| (b.host_ip.unwrap_or_default(), b.host_port.unwrap_or_default())).collect();
        let expected: Vec<(String, String)> =
            spec.publish.iter().map(|(address, port)| (address.clone(), port.to_string())).collect();
        assert_eq!(published, expected, "{at}");
        let tmpfs = host.tmpfs.unwrap_or_default();
        for mount in &spec.tmpfs {
            assert_eq!(tmpfs.get(&mount.target), Some(&mount.options), "{at}: {}", mount.target);
        }
        let mounts = host.mounts.unwrap_or_default();
        for volume in &spec.volumes {
            let mount = mounts.iter().find(|m| m.target.as_deref() == Some(volume.target.as_str()));
            let mount = mount.unwrap_or_else(|| panic!("{at}: {} is not mounted", volume.target));
            assert_eq!(mount.source.as_deref(), Some(volume.name.as_str()), "{at}");
            assert_eq!(mount.read_only.unwrap_or(false), volume.read_only, "{at}: {}", volume.target);
        }
        assert_eq!(mounts.len(), spec.volumes.len() + spec.binds.len(), "{at}: {mounts:?}");
    }
}

/// The engine is found as the docker CLI finds it (the current context, `DOCKER_CONTEXT` over
/// it), doctor says which endpoint it used, and a socket the user may not open is named with
/// the two ways to fix it.
#[test]
fn the_engine_is_found_as_the_docker_cli_finds_it_and_a_denied_socket_says_how_to_fix_it() {
    if !docker_available("docker_access") {
        return;
    }
    let sandbox = crate::common::Sandbox::new();
    // A context the CLI would use, its endpoint a socket no engine listens on.
    let config = sandbox.root().join("docker-config");
    use sha2::Digest as _;
    let meta = config.join("contexts/meta").join(hex::encode(sha2::Sha256::digest(b"elsewhere")));
    std::fs::create_dir_all(&meta).unwrap();
    let socket = sandbox.root().join("no-engine.sock");
    let meta_json = serde_json::json!({
        "Name": "elsewhere",
        "Endpoints": { "docker": { "Host": format!("unix://{}", socket.display()), "SkipTLSVerify": false } },
    });
    std::fs::write(meta.join("meta.json"), meta_json.to_string()).unwrap();
    std::fs::write(config.join("config.json"), r#"{"currentContext":"elsewhere"}"#).unwrap();
    let out = sandbox.cmd().arg("doctor").env("DOCKER_CONFIG", &config).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains(&format!("unix://{} (context elsewhere)", socket.display())), "{}", text(&out));
    // DOCKER_CONTEXT over the current one: `default` is the local engine, and doctor says so.
    let out = sandbox
        .cmd()
        .args(["doctor", "-o", "json"])
        .env("DOCKER_CONFIG", &config)
        .env("DOCKER_CONTEXT", "default")
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let engine = report["checks"].as_array().unwrap().iter().find(|c| c["id"] == "doctor.engine").unwrap();
    assert_eq!(engine["verdict"], "pass", "{engine}");
    assert!(engine["evidence"].as_str().unwrap().ends_with("at unix:///var/run/docker.sock (default)"), "{engine}");

    // A user outside the docker group (nobody, made so by setpriv, which needs root).
    // /proc/self belongs to the process's effective user.
    use std::os::unix::fs::MetadataExt as _;
    if std::fs::metadata("/proc/self").unwrap().uid() != 0 {
        crate::common::skipped("docker_access: the permission-denied part runs as root (setpriv)");
        return;
    }
    let bin = sandbox.root().join("hardstack");
    std::fs::copy(assert_cmd::cargo::cargo_bin("hardstack"), &bin).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(sandbox.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .arg("doctor")
        .current_dir(sandbox.root())
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("permission denied on the Docker socket unix:///var/run/docker.sock"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("docker group") && text(&out).contains("sudo"), "{}", text(&out));
}

/// `up` uploads each new container's files from init's plan while init writes them
/// (`EarlyHelpers`, one helper per container). An upload is used only where it is, byte for
/// byte, what the directory's files give; otherwise the helper and the volumes it filled are
/// removed, so the ordinary delivery starts again from the directory. A helper no container
/// took is removed with its volumes when the run ends.
#[test]
fn an_early_upload_is_used_only_where_it_is_the_directorys_files() {
    if !docker_available("early_upload") {
        return;
    }
    let stack = DockerStack::new("early_upload").services(&["postgres", "redis"]);
    stack.cmd("init", &["-q"]).assert().success();
    let (profile, dir) = stack.library();
    let specs = hardstack::containers::running_specs(&profile);
    let files_of = |spec: &hardstack::containers::ContainerSpec| -> Vec<(hardstack::containers::Delivery, Vec<u8>)> {
        spec.deliveries.iter().map(|d| (d.clone(), std::fs::read(dir.file(&d.file)).unwrap())).collect()
    };
    let (postgres, redis) = (&specs[0], &specs[1]);
    use hardstack::profile::Service;
    assert_eq!((postgres.service, redis.service), (Service::Postgres, Service::Redis));
    let planned = |edited: bool| -> Vec<hardstack::stackdir::PlannedFile> {
        let mut planned: Vec<_> = specs
            .iter()
            .flat_map(&files_of)
            .map(|(d, content)| hardstack::stackdir::PlannedFile::of(d.file.clone(), content))
            .collect();
        if edited {
            let conf = planned.iter_mut().find(|f| f.path.ends_with("postgresql.conf")).expect("delivered");
            conf.content.extend_from_slice(b"\nwork_mem = '1GB'\n");
        }
        planned
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let engine = hardstack::runtime::connect().await.unwrap();
        let early = hardstack::commands::up::EarlyHelpers::start(&engine, &profile);
        early.deliver(&engine, &planned(false));
        for spec in [postgres, redis] {
            let files = files_of(spec);
            let taken = early.take(&engine, spec, &files).await.expect("a helper was made for this container");
            assert_eq!(taken.upload.expect("uploaded early").await, Some(Ok(())), "{}", spec.name);
            let (conf, content) = files.iter().find(|(d, _)| d.path.ends_with(".conf")).expect("a configuration file");
            let copy = stack.sandbox.root().join("delivered.conf");
            let cp = std::process::Command::new("docker")
                .arg("cp")
                .arg(format!("{}:/dst/{}/{}", taken.helper, conf.volume, conf.path))
                .arg(&copy)
                .output()
                .unwrap();
            assert!(cp.status.success(), "{}", String::from_utf8_lossy(&cp.stderr));
            assert_eq!(&std::fs::read(&copy).unwrap(), content, "{} in {}", conf.path, spec.name);
            engine.force_remove(&taken.helper).await.unwrap();
            for volume in &spec.volumes {
                let _ = engine.remove_volume(&volume.name).await;
            }
        }
        assert_eq!(stack.objects(), Vec::<String>::new());

        let early = hardstack::commands::up::EarlyHelpers::start(&engine, &profile);
        early.deliver(&engine, &planned(true));
        assert!(
            early.take(&engine, postgres, &files_of(postgres)).await.is_none(),
            "an upload of other files is not used"
        );
        early.undo(&engine).await;
        assert_eq!(stack.objects(), Vec::<String>::new(), "the helpers and the volumes they filled are removed");
    });
}
