//! The bundle: everything `init` puts in the stack directory. [`plan`] computes it before
//! anything is written, and is pure (the stack directory and the store's versions in, files
//! out). [`write`] is the one function that applies a plan: new secrets into the store, then the
//! files. Existing secrets and certificates are kept; only missing ones are generated, so a
//! second run plans the same content and writes nothing.

use std::path::Path;
use std::time::SystemTime;

use anyhow::Context as _;
use rand::{CryptoRng, RngCore};

use crate::layout::{self, StackFile};
use crate::pki::{self, CertSpec, Purpose};
use crate::profile::{Profile, Service, StoreKind};
use crate::render::{self, Material};
use crate::secrets::file::Record;
use crate::secrets::store::{SecretStore as _, SecretVersion, Stage, Store, Versions};
use crate::secrets::{self, Secret};
use crate::stackdir::{self, Change, PlannedFile, StackDir};

/// A certificate of the bundle and where its files go.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub spec: CertSpec,
    pub cert: StackFile,
    pub key: StackFile,
}

/// The aliases of a service's nodes beyond node 0, which present its certificate: PostgreSQL's
/// and Redis's replicas, the Sentinels, Qdrant's peers.
fn node_aliases(profile: &Profile, service: Service) -> Vec<String> {
    match service {
        Service::Postgres => profile.postgres.replica_nodes().map(crate::endpoint::replica_alias).collect(),
        Service::Redis => (1..=profile.redis.replicas).map(|node| crate::sentinel::alias(service, node)).collect(),
        Service::RedisSentinel => {
            profile.redis.sentinel_nodes().skip(1).map(|node| crate::sentinel::alias(service, node)).collect()
        }
        Service::Qdrant => crate::peers::other_aliases(profile),
        _ => Vec::new(),
    }
}

