//! Reading a profile: a shipped one by name or the user's file by path, an optional `extends`
//! base, then `--set` overrides. Every error names where the bad value came from: the file and
//! line of the key, or the `--set` flag that supplied it.

use std::path::PathBuf;

use anyhow::{Context as _, anyhow, bail};
use toml_edit::ImDocument;

use super::{Profile, validate};

/// The shipped profiles, embedded so the binary works from any directory.
const SHIPPED: &[(&str, &str)] = &[
    ("dev", include_str!("../../profiles/dev.toml")),
    ("test", include_str!("../../profiles/test.toml")),
    ("prod", include_str!("../../profiles/prod.toml")),
];

/// Where a profile comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileSource {
    /// One of the shipped profiles, by name.
    Shipped(String),
    /// The user's own TOML file.
    File(PathBuf),
}

impl ProfileSource {
    /// A name of a shipped profile, or else a path.
    pub fn parse(text: &str) -> ProfileSource {
        if SHIPPED.iter().any(|(name, _)| *name == text) {
            ProfileSource::Shipped(text.to_owned())
        } else {
            ProfileSource::File(PathBuf::from(text))
        }
    }
}

/// A validated profile and where it came from.
#[derive(Debug, Clone)]
pub struct ResolvedProfile {
    pub profile: Profile,
    /// `profiles/dev.toml`, or the user's path.
    pub origin: String,
}

/// One TOML text with the name to report it by.
struct Document {
    origin: String,
    text: String,
    doc: ImDocument<String>,
}

impl Document {
    fn parse(origin: String, text: String) -> anyhow::Result<Document> {
        let doc = ImDocument::parse(text.clone()).map_err(|err| {
            let line = err.span().map(|span| line_of(&text, span.start)).unwrap_or(1);
            anyhow!("{origin}:{line}: not valid TOML: {}", err.message())
        })?;
        Ok(Document { origin, text, doc })
    }

    /// The line of `key` (a dotted path, array indices as numbers), if the key is in this file.
    fn line_of_key(&self, key: &str) -> Option<usize> {
        let mut item = self.doc.as_item();
        let mut table: Option<&dyn toml_edit::TableLike> = None;
        let mut offset = None;
        for part in key.split('.') {
            let next = match (part.parse::<usize>(), table) {
                (Ok(index), None) => {
                    if let Some(tables) = item.as_array_of_tables() {
                        let element = tables.get(index)?;
                        offset = element.span().map(|s| s.start).or(offset);
                        table = Some(element as &dyn toml_edit::TableLike);
                        continue;
                    }
                    let element = item.as_array()?.get(index)?;
                    offset = element.span().map(|s| s.start).or(offset);
                    return offset.map(|o| line_of(&self.text, o));
                }
                (_, Some(current)) => current.get_key_value(part),
                (Err(_), None) => item.as_table_like()?.get_key_value(part),
            };
            let (k, v) = next?;
            offset = k.span().or(v.span()).map(|s| s.start).or(offset);
            item = v;
            table = None;
        }
        offset.map(|o| line_of(&self.text, o))
    }

