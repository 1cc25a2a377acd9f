//! The Kubernetes target's manifests (`init --target kubernetes`), audited under the same rule
//! ids: the configuration files their ConfigMaps and Secrets carry go through the same rules as
//! the stack directory's files, and the StatefulSets' posture through the compose rules' ids
//! (non-root, capabilities, no privilege escalation, read-only root, limits, no secret outside a
//! Secret or in an environment variable, healthchecks as probes, a default-deny NetworkPolicy).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use base64::Engine as _;
use serde_yaml_ng::Value as Yaml;

use super::{Bundle, Outcome, Rule, failures};
use crate::layout::{self, KubeFile, StackFile};
use crate::profile::{Profile, Service};

/// The documents of the manifests, by file.
#[derive(Debug, Clone, Default)]
pub struct Manifests {
    pub documents: Vec<(String, Yaml)>,
}

/// Reads `kubernetes/*.yaml` when the directory has it.
pub fn load(dir: &Path) -> anyhow::Result<Option<Manifests>> {
    let root = dir.join(layout::KUBERNETES_DIR);
    if !root.is_dir() {
        return Ok(None);
    }
    let mut names: Vec<String> = std::fs::read_dir(&root)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.retain(|n| n.ends_with(".yaml") && !n.starts_with('.') && n != &KubeFile::Kustomization.name());
    names.sort();
    let mut documents = Vec::new();
    for name in names {
        let path = root.join(&name);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let value: Yaml = serde::Deserialize::deserialize(document)
                .with_context(|| format!("{}: not valid YAML", path.display()))?;
            if !value.is_null() {
                documents.push((format!("{}/{name}", layout::KUBERNETES_DIR), value));
            }
        }
    }
    Ok(Some(Manifests { documents }))
}

impl Manifests {
    fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a (String, Yaml)> + 'a {
        self.documents.iter().filter(move |(_, d)| d["kind"].as_str() == Some(kind))
    }

    /// The text of a key of a ConfigMap or Secret (decoded), with where it is.
    fn data(&self, key: &str) -> Option<(String, String)> {
        for (file, document) in &self.documents {
            let name = document["metadata"]["name"].as_str().unwrap_or("");
            match document["kind"].as_str() {
                Some("ConfigMap") => {
                    if let Some(text) = document["data"][key].as_str() {
                        return Some((format!("{file} (ConfigMap {name}, {key})"), text.to_owned()));
                    }
                }
                Some("Secret") => {
                    if let Some(encoded) = document["data"][key].as_str() {
                        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
                        return Some((
                            format!("{file} (Secret {name}, {key})"),
                            String::from_utf8_lossy(&bytes).into_owned(),
                        ));
                    }
                }
                _ => {}
            }
        }
        None
    }
}

/// The configuration files the manifests carry, keyed as the stack directory's (what the
/// config rules read), with where each is in the manifests.
pub fn carried_files(manifests: &Manifests, profile: &Profile) -> BTreeMap<&'static str, (String, String)> {
    use crate::layout::paths::{INIT_SQL, PG_HBA, POSTGRESQL_CONF, QDRANT_CONFIG, REDIS_CONF, USERS_ACL};
    let mut texts = BTreeMap::new();
    for (path, file) in [
        (POSTGRESQL_CONF, StackFile::PostgresConf),
        (PG_HBA, StackFile::PgHba),
        (INIT_SQL, StackFile::InitSql),
        (REDIS_CONF, StackFile::RedisConf),
        (USERS_ACL, StackFile::UsersAcl),
        (QDRANT_CONFIG, StackFile::QdrantConfig),
    ] {
        if let Some(found) = crate::kubernetes::data_key_of(profile, &file).and_then(|key| manifests.data(&key)) {
            texts.insert(path, found);
        }
    }
    texts
}