/// Every certificate the profile needs, servers first.
pub fn cert_files(profile: &Profile) -> Vec<CertFiles> {
    let mut certs = Vec::new();
    for service in layout::services(profile) {
        let name = crate::containers::container_name(profile, service);
        // The names a Kubernetes client uses too (`init --target kubernetes`).
        let mut extra = layout::kubernetes_names(profile, service);
        extra.extend(profile.tls.extra_sans.iter().cloned());
        // The replicas (and the Sentinels) present their service's certificate, under their
        // own aliases too.
        extra.extend(node_aliases(profile, service));
        let sans = pki::server_sans(&name, service.name(), &extra);
        certs.push(CertFiles {
            spec: CertSpec {
                common_name: service.name().into(),
                // A cluster's peers present it to each other as clients too.
                purpose: match service == Service::Qdrant && crate::peers::is_cluster(profile) {
                    true => Purpose::Peer { sans },
                    false => Purpose::Server { sans },
                },
                lifetime: profile.tls.server_lifetime.0,
            },
            cert: StackFile::ServerCert(service),
            key: StackFile::ServerKey(service),
        });
    }
    // PostgreSQL's clientcert=verify-full wants CN = login role, and rotation alternates between
    // two logins per application user: each gets its certificate.
    for login in layout::client_logins(profile) {
        certs.push(CertFiles {
            spec: CertSpec {
                common_name: login.clone(),
                purpose: Purpose::Client,
                lifetime: profile.tls.client_lifetime.0,
            },
            cert: StackFile::ClientCert(login.clone()),
            key: StackFile::ClientKey(login),
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

/// Computes the bundle. Keeps the existing CA and certificates of `dir` and the `existing`
/// secrets; generates what is missing with `rng` (key pairs come from the crypto library's own
/// RNG). Writes nothing.
pub fn plan(
    dir: &StackDir,
    profile: &Profile,
    tera: &tera::Tera,
    existing: &Versions,
    rng: &mut (impl RngCore + CryptoRng),
) -> anyhow::Result<Plan> {
    let mut files = Vec::new();

    // The CA: kept when both halves exist.
    let (ca_cert, ca_key) = (StackFile::CaCert.path(), StackFile::CaKey.path());
    let ca = match (dir.read(&ca_cert)?, dir.read(&ca_key)?) {
        (Some(cert), Some(key)) => pki::load_ca(&text(cert, &ca_cert)?, &Secret::new(text(key, &ca_key)?))
            .with_context(|| format!("loading the CA of {} ({ca_cert}, {ca_key})", dir.root.display()))?,
        (None, None) => {
            let ca = pki::create_ca(&profile.stack.name, profile.tls.key_algorithm, profile.tls.ca_lifetime.0)?;
            files.push(PlannedFile::of(StackFile::CaCert, ca.cert_pem.clone().into_bytes()));
            // SECURITY: the CA key signs every certificate of the stack; it never leaves this directory.
            files.push(PlannedFile::of(StackFile::CaKey, ca.key_pem().expose().as_bytes().to_vec()));
            ca
        }
        _ => anyhow::bail!(
            "{} has only one of {ca_cert} and {ca_key}; restore the other, or remove both to create a new CA (every certificate is then re-issued)",
            dir.root.display()
        ),
    };

    // Certificates: kept when both files exist, issued under the CA otherwise. The servers'
    // expiry goes to the render (Prometheus's rules).
    let mut material = Material::default();
    for cert in cert_files(profile) {
        let kept = match (dir.read(&cert.cert.path())?, dir.file(&cert.key).exists()) {
            (Some(pem), true) => Some(text(pem, &cert.cert.path())?),
            _ => None,
        };
        // A replica added to the stack needs its alias in its service's certificate: one that
        // lacks it is issued again (the servers reload it).
        let kept = match (kept, &cert.cert) {
            (Some(pem), StackFile::ServerCert(service)) if !node_aliases(profile, *service).is_empty() => {
                let names = pki::dns_names(&pem).with_context(|| format!("reading {}", cert.cert.path()))?;
                node_aliases(profile, *service).iter().all(|alias| names.contains(alias)).then_some(pem)
            }
            (kept, _) => kept,
        };
        let pem = match kept {
            Some(pem) => pem,
            None => {
                let issued = pki::issue(&ca, profile.tls.key_algorithm, &cert.spec)?;
                files.push(PlannedFile::of(cert.cert.clone(), issued.cert_pem.clone().into_bytes()));
                files.push(PlannedFile::of(cert.key, issued.key_pem.expose().as_bytes().to_vec()));
                issued.cert_pem
            }
        };
        if let StackFile::ServerCert(service) = cert.cert {
            let expires = pki::not_after(&pem).with_context(|| format!("reading {}", cert.cert.path()))?;
            material.certificates.insert(service, expires);
        }
    }

    // Secrets: the current version is kept; a missing one is generated. New secrets of the
    // file store are files of the plan; the caller creates them in any other store.
    let mut new_secrets = Vec::new();
    for (name, scram) in layout::secret_names(profile) {
        let current = match existing.current.get(&name) {
            Some(version) => version.clone(),
            None => {
                let value = secrets::generate(rng);
                let verifier = scram.then(|| Secret::new(secrets::scram_verifier(&value)));
                // PostgreSQL application secrets name their login: rotation alternates it.
                let app = profile.users.iter().find(|u| name == layout::login_secret(Service::Postgres, &u.name));
                let version = SecretVersion {
                    id: version_id(rng),
                    value,
                    username: app.map(|u| u.name.clone()),
                    verifier,
                    created: SystemTime::now(),
                    stages: vec![Stage::Current],
                };
                if profile.secrets.store == StoreKind::File {
                    let mut record = Record::default();
                    record.put(version.clone());
                    files.push(PlannedFile::of(StackFile::Secret(name.clone()), record.encode()));
                } else {
                    new_secrets.push((name.clone(), version.clone()));
                }
                version
            }
        };
        if let Some(login) = &current.username {
            material.postgres_logins.insert(name.clone(), login.clone());
        }
        if scram {
            let verifier =
                current.verifier.clone().unwrap_or_else(|| Secret::new(secrets::scram_verifier(&current.value)));
            material.verifiers.insert(name.clone(), verifier);
        }
        material.values.insert(name, current.value);
    }

    // Qdrant accepts two read-write keys (`api_key`, `alt_api_key`), read at start. During a
    // rotation they are the current key and the pending one; after it, the previous key and the
    // current one: the same two, so finishing a rotation needs no restart, and the previous key
    // stays accepted until the next rotation, as PostgreSQL's previous login does.
    match (&existing.qdrant_pending, &existing.qdrant_previous) {
        (Some(pending), _) => material.qdrant_alt_api_key = Some(pending.value.clone()),
        (None, Some(previous)) if Some(&previous.value) != material.values.get(layout::QDRANT_API_KEY) => {
            material.qdrant_api_key = Some(previous.value.clone());
            material.qdrant_alt_api_key = material.values.get(layout::QDRANT_API_KEY).cloned();
        }
        _ => {}
    }
    for (name, version) in existing.front_pending.iter().chain(&existing.front_previous) {
        material.front_other_keys.entry(name.clone()).or_default().push(version.value.clone());
    }
    material.redis_previous = existing.redis_previous.iter().map(|(name, v)| (name.clone(), v.value.clone())).collect();
    for (name, previous) in &existing.postgres_previous {
        if let (Some(login), Some(verifier)) = (&previous.username, &previous.verifier) {
            material.postgres_previous.insert(name.clone(), (login.clone(), verifier.clone()));
        }
    }
    for rendered in render::render_all(tera, profile, &material)? {
        files.push(PlannedFile { path: rendered.path, content: rendered.content.into_bytes(), mode: rendered.mode });
    }

    let resolved = toml::to_string(profile).context("serializing the resolved profile")?;
    let header = format!(
        "# The resolved profile of this stack: its source of truth. No secrets.\n# Regenerate with `hardstack init --profile {}`; commands read this file.\n",
        profile.name
    );
    files.push(PlannedFile::of(StackFile::Profile, format!("{header}{resolved}").into_bytes()));
    Ok(Plan { files, new_secrets })
}

/// What [`write`] did: each planned file's change, and the secrets it created in a store other
/// than `file` (whose new secrets are files of the plan).
#[derive(Debug, Clone, Default)]
pub struct Written {
    pub changes: Vec<(String, Change)>,
    pub created_secrets: Vec<String>,
    /// Audit's failing rules over the files servers are given: accepted ones, and (when the
    /// write was not `audited`) refused ones, for the caller to say.
    pub failing: Vec<crate::report::Check>,
}

impl Written {
    /// The files created or updated.
    pub fn changed(&self) -> impl Iterator<Item = &(String, Change)> {
        self.changes.iter().filter(|(_, c)| *c != Change::Unchanged)
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.changed().next().is_none() && self.created_secrets.is_empty()
    }
}

/// What the command line gave that shapes the files besides the profile; `None` keeps what
/// the stack directory recorded (`inputs`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Given<'a> {
    /// `--templates DIR`.
    pub templates: Option<&'a Path>,
    /// `--accept RULE_ID,...` (`none` clears).
    pub accept: Option<&'a [String]>,
}

/// A plan compared with the disk: what `write` would do, nothing written.
#[derive(Debug)]
pub struct Preview {
    pub plan: Plan,
    pub diff: stackdir::Diff,
    /// The inputs the plan was rendered with (recorded by `write`).
    pub inputs: crate::inputs::Inputs,
    /// Audit's rules over the files servers are given that fail, accepted or not.
    pub failing: Vec<crate::report::Check>,
}

impl Preview {
    /// The failing rules the user did not accept: any stops `up` before a server is touched.
    pub fn refused(&self) -> impl Iterator<Item = &crate::report::Check> {
        self.failing.iter().filter(|check| !self.inputs.accepted.contains(&check.id))
    }

    /// The failing rules the user accepted by id: said by `plan`, `status` and `verify`.
    pub fn accepted(&self) -> impl Iterator<Item = &crate::report::Check> {
        self.failing.iter().filter(|check| self.inputs.accepted.contains(&check.id))
    }

    /// An error naming each refused rule with its file and line, and how to accept it; `Ok`
    /// when none is refused.
    pub fn check_audit(&self) -> anyhow::Result<()> {
        let refused: Vec<&crate::report::Check> = self.refused().collect();
        if refused.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = refused.iter().map(|c| format!("{}: {} ({})", c.id, c.evidence, c.reason)).collect();
        let ids: Vec<&str> = refused.iter().map(|c| c.id.as_str()).collect();
        anyhow::bail!(
            "refusing to deliver files that fail audit; nothing was delivered:\n  {}\nfix the template, or accept the rule on purpose with --accept {} (recorded in the stack directory, shown by plan, status and verify)",
            list.join("\n  "),
            ids.join(",")
        )
    }
}

impl Preview {
    /// A file of the stack directory as it would be after `write`: planned, or as it is.
    pub fn content(&self, dir: &StackDir, path: &str) -> anyhow::Result<Vec<u8>> {
        match self.plan.files.iter().find(|f| f.path == path) {
            Some(file) => Ok(file.content.clone()),
            None => std::fs::read(dir.path(path))
                .with_context(|| format!("reading {}; run `hardstack init` to restore it", dir.path(path).display())),
        }
    }
}

/// Computes the bundle from the profile and the store and compares it with the disk. Reads
/// the store; writes nothing anywhere.
pub async fn preview(profile: &Profile, dir: &StackDir, given: Given<'_>) -> anyhow::Result<Preview> {
    let resolved = crate::inputs::resolve(dir, given.templates, given.accept)?;
    for id in &resolved.inputs.accepted {
        anyhow::ensure!(
            crate::audit::is_rule(id),
            "--accept {id}: no audit rule has that id; `hardstack audit -v` lists them"
        );
    }
    let store = Store::open(profile, dir).await?;
    let existing = store.versions(profile).await?;
    let mut plan = plan(dir, profile, &resolved.tera, &existing, &mut rand::rngs::OsRng)?;
    plan.files.extend(resolved.files);
    let audited = crate::audit::Bundle::planned(&dir.root, profile, &plan.files)?;
    let failing = crate::audit::delivered_failures(&audited);
    let diff = stackdir::diff(dir, &dir.manifest()?, &plan.files)?;
    Ok(Preview { plan, diff, inputs: resolved.inputs, failing })
}

/// Computes the bundle from the profile and the store, refuses to overwrite foreign files
/// unless `force`, creates new secrets in the store, then writes the files. Prints nothing.
///
/// With `audited` (every caller that goes on to deliver), a file that fails one of audit's
/// rules the user did not accept stops it before anything is written.
pub async fn write(
    profile: &Profile,
    dir: &StackDir,
    given: Given<'_>,
    force: bool,
    audited: bool,
) -> anyhow::Result<Written> {
    write_telling(profile, dir, given, force, audited, &|_| {}).await
}

/// Told every file of the bundle as `write` is about to write it (`up` starts delivering a new
/// container's files from them meanwhile).
pub type Planned<'a> = &'a (dyn Fn(&[PlannedFile]) + Sync);

/// `write`, telling `planned` the bundle's files once nothing can stop it but the writing
/// itself: after the audit and the conflicts are checked and the new secrets are in the
/// store, before the directory is written.
pub async fn write_telling(
    profile: &Profile,
    dir: &StackDir,
    given: Given<'_>,
    force: bool,
    audited: bool,
    planned: Planned<'_>,
) -> anyhow::Result<Written> {
    let preview = preview(profile, dir, given).await?;
    if audited {
        preview.check_audit()?;
    }
    let Preview { plan: Plan { files, new_secrets }, diff, failing, .. } = preview;
    let store = Store::open(profile, dir).await?;
    let mut manifest = dir.manifest()?;
    let stackdir::Diff { changes, conflicts } = diff;
    if !conflicts.is_empty() && !force {
        let list: Vec<String> = conflicts
            .iter()
            .map(|c| {
                format!(
                    "{} ({})",
                    dir.path(&c.path).display(),
                    if c.edited { "edited since hardstack wrote it" } else { "not written by hardstack" }
                )
            })
            .collect();
        anyhow::bail!(
            "refusing to overwrite {} file(s):\n  {}\nmove them away, or rerun with --force to replace them",
            list.len(),
            list.join("\n  ")
        );
    }
    // Secrets first, so rendered files always match what the store holds.
    let mut created_secrets = Vec::new();
    for (name, version) in &new_secrets {
        store.create(name, version).await?;
        created_secrets.push(name.clone());
    }
    planned(&files);
    stackdir::apply(dir, &mut manifest, &files, &changes)?;
    Ok(Written { changes, created_secrets, failing })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StackDir::new(tmp.path().join("stack"));
        let profile = crate::profile::load(&crate::profile::ProfileSource::Shipped("dev".into()), &[]).unwrap().profile;
        let tera = render::load_templates(None).unwrap();
        let plan = plan(&dir, &profile, &tera, &Versions::default(), &mut rand::rngs::OsRng).unwrap();
        assert!(plan.files.len() > 30, "{}", plan.files.len());
        assert!(!dir.root.exists(), "planning created the stack directory");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }
}
