use rand::SeedableRng;

use hardstack::profile::{ProfileSource, load};
use hardstack::stackdir::{PlannedFile, StackDir};

/// A shipped profile and its whole bundle, planned for an empty directory with a fixed seed
/// (tests only).
fn seeded_plan(name: &str) -> (hardstack::profile::Profile, Vec<PlannedFile>) {
    let profile = load(&ProfileSource::Shipped(name.into()), &[]).unwrap().profile;
    let dir = tempfile::tempdir().unwrap();
    let tera = hardstack::render::load_templates(None).unwrap();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2026);
    let plan = hardstack::bundle::plan(&StackDir::new(dir.path()), &profile, &tera, &Default::default(), &mut rng)
        .unwrap()
        .files;
    (profile, plan)
}

/// The files of a shipped profile's bundle that come from a template.
fn rendered_files(name: &str) -> Vec<PlannedFile> {
    let (_, plan) = seeded_plan(name);
    plan.into_iter().filter(|f| f.path.starts_with("config/") || !f.path.contains('/')).collect()
}

/// The Kubernetes target's files of a shipped profile, rendered from the same bundle.
fn kubernetes_files(name: &str) -> Vec<PlannedFile> {
    let (profile, plan) = seeded_plan(name);
    let read = |path: &str| -> anyhow::Result<Vec<u8>> {
        plan.iter().find(|f| f.path == path).map(|f| f.content.clone()).ok_or_else(|| anyhow::anyhow!("no {path}"))
    };
    hardstack::kubernetes::render(&profile, &read, None)
        .unwrap()
        .into_iter()
        .map(|f| PlannedFile::of(hardstack::layout::StackFile::Kubernetes(f.file), f.content.into_bytes()))
        .collect()
}

fn snapshot_name(profile: &str, file: &PlannedFile) -> String {
    format!("{profile}__{}", file.path.replace('/', "__"))
}

/// Snapshots every rendered file of a shipped profile (`files` of them, the Kubernetes target's
/// aside); secrets, verifiers and hashes redacted.
fn snapshot_profile(name: &str, files: usize) {
    let rendered = rendered_files(name);
    assert_eq!(rendered.len(), files, "{:?}", rendered.iter().map(|f| &f.path).collect::<Vec<_>>());
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+", "[SCRAM-VERIFIER]");
    settings.add_filter(r"#[0-9a-f]{64}", "#[SHA256]");
    // A certificate's expiry, as Prometheus's rules carry it.
    settings.add_filter(r"vector\([0-9]+\)", "vector([EXPIRY])");
    settings.add_filter(r"\b[A-Za-z0-9]{40}\b", "[SECRET]");
    settings.add_filter(r"-----BEGIN [A-Z ]+-----[^-]+-----END [A-Z ]+-----", "[PEM]");
    // Secret data: base64 of keys and passwords.
    settings.add_filter(r"(?m)^(  [A-Za-z0-9._-]+: )[A-Za-z0-9+/=]{16,}$", "$1[BASE64]");
    settings.set_prepend_module_to_snapshot(false);
    let rendered = rendered.into_iter().chain(kubernetes_files(name));
    settings.bind(|| {
        for file in rendered {
            let text = String::from_utf8(file.content.clone()).unwrap();
            insta::assert_snapshot!(snapshot_name(name, &file), text);
        }
    });
}

#[test]
fn dev_bundle_renders() {
    snapshot_profile("dev", 16);
}

#[test]
fn test_bundle_renders() {
    snapshot_profile("test", 16);
}

#[test]
fn prod_bundle_renders() {
    // The pooler's config, the exporters' web configs, queries and password files, Prometheus's three.
    snapshot_profile("prod", 26);
}

#[test]
fn a_template_error_names_the_template() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("redis")).unwrap();
    std::fs::write(dir.path().join("redis/users.acl.tera"), "user {{ nope }\n").unwrap();
    let err = hardstack::render::load_templates(Some(dir.path())).unwrap_err();
    assert!(format!("{err:#}").contains("redis/users.acl.tera"), "{err:#}");
}

/// Keeps the snapshot directory honest without cargo-insta: every stored snapshot belongs to a
/// rendered file of a shipped profile, so a removed template cannot leave a stale snapshot.
#[test]
fn no_unreferenced_snapshots() {
    let mut expected = Vec::new();
    for name in ["dev", "test", "prod"] {
        expected.extend(rendered_files(name).iter().map(|file| format!("{}.snap", snapshot_name(name, file))));
        expected.extend(kubernetes_files(name).iter().map(|file| format!("{}.snap", snapshot_name(name, file))));
    }
    expected.sort();
    let snapshots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/snapshots");
    let mut stored: Vec<String> = std::fs::read_dir(snapshots)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".snap"))
        .collect();
    stored.sort();
    assert_eq!(stored, expected);
}

