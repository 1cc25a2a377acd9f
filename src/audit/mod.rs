//! `audit`: static rules over a stack directory (or hand-edited files in the same layout),
//! without a running stack. Every line of DESIGN.md section 4 is a rule with a stable id; a
//! failing rule says what is wrong, where, and how to fix it. Pure apart from reading the
//! directory in `Bundle::load`.

pub mod parse;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value as Yaml;

use crate::profile::{ClientCerts, Profile, ProfileSource, RedisRole, TlsVersion};
use crate::report::Check;
use crate::stackdir::PROFILE_FILE;

pub const POSTGRESQL_CONF: &str = "config/postgres/postgresql.conf";
pub const PG_HBA: &str = "config/postgres/pg_hba.conf";
pub const INIT_SQL: &str = "config/postgres/initdb/10-hardstack.sql";
pub const REDIS_CONF: &str = "config/redis/redis.conf";
pub const USERS_ACL: &str = "config/redis/users.acl";
pub const QDRANT_CONFIG: &str = "config/qdrant/config.yaml";
pub const COMPOSE: &str = "docker-compose.yml";

/// The files of a stack directory that the rules read, and what the profile expects.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    /// The stack's resolved profile, when `hardstack.toml` is there.
    pub profile: Option<Profile>,
    texts: BTreeMap<&'static str, String>,
    /// Every file and directory under `dir`, relative, with its mode.
    pub modes: Vec<(String, bool, u32)>,
    /// Current secret values of the file store, to find them where they must not be.
    secrets: Vec<String>,
}

impl Bundle {
    /// Reads the directory. A missing file only makes its rules N/A.
    pub fn load(dir: &Path) -> anyhow::Result<Bundle> {
        anyhow::ensure!(
            dir.is_dir(),
            "{} is not a directory; pass a stack directory (hardstack audit DIR)",
            dir.display()
        );
        let profile = if dir.join(PROFILE_FILE).exists() {
            Some(crate::profile::load(&ProfileSource::File(dir.join(PROFILE_FILE)), &[])?.profile)
        } else {
            None
        };
        let mut texts = BTreeMap::new();
        for file in [POSTGRESQL_CONF, PG_HBA, INIT_SQL, REDIS_CONF, USERS_ACL, QDRANT_CONFIG, COMPOSE] {
            if let Ok(text) = std::fs::read_to_string(dir.join(file)) {
                texts.insert(file, text);
            }
        }
        let mut modes = Vec::new();
        walk(dir, dir, &mut modes)?;
        let mut secrets = Vec::new();
        for (path, is_dir, _) in &modes {
            if !is_dir && path.starts_with("secrets/") && path.ends_with(".json") {
                let record: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(dir.join(path))?).unwrap_or_default();
                for version in record["versions"].as_array().into_iter().flatten() {
                    if let Some(value) = version["value"].as_str() {
                        secrets.push(value.to_owned());
                    }
                }
            }
        }
        Ok(Bundle { dir: dir.to_owned(), profile, texts, modes, secrets })
    }

    fn text(&self, file: &str) -> Option<&str> {
        self.texts.get(file).map(String::as_str)
    }

    fn mutual(&self) -> bool {
        self.profile.as_ref().is_some_and(|p| p.tls.client_certs == ClientCerts::Required)
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, bool, u32)>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path)?;
        let relative = path.strip_prefix(root).unwrap_or(&path).display().to_string();
        out.push((relative, meta.is_dir(), meta.permissions().mode() & 0o777));
        if meta.is_dir() {
            walk(root, &path, out)?;
        }
    }
    Ok(())
}

/// What one rule found.
pub enum Outcome {
    Pass(String),
    Fail(String),
    NotApplicable(String),
}

/// A static rule.
pub struct Rule {
    /// Stable id.
    pub id: &'static str,
    /// The hardened line it checks (the PASS reason).
    pub summary: &'static str,
    /// How to fix a failure (the FAIL reason).
    pub fix: &'static str,
    pub check: fn(&Bundle) -> Outcome,
}

/// Runs every rule.
pub fn audit(bundle: &Bundle) -> Vec<Check> {
    RULES
        .iter()
        .map(|rule| match (rule.check)(bundle) {
            Outcome::Pass(evidence) => Check::pass(rule.id, rule.summary, evidence),
            Outcome::Fail(evidence) => Check::fail(rule.id, rule.fix, evidence),
            Outcome::NotApplicable(reason) => Check::not_applicable(rule.id, reason),
        })
        .collect()
}

use Outcome::{Fail, NotApplicable as Na, Pass};

fn absent(file: &str) -> Outcome {
    Na(format!("{file} is not in the directory"))
}

fn failures(file: &str, problems: Vec<String>, ok: impl Into<String>) -> Outcome {
    if problems.is_empty() { Pass(ok.into()) } else { Fail(format!("{file}: {}", problems.join("; "))) }
}

