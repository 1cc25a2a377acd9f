//! The aws secret store with the real SDK against moto in server mode on loopback (.ci/setup
//! starts it): secrets in AWS Secrets Manager's shape and stages, read by env, up and verify,
//! rotated with AWSPENDING removed when done.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::common::{DockerStack, Sandbox, docker_available};

/// moto's endpoint: `HARDSTACK_TEST_MOTO`, default http://127.0.0.1:5000.
fn endpoint() -> String {
    std::env::var("HARDSTACK_TEST_MOTO").unwrap_or_else(|_| "http://127.0.0.1:5000".into())
}

fn moto_available(test: &str) -> bool {
    let address = endpoint().trim_start_matches("http://").to_owned();
    let ok = std::net::TcpStream::connect(&address).is_ok();
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "{test}: moto does not answer at {}, and CI needs it", endpoint());
        crate::common::skipped(&format!("{test}: moto does not answer at {}", endpoint()));
    }
    ok
}

fn prefix() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!("hs-it-{}-{}/", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst))
}

fn aws_args(prefix: &str) -> Vec<String> {
    [
        "secrets.store=aws".to_owned(),
        format!("secrets.aws.endpoint={}", endpoint()),
        format!("secrets.aws.prefix={prefix}"),
        "secrets.aws.region=us-east-1".to_owned(),
    ]
    .into_iter()
    .flat_map(|s| ["--set".to_owned(), s])
    .collect()
}

fn with_credentials(mut cmd: assert_cmd::Command) -> assert_cmd::Command {
    cmd.env("AWS_ACCESS_KEY_ID", "testing").env("AWS_SECRET_ACCESS_KEY", "testing");
    cmd
}

fn client() -> (tokio::runtime::Runtime, aws_sdk_secretsmanager::Client) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let config = runtime.block_on(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(endpoint())
            .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .load(),
    );
    (runtime, aws_sdk_secretsmanager::Client::new(&config))
}

/// The secret string with `stage`, parsed.
fn value(
    runtime: &tokio::runtime::Runtime,
    client: &aws_sdk_secretsmanager::Client,
    id: &str,
    stage: &str,
) -> Option<serde_json::Value> {
    let out = runtime.block_on(client.get_secret_value().secret_id(id).version_stage(stage).send()).ok()?;
    serde_json::from_str(out.secret_string()?).ok()
}

