//! Backups against the real engine: a set restores with its data (into a new stack directory,
//! with that stack's own credentials), PostgreSQL recovers to a point in time, a killed backup
//! leaves nothing complete, a tampered set is refused before anything is touched, the restore
//! test turns `checklist.backups` from FAIL to PASS, and the backup logins rotate while backups
//! run.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::common::{DockerStack, docker_available, psql, redis, text};

/// `hardstack <command> -o json`, which must succeed, as JSON.
fn json(stack: &DockerStack, command: &str, extra: &[&str]) -> Value {
    let mut extra = extra.to_vec();
    extra.extend(["-o", "json"]);
    let out = stack.cmd(command, &extra).output().unwrap();
    assert!(out.status.success(), "{command} {extra:?}: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{command} JSON: {e}: {}", text(&out)))
}

/// `backup`, which must succeed: the set's directory.
fn backup(stack: &DockerStack) -> PathBuf {
    let taken = json(stack, "backup", &[]);
    assert_eq!(taken["schema"], "hardstack.backup/v1");
    PathBuf::from(taken["path"].as_str().unwrap())
}

fn up(stack: &DockerStack) {
    let out = stack.cmd("up", &[]).output().unwrap();
    assert!(out.status.success(), "up: {}", text(&out));
}

/// Every file of a set is 0600 and every directory 0700.
fn assert_private(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        if entry.file_type().unwrap().is_dir() {
            assert_eq!(mode, 0o700, "{}", entry.path().display());
            assert_private(&entry.path());
        } else {
            assert_eq!(mode, 0o600, "{}", entry.path().display());
        }
    }
}