/// Every rule, in the order of DESIGN.md section 4.
pub const RULES: &[Rule] = &[
    Rule { id: "audit.pg.ssl_on", summary: "ssl = on", fix: "set ssl = on in postgresql.conf", check: pg_ssl_on },
    Rule {
        id: "audit.pg.tls_min_version",
        summary: "ssl_min_protocol_version meets the profile (TLSv1.2 dev, TLSv1.3 prod)",
        fix: "set ssl_min_protocol_version = 'TLSv1.2' (TLSv1.3 in prod)",
        check: pg_tls_min,
    },
    Rule {
        id: "audit.pg.forward_secret_ciphers",
        summary: "ssl_ciphers allows forward-secret suites only",
        fix: "set ssl_ciphers = 'ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!SHA1'",
        check: pg_ciphers,
    },
    Rule {
        id: "audit.hba.tls_only",
        summary: "pg_hba.conf: network lines are hostssl only, with explicit hostnossl and host reject lines",
        fix: "replace host lines by hostssl and end the file with `hostnossl all all all reject` and `host all all all reject`",
        check: hba_tls_only,
    },
    Rule {
        id: "audit.pg.scram",
        summary: "password_encryption = scram-sha-256",
        fix: "set password_encryption = scram-sha-256",
        check: pg_scram,
    },
    Rule {
        id: "audit.hba.scram_only",
        summary: "pg_hba.conf: every accepting line uses scram-sha-256 (or cert)",
        fix: "use scram-sha-256 on every accepting line; never trust, password or md5",
        check: hba_scram_only,
    },
    Rule {
        id: "audit.hba.clientcert",
        summary: "pg_hba.conf: clientcert=verify-full on every hostssl line when client certificates are required",
        fix: "append clientcert=verify-full to every accepting hostssl line",
        check: hba_clientcert,
    },
    Rule {
        id: "audit.hba.no_all_all",
        summary: "pg_hba.conf: no accepting line for all databases and all users",
        fix: "name the database and the user on every accepting line",
        check: hba_no_all_all,
    },
    Rule {
        id: "audit.hba.superuser_local_only",
        summary: "pg_hba.conf: the superuser cannot log in over the network",
        fix: "add `hostssl all postgres all reject` before the accepting lines, and name users instead of all",
        check: hba_superuser,
    },
    Rule {
        id: "audit.pg.passwords_as_verifiers",
        summary: "roles get their passwords as SCRAM verifiers, never as cleartext SQL",
        fix: "replace PASSWORD '<cleartext>' by the SCRAM-SHA-256 verifier (hardstack init writes them)",
        check: pg_verifiers,
    },
    Rule {
        id: "audit.pg.initdb_args",
        summary: "initdb with --auth-local=scram-sha-256 --auth-host=scram-sha-256 --data-checksums",
        fix: "set POSTGRES_INITDB_ARGS to --auth-local=scram-sha-256 --auth-host=scram-sha-256 --data-checksums",
        check: pg_initdb_args,
    },
    Rule {
        id: "audit.pg.logging",
        summary: "logs connections, disconnections, DDL, slow statements, with time, pid, db, user, app, client, in UTC",
        fix: "set log_connections = on, log_disconnections = on, log_statement = 'ddl', log_min_duration_statement, log_line_prefix with %m %p %d %u %a %h, log_timezone = 'UTC'",
        check: pg_logging,
    },
    Rule {
        id: "audit.pg.authentication_timeout",
        summary: "authentication_timeout is at most 60 s",
        fix: "set authentication_timeout = 30s",
        check: pg_auth_timeout,
    },
    Rule {
        id: "audit.pg.connection_limits",
        summary: "every login role has a connection limit",
        fix: "add CONNECTION LIMIT n to every CREATE ROLE ... LOGIN",
        check: pg_connection_limits,
    },
    Rule {
        id: "audit.pg.unix_socket_permissions",
        summary: "unix_socket_permissions = 0770 or stricter",
        fix: "set unix_socket_permissions = 0770",
        check: pg_socket_permissions,
    },
    Rule {
        id: "audit.pg.tuning",
        summary: "memory settings follow pgtune for the declared resources",
        fix: "run hardstack init to re-render postgresql.conf from the profile's resources",
        check: pg_tuning,
    },
    Rule {
        id: "audit.redis.tls_only",
        summary: "port 0 and a tls-port: no plaintext listener",
        fix: "set port 0 and tls-port 6379 in redis.conf",
        check: redis_tls_only,
    },
    Rule {
        id: "audit.redis.tls_protocols",
        summary: "tls-protocols allows TLSv1.2 and TLSv1.3 only",
        fix: "set tls-protocols \"TLSv1.2 TLSv1.3\"",
        check: redis_tls_protocols,
    },
    Rule {
        id: "audit.redis.tls_auth_clients",
        summary: "tls-auth-clients follows the profile (yes where client certificates are required)",
        fix: "set tls-auth-clients yes",
        check: redis_tls_auth_clients,
    },
    Rule {
        id: "audit.redis.protected_mode",
        summary: "protected-mode yes (the official image compiles it off)",
        fix: "set protected-mode yes in redis.conf",
        check: redis_protected_mode,
    },
    Rule {
        id: "audit.acl.default_off",
        summary: "users.acl has `user default off` with no password",
        fix: "start users.acl with `user default off resetpass resetkeys resetchannels -@all`",
        check: acl_default_off,
    },
    Rule {
        id: "audit.acl.admin_and_health",
        summary: "an admin user, and a health user allowed only PING",
        fix: "keep `user admin ...` and `user health on #<hash> resetkeys resetchannels -@all +ping`",
        check: acl_admin_health,
    },
    Rule {
        id: "audit.acl.app_users_restricted",
        summary: "application users have a key pattern and -@dangerous -@admin",
        fix: "give each application user ~<prefix>:* and end its rules with -@dangerous -@admin",
        check: acl_app_users,
    },
    Rule {
        id: "audit.acl.hashed_passwords",
        summary: "passwords are SHA-256 hashes (#<hex>); no plaintext, no nopass",
        fix: "replace >password and nopass by #<sha256 hex> (hardstack init writes them)",
        check: acl_hashed,
    },
    Rule {
        id: "audit.redis.aclfile_writable_dir",
        summary: "the ACL file is in a directory of its own (ACL SAVE renames a temporary file there)",
        fix: "set aclfile to a file in its own directory, for example /usr/local/etc/redis/acl/users.acl",
        check: redis_aclfile,
    },
    Rule {
        id: "audit.redis.maxmemory",
        summary: "maxmemory and the policy of the profile (cache: allkeys-lru, store: noeviction)",
        fix: "set maxmemory below the container limit and maxmemory-policy allkeys-lru (cache) or noeviction (store)",
        check: redis_maxmemory,
    },
    Rule {
        id: "audit.redis.debug_module_off",
        summary: "enable-debug-command no and enable-module-command no",
        fix: "set enable-debug-command no and enable-module-command no",
        check: redis_debug_module,
    },
    Rule {
        id: "audit.qdrant.tls",
        summary: "service.enable_tls with tls.cert, tls.key and tls.ca_cert",
        fix: "set service.enable_tls: true and the tls section",
        check: qdrant_tls,
    },
    Rule {
        id: "audit.qdrant.api_keys",
        summary: "service.api_key and service.read_only_api_key set, distinct, 32+ characters",
        fix: "set both keys (hardstack init generates them)",
        check: qdrant_keys,
    },
    Rule {
        id: "audit.qdrant.client_certs",
        summary: "verify_https_client_certificate where client certificates are required",
        fix: "set service.verify_https_client_certificate: true",
        check: qdrant_client_certs,
    },
    Rule {
        id: "audit.qdrant.closed",
        summary: "telemetry off, CORS off, snapshot recovery from URLs off",
        fix: "set telemetry_disabled: true, service.enable_cors: false, service.enable_snapshot_url_recovery: false",
        check: qdrant_closed,
    },
    Rule {
        id: "audit.qdrant.web_ui",
        summary: "web UI off where the profile says so (always in prod)",
        fix: "set service.enable_static_content: false",
        check: qdrant_web_ui,
    },
    Rule {
        id: "audit.compose.non_root",
        summary: "servers run as their image's unprivileged uid (postgres 999, redis 999, qdrant 1000)",
        fix: "set user: \"999:999\" (postgres, redis) or \"1000:1000\" (qdrant)",
        check: compose_non_root,
    },
    Rule {
        id: "audit.compose.capabilities",
        summary: "cap_drop: [ALL], nothing added to the servers",
        fix: "set cap_drop: [ALL] and remove cap_add from the servers",
        check: compose_capabilities,
    },
    Rule {
        id: "audit.compose.no_new_privileges",
        summary: "no-new-privileges on every container",
        fix: "add security_opt: [\"no-new-privileges:true\"]",
        check: compose_no_new_privileges,
    },
    Rule {
        id: "audit.compose.read_only",
        summary: "read-only root filesystem, tmpfs for scratch",
        fix: "set read_only: true and mount tmpfs where the server writes",
        check: compose_read_only,
    },
    Rule {
        id: "audit.compose.limits",
        summary: "memory, CPU and pids limits and a restart policy",
        fix: "set mem_limit, cpus, pids_limit and restart",
        check: compose_limits,
    },
    Rule {
        id: "audit.compose.private_network",
        summary: "servers on the stack's private network",
        fix: "attach every server to the stack network only",
        check: compose_network,
    },
    Rule {
        id: "audit.compose.ports",
        summary: "published ports follow the profile (loopback in dev, none in prod unless asked)",
        fix: "publish on 127.0.0.1 only (\"127.0.0.1:5432:5432\"), or not at all",
        check: compose_ports,
    },
    Rule {
        id: "audit.compose.no_secret_in_env",
        summary: "no secret in the compose file or an environment variable",
        fix: "deliver secrets as files (*_FILE variables, the deliver service); never inline",
        check: compose_no_secret,
    },
    Rule {
        id: "audit.compose.healthchecks",
        summary: "every server has a healthcheck",
        fix: "add a healthcheck that runs a real query",
        check: compose_healthchecks,
    },
    Rule {
        id: "audit.compose.labels",
        summary: "every container carries the stack's label",
        fix: "add labels: {hardstack.stack: <name>}",
        check: compose_labels,
    },
    Rule {
        id: "audit.files.private_modes",
        summary: "keys, secrets and files that contain them are 0600",
        fix: "chmod 0600 the files named",
        check: files_private,
    },
    Rule {
        id: "audit.files.directory_modes",
        summary: "directories are 0700",
        fix: "chmod 0700 the directories named",
        check: files_dirs,
    },
];