/// The rule's outcome on the manifests; `None` when the rule has nothing to read there.
pub fn check(rule: &Rule, bundle: &Bundle, manifests: &Manifests) -> Option<Outcome> {
    let config_rule = ["audit.pg.", "audit.hba.", "audit.redis.", "audit.acl.", "audit.qdrant."]
        .iter()
        .any(|prefix| rule.id.starts_with(prefix));
    if config_rule {
        let profile = bundle.profile.as_ref()?;
        let carried = carried_files(manifests, profile);
        let texts = carried.iter().map(|(path, (_, text))| (*path, text.clone())).collect();
        let view = Bundle { texts, ..bundle.clone() };
        // The evidence names the file as the manifests carry it.
        let locate = |evidence: String| {
            carried.iter().fold(evidence, |evidence, (path, (place, _))| evidence.replace(path, place))
        };
        return match (rule.check)(&view) {
            Outcome::NotApplicable(_) => None,
            Outcome::Fail(evidence) => Some(Outcome::Fail(locate(evidence))),
            Outcome::Pass(evidence) => Some(Outcome::Pass(locate(evidence))),
        };
    }
    let posture: fn(&Bundle, &Manifests) -> Outcome = match rule.id {
        "audit.compose.non_root" => non_root,
        "audit.compose.capabilities" => capabilities,
        "audit.compose.no_new_privileges" => no_new_privileges,
        "audit.compose.read_only" => read_only,
        "audit.compose.limits" => limits,
        "audit.compose.private_network" => default_deny,
        "audit.compose.no_secret_in_env" => no_secret_outside_secrets,
        "audit.compose.healthchecks" => probes,
        _ => return None,
    };
    Some(posture(bundle, manifests))
}

/// Every container of every StatefulSet, with where it is.
fn containers(manifests: &Manifests) -> Vec<(String, &Yaml)> {
    let mut all = Vec::new();
    for (file, document) in manifests.of_kind("StatefulSet") {
        let name = document["metadata"]["name"].as_str().unwrap_or("?");
        let pod = &document["spec"]["template"]["spec"];
        for list in ["initContainers", "containers"] {
            for container in pod[list].as_sequence().into_iter().flatten() {
                let container_name = container["name"].as_str().unwrap_or("?");
                all.push((format!("{file}: StatefulSet {name}, container {container_name}"), container));
            }
        }
    }
    all
}

const MANIFESTS: &str = "kubernetes/";

/// Whether a name's suffix is a node number.
fn is_node(suffix: &str) -> bool {
    suffix.parse::<u8>().is_ok()
}

fn non_root(_: &Bundle, manifests: &Manifests) -> Outcome {
    let mut problems = Vec::new();
    for (file, document) in manifests.of_kind("StatefulSet") {
        let name = document["metadata"]["name"].as_str().unwrap_or("?");
        let context = &document["spec"]["template"]["spec"]["securityContext"];
        // A node beyond a service's node 0 (`postgres-1`, `redis-sentinel-2`, `qdrant-1`) runs
        // as its service's image.
        let of = |s: &Service| s.name() == name || name.strip_prefix(&format!("{}-", s.name())).is_some_and(is_node);
        let expected = Service::ALL.iter().find(|s| of(s)).map(|s| u64::from(s.uid()));
        if context["runAsNonRoot"].as_bool() != Some(true) || context["runAsUser"].as_u64() != expected {
            problems.push(format!("{file}: StatefulSet {name} does not run as its image's uid with runAsNonRoot"));
        }
    }
    for (at, container) in containers(manifests) {
        if container["securityContext"]["runAsUser"].as_u64() == Some(0) {
            problems.push(format!("{at} runs as root"));
        }
    }
    failures(MANIFESTS, problems, "every pod runs as its image's uid, runAsNonRoot")
}

fn capabilities(_: &Bundle, manifests: &Manifests) -> Outcome {
    let mut problems = Vec::new();
    for (at, container) in containers(manifests) {
        let capabilities = &container["securityContext"]["capabilities"];
        let drops_all = capabilities["drop"].as_sequence().is_some_and(|d| d.iter().any(|c| c.as_str() == Some("ALL")));
        if !drops_all || capabilities["add"].as_sequence().is_some_and(|a| !a.is_empty()) {
            problems.push(format!("{at} keeps capabilities"));
        }
    }
    failures(MANIFESTS, problems, "every container drops ALL capabilities and adds none")
}

