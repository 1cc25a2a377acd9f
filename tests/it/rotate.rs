//! Rotation against running stacks: each step interrupted in turn and resumed, alternating
//! PostgreSQL logins keeping objects usable, Redis's grace period, certificates hot-reloaded
//! under open connections, schedules, the daemon, and a load test with zero failures.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use predicates::prelude::*;

use crate::common::{DockerStack, Load, docker_available, record, version_with};

fn psql(url: &str, sql: &str) -> std::process::Output {
    std::process::Command::new("psql")
        .args([url, "-w", "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql is installed")
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The JSON record of a secret in the file store.
fn redis_ping(stack: &DockerStack, user: &str, password: &str) -> bool {
    let url = stack.env("REDIS_URL");
    let port = url.rsplit(':').next().unwrap().trim_end_matches("/0");
    let out = std::process::Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            port,
            "--tls",
            "--cacert",
            &stack.env("REDIS_CA_CERT"),
            "--user",
            user,
            "--pass",
            password,
            "--no-auth-warning",
            "PING",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "PONG"
}

fn up(stack: &DockerStack) {
    let out = stack.cmd("up", &["-q"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn rotation_interrupted_after_each_step_resumes_and_never_lacks_a_working_credential() {
    if !docker_available("rotation_resumes") {
        return;
    }
    let stack = DockerStack::new("rotation_resumes").services(&["postgres", "redis"]);
    up(&stack);
    for until in ["create", "set", "test"] {
        for name in ["postgres/app", "redis/app", "postgres/health", "certificate/postgres"] {
            let out = stack.cmd("rotate", &["--force", "--only", name, "--until", until]).output().unwrap();
            assert!(out.status.success(), "{name} --until {until}: {}", text(&out));
            assert!(
                String::from_utf8_lossy(&out.stdout).contains(&format!("{name}: stopped after {until}")),
                "{}",
                text(&out)
            );
            // The current credential works while a rotation is half done.
            assert!(
                psql(&stack.env("DATABASE_URL"), "SELECT 1").status.success(),
                "postgres current login after {until}"
            );
            let current = version_with(&record(&stack, "redis/app"), "current").unwrap();
            assert!(
                redis_ping(&stack, "app", current["value"].as_str().unwrap()),
                "redis current password after {until}"
            );
            if name != "certificate/postgres" {
                assert!(
                    version_with(&record(&stack, name), "pending").is_some(),
                    "{name} has a pending version after {until}"
                );
            } else {
                assert!(stack.sandbox.stack().join("certs/postgres/server.crt.pending").exists());
            }
            // A plain run (no --force) finishes the rotation in progress.
            let out = stack.cmd("rotate", &["--only", name, "--set", "rotation.enabled=true"]).output().unwrap();
            assert!(out.status.success(), "{}", text(&out));
            assert!(
                String::from_utf8_lossy(&out.stdout)
                    .contains(&format!("{name}: finished the rotation left in progress")),
                "{}",
                text(&out)
            );
            if name != "certificate/postgres" {
                assert!(version_with(&record(&stack, name), "pending").is_none(), "{name}: pending removed");
            }
        }
    }
    // Three completed rotations of postgres/app: the login alternated app -> app_alt -> app -> app_alt.
    let current = version_with(&record(&stack, "postgres/app"), "current").unwrap();
    assert_eq!(current["username"], "app_alt");
    let (code, verdicts) = stack.verify();
    assert_eq!(code, 0, "{verdicts:?}");
}

#[test]
fn objects_made_through_either_login_stay_usable_through_the_other() {
    if !docker_available("alternating_logins") {
        return;
    }
    let stack = DockerStack::new("alternating_logins").services(&["postgres"]);
    up(&stack);
    let first = stack.env("DATABASE_URL");
    assert!(first.contains("://app:"));
    assert!(psql(&first, "CREATE TABLE notes (v text); INSERT INTO notes VALUES ('by app')").status.success());
    stack.cmd("rotate", &["--force", "--only", "postgres/app"]).assert().success();
    let second = stack.env("DATABASE_URL");
    assert!(second.contains("://app_alt:"), "{second}");
    let out =
        psql(&second, "INSERT INTO notes VALUES ('by app_alt'); CREATE TABLE more (v int); SELECT count(*) FROM notes");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().last(), Some("2"), "{}", text(&out));
    // The previous login keeps working until the next rotation.
    assert!(psql(&first, "SELECT count(*) FROM more").status.success());
    stack.cmd("rotate", &["--force", "--only", "postgres/app"]).assert().success();
    let third = stack.env("DATABASE_URL");
    assert!(third.contains("://app:"));
    let out = psql(
        &third,
        "SELECT tableowner FROM pg_tables WHERE tablename IN ('notes', 'more') ORDER BY 1; DROP TABLE more",
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "app_owner\napp_owner\nDROP TABLE\n");
    // The first login's old password stopped working when it was rotated again.
    assert!(!psql(&first, "SELECT 1").status.success());
    // Neither passwords nor their verifiers reached the server log (log_statement = ddl).
    let logs =
        std::process::Command::new("docker").args(["logs", &format!("{}-postgres", stack.name)]).output().unwrap();
    let logs = text(&logs);
    assert!(
        logs.contains("ALTER ROLE") || logs.contains("statement:"),
        "the log is the server's: {}",
        &logs[..logs.len().min(300)]
    );
    assert!(!logs.contains("SCRAM-SHA-256$"), "a verifier is in the server log");
    for url in [&first, &second, &third] {
        let password = url.split(':').nth(2).unwrap().split('@').next().unwrap();
        assert!(!logs.contains(password), "a password is in the server log");
    }
}

#[test]
fn redis_previous_password_works_until_the_grace_period_ends() {
    if !docker_available("redis_grace") {
        return;
    }
    let stack = DockerStack::new("redis_grace").services(&["redis"]).set("rotation.grace=4s");
    up(&stack);
    let old = version_with(&record(&stack, "redis/app"), "current").unwrap()["value"].as_str().unwrap().to_owned();
    stack.cmd("rotate", &["--force", "--only", "redis/app"]).assert().success();
    let new = version_with(&record(&stack, "redis/app"), "current").unwrap()["value"].as_str().unwrap().to_owned();
    assert_ne!(old, new);
    assert!(redis_ping(&stack, "app", &new));
    assert!(redis_ping(&stack, "app", &old), "the old password works during the grace period");
    std::thread::sleep(Duration::from_millis(4500));
    stack
        .cmd("rotate", &["--only", "redis/app", "--set", "rotation.enabled=true"])
        .assert()
        .success()
        .stdout(predicate::str::contains("redis/app: previous password removed after the grace period"));
    assert!(!redis_ping(&stack, "app", &old), "the old password is gone after the grace period");
    assert!(redis_ping(&stack, "app", &new));
    // The ACL file on the server's disk was saved without it.
    let acl = std::process::Command::new("docker")
        .args(["exec", &format!("{}-redis", stack.name), "cat", "/usr/local/etc/redis/acl/users.acl"])
        .output()
        .unwrap();
    let hashes =
        String::from_utf8_lossy(&acl.stdout).lines().find(|l| l.starts_with("user app ")).unwrap().matches('#').count();
    assert_eq!(hashes, 1, "{}", String::from_utf8_lossy(&acl.stdout));
}

#[test]
fn certificates_are_reissued_and_reloaded_and_open_connections_keep_working() {
    if !docker_available("certificate_rotation") {
        return;
    }
    let stack = DockerStack::new("certificate_rotation").services(&["postgres", "redis"]);
    up(&stack);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (profile, dir) = stack.library();
    let store = runtime.block_on(hardstack::secrets::store::Store::open(&profile, &dir)).unwrap();
    let pg = runtime
        .block_on(hardstack::probe::app_target(&profile, &dir, &store, hardstack::profile::Service::Postgres))
        .unwrap()
        .unwrap();
    let redis = runtime
        .block_on(hardstack::probe::app_target(&profile, &dir, &store, hardstack::profile::Service::Redis))
        .unwrap()
        .unwrap();
    let before_pg = runtime.block_on(hardstack::probe::served_certificate(&pg, true)).unwrap();
    let before_redis = runtime.block_on(hardstack::probe::served_certificate(&redis, false)).unwrap();
    // Connections opened before the rotation.
    let client = runtime.block_on(hardstack::probe::postgres_client(&pg)).unwrap();
    let mut connection = runtime.block_on(hardstack::probe::redis_connection(&redis)).unwrap();
    let old_crt = stack.sandbox.read("certs/postgres/server.crt");

    stack.cmd("rotate", &["--force", "--only", "certificate"]).assert().success();

    assert_ne!(stack.sandbox.read("certs/postgres/server.crt"), old_crt, "the bundle has the new certificate");
    assert!(!stack.sandbox.stack().join("certs/postgres/server.crt.pending").exists());
    assert_ne!(
        runtime.block_on(hardstack::probe::served_certificate(&pg, true)).unwrap(),
        before_pg,
        "PostgreSQL serves the new certificate"
    );
    assert_ne!(
        runtime.block_on(hardstack::probe::served_certificate(&redis, false)).unwrap(),
        before_redis,
        "Redis serves the new certificate"
    );
    let one: i32 = runtime.block_on(client.query_one("SELECT 1", &[])).unwrap().get(0);
    assert_eq!(one, 1, "the PostgreSQL session opened before the reload still works");
    let pong: String = runtime.block_on(redis::cmd("PING").query_async(&mut connection)).unwrap();
    assert_eq!(pong, "PONG", "the Redis connection opened before the reload still works");
    // New connections verify the new certificate against the same CA.
    runtime.block_on(hardstack::probe::postgres(&pg)).unwrap();
    runtime.block_on(hardstack::probe::redis(&redis)).unwrap();

    // The manifest follows the new pair: rotation writes through the stack directory.
    let manifest: serde_json::Value = serde_json::from_slice(&stack.sandbox.read(".hardstack-manifest.json")).unwrap();
    for file in ["certs/postgres/server.crt", "certs/postgres/server.key", "certs/redis/server.crt"] {
        let digest = hardstack::stackdir::digest(&stack.sandbox.read(file));
        assert_eq!(manifest["files"][file], digest.as_str(), "{file}");
    }
    // A rotation never recreates a PostgreSQL or Redis container: after certificates and every
    // password rotated, up changes nothing.
    stack.cmd("rotate", &["--force", "--only", "postgres", "--only", "redis"]).assert().success();
    let out = stack.cmd("up", &["-o", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let services = report["services"].as_array().unwrap();
    assert_eq!(services.len(), 2, "{report}");
    assert!(services.iter().all(|s| s["change"] == "unchanged"), "{report}");
}

#[test]
fn scheduled_rotation_renews_only_what_is_old_enough() {
    if !docker_available("schedule") {
        return;
    }
    let stack = DockerStack::new("schedule").services(&["redis"]).set("rotation.enabled=true");
    up(&stack);
    let out = stack.cmd("rotate", &["-o", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["credentials"].as_array().unwrap().iter().all(|c| c["outcome"]["state"] == "not_due"), "{report}");
    std::thread::sleep(Duration::from_millis(1100));
    let out = stack.cmd("rotate", &["-o", "json", "--set", "rotation.password_max_age=1s"]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let states: BTreeMap<String, String> = report["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["credential"].as_str().unwrap().to_owned(), c["outcome"]["state"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(states["redis/app"], "rotated", "{report}");
    assert_eq!(states["redis/admin"], "rotated");
    assert_eq!(states["certificate/redis"], "not_due", "certificates follow their expiry, not the password age");
}

#[test]
fn daemon_rotates_on_schedule_and_stops_on_sigterm() {
    if !docker_available("daemon") {
        return;
    }
    let stack = DockerStack::new("daemon").services(&["redis"]).set("rotation.enabled=true");
    up(&stack);
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("hardstack"))
        .current_dir(stack.sandbox.root())
        .args(["rotate", "--daemon", "--every", "1s", "--set", "rotation.password_max_age=1s", "--no-verify"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let before = version_with(&record(&stack, "redis/app"), "current").unwrap()["id"].clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut rotations = 0;
    let mut last = before.clone();
    while Instant::now() < deadline && rotations < 2 {
        std::thread::sleep(Duration::from_millis(200));
        let id = version_with(&record(&stack, "redis/app"), "current").unwrap()["id"].clone();
        if id != last {
            rotations += 1;
            last = id;
        }
    }
    assert!(rotations >= 2, "the daemon rotated {rotations} times in 30 s");
    let pid = child.id().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the daemon did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
    // No rotation was left half done.
    assert!(version_with(&record(&stack, "redis/app"), "pending").is_none());
}

#[test]
fn a_failed_verify_after_rotation_stops_with_exit_code_1() {
    if !docker_available("rotate_verify_fails") {
        return;
    }
    let stack = DockerStack::new("rotate_verify_fails")
        .services(&["redis"])
        .template("redis/users.acl.tera", |t| t.replacen(" -@dangerous -@admin", "", 1));
    stack.cmd("up", &["-q", "--no-verify", "--accept", "audit.acl.app_users_restricted"]).assert().success();
    stack
        .cmd("rotate", &["--force"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("verify failed after rotating redis/app: redis.admin_commands_refused.app"));
}

/// Clients keep connecting and querying while passwords and certificates rotate several times.
/// Each new connection reads its credentials from the store, as a well-behaved application does.
#[test]
fn load_test_rotation_under_traffic_has_zero_failed_operations() {
    if !docker_available("load_test") {
        return;
    }
    let stack = DockerStack::new("load_test").services(&["postgres", "redis"]).set("rotation.grace=5s");
    up(&stack);
    let load = Load::start(&stack, 4, Duration::ZERO);
    let started = Instant::now();
    let rounds = 3;
    let (ops, errors) = load.across_rotations(&stack, rounds);
    let failures = errors.len();
    // The healthchecks, whose passwords rotated too, still pass.
    let (code, verdicts) = stack.verify();
    assert_eq!(code, 0, "{verdicts:?}");
    println!(
        "load test: {ops} operations, {failures} failures, over {:.1} s with {rounds} rotations of every password and certificate",
        started.elapsed().as_secs_f64()
    );
    assert!(ops > 50, "too few operations to mean anything: {ops}");
    assert_eq!(failures, 0, "{:?}", errors.iter().take(5).collect::<Vec<_>>());
}

/// Qdrant's key rotates through `alt_api_key`; needs a Qdrant image, which this project's CI
/// machines cannot have (no registry, no Debian package).
#[test]
fn qdrant_api_key_rotates_through_alt_api_key() {
    if !docker_available("qdrant_rotation") {
        return;
    }
    if crate::common::qdrant_image("qdrant_rotation").is_none() {
        return;
    }
    let stack = DockerStack::new("qdrant_rotation").services(&["qdrant"]);
    up(&stack);
    let name = format!("{}-qdrant", stack.name);
    let inspect = |format: &str| {
        let out = std::process::Command::new("docker").args(["inspect", "-f", format, &name]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let starts = || {
        let out = std::process::Command::new("docker").args(["logs", &name]).output().unwrap();
        text(&out).matches("Qdrant HTTP listening").count()
    };
    let (id, starts_before) = (inspect("{{.Id}}"), starts());
    let old = version_with(&record(&stack, "qdrant/api-key"), "current").unwrap()["value"].as_str().unwrap().to_owned();

    // A client that retries nothing, reading the key from the store before each request, runs
    // through the rotation: the window is how long its requests fail.
    let (profile, dir) = stack.library();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let running = Arc::new(AtomicBool::new(true));
    let client = {
        let (profile, dir, running) = (profile.clone(), dir.clone(), running.clone());
        runtime.spawn(async move {
            let mut results = Vec::new();
            while running.load(Ordering::SeqCst) {
                let at = Instant::now();
                let result: anyhow::Result<()> = async {
                    let store = hardstack::secrets::store::Store::open(&profile, &dir).await?;
                    let service = hardstack::profile::Service::Qdrant;
                    let target = hardstack::probe::app_target(&profile, &dir, &store, service).await?.unwrap();
                    hardstack::probe::qdrant(&target).await
                }
                .await;
                results.push((at, result.is_ok()));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            results
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    stack.cmd("rotate", &["--force", "--only", "qdrant/api-key"]).assert().success();
    std::thread::sleep(Duration::from_millis(500));
    running.store(false, Ordering::SeqCst);
    let results = runtime.block_on(client).unwrap();
    let failed = results.iter().filter(|(_, ok)| !ok).count();
    let mut window = Duration::ZERO;
    let mut since: Option<Instant> = None;
    for (at, ok) in &results {
        match (ok, since) {
            (false, None) => since = Some(*at),
            (true, Some(start)) => {
                window = window.max(at.duration_since(start));
                since = None;
            }
            _ => {}
        }
    }
    println!(
        "qdrant window: {failed} of {} requests failed, the longest run of failures lasted {} ms",
        results.len(),
        window.as_millis()
    );
    assert!(results.len() > 20, "too few requests: {}", results.len());

    // One restart, no new container; the old key and the new one both work until the next
    // rotation; up has nothing left to do.
    assert_eq!(starts() - starts_before, 1, "one restart per rotation");
    assert_eq!(inspect("{{.Id}}"), id, "the same container");
    let new = version_with(&record(&stack, "qdrant/api-key"), "current").unwrap()["value"].as_str().unwrap().to_owned();
    assert_ne!(old, new);
    for key in [&new, &old] {
        let target = hardstack::probe::login_target(
            &profile,
            &dir,
            hardstack::profile::Service::Qdrant,
            "app",
            hardstack::secrets::Secret::new(key.clone()),
            "",
        )
        .unwrap()
        .unwrap();
        runtime
            .block_on(hardstack::probe::qdrant(&target))
            .unwrap_or_else(|e| panic!("key accepted after rotation: {e:#}"));
    }
    let out = stack.cmd("up", &["-o", "json", "--no-verify"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["services"].as_array().unwrap().iter().all(|s| s["change"] == "unchanged"), "{report}");

    // Its certificate is re-issued and delivered; Qdrant loads it within tls.cert_ttl.
    let old_crt = stack.sandbox.read("certs/qdrant/server.crt");
    stack.cmd("rotate", &["--force", "--only", "certificate/qdrant"]).assert().success();
    assert_ne!(stack.sandbox.read("certs/qdrant/server.crt"), old_crt);
    assert_eq!(starts() - starts_before, 1, "a certificate needs no restart");
    let (code, verdicts) = stack.verify();
    assert_eq!(code, 0, "{verdicts:?}");
}
