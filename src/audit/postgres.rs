//! PostgreSQL rules: postgresql.conf (TLS, SCRAM, logging, tuning), pg_hba.conf, the init SQL
//! and the initdb arguments of the compose file.

use super::cis::{forward_secret, listens_everywhere};
use super::compose::{services, with_compose};
use super::{Bundle, Outcome, Rule, absent, failures, parse};
use crate::layout::paths::{INIT_SQL, PG_HBA, POSTGRESQL_CONF, PROFILE};
use crate::profile::TlsVersion;
use Outcome::{Fail, NotApplicable as Na, Pass};

/// The rules of this kind of file, each with a stable id.
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
        summary: "ssl_ciphers names forward-secret AEAD suites only, one by one (CIS 6.10)",
        fix: "set ssl_ciphers = 'ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305'",
        check: pg_ciphers,
    },
    Rule {
        id: "audit.pg.listen_addresses",
        summary: "listen_addresses names the server's own addresses, not every interface (CIS 5.2)",
        fix: "set listen_addresses = 'localhost, postgres' (its alias on the stack network), never '*'",
        check: pg_listen_addresses,
    },
    Rule {
        id: "audit.pg.password_complexity",
        summary: "a password-complexity module is loaded: passwordcheck or credcheck (CIS 5.6)",
        fix: "add passwordcheck to shared_preload_libraries",
        check: pg_password_complexity,
    },
    Rule {
        id: "audit.pg.error_verbosity_and_replication_logging",
        summary: "log_error_verbosity = verbose and log_replication_commands = on (CIS 3.1.22, 7.2)",
        fix: "set log_error_verbosity = verbose and log_replication_commands = on",
        check: pg_verbose_logging,
    },
    Rule {
        id: "audit.pg.public_schema",
        summary: "the public schema grants PUBLIC nothing, in postgres and in template1 (CIS 4.10)",
        fix: "REVOKE ALL ON SCHEMA public FROM PUBLIC in postgres and, after \\connect template1, there too",
        check: pg_public_schema,
    },
    Rule {
        id: "audit.pg.pgaudit",
        summary: "pgAudit logs DDL and writes, never the ROLE class (whose statements carry verifiers) (CIS 3.2)",
        fix: "add pgaudit to shared_preload_libraries and set pgaudit.log = 'ddl, write'",
        check: pg_pgaudit,
    },
    Rule {
        id: "audit.pg.wal_volume",
        summary: "the WAL has a volume of its own, set at initdb (CIS 1.4.4)",
        fix: "mount a postgres-wal volume and set POSTGRES_INITDB_WALDIR to a directory in it",
        check: pg_wal_volume,
    },
    Rule {
        id: "audit.pg.every_role_limited",
        summary: "every role has a connection limit, owner roles and the superuser too (CIS 5.5)",
        fix: "give every role CONNECTION LIMIT n, and ALTER ROLE postgres CONNECTION LIMIT n",
        check: pg_every_role_limited,
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

fn pg_listen_addresses(bundle: &Bundle) -> Outcome {
    expect_setting(bundle, "listen_addresses", |v| !listens_everywhere(v))
}

fn pg_password_complexity(bundle: &Bundle) -> Outcome {
    expect_setting(bundle, "shared_preload_libraries", |v| {
        v.split(',').map(str::trim).any(|m| m == "passwordcheck" || m == "credcheck")
    })
}

fn pg_verbose_logging(bundle: &Bundle) -> Outcome {
    let Some(conf) = pg_conf(bundle) else { return absent(POSTGRESQL_CONF) };
    let get = |key: &str| setting(&conf, key).map(|(_, v)| v).unwrap_or_default();
    let mut problems = Vec::new();
    if get("log_error_verbosity") != "verbose" {
        problems.push("log_error_verbosity is not verbose".to_owned());
    }
    if !matches!(get("log_replication_commands").as_str(), "on" | "true" | "1") {
        problems.push("log_replication_commands is not on".to_owned());
    }
    failures(POSTGRESQL_CONF, problems, "log_error_verbosity = verbose, log_replication_commands = on")
}

fn pg_public_schema(bundle: &Bundle) -> Outcome {
    let Some(sql) = bundle.text(INIT_SQL) else { return absent(INIT_SQL) };
    let mut database = "postgres".to_owned();
    let mut closed = Vec::new();
    for line in sql.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("\\connect ") {
            database = name.trim().to_owned();
        } else if line.eq_ignore_ascii_case("REVOKE ALL ON SCHEMA public FROM PUBLIC;") {
            closed.push(database.clone());
        }
    }
    let problems = ["postgres", "template1"]
        .iter()
        .filter(|d| !closed.iter().any(|c| c == *d))
        .map(|d| format!("the public schema of {d} is not closed to PUBLIC"))
        .collect();
    failures(INIT_SQL, problems, "REVOKE ALL ON SCHEMA public FROM PUBLIC in postgres and template1")
}

