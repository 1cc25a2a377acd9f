//! What `up` needs before it creates anything, checked in one place for `up` (which stops at
//! the first failure, exit 2) and `doctor` (which reports every check): published ports free or
//! the stack's own, CPU limits within the engine's CPUs, memory (doctor only: the engine does not
//! refuse it), an image for each service, pgAudit in the image when the profile loads it, the
//! stack's names not another directory's, and a clock the certificates agree with. Each is a
//! `Check` whose reason says what to do.

use std::net::{IpAddr, SocketAddr, TcpListener};

use crate::containers::{self, ContainerSpec};
use crate::layout::StackFile;
use crate::pki;
use crate::profile::{Profile, Service};
use crate::report::Check;
use crate::runtime::Engine;
use crate::stackdir::StackDir;

/// The checks `up` stops at, for the services' specs: each published port, and the CPU limits.
pub async fn for_up(engine: &Engine, profile: &Profile, specs: &[ContainerSpec]) -> Vec<Check> {
    let mut checks = Vec::new();
    for spec in specs {
        checks.push(port(engine, profile, spec).await);
    }
    checks.push(cpus(engine, specs).await);
    checks
}

/// Every published port of a service is free, or held by this stack's own container, or by the
/// container of a service it waits for whose new spec gives the port up (the Qdrant front takes
/// Qdrant's port: Qdrant is recreated without it before the front starts).
pub async fn port(engine: &Engine, profile: &Profile, spec: &ContainerSpec) -> Check {
    let id = format!("doctor.port.{}", spec.alias);
    // Each published port with the key that sets it.
    let mut published: Vec<(&String, u16, String)> = Vec::new();
    if let Some((address, port)) = &spec.publish {
        let key = match spec.service {
            _ if crate::replica::node(spec).is_some_and(|node| node > 0) => "postgres_replicas".to_owned(),
            Service::QdrantFront => Service::Qdrant.to_string(),
            service => service.to_string(),
        };
        published.push((address, *port, format!("network.ports.{key}")));
    }
    for extra in &spec.extra_ports {
        if let Some((address, port)) = &extra.publish {
            published.push((address, *port, "network.ports.qdrant_grpc".to_owned()));
        }
    }
    if published.is_empty() {
        return Check::not_applicable(id, "the stack publishes no port");
    }
    let own = async |name: &str| {
        engine
            .inspect(name)
            .await
            .ok()
            .flatten()
            .and_then(|i| i.config)
            .and_then(|c| c.labels)
            .and_then(|l| l.get(containers::STACK_LABEL).cloned())
            == Some(profile.stack.name.clone())
    };
    if own(&spec.name).await {
        let ports: Vec<String> = published.iter().map(|(a, p, _)| format!("{a}:{p}")).collect();
        return Check::pass(id, "the ports are this stack's own", ports.join(", "));
    }
    let mut evidence = Vec::new();
    for (address, port, key) in published {
        let free = address.parse::<IpAddr>().is_ok_and(|ip| TcpListener::bind(SocketAddr::new(ip, port)).is_ok());
        if free {
            evidence.push(format!("{address}:{port} free"));
            continue;
        }
        let container = engine.container_publishing(port).await;
        // Held by a service this one waits for, which gives the port up when it is brought up.
        let handed_over = spec.service.upstreams().iter().find(|upstream| {
            container.as_deref() == Some(containers::container_name(profile, **upstream).as_str())
                && containers::container_spec(profile, **upstream).publish.is_none_or(|(_, p)| p != port)
        });
        if let Some(upstream) = handed_over
            && own(&containers::container_name(profile, *upstream)).await
        {
            evidence.push(format!("{address}:{port} from {upstream}, which gives it up first"));
            continue;
        }
        let holder = match container {
            Some(container) => format!("container {container}"),
            None => process_listening(port).unwrap_or_else(|| "another process".into()),
        };
        return Check::fail(
            id,
            format!(
                "port {port} on {address} is taken by {holder}; set {key} to a free port (--set {key}=N) or stop it"
            ),
            format!("{address}:{port} held by {holder}"),
        );
    }
    Check::pass(id, "the ports are free", evidence.join(", "))
}

/// Every CPU limit fits the engine's CPUs (the engine refuses a container whose limit does not).
pub async fn cpus(engine: &Engine, specs: &[ContainerSpec]) -> Check {
    let id = "doctor.cpus";
    let most = specs.iter().map(|s| s.nano_cpus).max().unwrap_or(0);
    let cpus = match engine.cpus().await {
        Ok(cpus) => cpus,
        Err(err) => return Check::fail(id, "the engine did not say how many CPUs it has", format!("{err:#}")),
    };
    let evidence = format!("{cpus} CPUs; the largest limit {}", most as f64 / 1e9);
    match specs.iter().find(|s| cpus > 0 && s.nano_cpus > cpus * 1_000_000_000) {
        None => Check::pass(id, "every CPU limit fits the engine", evidence),
        Some(spec) => Check::fail(
            id,
            format!(
                "resources.{service}.cpus is {} but the engine has {cpus} CPUs; lower it (--set resources.{service}.cpus={cpus})",
                spec.nano_cpus as f64 / 1e9,
                service = spec.service
            ),
            evidence,
        ),
    }
}