/// Version id to its stage labels.
fn labels(
    runtime: &tokio::runtime::Runtime,
    client: &aws_sdk_secretsmanager::Client,
    id: &str,
) -> BTreeMap<String, Vec<String>> {
    let described = runtime.block_on(client.describe_secret().secret_id(id).send()).unwrap();
    described.version_ids_to_stages().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[test]
fn init_puts_secrets_in_aws_with_the_rds_shape_and_env_reads_them() {
    hardstack::probe::install_crypto_provider();
    if !moto_available("aws_init") {
        return;
    }
    let sandbox = Sandbox::new();
    let prefix = prefix();
    let args = aws_args(&prefix);
    let out = with_credentials(sandbox.cmd()).arg("init").args(&args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!sandbox.stack().join("secrets").exists(), "no secret lands on disk in the file store's place");
    let (runtime, client) = client();
    let pg = value(&runtime, &client, &format!("{prefix}postgres/app"), "AWSCURRENT").expect("postgres/app in AWS");
    for field in ["engine", "host", "port", "username", "password", "dbname"] {
        assert!(!pg[field].is_null(), "RDS field {field}: {pg}");
    }
    assert_eq!(pg["engine"], "postgres");
    assert_eq!(pg["username"], "app");
    assert_eq!(pg["dbname"], "app");
    assert!(value(&runtime, &client, &format!("{prefix}redis/app"), "AWSCURRENT").is_some());
    assert!(value(&runtime, &client, &format!("{prefix}qdrant/api-key"), "AWSCURRENT").is_some());

    // Idempotent: nothing is created or written the second time.
    let again = with_credentials(sandbox.cmd()).arg("init").output().unwrap();
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("nothing written"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );

    // env reads the password from AWS.
    let env = with_credentials(sandbox.cmd()).args(["env", "--format", "json"]).output().unwrap();
    assert!(env.status.success(), "{}", String::from_utf8_lossy(&env.stderr));
    let vars: serde_json::Value = serde_json::from_slice(&env.stdout).unwrap();
    let password = pg["password"].as_str().unwrap();
    assert!(vars["DATABASE_URL"].as_str().unwrap().contains(&format!("app:{password}@")));
}

#[test]
fn aws_store_without_credentials_or_endpoint_is_an_environment_failure() {
    if !moto_available("aws_unreachable") {
        return;
    }
    let sandbox = Sandbox::new();
    let mut args = aws_args(&prefix());
    args.extend(["--set".to_owned(), "secrets.aws.endpoint=http://127.0.0.1:9".to_owned()]);
    let out = with_credentials(sandbox.cmd()).arg("init").args(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("AWS Secrets Manager"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!sandbox.stack().exists(), "nothing is written when the store fails");
}

#[test]
fn rotation_with_the_aws_store_moves_stages_and_removes_awspending() {
    hardstack::probe::install_crypto_provider();
    if !docker_available("aws_rotation") || !moto_available("aws_rotation") {
        return;
    }
    let prefix = prefix();
    let mut stack = DockerStack::new("aws_rotation").services(&["postgres", "redis"]);
    stack.args.extend(aws_args(&prefix));
    let run = |command: &str, extra: &[&str]| with_credentials(stack.cmd(command, extra)).output().unwrap();
    let out = run("up", &["-q"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (runtime, client) = client();
    let id = format!("{prefix}postgres/app");
    let before = value(&runtime, &client, &id, "AWSCURRENT").unwrap();

    // Stopped after set: AWSPENDING is there, AWSCURRENT unchanged and working.
    let out = run("rotate", &["--force", "--only", "postgres/app", "--until", "set"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(value(&runtime, &client, &id, "AWSPENDING").is_some());
    assert_eq!(value(&runtime, &client, &id, "AWSCURRENT").unwrap()["password"], before["password"]);

    // The next run finishes: new current, old previous, no AWSPENDING left on any version.
    let out = run("rotate", &["--only", "postgres/app", "--set", "rotation.enabled=true"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let after = value(&runtime, &client, &id, "AWSCURRENT").unwrap();
    assert_ne!(after["password"], before["password"]);
    assert_eq!(after["username"], "app_alt");
    assert_eq!(value(&runtime, &client, &id, "AWSPREVIOUS").unwrap()["password"], before["password"]);
    let stages = labels(&runtime, &client, &id);
    assert!(stages.values().all(|s| !s.iter().any(|l| l == "AWSPENDING")), "{stages:?}");

    let out = run("rotate", &["--force", "--only", "redis/app"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        labels(&runtime, &client, &format!("{prefix}redis/app")).values().all(|s| !s.iter().any(|l| l == "AWSPENDING"))
    );

    // env, up and verify read from AWS: the stack is usable with the rotated credentials.
    let out = run("up", &["-o", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let verify = run("verify", &["-o", "json"]);
    assert_eq!(verify.status.code(), Some(0), "{}", String::from_utf8_lossy(&verify.stdout));
    let env = run("env", &["--format", "json"]);
    let vars: serde_json::Value = serde_json::from_slice(&env.stdout).unwrap();
    assert!(vars["DATABASE_URL"].as_str().unwrap().contains("://app_alt:"));
}

/// With the aws store, the Kubernetes manifests carry no value of the store: each file that
/// holds one is an External Secrets Operator template fetching the secrets by the names the aws
/// store uses; filled with the values of AWS Secrets Manager, each template gives back the file
/// the stack directory has.
#[test]
fn kubernetes_manifests_fetch_the_aws_stores_secrets_through_external_secrets() {
    if !moto_available("kubernetes_aws") {
        return;
    }
    let sandbox = Sandbox::new();
    let prefix = prefix();
    let mut cmd = with_credentials(sandbox.cmd());
    cmd.args(["init", "--profile", "prod", "--target", "kubernetes"]).args(aws_args(&prefix));
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", crate::common::text(&out));
    let dir = sandbox.stack().join("kubernetes");
    let external = std::fs::read_to_string(dir.join("external-secrets.yaml")).unwrap();
    let kustomization = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
    assert!(kustomization.contains("external-secrets.yaml"), "{kustomization}");

    // Every value of the store, read from AWS itself.
    let (runtime, client) = client();
    // Every page: moto holds the secrets of every test run since it started.
    let mut listed = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = runtime.block_on(client.list_secrets().set_next_token(token.clone()).send()).unwrap();
        listed.extend(page.secret_list().iter().cloned());
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let mut values: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for secret in &listed {
        let name = secret.name().unwrap();
        if !name.starts_with(&prefix) {
            continue;
        }
        let value = runtime.block_on(client.get_secret_value().secret_id(name).send()).unwrap();
        values.insert(name.to_owned(), serde_json::from_str(value.secret_string().unwrap()).unwrap());
    }
    assert!(values.len() >= 11, "{values:?}");
    for file in std::fs::read_dir(&dir).unwrap() {
        let file = file.unwrap();
        let text = std::fs::read_to_string(file.path()).unwrap();
        for value in values.values() {
            for property in ["password", "scram_verifier"] {
                if let Some(secret) = value[property].as_str() {
                    assert!(!text.contains(secret), "{} carries a value of the store", file.path().display());
                }
            }
        }
    }

    // The templates, filled as External Secrets Operator fills them, give back the files.
    let documents: Vec<serde_yaml_ng::Value> = serde_yaml_ng::Deserializer::from_str(&external)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|d: &serde_yaml_ng::Value| !d.is_null())
        .collect();
    let store = documents.iter().find(|d| d["kind"] == "SecretStore").unwrap();
    assert_eq!(store["spec"]["provider"]["aws"]["service"], "SecretsManager");
    let mut filled_files = 0;
    for secret in documents.iter().filter(|d| d["kind"] == "ExternalSecret") {
        let mut fetched: BTreeMap<String, String> = BTreeMap::new();
        for entry in secret["spec"]["data"].as_sequence().unwrap() {
            let remote = &entry["remoteRef"];
            let name = remote["key"].as_str().unwrap();
            assert!(name.starts_with(&prefix), "{name}: the aws store's names");
            assert_eq!(remote["version"], "AWSCURRENT", "a stack that never rotated has current versions only");
            let value = values.get(name).unwrap_or_else(|| panic!("{name} is not in AWS Secrets Manager"));
            let property = remote["property"].as_str().unwrap();
            fetched
                .insert(entry["secretKey"].as_str().unwrap().to_owned(), value[property].as_str().unwrap().to_owned());
        }
        for (key, template) in secret["spec"]["target"]["template"]["data"].as_mapping().unwrap() {
            let key = key.as_str().unwrap();
            let mut text = template.as_str().unwrap().to_owned();
            for (alias, value) in &fetched {
                use sha2::Digest as _;
                let hash = hex::encode(sha2::Sha256::digest(value.as_bytes()));
                text = text.replace(&format!("{{{{ .{alias} | sha256sum }}}}"), &hash);
                text = text.replace(&format!("{{{{ .{alias} }}}}"), value);
            }
            assert!(!text.contains("{{"), "{key}: a template expression left: {text}");
            // The key names the file: `<volume>.<path with dots>`; find it in the stack directory.
            let matching: Vec<PathBuf> = crate::common::files_under(&sandbox.stack().join("config"))
                .into_iter()
                .map(|f| sandbox.stack().join("config").join(f))
                .filter(|p| key.ends_with(p.file_name().unwrap().to_str().unwrap()))
                .collect();
            assert!(
                matching.iter().any(|p| std::fs::read_to_string(p).unwrap() == text),
                "{key}: the filled template is no file of the stack directory"
            );
            filled_files += 1;
        }
    }
    assert!(filled_files >= 5, "{filled_files} templated files");
    crate::kubernetes::validate_directory(&dir, "prod with the aws store");
}
