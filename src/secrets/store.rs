//! The `SecretStore` trait: versions of a named secret with the stages of the rotation protocol
//! (the one AWS Secrets Manager uses): `current`, `pending` and `previous`. Two stores implement
//! it, `file` and `aws`; `Store` picks one from the profile.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::Secret;
use super::aws::AwsStore;
use super::file::FileStore;
use crate::layout;
use crate::profile::{Profile, Service, StoreKind};
use crate::stackdir::StackDir;

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
    #[serde(with = "rfc3339")]
    pub created: SystemTime,
    /// Stage labels on this version.
    pub stages: Vec<Stage>,
}

/// Versions of named secrets. Names look like `postgres/app`. Every method is idempotent.
#[allow(async_fn_in_trait)]
pub trait SecretStore {
    /// The version that carries `stage`, if any.
    async fn get(&self, name: &str, stage: Stage) -> anyhow::Result<Option<SecretVersion>>;
    /// Creates the secret with `version` as its current version.
    async fn create(&self, name: &str, version: &SecretVersion) -> anyhow::Result<()>;
    /// Adds `version` labelled pending (a no-op when that version id is already there).
    async fn put_pending(&self, name: &str, version: &SecretVersion) -> anyhow::Result<()>;
    /// Makes version `id` current: the current one becomes previous, and the pending label
    /// goes away. One atomic move where the store allows it; safe to repeat.
    async fn finish(&self, name: &str, id: &str) -> anyhow::Result<()>;
}

/// The versions of a stack's secrets that rendering needs.
#[derive(Debug, Clone, Default)]
pub struct Versions {
    /// The current version of each secret, by name.
    pub current: BTreeMap<String, SecretVersion>,
    /// Qdrant's pending read-write key, during a rotation.
    pub qdrant_pending: Option<SecretVersion>,
    /// Qdrant's previous read-write key, which it accepts until the next rotation.
    pub qdrant_previous: Option<SecretVersion>,
    /// The previous version of each Redis password still within the profile's grace period
    /// (counted from its successor's creation): Redis accepts both until rotation expires it.
    pub redis_previous: BTreeMap<String, SecretVersion>,
    /// The previous version of each PostgreSQL application password: its login (the one that
    /// is not current) keeps it until the next rotation.
    pub postgres_previous: BTreeMap<String, SecretVersion>,
    /// The pending version of each one-role PostgreSQL login (admin, health, backup) during a
    /// rotation: once it is set, the server accepts only it.
    pub postgres_pending: BTreeMap<String, SecretVersion>,
    /// Each application user's key at the Qdrant front, by secret name: its pending version
    /// during a rotation, and its previous one within the grace period. The front accepts
    /// them beside the current one.
    pub front_pending: BTreeMap<String, SecretVersion>,
    pub front_previous: BTreeMap<String, SecretVersion>,
}

/// The store a profile names.
pub enum Store {
    File(FileStore),
    Aws(AwsStore),
}

impl Store {
    /// Opens the profile's store (for `aws`, a client of the configured region and endpoint).
    pub async fn open(profile: &Profile, dir: &StackDir) -> anyhow::Result<Store> {
        Ok(match profile.secrets.store {
            StoreKind::File => Store::File(FileStore::new(&dir.root)),
            StoreKind::Aws => Store::Aws(AwsStore::connect(profile).await?),
        })
    }

    /// The current version of every secret the profile needs that the store has, and Qdrant's
    /// alternate key (pending, else previous).
    pub async fn versions(&self, profile: &Profile) -> anyhow::Result<Versions> {
        let mut versions = Versions::default();
        for (name, _) in layout::secret_names(profile) {
            if let Some(version) = self.get(&name, Stage::Current).await? {
                versions.current.insert(name, version);
            }
        }
        for user in &profile.users {
            let name = layout::login_secret(Service::Postgres, &user.name);
            if profile.runs(Service::Postgres)
                && let Some(previous) = self.get(&name, Stage::Previous).await?
            {
                versions.postgres_previous.insert(name, previous);
            }
        }
        for login in layout::service_logins(profile, Service::Postgres) {
            let name = layout::login_secret(Service::Postgres, login);
            if profile.runs(Service::Postgres)
                && let Some(pending) = self.get(&name, Stage::Pending).await?
            {
                versions.postgres_pending.insert(name, pending);
            }
        }
        let front = format!("{}/", Service::QdrantFront);
        for (name, current) in &versions.current {
            if !name.starts_with(&front) {
                continue;
            }
            if let Some(pending) = self.get(name, Stage::Pending).await? {
                versions.front_pending.insert(name.clone(), pending);
            }
            let age = SystemTime::now().duration_since(current.created).unwrap_or_default();
            if age < profile.rotation.grace.0
                && let Some(previous) = self.get(name, Stage::Previous).await?
                && previous.value != current.value
            {
                versions.front_previous.insert(name.clone(), previous);
            }
        }
        for (name, current) in &versions.current {
            let redis = [Service::Redis, Service::RedisSentinel];
            if !redis.iter().any(|service| name.starts_with(&format!("{service}/"))) {
                continue;
            }
            let age = SystemTime::now().duration_since(current.created).unwrap_or_default();
            if age < profile.rotation.grace.0
                && let Some(previous) = self.get(name, Stage::Previous).await?
                && previous.value != current.value
            {
                versions.redis_previous.insert(name.clone(), previous);
            }
        }
        if profile.runs(Service::Qdrant) {
            versions.qdrant_pending = self.get(layout::QDRANT_API_KEY, Stage::Pending).await?;
            versions.qdrant_previous = self.get(layout::QDRANT_API_KEY, Stage::Previous).await?;
        }
        Ok(versions)
    }

    /// The current version, or an error that says to run init.
    pub async fn current(&self, name: &str) -> anyhow::Result<SecretVersion> {
        self.get(name, Stage::Current)
            .await?
            .ok_or_else(|| anyhow::anyhow!("secret {name} has no current version; run `hardstack init`"))
    }
}

impl SecretStore for Store {
    async fn get(&self, name: &str, stage: Stage) -> anyhow::Result<Option<SecretVersion>> {
        match self {
            Store::File(store) => store.get(name, stage).await,
            Store::Aws(store) => store.get(name, stage).await,
        }
    }

    async fn create(&self, name: &str, version: &SecretVersion) -> anyhow::Result<()> {
        match self {
            Store::File(store) => store.create(name, version).await,
            Store::Aws(store) => store.create(name, version).await,
        }
    }

    async fn put_pending(&self, name: &str, version: &SecretVersion) -> anyhow::Result<()> {
        match self {
            Store::File(store) => store.put_pending(name, version).await,
            Store::Aws(store) => store.put_pending(name, version).await,
        }
    }

    async fn finish(&self, name: &str, id: &str) -> anyhow::Result<()> {
        match self {
            Store::File(store) => store.finish(name, id).await,
            Store::Aws(store) => store.finish(name, id).await,
        }
    }
}

/// Serde for `SystemTime` as RFC 3339 text, readable in the store's files.
pub mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_rfc3339_millis(*time).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}