    fn location(&self, key: &str) -> String {
        match self.line_of_key(key) {
            Some(line) => format!("{}:{line}", self.origin),
            None => self.origin.clone(),
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

fn shipped(name: &str) -> Option<&'static str> {
    SHIPPED.iter().find(|(n, _)| *n == name).map(|(_, text)| *text)
}

fn read_source(source: &ProfileSource) -> anyhow::Result<Document> {
    match source {
        ProfileSource::Shipped(name) => {
            let text = shipped(name).expect("ProfileSource::parse only makes Shipped of known names");
            Document::parse(format!("profiles/{name}.toml"), text.to_owned())
        }
        ProfileSource::File(path) => {
            let text = std::fs::read_to_string(path).with_context(|| {
                let names: Vec<_> = SHIPPED.iter().map(|(n, _)| *n).collect();
                format!(
                    "reading profile {}; pass a shipped profile ({}) or the path of a TOML file",
                    path.display(),
                    names.join(", ")
                )
            })?;
            Document::parse(path.display().to_string(), text)
        }
    }
}

/// Loads, merges, overrides and validates a profile. Nothing is written by this function,
/// so an error here leaves the stack directory as it was.
pub fn load(source: &ProfileSource, overrides: &[String]) -> anyhow::Result<ResolvedProfile> {
    let top = read_source(source)?;
    let mut value: toml::Table =
        toml::from_str(&top.text).map_err(|err| anyhow!("{}: {}", top.origin, err.message()))?;
    let mut files = vec![top];

    if let Some(base) = value.remove("extends") {
        let name = base.as_str().ok_or_else(|| {
            anyhow!("{}: key extends: must be the name of a shipped profile", files[0].location("extends"))
        })?;
        let Some(text) = shipped(name) else {
            bail!(
                "{}: key extends: `{name}` is not a shipped profile; use dev, test or prod",
                files[0].location("extends")
            );
        };
        let base_doc = Document::parse(format!("profiles/{name}.toml"), text.to_owned())?;
        let mut base_value: toml::Table = toml::from_str(text).expect("shipped profiles are valid TOML");
        merge(&mut base_value, value);
        value = base_value;
        files.push(base_doc);
    }

    let mut overridden = Vec::new();
    for assignment in overrides {
        apply_override(&mut value, assignment)?;
        overridden.push(assignment.split_once('=').map(|(k, _)| k.trim().to_owned()).unwrap_or_default());
    }

    // Where a key's value came from: the last --set that touched it, else the first file that has it.
    let locate = |key: &str| -> String {
        if let Some(flag) = overrides.iter().rev().find(|a| {
            let k = a.split_once('=').map(|(k, _)| k.trim()).unwrap_or("");
            key == k || key.starts_with(&format!("{k}.")) || k.starts_with(&format!("{key}."))
        }) {
            return format!("--set {flag}");
        }
        files.iter().find(|f| f.line_of_key(key).is_some()).unwrap_or(&files[0]).location(key)
    };

    let profile: Profile = serde_path_to_error::deserialize(toml::Value::Table(value)).map_err(|err| {
        let mut key = err.path().to_string();
        let message = err.inner().message().to_owned();
        if let Some(field) = message.strip_prefix("unknown field `").and_then(|rest| rest.split('`').next()) {
            if !key.ends_with(field) {
                key = if key == "." || key.is_empty() { field.to_owned() } else { format!("{key}.{field}") };
            }
            return anyhow!("{}: unknown key {key}: {message}; remove it or check its spelling", locate(&key));
        }
        if let Some(field) = message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next()) {
            let full = if key == "." || key.is_empty() { field.to_owned() } else { format!("{key}.{field}") };
            return anyhow!(
                "{}: missing key {full}; add it, or start the file with extends = \"dev\" to inherit it",
                files[0].origin
            );
        }
        anyhow!("{}: key {key}: {message}", locate(&key))
    })?;

    let problems = validate(&profile);
    if !problems.is_empty() {
        let lines: Vec<String> =
            problems.iter().map(|p| format!("{}: key {}: {}", locate(&p.key), p.key, p.message)).collect();
        bail!("invalid profile:\n  {}", lines.join("\n  "));
    }
    Ok(ResolvedProfile { profile, origin: files[0].origin.clone() })
}

/// Deep-merges `top` into `base`: tables merge key by key, everything else replaces.
fn merge(base: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base_table)), toml::Value::Table(top_table)) => merge(base_table, top_table),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Applies one `key.path=value` override. The value is read as TOML (`5433`, `true`,
/// `["a", "b"]`) and otherwise taken as a string. The key must be one the model has (see
/// `schema`), whether or not the file spells it.
pub fn apply_override(table: &mut toml::Table, assignment: &str) -> anyhow::Result<()> {
    let Some((key, raw)) = assignment.split_once('=') else {
        bail!("--set {assignment}: expected key.path=value, for example --set network.ports.postgres=5433");
    };
    let key = key.trim();
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()));
    let schema = super::schema::schema();
    let refuse =
        |message: String| anyhow!("--set {assignment}: {message}; `hardstack profile show --explain` lists every key");
    let found =
        super::schema::lookup(schema, key).map_err(|message| refuse(format!("unknown key {key}: {message}")))?;
    if found.table {
        return Err(refuse(format!("{key} is a table: set one of its keys ({})", found.keys.join(", "))));
    }
    let parts: Vec<&str> = key.split('.').collect();
    insert(table, &parts, value, "").map_err(refuse)
}

/// Puts `value` at `parts` under `table`, making the tables the file does not spell.
fn insert(table: &mut toml::Table, parts: &[&str], value: toml::Value, above: &str) -> Result<(), String> {
    let (first, rest) = parts.split_first().expect("a key has a part");
    let here = if above.is_empty() { (*first).to_owned() } else { format!("{above}.{first}") };
    if rest.is_empty() {
        table.insert((*first).to_owned(), value);
        return Ok(());
    }
    let slot = table.entry((*first).to_owned()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    match slot {
        toml::Value::Table(inner) => insert(inner, rest, value, &here),
        toml::Value::Array(entries) => {
            let count = entries.len();
            let index: usize = rest[0].parse().map_err(|_| format!("{here} is a list: its entries are {here}.0, …"))?;
            let entry = entries.get_mut(index).ok_or_else(|| {
                format!("{here} has {count} entries ({here}.0 to {here}.{})", count.saturating_sub(1))
            })?;
            match (entry, rest.len()) {
                (entry, 1) => {
                    *entry = value;
                    Ok(())
                }
                (toml::Value::Table(inner), _) => insert(inner, &rest[1..], value, &format!("{here}.{index}")),
                _ => Err(format!("{here}.{index} is not a table")),
            }
        }
        _ => Err(format!("{here} is a value, not a table")),
    }
}
