//! The bundle: everything `init` puts in the stack directory, computed before anything is
//! written. Existing secrets and certificates are kept; only missing ones are generated, so a
//! second run plans the same content and writes nothing.

use std::time::SystemTime;

use anyhow::Context as _;
use rand::{CryptoRng, RngCore};

use crate::fsio;
use crate::pki::{self, CertSpec, Purpose};
use crate::profile::{Profile, Service, StoreKind};
use crate::render::{self, Material};
use crate::secrets::file::{FileStore, Record};
use crate::secrets::store::{SecretVersion, Stage};
use crate::secrets::{self, Secret};
use crate::stackdir::{PROFILE_FILE, PlannedFile, StackDir};

/// Logins that get a client certificate besides the application users.
pub const SERVICE_LOGINS: &[&str] = &["admin", "health"];

/// The second PostgreSQL login of an application user; rotation alternates between the two.
pub fn alternate_login(user: &str) -> String {
    format!("{user}_alt")
}

/// A certificate of the bundle and where its files go.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub spec: CertSpec,
    pub cert_path: String,
    pub key_path: String,
}

/// Every certificate the profile needs, servers first.
pub fn cert_files(profile: &Profile) -> Vec<CertFiles> {
    let mut certs = Vec::new();
    for service in Service::ALL.into_iter().filter(|s| profile.runs(*s)) {
        let name = crate::containers::container_name(profile, service);
        certs.push(CertFiles {
            spec: CertSpec {
                common_name: service.name().into(),
                purpose: Purpose::Server { sans: pki::server_sans(&name, service.name(), &profile.tls.extra_sans) },
                lifetime: profile.tls.server_lifetime.0,
            },
            cert_path: format!("certs/{service}/server.crt"),
            key_path: format!("certs/{service}/server.key"),
        });
    }
    // PostgreSQL's clientcert=verify-full wants CN = login role, and rotation alternates between
    // two logins per application user: each gets its certificate.
    let logins = SERVICE_LOGINS
        .iter()
        .map(|s| s.to_string())
        .chain(profile.users.iter().flat_map(|u| [u.name.clone(), alternate_login(&u.name)]));
    for login in logins {
        certs.push(CertFiles {
            spec: CertSpec {
                common_name: login.clone(),
                purpose: Purpose::Client,
                lifetime: profile.tls.client_lifetime.0,
            },
            cert_path: format!("certs/clients/{login}/client.crt"),
            key_path: format!("certs/clients/{login}/client.key"),
        });
    }
    certs
}

