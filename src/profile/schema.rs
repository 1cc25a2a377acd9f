//! The profile's JSON Schema, generated from the serde model (schemars), and what it says about
//! one key: its meaning, its allowed values, its default. `profile schema` prints it, `profile
//! show --explain` reads it, and `--set` finds a key the file does not spell in it.

use serde_json::Value;

use super::Profile;

/// The schema's id: its name and version.
pub const ID: &str = "hardstack.profile/v1";

/// The JSON Schema of a profile (after `extends`: every key a resolved profile has), made once
/// per process.
pub fn schema() -> &'static Value {
    static SCHEMA: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
        let mut value = schemars::schema_for!(Profile).to_value();
        value["$id"] = Value::String(ID.to_owned());
        value
    });
    &SCHEMA
}

/// What the model says about one key of the profile.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Key {
    /// Its dotted path (`network.ports.postgres`, `users.0.name`).
    pub path: String,
    /// Its meaning: the model's doc comment.
    pub description: Option<String>,
    /// The values it takes, when they are a list.
    pub allowed: Vec<String>,
    /// Its default, when a profile may leave it out.
    pub default: Option<Value>,
    /// A table of keys (not a value).
    pub table: bool,
    /// A table's keys.
    #[serde(skip)]
    pub keys: Vec<String>,
}

/// The node a `$ref`, a one-element `allOf` or an optional's `anyOf` stands for.
fn resolve<'a>(root: &'a Value, mut node: &'a Value) -> &'a Value {
    loop {
        if let Some(reference) = node.get("$ref").and_then(Value::as_str) {
            let name = reference.trim_start_matches("#/$defs/");
            match root.get("$defs").and_then(|d| d.get(name)) {
                Some(target) => node = target,
                None => return node,
            }
        } else if let Some(one) = node.get("allOf").and_then(Value::as_array).filter(|a| a.len() == 1) {
            node = &one[0];
        } else if let Some(any) = node.get("anyOf").and_then(Value::as_array) {
            match any.iter().find(|n| n.get("type").and_then(Value::as_str) != Some("null")) {
                Some(inner) => node = inner,
                None => return node,
            }
        } else {
            return node;
        }
    }
}

/// The values an enum node allows.
fn allowed(node: &Value) -> Vec<String> {
    let text = |v: &Value| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
    let mut values: Vec<String> =
        node.get("enum").and_then(Value::as_array).map(|e| e.iter().map(text).collect()).unwrap_or_default();
    for variant in node.get("oneOf").and_then(Value::as_array).into_iter().flatten() {
        values.extend(variant.get("const").map(text));
        values.extend(variant.get("enum").and_then(Value::as_array).into_iter().flatten().map(text));
    }
    values
}

/// The defaults of a table's keys that have one (a profile may leave them out), by key.
pub fn defaults(root: &Value, path: &str) -> Vec<(String, Value)> {
    let mut node = resolve(root, root);
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let next = match (part.parse::<usize>(), node.get("items")) {
            (Ok(_), Some(items)) => Some(items),
            _ => node.get("properties").and_then(|p| p.get(part)),
        };
        match next {
            Some(next) => node = resolve(root, next),
            None => return Vec::new(),
        }
    }
    let properties = node.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
    properties.into_iter().filter_map(|(name, property)| Some((name, property.get("default")?.clone()))).collect()
}

/// The keys a table node has.
pub fn keys_of(root: &Value, node: &Value) -> Vec<String> {
    let node = resolve(root, node);
    node.get("properties").and_then(Value::as_object).map(|p| p.keys().cloned().collect()).unwrap_or_default()
}

/// What the model says about `path`; an error that names the deepest table the path reached
/// and the keys it has when the model has no such key.
pub fn lookup(root: &Value, path: &str) -> Result<Key, String> {
    let mut node = root;
    let mut reached = String::new();
    for part in path.split('.') {
        let here = resolve(root, node);
        let next = match (part.parse::<usize>(), here.get("items")) {
            (Ok(_), Some(items)) => Some(items),
            _ => here.get("properties").and_then(|p| p.get(part)),
        };
        node = next.ok_or_else(|| {
            let within = if reached.is_empty() { "the profile".to_owned() } else { reached.clone() };
            match here.get("items") {
                Some(_) => format!("{within} is a list: its entries are {within}.0, {within}.1, …"),
                None => format!("{within} has no key {part}; it has: {}", keys_of(root, here).join(", ")),
            }
        })?;
        reached = if reached.is_empty() { part.to_owned() } else { format!("{reached}.{part}") };
    }
    let target = resolve(root, node);
    let description = node.get("description").or_else(|| target.get("description"));
    Ok(Key {
        path: path.to_owned(),
        description: description.and_then(Value::as_str).map(str::to_owned),
        // A list's entries, for a list of choices (`stack.services`).
        allowed: match target.get("items") {
            Some(items) => allowed(resolve(root, items)),
            None => allowed(target),
        },
        default: node.get("default").cloned(),
        table: target.get("properties").is_some(),
        keys: keys_of(root, target),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_has_its_meaning_its_values_and_its_default_and_a_wrong_one_names_what_there_is() {
        let schema = schema();
        let key = lookup(schema, "postgres.workload").unwrap();
        assert_eq!(key.description.as_deref(), Some("pgtune workload type."));
        assert_eq!(key.allowed, ["web", "oltp", "dw", "desktop", "mixed"]);
        let key = lookup(schema, "backup.keep").unwrap();
        assert_eq!(key.default, Some(serde_json::json!(7)));
        assert!(lookup(schema, "users.0.qdrant").unwrap().allowed.contains(&"read-only".to_owned()));
        assert!(lookup(schema, "network.ports").unwrap().table);
        let err = lookup(schema, "network.port.postgres").unwrap_err();
        assert_eq!(err, "network has no key port; it has: bind_address, ports, publish");
    }
}

#[cfg(test)]
mod every_key {
    use super::*;

    /// Every property of the schema, named by the type that holds it.
    fn properties(schema: &Value) -> Vec<(String, Value)> {
        let definitions = schema["$defs"].as_object().unwrap().iter().map(|(name, node)| (name.as_str(), node));
        std::iter::once(("Profile", schema))
            .chain(definitions)
            .flat_map(|(owner, node)| {
                let properties = node.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
                properties.into_iter().map(move |(name, property)| (format!("{owner}.{name}"), property))
            })
            .collect()
    }

    #[test]
    fn every_key_of_the_model_says_what_it_means() {
        let schema = schema();
        let silent: Vec<String> =
            properties(schema).into_iter().filter(|(_, p)| p.get("description").is_none()).map(|(k, _)| k).collect();
        assert!(silent.is_empty(), "keys without a doc comment: {silent:?}");
    }
}
