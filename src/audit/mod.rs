//! `audit`: static rules over a stack directory (or hand-edited files in the same layout),
//! without a running stack. Every line of the hardened baseline is a rule with a stable id; a
//! failing rule says what is wrong, where, and how to fix it. One module per kind of file, each
//! with its own rule table; [`Bundle::load`] is the only reader of the directory.

pub mod cis;
mod compose;
mod files;
pub mod kubernetes;
pub mod parse;
mod postgres;
mod qdrant;
mod redis;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::layout::paths::{COMPOSE, INIT_SQL, PG_HBA, POSTGRESQL_CONF, PROFILE, QDRANT_CONFIG, REDIS_CONF, USERS_ACL};
use crate::layout::{SECRETS_DIR, StackFile};
use crate::profile::{ClientCerts, Profile, ProfileSource};
use crate::report::Check;
use crate::secrets::Secret;
use crate::secrets::file::Record;

/// The files of a stack directory that the rules read, and what the profile expects.
#[derive(Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    /// The stack's resolved profile, when `hardstack.toml` is there.
    pub profile: Option<Profile>,
    texts: BTreeMap<&'static str, String>,
    /// Every file and directory under `dir`, relative, with its mode.
    pub modes: Vec<(String, bool, u32)>,
    /// Every secret value of the file store, to find them where they must not be.
    secrets: Vec<Secret>,
    /// The Kubernetes target's manifests, when the directory has them.
    pub kubernetes: Option<kubernetes::Manifests>,
}

// SECURITY: the texts hold secrets (Qdrant's config carries both API keys; the Kubernetes
// Secrets carry every value): a debug print names the files, never their contents.
impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let texts: Vec<(&str, usize)> = self.texts.iter().map(|(file, text)| (*file, text.len())).collect();
        f.debug_struct("Bundle")
            .field("dir", &self.dir)
            .field("profile", &self.profile.as_ref().map(|p| &p.name))
            .field("texts (file, bytes)", &texts)
            .field("modes", &self.modes.len())
            .field("secrets", &self.secrets)
            .field("kubernetes", &self.kubernetes.is_some())
            .finish()
    }
}

impl Bundle {
    /// Reads the directory. A missing file only makes its rules N/A; a secret file that cannot
    /// be read is an error naming it.
    pub fn load(dir: &Path) -> anyhow::Result<Bundle> {
        anyhow::ensure!(
            dir.is_dir(),
            "{} is not a directory; pass a stack directory (hardstack audit DIR)",
            dir.display()
        );
        let profile = if dir.join(PROFILE).exists() {
            Some(crate::profile::load(&ProfileSource::File(dir.join(PROFILE)), &[])?.profile)
        } else {
            None
        };
        let mut texts = BTreeMap::new();
        for file in [POSTGRESQL_CONF, PG_HBA, INIT_SQL, REDIS_CONF, USERS_ACL, QDRANT_CONFIG, COMPOSE] {
            if let Ok(text) = std::fs::read_to_string(dir.join(file)) {
                texts.insert(file, text);
            }
        }
        let mut modes = Vec::new();
        walk(dir, dir, &mut modes)?;
        let mut secrets = Vec::new();
        for (path, is_dir, _) in &modes {
            if !is_dir
                && path.starts_with(&format!("{SECRETS_DIR}/"))
                && matches!(StackFile::parse(path), Some(StackFile::Secret(_)))
            {
                let file = dir.join(path);
                let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                let record: Record = serde_json::from_slice(&bytes).with_context(|| {
                    format!(
                        "{} is not a secret record of hardstack's file store; restore it or move it away",
                        file.display()
                    )
                })?;
                secrets.extend(record.versions.into_iter().map(|version| version.value));
            }
        }
        let kubernetes = kubernetes::load(dir)?;
        Ok(Bundle { dir: dir.to_owned(), profile, texts, modes, secrets, kubernetes })
    }

