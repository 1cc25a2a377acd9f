//! Day two against the real engine: a changed profile reaches the running servers with the least
//! disruption, `plan` shows exactly what `up` then does, and each test checks the server's own
//! state as well as what `up -o json` reports.

use serde_json::Value;

use crate::common::{DockerStack, docker_available, psql, redis, text};

/// `hardstack <command>` with the stack's arguments (its `--profile` replaced by one in
/// `extra`) and `extra`.
fn command(stack: &DockerStack, command: &str, extra: &[&str]) -> std::process::Output {
    let mut args = stack.args.clone();
    if let Some(at) = extra.iter().position(|a| *a == "--profile") {
        let given = args.iter().position(|a| a == "--profile").expect("the stack names a profile");
        args[given + 1] = extra[at + 1].to_owned();
    }
    let extra: Vec<&str> = match extra.iter().position(|a| *a == "--profile") {
        Some(at) => extra.iter().enumerate().filter(|(i, _)| *i != at && *i != at + 1).map(|(_, a)| *a).collect(),
        None => extra.to_vec(),
    };
    stack.sandbox.cmd().arg(command).args(&args).args(extra).output().unwrap()
}

/// `hardstack <command> -o json <extra>`, which must succeed, as JSON.
fn json(stack: &DockerStack, name: &str, extra: &[&str]) -> Value {
    let mut args = vec!["-o", "json"];
    args.extend(extra);
    let out = command(stack, name, &args);
    assert!(out.status.success(), "{name} {extra:?}: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{name} JSON: {e}: {}", text(&out)))
}

/// The report of one service in an `up` or `plan` document.
fn service<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["services"].as_array().unwrap().iter().find(|s| s["service"] == name).unwrap()
}

/// `plan`, then `up` with the same arguments: `up` does exactly what `plan` said. Returns `up`'s
/// report.
fn plan_then_up(stack: &DockerStack, extra: &[&str]) -> Value {
    let for_plan: Vec<&str> = extra.iter().copied().filter(|a| *a != "--no-verify").collect();
    let plan = json(stack, "plan", &for_plan);
    assert_eq!(plan["schema"], "hardstack.plan/v1");
    let up = json(stack, "up", extra);
    for planned in plan["services"].as_array().unwrap() {
        let done = service(&up, planned["service"].as_str().unwrap());
        for field in ["change", "container", "actions"] {
            assert_eq!(planned[field], done[field], "plan and up differ on {field}: plan {plan} up {up}");
        }
    }
    up
}

