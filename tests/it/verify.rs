//! `verify` against running stacks: a hardened stack passes, and each deliberate weakening is
//! caught by the check that names it.

use predicates::prelude::*;

use crate::common::{DockerStack, docker_available};

/// Brings the stack up, which runs verify at its end, and asserts that both `up` and `verify`
/// exit 1 with `failing` among the failed checks.
fn assert_caught(stack: DockerStack, failing: &[&str]) {
    let up = stack.cmd("up", &["-q", "--timeout", "60s"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&up.stderr);
    assert_eq!(up.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the stack is up, but"), "{stderr}");
    for id in failing {
        assert!(stderr.contains(id), "up must name {id}: {stderr}");
    }
    let (code, verdicts) = stack.verify();
    assert_eq!(code, 1, "verify must fail: {verdicts:?}");
    for id in failing {
        assert_eq!(verdicts.get(*id).map(String::as_str), Some("fail"), "{id} must fail: {verdicts:?}");
    }
}

#[test]
fn hardened_stack_passes_every_check() {
    if !docker_available("hardened_stack_passes") {
        return;
    }
    let stack = DockerStack::new("hardened_stack_passes").set("name=dev");
    stack.cmd("up", &["-q"]).assert().success();
    let (code, verdicts) = stack.verify();
    assert_eq!(code, 0, "{verdicts:?}");
    assert!(verdicts.values().all(|v| v == "pass" || v == "n/a"), "{verdicts:?}");
    for id in [
        "pg.login.app",
        "pg.plaintext_refused",
        "redis.default_user_refused",
        "network.loopback_only",
        "checklist.tls",
        "checklist.backups",
    ] {
        assert!(verdicts.contains_key(id), "{id} missing");
    }
    stack
        .cmd("verify", &[])
        .assert()
        .success()
        .stdout(predicate::str::contains("checks:").and(predicate::str::contains("PASS")));
}

#[test]
fn mutual_tls_stack_refuses_connections_without_a_client_certificate() {
    if !docker_available("mutual_tls") {
        return;
    }
    let stack = DockerStack::new("mutual_tls").set("tls.client_certs=required").services(&["postgres", "redis"]);
    stack.cmd("up", &["-q"]).assert().success();
    let (code, verdicts) = stack.verify();
    assert_eq!(code, 0, "{verdicts:?}");
    assert_eq!(verdicts["pg.no_client_cert_refused"], "pass");
    assert_eq!(verdicts["redis.no_client_cert_refused"], "pass");
    assert_eq!(verdicts["pg.foreign_client_cert_refused"], "pass");
}

/// pg_hba.conf with a `host` line that accepts plaintext connections.
fn with_a_host_line(hba: &str) -> String {
    hba.replacen("hostssl    all        postgres", "host all all all scram-sha-256\nhostssl    all        postgres", 1)
}

/// users.acl with the default user on, with a password: guessing fails, but the user should not
/// exist at all.
fn with_the_default_user_on(acl: &str) -> String {
    acl.replacen(
        "user default off resetpass resetkeys resetchannels -@all",
        "user default on >a-known-password ~* &* +@all",
        1,
    )
}

#[test]
fn pg_hba_host_line_is_caught() {
    if !docker_available("pg_hba_host_line") {
        return;
    }
    let stack = DockerStack::new("pg_hba_host_line")
        .services(&["postgres"])
        .template("postgres/pg_hba.conf.tera", with_a_host_line)
        .accept(&["audit.hba.tls_only", "audit.hba.no_all_all", "audit.hba.superuser_local_only"]);
    assert_caught(stack, &["pg.plaintext_refused", "checklist.tls"]);
}

/// After a rotation the current login is the alternate one: the plaintext attempt must use it,
/// or a wrong login/password pair is refused for the wrong reason and hides the open door.
#[test]
fn pg_hba_host_line_is_caught_after_a_rotation() {
    if !docker_available("pg_hba_host_line_rotated") {
        return;
    }
    let stack = DockerStack::new("pg_hba_host_line_rotated")
        .services(&["postgres"])
        .template("postgres/pg_hba.conf.tera", with_a_host_line)
        .accept(&["audit.hba.tls_only", "audit.hba.no_all_all", "audit.hba.superuser_local_only"]);
    stack.cmd("up", &["-q", "--no-verify"]).assert().success();
    stack.cmd("rotate", &["--force", "--only", "postgres/app", "--no-verify"]).assert().success();
    assert!(stack.env("DATABASE_URL").contains("://app_alt:"));
    let (code, verdicts) = stack.verify();
    assert_eq!(code, 1, "{verdicts:?}");
    assert_eq!(verdicts["pg.plaintext_refused"], "fail", "{verdicts:?}");
}

#[test]
fn superuser_over_the_network_is_caught() {
    if !docker_available("superuser_network") {
        return;
    }
    let stack = DockerStack::new("superuser_network")
        .services(&["postgres"])
        .template("postgres/pg_hba.conf.tera", |t| {
            t.replacen(
                "hostssl    all        postgres   all            reject",
                "hostssl all postgres all scram-sha-256",
                1,
            )
        })
        .accept(&["audit.hba.superuser_local_only"]);
    assert_caught(stack, &["pg.superuser_network_refused", "checklist.authentication"]);
}

#[test]
fn app_role_with_admin_rights_is_caught() {
    if !docker_available("pg_admin_rights") {
        return;
    }
    let stack = DockerStack::new("pg_admin_rights").services(&["postgres"]).template("postgres/init.sql.tera", |t| {
        t.replacen("CREATE ROLE {{ user.owner }} NOLOGIN", "CREATE ROLE {{ user.owner }} NOLOGIN CREATEROLE", 1)
    });
    assert_caught(stack, &["pg.create_role_refused.app"]);
}

#[test]
fn redis_default_user_on_is_caught() {
    if !docker_available("redis_default_user") {
        return;
    }
    let stack = DockerStack::new("redis_default_user")
        .services(&["redis"])
        .template("redis/users.acl.tera", with_the_default_user_on)
        .accept(&["audit.acl.default_off", "audit.acl.hashed_passwords"]);
    assert_caught(stack, &["redis.default_user_refused"]);
}

#[test]
fn redis_plaintext_port_is_caught() {
    if !docker_available("redis_plaintext") {
        return;
    }
    // TLS kept on another port inside the container; the published port speaks plaintext.
    let stack = DockerStack::new("redis_plaintext")
        .services(&["redis"])
        .template("redis/redis.conf.tera", |t| t.replacen("port 0\ntls-port 6379", "port 6379\ntls-port 6380", 1))
        .accept(&["audit.redis.tls_only"]);
    let up = stack.cmd("up", &["-q", "--timeout", "20s"]).output().unwrap();
    // up's own probe speaks TLS and fails: the weakened server is not usable as configured.
    assert_eq!(up.status.code(), Some(1), "{}", String::from_utf8_lossy(&up.stderr));
    let (code, verdicts) = stack.verify();
    assert_eq!(code, 1);
    assert_eq!(verdicts["redis.plaintext_refused"], "fail", "{verdicts:?}");
}

#[test]
fn redis_app_user_with_admin_rights_is_caught() {
    if !docker_available("redis_admin_rights") {
        return;
    }
    let stack = DockerStack::new("redis_admin_rights")
        .services(&["redis"])
        .template("redis/users.acl.tera", |t| t.replacen(" -@dangerous -@admin", "", 1))
        .accept(&["audit.acl.app_users_restricted"]);
    assert_caught(stack, &["redis.admin_commands_refused.app"]);
}

#[test]
fn port_on_all_interfaces_in_dev_is_caught() {
    if !docker_available("port_on_all_interfaces") {
        return;
    }
    let stack = DockerStack::new("port_on_all_interfaces")
        .set("name=dev")
        .set("network.bind_address=0.0.0.0")
        .services(&["redis"])
        .accept(&["audit.compose.ports"]);
    assert_caught(stack, &["network.loopback_only"]);
}

#[test]
fn verify_of_a_stopped_stack_is_an_environment_failure() {
    if !docker_available("verify_stopped") {
        return;
    }
    let stack = DockerStack::new("verify_stopped").services(&["redis"]);
    stack.cmd("init", &["-q"]).assert().success();
    stack
        .cmd("verify", &[])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is not running; run `hardstack up` first"));
}

/// The prod profile on this machine: nothing published, two CPUs at most. A new stack has no
/// tested backup, so checklist.backups would fail it: these tests are about the network
/// (backup.rs tests that item with backups required).
fn prod(test: &str) -> DockerStack {
    DockerStack::new(test)
        .profile("prod")
        .services(&["postgres", "redis"])
        .set("resources.postgres.cpus=1")
        .set("resources.redis.cpus=1")
        .set("backup.required=false")
}

#[test]
fn a_prod_stack_that_publishes_nothing_is_verified_from_inside_its_network() {
    if !docker_available("prod_inside") {
        return;
    }
    // prod as shipped, backups required. The profile's image cannot be had here: up runs the
    // local one, and the checks from inside run in the image the stack runs. With a Qdrant
    // image, Qdrant too: hardstack reaches its API at its address on the stack network.
    let with_qdrant = crate::common::qdrant_image("prod_inside's Qdrant part").is_some();
    let services: &[&str] =
        if with_qdrant { &["postgres", "redis", "qdrant", "qdrant-front"] } else { &["postgres", "redis"] };
    let stack = DockerStack::new("prod_inside")
        .profile("prod")
        .services(services)
        .set("resources.postgres.cpus=1")
        .set("resources.redis.cpus=1")
        .set("images.postgres=absent-registry.invalid/postgres:17");
    let out = stack.cmd("up", &["-o", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["verify"]["vantage"], "network", "{report}");
    assert_eq!(report["verify"]["summary"]["fail"], 0, "{report}");
    // A new stack: its first up took the first backup and proved it restores.
    let first = &report["first_backup"];
    assert_eq!(first["backup"]["schema"], "hardstack.backup/v1", "{report}");
    assert_eq!(first["restore_test"]["set"], first["backup"]["set"], "{report}");
    assert_eq!(first["restore_test"]["passed"], true, "{report}");
    let backed_up: Vec<&str> =
        first["backup"]["services"].as_array().unwrap().iter().filter_map(|s| s["service"].as_str()).collect();
    let data: Vec<&str> = services.iter().copied().filter(|s| *s != "qdrant-front").collect();
    assert_eq!(backed_up, data, "{report}");
    if with_qdrant {
        // Its key rotates through the same address: two restarts, each waited for with the
        // key it must accept; the front then sends the new key (verify after the rotation
        // passes through it).
        let out = stack.cmd("rotate", &["--force", "--only", "qdrant/api-key", "-o", "json"]).output().unwrap();
        assert!(out.status.success(), "{}", crate::common::text(&out));
        let rotated: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(rotated["credentials"][0]["credential"], "qdrant/api-key", "{rotated}");
        assert_eq!(rotated["credentials"][0]["outcome"]["state"], "rotated", "{rotated}");
        assert_eq!(rotated["verify_failed"], false, "{rotated}");
    }
    let (code, verdicts) = stack.verify();
    assert_eq!(code, 0, "{verdicts:?}");
    assert_eq!(verdicts["checklist.backups"], "pass", "{verdicts:?}");
    if with_qdrant {
        for id in ["front.login", "front.grpc_login", "front.internal_key_refused", "front.foreign_client_cert_refused"]
        {
            assert_eq!(verdicts.get(id).map(String::as_str), Some("pass"), "{id}: {verdicts:?}");
        }
    }
    // connect needs no flag: nothing is published, so psql runs from the stack's image on its
    // network.
    let out = stack.cmd("connect", &["postgres", "--", "-At"]).write_stdin("select 1").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1", "{}", crate::common::text(&out));
    // The stack now holds data: a later up takes no backup of its own.
    let again = stack.cmd("up", &["-o", "json", "--no-verify"]).output().unwrap();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["first_backup"], serde_json::Value::Null, "{again}");
    for id in [
        "pg.plaintext_refused",
        "pg.superuser_network_refused",
        "redis.plaintext_refused",
        "redis.no_client_cert_refused",
    ] {
        assert_eq!(verdicts.get(id).map(String::as_str), Some("pass"), "{id}: {verdicts:?}");
    }
    // verify --from host cannot reach it, and says so (exit 2).
    let out = stack.cmd("verify", &["--from", "host"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    // Nothing of the checks' container is left.
    assert!(!stack.objects().iter().any(|o| o.contains("verify")), "{:?}", stack.objects());
}

#[test]
fn a_weakened_prod_stack_is_caught_from_inside_its_network() {
    if !docker_available("prod_inside_weakened") {
        return;
    }
    let stack = prod("prod_inside_weakened")
        .template("postgres/pg_hba.conf.tera", with_a_host_line)
        .accept(&["audit.hba.tls_only", "audit.hba.no_all_all", "audit.hba.superuser_local_only"])
        .template("redis/users.acl.tera", with_the_default_user_on)
        .accept(&["audit.acl.default_off", "audit.acl.hashed_passwords"]);
    assert_caught(stack, &["pg.plaintext_refused", "redis.default_user_refused"]);
}

#[test]
fn an_interrupted_check_from_inside_leaves_nothing_behind() {
    if !docker_available("prod_inside_interrupted") {
        return;
    }
    let stack = prod("prod_inside_interrupted");
    stack.cmd("up", &["-q", "--no-verify"]).assert().success();
    let running = |stack: &DockerStack| {
        let filter = format!("label=hardstack.stack={}", stack.name);
        let out = std::process::Command::new("docker")
            .args(["ps", "-a", "--filter", &filter, "--filter", "label=hardstack.service=verify", "-q"])
            .output()
            .unwrap();
        !String::from_utf8_lossy(&out.stdout).trim().is_empty()
    };
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("hardstack"))
        .current_dir(stack.sandbox.root())
        .arg("verify")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !running(&stack) {
        assert!(std::time::Instant::now() < deadline, "the checks' container never appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while running(&stack) {
        assert!(std::time::Instant::now() < deadline, "the checks' container is still there");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // One left by a run killed outright before it started (SIGKILL cannot be caught), with the
    // labels every object of this stack directory carries, goes with the next run.
    let identity: serde_json::Value = serde_json::from_slice(&stack.sandbox.read("identity.json")).unwrap();
    let id = format!("hardstack.stack-id={}", identity["id"].as_str().unwrap());
    let created = std::process::Command::new("docker")
        .args(["create", "--label", &format!("hardstack.stack={}", stack.name), "--label", "hardstack.service=verify"])
        .args(["--label", &id])
        .args(["--name", &format!("{}-verify-killed", stack.name), "hardstack-local/postgres:17", "true"])
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    assert!(running(&stack));
    let (code, _) = stack.verify();
    assert_eq!(code, 0);
    assert!(!running(&stack), "the stale one-off is gone");
}

#[test]
fn pgaudit_logs_ddl_in_prod_and_never_a_verifier() {
    if !docker_available("prod_pgaudit") {
        return;
    }
    // Published, so rotation can reach it.
    let stack = prod("prod_pgaudit")
        .set("network.publish=true")
        .set("network.bind_address=127.0.0.1")
        .set(&format!("network.ports.postgres={}", crate::common::free_port()));
    stack.cmd("up", &["-q"]).assert().success();
    let (_, verdicts) = stack.verify();
    assert_eq!(verdicts.get("pg.cis.pgaudit").map(String::as_str), Some("pass"), "{verdicts:?}");
    stack.cmd("rotate", &["--force", "--only", "postgres", "--no-verify"]).assert().success();
    let out = std::process::Command::new("psql")
        .args([&stack.env("DATABASE_URL"), "-w", "-c", "CREATE TABLE audited (v int)"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let logs =
        std::process::Command::new("docker").args(["logs", &format!("{}-postgres", stack.name)]).output().unwrap();
    let logs = format!("{}{}", String::from_utf8_lossy(&logs.stdout), String::from_utf8_lossy(&logs.stderr));
    assert!(logs.contains("AUDIT: SESSION") && logs.contains("CREATE TABLE audited"), "pgAudit logs DDL");
    assert!(!logs.contains("SCRAM-SHA-256$"), "a verifier is in the server log");
}
