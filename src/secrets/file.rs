//! The `file` secret store: one JSON file per secret under the stack's `secrets/` directory,
//! holding the versions that carry a stage. Files are 0600 in 0700 directories and replaced
//! atomically, so a crash mid-write leaves the previous state.

use std::path::PathBuf;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::store::{SecretStore, SecretVersion, Stage};
use crate::fsio;
use crate::layout::StackFile;

/// The on-disk record of one secret.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Versions that carry at least one stage, newest last.
    pub versions: Vec<SecretVersion>,
}

impl Record {
    /// The version labelled `stage`.
    pub fn get(&self, stage: Stage) -> Option<&SecretVersion> {
        self.versions.iter().find(|v| v.stages.contains(&stage))
    }

    /// Makes version `id` current: current becomes previous, pending goes away.
    pub fn finish(&mut self, id: &str) -> anyhow::Result<()> {
        let target =
            self.versions.iter().find(|v| v.id == id).cloned().ok_or_else(|| anyhow::anyhow!("no version {id}"))?;
        if !target.stages.contains(&Stage::Current)
            && let Some(current) = self.get(Stage::Current).cloned()
        {
            self.put(SecretVersion { stages: vec![Stage::Previous], ..current });
        }
        self.put(SecretVersion { stages: vec![Stage::Current], ..target });
        Ok(())
    }

    /// Adds or replaces `version` (same id), moving its labels off the other versions and
    /// dropping versions left without a label.
    pub fn put(&mut self, version: SecretVersion) {
        for other in &mut self.versions {
            other.stages.retain(|stage| !version.stages.contains(stage));
        }
        self.versions.retain(|v| v.id != version.id);
        self.versions.push(version);
        self.versions.retain(|v| !v.stages.is_empty());
    }

    /// The file content.
    pub fn encode(&self) -> Vec<u8> {
        let mut text = serde_json::to_string_pretty(self).expect("a record always serializes");
        text.push('\n');
        text.into_bytes()
    }
}

/// A secret store in a directory.
#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    /// The store of the stack directory at `root` (its secrets are files under `secrets/`).
    pub fn new(root: impl Into<PathBuf>) -> FileStore {
        FileStore { root: root.into() }
    }

    /// The file of secret `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(StackFile::Secret(name.to_owned()).path())
    }

    /// Reads the record of `name`; an absent file is an empty record.
    pub fn read(&self, name: &str) -> anyhow::Result<Record> {
        let path = self.path(name);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!("reading secret {}: the file is damaged; restore it from a backup", path.display())
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Record::default()),
            Err(err) => Err(err).with_context(|| format!("reading secret {}", path.display())),
        }
    }
}

impl FileStore {
    /// Reads, changes and atomically rewrites one record.
    fn update(&self, name: &str, change: impl FnOnce(&mut Record) -> anyhow::Result<()>) -> anyhow::Result<()> {
        let mut record = self.read(name)?;
        change(&mut record)?;
        fsio::write_atomic(&self.path(name), &record.encode(), StackFile::Secret(name.to_owned()).mode().bits())
    }

    /// The version labelled `stage` (synchronous, for callers outside an async runtime).
    pub fn get_sync(&self, name: &str, stage: Stage) -> anyhow::Result<Option<SecretVersion>> {
        Ok(self.read(name)?.get(stage).cloned())
    }
}

impl SecretStore for FileStore {
    async fn get(&self, name: &str, stage: Stage) -> anyhow::Result<Option<SecretVersion>> {
        self.get_sync(name, stage)
    }

    async fn create(&self, name: &str, version: &SecretVersion) -> anyhow::Result<()> {
        self.update(name, |record| {
            record.put(SecretVersion { stages: vec![Stage::Current], ..version.clone() });
            Ok(())
        })
    }

    async fn put_pending(&self, name: &str, version: &SecretVersion) -> anyhow::Result<()> {
        self.update(name, |record| {
            if !record.versions.iter().any(|v| v.id == version.id) {
                record.put(SecretVersion { stages: vec![Stage::Pending], ..version.clone() });
            }
            Ok(())
        })
    }

    async fn finish(&self, name: &str, id: &str) -> anyhow::Result<()> {
        // SECURITY: one write moves every label, so no reader ever sees a secret without a
        // current version.
        self.update(name, |record| record.finish(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::Secret;
    use std::time::SystemTime;

    fn version(id: &str, stages: &[Stage]) -> SecretVersion {
        SecretVersion {
            id: id.into(),
            value: Secret::new(format!("value-{id}")),
            username: None,
            verifier: None,
            created: SystemTime::now(),
            stages: stages.to_vec(),
        }
    }

    fn block<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(future)
    }

    #[test]
    fn stages_move_from_current_to_previous_and_finish_is_repeatable() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        block(async {
            store.create("redis/app", &version("v1", &[])).await.unwrap();
            store.put_pending("redis/app", &version("v2", &[])).await.unwrap();
            store.put_pending("redis/app", &version("v2", &[])).await.unwrap();
            assert_eq!(store.get("redis/app", Stage::Current).await.unwrap().unwrap().id, "v1");
            assert_eq!(store.get("redis/app", Stage::Pending).await.unwrap().unwrap().id, "v2");
            store.finish("redis/app", "v2").await.unwrap();
            store.finish("redis/app", "v2").await.unwrap();
            assert_eq!(store.get("redis/app", Stage::Current).await.unwrap().unwrap().id, "v2");
            assert_eq!(store.get("redis/app", Stage::Previous).await.unwrap().unwrap().id, "v1");
            assert!(store.get("redis/app", Stage::Pending).await.unwrap().is_none());
            // A third version pushes v1 out entirely.
            store.put_pending("redis/app", &version("v3", &[])).await.unwrap();
            store.finish("redis/app", "v3").await.unwrap();
            assert_eq!(store.read("redis/app").unwrap().versions.len(), 2);
            assert_eq!(store.get("redis/app", Stage::Previous).await.unwrap().unwrap().id, "v2");
        });
    }

    #[test]
    fn files_are_private_in_private_directories() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        block(store.create("postgres/app", &version("v1", &[]))).unwrap();
        block(store.create("qdrant/api-key", &version("v1", &[]))).unwrap();
        let file = dir.path().join("secrets/postgres/app.json");
        assert_eq!(fsio::mode_of(&file), Some(0o600));
        assert_eq!(fsio::mode_of(&dir.path().join("secrets/postgres")), Some(0o700));
        assert_eq!(fsio::mode_of(&dir.path().join("secrets")), Some(0o700));
    }
}
