//! PostgreSQL's primary moving to a standby against the real engine: `switchover postgres`
//! under a writer (psql over libpq's multi-host URL with `target_session_attrs=read-write`),
//! with no committed row lost, `env` naming the new primary and the old one following it,
//! rotation and backups on the new primary; and
//! `up` after the primary's container died promoting a standby and rewinding the old primary.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::common::{DockerStack, docker_available, free_port, text};

/// A PostgreSQL stack with `replicas` replicas, up, with `sql` run on its primary; and the
/// primary's `DATABASE_URL`.
fn up_with(test: &str, replicas: u8, sql: &str) -> (DockerStack, String) {
    let stack = DockerStack::new(test)
        .services(&["postgres"])
        .set(&format!("postgres.replicas={replicas}"))
        .set(&format!("network.ports.postgres_replicas={}", free_port()));
    let up = stack.cmd("up", &["-q"]).output().unwrap();
    assert!(up.status.success(), "{}", text(&up));
    let url = stack.env("DATABASE_URL");
    assert!(psql(&url, sql).is_some(), "{sql}");
    (stack, url)
}

/// psql with `url` running `sql`; stdout trimmed, or `None` when psql failed.
fn psql(url: &str, sql: &str) -> Option<String> {
    let out = Command::new("psql")
        .args([url, "-w", "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql is installed");
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The `host:port` list of a libpq URL (`postgresql://user:pw@a:1,b:2/db?...`).
fn hosts(url: &str) -> String {
    url.split_once('@').unwrap().1.split_once('/').unwrap().0.to_owned()
}

/// `DATABASE_URL` listing every node, the primary first: libpq finds whichever takes writes.
fn every_node(stack: &DockerStack) -> String {
    let url = stack.env("DATABASE_URL");
    let all = format!("{},{}", hosts(&url), hosts(&stack.env("DATABASE_READ_URL")));
    format!("{}&target_session_attrs=read-write&connect_timeout=3", url.replacen(&hosts(&url), &all, 1))
}

/// The published port of `url`'s only host.
fn port(url: &str) -> String {
    hosts(url).rsplit_once(':').unwrap().1.to_owned()
}

/// Writes rows 1, 2, ... one transaction each until `stop`; returns the rows whose commit psql
/// saw succeed, and how many attempts failed.
fn writer(url: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(Vec<u32>, u32)> {
    std::thread::spawn(move || {
        let (mut committed, mut failed) = (Vec::new(), 0);
        let mut next = 1;
        while !stop.load(Ordering::SeqCst) {
            match psql(&url, &format!("INSERT INTO written VALUES ({next})")) {
                Some(_) => committed.push(next),
                None => failed += 1,
            }
            next += 1;
        }
        (committed, failed)
    })
}

#[test]
fn a_switchover_loses_no_committed_row_and_env_names_the_new_primary() {
    if !docker_available("switchover") {
        return;
    }
    let (stack, before) = up_with("switchover", 2, "CREATE TABLE written (n int PRIMARY KEY)");

    let stop = Arc::new(AtomicBool::new(false));
    let writing = writer(every_node(&stack), stop.clone());
    std::thread::sleep(std::time::Duration::from_secs(2));
    let switched = stack.cmd("switchover", &["postgres", "--to", "2"]).output().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    let (committed, failed) = writing.join().unwrap();
    assert!(switched.status.success(), "{}", text(&switched));
    assert!(text(&switched).contains("node 2"), "{}", text(&switched));
    eprintln!("switchover: {} rows committed by the writer, {failed} attempts failed", committed.len());

    // env names the new primary (replica 2's port), which takes writes and holds every row a
    // commit was acknowledged for.
    let after = stack.env("DATABASE_URL");
    assert_ne!(port(&after), port(&before), "{after}");
    assert!(stack.env("DATABASE_READ_URL").contains(&format!(":{}", port(&before))));
    assert_eq!(psql(&after, "SELECT pg_is_in_recovery()").as_deref(), Some("f"));
    let rows = psql(&after, "SELECT string_agg(n::text, ',') FROM written").unwrap();
    let present: std::collections::BTreeSet<u32> = rows.split(',').filter_map(|n| n.parse().ok()).collect();
    let lost: Vec<&u32> = committed.iter().filter(|n| !present.contains(n)).collect();
    assert!(lost.is_empty(), "committed rows lost in the switchover: {lost:?}");
    assert!(committed.len() > 10, "the writer committed only {} rows", committed.len());

    // The old primary follows the new one: a row written now reaches it.
    assert!(psql(&before, "SELECT pg_is_in_recovery()").as_deref() == Some("t"));
    assert!(psql(&after, "INSERT INTO written VALUES (0)").is_some());
    let on_old = (0..300).any(|_| psql(&before, "SELECT count(*) FROM written WHERE n = 0").as_deref() == Some("1"));
    assert!(on_old, "the old primary does not follow the new one");
    let connections: serde_json::Value =
        serde_json::from_slice(&std::fs::read(stack.sandbox.stack().join("connections.json")).unwrap()).unwrap();
    assert!(connections.to_string().contains(&format!(":{}/", port(&after))), "{connections}");
    let (code, verdicts) = stack.verify();
    assert_eq!(code, 0, "{verdicts:?}");
    assert_eq!(verdicts.get("pg.replica.0.streams").map(String::as_str), Some("pass"), "{verdicts:?}");
    // Rotation and backups act on the new primary (and every standby, node 0 among them).
    let rotated = stack.cmd("rotate", &["--force"]).output().unwrap();
    assert!(rotated.status.success(), "{}", text(&rotated));
    assert!(text(&rotated).contains("postgres/streaming_replica: rotated"), "{}", text(&rotated));
    let backup = stack.cmd("backup", &[]).output().unwrap();
    assert!(backup.status.success(), "{}", text(&backup));
    let tested = stack.cmd("backup", &["--test"]).output().unwrap();
    assert!(tested.status.success(), "{}", text(&tested));

    // And back: node 0 is the primary again, and a second `switchover` finds nothing to undo.
    let back = stack.cmd("switchover", &["postgres", "--to", "0"]).output().unwrap();
    assert!(back.status.success(), "{}", text(&back));
    assert_eq!(port(&stack.env("DATABASE_URL")), port(&before));
    let refused = stack.cmd("switchover", &["postgres", "--to", "0"]).output().unwrap();
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(text(&refused).contains("node 0 is the primary already"), "{}", text(&refused));
}

#[test]
fn up_after_the_primary_died_promotes_a_standby_and_rewinds_the_old_primary() {
    if !docker_available("failover") {
        return;
    }
    let (stack, before) =
        up_with("failover", 1, "CREATE TABLE written (n int PRIMARY KEY); INSERT INTO written VALUES (1)");
    let read = stack.env("DATABASE_READ_URL");
    let arrived = (0..300).any(|_| psql(&read, "SELECT count(*) FROM written").as_deref() == Some("1"));
    assert!(arrived, "the row never reached the replica");

    // The primary's container dies (SIGKILL: no shutdown checkpoint, nothing sent after).
    let primary = format!("{}-postgres", stack.name);
    assert!(Command::new("docker").args(["kill", &primary]).status().unwrap().success());
    // plan says it first, and changes nothing.
    let plan = stack.cmd("plan", &[]).output().unwrap();
    assert!(text(&plan).contains("the primary (node 0) is not running: promote node 1"), "{}", text(&plan));
    assert!(!stack.sandbox.stack().join("topology.json").exists());
    let again = stack.cmd("up", &[]).output().unwrap();
    assert!(again.status.success(), "{}", text(&again));
    let said = String::from_utf8_lossy(&again.stdout).into_owned();
    assert!(said.contains("the primary (node 0) is not running: promoted node 1"), "{said}");
    assert!(said.contains("pg_rewind"), "{said}");

    let after = stack.env("DATABASE_URL");
    assert_ne!(port(&after), port(&before));
    assert_eq!(psql(&after, "SELECT pg_is_in_recovery()").as_deref(), Some("f"));
    assert!(psql(&after, "INSERT INTO written VALUES (2)").is_some());
    // The old primary, rewound, is a standby of the new one.
    let follows = (0..300).any(|_| psql(&before, "SELECT count(*) FROM written").as_deref() == Some("2"));
    assert!(follows, "the old primary does not follow the new one");
    assert_eq!(psql(&before, "SELECT pg_is_in_recovery()").as_deref(), Some("t"));
    let status = stack.cmd("status", &[]).output().unwrap();
    assert!(text(&status).contains("the primary is postgres-1; standbys postgres"), "{}", text(&status));
    let topology = std::fs::read_to_string(stack.sandbox.stack().join("topology.json")).unwrap();
    assert!(topology.contains("\"postgres_primary\": 1") && !topology.contains("rewind"), "{topology}");

    // An old primary pg_rewind cannot bring back (here its login may not connect to the new
    // primary's database) is made again from a base backup: a run interrupted before the
    // rewind left it on the record, and the next `up` finishes it.
    assert!(Command::new("docker").args(["stop", &primary]).status().unwrap().success());
    std::fs::write(stack.sandbox.stack().join("topology.json"), r#"{"postgres_primary": 1, "postgres_rewind": [0]}"#)
        .unwrap();
    let revoke = "PGPASSWORD=$(cat /etc/hardstack/secrets/superuser.password) psql -h /var/run/postgresql -U postgres \
                  -Atc 'REVOKE CONNECT ON DATABASE postgres FROM streaming_replica'";
    let new_primary = format!("{}-postgres-1", stack.name);
    let revoked = Command::new("docker").args(["exec", &new_primary, "sh", "-c", revoke]).output().unwrap();
    assert!(revoked.status.success(), "{}", text(&revoked));
    let again = stack.cmd("up", &[]).output().unwrap();
    assert!(again.status.success(), "{}", text(&again));
    let said = String::from_utf8_lossy(&again.stdout).into_owned();
    assert!(said.contains("pg_rewind failed") && said.contains("made again from a base backup"), "{said}");
    assert!(psql(&after, "INSERT INTO written VALUES (3)").is_some());
    let follows = (0..300).any(|_| psql(&before, "SELECT count(*) FROM written").as_deref() == Some("3"));
    assert!(follows, "the old primary, made again, does not follow the new one");
}
