//! Where the Docker engine is, found as the docker CLI finds it: `DOCKER_HOST`; else the
//! context `DOCKER_CONTEXT` names, or the CLI's current context (`currentContext` in
//! `$DOCKER_CONFIG/config.json`, default `~/.docker`), whose endpoint is in
//! `contexts/meta/<SHA-256 of its name>/meta.json`; else the local socket.

use anyhow::Context as _;

/// The local socket, the `default` context's endpoint.
pub const LOCAL: &str = "unix:///var/run/docker.sock";

/// The engine's endpoint and where it came from (`DOCKER_HOST`, `context NAME`, `default`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub source: String,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.host, self.source)
    }
}

/// The endpoint from this process's environment and the docker CLI's configuration.
pub fn find() -> anyhow::Result<Endpoint> {
    find_with(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

/// [`find`] with the environment given.
fn find_with(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Endpoint> {
    if let Some(host) = var("DOCKER_HOST") {
        return Ok(Endpoint { host, source: "DOCKER_HOST".into() });
    }
    let config = match var("DOCKER_CONFIG") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => match var("HOME") {
            Some(home) => std::path::Path::new(&home).join(".docker"),
            None => return Ok(local()),
        },
    };
    let context = match var("DOCKER_CONTEXT") {
        Some(context) => context,
        None => match std::fs::read(config.join("config.json")) {
            Ok(bytes) => {
                let document: serde_json::Value = serde_json::from_slice(&bytes)
                    .with_context(|| format!("reading {}", config.join("config.json").display()))?;
                match document["currentContext"].as_str() {
                    Some(context) if !context.is_empty() => context.to_owned(),
                    _ => return Ok(local()),
                }
            }
            Err(_) => return Ok(local()),
        },
    };
    if context == "default" {
        return Ok(local());
    }
    use sha2::Digest as _;
    let meta =
        config.join("contexts/meta").join(hex::encode(sha2::Sha256::digest(context.as_bytes()))).join("meta.json");
    let bytes = std::fs::read(&meta).with_context(|| {
        format!(
            "docker context {context} has no {}: create it with `docker context create`, or use another",
            meta.display()
        )
    })?;
    let document: serde_json::Value =
        serde_json::from_slice(&bytes).with_context(|| format!("reading {}", meta.display()))?;
    let host = document["Endpoints"]["docker"]["Host"]
        .as_str()
        .with_context(|| format!("{} names no docker endpoint (Endpoints.docker.Host)", meta.display()))?;
    Ok(Endpoint { host: host.to_owned(), source: format!("context {context}") })
}

fn local() -> Endpoint {
    Endpoint { host: LOCAL.to_owned(), source: "default".into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_context_is_read_from_the_clis_configuration() {
        let config = tempfile::tempdir().unwrap();
        use sha2::Digest as _;
        let meta = config.path().join("contexts/meta").join(hex::encode(sha2::Sha256::digest(b"remote")));
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::write(
            meta.join("meta.json"),
            r#"{"Name":"remote","Endpoints":{"docker":{"Host":"unix:///run/remote.sock","SkipTLSVerify":false}}}"#,
        )
        .unwrap();
        std::fs::write(config.path().join("config.json"), r#"{"currentContext":"remote"}"#).unwrap();
        let dir = config.path().display().to_string();
        let env = |context: Option<&'static str>| {
            let dir = dir.clone();
            move |name: &str| match name {
                "DOCKER_CONFIG" => Some(dir.clone()),
                "DOCKER_CONTEXT" => context.map(str::to_owned),
                _ => None,
            }
        };
        let found = find_with(env(None)).unwrap();
        assert_eq!(found, Endpoint { host: "unix:///run/remote.sock".into(), source: "context remote".into() });
        assert_eq!(find_with(env(Some("default"))).unwrap().host, LOCAL);
        assert!(format!("{:#}", find_with(env(Some("missing"))).unwrap_err()).contains("docker context missing"));
        let host = |name: &str| (name == "DOCKER_HOST").then(|| "tcp://10.0.0.1:2375".to_owned());
        assert_eq!(find_with(host).unwrap().source, "DOCKER_HOST");
    }
}
