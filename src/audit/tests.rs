//! Every rule passes on a bundle hardstack generates, and fails on a bundle weakened in the
//! one way the rule is about.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use super::*;
use crate::report::Verdict;
use crate::stackdir::{self, StackDir};

/// A shipped profile by name; `cluster` is dev with a Qdrant cluster of three, `replicas` prod
/// with PostgreSQL's and Redis's replicas and the Sentinels.
fn shipped(name: &str) -> crate::profile::Profile {
    let (name, sets) = match name {
        "cluster" => ("dev", vec!["qdrant.nodes=3".to_owned(), "qdrant.data=volume".to_owned()]),
        "replicas" => {
            ("prod", ["postgres.replicas=2", "redis.replicas=2", "redis.sentinels=3"].map(str::to_owned).to_vec())
        }
        name => (name, Vec::new()),
    };
    crate::profile::load(&ProfileSource::Shipped(name.into()), &sets).unwrap().profile
}

fn generate(profile: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let dir = StackDir::new(tmp.path().join("stack"));
    let profile = shipped(profile);
    let tera = crate::render::load_templates(None).unwrap();
    let plan = crate::bundle::plan(&dir, &profile, &tera, &Default::default(), &mut rand::rngs::OsRng).unwrap().files;
    let mut manifest = stackdir::Manifest::default();
    let diff = stackdir::diff(&dir, &manifest, &plan).unwrap();
    stackdir::apply(&dir, &mut manifest, &plan, &diff.changes).unwrap();
    tmp
}

fn verdicts(dir: &Path) -> Vec<(String, Verdict)> {
    audit(&Bundle::load(dir).unwrap()).into_iter().map(|c| (c.id, c.verdict)).collect()
}

fn edit(dir: &Path, file: &str, edit: impl Fn(&str) -> String) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = edit(&text);
    assert_ne!(text, edited, "the weakening of {file} changed nothing");
    std::fs::write(path, edited).unwrap();
}

fn replace(from: &'static str, to: &'static str) -> impl Fn(&str) -> String {
    move |text: &str| text.replacen(from, to, 1)
}

fn regex_line(prefix: &'static str, to: &'static str) -> impl Fn(&str) -> String {
    move |text: &str| {
        text.lines()
            .map(|l| if l.trim_start().starts_with(prefix) { to.to_owned() } else { l.to_owned() })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    }
}

#[test]
fn generated_bundles_pass_every_rule() {
    for profile in ["dev", "test", "prod", "cluster"] {
        let tmp = generate(profile);
        for (id, verdict) in verdicts(&tmp.path().join("stack")) {
            assert_ne!(verdict, Verdict::Fail, "{profile}: {id}");
        }
    }
    // prod applies every rule but the cluster's, which a cluster passes.
    let tmp = generate("prod");
    let prod = verdicts(&tmp.path().join("stack"));
    assert!(prod.iter().all(|(id, v)| *v == Verdict::Pass || id == "audit.qdrant.cluster"), "{prod:?}");
    let tmp = generate("cluster");
    let cluster = verdicts(&tmp.path().join("stack"));
    assert!(cluster.iter().any(|(id, v)| id == "audit.qdrant.cluster" && *v == Verdict::Pass), "{cluster:?}");
}

#[test]
fn every_rule_has_a_unique_id() {
    let mut ids: Vec<&str> = rules().map(|r| r.id).collect();
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count);
}

