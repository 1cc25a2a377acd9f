//! `hardstack profile schema | show`: the schema generated from the model, checked by an
//! independent validator (Python's jsonschema) against the shipped profiles and a wrong one;
//! the effective profile explained; `--set` of any key the model has; the shipped profiles'
//! comments.

use std::path::Path;

use crate::common::*;

/// Validates TOML files against a JSON Schema with Python's jsonschema: one line per file,
/// `ok` or the errors.
const VALIDATE: &str = r#"
import json, sys, tomllib, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
for path in sys.argv[2:]:
    errors = sorted(f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(tomllib.load(open(path, "rb"))))
    print("; ".join(errors) or "ok")
"#;

#[test]
fn the_schema_from_the_model_passes_the_shipped_profiles_and_fails_a_wrong_type() {
    let Some(python) = crate::kubernetes::validator("python") else {
        return;
    };
    let sandbox = Sandbox::new();
    let out = sandbox.cmd().args(["profile", "schema"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["$id"], "hardstack.profile/v1");
    let schema_path = sandbox.write("schema.json", &String::from_utf8_lossy(&out.stdout));
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    let mut files: Vec<String> =
        ["dev", "test", "prod"].iter().map(|p| shipped.join(format!("{p}.toml")).display().to_string()).collect();
    let dev = std::fs::read_to_string(shipped.join("dev.toml")).unwrap();
    let wrong = dev.replace("postgres = 5432", "postgres = \"eighty\"").replace("keep = 7", "keep = -1");
    assert_ne!(wrong, dev);
    files.push(sandbox.write("wrong.toml", &wrong).display().to_string());
    let out = std::process::Command::new(python)
        .args(["-c", VALIDATE, &schema_path.display().to_string()])
        .args(&files)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let verdicts: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(verdicts[..3], ["ok", "ok", "ok"], "{verdicts:?}");
    assert_eq!(
        verdicts[3],
        "backup.keep: -1 is less than the minimum of 0; network.ports.postgres: 'eighty' is not of type 'integer'"
    );
}

#[test]
fn profile_show_prints_the_effective_profile_explained_and_set_reaches_any_key_of_the_model() {
    let sandbox = Sandbox::new();
    // A user's profile that spells neither [pgbouncer] nor backup.required.
    sandbox.write("mine.toml", "extends = \"dev\"\nname = \"mine\"\n");
    let out = sandbox
        .cmd()
        .args(["profile", "show", "mine.toml", "--explain"])
        .args(["--set", "pgbouncer.pool_mode=session", "--set", "backup.required=true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.starts_with("# effective profile mine (from mine.toml)\n"), "{shown}");
    assert!(
        shown.contains(
            "# one of: session, transaction, statement\n# default: \"transaction\"\npool_mode = \"session\"\n"
        ),
        "{shown}"
    );
    assert!(shown.contains("\nrequired = true\n"), "{shown}");
    // What it prints is a profile hardstack reads back as the same one.
    let again = sandbox.write("again.toml", &shown);
    let json = |args: &[&str]| -> serde_json::Value {
        let out = sandbox.cmd().args(["-o", "json", "profile", "show"]).args(args).output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let from_file = json(&[&again.display().to_string()]);
    let set = json(&["mine.toml", "--set", "pgbouncer.pool_mode=session", "--set", "backup.required=true"]);
    assert_eq!(from_file["schema"], "hardstack.profile/v1");
    assert_eq!(from_file["profile"], set["profile"]);
    assert_eq!(set["profile"]["pgbouncer"]["pool_mode"], "session");
    // --explain in JSON: each key with its meaning, values and default.
    let explained = json(&["prod", "--explain"]);
    let workload = explained["keys"].as_array().unwrap().iter().find(|k| k["path"] == "postgres.workload").unwrap();
    assert_eq!(workload["description"], "pgtune workload type.");
    assert_eq!(workload["dev"], "web");
    // A key the model lacks: the error names the model's keys, not a file.
    let out = sandbox.cmd().args(["profile", "show", "--set", "pgbouncer.poolsize=5"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out);
    assert!(
        said.contains(
            "--set pgbouncer.poolsize=5: unknown key pgbouncer.poolsize: pgbouncer has no key poolsize; it has: "
        ),
        "{said}"
    );
    assert!(!said.contains("profiles/dev.toml"), "{said}");
}

#[test]
fn every_key_of_every_shipped_profile_is_commented() {
    for name in ["dev", "test", "prod"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("profiles/{name}.toml"));
        let document: toml_edit::DocumentMut = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        let mut silent = Vec::new();
        uncommented(document.as_table(), "", &mut silent);
        assert!(silent.is_empty(), "{}: keys without a comment above them: {silent:?}", path.display());
    }
}

/// The keys of a table (and its tables) with no comment above them.
fn uncommented(table: &toml_edit::Table, above: &str, silent: &mut Vec<String>) {
    for (name, item) in table.iter() {
        let path = if above.is_empty() { name.to_owned() } else { format!("{above}.{name}") };
        match item {
            toml_edit::Item::Table(inner) => uncommented(inner, &path, silent),
            toml_edit::Item::ArrayOfTables(entries) => {
                entries.iter().for_each(|entry| uncommented(entry, &path, silent));
            }
            _ => {
                let (key, _) = table.get_key_value(name).unwrap();
                let prefix = key.leaf_decor().prefix().and_then(|p| p.as_str()).unwrap_or("");
                if !prefix.contains('#') {
                    silent.push(path);
                }
            }
        }
    }
}
