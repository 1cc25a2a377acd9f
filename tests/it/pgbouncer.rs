//! PgBouncer in front of PostgreSQL, against the real servers: verify-full logins through the
//! pooler, what it must refuse, `env`'s URLs, and rotation through it under load.

use std::time::{Duration, Instant};

use std::path::Path;

use crate::common::{DockerStack, Load, docker_available, example_binary, psql, skipped, text};

/// A psql query against a URL; its answer, or the error psql printed.
fn psql_at(url: &str, sql: &str) -> Result<String, String> {
    let out =
        std::process::Command::new("psql").args([url, "-w", "-tA", "-c", sql]).output().expect("psql is installed");
    if out.status.success() { Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned()) } else { Err(text(&out)) }
}

#[test]
fn pgbouncer_pools_verify_full_logins_and_refuses_plaintext_certless_clients_and_its_console() {
    if !docker_available("pgbouncer_refusals") {
        return;
    }
    // Mutual TLS: PostgreSQL accepts the pooler's one certificate for application logins only
    // from the pooler's container (pg_hba.conf names it), and the pooler demands a certificate.
    let stack =
        DockerStack::new("pgbouncer_refusals").services(&["postgres", "pgbouncer"]).set("tls.client_certs=required");
    let out = stack.cmd("up", &["-q", "--no-verify"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let (code, verdicts) = stack.verify();
    assert_eq!(code, 0, "{verdicts:?}");
    for id in [
        "pgbouncer.tls_login",
        "pgbouncer.plaintext_refused",
        "pgbouncer.admin_console_refused",
        "pgbouncer.no_client_cert_refused",
        "pg.logins_declared",
    ] {
        assert_eq!(verdicts[id], "pass", "{id}: {verdicts:?}");
    }

    // psql, an independent client, through DATABASE_URL (the pooler) and beside it directly.
    let pooled = stack.env("DATABASE_URL");
    let direct = stack.env("DATABASE_DIRECT_URL");
    assert_ne!(pooled, direct);
    assert_eq!(psql(&stack, "SELECT current_user"), "app_owner");
    let server_port = |url: &str| psql_at(url, "SELECT inet_server_port()").unwrap();
    assert_eq!(server_port(&pooled), server_port(&direct), "both reach the same PostgreSQL");
    // Protocol-level prepared statements (tokio-postgres names each one it prepares) through a
    // transaction pool, from two clients at once, one holding a transaction open meanwhile.
    let (profile, dir) = stack.library();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = hardstack::secrets::store::Store::open(&profile, &dir).await.unwrap();
        let service = hardstack::profile::Service::Pgbouncer;
        let target = hardstack::probe::app_target(&profile, &dir, &store, service).await.unwrap().unwrap();
        let first = hardstack::probe::postgres_client(&target).await.unwrap();
        let second = hardstack::probe::postgres_client(&target).await.unwrap();
        let plus_one = first.prepare("SELECT $1::int + 1").await.unwrap();
        let times_two = second.prepare("SELECT $1::int * 2").await.unwrap();
        first.batch_execute("BEGIN").await.unwrap();
        for n in 0..10i32 {
            let row = second.query_one(&times_two, &[&n]).await.unwrap();
            assert_eq!(row.get::<_, i32>(0), n * 2);
        }
        first.batch_execute("COMMIT").await.unwrap();
        second.batch_execute("BEGIN").await.unwrap();
        for n in 0..10i32 {
            let row = first.query_one(&plus_one, &[&n]).await.unwrap();
            assert_eq!(row.get::<_, i32>(0), n + 1);
        }
        second.batch_execute("COMMIT").await.unwrap();
        first.close().await;
        second.close().await;
    });

    // What the pooler refuses, each with its own message.
    let plaintext = pooled.replace("sslmode=verify-full", "sslmode=disable");
    assert!(psql_at(&plaintext, "SELECT 1").unwrap_err().contains("SSL required"));
    let no_cert = pooled.split("&sslcert=").next().unwrap().to_owned();
    let refused = psql_at(&no_cert, "SELECT 1").unwrap_err();
    assert!(refused.contains("certificate"), "{refused}");
    let console = pooled.replacen("/app?", "/pgbouncer?", 1);
    assert!(psql_at(&console, "SHOW POOLS").unwrap_err().contains("not allowed"));

    // The pooler's own PostgreSQL login cannot be used from the host: it takes PgBouncer's
    // certificate, which never leaves the stack directory and the pooler's volume, and no
    // other certificate (the application's, CN = app) stands in for it.
    let own = direct.replacen("postgresql://app", "postgresql://pgbouncer", 1).replacen("/app?", "/postgres?", 1);
    let refused = psql_at(&own, "SELECT 1").unwrap_err();
    assert!(refused.contains("certificate authentication failed for user \"pgbouncer\""), "{refused}");
    let without = own.split("&sslcert=").next().unwrap().to_owned();
    let refused = psql_at(&without, "SELECT 1").unwrap_err();
    assert!(refused.contains("connection requires a valid client certificate"), "{refused}");

    // No secret in the container's environment, and the posture of the other services.
    let inspect = std::process::Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{json .Config.Env}} {{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}}",
        ])
        .arg(format!("{}-pgbouncer", stack.name))
        .output()
        .unwrap();
    let inspected = String::from_utf8_lossy(&inspect.stdout).to_string();
    assert!(inspected.ends_with("999:999 true [ALL]\n"), "{inspected}");
    assert!(!inspected.to_lowercase().contains("password"), "{inspected}");
}