fn container(name: &str, format: &str) -> String {
    let out = std::process::Command::new("docker").args(["inspect", "-f", format, name]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn settings_reload_live_and_update_in_place_without_a_new_container() {
    if !docker_available("converge_settings") {
        return;
    }
    let stack = DockerStack::new("converge_settings").services(&["postgres", "redis"]);
    json(&stack, "up", &["--no-verify"]);
    let (pg, redis_name) = (format!("{}-postgres", stack.name), format!("{}-redis", stack.name));
    let (pg_id, redis_id) = (container(&pg, "{{.Id}}"), container(&redis_name, "{{.Id}}"));
    let started = psql(&stack, "SELECT pg_postmaster_start_time()");

    let changes = [
        "--set",
        "postgres.slow_statement_ms=250",
        "--set",
        "redis.maxmemory=64MiB",
        "--set",
        "resources.redis.memory=300MiB",
    ];
    let up = plan_then_up(&stack, &changes);
    let postgres = service(&up, "postgres");
    assert_eq!(postgres["change"], "reloaded", "{up}");
    assert!(postgres["actions"].to_string().contains("log_min_duration_statement"), "{up}");
    let redis_report = service(&up, "redis");
    assert_eq!(redis_report["change"], "updated", "{up}");
    assert!(redis_report["actions"].to_string().contains("config_set"), "{up}");
    assert_eq!(up["verify"]["summary"]["fail"], 0, "{up}");

    // The servers run with the new values, in the same containers and processes.
    assert_eq!(psql(&stack, "SHOW log_min_duration_statement"), "250ms");
    assert_eq!(psql(&stack, "SELECT pg_postmaster_start_time()"), started, "PostgreSQL was not restarted");
    assert_eq!(redis(&stack, "admin", "redis/admin", &["CONFIG", "GET", "maxmemory"]), "maxmemory\n67108864");
    assert_eq!(container(&redis_name, "{{.HostConfig.Memory}}"), (300u64 * 1024 * 1024).to_string());
    assert_eq!((container(&pg, "{{.Id}}"), container(&redis_name, "{{.Id}}")), (pg_id.clone(), redis_id.clone()));

    // Nothing left to do.
    let mut same = changes.to_vec();
    same.push("--no-verify");
    let again = json(&stack, "up", &same);
    assert!(again["services"].as_array().unwrap().iter().all(|s| s["change"] == "unchanged"), "{again}");

    // A postmaster setting: a restart of the same container, named.
    same.extend(["--set", "postgres.max_connections=77"]);
    let up = plan_then_up(&stack, &same);
    let postgres = service(&up, "postgres");
    assert_eq!(postgres["change"], "restarted", "{up}");
    assert!(postgres["actions"].to_string().contains("max_connections (context postmaster)"), "{up}");
    assert_eq!(psql(&stack, "SHOW max_connections"), "77");
    assert_ne!(psql(&stack, "SELECT pg_postmaster_start_time()"), started, "PostgreSQL restarted");
    assert_eq!(container(&pg, "{{.Id}}"), pg_id, "the same container");
}

#[test]
fn users_are_declarative_on_the_running_stack() {
    if !docker_available("converge_users") {
        return;
    }
    let stack = DockerStack::new("converge_users").services(&["postgres", "redis"]);
    json(&stack, "up", &["--no-verify"]);
    let (pg, redis_name) = (format!("{}-postgres", stack.name), format!("{}-redis", stack.name));
    let ids = (container(&pg, "{{.Id}}"), container(&redis_name, "{{.Id}}"));

    // Add a user: its roles, database and ACL user appear, nothing is recreated.
    let users = |worker_keys: &str| {
        format!(
            "extends = \"test\"\n\n[[users]]\nname = \"app\"\ndatabase = \"app\"\nredis_keys = \"app:*\"\nqdrant = \"read-write\"\n\n\
             [[users]]\nname = \"worker\"\ndatabase = \"jobs\"\nredis_keys = \"{worker_keys}\"\nqdrant = \"none\"\n"
        )
    };
    stack.sandbox.write("two-users.toml", &users("jobs:*"));
    let up = plan_then_up(&stack, &["--profile", "two-users.toml"]);
    assert_eq!(service(&up, "postgres")["change"], "live", "{up}");
    let sql =
        service(&up, "postgres")["actions"].as_array().unwrap().iter().find(|a| a["action"] == "apply_sql").cloned();
    assert_eq!(sql.as_ref().map(|a| a["add_users"].clone()), Some(serde_json::json!(["worker"])), "{up}");
    assert!(
        service(&up, "redis")["actions"]
            .to_string()
            .contains(r#""action":"acl_load","add_users":["worker"],"remove_users":[]"#),
        "{up}"
    );
    assert_eq!(up["verify"]["summary"]["fail"], 0, "{up}");
    assert_eq!((container(&pg, "{{.Id}}"), container(&redis_name, "{{.Id}}")), ids);
    let worker_url = {
        let out = stack.sandbox.cmd().args(["env", "--user", "worker", "--format", "json"]).output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let env: Value = serde_json::from_slice(&out.stdout).unwrap();
        env["DATABASE_URL"].as_str().unwrap().to_owned()
    };
    let out = std::process::Command::new("psql")
        .args([
            &worker_url,
            "-w",
            "-tA",
            "-c",
            "SELECT current_user || ' ' || session_user || ' ' || current_database()",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "worker_owner worker jobs", "{}", text(&out));
    assert_eq!(redis(&stack, "worker", "redis/worker", &["SET", "jobs:1", "x"]), "OK");
    assert!(redis(&stack, "worker", "redis/worker", &["GET", "app:1"]).contains("NOPERM"));

    // Change its key pattern: the old one is refused from then on.
    stack.sandbox.write("two-users.toml", &users("queue:*"));
    let up = plan_then_up(&stack, &["--profile", "two-users.toml", "--no-verify"]);
    assert_eq!(service(&up, "redis")["change"], "live", "{up}");
    assert!(redis(&stack, "worker", "redis/worker", &["GET", "jobs:1"]).contains("NOPERM"));
    assert_eq!(redis(&stack, "worker", "redis/worker", &["SET", "queue:1", "x"]), "OK");

    // Remove it: its logins are disabled everywhere, its database stays.
    let up = plan_then_up(&stack, &["--profile", "test", "--no-verify"]);
    assert_eq!(service(&up, "postgres")["change"], "live", "{up}");
    assert!(
        service(&up, "postgres")["actions"].to_string().contains(r#""disable_logins":["worker","worker_alt"]"#),
        "{up}"
    );
    let out = std::process::Command::new("psql").args([&worker_url, "-w", "-tA", "-c", "SELECT 1"]).output().unwrap();
    assert!(!out.status.success() && text(&out).contains("rejects connection"), "{}", text(&out));
    let can_login = "SELECT string_agg(rolname || ' ' || rolcanlogin, ',' ORDER BY rolname) FROM pg_roles WHERE rolname LIKE 'worker%'";
    assert_eq!(psql(&stack, can_login), "worker false,worker_alt false,worker_owner false");
    assert!(service(&up, "redis")["actions"].to_string().contains(r#""remove_users":["worker"]"#), "{up}");
    assert!(redis(&stack, "worker", "redis/worker", &["PING"]).contains("WRONGPASS"));
    assert_eq!(psql(&stack, "SELECT count(*) FROM pg_database WHERE datname = 'jobs'"), "1");
    assert_eq!((container(&pg, "{{.Id}}"), container(&redis_name, "{{.Id}}")), ids);

    // --prune drops what it had.
    let up = plan_then_up(&stack, &["--profile", "test", "--no-verify", "--prune"]);
    assert!(service(&up, "postgres")["actions"].to_string().contains(r#""action":"prune","users":["worker"]"#), "{up}");
    assert_eq!(psql(&stack, "SELECT count(*) FROM pg_database WHERE datname = 'jobs'"), "0");
    assert_eq!(psql(&stack, "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'worker%'"), "0");
    let again = json(&stack, "plan", &["--profile", "test", "--prune"]);
    assert!(again["services"].as_array().unwrap().iter().all(|s| s["change"] == "unchanged"), "{again}");
}

#[test]
fn a_weakened_acl_template_reaches_redis_only_when_accepted_and_verify_catches_it() {
    if !docker_available("converge_acl_template") {
        return;
    }
    let stack = DockerStack::new("converge_acl_template").services(&["postgres", "redis"]);
    json(&stack, "up", &["--no-verify"]);
    // The default user on, with a password (with none, Redis's protected mode would refuse
    // every connection from outside and hide the weakening).
    let weakened = stack.template("redis/users.acl.tera", |t| {
        t.replace(
            "user default off resetpass resetkeys resetchannels -@all",
            "user default on >weak-password-000 ~* &* +@all",
        )
    });
    // Refused: nothing reaches Redis without the user accepting the rules by name.
    let out = command(&weakened, "up", &["-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("audit.acl.default_off: config/redis/users.acl:1"), "{}", text(&out));
    assert!(redis(&weakened, "admin", "redis/admin", &["ACL", "GETUSER", "default"]).contains("\noff\n"));
    let accept = ["--accept", "audit.acl.default_off,audit.acl.hashed_passwords"];
    let plan = json(&weakened, "plan", &accept);
    assert!(service(&plan, "redis")["actions"].to_string().contains("acl_load"), "{plan}");
    let out = command(&weakened, "up", &["-o", "json", accept[0], accept[1]]);
    assert_eq!(out.status.code(), Some(1), "verify fails: {}", text(&out));
    let up: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(service(&up, "redis")["change"], "live", "{up}");
    assert!(text(&out).contains("redis.default_user_refused"), "{}", text(&out));
    assert!(redis(&weakened, "admin", "redis/admin", &["ACL", "GETUSER", "default"]).contains("\non\n"));
}

#[test]
fn a_hand_edited_file_is_a_conflict_in_the_plan_and_changes_nothing() {
    if !docker_available("converge_conflict") {
        return;
    }
    let stack = DockerStack::new("converge_conflict").services(&["postgres", "redis"]);
    json(&stack, "up", &["--no-verify"]);
    let path = stack.sandbox.stack().join("config/postgres/postgresql.conf");
    let edited = std::fs::read_to_string(&path).unwrap().replace("log_connections = on", "log_connections = off");
    std::fs::write(&path, &edited).unwrap();
    let plan = json(&stack, "plan", &["--set", "postgres.slow_statement_ms=321"]);
    assert_eq!(
        plan["conflicts"],
        serde_json::json!([{"path": "config/postgres/postgresql.conf", "reason": "edited since hardstack wrote it"}]),
        "{plan}"
    );
    // plan wrote nothing: the edit is still there, and hardstack.toml did not take the change.
    assert_eq!(std::fs::read_to_string(&path).unwrap(), edited);
    assert!(!String::from_utf8(stack.sandbox.read("hardstack.toml")).unwrap().contains("slow_statement_ms = 321"));
    let out = command(&stack, "up", &["--set", "postgres.slow_statement_ms=321"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("refusing to overwrite") && text(&out).contains("postgresql.conf"), "{}", text(&out));
}
