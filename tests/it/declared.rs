//! The stack you declared, and only it: a second directory with the same stack name never
//! touches the first; mutating runs on one stack take turns; a rotation left in progress
//! (stopped after any step, or killed) is finished by the next `rotate` or `up`; the templates
//! a stack was made with survive rotation, convergence and restore; and verify sees what was
//! added on a server by hand.

use std::time::Duration;

use crate::common::{DockerStack, Load, Sandbox, docker_available, redis, text};

fn up(stack: &DockerStack) {
    let out = stack.cmd("up", &["-q"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// The names of the file store's secrets that have a pending version.
fn pending_secrets(stack: &DockerStack) -> Vec<String> {
    let root = stack.sandbox.stack().join("secrets");
    crate::common::files_under(&root)
        .into_iter()
        .filter(|file| {
            let record: serde_json::Value = serde_json::from_slice(&std::fs::read(root.join(file)).unwrap()).unwrap();
            record["versions"].as_array().unwrap().iter().any(|v| v["stages"].to_string().contains("pending"))
        })
        .collect()
}

fn assert_verified(stack: &DockerStack, when: &str) {
    let (code, verdicts) = stack.verify();
    let failed: Vec<_> = verdicts.iter().filter(|(_, v)| *v == "fail").collect();
    assert_eq!(code, 0, "verify after {when}: {failed:?}");
}

#[test]
fn a_second_directory_with_the_same_stack_name_never_touches_the_first() {
    if !docker_available("two_directories") {
        return;
    }
    let first = DockerStack::new("two_directories").services(&["postgres", "redis"]);
    up(&first);
    let identity: serde_json::Value = serde_json::from_slice(&first.sandbox.read("identity.json")).unwrap();
    let label = std::process::Command::new("docker")
        .args(["inspect", "-f", "{{index .Config.Labels \"hardstack.stack-id\"}}", &format!("{}-postgres", first.name)])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&label.stdout).trim(), identity["id"].as_str().unwrap());
    let objects = first.objects();
    // The same profile, name and ports from another directory.
    let second = DockerStack {
        sandbox: Sandbox::new(),
        name: first.name.clone(),
        args: first.args.clone(),
        services: first.services.clone(),
    };
    let first_dir = std::fs::canonicalize(first.sandbox.stack()).unwrap();
    // `up` in a new directory is refused before it writes anything.
    let out = second.cmd("up", &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("belongs to the stack of directory"), "{}", text(&out));
    assert!(!second.sandbox.stack().exists(), "a refused up in a new directory leaves nothing");
    second.cmd("init", &["-q"]).assert().success();
    for (command, extra) in [("up", &[][..]), ("down", &["--volumes"][..]), ("rotate", &["--force"][..])] {
        let out = second.cmd(command, extra).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{command}: {}", text(&out));
        let said = text(&out);
        assert!(
            said.contains(&format!("belongs to the stack of directory {}", first_dir.display()))
                && said.contains("--set stack.name=NAME")
                && said.contains("network.ports.postgres"),
            "{command}: {said}"
        );
    }
    assert_eq!(first.objects(), objects, "the first stack's containers, network and volumes are all there");
    assert_verified(&first, "the second directory's attempts");
    // The second directory's own secrets never reached the first stack's servers.
    let out = second.cmd("verify", &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("belongs to the stack of directory"), "{}", text(&out));
    let out = second.cmd("doctor", &["-o", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = report["checks"].as_array().unwrap().iter().find(|c| c["id"] == "doctor.identity").unwrap().clone();
    assert_eq!(check["verdict"], "fail", "{check}");
    // A directory whose identity.json was lost does not take its own objects for another's: it
    // says which identity to restore.
    let identity_file = first.sandbox.stack().join("identity.json");
    std::fs::rename(&identity_file, first.sandbox.root().join("identity.json.saved")).unwrap();
    let out = first.cmd("status", &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let expected = format!(
        "which its identity.json no longer holds: restore identity.json (its \"id\" is {}",
        identity["id"].as_str().unwrap()
    );
    assert!(text(&out).contains(&expected), "{}", text(&out));
    std::fs::rename(first.sandbox.root().join("identity.json.saved"), &identity_file).unwrap();
    assert_verified(&first, "identity.json restored");
    std::mem::forget(second); // Its drop would clean up by the (shared) name: the first's does.
}

#[test]
fn two_rotations_at_once_take_turns_with_no_failed_client_operation() {
    if !docker_available("concurrent_rotations") {
        return;
    }
    let stack = DockerStack::new("concurrent_rotations").services(&["postgres", "redis"]);
    up(&stack);
    let load = Load::start(&stack, 2, Duration::from_millis(20));
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let mut rotate = stack.cmd("rotate", &["--force"]);
            std::thread::spawn(move || rotate.output().unwrap())
        })
        .collect();
    let outputs: Vec<_> = runs.into_iter().map(|run| run.join().unwrap()).collect();
    let (ops, errors) = load.stop();
    for out in &outputs {
        assert!(out.status.success(), "{}", text(out));
    }
    let waited = outputs.iter().filter(|out| text(out).contains("is locked by `hardstack rotate`")).count();
    assert_eq!(waited, 1, "one run waited for the other: {:?}", outputs.iter().map(text).collect::<Vec<_>>());
    assert!(ops > 20, "too few operations to mean anything: {ops}");
    assert!(errors.is_empty(), "{} failed of {ops}: {:?}", errors.len(), errors.iter().take(5).collect::<Vec<_>>());
    assert!(pending_secrets(&stack).is_empty());
    assert_verified(&stack, "two rotations");
}

/// `rotate --until` each step for every credential at once, then the next plain `rotate`
/// (rotation off in the profile) or `up` finishes them all; then SIGKILL at moments spread
/// over a rotation, each followed by a plain `rotate`. Clients never fail.
#[test]
fn rotations_stopped_at_any_step_or_killed_are_finished_first_by_rotate_and_up() {
    if !docker_available("interrupted_rotations") {
        return;
    }
    let stack = DockerStack::new("interrupted_rotations").services(&["postgres", "redis"]);
    up(&stack);
    let load = Load::start(&stack, 2, Duration::from_millis(20));
    let credentials = [
        "postgres/app",
        "postgres/admin",
        "postgres/health",
        "postgres/backup",
        "redis/app",
        "redis/admin",
        "redis/health",
        "redis/backup",
        "certificate/postgres",
        "certificate/redis",
    ];
    for (until, resumer) in [("create", "rotate"), ("set", "rotate"), ("test", "up"), ("set", "up")] {
        let out = stack.cmd("rotate", &["--force", "--until", until]).output().unwrap();
        assert!(out.status.success(), "--until {until}: {}", text(&out));
        for name in credentials {
            assert!(text(&out).contains(&format!("{name}: stopped after {until}")), "{name}: {}", text(&out));
        }
        assert_eq!(pending_secrets(&stack).len(), 8, "after --until {until}");
        // verify relies on no version the server may no longer accept, even before the resume.
        assert_verified(&stack, &format!("--until {until}, before the resume"));
        let out = stack.cmd(resumer, &[]).output().unwrap();
        assert!(out.status.success(), "{resumer} after --until {until}: {}", text(&out));
        for name in credentials {
            assert!(
                text(&out).contains(&format!("{name}: finished the rotation left in progress")),
                "{resumer} after --until {until}, {name}: {}",
                text(&out)
            );
        }
        assert!(pending_secrets(&stack).is_empty(), "{resumer} after --until {until}");
        assert!(!stack.sandbox.stack().join("certs/postgres/server.crt.pending").exists());
        assert_verified(&stack, &format!("{resumer} after --until {until}"));
    }
    // Killed at moments spread over a whole rotation (a pass takes a few seconds).
    for delay in [150, 600, 1100, 1700, 2400, 3200] {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("hardstack"))
            .current_dir(stack.sandbox.root())
            .args(["rotate", "--force", "--no-verify", "-q"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        let out = stack.cmd("rotate", &[]).output().unwrap();
        assert!(out.status.success(), "rotate after a kill at {delay} ms: {}", text(&out));
        assert!(pending_secrets(&stack).is_empty(), "after a kill at {delay} ms: {}", text(&out));
        assert_verified(&stack, &format!("a kill at {delay} ms and a resume"));
    }
    let (ops, errors) = load.stop();
    // The backup login's current password is the one the server takes (a backup logs in with it).
    let out = stack.sandbox.cmd().args(["backup", "-q"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(ops > 50, "too few operations to mean anything: {ops}");
    assert!(errors.is_empty(), "{} failed of {ops}: {:?}", errors.len(), errors.iter().take(5).collect::<Vec<_>>());
}

#[test]
fn the_templates_a_stack_was_made_with_survive_rotation_convergence_and_restore() {
    if !docker_available("recorded_templates") {
        return;
    }
    let stack = DockerStack::new("recorded_templates").services(&["postgres", "redis"]).template(
        "redis/users.acl.tera",
        |t| {
            t.replace(
                "{% for user in redis.users -%}",
                "user reports on {{ redis.backup_passwords }} resetkeys resetchannels ~reports:* &reports:* +@read -@dangerous -@admin\n{% for user in redis.users -%}",
            )
        },
    );
    up(&stack);
    let acl = || String::from_utf8(stack.sandbox.read("config/redis/users.acl")).unwrap();
    let live = || redis(&stack, "admin", "redis/admin", &["ACL", "LIST"]);
    assert!(acl().contains("user reports ") && live().contains("user reports "));
    let inputs: serde_json::Value = serde_json::from_slice(&stack.sandbox.read("inputs.json")).unwrap();
    assert!(inputs["templates"]["redis/users.acl.tera"].is_string(), "{inputs}");
    // The template the stack records is used from its copy, whatever happens to the original.
    std::fs::remove_dir_all(stack.sandbox.root().join("tpl")).unwrap();
    let contents = || -> std::collections::BTreeMap<String, Vec<u8>> {
        crate::common::files_under(&stack.sandbox.stack())
            .into_iter()
            .map(|f| (f.clone(), stack.sandbox.read(&f)))
            .collect()
    };
    let before = contents();
    let out = stack.cmd("rotate", &["--force", "--only", "redis"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // A rotation of Redis's passwords rewrites only what holds them (and the lock and manifest).
    let after = contents();
    let changed: Vec<&String> = after.keys().filter(|f| before.get(*f) != after.get(*f)).collect();
    for file in &changed {
        assert!(
            file.starts_with("secrets/redis/")
                || ["config/redis/users.acl", "config/redis/secrets/health.password"].contains(&file.as_str())
                || [".hardstack-manifest.json", ".hardstack.lock"].contains(&file.as_str()),
            "rotating redis rewrote {file}: {changed:?}"
        );
    }
    assert!(changed.iter().any(|f| *f == "config/redis/users.acl"), "{changed:?}");
    assert!(acl().contains("user reports "), "rotation kept the recorded template: {}", acl());
    // Convergence (no --templates): nothing to change.
    let out = stack.sandbox.cmd().args(["plan", "-o", "json"]).output().unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["files"], serde_json::json!([]), "{plan}");
    let out = stack.sandbox.cmd().args(["up", "-q"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(live().contains("user reports "), "{}", live());
    // A restore renders with the recorded templates too.
    let out = stack.sandbox.cmd().args(["backup", "-q"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = stack.sandbox.cmd().args(["restore", "latest", "--force", "-q"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(acl().contains("user reports ") && live().contains("user reports "), "{}", live());
    assert_verified(&stack, "the restore");
}

#[test]
fn a_weakened_template_is_refused_before_anything_is_delivered_unless_its_rule_is_accepted() {
    if !docker_available("weakened_refused") {
        return;
    }
    let stack = DockerStack::new("weakened_refused").services(&["postgres", "redis"]);
    up(&stack);
    let original = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/redis/users.acl.tera"),
    )
    .unwrap();
    let edited = original
        .replace("{% for user in redis.users -%}", "user weak on nopass ~* &* +@all\n{% for user in redis.users -%}");
    assert_ne!(original, edited);
    stack.sandbox.write("weak/redis/users.acl.tera", &edited);
    let out = stack.cmd("plan", &["-o", "json", "--templates", "weak"]).output().unwrap();
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let refused = plan["audit_refused"].to_string();
    assert!(refused.contains("audit.acl.hashed_passwords") && refused.contains("weak has nopass"), "{plan}");
    let out = stack.cmd("up", &["--templates", "weak"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    for expected in [
        "refusing to deliver files that fail audit; nothing was delivered",
        "audit.acl.hashed_passwords: config/redis/users.acl: line 5: weak has nopass",
        "audit.acl.app_users_restricted",
        "--accept audit.acl.app_users_restricted,audit.acl.hashed_passwords",
    ] {
        assert!(text(&out).contains(expected), "{expected} in {}", text(&out));
    }
    assert!(!redis(&stack, "admin", "redis/admin", &["ACL", "LIST"]).contains("user weak "));
    assert!(!String::from_utf8(stack.sandbox.read("config/redis/users.acl")).unwrap().contains("user weak "));
    assert_verified(&stack, "a refused up");
    // Accepted by name: delivered, and said by status and verify, never silently.
    let accept = "audit.acl.app_users_restricted,audit.acl.hashed_passwords";
    let out = stack.cmd("up", &["--templates", "weak", "--accept", accept]).output().unwrap();
    assert!(text(&out).contains("warning: audit rule audit.acl.hashed_passwords fails"), "{}", text(&out));
    assert!(redis(&stack, "admin", "redis/admin", &["ACL", "LIST"]).contains("user weak "));
    for command in ["status", "verify"] {
        let out = stack.cmd(command, &[]).output().unwrap();
        assert!(
            text(&out)
                .contains(&format!("warning: this stack accepts failing audit rules {}", accept.replace(',', ", "))),
            "{command}: {}",
            text(&out)
        );
    }
    let out = stack.cmd("verify", &["-o", "json"]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["accepted_audit_rules"], serde_json::json!(accept.split(',').collect::<Vec<_>>()));
}

#[test]
fn verify_names_a_user_and_a_login_role_added_on_the_servers_by_hand() {
    if !docker_available("hand_made_users") {
        return;
    }
    let stack = DockerStack::new("hand_made_users").services(&["postgres", "redis"]);
    up(&stack);
    assert_verified(&stack, "up");
    let answer = redis(&stack, "admin", "redis/admin", &["ACL", "SETUSER", "sneaky", "on", "nopass", "+@all"]);
    assert_eq!(answer, "OK");
    // As the superuser over the container's socket, as an operator with a shell there would.
    let (profile, _) = stack.library();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let engine = hardstack::runtime::connect().await.unwrap();
        let spec = hardstack::containers::container_spec(&profile, hardstack::profile::Service::Postgres);
        let sql = "CREATE ROLE mallory LOGIN SUPERUSER; ALTER ROLE health CREATEDB;";
        hardstack::superuser::sql(&engine, &spec, sql).await.unwrap();
    });
    let out = stack.cmd("verify", &["-o", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = |id: &str| report["checks"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap().clone();
    let acl = check("redis.acl_declared");
    assert_eq!(acl["verdict"], "fail", "{acl}");
    assert!(acl["evidence"].as_str().unwrap().contains("user sneaky is on the server but not declared"), "{acl}");
    let roles = check("pg.logins_declared");
    assert_eq!(roles["verdict"], "fail", "{roles}");
    let evidence = roles["evidence"].as_str().unwrap();
    assert!(evidence.contains("mallory is a second superuser"), "{roles}");
    assert!(evidence.contains("health has CREATEDB"), "{roles}");
}