fn pg_pgaudit(bundle: &Bundle) -> Outcome {
    if !bundle.profile.as_ref().is_some_and(|p| p.postgres.pgaudit) {
        return Na("the profile does not enable pgAudit (postgres.pgaudit; the image must carry it)".into());
    }
    let Some(conf) = pg_conf(bundle) else { return absent(POSTGRESQL_CONF) };
    let get = |key: &str| setting(&conf, key).map(|(_, v)| v).unwrap_or_default();
    let mut problems = Vec::new();
    if !get("shared_preload_libraries").split(',').any(|m| m.trim() == "pgaudit") {
        problems.push("pgaudit is not in shared_preload_libraries".to_owned());
    }
    let classes: Vec<String> = get("pgaudit.log").split(',').map(|c| c.trim().to_lowercase()).collect();
    for wanted in ["ddl", "write"] {
        if !classes.iter().any(|c| c == wanted || c == "all") {
            problems.push(format!("pgaudit.log lacks {wanted}"));
        }
    }
    if classes.iter().any(|c| c == "role" || c == "all") {
        problems.push("pgaudit.log has the ROLE class: ALTER ROLE ... PASSWORD would log verifiers".into());
    }
    failures(POSTGRESQL_CONF, problems, "pgaudit.log = 'ddl, write'")
}

fn pg_wal_volume(bundle: &Bundle) -> Outcome {
    let doc = match super::compose::compose(bundle) {
        None => return absent(crate::layout::paths::COMPOSE),
        Some(Err(err)) => return Fail(err),
        Some(Ok(doc)) => doc,
    };
    let Some(postgres) = services(&doc).into_iter().find(|(n, _)| n == "postgres").map(|(_, s)| s.clone()) else {
        return Na("the stack runs no PostgreSQL".into());
    };
    let mounts: Vec<(String, String)> = postgres["volumes"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|v| {
            let mut parts = v.as_str()?.split(':');
            Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
        })
        .collect();
    if !mounts.iter().any(|(key, target)| key.ends_with("-data") && target == "/var/lib/postgresql/data") {
        return Na("the data lives in memory (tmpfs), the WAL with it".into());
    }
    let waldir = postgres["environment"]["POSTGRES_INITDB_WALDIR"].as_str().unwrap_or_default().to_owned();
    let on_own_volume = mounts.iter().any(|(key, target)| {
        !key.ends_with("-data") && !waldir.is_empty() && waldir.starts_with(&format!("{target}/"))
    });
    if on_own_volume {
        Pass(format!("{}: POSTGRES_INITDB_WALDIR={waldir}, on a volume of its own", crate::layout::paths::COMPOSE))
    } else {
        Fail(format!("{}: postgres: the WAL is not on a volume of its own ({waldir:?})", crate::layout::paths::COMPOSE))
    }
}

fn pg_every_role_limited(bundle: &Bundle) -> Outcome {
    let Some(sql) = bundle.text(INIT_SQL) else { return absent(INIT_SQL) };
    // Every role the SQL creates (CREATE ROLE, directly or through \gexec), and the superuser.
    let mut roles: Vec<String> = vec!["postgres".into()];
    for line in sql.lines() {
        let upper = line.to_uppercase();
        if let Some(at) = upper.find("CREATE ROLE ") {
            let name: String = line[at + "CREATE ROLE ".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && !roles.contains(&name) {
                roles.push(name);
            }
        }
    }
    let limited = |role: &str| {
        sql.lines().any(|line| {
            let upper = line.to_uppercase();
            (upper.starts_with(&format!("ALTER ROLE {} ", role.to_uppercase()))
                || upper.starts_with(&format!("CREATE ROLE {} ", role.to_uppercase())))
                && upper.contains("CONNECTION LIMIT")
        })
    };
    let problems = roles.iter().filter(|r| !limited(r)).map(|r| format!("role {r} has no CONNECTION LIMIT")).collect();
    failures(INIT_SQL, problems, "every role has a CONNECTION LIMIT")
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
        return Na(format!("no {PROFILE}: the declared resources are unknown"));
    };
    let tuning = crate::render::tuning::tune(crate::render::tuning::input(profile));
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
    // PgBouncer presents one certificate for every login it passes on: its lines, from its own
    // container only, check the certificate against the CA and the password by SCRAM.
    let pooler = bundle.profile.as_ref().map(crate::containers::pooler_hosts).unwrap_or_default();
    let from_the_pooler = |l: &crate::audit::parse::HbaLine| {
        pooler.contains(&l.address) && l.options.iter().any(|o| o == "clientcert=verify-ca")
    };
    let problems = lines
        .iter()
        .filter(|l| {
            l.accepts()
                && l.kind == "hostssl"
                && l.method != "cert"
                && !l.options.iter().any(|o| o == "clientcert=verify-full")
                && !from_the_pooler(l)
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
            (upper.starts_with("CREATE ROLE") || upper.starts_with("ALTER ROLE"))
                && upper.contains(" LOGIN")
                && !upper.contains("NOLOGIN")
                && !upper.contains("CONNECTION LIMIT")
        })
        .map(|(index, _)| format!("line {}: a login role without CONNECTION LIMIT", index + 1))
        .collect();
    failures(INIT_SQL, problems, "every login role has a CONNECTION LIMIT")
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