fn pg_conf(bundle: &Bundle) -> Option<Vec<(usize, String, String)>> {
    bundle.text(POSTGRESQL_CONF).map(parse::postgres_conf)
}

fn setting(entries: &[(usize, String, String)], key: &str) -> Option<(usize, String)> {
    parse::last(entries, key).map(|(line, _, value)| (*line, value.clone()))
}

fn expect_setting(bundle: &Bundle, key: &str, ok: impl Fn(&str) -> bool) -> Outcome {
    let Some(conf) = pg_conf(bundle) else { return absent(POSTGRESQL_CONF) };
    match setting(&conf, key) {
        Some((line, value)) if ok(&value) => Pass(format!("{POSTGRESQL_CONF}:{line}: {key} = {value}")),
        Some((line, value)) => Fail(format!("{POSTGRESQL_CONF}:{line}: {key} = {value}")),
        None => Fail(format!("{POSTGRESQL_CONF}: {key} is not set")),
    }
}

fn pg_ssl_on(bundle: &Bundle) -> Outcome {
    expect_setting(bundle, "ssl", |v| matches!(v, "on" | "true" | "yes" | "1"))
}

fn pg_tls_min(bundle: &Bundle) -> Outcome {
    let required = bundle.profile.as_ref().map(|p| p.postgres.tls_min_version).unwrap_or(TlsVersion::V12);
    expect_setting(bundle, "ssl_min_protocol_version", |v| match v {
        "TLSv1.3" => true,
        "TLSv1.2" => required == TlsVersion::V12,
        _ => false,
    })
}

fn forward_secret(ciphers: &str) -> bool {
    ciphers
        .split(':')
        .filter(|c| !c.starts_with('!') && !c.starts_with('-'))
        .all(|c| c.starts_with("ECDHE") || c.starts_with("DHE"))
}

fn pg_ciphers(bundle: &Bundle) -> Outcome {
    expect_setting(bundle, "ssl_ciphers", forward_secret)
}

fn pg_scram(bundle: &Bundle) -> Outcome {
    expect_setting(bundle, "password_encryption", |v| v == "scram-sha-256")
}

fn pg_auth_timeout(bundle: &Bundle) -> Outcome {
    expect_setting(bundle, "authentication_timeout", |v| parse::seconds(v).is_some_and(|s| s <= 60))
}

