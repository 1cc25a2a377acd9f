use predicates::prelude::*;

use crate::common::Sandbox;

fn env(sandbox: &Sandbox, args: &[&str]) -> String {
    let out = sandbox.cmd().arg("env").args(args).assert().success();
    String::from_utf8(out.get_output().stdout.clone()).unwrap()
}

fn current(sandbox: &Sandbox, name: &str) -> String {
    let record: serde_json::Value = serde_json::from_slice(&sandbox.read(&format!("secrets/{name}.json"))).unwrap();
    record["versions"][0]["value"].as_str().unwrap().to_owned()
}

#[test]
fn shell_format_has_verify_full_urls_and_the_current_secrets() {
    let sandbox = Sandbox::new();
    sandbox.init(&[]);
    let out = env(&sandbox, &[]);
    let ca = sandbox.stack().join("ca/ca.crt").canonicalize().unwrap();
    let pg = current(&sandbox, "postgres/app");
    assert!(
        out.contains(&format!(
            "export DATABASE_URL='postgresql://app:{pg}@localhost:5432/app?sslmode=verify-full&sslrootcert={}'",
            ca.display()
        )),
        "{out}"
    );
    let redis = current(&sandbox, "redis/app");
    assert!(out.contains(&format!("export REDIS_URL='rediss://app:{redis}@localhost:6379/0'")), "{out}");
    // Qdrant through its front: REST and gRPC, with the user's own key.
    assert!(out.contains("export QDRANT_URL='https://localhost:6333'"), "{out}");
    assert!(out.contains("export QDRANT_GRPC_URL='https://localhost:6334'"), "{out}");
    assert!(out.contains(&format!("export QDRANT_API_KEY='{}'", current(&sandbox, "qdrant-front/app"))));
    assert!(!out.contains(&current(&sandbox, "qdrant/api-key")), "Qdrant's own key is the front's, no application's");
    assert!(!out.contains("sslcert="), "dev does not require client certificates");
}

#[test]
fn json_and_dotenv_formats() {
    let sandbox = Sandbox::new();
    sandbox.init(&[]);
    let json: serde_json::Value = serde_json::from_str(&env(&sandbox, &["--format", "json"])).unwrap();
    assert!(json["DATABASE_URL"].as_str().unwrap().starts_with("postgresql://app:"));
    assert!(json["REDIS_CA_CERT"].as_str().unwrap().ends_with("ca/ca.crt"));
    let dotenv = env(&sandbox, &["--format", "dotenv"]);
    assert!(dotenv.lines().all(|l| l.contains("=\"")), "{dotenv}");
    assert!(dotenv.starts_with("DATABASE_URL=\"postgresql://"));
}

#[test]
fn mutual_tls_profile_adds_client_certificates() {
    let sandbox = Sandbox::new();
    sandbox.init(&["--profile", "prod"]);
    let out = env(&sandbox, &[]);
    // prod publishes nothing: the application reaches the services on the stack network.
    assert!(out.contains("@postgres:5432/app?sslmode=verify-full"), "{out}");
    assert!(out.contains("&sslcert=") && out.contains("certs/clients/app/client.key"));
    assert!(out.contains("export REDIS_CLIENT_CERT="));
}

#[test]
fn unknown_user_and_missing_stack_are_clear_errors() {
    let sandbox = Sandbox::new();
    sandbox
        .cmd()
        .arg("env")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("run `hardstack init --dir stack` first"));
    sandbox.init(&[]);
    sandbox
        .cmd()
        .args(["env", "--user", "bob"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no application user `bob`").and(predicate::str::contains("app")));
}

#[test]
fn the_read_url_names_every_replica_and_an_older_libpq_reads_it() {
    let sandbox = Sandbox::new();
    sandbox.init(&["--set", "postgres.replicas=2"]);
    let out = env(&sandbox, &["--format", "dotenv"]);
    let line = out.lines().find(|l| l.starts_with("DATABASE_READ_URL=")).unwrap_or_else(|| panic!("{out}"));
    let url = line.trim_start_matches("DATABASE_READ_URL=").trim_matches('"');
    assert!(url.contains("@localhost:5433,localhost:5434/app?"), "{url}");
    assert!(url.ends_with("&target_session_attrs=standby"), "{url}");
    // libpq (this machine's, 15 on Debian 12) parses the URL: pg_isready exits 3 on a URL it
    // refuses (load_balance_hosts before 16), 2 when the URL is fine and nothing answers.
    let ready = std::process::Command::new("pg_isready")
        .args(["-d", url, "-t", "1"])
        .output()
        .expect("pg_isready is installed");
    assert_eq!(ready.status.code(), Some(2), "{}", String::from_utf8_lossy(&ready.stdout));
}
