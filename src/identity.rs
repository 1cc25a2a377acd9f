//! A stack directory's identity: a random id recorded in `identity.json` when the directory is
//! made, carried by every container, network and volume `up` creates (`hardstack.stack-id`,
//! with the directory in `hardstack.dir`), so that no command acts on another stack's objects
//! even when both have the same `stack.name`. A directory made by an earlier hardstack (it has
//! a manifest, no identity) adopts one on its next run, and with it the objects of its name
//! that carry no id (it made them; their labels cannot be changed).

use std::time::SystemTime;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::layout::StackFile;
use crate::stackdir::StackDir;

/// What `identity.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// 32 hex digits.
    pub id: String,
    /// When it was recorded (RFC 3339, UTC).
    pub created: String,
    /// Recorded for a directory an earlier hardstack made: the objects of its stack name that
    /// carry no id are its own.
    #[serde(default)]
    pub adopted: bool,
}

impl Identity {
    /// The recorded identity, `None` when there is none yet.
    pub fn read(dir: &StackDir) -> anyhow::Result<Option<Identity>> {
        let path = dir.file(&StackFile::Identity);
        match dir.read(&StackFile::Identity.path())? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).with_context(|| {
                format!(
                    "reading {}: it is damaged; restore it from a copy (its id is on the stack's containers: `docker inspect -f '{{{{index .Config.Labels \"{}\"}}}}' CONTAINER`)",
                    path.display(),
                    crate::containers::ID_LABEL
                )
            }),
        }
    }

    /// The recorded identity, or the one the next mutating run records (not written): a new
    /// one, adopting the objects of an earlier hardstack's directory.
    pub fn of(dir: &StackDir) -> anyhow::Result<Identity> {
        match Identity::read(dir)? {
            Some(identity) => Ok(identity),
            None => Ok(Identity::new(dir.file(&crate::layout::StackFile::Manifest).exists())),
        }
    }

    /// The recorded identity; records one first when there is none. The caller holds the lock.
    pub fn ensure(dir: &StackDir) -> anyhow::Result<Identity> {
        if let Some(identity) = Identity::read(dir)? {
            return Ok(identity);
        }
        let identity = Identity::of(dir)?;
        identity.record(dir)?;
        Ok(identity)
    }

    /// Records this identity in `dir` (a throwaway stack's, whose identity derives from its
    /// parent's).
    pub fn record(&self, dir: &StackDir) -> anyhow::Result<()> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("an identity serializes");
        bytes.push(b'\n');
        crate::fsio::write_atomic(&dir.file(&StackFile::Identity), &bytes, StackFile::Identity.mode().bits())
    }

    /// The identity of a stack this one makes for `purpose` (the restore test's throwaway
    /// stack): the same every time, so what a killed run left is found by the next.
    pub fn derived(&self, purpose: &str) -> Identity {
        let id = crate::stackdir::digest(format!("{}:{purpose}", self.id).as_bytes())[..32].to_owned();
        Identity { id, created: self.created.clone(), adopted: false }
    }

    fn new(adopted: bool) -> Identity {
        let id: [u8; 16] = rand::random();
        Identity {
            id: hex::encode(id),
            created: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            adopted,
        }
    }

    /// The engine's view of it: the labels to put on objects and to require of them.
    pub fn owner(&self, stack: &str, dir: &StackDir) -> crate::runtime::Owner {
        crate::runtime::Owner {
            stack: stack.to_owned(),
            id: self.id.clone(),
            dir: dir.absolute().display().to_string(),
            legacy: self.adopted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_is_recorded_once_and_a_directory_of_an_earlier_version_adopts() {
        let tmp = tempfile::tempdir().unwrap();
        let new = StackDir::new(tmp.path().join("new"));
        let first = Identity::ensure(&new).unwrap();
        assert!(!first.adopted && first.id.len() == 32);
        assert_eq!(Identity::ensure(&new).unwrap(), first, "recorded once");
        let old = StackDir::new(tmp.path().join("old"));
        crate::fsio::write_atomic(
            &old.file(&crate::layout::StackFile::Manifest),
            b"{\"files\":{}}",
            StackFile::Identity.mode().bits(),
        )
        .unwrap();
        assert!(Identity::of(&old).unwrap().adopted);
        assert!(Identity::read(&old).unwrap().is_none(), "`of` writes nothing");
        assert_ne!(Identity::ensure(&old).unwrap().id, first.id);
    }
}