/// The memory limits fit the engine's memory together (doctor only: the engine starts
/// containers whose limits add up to more, and the kernel decides later).
pub async fn memory(engine: &Engine, specs: &[ContainerSpec]) -> Check {
    let id = "doctor.memory";
    let memory: u64 = specs.iter().map(|s| s.memory_bytes).sum();
    match engine.memory().await {
        Ok(total) if total == 0 || memory <= total => Check::pass(
            id,
            "the memory limits fit the engine together",
            format!("{} MiB of {} MiB", memory / 1_048_576, total / 1_048_576),
        ),
        Ok(total) => Check::fail(
            id,
            "the memory limits add up to more than the engine has: lower resources.<service>.memory",
            format!("{} MiB of {} MiB", memory / 1_048_576, total / 1_048_576),
        ),
        Err(err) => Check::fail(id, "the engine did not say", format!("{err:#}")),
    }
}

/// Where a service's image comes from.
pub enum ImageSource {
    /// The profile's image, present or pulled (`up`), or pullable (`doctor`).
    Profile,
    /// The local one images/build.sh makes, present.
    Local(&'static str),
}

/// The image a service can run: the profile's, present or (with `pull`, as `up` does) pulled or
/// (without, as `doctor` does) pullable; else the local one images/build.sh makes, present.
/// Otherwise the error names the service, the image and the two ways out.
pub async fn image(
    engine: &Engine,
    profile: &Profile,
    spec: &ContainerSpec,
    pull: bool,
) -> anyhow::Result<ImageSource> {
    if engine.has_image(&spec.image).await {
        return Ok(ImageSource::Profile);
    }
    let had = match pull {
        true => engine.ensure_image(&spec.image).await.map(|_| ()),
        false => engine.registry_has(&spec.image).await,
    };
    let unavailable = match had {
        Ok(()) => return Ok(ImageSource::Profile),
        Err(err) => err,
    };
    let local = containers::local_image(spec.service);
    if local != spec.image && engine.has_image(local).await {
        return Ok(ImageSource::Local(local));
    }
    let others: Vec<&str> = crate::layout::services(profile).filter(|s| *s != spec.service).map(|s| s.name()).collect();
    let build = match spec.service {
        Service::Qdrant => "images/build.sh --qdrant-binary PATH (a Qdrant release binary you have)".to_owned(),
        _ => "images/build.sh".to_owned(),
    };
    let leave_out = if others.is_empty() {
        "or run another service".to_owned()
    } else {
        format!("or leave {} out: --services {}", spec.service, others.join(","))
    };
    anyhow::bail!(
        "service {}: image {} is missing and cannot be pulled ({unavailable:#}); build {local} with {build}, {leave_out}",
        spec.service,
        spec.image
    )
}

/// A profile that enables pgAudit needs a PostgreSQL image that carries it (labelled so):
/// PostgreSQL would not start otherwise. `image` is the one the service will run.
pub async fn pgaudit(engine: &Engine, profile: &Profile, image: &str) -> Check {
    let id = "doctor.pgaudit";
    if !profile.runs(Service::Postgres) || !profile.postgres.pgaudit {
        return Check::not_applicable(id, "the profile does not load pgAudit (postgres.pgaudit)");
    }
    match engine.image_label(image, "hardstack.pgaudit").await {
        Some(_) => Check::pass(id, "the PostgreSQL image carries pgAudit", image.to_owned()),
        None => Check::fail(
            id,
            format!(
                "profile {} enables pgAudit (postgres.pgaudit = true) but image {image} does not carry it (no hardstack.pgaudit label); build the local image with images/build.sh, label an image that has pgaudit, or set postgres.pgaudit=false",
                profile.name
            ),
            image.to_owned(),
        ),
    }
}

/// No container, volume or network of the stack's names belongs to another stack directory.
pub async fn identity(
    engine: &Engine,
    profile: &crate::profile::Profile,
    dir: &StackDir,
    specs: &[ContainerSpec],
) -> anyhow::Result<Check> {
    let id = "doctor.identity";
    let identity = crate::identity::Identity::of(dir)?;
    let engine = engine.clone().acting_for(identity.owner(&profile.stack.name, dir));
    Ok(match engine.check_claim(&containers::stack_names(profile), specs).await {
        Ok(()) => Check::pass(
            id,
            "no object of this stack's names belongs to another stack directory",
            format!("stack {} (id {})", profile.stack.name, identity.id),
        ),
        Err(err) => Check::fail(id, "an object of this stack's names is another stack's", format!("{err:#}")),
    })
}

/// The clock agrees with the stack's certificates: after the CA was made, before it expires.
pub fn clock(dir: &StackDir) -> Check {
    let id = "doctor.clock";
    let Ok(pem) = std::fs::read_to_string(dir.file(&StackFile::CaCert)) else {
        return Check::not_applicable(id, "no stack directory yet: init makes the certificates with this clock");
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    match (pki::not_before(&pem), pki::not_after(&pem)) {
        (Ok(from), Ok(until)) if from <= now && now < until => {
            Check::pass(id, "the clock is within the CA's validity", format!("{} days left", (until - now) / 86_400))
        }
        (Ok(from), Ok(until)) => Check::fail(
            id,
            "the clock is outside the CA's validity: set the clock right (NTP), or renew the CA",
            format!("now {now}, the CA is valid from {from} to {until}"),
        ),
        (Err(err), _) | (_, Err(err)) => Check::fail(id, "the CA certificate cannot be read", format!("{err:#}")),
    }
}

/// The process listening on a TCP port, from /proc (Linux; best effort).
fn process_listening(port: u16) -> Option<String> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port =
                fields.get(1).and_then(|a| a.rsplit(':').next()).and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) && fields.get(3) == Some(&"0A") {
                inodes.push(format!("socket:[{}]", fields.get(9)?));
            }
        }
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = entry.file_name().into_string().ok()?;
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path())
                && inodes.iter().any(|i| link.to_str() == Some(i))
            {
                let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                return Some(format!("process {} (pid {pid})", comm.trim()));
            }
        }
    }
    None
}