/// During and after a rotation of Qdrant's key, config.yaml carries the other key as
/// `alt_api_key`; without one, the line is absent.
#[test]
fn qdrant_config_carries_the_alternate_key_during_rotation() {
    use hardstack::secrets::store::{SecretVersion, Stage};
    let profile = load(&ProfileSource::Shipped("dev".into()), &[]).unwrap().profile;
    let dir = tempfile::tempdir().unwrap();
    let tera = hardstack::render::load_templates(None).unwrap();
    let alternate = SecretVersion {
        id: "v2".into(),
        value: hardstack::secrets::Secret::new("A".repeat(40)),
        username: None,
        verifier: None,
        created: std::time::SystemTime::now(),
        stages: vec![Stage::Pending],
    };
    let existing = hardstack::secrets::store::Versions { qdrant_pending: Some(alternate), ..Default::default() };
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let plan = hardstack::bundle::plan(&StackDir::new(dir.path()), &profile, &tera, &existing, &mut rng).unwrap();
    let config = plan.files.iter().find(|f| f.path == "config/qdrant/config.yaml").unwrap();
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_slice(&config.content).unwrap();
    assert_eq!(yaml["service"]["alt_api_key"].as_str(), Some("A".repeat(40).as_str()));
    assert_ne!(yaml["service"]["api_key"], yaml["service"]["alt_api_key"]);
    let without = rendered_files("dev");
    let plain = without.iter().find(|f| f.path == "config/qdrant/config.yaml").unwrap();
    assert!(!String::from_utf8_lossy(&plain.content).contains("alt_api_key"));
}

/// A rotation of Qdrant's key restarts it once: the config names the same two keys while the
/// new key is pending (current, pending) and after the rotation (previous, current).
#[test]
fn qdrant_config_names_the_same_two_keys_during_and_after_a_rotation() {
    use hardstack::secrets::store::{SecretVersion, Stage, Versions};
    let profile = load(&ProfileSource::Shipped("dev".into()), &[]).unwrap().profile;
    let tera = hardstack::render::load_templates(None).unwrap();
    let key = |value: char, stage: Stage| SecretVersion {
        id: value.to_string(),
        value: hardstack::secrets::Secret::new(value.to_string().repeat(40)),
        username: None,
        verifier: None,
        created: std::time::SystemTime::now(),
        stages: vec![stage],
    };
    let keys = |versions: &Versions| {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let plan = hardstack::bundle::plan(&StackDir::new(dir.path()), &profile, &tera, versions, &mut rng).unwrap();
        let config = plan.files.iter().find(|f| f.path == "config/qdrant/config.yaml").unwrap();
        let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_slice(&config.content).unwrap();
        (yaml["service"]["api_key"].clone(), yaml["service"]["alt_api_key"].clone())
    };
    let mut during = Versions { qdrant_pending: Some(key('N', Stage::Pending)), ..Default::default() };
    during.current.insert("qdrant/api-key".into(), key('O', Stage::Current));
    let mut after = Versions { qdrant_previous: Some(key('O', Stage::Previous)), ..Default::default() };
    after.current.insert("qdrant/api-key".into(), key('N', Stage::Current));
    assert_eq!(keys(&during), ("O".repeat(40).into(), "N".repeat(40).into()));
    assert_eq!(keys(&after), keys(&during));
}

/// Adding a file is one entry in the layout table plus its template: each template the table
/// names is embedded, and each embedded template is the table's or a systemd unit's.
#[test]
fn every_embedded_template_is_named_by_the_layout_table_and_the_other_way_round() {
    use hardstack::layout::{Source, TABLE};
    let named: Vec<&str> = TABLE
        .iter()
        .filter_map(|entry| match entry.source? {
            Source::Template(name) | Source::Json(name) => Some(name),
            Source::Password(_) | Source::Pgpass(_) | Source::LoginPgpass(_) | Source::PasswordByAddress(..) => None,
        })
        .chain([hardstack::render::SYSTEMD_SERVICE, hardstack::render::SYSTEMD_TIMER])
        .collect();
    let embedded: Vec<&str> = hardstack::render::templates().map(|(name, _)| name).collect();
    for name in &named {
        assert!(embedded.contains(name), "the layout table names {name}, which is not under templates/");
    }
    for name in &embedded {
        assert!(named.contains(name), "templates/{name} is rendered for no file of the layout table");
    }
}
