//! What every example does first, as an application would: read the stack's connections.json,
//! resolve a secret reference in the file store, and build a TLS config that trusts only the
//! stack CA (with the client certificate when the stack requires one). Paths in
//! connections.json are relative to its directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use serde_json::Value;

/// The stack directory (first argument, default `stack`) and the user's entry of connections.json.
pub fn connection(user: &str) -> anyhow::Result<(PathBuf, Value)> {
    // Two rustls providers are linked (ring, and aws-lc-rs through the AWS SDK): pick one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "stack".into()));
    let path = dir.join("connections.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {}; run `hardstack up` first", path.display()))?;
    let json: Value = serde_json::from_str(&text)?;
    let entry = json["users"][user].clone();
    anyhow::ensure!(entry.is_object(), "no user {user} in {}", path.display());
    Ok((dir, entry))
}

/// The value of a secret reference `{ "store": "file", "secret": "...", "stage": "current" }`.
/// Read again for every new connection, so a rotated password is picked up.
pub fn resolve_secret(dir: &Path, reference: &Value) -> anyhow::Result<String> {
    Ok(resolve_login(dir, reference)?.0)
}

/// The value of a secret reference and the login it belongs to (PostgreSQL logins alternate
/// with rotation: the current version names its login).
pub fn resolve_login(dir: &Path, reference: &Value) -> anyhow::Result<(String, Option<String>)> {
    anyhow::ensure!(reference["store"] == "file", "this example reads the file store only");
    let name = reference["secret"].as_str().context("secret name")?;
    let stage = reference["stage"].as_str().unwrap_or("current");
    let record: Value = serde_json::from_slice(&std::fs::read(dir.join(format!("secrets/{name}.json")))?)?;
    let versions = record["versions"].as_array().context("versions")?;
    let version = versions
        .iter()
        .find(|v| v["stages"].as_array().is_some_and(|s| s.iter().any(|x| x == stage)))
        .with_context(|| format!("no {stage} version of {name}"))?;
    Ok((version["value"].as_str().context("value")?.to_owned(), version["username"].as_str().map(str::to_owned)))
}

/// A rustls client config trusting only the stack CA; presents the client certificate when
/// `entry.client_certificate_required`.
/// `login` replaces `{login}` in certificate paths.
pub fn tls_config(dir: &Path, entry: &Value, ca_key: &str, login: &str) -> anyhow::Result<rustls::ClientConfig> {
    let read = |key: &str| -> anyhow::Result<Vec<u8>> {
        let relative =
            entry[key].as_str().with_context(|| format!("{key} in connections.json"))?.replace("{login}", login);
        Ok(std::fs::read(dir.join(relative))?)
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &read(ca_key)?[..]) {
        roots.add(cert?)?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    if entry["client_certificate_required"] == true {
        let (cert_key, key_key) = if entry.get("sslcert").is_some() { ("sslcert", "sslkey") } else { ("cert", "key") };
        let certs = rustls_pemfile::certs(&mut &read(cert_key)?[..]).collect::<Result<Vec<_>, _>>()?;
        let key = rustls_pemfile::private_key(&mut &read(key_key)?[..])?.context("no private key")?;
        Ok(builder.with_client_auth_cert(certs, key)?)
    } else {
        Ok(builder.with_no_client_auth())
    }
}

/// SECONDS, the optional second argument: how long to keep working.
pub fn seconds() -> anyhow::Result<u64> {
    Ok(std::env::args().nth(2).map(|s| s.parse()).transpose().context("SECONDS")?.unwrap_or(0))
}

/// Runs rounds of concurrent operations until `seconds` have passed (one round at least): each
/// round is the tasks `round` spawns. The operations done, and the failures.
pub async fn rounds_until(
    seconds: u64,
    mut round: impl FnMut() -> Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
) -> anyhow::Result<(u64, Vec<String>)> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    let (mut operations, mut failures) = (0u64, Vec::new());
    loop {
        for task in round() {
            operations += 1;
            if let Err(err) = task.await? {
                failures.push(format!("{err:#}"));
            }
        }
        if std::time::Instant::now() >= deadline {
            return Ok((operations, failures));
        }
    }
}
