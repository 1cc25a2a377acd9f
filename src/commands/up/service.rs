//! One service's bring-up in `up`: what the services share (`Stack`), where the time went
//! (`Timings`), and `bring_up`: converge the container on the stack directory with the least
//! disruption, create and start it where needed, and wait until it is usable.

use super::*;

/// What the services' bring-ups share.
pub(super) struct Stack {
    pub(super) engine: Engine,
    pub(super) dir: StackDir,
    pub(super) names: containers::StackNames,
    pub(super) network: Network,
    /// The new containers' delivery helpers, made while init wrote the directory (`bring`).
    pub(super) early: Option<super::EarlyHelpers>,
    pub(super) progress: Progress,
    pub(super) timeout: Duration,
    pub(super) profile: Profile,
    /// Whether to drop what removed users had (`--prune`).
    pub(super) prune: bool,
    /// Redis's admin password, for live changes.
    pub(super) redis_admin: Option<crate::secrets::Secret>,
    /// Set once PostgreSQL's container has started (or will not be created): the engine's work
    /// for the other new containers waits for it (see `bring_up`).
    pub(super) first_started: tokio::sync::watch::Sender<bool>,
}

/// Sets `Stack::first_started` when dropped: PostgreSQL's bring-up releases the others however
/// it ends (started, kept, failed).
struct FirstStarted<'a>(&'a tokio::sync::watch::Sender<bool>);

impl Drop for FirstStarted<'_> {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

/// Where a service's time went in `up` (`up -v` prints it).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Timings {
    /// Waiting for PostgreSQL's container to start before this new container goes to the
    /// engine (see `bring_up`).
    waited: Duration,
    /// Planning, then the volumes, the files delivered and the container created (or the
    /// changes applied to a running one).
    prepare: Duration,
    /// The engine starting the container (namespaces, mounts, the network, published ports).
    start: Duration,
    /// From the start until an application's login and query succeed: the image's own first
    /// start (PostgreSQL: initdb, the init SQL in a temporary server, the final start).
    usable: Duration,
}

impl Timings {
    pub(super) fn total(&self) -> Duration {
        self.waited + self.prepare + self.start + self.usable
    }

    pub(super) fn describe(&self, service: Service, replica: bool) -> String {
        let own = match service {
            Service::Postgres if replica => " (a new replica: its copy of the primary is made before the start)",
            Service::Postgres => " (on a new data volume: initdb, the init SQL in a temporary server, the final start)",
            _ => "",
        };
        let waited = match self.waited.is_zero() {
            true => String::new(),
            false => format!("{:.2}s waiting for PostgreSQL's start + ", self.waited.as_secs_f64()),
        };
        format!(
            "{:.2}s = {waited}{:.2}s plan, volumes, files and container + {:.2}s the engine's start + {:.2}s from start to usable{own}",
            self.total().as_secs_f64(),
            self.prepare.as_secs_f64(),
            self.start.as_secs_f64(),
            self.usable.as_secs_f64()
        )
    }
}

