//! Compose rules: the container posture of docker-compose.yml (non-root, capabilities,
//! read-only, limits, network, ports, no secret, healthchecks, labels).

use serde_yaml_ng::Value as Yaml;

use super::{Bundle, Outcome, Rule, absent, failures};
use crate::layout::paths::COMPOSE;
use crate::profile::Service;
use Outcome::Fail;

/// The rules of this kind of file, each with a stable id.
pub const RULES: &[Rule] = &[
    Rule {
        id: "audit.compose.non_root",
        summary: "servers run as their image's unprivileged uid (postgres 999, redis 999, qdrant 1000, exporters 65534)",
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
];

/// The compose file, parsed; `None` when absent.
pub(super) fn compose(bundle: &Bundle) -> Option<Result<Yaml, String>> {
    bundle
        .text(COMPOSE)
        .map(|text| serde_yaml_ng::from_str(text).map_err(|e| format!("{COMPOSE}: not valid YAML: {e}")))
}

/// The compose services, with whether each is a server (not the deliver step).
pub(super) fn services(doc: &Yaml) -> Vec<(String, &Yaml)> {
    doc["services"]
        .as_mapping()
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v))).collect())
        .unwrap_or_default()
}

pub(super) fn with_compose(bundle: &Bundle, check: impl Fn(&Yaml) -> Vec<String>, ok: &str) -> Outcome {
    match compose(bundle) {
        None => absent(COMPOSE),
        Some(Err(err)) => Fail(err),
        Some(Ok(doc)) => failures(COMPOSE, check(&doc), ok),
    }
}

fn strings(value: &Yaml) -> Vec<String> {
    value.as_sequence().map(|s| s.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

fn for_each_server(doc: &Yaml, check: impl Fn(&str, &Yaml) -> Option<String>) -> Vec<String> {
    services(doc).into_iter().filter(|(n, _)| n != "deliver").filter_map(|(name, s)| check(&name, s)).collect()
}

fn compose_non_root(bundle: &Bundle) -> Outcome {
    with_compose(
        bundle,
        |doc| {
            for_each_server(doc, |name, service| {
                let uid = Service::ALL.into_iter().find(|s| s.name() == name).map_or(999, |s| s.uid());
                let want = format!("{uid}:{uid}");
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
    let leaked = bundle.secrets.iter().any(|s| s.expose().len() >= 16 && text.contains(s.expose()));
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
