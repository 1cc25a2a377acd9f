//! What shaped the stack directory's files besides the profile (whose resolved form, with every
//! `--set` and `--services`, is `hardstack.toml`): the templates it was rendered with and the
//! audit rules the user accepted. Both are recorded in the directory (`inputs.json`, and a copy
//! of each template under `templates/`), so every later render (rotate, restore, convergence,
//! plan) uses exactly them; only an explicit `--templates` or `--accept` changes them.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::layout::StackFile;
use crate::stackdir::{PlannedFile, StackDir, digest};

/// `inputs.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    /// The templates that replace embedded ones: name (`redis/users.acl.tera`) to SHA-256.
    #[serde(default)]
    pub templates: BTreeMap<String, String>,
    /// The directory they were taken from (absolute), for the user's information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates_from: Option<String>,
    /// Audit rules the user accepted by id (`--accept`): a file that fails them is delivered,
    /// and `plan`, `status` and `verify` say so.
    #[serde(default)]
    pub accepted: Vec<String>,
}

/// What a render uses: its templates, and the files that record them.
pub struct Resolved {
    pub inputs: Inputs,
    pub tera: tera::Tera,
    /// `inputs.json` and the copy of each template (none when nothing is recorded).
    pub files: Vec<PlannedFile>,
}

impl Inputs {
    /// The recorded inputs, empty when the directory records none.
    pub fn read(dir: &StackDir) -> anyhow::Result<Inputs> {
        Ok(Inputs::recorded(dir)?.unwrap_or_default())
    }

    /// The recorded inputs, `None` without inputs.json.
    fn recorded(dir: &StackDir) -> anyhow::Result<Option<Inputs>> {
        match dir.read(&StackFile::Inputs.path())? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).with_context(|| {
                format!(
                    "reading {}: it is damaged; run `hardstack up --templates DIR` to record the templates again",
                    dir.file(&StackFile::Inputs).display()
                )
            }),
        }
    }
}

/// The inputs of a render: `templates` (a directory whose files replace embedded templates by
/// name) and `accept` (rule ids; `none` clears) when given, the recorded ones otherwise. A
/// recorded template whose copy changed since it was recorded is an error that says how to
/// record it on purpose.
pub fn resolve(dir: &StackDir, templates: Option<&Path>, accept: Option<&[String]>) -> anyhow::Result<Resolved> {
    let recorded = Inputs::recorded(dir)?;
    let recorded_file = recorded.is_some();
    let recorded = recorded.unwrap_or_default();
    let mut sources = BTreeMap::new();
    let templates_from = match templates {
        Some(from) => {
            anyhow::ensure!(from.is_dir(), "--templates {}: no such directory", from.display());
            for (name, _) in crate::render::templates() {
                let path = from.join(name);
                if path.exists() {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading template {}", path.display()))?;
                    sources.insert(name.to_owned(), text);
                }
            }
            Some(std::path::absolute(from).unwrap_or_else(|_| from.to_owned()).display().to_string())
        }
        None => {
            for (name, hash) in &recorded.templates {
                let path = dir.file(&StackFile::Template(name.clone()));
                let text = std::fs::read_to_string(&path).with_context(|| {
                    format!("reading {}, the template this stack was rendered with; run `hardstack up --templates DIR` to record templates again", path.display())
                })?;
                anyhow::ensure!(
                    digest(text.as_bytes()) == *hash,
                    "{} changed since it was recorded in {}: a stack is rendered with the templates it recorded; run `hardstack up --templates DIR` to record new ones",
                    path.display(),
                    StackFile::Inputs.path()
                );
                sources.insert(name.clone(), text);
            }
            recorded.templates_from.clone()
        }
    };
    let accepted = match accept {
        Some(ids) if ids.iter().any(|id| id == "none") => Vec::new(),
        Some(ids) => {
            let mut ids: Vec<String> = ids.iter().map(|id| id.trim().to_owned()).filter(|id| !id.is_empty()).collect();
            ids.sort();
            ids.dedup();
            ids
        }
        None => recorded.accepted.clone(),
    };
    let inputs = Inputs {
        templates: sources.iter().map(|(name, text)| (name.clone(), digest(text.as_bytes()))).collect(),
        templates_from: if sources.is_empty() { None } else { templates_from },
        accepted,
    };
    let tera = crate::render::templates_with(&sources)?;
    let mut files = Vec::new();
    if inputs != Inputs::default() || recorded_file {
        let mut json = serde_json::to_vec_pretty(&inputs).expect("inputs serialize");
        json.push(b'\n');
        files.push(PlannedFile {
            path: StackFile::Inputs.path(),
            content: json,
            mode: StackFile::Inputs.mode().bits(),
        });
    }
    for (name, text) in &sources {
        let file = StackFile::Template(name.clone());
        files.push(PlannedFile { path: file.path(), content: text.clone().into_bytes(), mode: file.mode().bits() });
    }
    Ok(Resolved { inputs, tera, files })
}
