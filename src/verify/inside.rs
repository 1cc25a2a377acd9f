//! Checks from inside the stack network, for a stack that publishes nothing (or when asked): a
//! short-lived container on the stack network, from the image of one of the stack's own
//! services, runs this same binary's server checks (`verify --inside`) and prints them as the
//! `hardstack.checks/v1` JSON on its stdout, read back through the Engine API. It gets the
//! binary, the resolved profile, the CA, the client certificates and the current secrets as
//! files (a file store, whatever the stack's store is: the stack network has no egress); nothing
//! is bind mounted, so a remote engine works. The container removes itself when it exits, also
//! when hardstack is interrupted.

use anyhow::Context as _;

use super::Context;
use crate::containers;
use crate::layout::{self, StackFile};
use crate::profile::StoreKind;
use crate::report::Check;
use crate::runtime::{Engine, OneOff, deliver};
use crate::secrets::file::Record;
use crate::secrets::store::{SecretVersion, Stage};

/// Where the files go in the container.
const ROOT: &str = "hardstack-verify";

/// The running executable itself (Linux keeps it readable there even when a rebuild replaced
/// the file), else the file it was started from: what a one-off container runs.
pub fn executable() -> anyhow::Result<Vec<u8>> {
    match std::fs::read("/proc/self/exe") {
        Ok(bytes) => Ok(bytes),
        Err(_) => {
            let binary = std::env::current_exe().context("finding the hardstack binary")?;
            std::fs::read(&binary).with_context(|| format!("reading {}", binary.display()))
        }
    }
}

/// Runs the server checks inside the stack network and returns them.
pub async fn run(context: &Context, engine: &Engine) -> anyhow::Result<Vec<Check>> {
    let profile = &context.profile;
    let spec = containers::running_specs(profile).into_iter().next().context("the stack runs no service")?;
    // The image the service runs now (the profile's, or the local one `up` fell back to).
    let image = engine.image_of(&spec).await?;
    let uid: u32 = spec.service.uid();
    let mut files = Vec::new();
    files.push((format!("{ROOT}/hardstack"), uid, 0o755, executable()?));
    // The resolved profile, reading its secrets from the files given along.
    let mut inside = profile.clone();
    inside.secrets.store = StoreKind::File;
    let resolved = toml::to_string(&inside).context("serializing the resolved profile")?;
    files.push((format!("{ROOT}/stack/{}", StackFile::Profile.path()), uid, 0o600, resolved.into_bytes()));
    // The ACL file: what `redis.acl_declared` compares the server with.
    let mut needed = vec![StackFile::CaCert, StackFile::UsersAcl, StackFile::Topology];
    for login in layout::client_logins(profile) {
        needed.push(StackFile::ClientCert(login.clone()));
        needed.push(StackFile::ClientKey(login));
    }
    for file in needed {
        let path = context.dir.file(&file);
        match std::fs::read(&path) {
            Ok(content) => files.push((format!("{ROOT}/stack/{}", file.path()), uid, 0o600, content)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
        }
    }
    for (name, version) in &context.secrets.current {
        let mut record = Record::default();
        record.put(SecretVersion { stages: vec![Stage::Current], ..version.clone() });
        // A one-role login a rotation in progress set: the checks fall back to it.
        if let Some(pending) = context.secrets.postgres_pending.get(name) {
            record.put(SecretVersion { stages: vec![Stage::Pending], ..pending.clone() });
        }
        files.push((format!("{ROOT}/stack/{}", StackFile::Secret(name.clone()).path()), uid, 0o600, record.encode()));
    }
    let archive = deliver::archive_of_files(&files)?;
    let run = OneOff {
        image,
        user: format!("{uid}:{uid}"),
        command: vec![
            format!("/{ROOT}/hardstack"),
            "verify".into(),
            "--inside".into(),
            "--dir".into(),
            format!("/{ROOT}/stack"),
            "-o".into(),
            "json".into(),
        ],
        archive,
        mounts: Vec::new(),
        cap_add: Vec::new(),
    };
    let names = containers::stack_names(profile);
    let ran = engine
        .run_once(&names.stack, &names.network, "verify", run)
        .await
        .context("running the checks inside the stack network")?;
    let report: serde_json::Value = serde_json::from_str(&ran.output)
        .with_context(|| format!("reading the checks run inside the stack network: {}", ran.output.trim()))?;
    serde_json::from_value(report["checks"].clone()).context("reading the checks run inside the stack network")
}
