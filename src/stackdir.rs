//! The stack directory on disk (where each file lives is `layout`'s): reading it, and the manifest that tells hardstack's own
//! files from foreign ones. A file hardstack did not write, or one edited since, is never
//! overwritten without `--force`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fsio;
use crate::layout::StackFile;

/// Paths inside one stack directory.
#[derive(Debug, Clone)]
pub struct StackDir {
    pub root: PathBuf,
}

impl StackDir {
    pub fn new(root: impl Into<PathBuf>) -> StackDir {
        StackDir { root: root.into() }
    }

    /// An absolute or root-relative path of a file given relative to the stack directory.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// The stack directory as an absolute path (what the engine needs for a host directory).
    pub fn absolute(&self) -> PathBuf {
        std::path::absolute(&self.root).unwrap_or_else(|_| self.root.clone())
    }

    /// The path of a file of the layout.
    pub fn file(&self, file: &StackFile) -> PathBuf {
        self.path(&file.path())
    }

    /// Reads a file relative to the root, `None` when absent.
    pub fn read(&self, relative: &str) -> anyhow::Result<Option<Vec<u8>>> {
        read_optional(&self.path(relative))
    }

    /// The manifest, empty when absent.
    pub fn manifest(&self) -> anyhow::Result<Manifest> {
        match self.read(&StackFile::Manifest.path())? {
            Some(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "reading {}: the manifest is damaged; delete it and rerun with --force",
                    self.file(&StackFile::Manifest).display()
                )
            }),
            None => Ok(Manifest::default()),
        }
    }
}

/// Reads a file, `None` when it does not exist.
pub fn read_optional(path: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
}

/// SHA-256 of file content, hex.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What hardstack wrote: relative path to content hash.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub files: BTreeMap<String, String>,
}

/// One file to write.
#[derive(Debug, Clone)]
pub struct PlannedFile {
    /// Path relative to the stack directory.
    pub path: String,
    pub content: Vec<u8>,
    pub mode: u32,
}

impl PlannedFile {
    /// A file of the layout, with the mode the layout gives it.
    pub fn of(file: StackFile, content: Vec<u8>) -> PlannedFile {
        PlannedFile { path: file.path(), content, mode: file.mode().bits() }
    }
}

/// What applying a plan did or would do to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Created,
    Updated,
    Unchanged,
}

/// A file that exists but is not hardstack's (or was edited since hardstack wrote it).
#[derive(Debug, Clone)]
pub struct Conflict {
    pub path: String,
    pub edited: bool,
}

/// The outcome of comparing a plan with the disk.
#[derive(Debug, Clone, Default)]
pub struct Diff {
    /// The change for each planned file, in plan order.
    pub changes: Vec<(String, Change)>,
    /// Files that would be overwritten but are not hardstack's.
    pub conflicts: Vec<Conflict>,
}

/// Compares the plan with the disk: the change for each file, and the conflicts.
pub fn diff(dir: &StackDir, manifest: &Manifest, plan: &[PlannedFile]) -> anyhow::Result<Diff> {
    let mut changes = Vec::new();
    let mut conflicts = Vec::new();
    for file in plan {
        let change = match dir.read(&file.path)? {
            None => Change::Created,
            Some(existing) if existing == file.content => Change::Unchanged,
            Some(existing) => {
                match manifest.files.get(&file.path) {
                    Some(hash) if *hash == digest(&existing) => {}
                    Some(_) => conflicts.push(Conflict { path: file.path.clone(), edited: true }),
                    None => conflicts.push(Conflict { path: file.path.clone(), edited: false }),
                }
                Change::Updated
            }
        };
        changes.push((file.path.clone(), change));
    }
    Ok(Diff { changes, conflicts })
}

/// Writes every changed file atomically, then the manifest. The only writer of `init`.
pub fn apply(
    dir: &StackDir,
    manifest: &mut Manifest,
    plan: &[PlannedFile],
    changes: &[(String, Change)],
) -> anyhow::Result<()> {
    fsio::ensure_dir(&dir.root)?;
    for (file, (_, change)) in plan.iter().zip(changes) {
        if *change != Change::Unchanged {
            fsio::write_atomic(&dir.path(&file.path), &file.content, file.mode)?;
        }
        manifest.files.insert(file.path.clone(), digest(&file.content));
    }
    write_manifest(dir, manifest)
}

fn write_manifest(dir: &StackDir, manifest: &Manifest) -> anyhow::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(manifest).expect("a manifest always serializes");
    bytes.push(b'\n');
    if dir.read(&StackFile::Manifest.path())?.as_deref() != Some(&bytes[..]) {
        fsio::write_atomic(&dir.file(&StackFile::Manifest), &bytes, StackFile::Manifest.mode().bits())?;
    }
    Ok(())
}

/// Replaces each file of the layout by its pending copy (`<path>.pending`, written earlier
/// with the file's mode), where there is one, and records the new content in the manifest.
/// Rotation uses it to put a re-issued certificate in place once the server presents it.
/// Idempotent: a file without a pending copy is left as it is.
pub fn promote_pending(dir: &StackDir, files: &[StackFile]) -> anyhow::Result<()> {
    let mut manifest = dir.manifest()?;
    for file in files {
        let path = file.path();
        let pending = dir.path(&crate::layout::pending(&path));
        if !pending.exists() {
            continue;
        }
        let content = std::fs::read(&pending).with_context(|| format!("reading {}", pending.display()))?;
        fsio::rename(&pending, &dir.path(&path))?;
        manifest.files.insert(path, digest(&content));
    }
    write_manifest(dir, &manifest)
}
