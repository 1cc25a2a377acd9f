//! `hardstack connect`: psql, redis-cli and curl against a running stack, here and from the
//! stack's image on its network, as the application user or the admin, with no secret on any
//! command line or in a container's configuration.

use std::process::{Command, Output, Stdio};

use crate::common::*;

/// `hardstack connect ARGS` for the stack, as a process of its own.
fn command(stack: &DockerStack, args: &[&str]) -> Command {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin("hardstack"));
    command.current_dir(stack.sandbox.root()).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    if let Some(host) = std::env::var_os("DOCKER_HOST") {
        command.env("DOCKER_HOST", host);
    }
    command.arg("connect").args(args);
    command
}

/// `connect ARGS` with `input` on its standard input.
fn connect(stack: &DockerStack, args: &[&str], input: &str) -> Output {
    let mut command = command(stack, args);
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// What `connect ARGS` printed, once it succeeded.
fn answer(stack: &DockerStack, args: &[&str], input: &str) -> String {
    let out = connect(stack, args, input);
    assert!(out.status.success(), "connect {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The password in a URL `scheme://user:password@host...`.
fn password_in(url: &str) -> String {
    let credentials = url.split("://").nth(1).unwrap().split('@').next().unwrap();
    credentials.split_once(':').unwrap().1.to_owned()
}

/// Every process's command line on this machine.
fn command_lines() -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(bytes) = std::fs::read(entry.path().join("cmdline")) {
            lines.push(String::from_utf8_lossy(&bytes).replace('\0', " "));
        }
    }
    lines
}

/// Whether a command line is `client`'s (its program's file name).
fn runs(line: &str, client: &str) -> bool {
    line.split(' ').next().is_some_and(|program| program.rsplit('/').next() == Some(client))
}

/// While `connect ARGS` runs a client that takes a few seconds: every process's command line
/// (once the client's own shows up, so the scan saw it; and from the network, once the
/// one-off container shows up too), and that container's configuration (`docker inspect`).
fn seen_while_running(stack: &DockerStack, args: &[&str], client: &str) -> (Vec<String>, String) {
    let network = args.contains(&"network");
    let child =
        command(stack, args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (mut lines, mut inspected) = (Vec::new(), String::new());
    for _ in 0..200 {
        lines = command_lines();
        let containers = std::process::Command::new("docker")
            .args(["ps", "-q", "--filter", &format!("label=hardstack.stack={}", stack.name)])
            .args(["--filter", "label=hardstack.service=connect"])
            .output()
            .unwrap();
        let ids = String::from_utf8_lossy(&containers.stdout).trim().to_owned();
        if !ids.is_empty() {
            let out = std::process::Command::new("docker").arg("inspect").arg(&ids).output().unwrap();
            inspected = String::from_utf8_lossy(&out.stdout).into_owned();
        }
        if lines.iter().any(|l| runs(l, client)) && (!network || !inspected.is_empty()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    (lines, inspected)
}

#[test]
fn connect_opens_each_client_with_verified_tls_here_and_on_the_stack_network() {
    if !docker_available("connect") {
        return;
    }
    let stack = DockerStack::new("connect");
    stack.cmd("up", &["--no-verify"]).assert().success();
    let database_url = stack.env("DATABASE_URL");
    let login = database_url.split("://").nth(1).unwrap().split(':').next().unwrap().to_owned();

    // psql, here and from PostgreSQL's image: the application's login, over verified TLS.
    for from in ["host", "network"] {
        assert_eq!(answer(&stack, &["--from", from, "postgres", "--", "-At"], "select 1"), "1", "from {from}");
        let info = answer(&stack, &["--from", from, "postgres", "--", "-c", r"\conninfo"], "");
        assert!(
            info.contains(&format!(r#"as user "{login}""#)) && info.contains("SSL connection (protocol: TLSv1.3"),
            "{info}"
        );
        assert_eq!(
            answer(&stack, &["--from", from, "--admin", "postgres", "--", "-Atc", "select session_user"], ""),
            "admin"
        );
        // redis-cli: the user's ACL, and the admin's.
        assert_eq!(answer(&stack, &["--from", from, "redis", "--", "ACL", "WHOAMI"], ""), "app");
        assert_eq!(answer(&stack, &["--from", from, "redis"], "ACL WHOAMI\n"), "app");
        assert_eq!(answer(&stack, &["--from", from, "--admin", "redis", "--", "ACL", "WHOAMI"], ""), "admin");
        // What the application user may not do stays refused.
        assert!(
            answer(&stack, &["--from", from, "redis", "--", "CONFIG", "GET", "maxmemory"], "").starts_with("NOPERM")
        );
    }
    if stack.services.iter().any(|s| s == "qdrant") {
        for from in ["host", "network"] {
            let listed = answer(&stack, &["--from", from, "qdrant", "--", "/collections"], "");
            assert!(listed.contains(r#""status":"ok""#), "from {from}: {listed}");
            // The key is checked: a request without it is a 401 (curl -i shows the status).
            let created = answer(
                &stack,
                &["--from", from, "--admin", "qdrant", "--", "-X", "PUT", "/collections/c", "--json", "@-"],
                r#"{"vectors":{"size":2,"distance":"Dot"}}"#,
            );
            assert!(created.contains(r#""result":true"#), "from {from}: {created}");
            let deleted =
                answer(&stack, &["--from", from, "--admin", "qdrant", "--", "-X", "DELETE", "/collections/c"], "");
            assert!(deleted.contains(r#""result":true"#), "from {from}: {deleted}");
        }
    }

    // -o json: one document with what the client printed and its exit code.
    let out = connect(&stack, &["-o", "json", "postgres", "--", "-At", "-c", "select 41 + 1"], "");
    assert!(out.status.success(), "{}", text(&out));
    let document: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(document["schema"], "hardstack.connect/v1");
    assert_eq!((document["stdout"].as_str(), document["exit_code"].as_i64()), (Some("42\n"), Some(0)));
    // The client's exit code is connect's.
    let out = connect(&stack, &["postgres", "--", "-v", "ON_ERROR_STOP=1", "-c", "select nope"], "");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains(r#"column "nope" does not exist"#), "{}", text(&out));
    // An application user the profile does not have is named, with the ones it has.
    let out = connect(&stack, &["--user", "nobody", "postgres"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no application user `nobody` in the profile; pick one of: app"), "{}", text(&out));

    // No secret on a command line here, in the one-off container's configuration, or in the
    // containers' command lines (the engine's processes are this machine's).
    let password = password_in(&database_url);
    let redis_password = password_in(&stack.env("REDIS_URL"));
    for from in ["host", "network"] {
        let (lines, inspected) =
            seen_while_running(&stack, &["--from", from, "postgres", "--", "-Atc", "select pg_sleep(3)"], "psql");
        assert!(lines.iter().any(|l| runs(l, "psql")), "the scan saw the client ({from})");
        assert!(!lines.iter().any(|l| l.contains(&password)), "a command line holds the password ({from})");
        if from == "network" {
            assert!(inspected.contains("PGSSLMODE=verify-full"), "the scan saw the container: {inspected}");
            assert!(!inspected.contains(&password), "the container's configuration holds the password");
        }
        let (lines, inspected) =
            seen_while_running(&stack, &["--from", from, "redis", "--", "-r", "30", "-i", "0.1", "PING"], "redis-cli");
        assert!(lines.iter().any(|l| runs(l, "redis-cli")), "the scan saw redis-cli ({from})");
        if from == "network" {
            assert!(inspected.contains("REDISCLI_HISTFILE"), "the scan saw the container: {inspected}");
        }
        assert!(!lines.iter().any(|l| l.contains(&redis_password)), "a command line holds Redis's password ({from})");
        assert!(!inspected.contains(&redis_password), "the container's configuration holds Redis's password");
    }
    // Nothing of the one-off containers is left.
    assert!(!stack.objects().iter().any(|o| o.contains("connect")), "{:?}", stack.objects());
}
