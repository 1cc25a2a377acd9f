//! The `SecretStore` trait: versions of a named secret with the stages of the rotation protocol
//! (the one AWS Secrets Manager uses): `current`, `pending` and `previous`.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::Secret;

/// A stage label. A version may carry several; each label is on at most one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// The credential applications use now.
    Current,
    /// A new credential being rolled out.
    Pending,
    /// The credential that was current before; still valid during a grace period.
    Previous,
}

/// One version of a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretVersion {
    /// Unique id of the version (the rotation's idempotency token).
    pub id: String,
    /// The secret value.
    pub value: Secret,
    /// The login this value belongs to, where it alternates between roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// A value derived once from `value` and kept with it (the PostgreSQL SCRAM verifier, whose
    /// random salt would otherwise change every render).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifier: Option<Secret>,
    /// When the version was created.
    #[serde(with = "humantime_serde_compat")]
    pub created: SystemTime,
    /// Stage labels on this version.
    pub stages: Vec<Stage>,
}

/// Versions of named secrets. Names look like `postgres/app`.
pub trait SecretStore {
    /// The version that carries `stage`, if any.
    fn get(&self, name: &str, stage: Stage) -> anyhow::Result<Option<SecretVersion>>;
    /// Adds `version`; its stage labels move to it from any other version.
    fn put(&self, name: &str, version: SecretVersion) -> anyhow::Result<()>;
    /// Every secret name in the store.
    fn names(&self) -> anyhow::Result<Vec<String>>;
}

/// Serde for `SystemTime` as RFC 3339 text, readable in the store's files.
mod humantime_serde_compat {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_rfc3339_seconds(*time).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}
