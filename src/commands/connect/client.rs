//! The clients `connect` opens: psql, redis-cli and curl, each with the stack CA, the login's
//! client certificate and its secret as a private file; run here, or in a one-off container of
//! the stack's own image on its network.

use anyhow::Context as _;

use super::{Login, code_of};
use crate::containers;
use crate::endpoint::HostAddress;
use crate::error::EnvironmentError;
use crate::layout::StackFile;
use crate::output;
use crate::profile::{Profile, Service};
use crate::runtime::{Attached, Engine, OneOff, Streams, deliver};
use crate::stackdir::StackDir;

/// Where the files go in a one-off container.
const ROOT: &str = "/hardstack-connect";

/// A client's program, arguments, variables (none of them secret) and private files (the
/// secret among them).
pub struct Invocation {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Name in the private directory, content.
    pub files: Vec<(String, Vec<u8>)>,
    /// redis-cli reads its password from this variable, set from the private file of this
    /// name in the client's own environment only.
    pub auth_from: Option<(&'static str, &'static str)>,
}

/// Where a client reaches the service, and where it finds its files.
struct Place {
    host: String,
    port: u16,
    ca: String,
    /// Certificate and key.
    certificate: Option<(String, String)>,
    /// The private directory.
    dir: String,
}

/// The client program for a service.
pub fn program(service: Service) -> &'static str {
    match service {
        Service::Redis => "redis-cli",
        Service::Qdrant | Service::QdrantFront => "curl",
        _ => "psql",
    }
}

/// The invocation for a client at `place`.
fn invocation(service: Service, login: &Login, place: &Place, args: &[String]) -> Invocation {
    let program = program(service).to_owned();
    let mut env = Vec::new();
    let mut files = Vec::new();
    let mut full = Vec::new();
    let mut auth_from = None;
    match service {
        Service::Redis => {
            full.extend(["--tls".to_owned(), "--cacert".to_owned(), place.ca.clone()]);
            if let Some((cert, key)) = &place.certificate {
                full.extend(["--cert".to_owned(), cert.clone(), "--key".to_owned(), key.clone()]);
            }
            full.extend(["-h".to_owned(), place.host.clone(), "-p".to_owned(), place.port.to_string()]);
            full.extend(["--user".to_owned(), login.name.clone()]);
            full.extend(args.iter().cloned());
            files.push(("password".to_owned(), login.secret.expose().as_bytes().to_vec()));
            auth_from = Some(("REDISCLI_AUTH", "password"));
        }
        Service::Qdrant | Service::QdrantFront => {
            let base = format!("https://{}:{}", place.host, place.port);
            full.extend(["-sS".to_owned(), "--cacert".to_owned(), place.ca.clone()]);
            if let Some((cert, key)) = &place.certificate {
                full.extend(["--cert".to_owned(), cert.clone(), "--key".to_owned(), key.clone()]);
            }
            full.extend(["-H".to_owned(), format!("@{}/headers", place.dir)]);
            let mut has_url = false;
            for arg in args {
                if arg.starts_with('/') {
                    has_url = true;
                    full.push(format!("{base}{arg}"));
                } else {
                    full.push(arg.clone());
                }
            }
            if !has_url {
                full.push(format!("{base}/"));
            }
            files.push(("headers".to_owned(), format!("api-key: {}\n", login.secret.expose()).into_bytes()));
        }
        _ => {
            let mut set = |name: &str, value: String| env.push((name.to_owned(), value));
            set("PGHOST", place.host.clone());
            set("PGPORT", place.port.to_string());
            set("PGUSER", login.name.clone());
            set("PGDATABASE", login.database.clone());
            set("PGSSLMODE", "verify-full".to_owned());
            set("PGSSLROOTCERT", place.ca.clone());
            if let Some((cert, key)) = &place.certificate {
                set("PGSSLCERT", cert.clone());
                set("PGSSLKEY", key.clone());
            }
            set("PGPASSFILE", format!("{}/pgpass", place.dir));
            set("PGAPPNAME", "hardstack-connect".to_owned());
            full.extend(args.iter().cloned());
            // Any host, port and database: this file is for this one client.
            let escaped = login.secret.expose().replace('\\', "\\\\").replace(':', "\\:");
            files.push(("pgpass".to_owned(), format!("*:*:*:{}:{escaped}\n", login.name).into_bytes()));
        }
    }
    Invocation { program, args: full, env, files, auth_from }
}