fn version_id(rng: &mut (impl RngCore + CryptoRng)) -> String {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn text(bytes: Vec<u8>, path: &str) -> anyhow::Result<String> {
    String::from_utf8(bytes).with_context(|| format!("{path} is not text"))
}

/// What `init` will do: files to write, and secrets to create in a store other than `file`.
#[derive(Debug)]
pub struct Plan {
    pub files: Vec<PlannedFile>,
    pub new_secrets: Vec<(String, SecretVersion)>,
}

/// The key of `existing_secrets` under which Qdrant's alternate API key travels.
pub const QDRANT_ALTERNATE: &str = "qdrant/api-key (alternate)";

/// The current version of every secret the profile needs that the store has, and Qdrant's
/// alternate key (pending, else previous) under [`QDRANT_ALTERNATE`].
pub async fn existing_secrets(
    store: &crate::secrets::store::Store,
    profile: &Profile,
) -> anyhow::Result<std::collections::BTreeMap<String, SecretVersion>> {
    use crate::secrets::store::SecretStore as _;
    let mut existing = std::collections::BTreeMap::new();
    for (name, _) in render::secret_names(profile) {
        if let Some(version) = store.get(&name, Stage::Current).await? {
            existing.insert(name, version);
        }
    }
    if profile.runs(Service::Qdrant) {
        let alternate = match store.get("qdrant/api-key", Stage::Pending).await? {
            Some(pending) => Some(pending),
            None => store.get("qdrant/api-key", Stage::Previous).await?,
        };
        if let Some(alternate) = alternate {
            existing.insert(QDRANT_ALTERNATE.to_owned(), alternate);
        }
    }
    Ok(existing)
}

/// Computes the bundle. Keeps the existing CA and certificates of `dir` and the `existing`
/// secrets; generates what is missing with `rng` (key pairs come from the crypto library's own
/// RNG). Writes nothing.
pub fn plan(
    dir: &StackDir,
    profile: &Profile,
    tera: &tera::Tera,
    existing: &std::collections::BTreeMap<String, SecretVersion>,
    rng: &mut (impl RngCore + CryptoRng),
) -> anyhow::Result<Plan> {
    let mut files = Vec::new();

    // The CA: kept when both halves exist.
    let ca = match (dir.read("ca/ca.crt")?, dir.read("ca/ca.key")?) {
        (Some(cert), Some(key)) => pki::load_ca(&text(cert, "ca/ca.crt")?, &Secret::new(text(key, "ca/ca.key")?))?,
        (None, None) => {
            let ca = pki::create_ca(&profile.stack.name, profile.tls.key_algorithm, profile.tls.ca_lifetime.0)?;
            files.push(PlannedFile {
                path: "ca/ca.crt".into(),
                content: ca.cert_pem.clone().into_bytes(),
                mode: fsio::PUBLIC_MODE,
            });
            // SECURITY: the CA key signs every certificate of the stack; it never leaves this directory.
            files.push(PlannedFile {
                path: "ca/ca.key".into(),
                content: ca.key_pem().expose().as_bytes().to_vec(),
                mode: fsio::PRIVATE_MODE,
            });
            ca
        }
        _ => anyhow::bail!(
            "{} has only one of ca/ca.crt and ca/ca.key; restore the other, or remove both to create a new CA (every certificate is then re-issued)",
            dir.root.display()
        ),
    };

    // Certificates: kept when both files exist, issued under the CA otherwise.
    for cert in cert_files(profile) {
        if dir.path(&cert.cert_path).exists() && dir.path(&cert.key_path).exists() {
            continue;
        }
        let issued = pki::issue(&ca, profile.tls.key_algorithm, &cert.spec)?;
        files.push(PlannedFile {
            path: cert.cert_path,
            content: issued.cert_pem.into_bytes(),
            mode: fsio::PUBLIC_MODE,
        });
        files.push(PlannedFile {
            path: cert.key_path,
            content: issued.key_pem.expose().as_bytes().to_vec(),
            mode: fsio::PRIVATE_MODE,
        });
    }

    // Secrets: the current version is kept; a missing one is generated. New secrets of the
    // file store are files of the plan; the caller creates them in any other store.
    let mut material = Material::default();
    let mut new_secrets = Vec::new();
    for (name, scram) in render::secret_names(profile) {
        let current = match existing.get(&name) {
            Some(version) => version.clone(),
            None => {
                let value = secrets::generate(rng);
                let verifier = scram.then(|| Secret::new(secrets::scram_verifier(&value)));
                // PostgreSQL application secrets name their login: rotation alternates it.
                let is_app = profile.users.iter().any(|u| name == format!("postgres/{}", u.name));
                let version = SecretVersion {
                    id: version_id(rng),
                    value,
                    username: is_app.then(|| name.trim_start_matches("postgres/").to_owned()),
                    verifier,
                    created: SystemTime::now(),
                    stages: vec![Stage::Current],
                };
                if profile.secrets.store == StoreKind::File {
                    let mut record = Record::default();
                    record.put(version.clone());
                    files.push(PlannedFile {
                        path: format!("secrets/{}", FileStore::relative_path(&name).display()),
                        content: record.encode(),
                        mode: fsio::PRIVATE_MODE,
                    });
                } else {
                    new_secrets.push((name.clone(), version.clone()));
                }
                version
            }
        };
        if scram {
            let verifier =
                current.verifier.clone().unwrap_or_else(|| Secret::new(secrets::scram_verifier(&current.value)));
            material.verifiers.insert(name.clone(), verifier);
        }
        material.values.insert(name, current.value);
    }

    material.qdrant_alt_api_key = existing.get(QDRANT_ALTERNATE).map(|v| v.value.clone());
    for rendered in render::render_all(tera, profile, &material)? {
        files.push(PlannedFile { path: rendered.path, content: rendered.content.into_bytes(), mode: rendered.mode });
    }

    let resolved = toml::to_string(profile).context("serializing the resolved profile")?;
    let header = format!(
        "# The resolved profile of this stack: its source of truth. No secrets.\n# Regenerate with `hardstack init --profile {}`; commands read this file.\n",
        profile.name
    );
    files.push(PlannedFile {
        path: PROFILE_FILE.into(),
        content: format!("{header}{resolved}").into_bytes(),
        mode: fsio::PUBLIC_MODE,
    });
    Ok(Plan { files, new_secrets })
}
