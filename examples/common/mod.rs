//! What every Rust example does as an application would: find its stack as the CLI does
//! (`HARDSTACK_DIR`, default `./stack`), take its credentials from what `hardstack env` gives
//! (so the file store, the AWS store and a stack that publishes nothing all work), asked again
//! for every new connection, and trust only the stack CA.
//!
//! `hardstack` is found on PATH, or where `HARDSTACK` says.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context as _;

/// What `hardstack env` gives now, by variable: asked again for every new connection, so a
/// rotated password (and PostgreSQL's alternating login) is what the next connection uses.
pub fn credentials() -> anyhow::Result<BTreeMap<String, String>> {
    // Two rustls providers are linked (ring, and aws-lc-rs through the AWS SDK): pick one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let binary = std::env::var("HARDSTACK").unwrap_or_else(|_| "hardstack".to_owned());
    let out = std::process::Command::new(&binary)
        .args(["env", "-o", "json"])
        .output()
        .with_context(|| format!("running `{binary} env`; put hardstack on PATH or name it in HARDSTACK"))?;
    anyhow::ensure!(out.status.success(), "`hardstack env` failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    let document: serde_json::Value = serde_json::from_slice(&out.stdout).context("reading `hardstack env -o json`")?;
    serde_json::from_value(document["variables"].clone()).context("the variables of `hardstack env`")
}

/// One variable of the credentials, named in the error when it is missing.
pub fn variable<'a>(credentials: &'a BTreeMap<String, String>, name: &str) -> anyhow::Result<&'a str> {
    credentials.get(name).map(String::as_str).with_context(|| format!("`hardstack env` gives no {name}"))
}

/// A rustls client config trusting only the CA at `ca`, presenting the certificate and key at
/// `client` when the stack gives one.
pub fn tls_config(ca: &str, client: Option<(&str, &str)>) -> anyhow::Result<rustls::ClientConfig> {
    let read = |path: &str| std::fs::read(path).with_context(|| format!("reading {path}"));
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &read(ca)?[..]) {
        roots.add(cert?)?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    match client {
        Some((cert, key)) => {
            let certs = rustls_pemfile::certs(&mut &read(cert)?[..]).collect::<Result<Vec<_>, _>>()?;
            let key = rustls_pemfile::private_key(&mut &read(key)?[..])?.context("no private key")?;
            Ok(builder.with_client_auth_cert(certs, key)?)
        }
        None => Ok(builder.with_no_client_auth()),
    }
}

/// `--seconds N`: how long to keep working (0, one round, when not given).
pub fn seconds() -> anyhow::Result<u64> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--seconds") {
        Some(at) => args.get(at + 1).context("--seconds needs a number")?.parse().context("--seconds N"),
        None => Ok(0),
    }
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

/// The last line every example prints, and its exit: 1 when an operation failed.
pub fn finish(operations: u64, failures: &[String]) -> std::process::ExitCode {
    if let Some(first) = failures.first() {
        eprintln!("first failure: {first}");
    }
    println!("{operations} operations, {} failures", failures.len());
    if failures.is_empty() { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::from(1) }
}