fn pg_socket_permissions(bundle: &Bundle) -> Outcome {
    expect_setting(bundle, "unix_socket_permissions", |v| {
        u32::from_str_radix(v.trim_start_matches("0o"), 8).is_ok_and(|m| m & 0o007 == 0)
    })
}

fn pg_logging(bundle: &Bundle) -> Outcome {
    let Some(conf) = pg_conf(bundle) else { return absent(POSTGRESQL_CONF) };
    let get = |key: &str| setting(&conf, key).map(|(_, v)| v).unwrap_or_default();
    let mut problems = Vec::new();
    for key in ["log_connections", "log_disconnections"] {
        if !matches!(get(key).as_str(), "on" | "true" | "all") {
            problems.push(format!("{key} is not on"));
        }
    }
    if !matches!(get("log_statement").as_str(), "ddl" | "mod" | "all") {
        problems.push("log_statement is not ddl".into());
    }
    if get("log_min_duration_statement").parse::<i64>().map_or(true, |v| v < 0) {
        problems.push("log_min_duration_statement is off".into());
    }
    let prefix = get("log_line_prefix");
    for escape in ["%m", "%p", "%d", "%u", "%a", "%h"] {
        let present = prefix.contains(escape) || (escape == "%m" && prefix.contains("%t"));
        if !present {
            problems.push(format!("log_line_prefix lacks {escape}"));
        }
    }
    if get("log_timezone") != "UTC" {
        problems.push("log_timezone is not UTC".into());
    }
    failures(POSTGRESQL_CONF, problems, format!("{POSTGRESQL_CONF}: log_line_prefix = '{prefix}'"))
}

fn pg_tuning(bundle: &Bundle) -> Outcome {
    let Some(conf) = pg_conf(bundle) else { return absent(POSTGRESQL_CONF) };
    let Some(profile) = &bundle.profile else {
        return Na(format!("no {PROFILE_FILE}: the declared resources are unknown"));
    };
    let limits = &profile.resources.postgres;
    let tuning = crate::render::tuning::tune(crate::render::tuning::TuningInput {
        memory_kb: limits.memory.kib(),
        cpus: (limits.cpus.ceil() as u32).max(1),
        workload: profile.postgres.workload,
        storage: profile.postgres.storage,
        max_connections: profile.postgres.max_connections,
    });
    let expected = [
        ("shared_buffers", tuning.shared_buffers.clone()),
        ("effective_cache_size", tuning.effective_cache_size.clone()),
        ("work_mem", tuning.work_mem.clone()),
        ("max_connections", tuning.max_connections.to_string()),
    ];
    let problems = expected
        .iter()
        .filter_map(|(key, want)| match setting(&conf, key) {
            Some((_, value)) if value == *want => None,
            Some((line, value)) => Some(format!("line {line}: {key} = {value}, pgtune gives {want}")),
            None => Some(format!("{key} is not set (pgtune gives {want})")),
        })
        .collect();
    failures(
        POSTGRESQL_CONF,
        problems,
        format!("shared_buffers {}, max_connections {}", tuning.shared_buffers, tuning.max_connections),
    )
}

fn hba_lines(bundle: &Bundle) -> Option<Vec<parse::HbaLine>> {
    bundle.text(PG_HBA).map(parse::hba)
}

fn hba_tls_only(bundle: &Bundle) -> Outcome {
    let Some(lines) = hba_lines(bundle) else { return absent(PG_HBA) };
    let mut problems: Vec<String> = lines
        .iter()
        .filter(|l| l.accepts() && l.kind != "local" && l.kind != "hostssl")
        .map(|l| format!("line {}: {} accepts connections", l.line, l.kind))
        .collect();
    for kind in ["hostnossl", "host"] {
        if !lines.iter().any(|l| l.kind == kind && l.database == "all" && l.user == "all" && !l.accepts()) {
            problems.push(format!("no `{kind} all all all reject` line"));
        }
    }
    failures(PG_HBA, problems, "hostssl lines only; hostnossl and host rejected")
}

fn hba_scram_only(bundle: &Bundle) -> Outcome {
    let Some(lines) = hba_lines(bundle) else { return absent(PG_HBA) };
    let problems = lines
        .iter()
        .filter(|l| l.accepts() && l.method != "scram-sha-256" && l.method != "cert")
        .map(|l| format!("line {}: method {}", l.line, l.method))
        .collect();
    failures(PG_HBA, problems, "scram-sha-256 on every accepting line")
}

fn hba_clientcert(bundle: &Bundle) -> Outcome {
    let Some(lines) = hba_lines(bundle) else { return absent(PG_HBA) };
    if !bundle.mutual() {
        return Na("the profile does not require client certificates".into());
    }
    let problems = lines
        .iter()
        .filter(|l| {
            l.accepts()
                && l.kind == "hostssl"
                && l.method != "cert"
                && !l.options.iter().any(|o| o == "clientcert=verify-full")
        })
        .map(|l| format!("line {}: no clientcert=verify-full", l.line))
        .collect();
    failures(PG_HBA, problems, "clientcert=verify-full on every accepting hostssl line")
}

fn hba_no_all_all(bundle: &Bundle) -> Outcome {
    let Some(lines) = hba_lines(bundle) else { return absent(PG_HBA) };
    let problems = lines
        .iter()
        .filter(|l| l.accepts() && l.kind != "local" && l.database == "all" && l.user == "all")
        .map(|l| format!("line {}: {} all all accepts", l.line, l.kind))
        .collect();
    failures(PG_HBA, problems, "every accepting line names its database or user")
}

