//! `hardstack doctor`: what `up` needs, checked before a user finds out the hard way: the
//! engine and its API version, an image for each service (present, pullable, or the local
//! one), free ports, CPUs and memory for the profile's limits, a clock the certificates agree
//! with, and the stack directory's modes. Each line PASS or FAIL with the fix; exit 1 when one
//! fails, 2 when the engine cannot be reached.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::process::ExitCode;

use crate::audit::{self, Bundle};
use crate::cli::GlobalArgs;
use crate::containers::{self, ContainerSpec};
use crate::layout::StackFile;
use crate::pki;
use crate::report::{self, Check};
use crate::runtime::{self, Engine};
use crate::settings;
use crate::stackdir::StackDir;

/// Runs `doctor`.
pub async fn run(global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let output = super::output(global);
    let profile = settings::resolve_profile(global)?.profile;
    let dir = StackDir::new(&global.dir);
    let specs = containers::container_specs(&profile);
    let mut checks = Vec::new();
    let engine = match runtime::connect().await {
        Ok(engine) => {
            checks.push(Check::pass(
                "doctor.engine",
                "the Docker engine answers with API 1.41 or newer",
                format!("engine {} (API {})", engine.server_version, engine.api_version),
            ));
            Some(engine)
        }
        Err(err) => {
            checks.push(Check::fail("doctor.engine", "the Docker engine cannot be used", format!("{err:#}")));
            None
        }
    };
    if let Some(engine) = &engine {
        for spec in &specs {
            checks.push(image(engine, spec).await);
            checks.push(port(engine, &profile.stack.name, spec).await);
        }
        checks.extend(resources(engine, &specs).await);
        checks.push(identity(engine, &profile, &dir, &specs).await?);
    }
    checks.push(clock(&dir));
    if dir.root.is_dir() {
        let bundle = Bundle::load(&dir.root)?;
        checks.extend(audit::audit(&bundle).into_iter().filter(|c| c.id.starts_with("audit.files.")));
    }
    output.json(&report::to_json("doctor", &profile.stack.name, &checks));
    output.table(&report::to_table(&checks, output.verbose));
    Ok(if engine.is_none() {
        ExitCode::from(2)
    } else if report::any_failed(&checks) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// No container, volume or network of the stack's names belongs to another stack directory.
async fn identity(
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

/// The service's image: present, pullable, or the local one `up` falls back to.
async fn image(engine: &Engine, spec: &ContainerSpec) -> Check {
    let id = format!("doctor.image.{}", spec.service);
    if engine.has_image(&spec.image).await {
        return Check::pass(id, "the image is in the engine", spec.image.clone());
    }
    let pullable = engine.registry_has(&spec.image).await;
    let local = containers::local_image(spec.service);
    match pullable {
        Ok(()) => Check::pass(id, "the image can be pulled", spec.image.clone()),
        Err(_) if engine.has_image(local).await => {
            Check::pass(id, format!("{} cannot be had; up uses the local {local}", spec.image), local)
        }
        Err(err) => Check::fail(
            id,
            format!(
                "no image for {}: build {local} with images/build.sh{}, or leave it out with --services",
                spec.service,
                if spec.service == crate::profile::Service::Qdrant { " --qdrant-binary PATH" } else { "" }
            ),
            format!("{} is not in the engine and cannot be pulled: {err:#}", spec.image),
        ),
    }
}

/// The published port is free, or held by this stack's own container.
async fn port(engine: &Engine, stack: &str, spec: &ContainerSpec) -> Check {
    let id = format!("doctor.port.{}", spec.service);
    let Some((address, port)) = &spec.publish else {
        return Check::not_applicable(id, "the stack publishes no port");
    };
    if let Ok(Some(info)) = engine.inspect(&spec.name).await
        && info.config.and_then(|c| c.labels).and_then(|l| l.get(containers::STACK_LABEL).cloned()).as_deref()
            == Some(stack)
    {
        return Check::pass(id, "the port is this stack's own", format!("{address}:{port}"));
    }
    let free = address.parse::<IpAddr>().is_ok_and(|ip| TcpListener::bind(SocketAddr::new(ip, *port)).is_ok());
    if free {
        Check::pass(id, "the port is free", format!("{address}:{port}"))
    } else {
        let holder = engine.container_publishing(*port).await.map(|c| format!("container {c}"));
        Check::fail(
            id,
            format!("port {port} is taken: set network.ports.{} to a free port, or stop its holder", spec.service),
            format!("{address}:{port} held by {}", holder.unwrap_or_else(|| "another process".into())),
        )
    }
}

/// CPUs and memory for the profile's limits.
async fn resources(engine: &Engine, specs: &[ContainerSpec]) -> Vec<Check> {
    let mut checks = Vec::new();
    let most_cpus = specs.iter().map(|s| s.nano_cpus).max().unwrap_or(0);
    match engine.cpus().await {
        Ok(cpus) if cpus == 0 || most_cpus <= cpus * 1_000_000_000 => checks.push(Check::pass(
            "doctor.cpus",
            "every CPU limit fits the engine",
            format!("{cpus} CPUs; the largest limit {}", most_cpus as f64 / 1e9),
        )),
        Ok(cpus) => checks.push(Check::fail(
            "doctor.cpus",
            "a CPU limit is above the engine's CPUs: lower resources.<service>.cpus",
            format!("{cpus} CPUs; the largest limit {}", most_cpus as f64 / 1e9),
        )),
        Err(err) => checks.push(Check::fail("doctor.cpus", "the engine did not say", format!("{err:#}"))),
    }
    let memory: u64 = specs.iter().map(|s| s.memory_bytes).sum();
    match engine.memory().await {
        Ok(total) if total == 0 || memory <= total => checks.push(Check::pass(
            "doctor.memory",
            "the memory limits fit the engine together",
            format!("{} MiB of {} MiB", memory / 1_048_576, total / 1_048_576),
        )),
        Ok(total) => checks.push(Check::fail(
            "doctor.memory",
            "the memory limits add up to more than the engine has: lower resources.<service>.memory",
            format!("{} MiB of {} MiB", memory / 1_048_576, total / 1_048_576),
        )),
        Err(err) => checks.push(Check::fail("doctor.memory", "the engine did not say", format!("{err:#}"))),
    }
    checks
}

/// The clock agrees with the stack's certificates: after the CA was made, before it expires.
fn clock(dir: &StackDir) -> Check {
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