/// Converges one service on the stack directory with the least disruption (see `converge`),
/// then waits until it is usable.
pub(super) async fn bring_up(
    stack: &Stack,
    spec: &ContainerSpec,
    readiness: Readiness,
) -> anyhow::Result<(converge::ServicePlan, Timings)> {
    let started = Instant::now();
    let mut timings = Timings::default();
    let (engine, progress) = (&stack.engine, &stack.progress);
    let service = spec.alias.as_str();
    let contents = |file: &layout::StackFile| -> anyhow::Result<Vec<u8>> {
        let path = stack.dir.file(file);
        std::fs::read(&path).with_context(|| format!("reading {}; run `hardstack init` to restore it", path.display()))
    };
    // PostgreSQL's first start (initdb, the init SQL) is the longest: its container goes to the
    // engine first, and the other new containers once it has started, so the engine's work for
    // them (creation, start; their files went in through their early helpers) runs beside
    // initdb instead of delaying it. The flag is set however PostgreSQL's bring-up goes on from
    // here, and at once when it creates nothing.
    let _first = (spec.service == Service::Postgres).then(|| FirstStarted(&stack.first_started));
    let plan = converge::plan(engine, &stack.profile, spec, &contents, stack.prune).await?;
    let creates = matches!(plan.container, converge::ContainerStep::Create | converge::ContainerStep::Recreate { .. });
    if spec.service == Service::Postgres && !creates {
        stack.first_started.send_replace(true);
    }
    if creates && spec.service != Service::Postgres {
        let waiting = Instant::now();
        let mut started = stack.first_started.subscribe();
        let _ = started.wait_for(|started| *started).await;
        timings.waited = waiting.elapsed();
    }
    let (helper, plan) = match &plan.container {
        converge::ContainerStep::Create | converge::ContainerStep::Recreate { .. } => {
            if matches!(plan.container, converge::ContainerStep::Recreate { .. }) {
                progress.stage(service, "recreating");
                engine.remove(&spec.name).await?;
            }
            let (helper, start) = create_and_start(stack, spec, &contents).await?;
            if spec.service == Service::Postgres {
                stack.first_started.send_replace(true);
            }
            timings.start = start;
            (Some(helper), plan)
        }
        converge::ContainerStep::Keep | converge::ContainerStep::Start => {
            if !plan.actions.is_empty() || plan.container == converge::ContainerStep::Start {
                progress.stage(service, plan.change());
            }
            let admin = stack.redis_admin.as_ref();
            let done = converge::apply(engine, &stack.profile, &stack.dir, spec, &plan, admin).await?;
            (None, done)
        }
    };
    progress.stage(service, "waiting");
    // The delivery helper is removed while the service comes up.
    let cleanup = async {
        match &helper {
            Some(helper) => engine.force_remove(helper).await,
            None => Ok(()),
        }
    };
    timings.prepare = started.elapsed() - timings.waited - timings.start;
    let waiting = Instant::now();
    let (usable, removed) = tokio::join!(wait_until_usable(engine, spec, &readiness, stack.timeout), cleanup);
    timings.usable = waiting.elapsed();
    usable?;
    removed?;
    Ok((plan, timings))
}

/// Volumes, then the files delivered into them (with a fresh record of what was delivered)
/// while the network and the container are made (neither needs the other), then the start.
/// Where its helper was made while init wrote the directory (`EarlyHelpers`), the files are
/// already in (uploaded from init's plan, the same bytes), or go in at once, beside the other
/// volumes and the container. Returns the delivery helper container,
/// left for the caller to remove. A container whose files did not arrive is removed, never
/// started.
async fn create_and_start(
    stack: &Stack,
    spec: &ContainerSpec,
    contents: converge::Contents<'_>,
) -> anyhow::Result<(String, Duration)> {
    let (engine, names) = (&stack.engine, &stack.names);
    stack.progress.stage(&spec.alias, "creating");
    for bind in &spec.binds {
        crate::fsio::ensure_owned_dir(&bind.host_path(&stack.dir.absolute()), spec.service.uid())?;
    }
    let files =
        spec.deliveries.iter().map(|d| Ok((d.clone(), contents(&d.file)?))).collect::<anyhow::Result<Vec<_>>>()?;
    let hash = deliver::config_hash(spec)?;
    let early = match &stack.early {
        Some(early) => early.take(engine, spec, &files).await,
        None => None,
    };
    if early.is_none() {
        engine.ensure_volumes(&names.stack, spec).await?;
    }
    let creating = async {
        if early.is_some() {
            engine.ensure_volumes(&names.stack, spec).await?;
        }
        stack.network.ready().await?;
        engine.create(&names.stack, spec, &hash, &stack.dir.absolute()).await
    };
    let delivering = async {
        match &early {
            Some(Taken { helper, upload: Some(upload) }) => match upload.clone().await {
                Some(Ok(())) => Ok(helper.clone()),
                failed => {
                    let _ = engine.force_remove(helper).await;
                    let why = failed.and_then(Result::err).unwrap_or_else(|| "the helper is gone".into());
                    Err(anyhow::anyhow!("delivering the files into {}'s volumes: {why}", spec.name))
                }
            },
            Some(Taken { helper, upload: None }) => {
                converge::deliver_through(engine, helper, spec, files).await.map(|()| helper.clone())
            }
            None => {
                let record = Some(converge::DeliveryRecord::default());
                converge::deliver_keeping_helper(engine, &names.stack, spec, files, record).await
            }
        }
    };
    let (delivered, created) = tokio::join!(delivering, creating);
    let helper = match delivered {
        Ok(helper) => helper,
        Err(err) => {
            if created.is_ok() {
                let _ = engine.force_remove(&spec.name).await;
            }
            return Err(err);
        }
    };
    let started = async {
        created?;
        // A replica's data is a copy of the primary's, made before its first start.
        if let Some(node) = crate::replica::standby_node(&stack.profile, spec) {
            stack.progress.stage(&spec.alias, "copying the primary");
            if let Err(err) = converge::replica::copy(engine, &stack.profile, spec, node).await {
                let _ = engine.force_remove(&spec.name).await;
                return Err(err.context(format!("copying the primary into {}", spec.alias)));
            }
        }
        stack.progress.stage(&spec.alias, "starting");
        let starting = Instant::now();
        engine.start(&spec.name).await.map(|()| starting.elapsed())
    };
    match started.await {
        Ok(start) => Ok((helper, start)),
        Err(err) => {
            let _ = engine.force_remove(&helper).await;
            Err(err)
        }
    }
}

