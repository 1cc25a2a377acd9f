//! Redis rules: redis.conf (TLS only, protected mode, ACL file, memory, debug and module
//! commands) and the ACL file (default user off, hashed passwords, least privilege).

use super::{Bundle, Outcome, Rule, absent, failures, parse};
use crate::layout::paths::{REDIS_CONF, USERS_ACL};
use std::path::Path;

use crate::profile::RedisRole;
use Outcome::{Fail, Pass};

/// The rules of this kind of file, each with a stable id.
pub const RULES: &[Rule] = &[
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
        summary: "an admin user, a health user allowed only PING, a backup user allowed only the RDB transfer",
        fix: "keep `user admin ...`, `user health on #<hash> resetkeys resetchannels -@all +ping` and `user backup on #<hash> resetkeys resetchannels -@all +replconf +sync`",
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
];

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
            if parent == crate::layout::REDIS_DIR {
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
    let monitor = ("monitor", crate::layout::REDIS_MONITOR_COMMANDS, false);
    // Where the stack runs replicas: the replication and Sentinel users, each to its commands.
    let replica = (crate::layout::REDIS_REPLICA, crate::layout::REPLICA_COMMANDS, false);
    let sentinel = (crate::layout::SENTINEL, crate::layout::SENTINEL_COMMANDS, false);
    for (login, allowed, required) in
        [("health", &["+ping"][..], true), ("backup", &["+replconf", "+sync"][..], true), monitor, replica, sentinel]
    {
        match users.iter().find(|(_, name, _)| name == login) {
            None if !required => {}
            None => problems.push(format!("no {login} user")),
            Some((line, _, rules)) => {
                let after_reset = rules.iter().rposition(|r| r == "-@all").map(|i| &rules[i + 1..]);
                let commands: Vec<&String> =
                    after_reset.unwrap_or(&rules[..]).iter().filter(|r| r.starts_with('+')).collect();
                if after_reset.is_none()
                    || commands.iter().any(|c| !allowed.contains(&c.as_str()))
                    || rules.iter().any(|r| r.starts_with('~'))
                {
                    problems.push(format!("line {line}: {login} may run more than {}", allowed.join(" ")));
                }
            }
        }
    }
    failures(
        USERS_ACL,
        problems,
        "admin present; health: -@all +ping; backup: -@all +replconf +sync; monitor, replica and sentinel, if any: -@all and what each runs",
    )
}

fn acl_app_users(bundle: &Bundle) -> Outcome {
    let Some(users) = acl(bundle) else { return absent(USERS_ACL) };
    let mut problems = Vec::new();
    for (line, name, rules) in users.iter().filter(|(_, n, _)| {
        !matches!(n.as_str(), "default" | "admin" | "health" | "backup" | "monitor" | "replica" | "sentinel")
    }) {
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
