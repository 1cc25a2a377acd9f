//! Qdrant rules over config.yaml: TLS, API keys, client certificates, what is closed, a
//! cluster's peers.

use serde_yaml_ng::Value as Yaml;

use super::{Bundle, Outcome, Rule, absent, failures};
use crate::layout::paths::QDRANT_CONFIG;
use Outcome::{Fail, NotApplicable as Na};

/// The rules of this kind of file, each with a stable id.
pub const RULES: &[Rule] = &[
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
        id: "audit.qdrant.cluster",
        summary: "in a cluster: the peers talk over TLS and demand the API key (enforce_internal_auth)",
        fix: "set cluster.p2p.enable_tls: true and service.enforce_internal_auth: true",
        check: qdrant_cluster,
    },
];

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

fn qdrant_cluster(bundle: &Bundle) -> Outcome {
    let cluster = matches!(qdrant(bundle), Some(Ok(doc)) if doc["cluster"]["enabled"].as_bool() == Some(true));
    if bundle.text(QDRANT_CONFIG).is_some() && !cluster {
        return Na("Qdrant runs as a single node".into());
    }
    with_qdrant(
        bundle,
        |doc| {
            let mut problems = Vec::new();
            if doc["cluster"]["p2p"]["enable_tls"].as_bool() != Some(true) {
                problems.push("cluster.p2p.enable_tls is not true: the peers talk in clear text".to_owned());
            }
            if doc["service"]["enforce_internal_auth"].as_bool() != Some(true) {
                problems.push(
                    "service.enforce_internal_auth is not true: a certificate of the CA alone opens the peers' API"
                        .into(),
                );
            }
            problems
        },
        "the peers over TLS, each demanding the API key",
    )
}