type Weakening = (&'static str, &'static str, &'static str, Box<dyn Fn(&str) -> String>);

fn weakenings() -> Vec<Weakening> {
    vec![
        ("audit.pg.ssl_on", "dev", POSTGRESQL_CONF, Box::new(replace("ssl = on", "ssl = off"))),
        ("audit.pg.tls_min_version", "prod", POSTGRESQL_CONF, Box::new(replace("'TLSv1.3'", "'TLSv1.2'"))),
        (
            "audit.pg.forward_secret_ciphers",
            "dev",
            POSTGRESQL_CONF,
            Box::new(regex_line("ssl_ciphers", "ssl_ciphers = 'HIGH:MEDIUM:+3DES:!aNULL'")),
        ),
        (
            "audit.hba.tls_only",
            "dev",
            PG_HBA,
            Box::new(replace("# The healthcheck", "host app app all scram-sha-256\n# The healthcheck")),
        ),
        (
            "audit.pg.scram",
            "dev",
            POSTGRESQL_CONF,
            Box::new(replace("password_encryption = scram-sha-256", "password_encryption = md5")),
        ),
        (
            "audit.hba.scram_only",
            "dev",
            PG_HBA,
            Box::new(replace("# The healthcheck", "hostssl app app all trust\n# The healthcheck")),
        ),
        ("audit.hba.clientcert", "prod", PG_HBA, Box::new(replace(" clientcert=verify-full", ""))),
        (
            "audit.hba.no_all_all",
            "dev",
            PG_HBA,
            Box::new(replace("hostnossl", "hostssl all all all scram-sha-256\nhostnossl")),
        ),
        (
            "audit.hba.superuser_local_only",
            "dev",
            PG_HBA,
            Box::new(regex_line("hostssl    all        postgres", "hostssl all postgres all scram-sha-256")),
        ),
        (
            "audit.pg.passwords_as_verifiers",
            "dev",
            INIT_SQL,
            Box::new(|t: &str| format!("{t}ALTER ROLE app PASSWORD 'cleartext';\n")),
        ),
        ("audit.pg.initdb_args", "dev", COMPOSE, Box::new(replace(" --data-checksums", ""))),
        (
            "audit.pg.listen_addresses",
            "dev",
            POSTGRESQL_CONF,
            Box::new(regex_line("listen_addresses", "listen_addresses = '*'")),
        ),
        (
            "audit.pg.pgaudit",
            "prod",
            POSTGRESQL_CONF,
            Box::new(replace("pgaudit.log = 'ddl, write'", "pgaudit.log = 'ddl, write, role'")),
        ),
        ("audit.pg.pgaudit", "prod", POSTGRESQL_CONF, Box::new(replace(",pgaudit'", "'"))),
        (
            "audit.pg.wal_volume",
            "dev",
            COMPOSE,
            Box::new(|t: &str| {
                t.lines().filter(|l| !l.contains("POSTGRES_INITDB_WALDIR")).collect::<Vec<_>>().join("\n") + "\n"
            }),
        ),
        ("audit.pg.password_complexity", "prod", POSTGRESQL_CONF, Box::new(replace(",passwordcheck", ""))),
        (
            "audit.pg.error_verbosity_and_replication_logging",
            "dev",
            POSTGRESQL_CONF,
            Box::new(replace("log_error_verbosity = verbose", "log_error_verbosity = default")),
        ),
        (
            "audit.pg.error_verbosity_and_replication_logging",
            "dev",
            POSTGRESQL_CONF,
            Box::new(replace("log_replication_commands = on", "log_replication_commands = off")),
        ),
        (
            "audit.pg.public_schema",
            "dev",
            INIT_SQL,
            Box::new(|t: &str| {
                t.replacen(
                    "\\connect template1\nSET log_statement = 'none';\nREVOKE ALL ON SCHEMA public FROM PUBLIC;\n",
                    "\\connect template1\nSET log_statement = 'none';\n",
                    1,
                )
            }),
        ),
        (
            "audit.pg.every_role_limited",
            "dev",
            INIT_SQL,
            Box::new(replace("ALTER ROLE postgres CONNECTION LIMIT 5;", "")),
        ),
        (
            "audit.pg.every_role_limited",
            "dev",
            INIT_SQL,
            Box::new(replace("ALTER ROLE app_owner NOLOGIN CONNECTION LIMIT 20;", "ALTER ROLE app_owner NOLOGIN;")),
        ),
        (
            "audit.pg.logging",
            "dev",
            POSTGRESQL_CONF,
            Box::new(replace("log_connections = on", "log_connections = off")),
        ),
        (
            "audit.pg.authentication_timeout",
            "dev",
            POSTGRESQL_CONF,
            Box::new(replace("authentication_timeout = 30s", "authentication_timeout = 5min")),
        ),
        ("audit.pg.connection_limits", "dev", INIT_SQL, Box::new(|t: &str| format!("{t}CREATE ROLE extra LOGIN;\n"))),
        (
            "audit.pg.connection_limits",
            "dev",
            INIT_SQL,
            Box::new(replace("app LOGIN CONNECTION LIMIT 20 ", "app LOGIN ")),
        ),
        (
            "audit.pg.unix_socket_permissions",
            "dev",
            POSTGRESQL_CONF,
            Box::new(replace("unix_socket_permissions = 0770", "unix_socket_permissions = 0777")),
        ),
        ("audit.pg.tuning", "dev", POSTGRESQL_CONF, Box::new(regex_line("shared_buffers", "shared_buffers = 128MB"))),
        ("audit.redis.tls_only", "dev", REDIS_CONF, Box::new(replace("\nport 0\n", "\nport 6379\n"))),
        (
            "audit.redis.tls_protocols",
            "dev",
            REDIS_CONF,
            Box::new(replace("\"TLSv1.2 TLSv1.3\"", "\"TLSv1 TLSv1.2 TLSv1.3\"")),
        ),
        (
            "audit.redis.tls_auth_clients",
            "prod",
            REDIS_CONF,
            Box::new(replace("tls-auth-clients yes", "tls-auth-clients optional")),
        ),
        ("audit.redis.protected_mode", "dev", REDIS_CONF, Box::new(replace("protected-mode yes", "protected-mode no"))),
        (
            "audit.acl.default_off",
            "dev",
            USERS_ACL,
            Box::new(replace("user default off resetpass", "user default on nopass")),
        ),
        ("audit.acl.admin_and_health", "dev", USERS_ACL, Box::new(replace("-@all +ping", "-@all +ping +flushall"))),
        ("audit.acl.admin_and_health", "dev", USERS_ACL, Box::new(replace("+replconf +sync", "+replconf +sync +keys"))),
        ("audit.acl.app_users_restricted", "dev", USERS_ACL, Box::new(replace(" -@dangerous -@admin", ""))),
        (
            "audit.acl.hashed_passwords",
            "dev",
            USERS_ACL,
            Box::new(|t: &str| t.replacen("user app on #", "user app on >plaintext #", 1)),
        ),
        ("audit.redis.aclfile_writable_dir", "dev", REDIS_CONF, Box::new(replace("/acl/users.acl", "/users.acl"))),
        (
            "audit.redis.maxmemory",
            "dev",
            REDIS_CONF,
            Box::new(replace("maxmemory-policy allkeys-lru", "maxmemory-policy noeviction")),
        ),
        (
            "audit.redis.debug_module_off",
            "dev",
            REDIS_CONF,
            Box::new(replace("enable-debug-command no", "enable-debug-command yes")),
        ),
        ("audit.qdrant.tls", "dev", QDRANT_CONFIG, Box::new(replace("enable_tls: true", "enable_tls: false"))),
        ("audit.qdrant.api_keys", "dev", QDRANT_CONFIG, Box::new(regex_line("api_key:", "  api_key: \"\""))),
        (
            "audit.qdrant.client_certs",
            "prod",
            QDRANT_CONFIG,
            Box::new(replace("verify_https_client_certificate: true", "verify_https_client_certificate: false")),
        ),
        ("audit.qdrant.closed", "dev", QDRANT_CONFIG, Box::new(replace("enable_cors: false", "enable_cors: true"))),
        (
            "audit.qdrant.web_ui",
            "prod",
            QDRANT_CONFIG,
            Box::new(replace("enable_static_content: false", "enable_static_content: true")),
        ),
        (
            "audit.qdrant.cluster",
            "cluster",
            QDRANT_CONFIG,
            Box::new(replace("enforce_internal_auth: true", "enforce_internal_auth: false")),
        ),
        ("audit.compose.non_root", "dev", COMPOSE, Box::new(replace("user: \"999:999\"", "user: \"0:0\""))),
        (
            "audit.compose.capabilities",
            "dev",
            COMPOSE,
            Box::new(replace(
                "cap_drop: [ALL]\n    security_opt",
                "cap_drop: [ALL]\n    cap_add: [SYS_ADMIN]\n    security_opt",
            )),
        ),
        (
            "audit.compose.no_new_privileges",
            "dev",
            COMPOSE,
            Box::new(replace("security_opt: [\"no-new-privileges:true\"]", "security_opt: []")),
        ),
        ("audit.compose.read_only", "dev", COMPOSE, Box::new(replace("read_only: true", "read_only: false"))),
        ("audit.compose.limits", "dev", COMPOSE, Box::new(replace("    pids_limit: 256\n", ""))),
        (
            "audit.compose.private_network",
            "dev",
            COMPOSE,
            Box::new(replace("network_mode: none", "network_mode: bridge")),
        ),
        ("audit.compose.ports", "dev", COMPOSE, Box::new(replace("\"127.0.0.1:5432:5432\"", "\"0.0.0.0:5432:5432\""))),
        (
            "audit.compose.no_secret_in_env",
            "dev",
            COMPOSE,
            Box::new(replace("POSTGRES_PASSWORD_FILE:", "POSTGRES_PASSWORD:")),
        ),
        ("audit.compose.healthchecks", "dev", COMPOSE, Box::new(replace("    healthcheck:\n", "    x-healthcheck:\n"))),
        (
            "audit.compose.labels",
            "dev",
            COMPOSE,
            Box::new(replace(
                "hardstack.stack: hardstack-dev\n      hardstack.service: postgres",
                "hardstack.service: postgres",
            )),
        ),
    ]
}

#[test]
fn every_rule_fails_when_its_line_is_weakened() {
    let weakenings = weakenings();
    let mut covered: Vec<&str> = weakenings.iter().map(|(id, ..)| *id).collect();
    covered.extend(["audit.files.private_modes", "audit.files.directory_modes"]);
    for rule in rules() {
        assert!(covered.contains(&rule.id), "no weakening test for {}", rule.id);
    }
    for (id, profile, file, weaken) in weakenings {
        let tmp = generate(profile);
        let dir = tmp.path().join("stack");
        edit(&dir, file, weaken);
        let results = audit(&Bundle::load(&dir).unwrap());
        let failed: Vec<&str> = results.iter().filter(|c| c.verdict == Verdict::Fail).map(|c| c.id.as_str()).collect();
        assert!(failed.contains(&id), "{id} must fail after weakening {file}; failed: {failed:?}");
        let check = results.iter().find(|c| c.id == id).unwrap();
        assert!(!check.evidence.is_empty() && !check.reason.is_empty(), "{id} says what and where");
    }
}

#[test]
fn file_mode_rules_fail_on_readable_keys_and_open_directories() {
    let tmp = generate("dev");
    let dir = tmp.path().join("stack");
    std::fs::set_permissions(dir.join("certs/postgres/server.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(dir.join("config"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let results = audit(&Bundle::load(&dir).unwrap());
    let private = results.iter().find(|c| c.id == "audit.files.private_modes").unwrap();
    assert_eq!(private.verdict, Verdict::Fail);
    assert!(private.evidence.contains("certs/postgres/server.key is 0644"), "{}", private.evidence);
    let dirs = results.iter().find(|c| c.id == "audit.files.directory_modes").unwrap();
    assert_eq!(dirs.verdict, Verdict::Fail);
    assert!(dirs.evidence.contains("config/ is 0755"), "{}", dirs.evidence);
}

#[test]
fn a_missing_file_makes_its_rules_not_applicable() {
    let tmp = generate("dev");
    let dir = tmp.path().join("stack");
    std::fs::remove_file(dir.join(QDRANT_CONFIG)).unwrap();
    let results = audit(&Bundle::load(&dir).unwrap());
    let qdrant = results.iter().find(|c| c.id == "audit.qdrant.tls").unwrap();
    assert_eq!(qdrant.verdict, Verdict::NotApplicable);
}

#[test]
fn a_damaged_secret_file_is_an_error_naming_it() {
    let tmp = generate("dev");
    let dir = tmp.path().join("stack");
    std::fs::write(dir.join("secrets/postgres/app.json"), "{ not json").unwrap();
    let err = Bundle::load(&dir).unwrap_err();
    assert!(format!("{err:#}").contains("secrets/postgres/app.json"), "{err:#}");
}

#[test]
fn a_loaded_bundle_keeps_secret_values_redacted() {
    let tmp = generate("dev");
    let dir = tmp.path().join("stack");
    // Qdrant's key: in the store and, as Qdrant needs it, in its config, which the rules read.
    let record: crate::secrets::file::Record =
        serde_json::from_slice(&std::fs::read(dir.join("secrets/qdrant/api-key.json")).unwrap()).unwrap();
    let value = record.versions[0].value.expose().to_owned();
    let bundle = Bundle::load(&dir).unwrap();
    // With the Qdrant front's key of dev's one user.
    assert_eq!(bundle.secrets.len(), 12);
    assert!(
        bundle.text(crate::layout::paths::QDRANT_CONFIG).unwrap().contains(&value),
        "the test needs a file that holds it"
    );
    assert!(!format!("{bundle:?}").contains(&value));
}

type Edit = Box<dyn Fn(&str) -> String>;

/// A generated bundle with its Kubernetes target.
fn generate_with_kubernetes(profile_name: &str) -> tempfile::TempDir {
    let tmp = generate(profile_name);
    let dir = StackDir::new(tmp.path().join("stack"));
    let profile = shipped(profile_name);
    let read = |path: &str| -> anyhow::Result<Vec<u8>> { Ok(std::fs::read(dir.path(path))?) };
    let files: Vec<stackdir::PlannedFile> = crate::kubernetes::render(&profile, &read, None)
        .unwrap()
        .into_iter()
        .map(|f| stackdir::PlannedFile::of(StackFile::Kubernetes(f.file), f.content.into_bytes()))
        .collect();
    let mut manifest = dir.manifest().unwrap();
    let diff = stackdir::diff(&dir, &manifest, &files).unwrap();
    stackdir::apply(&dir, &mut manifest, &files, &diff.changes).unwrap();
    tmp
}

#[test]
fn generated_manifests_pass_the_same_rules() {
    for profile in ["dev", "test", "prod", "cluster", "replicas"] {
        let tmp = generate_with_kubernetes(profile);
        let dir = tmp.path().join("stack");
        let results = audit(&Bundle::load(&dir).unwrap());
        for check in &results {
            assert_ne!(check.verdict, Verdict::Fail, "{profile}: {}: {}", check.id, check.evidence);
        }
        // The manifests were read: the posture rules say so.
        let read_only = results.iter().find(|c| c.id == "audit.compose.read_only").unwrap();
        assert!(read_only.evidence.contains("kubernetes:"), "{}", read_only.evidence);
    }
}

#[test]
fn every_rule_that_applies_to_the_manifests_fails_when_they_are_weakened() {
    use crate::layout::KUBERNETES_DIR;
    let postgres = format!("{KUBERNETES_DIR}/postgres.yaml");
    let redis = format!("{KUBERNETES_DIR}/redis.yaml");
    let policies = format!("{KUBERNETES_DIR}/network-policies.yaml");
    let weakenings: Vec<(&str, String, Edit)> = vec![
        ("audit.pg.ssl_on", postgres.clone(), Box::new(replace("ssl = on", "ssl = off"))),
        (
            "audit.hba.tls_only",
            postgres.clone(),
            Box::new(replace("hostssl    postgres,app admin", "host       postgres,app admin")),
        ),
        ("audit.redis.tls_only", redis.clone(), Box::new(replace("port 0", "port 6379"))),
        (
            "audit.compose.read_only",
            postgres.clone(),
            Box::new(replace("readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false")),
        ),
        (
            "audit.compose.no_new_privileges",
            redis.clone(),
            Box::new(replace("allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true")),
        ),
        ("audit.compose.capabilities", postgres.clone(), Box::new(replace("- ALL", "- NET_RAW"))),
        ("audit.compose.non_root", redis.clone(), Box::new(replace("runAsUser: 999", "runAsUser: 0"))),
        ("audit.compose.limits", postgres.clone(), Box::new(replace("cpu: 1000m", "ephemeral-storage: 1Gi"))),
        ("audit.compose.healthchecks", redis.clone(), Box::new(replace("readinessProbe:", "readinessProbeOff:"))),
        ("audit.compose.private_network", policies, Box::new(replace("  - Egress\n", ""))),
        (
            "audit.compose.no_secret_in_env",
            postgres.clone(),
            Box::new(|text: &str| {
                text.replacen("  - name: PGDATA\n", "  - name: TOKEN\n          valueFrom: {secretKeyRef: {name: postgres-files, key: x}}\n        - name: PGDATA\n", 1)
            }),
        ),
    ];
    for (id, file, weaken) in weakenings {
        let tmp = generate_with_kubernetes("dev");
        let dir = tmp.path().join("stack");
        assert!(
            audit(&Bundle::load(&dir).unwrap()).iter().all(|c| c.verdict != Verdict::Fail),
            "the generated manifests pass before {id}'s weakening"
        );
        edit(&dir, &file, weaken);
        let results = audit(&Bundle::load(&dir).unwrap());
        let check = results.iter().find(|c| c.id == id).unwrap();
        assert_eq!(check.verdict, Verdict::Fail, "{id} must fail after weakening {file}: {}", check.evidence);
        assert!(check.evidence.contains("kubernetes/"), "{id} says where: {}", check.evidence);
    }
}

/// Applies `weaken` to the text of a configuration file as the manifests carry it (in its
/// ConfigMap, or decoded from its Secret and encoded again), leaving the stack directory's file
/// as it is.
fn weaken_in_manifests(dir: &Path, profile_name: &str, file: &str, weaken: &dyn Fn(&str) -> String) {
    use base64::Engine as _;
    let profile = shipped(profile_name);
    let key = crate::kubernetes::data_key_of(&profile, &StackFile::parse(file).unwrap())
        .unwrap_or_else(|| panic!("{file} is delivered"));
    let mut changed = false;
    for entry in std::fs::read_dir(dir.join(crate::layout::KUBERNETES_DIR)).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut documents: Vec<serde_yaml_ng::Value> = serde_yaml_ng::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .filter(|d: &serde_yaml_ng::Value| !d.is_null())
            .collect();
        let mut touched = false;
        for document in &mut documents {
            let secret = document["kind"].as_str() == Some("Secret");
            let Some(value) = document.get_mut("data").and_then(|d| d.get_mut(key.as_str())) else { continue };
            let current = value.as_str().unwrap().to_owned();
            let edited = if secret {
                let decoded = base64::engine::general_purpose::STANDARD.decode(&current).unwrap();
                base64::engine::general_purpose::STANDARD.encode(weaken(&String::from_utf8(decoded).unwrap()))
            } else {
                weaken(&current)
            };
            assert_ne!(current, edited, "the weakening of {file} changed nothing in the manifests");
            *value = serde_yaml_ng::Value::String(edited);
            touched = true;
        }
        if touched {
            let mut out = String::new();
            for document in &documents {
                out.push_str("---\n");
                out.push_str(&serde_yaml_ng::to_string(document).unwrap());
            }
            std::fs::write(&path, out).unwrap();
            changed = true;
        }
    }
    assert!(changed, "no manifest carries {file} ({key})");
}

#[test]
fn every_config_rule_fails_when_the_file_the_manifests_carry_is_weakened() {
    let carried = [POSTGRESQL_CONF, PG_HBA, INIT_SQL, REDIS_CONF, USERS_ACL, QDRANT_CONFIG];
    let mut covered = 0;
    for (id, profile, file, weaken) in weakenings().into_iter().filter(|(_, _, file, _)| carried.contains(file)) {
        let tmp = generate_with_kubernetes(profile);
        let dir = tmp.path().join("stack");
        weaken_in_manifests(&dir, profile, file, &weaken);
        let results = audit(&Bundle::load(&dir).unwrap());
        let check = results.iter().find(|c| c.id == id).unwrap();
        assert_eq!(check.verdict, Verdict::Fail, "{id} must fail after weakening {file} in the manifests");
        assert!(check.evidence.contains("kubernetes/"), "{id} names the manifest: {}", check.evidence);
        covered += 1;
    }
    assert!(covered >= 30, "{covered} weakenings of carried files");
}