fn hba_superuser(bundle: &Bundle) -> Outcome {
    let Some(lines) = hba_lines(bundle) else { return absent(PG_HBA) };
    let mut rejected = false;
    let mut problems = Vec::new();
    for line in lines.iter().filter(|l| l.kind != "local") {
        let matches_superuser = line.user == "all" || line.user.split(',').any(|u| u == "postgres");
        if !line.accepts() && matches_superuser {
            rejected = true;
        } else if line.accepts() && matches_superuser && !rejected {
            problems.push(format!(
                "line {}: {} {} {} lets the superuser in over the network",
                line.line, line.kind, line.database, line.user
            ));
        }
    }
    failures(PG_HBA, problems, "the superuser is rejected on every network line")
}

fn pg_verifiers(bundle: &Bundle) -> Outcome {
    let Some(sql) = bundle.text(INIT_SQL) else { return absent(INIT_SQL) };
    let problems: Vec<String> = sql
        .lines()
        .enumerate()
        .filter_map(|(index, line)| {
            let upper = line.to_uppercase();
            let at = upper.find("PASSWORD '")?;
            let literal = &line[at + "PASSWORD '".len()..];
            (!literal.starts_with("SCRAM-SHA-256$")).then(|| format!("line {}: a cleartext password", index + 1))
        })
        .collect();
    failures(INIT_SQL, problems, "every PASSWORD is a SCRAM-SHA-256 verifier")
}

fn pg_connection_limits(bundle: &Bundle) -> Outcome {
    let Some(sql) = bundle.text(INIT_SQL) else { return absent(INIT_SQL) };
    let problems: Vec<String> = sql
        .lines()
        .enumerate()
        .filter(|(_, line)| {
            let upper = line.to_uppercase();
            upper.starts_with("CREATE ROLE")
                && upper.contains(" LOGIN")
                && !upper.contains("NOLOGIN")
                && !upper.contains("CONNECTION LIMIT")
        })
        .map(|(index, _)| format!("line {}: a login role without CONNECTION LIMIT", index + 1))
        .collect();
    failures(INIT_SQL, problems, "every login role has a CONNECTION LIMIT")
}

fn compose(bundle: &Bundle) -> Option<Result<Yaml, String>> {
    bundle
        .text(COMPOSE)
        .map(|text| serde_yaml_ng::from_str(text).map_err(|e| format!("{COMPOSE}: not valid YAML: {e}")))
}

/// The compose services, with whether each is a server (not the deliver step).
fn services(doc: &Yaml) -> Vec<(String, &Yaml)> {
    doc["services"]
        .as_mapping()
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v))).collect())
        .unwrap_or_default()
}

fn with_compose(bundle: &Bundle, check: impl Fn(&Yaml) -> Vec<String>, ok: &str) -> Outcome {
    match compose(bundle) {
        None => absent(COMPOSE),
        Some(Err(err)) => Fail(err),
        Some(Ok(doc)) => failures(COMPOSE, check(&doc), ok),
    }
}