    /// The directory as it will be once `files` (a plan of `bundle`) are written, for the
    /// rules that read the files a server is given: the planned contents and modes over what
    /// is on disk, the planned profile, no Kubernetes manifests (nothing delivers them).
    pub fn planned(dir: &Path, profile: &Profile, files: &[crate::stackdir::PlannedFile]) -> anyhow::Result<Bundle> {
        let mut bundle = if dir.is_dir() {
            Bundle::load(dir)?
        } else {
            Bundle {
                dir: dir.to_owned(),
                profile: None,
                texts: BTreeMap::new(),
                modes: Vec::new(),
                secrets: Vec::new(),
                kubernetes: None,
            }
        };
        bundle.profile = Some(profile.clone());
        bundle.kubernetes = None;
        for file in files {
            let known = [POSTGRESQL_CONF, PG_HBA, INIT_SQL, REDIS_CONF, USERS_ACL, QDRANT_CONFIG, COMPOSE];
            if let Some(key) = known.into_iter().find(|k| *k == file.path) {
                bundle.texts.insert(key, String::from_utf8_lossy(&file.content).into_owned());
            }
            bundle.modes.retain(|(path, _, _)| *path != file.path);
            bundle.modes.push((file.path.clone(), false, file.mode));
        }
        Ok(bundle)
    }

    fn text(&self, file: &str) -> Option<&str> {
        self.texts.get(file).map(String::as_str)
    }

    fn mutual(&self) -> bool {
        self.profile.as_ref().is_some_and(|p| p.tls.client_certs == ClientCerts::Required)
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, bool, u32)>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path)?;
        let relative = path.strip_prefix(root).unwrap_or(&path).display().to_string();
        out.push((relative, meta.is_dir(), meta.permissions().mode() & 0o777));
        if meta.is_dir() {
            walk(root, &path, out)?;
        }
    }
    Ok(())
}

/// What one rule found.
pub enum Outcome {
    Pass(String),
    Fail(String),
    NotApplicable(String),
}

/// A static rule.
pub struct Rule {
    /// Stable id.
    pub id: &'static str,
    /// The hardened line it checks (the PASS reason).
    pub summary: &'static str,
    /// How to fix a failure (the FAIL reason).
    pub fix: &'static str,
    pub check: fn(&Bundle) -> Outcome,
}

/// Every rule: PostgreSQL, Redis, Qdrant, compose, files.
pub fn rules() -> impl Iterator<Item = &'static Rule> {
    [postgres::RULES, redis::RULES, qdrant::RULES, compose::RULES, files::RULES].into_iter().flatten()
}

/// Runs every rule, over the stack directory's files and, where the rule applies, over the
/// Kubernetes manifests too (one result per rule: it fails when either fails).
pub fn audit(bundle: &Bundle) -> Vec<Check> {
    rules()
        .map(|rule| {
            let outcome = (rule.check)(bundle);
            let manifests = bundle.kubernetes.as_ref().and_then(|m| kubernetes::check(rule, bundle, m));
            let outcome = match (outcome, manifests) {
                (outcome, None) => outcome,
                (Outcome::Fail(here), Some(Outcome::Fail(there))) => Outcome::Fail(format!("{here}; {there}")),
                (Outcome::Fail(evidence), Some(_)) | (_, Some(Outcome::Fail(evidence))) => Outcome::Fail(evidence),
                (Outcome::Pass(here), Some(Outcome::Pass(there))) => {
                    Outcome::Pass(format!("{here}; kubernetes: {there}"))
                }
                (Outcome::NotApplicable(_), Some(there)) => there,
                (outcome, Some(_)) => outcome,
            };
            match outcome {
                Outcome::Pass(evidence) => Check::pass(rule.id, rule.summary, evidence),
                Outcome::Fail(evidence) => Check::fail(rule.id, rule.fix, evidence),
                Outcome::NotApplicable(reason) => Check::not_applicable(rule.id, reason),
            }
        })
        .collect()
}

/// The rules over what servers are given (every rule but the directory's own modes), run on
/// a planned bundle: the checks that failed, each naming its rule, file and line.
pub fn delivered_failures(bundle: &Bundle) -> Vec<Check> {
    audit(bundle)
        .into_iter()
        .filter(|check| !check.id.starts_with("audit.files."))
        .filter(|check| check.verdict == crate::report::Verdict::Fail)
        .collect()
}

/// Whether `id` names an audit rule.
pub fn is_rule(id: &str) -> bool {
    rules().any(|rule| rule.id == id)
}

pub(crate) fn absent(file: &str) -> Outcome {
    Outcome::NotApplicable(format!("{file} is not in the directory"))
}

pub(crate) fn failures(file: &str, problems: Vec<String>, ok: impl Into<String>) -> Outcome {
    if problems.is_empty() {
        Outcome::Pass(ok.into())
    } else {
        Outcome::Fail(format!("{file}: {}", problems.join("; ")))
    }
}

#[cfg(test)]
mod tests;
