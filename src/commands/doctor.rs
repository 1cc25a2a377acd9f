//! `hardstack doctor`: what `up` needs, checked before a user finds out the hard way, with the
//! same pre-flight checks `up` stops at (`preflight`): the engine and its API version, an image
//! for each service (present, pullable, or the local one), free ports, CPUs and memory for the
//! profile's limits, pgAudit in the image, the stack's names not another directory's, a clock
//! the certificates agree with, and the stack directory's modes. Each line PASS or FAIL with the fix; exit 1 when one
//! fails, 2 when the engine cannot be reached.

use std::process::ExitCode;

use crate::audit::{self, Bundle};
use crate::cli::GlobalArgs;
use crate::containers::{self, ContainerSpec};
use crate::preflight;
use crate::report::{self, Check};
use crate::runtime::{self, Engine};
use crate::settings;
use crate::stackdir::StackDir;

/// Runs `doctor`.
pub async fn run(global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let output = super::output(global);
    let profile = settings::resolve_profile(global)?.profile;
    let dir = StackDir::new(&global.dir);
    let specs = containers::running_specs(&profile);
    let mut checks = Vec::new();
    let engine = match runtime::connect().await {
        Ok(engine) => {
            checks.push(Check::pass(
                "doctor.engine",
                "the Docker engine answers with API 1.41 or newer",
                format!("engine {} (API {}) at {}", engine.server_version, engine.api_version, engine.endpoint),
            ));
            Some(engine)
        }
        Err(err) => {
            checks.push(Check::fail("doctor.engine", "the Docker engine cannot be used", format!("{err:#}")));
            None
        }
    };
    if let Some(engine) = &engine {
        let mut postgres_image = None;
        for spec in &specs {
            let (check, image) = image(engine, &profile, spec).await;
            checks.push(check);
            checks.push(preflight::port(engine, &profile, spec).await);
            if spec.service == crate::profile::Service::Postgres {
                postgres_image = Some(image);
            }
        }
        // PostgreSQL's replicas: their ports, and their share of the CPUs and memory.
        let replicas = crate::replica::specs(&profile);
        for spec in &replicas {
            checks.push(preflight::port(engine, &profile, spec).await);
        }
        let every: Vec<_> = specs.iter().chain(&replicas).cloned().collect();
        checks.push(preflight::cpus(engine, &every).await);
        checks.push(preflight::memory(engine, &every).await);
        if let Some(image) = postgres_image {
            checks.push(preflight::pgaudit(engine, &profile, &image).await);
        }
        checks.push(preflight::identity(engine, &profile, &dir, &specs).await?);
    }
    checks.push(preflight::clock(&dir));
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

/// The service's image: present, pullable, or the local one `up` falls back to; and the image
/// `up` would run.
async fn image(engine: &Engine, profile: &crate::profile::Profile, spec: &ContainerSpec) -> (Check, String) {
    let id = format!("doctor.image.{}", spec.service);
    if engine.has_image(&spec.image).await {
        return (Check::pass(id, "the image is in the engine", spec.image.clone()), spec.image.clone());
    }
    let check = match preflight::image(engine, profile, spec, false).await {
        Ok(preflight::ImageSource::Profile) => Check::pass(id, "the image can be pulled", spec.image.clone()),
        Ok(preflight::ImageSource::Local(local)) => {
            let check = Check::pass(id, format!("{} cannot be had; up uses the local {local}", spec.image), local);
            return (check, local.to_owned());
        }
        Err(err) => Check::fail(id, "no image for the service, and none can be had", format!("{err:#}")),
    };
    (check, spec.image.clone())
}
