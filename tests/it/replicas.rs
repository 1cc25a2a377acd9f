//! PostgreSQL's streaming replicas (`postgres.replicas`) against the real engine: made by a
//! base backup, streaming over TLS as `streaming_replica`, read-only, reached through
//! `DATABASE_READ_URL` by psql; verify's replica checks; a replica added to a running stack
//! without touching the primary.

use std::process::Command;

use crate::common::{DockerStack, docker_available, free_port, record, text, version_with};

fn with_replica(test: &str) -> DockerStack {
    DockerStack::new(test)
        .services(&["postgres"])
        .set("postgres.replicas=1")
        .set(&format!("network.ports.postgres_replicas={}", free_port()))
}

/// psql with `url` running `sql`, errors verbose (their SQLSTATE).
fn psql(url: &str, sql: &str) -> std::process::Output {
    Command::new("psql")
        .args([url, "-w", "-tA", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose", "-c", sql])
        .output()
        .expect("psql is installed")
}

/// The row `token` written through DATABASE_URL, read back through DATABASE_READ_URL: psql
/// asks until it is there (at most 300 tries).
fn arrives(read_url: &str, token: &str) -> bool {
    let query = format!("SELECT count(*) FROM replicated WHERE token = '{token}'");
    (0..300).any(|_| {
        let out = psql(read_url, &query);
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "1"
    })
}

/// Whether the engine has a container of that name.
fn exists(container: &str) -> bool {
    Command::new("docker").args(["inspect", container]).output().unwrap().status.success()
}

#[test]
fn a_replica_streams_refuses_writes_and_its_login_needs_a_certificate() {
    if !docker_available("replicas") {
        return;
    }
    let stack = with_replica("replicas");
    let up = stack.cmd("up", &["-q"]).output().unwrap();
    assert!(up.status.success(), "{}", text(&up));
    let (code, verdicts) = stack.verify();
    assert_eq!(code, 0, "{verdicts:?}");
    for id in [
        "pg.replica.1.streams",
        "pg.replica.1.lag",
        "pg.replica.1.write_refused",
        "pg.replication_login",
        "pg.replication_without_certificate_refused",
        "pg.logins_declared",
    ] {
        assert_eq!(verdicts.get(id).map(String::as_str), Some("pass"), "{id}: {verdicts:?}");
    }

    // psql, an independent client: the primary takes writes, the replica shows them and
    // refuses its own (SQLSTATE 25006).
    let (url, read_url) = (stack.env("DATABASE_URL"), stack.env("DATABASE_READ_URL"));
    assert!(read_url.contains("target_session_attrs=standby"), "{read_url}");
    let written = psql(&url, "CREATE TABLE replicated (token text); INSERT INTO replicated VALUES ('first')");
    assert!(written.status.success(), "{}", text(&written));
    assert!(arrives(&read_url, "first"), "the row never reached the replica");
    let recovery = psql(&read_url, "SELECT pg_is_in_recovery()");
    assert_eq!(String::from_utf8_lossy(&recovery.stdout).trim(), "t", "{}", text(&recovery));
    let refused = psql(&read_url, "INSERT INTO replicated VALUES ('on the replica')");
    assert!(!refused.status.success(), "a replica took a write: {}", text(&refused));
    assert!(text(&refused).contains("25006"), "{}", text(&refused));

    // The replication login over psql: accepted with its certificate, refused without it.
    let current = version_with(&record(&stack, "postgres/streaming_replica"), "current").unwrap();
    let password = current["value"].as_str().expect("the password in the file store").to_owned();
    let port = stack.env("DATABASE_URL").split(['@', '/']).nth(3).unwrap().split(':').nth(1).unwrap().to_owned();
    let root = stack.sandbox.stack();
    let login = |cert: bool| {
        let mut conninfo = format!(
            "host=localhost port={port} user=streaming_replica replication=true sslmode=verify-full sslrootcert={}",
            root.join("ca/ca.crt").display()
        );
        if cert {
            let dir = root.join("certs/clients/streaming_replica");
            conninfo +=
                &format!(" sslcert={} sslkey={}", dir.join("client.crt").display(), dir.join("client.key").display());
        }
        Command::new("psql")
            .args([conninfo.as_str(), "-w", "-tA", "-c", "IDENTIFY_SYSTEM"])
            .env("PGPASSWORD", &password)
            .output()
            .unwrap()
    };
    let with = login(true);
    assert!(with.status.success(), "{}", text(&with));
    let without = login(false);
    assert!(!without.status.success(), "{}", text(&without));
    assert!(text(&without).contains("connection requires a valid client certificate"), "{}", text(&without));

    // The replica survives its container: removed and brought back, it keeps its copy.
    let replica = format!("{}-postgres-1", stack.name);
    assert!(exists(&replica));
    assert!(Command::new("docker").args(["rm", "-f", &replica]).status().unwrap().success());
    let again = stack.cmd("up", &["-q"]).output().unwrap();
    assert!(again.status.success(), "{}", text(&again));
    let written = psql(&url, "INSERT INTO replicated VALUES ('second')");
    assert!(written.status.success(), "{}", text(&written));
    assert!(arrives(&read_url, "first") && arrives(&read_url, "second"));

    stack.cmd("down", &["-q"]).assert().success();
    assert!(!exists(&replica), "down left {replica}");
}

#[test]
fn a_replica_added_to_a_running_stack_leaves_the_primary_running() {
    if !docker_available("replica_added") {
        return;
    }
    let stack = DockerStack::new("replica_added").services(&["postgres"]);
    stack.cmd("up", &["-q", "--no-verify"]).assert().success();
    let primary = format!("{}-postgres", stack.name);
    let started = |name: &str| {
        let out =
            Command::new("docker").args(["inspect", "-f", "{{.Id}} {{.State.StartedAt}}", name]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let before = started(&primary);
    let stack = stack.set("postgres.replicas=1").set(&format!("network.ports.postgres_replicas={}", free_port()));
    let plan = stack.cmd("plan", &[]).output().unwrap();
    assert!(plan.status.success(), "{}", text(&plan));
    assert!(text(&plan).contains("postgres-1: created"), "{}", text(&plan));
    assert!(text(&plan).contains("base backup of the primary"), "{}", text(&plan));
    let up = stack.cmd("up", &["-q"]).output().unwrap();
    assert!(up.status.success(), "{}", text(&up));
    assert_eq!(started(&primary), before, "the primary was restarted or recreated");
    let (code, verdicts) = stack.verify();
    assert_eq!(code, 0, "{verdicts:?}");
    assert_eq!(verdicts["pg.replica.1.streams"], "pass");

    // Taken out again: its container goes, and its slot, which would keep WAL for it.
    let stack = stack.set("postgres.replicas=0");
    let up = stack.cmd("up", &["-q"]).output().unwrap();
    assert!(up.status.success(), "{}", text(&up));
    assert!(!exists(&format!("{}-postgres-1", stack.name)));
    let slots = stack
        .cmd("connect", &["postgres", "--admin", "--", "-tAc", "SELECT count(*) FROM pg_replication_slots"])
        .output()
        .unwrap();
    assert!(slots.status.success(), "{}", text(&slots));
    assert_eq!(String::from_utf8_lossy(&slots.stdout).trim(), "0", "{}", text(&slots));
    assert_eq!(started(&primary), before, "the primary was restarted or recreated");
}

/// The SHA-256 fingerprint of the certificate a PostgreSQL server presents on `port`
/// (openssl's STARTTLS for PostgreSQL), or of a PEM file.
fn fingerprint(source: Result<u16, &std::path::Path>) -> String {
    let pem = match source {
        Ok(port) => {
            let out = Command::new("sh")
                .args(["-c", &format!("openssl s_client -starttls postgres -connect 127.0.0.1:{port} </dev/null 2>/dev/null | openssl x509")])
                .output()
                .unwrap();
            out.stdout
        }
        Err(path) => std::fs::read(path).unwrap(),
    };
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(&pem).unwrap();
    String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).trim().to_owned()
}

#[test]
fn rotation_reaches_the_replicas() {
    if !docker_available("replica_rotation") {
        return;
    }
    let replica_port = free_port();
    let stack = DockerStack::new("replica_rotation")
        .services(&["postgres"])
        .set("postgres.replicas=1")
        .set(&format!("network.ports.postgres_replicas={replica_port}"));
    stack.cmd("up", &["-q", "--no-verify"]).assert().success();
    let certificate = stack.sandbox.stack().join("certs/postgres/server.crt");
    let before = fingerprint(Err(&certificate));
    assert_eq!(fingerprint(Ok(replica_port)), before);
    let rotated = stack
        .cmd(
            "rotate",
            &[
                "--force",
                "--only",
                "certificate/postgres",
                "--only",
                "postgres/health",
                "--only",
                "postgres/streaming_replica",
                "-q",
            ],
        )
        .output()
        .unwrap();
    assert!(rotated.status.success(), "{}", text(&rotated));
    let after = fingerprint(Err(&certificate));
    assert_ne!(after, before, "the certificate was not renewed");
    assert_eq!(fingerprint(Ok(replica_port)), after, "the replica still presents the old certificate");
    // The replica's healthcheck reads the health login's password file it was given.
    let replica = format!("{}-postgres-1", stack.name);
    let delivered = Command::new("docker")
        .args(["exec", &replica, "cat", "/etc/hardstack/secrets/health.pgpass"])
        .output()
        .unwrap();
    assert_eq!(delivered.stdout, stack.sandbox.read("config/postgres/secrets/health.pgpass"));
    // The replica streams with the new password, from the file it was handed.
    let record = record(&stack, "postgres/streaming_replica");
    assert!(record["versions"].as_array().unwrap().len() >= 2, "the replication password was not rotated: {record}");
    let pgpass = Command::new("docker")
        .args(["exec", &replica, "cat", "/etc/hardstack/secrets/streaming_replica.pgpass"])
        .output()
        .unwrap();
    assert_eq!(pgpass.stdout, stack.sandbox.read("config/postgres/secrets/streaming_replica.pgpass"));
    let (code, verdicts) = stack.verify();
    assert_eq!(code, 0, "{verdicts:?}");
    assert_eq!(verdicts["pg.replica.1.lag"], "pass");
}

/// The `test` profile commits asynchronously (`synchronous_commit = off`): a commit returns
/// before its WAL is written, and the WAL writer sends it on within `wal_writer_delay`, here
/// the longest PostgreSQL allows. A rotated password must still be on the replica before it
/// becomes current: the verify that follows the rotation logs in there with it.
#[test]
fn a_password_rotated_under_asynchronous_commit_is_on_the_replica_before_it_is_current() {
    if !docker_available("replica_async_commit") {
        return;
    }
    let stack = with_replica("replica_async_commit").template("postgres/postgresql.conf.tera", |t| {
        t.replacen("synchronous_commit = off", "synchronous_commit = off\nwal_writer_delay = 10s", 1)
    });
    stack.cmd("up", &["-q", "--no-verify"]).assert().success();
    let rotated = stack.cmd("rotate", &["--force", "--only", "postgres/app"]).output().unwrap();
    assert!(rotated.status.success(), "{}", text(&rotated));
    assert!(text(&rotated).contains("postgres/app: rotated"), "{}", text(&rotated));
    let (code, verdicts) = stack.verify();
    assert_eq!(code, 0, "{verdicts:?}");
    assert_eq!(verdicts["pg.replica.1.write_refused"], "pass");
}

#[test]
fn rotation_with_replicas_fails_no_client_operation() {
    if !docker_available("replica_load") {
        return;
    }
    let stack = with_replica("replica_load");
    stack.cmd("up", &["-q", "--no-verify"]).assert().success();
    // Writers on the primary and readers on the replica, each a new TLS login per operation
    // with the credentials the store has at that moment.
    use hardstack::profile::Service;
    let load =
        crate::common::Load::start_reading(&stack, &[Service::Postgres], &[1], 4, std::time::Duration::from_millis(20));
    let (ops, failures) = load.across_rotations(&stack, 2);
    assert!(ops > 50, "only {ops} operations ran");
    assert!(failures.is_empty(), "{} of {ops} operations failed: {failures:?}", failures.len());
    let (code, verdicts) = stack.verify();
    assert_eq!(code, 0, "{verdicts:?}");
}

#[test]
fn replicas_of_a_stack_that_publishes_nothing_are_verified_from_inside_its_network() {
    if !docker_available("replica_inside") {
        return;
    }
    let stack = with_replica("replica_inside").set("network.publish=false");
    let up = stack.cmd("up", &["-q"]).output().unwrap();
    assert!(up.status.success(), "{}", text(&up));
    let out = stack.cmd("verify", &["-o", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let document: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(document["vantage"], "network", "{document}");
    let verdict =
        |id: &str| document["checks"].as_array().unwrap().iter().find(|c| c["id"] == id).map(|c| c["verdict"].clone());
    for id in ["pg.replica.1.streams", "pg.replica.1.write_refused", "pg.replication_without_certificate_refused"] {
        assert_eq!(verdict(id), Some(serde_json::json!("pass")), "{id}: {document}");
    }
}