/// Probes with backoff until the service answers, the container dies, or the timeout passes.
/// On failure: the probe's last error and the last lines of the container's log.
pub async fn wait_until_usable(
    engine: &Engine,
    spec: &ContainerSpec,
    readiness: &Readiness,
    timeout: Duration,
) -> anyhow::Result<()> {
    // Probes are cheap (a refused connection, or one handshake): keep the gap short so a
    // service is seen usable within a hundredth of a second of becoming so. A healthcheck run
    // is a process in the container: a few a second.
    let most = match readiness {
        Readiness::Probe(_) => Duration::from_millis(10),
        Readiness::Healthcheck => Duration::from_millis(250),
    };
    let backoff = Backoff { first: Duration::from_millis(10), most, deadline: timeout };
    // Asking the engine whether the container died costs it more than a refused probe costs
    // anyone: a few times a second is enough.
    let state_checked = std::sync::Mutex::new(Instant::now());
    let waited = backoff
        .run(|| async {
            let attempt = match readiness {
                Readiness::Probe(target) => probe::probe(spec.service, target).await,
                Readiness::Healthcheck => healthy(engine, spec).await,
            };
            let error = match attempt {
                Ok(()) => return Attempt::Done(()),
                Err(err) => err,
            };
            {
                let mut checked = state_checked.lock().expect("no panic holds it");
                if checked.elapsed() < Duration::from_millis(250) {
                    return Attempt::Retry(error);
                }
                *checked = Instant::now();
            }
            let state = match engine.inspect(&spec.name).await {
                Ok(info) => info.and_then(|i| i.state),
                Err(err) => return Attempt::Fail(err),
            };
            if state.as_ref().is_some_and(|s| s.running != Some(true) || s.restarting == Some(true)) {
                let code = state.and_then(|s| s.exit_code).unwrap_or(-1);
                return Attempt::Fail(anyhow::anyhow!(
                    "the container stopped (exit code {code}); last probe error: {error:#}"
                ));
            }
            Attempt::Retry(error)
        })
        .await;
    let Err(err) = waited else { return Ok(()) };
    let last_error = match err.downcast_ref::<crate::retry::Exhausted>() {
        Some(exhausted) => format!("not usable after {}s; last probe error: {:#}", timeout.as_secs(), exhausted.last),
        None => format!("{err:#}"),
    };
    let logs = engine.log_tail(&spec.name, 20).await;
    anyhow::bail!("{last_error}\nlast lines of {}'s log:\n{}", spec.name, logs.trim_end())
}

/// Healthy by the engine's verdict, or by running the healthcheck now: the engine runs it first
/// one interval (2 s) after the start, and on Engine 20.10 nothing makes that sooner.
async fn healthy(engine: &Engine, spec: &ContainerSpec) -> anyhow::Result<()> {
    let status = engine.inspect(&spec.name).await?.and_then(|i| i.state?.health?.status);
    match status {
        Some(runtime::HealthStatus::HEALTHY) => Ok(()),
        _ => engine.run_healthcheck(spec).await,
    }
}