/// A Qdrant request with the stack's read-write key; the answer's JSON.
fn qdrant(stack: &DockerStack, method: &str, path: &str, body: Option<&str>) -> Value {
    let (url, key, ca) = (stack.env("QDRANT_URL"), stack.env("QDRANT_API_KEY"), stack.env("QDRANT_CA_CERT"));
    let mut curl = std::process::Command::new("curl");
    curl.args(["-sS", "--fail-with-body", "--cacert", &ca, "-X", method, "-H", &format!("api-key: {key}")]);
    if let Some(body) = body {
        curl.args(["-H", "Content-Type: application/json", "-d", body]);
    }
    let out = curl.arg(format!("{url}{path}")).output().unwrap();
    assert!(out.status.success(), "{method} {path}: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn with_qdrant() -> bool {
    crate::common::qdrant_image("backup's Qdrant part").is_some()
}

#[test]
fn a_set_restores_its_data_into_a_new_stack_with_that_stacks_credentials() {
    if !docker_available("backup round trip") {
        return;
    }
    let with_qdrant = with_qdrant();
    let services: &[&str] = if with_qdrant { &["postgres", "redis", "qdrant"] } else { &["postgres", "redis"] };
    let stack = DockerStack::new("backup round trip").services(services).set("qdrant.data=volume");
    up(&stack);
    psql(&stack, "CREATE TABLE orders (id int PRIMARY KEY, note text)");
    psql(&stack, "INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, 5000) g");
    assert_eq!(redis(&stack, "app", "redis/app", &["SET", "app:greeting", "hello"]), "OK");
    assert_eq!(redis(&stack, "app", "redis/app", &["HSET", "app:user:1", "name", "ada", "lang", "en"]), "2");
    if with_qdrant {
        qdrant(&stack, "PUT", "/collections/docs", Some(r#"{"vectors":{"size":4,"distance":"Cosine"}}"#));
        let points = r#"{"points":[{"id":1,"vector":[0.1,0.2,0.3,0.4],"payload":{"t":"a"}},{"id":2,"vector":[0.4,0.3,0.2,0.1],"payload":{"t":"b"}}]}"#;
        qdrant(&stack, "PUT", "/collections/docs/points?wait=true", Some(points));
    }

    let set = backup(&stack);
    assert_private(&set);
    let manifest: Value = serde_json::from_slice(&std::fs::read(set.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["schema"], "hardstack.backup-set/v2");
    let postgres = manifest["services"].as_array().unwrap().iter().find(|s| s["service"] == "postgres").unwrap();
    assert!(postgres["server_version"].as_str().unwrap().contains("PostgreSQL) 17"), "{postgres}");
    assert_eq!(postgres["contents"]["counts"]["app.public.orders"], 5000);
    assert!(postgres["files"].as_array().unwrap().iter().any(|f| f["path"] == "postgres/base/backup_manifest"));
    let redis_part = manifest["services"].as_array().unwrap().iter().find(|s| s["service"] == "redis").unwrap();
    assert_eq!(redis_part["files"][0]["path"], "redis/dump.rdb");
    // The two keys, and the one verify writes.
    assert_eq!(redis_part["contents"]["counts"]["db0"], 3, "{redis_part}");
    assert_eq!(
        redis_part["contents"]["checksums"]["db0:app:greeting"].as_str().map(str::len),
        Some(64),
        "{redis_part}"
    );
    assert_eq!(redis_part["files"][0]["blake3"].as_str().unwrap().len(), 64);

    // A new stack directory: new secrets, a new name; the set given by its path.
    let other = DockerStack::new("backup round trip target").services(services).set("qdrant.data=volume");
    let mut args: Vec<&str> = other.args.iter().map(String::as_str).collect();
    let set_arg = set.display().to_string();
    args.push(&set_arg);
    let out = other.sandbox.cmd().arg("restore").args(&args).output().unwrap();
    assert!(out.status.success(), "restore: {}", text(&out));
    // The application logs in with the new stack's password and finds the data.
    assert_eq!(psql(&other, "SELECT count(*), sum(id) FROM orders"), "5000|12502500");
    assert_eq!(redis(&other, "app", "redis/app", &["GET", "app:greeting"]), "hello");
    assert_eq!(redis(&other, "app", "redis/app", &["HGET", "app:user:1", "name"]), "ada");
    // The old stack's password does not open the restored server.
    let old: Value = serde_json::from_slice(&stack.sandbox.read("secrets/redis/app.json")).unwrap();
    let new: Value = serde_json::from_slice(&other.sandbox.read("secrets/redis/app.json")).unwrap();
    assert_ne!(old["versions"][0]["value"], new["versions"][0]["value"]);
    if with_qdrant {
        let count = qdrant(&other, "POST", "/collections/docs/points/count", Some(r#"{"exact":true}"#));
        assert_eq!(count["result"]["count"], 2);
    }
    let (code, verdicts) = other.verify();
    assert_eq!(code, 0, "{verdicts:?}");

    // A stack that holds data is not overwritten without --force.
    let out = other.sandbox.cmd().arg("restore").arg(&set_arg).output().unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("holds data"), "{}", text(&out));
}

/// SQL as PostgreSQL's superuser over the container's socket, in the app database (for a stack
/// that publishes nothing).
fn superuser_sql(stack: &DockerStack, sql: &str) -> String {
    let out = std::process::Command::new("docker")
        .args(["exec", &format!("{}-postgres", stack.name), "sh", "-c"])
        .arg(format!(
            "PGPASSWORD=$(cat /etc/hardstack/secrets/superuser.password) psql -X -v ON_ERROR_STOP=1 -h /var/run/postgresql -U postgres -d app -tAc \"{sql}\""
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{sql}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A Redis command as admin from a container on the stack network (for a stack that publishes
/// nothing); its answer.
fn redis_inside(stack: &DockerStack, command: &[&str]) -> String {
    let record: Value = serde_json::from_slice(&stack.sandbox.read("secrets/redis/admin.json")).unwrap();
    let password =
        stack.sandbox.write("admin.password", &format!("{}\n", record["versions"][0]["value"].as_str().unwrap()));
    let out = std::process::Command::new("docker")
        .args(["run", "--rm", "-i", "--network", &format!("{}-net", stack.name)])
        .args(["-v", &format!("{}:/s:ro", stack.sandbox.stack().display())])
        .args(["--entrypoint", "redis-cli", crate::common::REDIS_IMAGE])
        .args(["--tls", "--cacert", "/s/ca/ca.crt", "--cert", "/s/certs/clients/admin/client.crt"])
        .args(["--key", "/s/certs/clients/admin/client.key", "-h", "redis", "--user", "admin", "--askpass"])
        .args(command)
        .stdin(std::fs::File::open(password).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{command:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn postgres_recovers_to_a_point_in_time_between_two_writes() {
    if !docker_available("point in time") {
        return;
    }
    let stack = DockerStack::new("point in time").services(&["postgres"]).set("backup.wal_archive=true");
    up(&stack);
    psql(&stack, "CREATE TABLE events (id int, what text)");
    backup(&stack);
    psql(&stack, "INSERT INTO events VALUES (1, 'before')");
    std::thread::sleep(Duration::from_millis(1500));
    let between = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    std::thread::sleep(Duration::from_millis(1500));
    psql(&stack, "INSERT INTO events VALUES (2, 'after')");
    // The segment holding both writes is archived within archive_timeout; switch now.
    stack.cmd("verify", &[]).output().unwrap();
    superuser_sql(&stack, "SELECT pg_switch_wal()");
    std::thread::sleep(Duration::from_secs(2));
    let (_, verdicts) = stack.verify();
    assert_eq!(verdicts["pg.wal_archive"], "pass", "{verdicts:?}");

    stack.cmd("down", &["--volumes"]).assert().success();
    let out = stack.cmd("restore", &["latest", "--to-time", &between]).output().unwrap();
    assert!(out.status.success(), "restore: {}", text(&out));
    assert_eq!(psql(&stack, "SELECT string_agg(what, ',' ORDER BY id) FROM events"), "before");

    // A time before the set's end cannot be reached from it.
    let out = stack.cmd("restore", &["latest", "--to-time", "2020-01-01T00:00:00Z", "--force"]).output().unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("is before the set's end"), "{}", text(&out));
}

#[test]
fn a_killed_backup_leaves_no_set_and_the_next_one_completes() {
    if !docker_available("killed backup") {
        return;
    }
    let stack = DockerStack::new("killed backup").services(&["postgres", "redis"]);
    up(&stack);
    psql(&stack, "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 200000) g");
    let backups = stack.sandbox.stack().join("backups");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("hardstack"))
        .current_dir(stack.sandbox.root())
        .args(["backup", "--dir", "stack"])
        .spawn()
        .unwrap();
    // Killed (SIGKILL, nothing to catch) while it copies PostgreSQL's files.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let copying = std::fs::read_dir(&backups).ok().into_iter().flatten().flatten().any(|set| {
            std::fs::read_dir(set.path().join("postgres/base")).is_ok_and(|mut files| files.next().is_some())
        });
        if copying {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the backup never started copying");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let status = json(&stack, "status", &[]);
    assert_eq!(status["backup"]["sets"], serde_json::json!([]), "{status}");
    assert_eq!(status["backup"]["incomplete"].as_array().unwrap().len(), 1, "{status}");
    let out = stack.cmd("restore", &["latest"]).output().unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("no complete backup set"), "{}", text(&out));

    let taken = json(&stack, "backup", &[]);
    assert_eq!(taken["incomplete_removed"].as_array().unwrap().len(), 1, "{taken}");
    let status = json(&stack, "status", &[]);
    assert_eq!(status["backup"]["sets"].as_array().unwrap().len(), 1, "{status}");
    assert_eq!(status["backup"]["incomplete"], serde_json::json!([]), "{status}");
}

#[test]
fn a_tampered_set_is_refused_naming_the_file_and_the_stack_is_untouched() {
    if !docker_available("tampered set") {
        return;
    }
    let stack = DockerStack::new("tampered set").services(&["postgres", "redis"]);
    up(&stack);
    psql(&stack, "CREATE TABLE kept (id int); INSERT INTO kept VALUES (1)");
    let set = backup(&stack);
    let started = |name: &str| {
        let out = std::process::Command::new("docker")
            .args(["inspect", "-f", "{{.State.StartedAt}}", &format!("{}-{name}", stack.name)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let before = (started("postgres"), started("redis"));
    let rdb = set.join("redis/dump.rdb");
    let original = std::fs::read(&rdb).unwrap();
    let pg_version = set.join("postgres/base/PG_VERSION");

    let refuse = |expected: &str| {
        let out = stack.cmd("restore", &["latest", "--force"]).output().unwrap();
        assert!(!out.status.success(), "a damaged set was restored");
        assert!(text(&out).contains(expected), "expected {expected}: {}", text(&out));
    };
    // Altered, same size.
    let mut altered = original.clone();
    let last = altered.len() - 1;
    altered[last] ^= 0xff;
    std::fs::write(&rdb, &altered).unwrap();
    refuse(&format!("{}: its BLAKE3 differs", rdb.display()));
    // Truncated.
    std::fs::write(&rdb, &original[..original.len() / 2]).unwrap();
    refuse(&format!("{}: {} bytes, the manifest says {}", rdb.display(), original.len() / 2, original.len()));
    std::fs::write(&rdb, &original).unwrap();
    // Missing.
    let version = std::fs::read(&pg_version).unwrap();
    std::fs::remove_file(&pg_version).unwrap();
    refuse(&format!("{}: missing from the set", pg_version.display()));
    std::fs::write(&pg_version, version).unwrap();
    // A file the manifest does not list.
    std::fs::write(set.join("redis/extra.rdb"), b"x").unwrap();
    refuse("redis/extra.rdb: not in the manifest");

    // Nothing of the running stack was touched: same containers, never restarted, same data.
    assert_eq!((started("postgres"), started("redis")), before);
    assert_eq!(psql(&stack, "SELECT count(*) FROM kept"), "1");
}

#[test]
fn the_restore_test_turns_checklist_backups_from_fail_to_pass() {
    if !docker_available("restore test") {
        return;
    }
    // prod as shipped (backups required, Redis append-only, WAL archived, nothing published:
    // everything is read from inside the stack network).
    let stack = DockerStack::new("restore test")
        .profile("prod")
        .services(&["postgres", "redis"])
        .set("resources.postgres.cpus=1")
        .set("resources.redis.cpus=1");
    stack.cmd("up", &["--no-verify"]).assert().success();
    superuser_sql(
        &stack,
        "CREATE TABLE items (id int, name text); INSERT INTO items SELECT g, 'n' || g FROM generate_series(1, 1000) g",
    );
    assert_eq!(redis_inside(&stack, &["SET", "app:a", "1"]), "OK");
    assert_eq!(redis_inside(&stack, &["RPUSH", "app:list", "x", "y"]), "2");
    let (_, verdicts) = stack.verify();
    assert_eq!(verdicts["checklist.backups"], "fail", "no restore test yet");

    backup(&stack);
    let (_, verdicts) = stack.verify();
    assert_eq!(verdicts["checklist.backups"], "fail", "a set that no restore test proved");

    let tested = json(&stack, "backup", &["--test"]);
    assert_eq!(tested["schema"], "hardstack.backup-test/v1");
    assert_eq!(tested["passed"], true, "{tested}");
    let (code, verdicts) = stack.verify();
    assert_eq!(verdicts["checklist.backups"], "pass", "{verdicts:?}");
    assert_eq!(code, 0, "{verdicts:?}");
    // The throwaway stack is gone.
    let leftovers = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label=hardstack.stack={}-restore-test", stack.name)])
        .output()
        .unwrap();
    assert!(leftovers.stdout.is_empty(), "{}", text(&leftovers));
    assert!(!stack.sandbox.stack().join("backups/.restore-test").exists());
    let status = json(&stack, "status", &[]);
    assert_eq!(status["backup"]["last_successful_restore_test"]["set"], tested["set"], "{status}");

    // A set that differs from what it says it holds fails the test, and the last pass stays.
    let latest = PathBuf::from(json(&stack, "status", &[])["backup"]["dir"].as_str().unwrap())
        .join(tested["set"].as_str().unwrap());
    let manifest_path = latest.join("manifest.json");
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    for part in manifest["services"].as_array_mut().unwrap() {
        if part["service"] == "postgres" {
            part["contents"]["counts"]["app.public.items"] = serde_json::json!(999);
        }
    }
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let out = stack.cmd("backup", &["--test"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("app.public.items: 999 backed up, 1000 restored"), "{}", text(&out));
    let status = json(&stack, "status", &[]);
    assert_eq!(status["backup"]["last_restore_test"]["passed"], false, "{status}");
    assert_eq!(status["backup"]["last_successful_restore_test"]["set"], tested["set"], "{status}");
}

#[test]
fn backup_logins_rotate_while_backups_run() {
    if !docker_available("backup rotation") {
        return;
    }
    let stack = DockerStack::new("backup rotation").services(&["postgres", "redis"]);
    up(&stack);
    psql(&stack, "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 10000) g");
    let secret =
        |name: &str| -> Value { serde_json::from_slice(&stack.sandbox.read(&format!("secrets/{name}.json"))).unwrap() };
    let before = (secret("postgres/backup"), secret("redis/backup"));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let schedule = {
        let (root, stop) = (stack.sandbox.root().to_path_buf(), stop.clone());
        std::thread::spawn(move || {
            let mut outcomes = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || outcomes.len() < 2 {
                let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("hardstack"))
                    .current_dir(&root)
                    .args(["backup", "--dir", "stack"])
                    .output()
                    .unwrap();
                outcomes.push((out.status.success(), text(&out)));
            }
            outcomes
        })
    };
    for name in ["postgres/backup", "redis/backup"] {
        let out = stack.cmd("rotate", &["--force", "--only", name]).output().unwrap();
        assert!(out.status.success(), "rotate {name}: {}", text(&out));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let outcomes = schedule.join().unwrap();
    for (ok, output) in &outcomes {
        assert!(ok, "a backup failed during the rotation: {output}");
    }
    let after = (secret("postgres/backup"), secret("redis/backup"));
    assert_ne!(before.0["versions"], after.0["versions"], "postgres/backup rotated");
    assert_ne!(before.1["versions"], after.1["versions"], "redis/backup rotated");
    // And after the rotation, with the new passwords.
    backup(&stack);
}