/// The invocation on this machine, at the published port, with the stack directory's
/// certificates; its private files are written by `run_here`.
pub fn host(
    profile: &Profile,
    dir: &StackDir,
    service: Service,
    login: &Login,
    address: HostAddress,
    args: &[String],
) -> anyhow::Result<(Invocation, tempfile::TempDir)> {
    let root = std::path::absolute(&dir.root).with_context(|| format!("resolving {}", dir.root.display()))?;
    let path = |file: StackFile| root.join(file.path()).display().to_string();
    let private = tempfile::Builder::new()
        .prefix("hardstack-connect-")
        .tempdir()
        .context("making a private directory for the client's secret")?;
    let place = Place {
        host: address.address.to_string(),
        port: address.port,
        ca: path(StackFile::CaCert),
        certificate: profile.demands_client_cert(service).then(|| {
            (
                path(StackFile::ClientCert(login.certificate.clone())),
                path(StackFile::ClientKey(login.certificate.clone())),
            )
        }),
        dir: private.path().display().to_string(),
    };
    Ok((invocation(service, login, &place, args), private))
}

/// Runs the client here with this process's terminal: its exit code, and its stdout when
/// `captured` (-o json). The private directory goes when it ends.
pub async fn run_here(
    (invocation, private): &(Invocation, tempfile::TempDir),
    captured: bool,
) -> anyhow::Result<(i64, Vec<u8>)> {
    // A secret the client takes from its environment needs no file here.
    let from_environment = invocation.auth_from.map(|(_, file)| file);
    for (name, content) in invocation.files.iter().filter(|(name, _)| Some(name.as_str()) != from_environment) {
        crate::fsio::write_atomic(&private.path().join(name), content, 0o600)?;
    }
    let mut command = tokio::process::Command::new(&invocation.program);
    command.args(&invocation.args).envs(invocation.env.iter().map(|(k, v)| (k, v)));
    // What the user's environment says must not redirect the login.
    command.env_remove("PGPASSWORD").env_remove("PGSERVICE").env_remove("PGSERVICEFILE");
    if let Some((variable, file)) = invocation.auth_from {
        let secret = invocation.files.iter().find(|(name, _)| name == file).map(|(_, c)| c.clone()).unwrap_or_default();
        command.env(variable, String::from_utf8_lossy(&secret).into_owned());
    }
    if captured {
        command.stdout(std::process::Stdio::piped());
    }
    // Ctrl-C is the client's (psql cancels a query): this process waits for it to end.
    let _interrupts = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    let child = command.spawn().with_context(|| format!("starting {}", invocation.program))?;
    let done = child.wait_with_output().await.with_context(|| format!("waiting for {}", invocation.program))?;
    Ok((code_of(done.status), done.stdout))
}

