use rand::SeedableRng;

use hardstack::profile::{ProfileSource, load};
use hardstack::stackdir::StackDir;

/// Renders the bundle of a shipped profile with a fixed seed (tests only) and snapshots every
/// file that comes from a template. Secrets, verifiers and hashes are redacted.
fn snapshot_profile(name: &str) {
    let profile = load(&ProfileSource::Shipped(name.into()), &[]).unwrap().profile;
    let dir = tempfile::tempdir().unwrap();
    let tera = hardstack::render::load_templates(None).unwrap();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2026);
    let plan = hardstack::bundle::plan(&StackDir::new(dir.path()), &profile, &tera, &mut rng).unwrap();
    let rendered: Vec<_> = plan.iter().filter(|f| f.path.starts_with("config/") || !f.path.contains('/')).collect();
    assert_eq!(rendered.len(), 13, "{:?}", rendered.iter().map(|f| &f.path).collect::<Vec<_>>());
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+", "[SCRAM-VERIFIER]");
    settings.add_filter(r"#[0-9a-f]{64}", "#[SHA256]");
    settings.add_filter(r"\b[A-Za-z0-9]{40}\b", "[SECRET]");
    settings.add_filter(r"-----BEGIN [A-Z ]+-----[^-]+-----END [A-Z ]+-----", "[PEM]");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        for file in rendered {
            let text = String::from_utf8(file.content.clone()).unwrap();
            insta::assert_snapshot!(format!("{name}__{}", file.path.replace('/', "__")), text);
        }
    });
}

#[test]
fn dev_bundle_renders() {
    snapshot_profile("dev");
}

#[test]
fn test_bundle_renders() {
    snapshot_profile("test");
}

#[test]
fn prod_bundle_renders() {
    snapshot_profile("prod");
}

#[test]
fn a_template_error_names_the_template() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("redis")).unwrap();
    std::fs::write(dir.path().join("redis/users.acl.tera"), "user {{ nope }\n").unwrap();
    let err = hardstack::render::load_templates(Some(dir.path())).unwrap_err();
    assert!(format!("{err:#}").contains("redis/users.acl.tera"), "{err:#}");
}
