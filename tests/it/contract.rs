//! The JSON contract and the exit codes: with `-o json` every command prints exactly one JSON
//! document on stdout (its schema name and version in it), errors one on stderr; usage errors
//! exit 64, distinct from a failed check (1) and a failed environment (2).

use std::process::Output;

use serde_json::Value;

use crate::common::*;

/// The one JSON document of a stream; fails unless there is exactly one.
fn one_document(bytes: &[u8], what: &str) -> Value {
    let documents: Vec<Value> = serde_json::Deserializer::from_slice(bytes)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", String::from_utf8_lossy(bytes)));
    assert_eq!(documents.len(), 1, "{what}: {} documents: {}", documents.len(), String::from_utf8_lossy(bytes));
    documents.into_iter().next().unwrap()
}

/// Stdout's one document, after success, with its schema checked.
fn succeeded(out: &Output, what: &str, schema: &str) -> Value {
    assert!(out.status.success(), "{what}: {}", text(out));
    let document = one_document(&out.stdout, what);
    assert_eq!(document["schema"], schema, "{what}: {document}");
    document
}

/// Stderr's one error document, with the exit code it says and the process gave.
fn failed(out: &Output, what: &str, code: i32) -> Value {
    assert_eq!(out.status.code(), Some(code), "{what}: {}", text(out));
    let document = one_document(&out.stderr, what);
    assert_eq!(document["schema"], "hardstack.error/v1", "{what}: {document}");
    assert_eq!(document["exit_code"], code, "{what}: {document}");
    assert!(out.stdout.is_empty(), "{what}: stdout {}", String::from_utf8_lossy(&out.stdout));
    document
}

