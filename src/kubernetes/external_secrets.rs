//! With the aws store: every value of the store as an External Secrets Operator template, a
//! SecretStore, and one ExternalSecret per service in place of its Secret's values.

use super::*;

/// A value of the aws store as it appears in the rendered files, and how External Secrets
/// Operator fetches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Substitution {
    /// The literal in the rendered files (a password, a SCRAM verifier, `#<sha256>` of a
    /// password): a `Secret`, so a debug print redacts it.
    pub literal: Secret,
    /// The template expression that makes it in the cluster.
    pub expression: String,
    /// The ExternalSecret's data key.
    pub alias: String,
    /// The secret's name in AWS Secrets Manager (with the profile's prefix).
    pub remote: String,
    /// `password` or `scram_verifier`.
    pub property: &'static str,
    /// `AWSCURRENT`, `AWSPREVIOUS` or `AWSPENDING`.
    pub stage: &'static str,
}

/// The substitutions for the aws store's versions (current, and the previous or pending ones
/// the servers still accept).
pub fn substitutions(profile: &Profile, versions: &crate::secrets::store::Versions) -> Vec<Substitution> {
    let mut all = Vec::new();
    let mut add = |name: &str, version: &crate::secrets::store::SecretVersion, stage: &'static str| {
        let alias = format!("{}_{}", name.replace(['/', '-'], "_"), stage.trim_start_matches("AWS").to_lowercase());
        let remote = format!("{}{name}", profile.secrets.aws.prefix);
        if let Some(verifier) = &version.verifier {
            all.push(Substitution {
                literal: verifier.clone(),
                expression: format!("{{{{ .{alias}_verifier }}}}"),
                alias: format!("{alias}_verifier"),
                remote: remote.clone(),
                property: "scram_verifier",
                stage,
            });
        }
        if name.starts_with("redis/") {
            all.push(Substitution {
                literal: Secret::new(format!("#{}", crate::secrets::redis_acl_hash(&version.value))),
                expression: format!("#{{{{ .{alias} | sha256sum }}}}"),
                alias: alias.clone(),
                remote: remote.clone(),
                property: "password",
                stage,
            });
        }
        all.push(Substitution {
            literal: version.value.clone(),
            expression: format!("{{{{ .{alias} }}}}"),
            alias,
            remote,
            property: "password",
            stage,
        });
    };
    for (name, version) in &versions.current {
        add(name, version, "AWSCURRENT");
    }
    for (name, version) in versions.redis_previous.iter().chain(&versions.postgres_previous) {
        add(name, version, "AWSPREVIOUS");
    }
    if let Some(version) = &versions.qdrant_previous {
        add(crate::layout::QDRANT_API_KEY, version, "AWSPREVIOUS");
    }
    if let Some(version) = &versions.qdrant_pending {
        add(crate::layout::QDRANT_API_KEY, version, "AWSPENDING");
    }
    // Longest first: a literal never hides inside a longer one.
    all.sort_by(|a, b| b.literal.expose().len().cmp(&a.literal.expose().len()).then(a.alias.cmp(&b.alias)));
    all
}

/// A private file made by External Secrets Operator: its template, and what it fetches.
#[derive(Debug, Clone)]
pub(super) struct Templated {
    text: String,
    used: Vec<Substitution>,
}

/// Moves out of `private` every file that holds a value of the store, as a template.
pub(super) fn take_templated(private: &mut Files, substitutions: &[Substitution]) -> BTreeMap<String, Templated> {
    let mut templated = BTreeMap::new();
    let keys: Vec<String> = private.keys().cloned().collect();
    for key in keys {
        let text = String::from_utf8_lossy(&private[&key]).into_owned();
        let used: Vec<Substitution> =
            substitutions.iter().filter(|s| text.contains(s.literal.expose())).cloned().collect();
        if used.is_empty() {
            continue;
        }
        let mut template = text.replace("{{", "{{ \"{{\" }}");
        for substitution in &used {
            template = template.replace(substitution.literal.expose(), &substitution.expression);
        }
        private.remove(&key);
        templated.insert(key, Templated { text: template, used });
    }
    templated
}

/// The SecretStore of the aws store's region, reached with the cluster's own AWS identity.
pub(super) fn secret_store(profile: &Profile, namespace: &str) -> Value {
    json!({
        "apiVersion": "external-secrets.io/v1beta1",
        "kind": "SecretStore",
        "metadata": {
            "name": "hardstack-aws",
            "namespace": namespace,
            "labels": { "app.kubernetes.io/instance": profile.stack.name, "app.kubernetes.io/managed-by": "hardstack" },
        },
        "spec": {
            "provider": {
                "aws": {
                    "service": "SecretsManager",
                    "region": profile.secrets.aws.region,
                    // IRSA or Pod Identity: the ServiceAccount the operator acts as, which the
                    // cluster's operator binds to a role that may read the prefix.
                    "auth": { "jwt": { "serviceAccountRef": { "name": "hardstack-external-secrets" } } },
                },
            },
        },
    })
}

/// The ExternalSecret that makes a service's password-bearing files from AWS Secrets Manager.
pub(super) fn external_secret(
    profile: &Profile,
    spec: &ContainerSpec,
    namespace: &str,
    templated: &BTreeMap<String, Templated>,
) -> Value {
    let mut data: BTreeMap<String, Value> = BTreeMap::new();
    for substitution in templated.values().flat_map(|t| &t.used) {
        data.insert(
            substitution.alias.clone(),
            json!({
                "secretKey": substitution.alias,
                "remoteRef": { "key": substitution.remote, "property": substitution.property, "version": substitution.stage },
            }),
        );
    }
    json!({
        "apiVersion": "external-secrets.io/v1beta1",
        "kind": "ExternalSecret",
        "metadata": metadata(profile, &spec.alias, &format!("{}-credentials", spec.alias), namespace),
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": { "name": "hardstack-aws", "kind": "SecretStore" },
            "target": {
                "name": format!("{}-credentials", spec.alias),
                "creationPolicy": "Owner",
                "template": {
                    "engineVersion": "v2",
                    "type": "Opaque",
                    "data": templated.iter().map(|(k, t)| (k.clone(), Value::String(t.text.clone()))).collect::<serde_json::Map<_, _>>(),
                },
            },
            "data": data.into_values().collect::<Vec<_>>(),
        },
    })
}