fn strings(value: &Yaml) -> Vec<String> {
    value.as_sequence().map(|s| s.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

fn pg_initdb_args(bundle: &Bundle) -> Outcome {
    with_compose(
        bundle,
        |doc| {
            let Some(postgres) = services(doc).into_iter().find(|(n, _)| n == "postgres").map(|(_, s)| s.clone())
            else {
                return vec![];
            };
            let args = postgres["environment"]["POSTGRES_INITDB_ARGS"].as_str().unwrap_or_default().to_owned();
            ["--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "--data-checksums"]
                .iter()
                .filter(|flag| !args.contains(*flag))
                .map(|flag| format!("postgres: POSTGRES_INITDB_ARGS lacks {flag}"))
                .collect()
        },
        "POSTGRES_INITDB_ARGS has scram-sha-256 for local and host, and data checksums",
    )
}

fn redis(bundle: &Bundle) -> Option<Vec<(usize, String, String)>> {
    bundle.text(REDIS_CONF).map(parse::redis_conf)
}

fn redis_expect(bundle: &Bundle, key: &str, ok: impl Fn(&str) -> bool) -> Outcome {
    let Some(conf) = redis(bundle) else { return absent(REDIS_CONF) };
    match parse::last(&conf, key) {
        Some((line, _, value)) if ok(value) => Pass(format!("{REDIS_CONF}:{line}: {key} {value}")),
        Some((line, _, value)) => Fail(format!("{REDIS_CONF}:{line}: {key} {value}")),
        None => Fail(format!("{REDIS_CONF}: {key} is not set")),
    }
}

fn redis_tls_only(bundle: &Bundle) -> Outcome {
    let Some(conf) = redis(bundle) else { return absent(REDIS_CONF) };
    let mut problems = Vec::new();
    match parse::last(&conf, "port") {
        Some((_, _, value)) if value == "0" => {}
        Some((line, _, value)) => problems.push(format!("line {line}: port {value} is a plaintext listener")),
        None => problems.push("port is not set (the default 6379 is plaintext)".into()),
    }
    if parse::last(&conf, "tls-port").is_none_or(|(_, _, v)| v == "0") {
        problems.push("no tls-port".into());
    }
    failures(REDIS_CONF, problems, "port 0, TLS port only")
}

fn redis_tls_protocols(bundle: &Bundle) -> Outcome {
    redis_expect(bundle, "tls-protocols", |v| {
        !v.is_empty() && v.split_whitespace().all(|p| p == "TLSv1.2" || p == "TLSv1.3")
    })
}

fn redis_tls_auth_clients(bundle: &Bundle) -> Outcome {
    let mutual = bundle.mutual();
    let Some(conf) = redis(bundle) else { return absent(REDIS_CONF) };
    // Redis's default is yes.
    let (line, value) =
        parse::last(&conf, "tls-auth-clients").map(|(l, _, v)| (*l, v.clone())).unwrap_or((0, "yes".into()));
    let ok = value == "yes" || (!mutual && value == "optional");
    let evidence = format!(
        "{REDIS_CONF}:{line}: tls-auth-clients {value}{}",
        if mutual { " (client certificates required)" } else { "" }
    );
    if ok { Pass(evidence) } else { Fail(evidence) }
}

fn redis_protected_mode(bundle: &Bundle) -> Outcome {
    redis_expect(bundle, "protected-mode", |v| v == "yes")
}

fn redis_aclfile(bundle: &Bundle) -> Outcome {
    let Some(conf) = redis(bundle) else { return absent(REDIS_CONF) };
    match parse::last(&conf, "aclfile") {
        None => Fail(format!("{REDIS_CONF}: no aclfile; users then live in redis.conf, which ACL SAVE cannot write")),
        Some((line, _, path)) => {
            let parent = Path::new(path).parent().map(|p| p.display().to_string()).unwrap_or_default();
            if parent == crate::containers::REDIS_DIR {
                Fail(format!(
                    "{REDIS_CONF}:{line}: aclfile {path} is in the root of the config volume, which the server cannot write"
                ))
            } else {
                Pass(format!("{REDIS_CONF}:{line}: aclfile {path}"))
            }
        }
    }
}

fn redis_maxmemory(bundle: &Bundle) -> Outcome {
    let Some(conf) = redis(bundle) else { return absent(REDIS_CONF) };
    let mut problems = Vec::new();
    let maxmemory = parse::last(&conf, "maxmemory").map(|(_, _, v)| v.clone()).unwrap_or_default();
    if maxmemory.is_empty() || maxmemory == "0" {
        problems.push("maxmemory is not set: Redis grows until the container is killed".to_owned());
    }
    let policy =
        parse::last(&conf, "maxmemory-policy").map(|(_, _, v)| v.clone()).unwrap_or_else(|| "noeviction".into());
    if let Some(profile) = &bundle.profile {
        let want = match profile.redis.role {
            RedisRole::Cache => "allkeys-lru",
            RedisRole::Store => "noeviction",
        };
        if policy != want {
            problems.push(format!("maxmemory-policy {policy}, the profile's role wants {want}"));
        }
    }
    failures(REDIS_CONF, problems, format!("maxmemory {maxmemory}, {policy}"))
}

fn redis_debug_module(bundle: &Bundle) -> Outcome {
    let Some(conf) = redis(bundle) else { return absent(REDIS_CONF) };
    let problems = ["enable-debug-command", "enable-module-command"]
        .iter()
        .filter(|key| parse::last(&conf, key).is_some_and(|(_, _, v)| v != "no"))
        .map(|key| format!("{key} is not no"))
        .collect();
    failures(REDIS_CONF, problems, "DEBUG and MODULE disabled")
}

fn acl(bundle: &Bundle) -> Option<Vec<(usize, String, Vec<String>)>> {
    bundle.text(USERS_ACL).map(parse::acl)
}

fn has_password(rules: &[String]) -> bool {
    rules.iter().any(|r| r.starts_with('>') || r.starts_with('#') || r == "nopass")
}

fn acl_default_off(bundle: &Bundle) -> Outcome {
    let Some(users) = acl(bundle) else { return absent(USERS_ACL) };
    match users.iter().find(|(_, name, _)| name == "default") {
        None => {
            Fail(format!("{USERS_ACL}: no `user default` line: Redis recreates an open default user (on nopass +@all)"))
        }
        Some((line, _, rules)) => {
            let on = rules.iter().rposition(|r| r == "on") > rules.iter().rposition(|r| r == "off");
            if on || has_password(rules) {
                Fail(format!("{USERS_ACL}:{line}: the default user is on or has a password"))
            } else {
                Pass(format!("{USERS_ACL}:{line}: user default {}", rules.join(" ")))
            }
        }
    }
}

fn acl_hashed(bundle: &Bundle) -> Outcome {
    let Some(users) = acl(bundle) else { return absent(USERS_ACL) };
    let mut problems = Vec::new();
    for (line, name, rules) in &users {
        if rules.iter().any(|r| r.starts_with('>')) {
            problems.push(format!("line {line}: {name} has a plaintext password"));
        }
        if rules.iter().any(|r| r == "nopass") {
            problems.push(format!("line {line}: {name} has nopass"));
        }
        let hash_ok =
            |r: &String| r.len() == 65 && r[1..].chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
        if rules.iter().any(|r| r.starts_with('#') && !hash_ok(r)) {
            problems.push(format!("line {line}: {name} has a malformed hash"));
        }
    }
    failures(USERS_ACL, problems, "SHA-256 hashes only")
}

fn acl_admin_health(bundle: &Bundle) -> Outcome {
    let Some(users) = acl(bundle) else { return absent(USERS_ACL) };
    let mut problems = Vec::new();
    if !users.iter().any(|(_, name, _)| name == "admin") {
        problems.push("no admin user".to_owned());
    }
    match users.iter().find(|(_, name, _)| name == "health") {
        None => problems.push("no health user".into()),
        Some((line, _, rules)) => {
            let after_reset = rules.iter().rposition(|r| r == "-@all").map(|i| &rules[i + 1..]);
            let commands: Vec<&String> =
                after_reset.unwrap_or(&rules[..]).iter().filter(|r| r.starts_with('+')).collect();
            if after_reset.is_none()
                || commands.iter().any(|c| *c != "+ping")
                || rules.iter().any(|r| r.starts_with('~'))
            {
                problems.push(format!("line {line}: health may run more than PING"));
            }
        }
    }
    failures(USERS_ACL, problems, "admin present; health: -@all +ping")
}

fn acl_app_users(bundle: &Bundle) -> Outcome {
    let Some(users) = acl(bundle) else { return absent(USERS_ACL) };
    let mut problems = Vec::new();
    for (line, name, rules) in users.iter().filter(|(_, n, _)| !matches!(n.as_str(), "default" | "admin" | "health")) {
        if rules.iter().any(|r| r == "~*" || r == "allkeys")
            || !rules.iter().any(|r| r.starts_with('~') || r.starts_with("%"))
        {
            problems.push(format!("line {line}: {name} may touch every key"));
        }
        let last_all = rules.iter().rposition(|r| r == "+@all");
        for category in ["-@dangerous", "-@admin"] {
            if rules.iter().rposition(|r| r == category) < last_all || !rules.iter().any(|r| r == category) {
                problems.push(format!("line {line}: {name} lacks {category} after +@all"));
            }
        }
    }
    failures(USERS_ACL, problems, "every application user has a key pattern and no dangerous or admin commands")
}

fn qdrant(bundle: &Bundle) -> Option<Result<Yaml, String>> {
    bundle
        .text(QDRANT_CONFIG)
        .map(|t| serde_yaml_ng::from_str(t).map_err(|e| format!("{QDRANT_CONFIG}: not valid YAML: {e}")))
}

fn with_qdrant(bundle: &Bundle, check: impl Fn(&Yaml) -> Vec<String>, ok: &str) -> Outcome {
    match qdrant(bundle) {
        None => absent(QDRANT_CONFIG),
        Some(Err(err)) => Fail(err),
        Some(Ok(doc)) => failures(QDRANT_CONFIG, check(&doc), ok),
    }
}

fn qdrant_tls(bundle: &Bundle) -> Outcome {
    with_qdrant(
        bundle,
        |doc| {
            let mut problems = Vec::new();
            if doc["service"]["enable_tls"].as_bool() != Some(true) {
                problems.push("service.enable_tls is not true".to_owned());
            }
            for key in ["cert", "key", "ca_cert"] {
                if doc["tls"][key].as_str().is_none_or(str::is_empty) {
                    problems.push(format!("tls.{key} is not set"));
                }
            }
            problems
        },
        "TLS on with the stack's certificate",
    )
}

fn qdrant_keys(bundle: &Bundle) -> Outcome {
    with_qdrant(
        bundle,
        |doc| {
            let key = doc["service"]["api_key"].as_str().unwrap_or_default();
            let read_only = doc["service"]["read_only_api_key"].as_str().unwrap_or_default();
            let mut problems = Vec::new();
            if key.len() < 32 {
                problems.push(
                    "service.api_key is missing or shorter than 32 characters: every request is allowed".to_owned(),
                );
            }
            if read_only.len() < 32 {
                problems.push("service.read_only_api_key is missing or shorter than 32 characters".into());
            }
            if !key.is_empty() && key == read_only {
                problems.push("the two keys are the same".into());
            }
            problems
        },
        "both keys set",
    )
}

fn qdrant_client_certs(bundle: &Bundle) -> Outcome {
    if bundle.text(QDRANT_CONFIG).is_some() && !bundle.mutual() {
        return Na("the profile does not require client certificates".into());
    }
    with_qdrant(
        bundle,
        |doc| match doc["service"]["verify_https_client_certificate"].as_bool() {
            Some(true) => vec![],
            _ => vec!["service.verify_https_client_certificate is not true".into()],
        },
        "client certificates verified",
    )
}

fn qdrant_closed(bundle: &Bundle) -> Outcome {
    with_qdrant(
        bundle,
        |doc| {
            let mut problems = Vec::new();
            if doc["telemetry_disabled"].as_bool() != Some(true) {
                problems.push("telemetry_disabled is not true".to_owned());
            }
            // Qdrant's defaults are true for both: absent means on.
            if doc["service"]["enable_cors"].as_bool() != Some(false) {
                problems.push("service.enable_cors is not false".into());
            }
            if doc["service"]["enable_snapshot_url_recovery"].as_bool() != Some(false) {
                problems.push("service.enable_snapshot_url_recovery is not false".into());
            }
            problems
        },
        "telemetry, CORS and URL snapshot recovery off",
    )
}

fn qdrant_web_ui(bundle: &Bundle) -> Outcome {
    let wanted_off = bundle.profile.as_ref().is_some_and(|p| !p.qdrant.web_ui || p.name == "prod");
    if bundle.text(QDRANT_CONFIG).is_some() && !wanted_off {
        return Na("the profile keeps the web UI".into());
    }
    with_qdrant(
        bundle,
        |doc| match doc["service"]["enable_static_content"].as_bool() {
            Some(false) => vec![],
            _ => vec!["service.enable_static_content is not false".into()],
        },
        "web UI off",
    )
}

fn for_each_server(doc: &Yaml, check: impl Fn(&str, &Yaml) -> Option<String>) -> Vec<String> {
    services(doc).into_iter().filter(|(n, _)| n != "deliver").filter_map(|(name, s)| check(&name, s)).collect()
}

fn compose_non_root(bundle: &Bundle) -> Outcome {
    with_compose(
        bundle,
        |doc| {
            for_each_server(doc, |name, service| {
                let want = if name == "qdrant" { "1000:1000" } else { "999:999" };
                let user = service["user"].as_str().unwrap_or("");
                (user != want).then(|| format!("{name}: user is {:?}, expected {want}", user))
            })
        },
        "every server runs as its unprivileged uid",
    )
}

fn compose_capabilities(bundle: &Bundle) -> Outcome {
    with_compose(
        bundle,
        |doc| {
            services(doc)
                .into_iter()
                .filter_map(|(name, service)| {
                    let dropped = strings(&service["cap_drop"]).iter().any(|c| c == "ALL");
                    let added = strings(&service["cap_add"]);
                    let allowed: &[&str] = if name == "deliver" { &["CHOWN", "DAC_OVERRIDE", "FOWNER"] } else { &[] };
                    let extra: Vec<&String> = added.iter().filter(|c| !allowed.contains(&c.as_str())).collect();
                    (!dropped || !extra.is_empty())
                        .then(|| format!("{name}: cap_drop ALL {dropped}, extra capabilities {extra:?}"))
                })
                .collect()
        },
        "all capabilities dropped",
    )
}

fn compose_no_new_privileges(bundle: &Bundle) -> Outcome {
    with_compose(
        bundle,
        |doc| {
            services(doc)
                .into_iter()
                .filter(|(_, s)| {
                    !strings(&s["security_opt"])
                        .iter()
                        .any(|o| o == "no-new-privileges:true" || o == "no-new-privileges")
                })
                .map(|(name, _)| format!("{name}: no no-new-privileges"))
                .collect()
        },
        "no-new-privileges everywhere",
    )
}

fn compose_read_only(bundle: &Bundle) -> Outcome {
    with_compose(
        bundle,
        |doc| {
            services(doc)
                .into_iter()
                .filter(|(_, s)| s["read_only"].as_bool() != Some(true))
                .map(|(name, _)| format!("{name}: root filesystem is writable"))
                .collect()
        },
        "read-only root filesystems",
    )
}

fn compose_limits(bundle: &Bundle) -> Outcome {
    with_compose(
        bundle,
        |doc| {
            for_each_server(doc, |name, service| {
                let missing: Vec<&str> = ["mem_limit", "cpus", "pids_limit", "restart"]
                    .into_iter()
                    .filter(|k| service[*k].is_null())
                    .collect();
                (!missing.is_empty()).then(|| format!("{name}: no {}", missing.join(", ")))
            })
        },
        "memory, CPU and pids limits, restart policy",
    )
}

fn compose_network(bundle: &Bundle) -> Outcome {
    with_compose(
        bundle,
        |doc| {
            let mut problems = for_each_server(doc, |name, service| {
                let networks = service["networks"].as_mapping().map(|m| m.len()).unwrap_or(0);
                let host = service["network_mode"].as_str().is_some_and(|m| m == "host");
                (networks == 0 || host).then(|| format!("{name}: not on the stack's private network"))
            });
            if let Some((_, deliver)) = services(doc).into_iter().find(|(n, _)| n == "deliver")
                && deliver["network_mode"].as_str() != Some("none")
            {
                problems.push("deliver: has a network".into());
            }
            problems
        },
        "servers on the private network only",
    )
}

fn compose_ports(bundle: &Bundle) -> Outcome {
    let publish = bundle.profile.as_ref().map(|p| p.network.publish);
    let bind_loopback = bundle.profile.as_ref().is_none_or(|p| p.network.bind_address.is_loopback() || p.name == "dev");
    with_compose(
        bundle,
        |doc| {
            for_each_server(doc, |name, service| {
                let ports = strings(&service["ports"]);
                if publish == Some(false) && !ports.is_empty() {
                    return Some(format!("{name}: publishes {ports:?}, the profile publishes nothing"));
                }
                let open: Vec<&String> = ports
                    .iter()
                    .filter(|p| {
                        bind_loopback
                            && !(p.starts_with("127.") || p.starts_with("[::1]") || p.starts_with("localhost:"))
                    })
                    .collect();
                (!open.is_empty()).then(|| format!("{name}: publishes {open:?} beyond loopback"))
            })
        },
        "ports as the profile says",
    )
}

fn compose_no_secret(bundle: &Bundle) -> Outcome {
    let Some(text) = bundle.text(COMPOSE) else { return absent(COMPOSE) };
    let leaked = bundle.secrets.iter().any(|s| s.len() >= 16 && text.contains(s.as_str()));
    with_compose(
        bundle,
        |doc| {
            let mut problems = Vec::new();
            if leaked {
                problems.push("a secret of the store appears in the file".to_owned());
            }
            for (name, service) in services(doc) {
                for (key, _) in service["environment"].as_mapping().into_iter().flatten() {
                    let key = key.as_str().unwrap_or_default();
                    let sensitive = ["PASSWORD", "SECRET", "API_KEY", "TOKEN"].iter().any(|w| key.contains(w));
                    if sensitive && !key.ends_with("_FILE") {
                        problems.push(format!("{name}: environment variable {key} carries a secret; use {key}_FILE"));
                    }
                }
            }
            problems
        },
        "secrets reach containers as files only",
    )
}

fn compose_healthchecks(bundle: &Bundle) -> Outcome {
    with_compose(
        bundle,
        |doc| {
            for_each_server(doc, |name, service| {
                service["healthcheck"]["test"].is_null().then(|| format!("{name}: no healthcheck"))
            })
        },
        "every server has a healthcheck",
    )
}

fn compose_labels(bundle: &Bundle) -> Outcome {
    with_compose(
        bundle,
        |doc| {
            services(doc)
                .into_iter()
                .filter(|(_, s)| s["labels"][crate::containers::STACK_LABEL].is_null())
                .map(|(name, _)| format!("{name}: no {} label", crate::containers::STACK_LABEL))
                .collect()
        },
        "every container labelled",
    )
}

/// Files that hold a key or a secret, by path.
pub fn is_private(path: &str) -> bool {
    path.ends_with(".key")
        || path.starts_with("secrets/")
        || path.contains("/secrets/")
        || path.ends_with("users.acl")
        || path == QDRANT_CONFIG
        || path.ends_with(".sql")
        || path.starts_with(".hardstack")
}

fn files_private(bundle: &Bundle) -> Outcome {
    let problems: Vec<String> = bundle
        .modes
        .iter()
        .filter(|(path, is_dir, mode)| !is_dir && is_private(path) && mode & 0o077 != 0)
        .map(|(path, _, mode)| format!("{path} is {mode:04o}"))
        .collect();
    if problems.is_empty() { Pass("keys and secrets are 0600".into()) } else { Fail(problems.join("; ")) }
}

fn files_dirs(bundle: &Bundle) -> Outcome {
    let mut problems: Vec<String> = bundle
        .modes
        .iter()
        .filter(|(_, is_dir, mode)| *is_dir && mode & 0o077 != 0)
        .map(|(path, _, mode)| format!("{path}/ is {mode:04o}"))
        .collect();
    if let Ok(meta) = std::fs::metadata(&bundle.dir)
        && meta.permissions().mode() & 0o077 != 0
    {
        problems.push(format!("{} is {:04o}", bundle.dir.display(), meta.permissions().mode() & 0o777));
    }
    if problems.is_empty() { Pass("every directory is 0700".into()) } else { Fail(problems.join("; ")) }
}

#[cfg(test)]
mod tests;