#[test]
fn rotation_through_pgbouncer_under_traffic_has_zero_failed_operations() {
    if !docker_available("pgbouncer_rotation") {
        return;
    }
    let stack = DockerStack::new("pgbouncer_rotation").services(&["postgres", "pgbouncer"]);
    let out = stack.cmd("up", &["-q", "--no-verify"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // Every operation is a new TLS connection and SCRAM login through the pooler, with the
    // credential read from the store just before.
    let load = Load::start_on(&stack, &[hardstack::profile::Service::Pgbouncer], 4, Duration::ZERO);
    let started = Instant::now();
    // Odd: the alternate logins are the current ones at the end, for verify to use.
    let rounds = 3;
    let (ops, errors) = load.across_rotations(&stack, rounds);
    println!(
        "pgbouncer load test: {ops} operations, {} failures, over {:.1} s with {rounds} rotations",
        errors.len(),
        started.elapsed().as_secs_f64()
    );
    let (code, verdicts) = stack.verify();
    assert_eq!(code, 0, "{verdicts:?}");
    assert!(ops > 50, "too few operations to mean anything: {ops}");
    assert_eq!(errors.len(), 0, "{:?}", errors.iter().take(5).collect::<Vec<_>>());
}

#[test]
fn status_details_shows_each_services_live_numbers_and_never_a_verifier() {
    if !docker_available("status_details") {
        return;
    }
    let stack = DockerStack::new("status_details").with("pgbouncer");
    let out = stack.cmd("up", &["-q", "--no-verify"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // A statement through the pooler, and a rotation (ALTER ROLE ... PASSWORD with a verifier).
    assert_eq!(psql(&stack, "SELECT 20 + 22 AS status_details_marker"), "42");
    let out = stack.cmd("rotate", &["--force", "--no-verify"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = stack.cmd("status", &["--details", "-o", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!printed.contains("SCRAM-SHA-256$"), "a verifier in status: {printed}");
    let report: serde_json::Value = serde_json::from_str(&printed).unwrap();
    let details = |service: &str| {
        report["services"].as_array().unwrap().iter().find(|s| s["service"] == service).unwrap()["details"].clone()
    };
    let postgres = details("postgres");
    assert!(postgres["max_connections"].as_i64().unwrap() > 0, "{postgres}");
    assert!(postgres["connections"].as_i64().unwrap() >= 1, "{postgres}");
    let slowest = postgres["slowest_statements"].as_array().unwrap_or_else(|| panic!("{postgres}"));
    assert!(!slowest.is_empty(), "{postgres}");
    let pgbouncer = details("pgbouncer");
    assert_eq!(pgbouncer["waiting"], 0, "{pgbouncer}");
    assert!(pgbouncer["server_connections"].as_u64().unwrap() >= 1, "{pgbouncer}");
    let redis = details("redis");
    assert!(redis["used_memory"].as_u64().unwrap() > 0, "{redis}");
    assert_eq!(redis["maxmemory"], 192 << 20, "{redis}");
    assert_eq!(redis["evicted_keys"], 0, "{redis}");
    // Nothing pg_stat_statements keeps holds a verifier (ALTER ROLE ... PASSWORD is a utility
    // statement, which it is told not to track), whatever status shows of it.
    let (profile, _) = stack.library();
    let spec = hardstack::containers::container_spec(&profile, hardstack::profile::Service::Postgres);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let kept = runtime
        .block_on(async {
            let engine = hardstack::runtime::connect().await?;
            let sql = "SELECT count(*) FILTER (WHERE query LIKE '%SCRAM-SHA-256%') || ' of ' || count(*) FROM monitoring.pg_stat_statements;";
            hardstack::superuser::sql(&engine, &spec, sql).await
        })
        .unwrap();
    assert!(kept.trim().starts_with("0 of "), "{kept}");
    let human = stack.cmd("status", &["--details"]).output().unwrap();
    let human = String::from_utf8_lossy(&human.stdout).to_string();
    assert!(human.contains("connections ") && human.contains(" waiting;") && human.contains("maxmemory"), "{human}");
    // --watch redraws the same screen on its schedule until Ctrl-C, which ends it with success.
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("hardstack"))
        .current_dir(stack.sandbox.root())
        .env_remove("HARDSTACK_DIR")
        .env_remove("HARDSTACK_PROFILE")
        .args(["status", "--watch", "1s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3500));
    let interrupted = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(interrupted.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let screens = String::from_utf8_lossy(&out.stdout);
    let frames: Vec<&str> = screens.split("\x1b[2J\x1b[H").filter(|f| !f.is_empty()).collect();
    assert!(frames.len() >= 2, "{} screens: {screens}", frames.len());
    for frame in frames {
        assert!(frame.contains("maxmemory") && frame.contains("(every 1s; Ctrl-C stops)"), "{frame}");
    }
}

/// The examples in three languages (Rust: postgres_pool through the pooler, redis_manager,
/// qdrant_rest; Python: psycopg_pool and redis-py; Node: pg and ioredis), applications that ask
/// `hardstack env` for their credentials for each new connection, keep working across two
/// forced rotations with no failed operation. PostgreSQL's login alternates, and Redis's previous
/// password expires between the rotations (`rotation.grace=2s`), so a client that kept the
/// first credentials would fail.
#[test]
fn the_examples_in_three_languages_ride_through_two_rotations() {
    if !docker_available("examples_rotation") {
        return;
    }
    let stack = DockerStack::new("examples_rotation").with("pgbouncer").set("rotation.grace=2s");
    let out = stack.cmd("up", &["-q", "--no-verify"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut programs: Vec<(&str, Vec<String>)> = ["postgres_pool", "redis_manager", "qdrant_rest"]
        .iter()
        .map(|e| (*e, vec![example_binary(e).display().to_string()]))
        .collect();
    if let Some(python) = example_runtime("python", Path::new("/opt/hardstack-examples/bin/python")) {
        programs.push(("python", vec![python, root.join("examples/python/app.py").display().to_string()]));
    }
    if root.join("examples/node/node_modules").is_dir() {
        programs.push(("node", vec!["node".to_owned(), root.join("examples/node/app.js").display().to_string()]));
    } else {
        example_missing("node", "examples/node/node_modules (npm ci --prefix examples/node)");
    }
    let running: Vec<_> = programs
        .into_iter()
        .map(|(name, command)| {
            let child = std::process::Command::new(&command[0])
                .args(&command[1..])
                .args(["--seconds", "14"])
                .env("HARDSTACK_DIR", stack.sandbox.stack())
                .env("HARDSTACK", assert_cmd::cargo::cargo_bin("hardstack"))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (name, child)
        })
        .collect();
    for _ in 0..2 {
        std::thread::sleep(Duration::from_secs(4));
        let out = stack.cmd("rotate", &["--force", "--no-verify"]).output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    for (name, child) in running {
        let out = child.wait_with_output().unwrap();
        let printed = text(&out);
        assert!(out.status.success(), "{name}: {printed}");
        let last = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_owned();
        let operations: u64 = last.strip_suffix(" operations, 0 failures").and_then(|n| n.parse().ok()).unwrap_or(0);
        assert!(operations > 0 || last.starts_with("SKIPPED"), "{name}: {printed}");
        if name == "redis_manager" {
            assert!(printed.contains("other keys refused: true"), "{printed}");
        }
        println!("{name}: {last}");
    }
}

/// The interpreter of an example language, from .ci/setup's place; `None` with a loud skip
/// (a failure under CI) when it is not there.
fn example_runtime(name: &str, installed: &Path) -> Option<String> {
    if installed.is_file() {
        return Some(installed.display().to_string());
    }
    example_missing(name, &installed.display().to_string());
    None
}

fn example_missing(name: &str, what: &str) {
    assert!(std::env::var_os("CI").is_none(), "the {name} example needs {what}, which .ci/setup installs");
    skipped(&format!("the {name} example: {what} is missing (.ci/setup installs it)"));
}

/// Day two: the pooler added to a running stack and taken out again. PostgreSQL keeps its data
/// and is reloaded, not restarted; the pooler's container goes with its declaration, and its
/// PostgreSQL login is disabled.
#[test]
fn the_pooler_is_added_to_and_removed_from_a_running_stack() {
    if !docker_available("pooler_day_two") {
        return;
    }
    let stack = DockerStack::new("pooler_day_two").services(&["postgres"]);
    let out = stack.cmd("up", &["-q", "--no-verify"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    psql(&stack, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)");
    let started = |stack: &DockerStack| {
        let out = std::process::Command::new("docker")
            .args(["inspect", "--format", "{{.State.StartedAt}}", &format!("{}-postgres", stack.name)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let before = started(&stack);

    let with = ["--set", r#"stack.services=["postgres","pgbouncer"]"#];
    let out = stack.cmd("up", &with).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(psql_at(&stack.env("DATABASE_URL"), "SELECT n FROM kept").unwrap(), "7");
    assert_eq!(started(&stack), before, "PostgreSQL was restarted to add the pooler");

    let without = ["--set", r#"stack.services=["postgres"]"#];
    let plan = stack.cmd("plan", &without).output().unwrap();
    let pooler = format!("{}-pgbouncer", stack.name);
    assert!(text(&plan).contains(&format!("{pooler}: remove the container")), "{}", text(&plan));
    let out = stack.cmd("up", &without).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let left = std::process::Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("name=^/{pooler}$")])
        .output()
        .unwrap();
    assert!(left.stdout.is_empty(), "{pooler} is still there");
    assert_eq!(psql(&stack, "SELECT n FROM kept"), "7");
    // verify (run by up) found no undeclared login: the pooler's is disabled.
    let (code, verdicts) = stack.verify();
    assert_eq!(code, 0, "{verdicts:?}");
    assert_eq!(verdicts["pg.logins_declared"], "pass");
}
