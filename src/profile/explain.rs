//! A profile explained: its TOML with, above every key and table, what the model says of it
//! (meaning, allowed values, default), and the same as a list for JSON. What `profile show
//! --explain` prints, and how the shipped profiles comment their keys.

use serde_json::Value;

use super::schema::{self, Key};
use super::{Profile, ProfileSource, load};

/// One key of an explained profile.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Explained {
    #[serde(flatten)]
    pub key: Key,
    /// Its value in this profile.
    pub value: Value,
    /// The shipped `dev` profile's value, for a key a profile must state (no default).
    pub dev: Option<Value>,
}

/// The profile as TOML with every key and table commented, and its keys.
pub fn explain(profile: &Profile) -> anyhow::Result<(String, Vec<Explained>)> {
    let schema = schema::schema();
    let dev = serde_json::to_value(load(&ProfileSource::Shipped("dev".into()), &[])?.profile)?;
    let text = toml::to_string(profile)?;
    let mut document: toml_edit::DocumentMut = text.parse()?;
    let mut keys = Vec::new();
    let context = Context { schema, dev: &dev };
    context.table(document.as_table_mut(), "", &mut keys)?;
    renumber(document.as_table_mut(), &mut 1);
    Ok((document.to_string().trim_start().to_owned(), keys))
}

struct Context<'a> {
    schema: &'a Value,
    dev: &'a Value,
}

impl Context<'_> {
    fn table(&self, table: &mut toml_edit::Table, above: &str, keys: &mut Vec<Explained>) -> anyhow::Result<()> {
        // The keys left out because they keep their default are shown with it.
        for (name, default) in schema::defaults(self.schema, above) {
            if table.contains_key(&name) || default.is_null() {
                continue;
            }
            let text = toml::to_string(&serde_json::json!({ name.clone(): default }))?;
            let document: toml_edit::DocumentMut = text.parse()?;
            if let Some(item) = document.get(&name) {
                table.insert(&name, item.clone());
            }
        }
        for (mut name, item) in table.iter_mut() {
            let path = if above.is_empty() { name.get().to_owned() } else { format!("{above}.{}", name.get()) };
            let key = schema::lookup(self.schema, &path).map_err(anyhow::Error::msg)?;
            match item {
                toml_edit::Item::Table(inner) => {
                    inner.decor_mut().set_prefix(format!("\n{}", comment(&key, None)));
                    self.table(inner, &path, keys)?;
                }
                toml_edit::Item::ArrayOfTables(entries) => {
                    for (index, entry) in entries.iter_mut().enumerate() {
                        let prefix = if index == 0 { comment(&key, None) } else { String::new() };
                        entry.decor_mut().set_prefix(format!("\n{prefix}"));
                        self.table(entry, &format!("{path}.{index}"), keys)?;
                    }
                }
                toml_edit::Item::Value(value) => {
                    let dev = if key.default.is_none() { pointer(self.dev, &path).cloned() } else { None };
                    name.leaf_decor_mut().set_prefix(comment(&key, dev.as_ref()));
                    // From the document, which holds the keys serialization leaves out too.
                    use serde::Deserialize as _;
                    use serde::de::IntoDeserializer as _;
                    let value = Value::deserialize(value.clone().into_deserializer())?;
                    keys.push(Explained { key, value, dev });
                }
                toml_edit::Item::None => {}
            }
        }
        Ok(())
    }
}

/// Tables in the order of the tree (a table's keys, then its tables, depth first): the tables
/// of keys filled in with their defaults come after their siblings, not first.
fn renumber(table: &mut toml_edit::Table, next: &mut usize) {
    for (_, item) in table.iter_mut() {
        let tables: Vec<&mut toml_edit::Table> = match item {
            toml_edit::Item::Table(inner) => vec![inner],
            toml_edit::Item::ArrayOfTables(entries) => entries.iter_mut().collect(),
            _ => Vec::new(),
        };
        for inner in tables {
            inner.set_position(*next);
            *next += 1;
            renumber(inner, next);
        }
    }
}

/// The value at a dotted path of a JSON document.
fn pointer<'a>(document: &'a Value, path: &str) -> Option<&'a Value> {
    document.pointer(&format!("/{}", path.replace('.', "/")))
}

/// The comment above a key: its meaning, its values, its default (or the dev profile's value
/// of a key every profile states).
fn comment(key: &Key, dev: Option<&Value>) -> String {
    let mut lines: Vec<String> =
        key.description.iter().flat_map(|d| d.lines()).map(|line| format!("# {line}").trim_end().to_owned()).collect();
    if !key.allowed.is_empty() {
        lines.push(format!("# one of: {}", key.allowed.join(", ")));
    }
    if !key.table {
        match (&key.default, dev) {
            (Some(default), _) => lines.push(format!("# default: {default}")),
            (None, Some(dev)) => lines.push(format!("# required (dev: {dev})")),
            (None, None) => lines.push("# required".to_owned()),
        }
    }
    lines.iter().map(|line| format!("{line}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_commented_with_its_meaning_and_its_default() {
        let prod = load(&ProfileSource::Shipped("prod".into()), &[]).unwrap().profile;
        let (text, keys) = explain(&prod).unwrap();
        assert!(text.contains("# pgtune workload type.\n# one of: web, oltp, dw, desktop, mixed\n"), "{text}");
        assert!(text.contains("# default: 7\nkeep = 7\n"), "{text}");
        let workload = keys.iter().find(|k| k.key.path == "postgres.workload").unwrap();
        assert_eq!(workload.dev, Some(serde_json::json!("web")));
        assert_eq!(workload.value, serde_json::json!(serde_json::to_value(prod.postgres.workload).unwrap()));
        // A key the profile's serialization leaves out (it keeps its default) has its value too.
        let dev = load(&ProfileSource::Shipped("dev".into()), &[]).unwrap().profile;
        let (_, keys) = explain(&dev).unwrap();
        let memory = keys.iter().find(|k| k.key.path == "resources.pgbouncer.memory").unwrap();
        assert_eq!(memory.value, serde_json::json!(dev.resources.pgbouncer.memory.to_string()));
        // What it prints is the same profile.
        let again: Profile = toml::from_str(&text).unwrap();
        assert_eq!(again, prod);
    }
}