/// Runs the client in a one-off container on the stack network, from the image of the stack's
/// service that has it (PostgreSQL's for psql, Redis's for redis-cli; for Qdrant, whose image
/// has no curl, this binary's own HTTPS client in Qdrant's image).
pub async fn run_in_network(
    engine: &Engine,
    profile: &Profile,
    dir: &StackDir,
    service: Service,
    login: &Login,
    args: &[String],
    captured: bool,
) -> anyhow::Result<(i64, Vec<u8>)> {
    let specs = containers::running_specs(profile);
    let target = specs.iter().find(|s| s.service == service).context("the stack runs the service")?;
    if !engine.running(&target.name).await? {
        return Err(EnvironmentError(format!("{} is not running; `hardstack up` starts it", target.name)).into());
    }
    let has_client = match service {
        Service::Pgbouncer => Service::Postgres,
        // This binary is the HTTPS client, run in Qdrant's image.
        Service::QdrantFront => Service::Qdrant,
        other => other,
    };
    let with_certificate = profile.demands_client_cert(service);
    let spec = specs.iter().find(|s| s.service == has_client).context("the stack runs the client's service")?;
    let image = engine.image_of(spec).await?;
    let uid = spec.service.uid();
    let endpoint = crate::endpoint::network_endpoint(profile, service);
    let place = Place {
        host: endpoint.host,
        port: endpoint.port,
        ca: format!("{ROOT}/ca.crt"),
        certificate: with_certificate.then(|| (format!("{ROOT}/client.crt"), format!("{ROOT}/client.key"))),
        dir: ROOT.to_owned(),
    };
    let mut invocation = invocation(service, login, &place, args);
    let read = |file: StackFile| {
        let path = dir.file(&file);
        std::fs::read(&path).with_context(|| format!("reading {}; `hardstack init` restores it", path.display()))
    };
    let root = ROOT.trim_start_matches('/');
    let mut files = vec![(format!("{root}/ca.crt"), uid, 0o644, read(StackFile::CaCert)?)];
    if with_certificate {
        files.push((format!("{root}/client.crt"), uid, 0o644, read(StackFile::ClientCert(login.certificate.clone()))?));
        files.push((format!("{root}/client.key"), uid, 0o600, read(StackFile::ClientKey(login.certificate.clone()))?));
    }
    for (name, content) in &invocation.files {
        files.push((format!("{root}/{name}"), uid, 0o600, content.clone()));
    }
    let mut command = match service {
        Service::Qdrant | Service::QdrantFront => {
            // The HTTPS client is this binary's; it reads the URL and its files from here.
            files.push((format!("{root}/hardstack"), uid, 0o755, crate::verify::inside::executable()?));
            invocation.env.push(("HARDSTACK_CONNECT_URL".to_owned(), format!("https://{}:{}", place.host, place.port)));
            invocation.env.push(("HARDSTACK_CONNECT_DIR".to_owned(), ROOT.to_owned()));
            let mut command = vec![format!("{ROOT}/hardstack"), "connect".to_owned(), "qdrant".to_owned()];
            command.extend(["--inside".to_owned(), "--".to_owned()]);
            command.extend(args.iter().cloned());
            command
        }
        _ => match invocation.auth_from {
            // The password enters the client's environment inside the container, never the
            // container's configuration.
            Some((variable, file)) => vec![
                "sh".to_owned(),
                "-c".to_owned(),
                format!("export {variable}=\"$(cat {ROOT}/{file})\"; exec \"$@\""),
                "sh".to_owned(),
                invocation.program.clone(),
            ],
            None => vec![invocation.program.clone()],
        },
    };
    if !matches!(service, Service::Qdrant | Service::QdrantFront) {
        command.extend(invocation.args.iter().cloned());
    }
    let mut env: Vec<String> = invocation.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    // No history file is left in a container that is about to go.
    env.extend(["PSQL_HISTORY=/dev/null".to_owned(), "REDISCLI_HISTFILE=/dev/null".to_owned()]);
    let tty = if captured { None } else { output::terminal_size() };
    let run = Attached {
        run: OneOff {
            image,
            user: format!("{uid}:{uid}"),
            command,
            archive: deliver::archive_of_files(&files)?,
            mounts: Vec::new(),
            cap_add: Vec::new(),
        },
        env,
        tty,
    };
    let names = containers::stack_names(profile);
    let (stdin, stdout, stderr) = output::streams();
    let _raw = match tty {
        Some(_) => Some(output::RawTerminal::enable()?),
        None => None,
    };
    if captured {
        let mut buffer = Vec::new();
        let streams = Streams { stdin, stdout: &mut buffer, stderr };
        let code = engine.run_attached(&names.stack, &names.network, "connect", run, streams).await?;
        return Ok((code, buffer));
    }
    let code =
        engine.run_attached(&names.stack, &names.network, "connect", run, Streams { stdin, stdout, stderr }).await?;
    Ok((code, Vec::new()))
}