#[test]
fn usage_errors_exit_64_and_every_offline_command_prints_one_document() {
    let sandbox = Sandbox::new();
    let run = |args: &[&str]| sandbox.cmd().args(args).output().unwrap();
    // The exit codes, in every help screen.
    for args in [&["--help"][..], &["up", "--help"], &["connect", "--help"]] {
        let out = run(args);
        assert!(out.status.success());
        let help = String::from_utf8_lossy(&out.stdout);
        for line in
            ["Exit codes:", "  0   success", "  1   a check failed", "  2   the environment failed", "  64  usage"]
        {
            assert!(help.contains(line), "{args:?} help lacks {line:?}: {help}");
        }
    }
    // Usage errors: 64, as text, or as one JSON document on stderr with -o json.
    let out = run(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unrecognized subcommand 'frobnicate'"));
    let error = failed(&run(&["-o", "json", "up", "--timeout", "soon"]), "a bad value", 64);
    assert!(error["error"].as_str().unwrap().contains("invalid value 'soon' for '--timeout"), "{error}");
    failed(&run(&["-o", "json", "status", "--watch", "1s"]), "status --watch -o json", 64);
    failed(&run(&["-o", "json", "rotate", "--daemon"]), "rotate --daemon -o json", 64);
    let out = run(&["-o", "env", "audit"]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    assert!(text(&out).contains("-o env is `hardstack env`'s dotenv form"), "{}", text(&out));
    // Bad input: 1, one document on stderr, nothing on stdout, nothing written.
    let error = failed(&run(&["-o", "json", "init", "--set", "network.ports.redis=eighty"]), "bad input", 1);
    assert!(error["error"].as_str().unwrap().contains("--set network.ports.redis=eighty"), "{error}");
    assert!(!sandbox.stack().exists());
    let error = failed(&run(&["-o", "json", "verify", "--dir", "nowhere"]), "no stack directory", 1);
    assert!(error["error"].as_str().unwrap().contains("nowhere"), "{error}");
    // The environment failed: 2.
    let out = sandbox.cmd().args(["-o", "json", "up"]).env("DOCKER_HOST", "unix:///nonexistent.sock").output().unwrap();
    failed(&out, "an unreachable engine", 2);

    // init lists every file it wrote, the systemd units and the Kubernetes manifests too.
    let init =
        succeeded(&run(&["-o", "json", "init", "--systemd", "--target", "kubernetes"]), "init", "hardstack.init/v1");
    let paths: Vec<&str> = init["changed"].as_array().unwrap().iter().map(|c| c["path"].as_str().unwrap()).collect();
    for expected in
        ["hardstack.toml", "ca/ca.crt", "systemd/hardstack-rotate-hardstack-dev.timer", "kubernetes/kustomization.yaml"]
    {
        assert!(paths.contains(&expected), "init -o json lacks {expected}: {paths:?}");
    }
    // An --only that names no credential of the stack is refused before anything is reached.
    let error = failed(&run(&["-o", "json", "rotate", "--only", "qdrant-api-key"]), "rotate --only nothing", 64);
    assert!(error["error"].as_str().unwrap().contains("its credentials: postgres/app"), "{error}");
    // A no-op prints its document too.
    let again = succeeded(&run(&["-o", "json", "init"]), "init again", "hardstack.init/v1");
    assert_eq!(again["changed"], serde_json::json!([]), "{again}");
    succeeded(&run(&["-o", "json", "audit"]), "audit", "hardstack.checks/v1");
    succeeded(&run(&["-o", "json", "env"]), "env", "hardstack.env/v1");
    succeeded(&run(&["-o", "json", "profile", "show"]), "profile show", "hardstack.profile/v1");
    let schema = one_document(&run(&["-o", "json", "profile", "schema"]).stdout, "profile schema");
    assert_eq!(schema["$id"], "hardstack.profile/v1");
    let completions =
        succeeded(&run(&["-o", "json", "completions", "bash"]), "completions", "hardstack.completions/v1");
    assert!(completions["script"].as_str().unwrap().contains("_hardstack()"));
    // -o env: env's dotenv form.
    let out = run(&["-o", "env", "env"]);
    assert!(out.status.success(), "{}", text(&out));
    let dotenv = String::from_utf8_lossy(&out.stdout);
    assert!(
        dotenv.lines().all(|l| l.split_once('=').is_some_and(|(k, v)| !k.starts_with("export") && v.starts_with('"')))
    );
    assert!(dotenv.contains("DATABASE_URL=\"postgresql://"), "{dotenv}");
}

#[test]
fn every_command_on_a_running_stack_prints_one_document() {
    if !docker_available("contract") {
        return;
    }
    let stack = DockerStack::new("contract").services(&["redis"]);
    let json = |command: &str, extra: &[&str], schema: &str| -> Value {
        let mut args = vec!["-o", "json"];
        args.extend_from_slice(extra);
        succeeded(&stack.cmd(command, &args).output().unwrap(), &format!("{command} {extra:?}"), schema)
    };
    let up = json("up", &[], "hardstack.up/v1");
    assert_eq!(up["verify"]["schema"], "hardstack.checks/v1");
    // The stack's own profile from here on (doctor's ports are its, and in use by it).
    json("doctor", &[], "hardstack.checks/v1");
    json("up", &["--dry-run"], "hardstack.plan/v1");
    json("plan", &[], "hardstack.plan/v1");
    json("status", &[], "hardstack.status/v1");
    json("verify", &[], "hardstack.checks/v1");
    // Rotation is off in this profile: rotate says so in its document.
    let rotate = json("rotate", &[], "hardstack.rotate/v1");
    assert_eq!(rotate["rotation_enabled"], false, "{rotate}");
    let rotate = json("rotate", &["--force", "--only", "redis/app"], "hardstack.rotate/v1");
    assert_eq!(rotate["credentials"][0]["credential"], "redis/app", "{rotate}");
    let connect = json("connect", &["redis", "--", "PING"], "hardstack.connect/v1");
    assert_eq!(connect["stdout"], "PONG\n");
    let backup = json("backup", &[], "hardstack.backup/v1");
    let tested = json("backup", &["--test"], "hardstack.backup-test/v1");
    assert_eq!((&tested["set"], &tested["passed"]), (&backup["set"], &Value::Bool(true)), "{tested}");
    let down = json("down", &["--volumes"], "hardstack.down/v1");
    assert!(!down["volumes"].as_array().unwrap().is_empty(), "{down}");
    // restore brings the stack up inside its own document: one, with up's in it.
    let restored = json("restore", &["latest"], "hardstack.restore/v1");
    assert_eq!(restored["up"]["schema"], "hardstack.up/v1", "{restored}");
    assert_eq!(restored["up"]["verify"]["summary"]["fail"], 0, "{restored}");
    json("down", &[], "hardstack.down/v1");
    // The environment failed: 2, one document on stderr.
    let out = stack.cmd("verify", &["-o", "json"]).output().unwrap();
    failed(&out, "verify of a stopped stack", 2);
}