/// Every container must satisfy `holds`; each that does not is named with `problem`.
fn every_container(manifests: &Manifests, holds: fn(&Yaml) -> bool, problem: &str, ok: &str) -> Outcome {
    let problems =
        containers(manifests).into_iter().filter(|(_, c)| !holds(c)).map(|(at, _)| format!("{at} {problem}")).collect();
    failures(MANIFESTS, problems, ok)
}

fn no_new_privileges(_: &Bundle, manifests: &Manifests) -> Outcome {
    every_container(
        manifests,
        |c| c["securityContext"]["allowPrivilegeEscalation"].as_bool() == Some(false),
        "may escalate privileges",
        "allowPrivilegeEscalation: false everywhere",
    )
}

fn read_only(_: &Bundle, manifests: &Manifests) -> Outcome {
    every_container(
        manifests,
        |c| c["securityContext"]["readOnlyRootFilesystem"].as_bool() == Some(true),
        "has a writable root filesystem",
        "readOnlyRootFilesystem: true everywhere",
    )
}

fn limits(_: &Bundle, manifests: &Manifests) -> Outcome {
    every_container(
        manifests,
        |c| !c["resources"]["limits"]["cpu"].is_null() && !c["resources"]["limits"]["memory"].is_null(),
        "has no CPU or memory limit",
        "CPU and memory limits on every container",
    )
}

fn default_deny(_: &Bundle, manifests: &Manifests) -> Outcome {
    let denies = manifests.of_kind("NetworkPolicy").any(|(_, d)| {
        let spec = &d["spec"];
        let all_pods = spec["podSelector"].as_mapping().is_some_and(|m| m.is_empty());
        let types: Vec<&str> =
            spec["policyTypes"].as_sequence().into_iter().flatten().filter_map(|t| t.as_str()).collect();
        all_pods
            && types.contains(&"Ingress")
            && types.contains(&"Egress")
            && spec["ingress"].is_null()
            && spec["egress"].is_null()
    });
    let problems =
        if denies { Vec::new() } else { vec!["no default-deny NetworkPolicy (ingress and egress)".to_owned()] };
    failures(MANIFESTS, problems, "a default-deny NetworkPolicy, then one allow per service")
}

fn no_secret_outside_secrets(bundle: &Bundle, manifests: &Manifests) -> Outcome {
    let mut problems = Vec::new();
    for (file, document) in &manifests.documents {
        let kind = document["kind"].as_str().unwrap_or("?");
        if kind == "Secret" {
            continue;
        }
        let name = document["metadata"]["name"].as_str().unwrap_or("?");
        let text = serde_yaml_ng::to_string(document).unwrap_or_default();
        if text.contains("PRIVATE KEY") || bundle.secrets.iter().any(|s| text.contains(s.expose())) {
            problems.push(format!("{file}: {kind} {name} carries a secret"));
        }
        if text.contains("secretKeyRef") {
            problems.push(format!("{file}: {kind} {name} puts a secret in an environment variable"));
        }
    }
    failures(MANIFESTS, problems, "secrets only in Secrets, delivered as files")
}

fn probes(_: &Bundle, manifests: &Manifests) -> Outcome {
    let mut problems = Vec::new();
    for (file, document) in manifests.of_kind("StatefulSet") {
        for container in document["spec"]["template"]["spec"]["containers"].as_sequence().into_iter().flatten() {
            // A command, or the container's own port opened by the kubelet (the monitoring
            // services, whose images have no client).
            let ports: Vec<u64> = container["ports"]
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(|p| p["containerPort"].as_u64())
                .collect();
            for probe in ["readinessProbe", "livenessProbe"] {
                let command = container[probe]["exec"]["command"].as_sequence().is_some_and(|c| !c.is_empty());
                let port = container[probe]["tcpSocket"]["port"].as_u64().is_some_and(|p| ports.contains(&p));
                if !command && !port {
                    let name = container["name"].as_str().unwrap_or("?");
                    problems.push(format!("{file}: container {name} has no {probe} that runs a check"));
                }
            }
        }
    }
    failures(MANIFESTS, problems, "readiness and liveness probes run the healthcheck")
}
