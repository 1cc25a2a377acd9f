//! The `file` secret store: one JSON file per secret under the stack's `secrets/` directory,
//! holding the versions that carry a stage. Files are 0600 in 0700 directories and replaced
//! atomically, so a crash mid-write leaves the previous state.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::store::{SecretStore, SecretVersion, Stage};
use crate::fsio;

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
    /// The store rooted at `root` (the stack's `secrets/`).
    pub fn new(root: impl Into<PathBuf>) -> FileStore {
        FileStore { root: root.into() }
    }

    /// The file of secret `name` relative to the stack directory's `secrets/`.
    pub fn relative_path(name: &str) -> PathBuf {
        PathBuf::from(format!("{name}.json"))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(Self::relative_path(name))
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

impl SecretStore for FileStore {
    fn get(&self, name: &str, stage: Stage) -> anyhow::Result<Option<SecretVersion>> {
        Ok(self.read(name)?.get(stage).cloned())
    }

    fn put(&self, name: &str, version: SecretVersion) -> anyhow::Result<()> {
        let mut record = self.read(name)?;
        record.put(version);
        fsio::write_atomic(&self.path(name), &record.encode(), fsio::PRIVATE_MODE)
    }

    fn names(&self) -> anyhow::Result<Vec<String>> {
        let mut names = Vec::new();
        collect(&self.root, &self.root, &mut names)?;
        names.sort();
        Ok(names)
    }
}

fn collect(root: &Path, dir: &Path, names: &mut Vec<String>) -> anyhow::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err).with_context(|| format!("listing {}", dir.display())),
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            collect(root, &path, names)?;
        } else if let Some(name) =
            path.strip_prefix(root).ok().and_then(|p| p.to_str()).and_then(|p| p.strip_suffix(".json"))
        {
            names.push(name.to_owned());
        }
    }
    Ok(())
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

    #[test]
    fn stages_move_from_current_to_previous() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("secrets"));
        store.put("redis/app", version("v1", &[Stage::Current])).unwrap();
        store.put("redis/app", version("v2", &[Stage::Pending])).unwrap();
        assert_eq!(store.get("redis/app", Stage::Current).unwrap().unwrap().id, "v1");
        assert_eq!(store.get("redis/app", Stage::Pending).unwrap().unwrap().id, "v2");
        // finish: v2 becomes current, v1 previous
        store.put("redis/app", version("v1", &[Stage::Previous])).unwrap();
        store.put("redis/app", version("v2", &[Stage::Current])).unwrap();
        assert_eq!(store.get("redis/app", Stage::Current).unwrap().unwrap().id, "v2");
        assert_eq!(store.get("redis/app", Stage::Previous).unwrap().unwrap().id, "v1");
        assert!(store.get("redis/app", Stage::Pending).unwrap().is_none());
        // a third version pushes v1 out entirely
        store.put("redis/app", version("v2", &[Stage::Previous])).unwrap();
        store.put("redis/app", version("v3", &[Stage::Current])).unwrap();
        assert_eq!(store.read("redis/app").unwrap().versions.len(), 2);
    }

    #[test]
    fn files_are_private_and_names_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("secrets"));
        store.put("postgres/app", version("v1", &[Stage::Current])).unwrap();
        store.put("qdrant/api-key", version("v1", &[Stage::Current])).unwrap();
        assert_eq!(store.names().unwrap(), vec!["postgres/app", "qdrant/api-key"]);
        let file = dir.path().join("secrets/postgres/app.json");
        assert_eq!(fsio::mode_of(&file), Some(0o600));
        assert_eq!(fsio::mode_of(&dir.path().join("secrets/postgres")), Some(0o700));
        assert_eq!(fsio::mode_of(&dir.path().join("secrets")), Some(0o700));
    }
}
