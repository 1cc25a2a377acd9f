//! `hardstack up`: init if needed, pre-flight (engine, ports, images), then every service in
//! parallel: volumes, file delivery, container, start, and a wait until it is usable.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use serde_json::json;

use crate::cli::{GlobalArgs, UpArgs};
use crate::commands::init;
use crate::containers::{self, ContainerSpec};
use crate::converge;
use crate::error::EnvironmentError;
use crate::layout;
use crate::output::{Format, Output, Progress};
use crate::preflight;
use crate::probe::{self, Target};
use crate::profile::Profile;
use crate::profile::Service;
use crate::report::{self, Check};
use crate::retry::{Attempt, Backoff};
use crate::runtime::{self, Engine, deliver};
use crate::stackdir::StackDir;
use crate::verify;

/// The stack network's creation, started before the directory is written and the pre-flight
/// runs, and awaited by every service that creates a container. A run that stops before it
/// creates any container removes the network again if it made it (`undo`).
#[derive(Clone)]
pub struct Network {
    made: Shared<BoxFuture<'static, Result<bool, String>>>,
    names: containers::StackNames,
}

impl Network {
    /// Starts making the stack's network (an existing one is kept as it is).
    pub fn start(engine: &Engine, profile: &Profile) -> Network {
        let names = containers::stack_names(profile);
        let (engine, for_task) = (engine.clone(), names.clone());
        let task = tokio::spawn(async move { engine.make_network(&for_task).await.map_err(|e| format!("{e:#}")) });
        let made = async move { task.await.map_err(|e| format!("creating the network: {e}"))? }.boxed().shared();
        Network { made, names }
    }

    /// Waits until the network exists.
    async fn ready(&self) -> anyhow::Result<()> {
        self.made.clone().await.map(|_| ()).map_err(anyhow::Error::msg)
    }

    /// For a run that stops before creating a container: removes the network if this run made it.
    pub async fn undo(&self, engine: &Engine) {
        if let Ok(true) = self.made.clone().await {
            let _ = engine.remove_network(&self.names).await;
        }
    }
}

/// How `up` decides a service is usable.
#[derive(Debug, Clone)]
pub enum Readiness {
    /// Connect from the host as an application would: TLS verified, login, a real query.
    Probe(Box<Target>),
    /// Nothing is published, so only the stack network reaches the service: the container's
    /// healthcheck, which runs the same kind of query inside the container, passes.
    Healthcheck,
}

/// Runs `up`.
pub async fn run(global: &GlobalArgs, args: &UpArgs) -> anyhow::Result<ExitCode> {
    let output = super::output(global);
    if args.dry_run {
        let profile = crate::settings::resolve_profile(global)?.profile;
        let dir = StackDir::new(&global.dir);
        super::plan::show(
            &output,
            &profile,
            &dir,
            given(args.templates.as_deref(), args.accept.as_deref()),
            args.prune,
        )
        .await?;
        return Ok(ExitCode::SUCCESS);
    }
    // Bad input is refused before the directory is made (for its lock), and another stack's
    // objects before anything is written into it.
    let profile = crate::settings::resolve_profile(global)?.profile;
    let _lock = super::lock(global, "up").await?;
    let dir = StackDir::new(&global.dir);
    let engine = super::engine_unchecked(&dir, &profile, true).await?;
    // The network is made from here on, while the claim is checked and init writes the
    // directory (it only makes a network where none of that name exists, and removes it again
    // where up stops before any container).
    let network = Network::start(&engine, &profile);
    let checked = async {
        super::check_claim(&engine, &profile).await?;
        super::nodes::refuse_fewer_peers(&engine, &profile).await?;
        super::switchover::take_over(&output, &engine, &profile, &dir).await?;
        super::nodes::follow_sentinels(&output, &engine, &profile, &dir).await
    };
    if let Err(err) = checked.await {
        network.undo(&engine).await;
        return Err(err);
    }
    let brought = bring(global, args, &output, engine, profile, Some(network)).await?;
    output.json(&brought.document);
    brought.into_result()
}

/// `up` with the lock held and the claim checked: init where needed, then the stack brought to
/// what its directory declares.
pub async fn bring(
    global: &GlobalArgs,
    args: &UpArgs,
    output: &Output,
    engine: Engine,
    profile: Profile,
    network: Option<Network>,
) -> anyhow::Result<Brought> {
    let output = *output;
    // init speaks only in human form, and only when up does: up prints the one JSON document.
    let init_output = Output { format: Format::Human, quiet: output.quiet || output.format == Format::Json, ..output };
    // The network (where the caller has not started it), and the new containers' delivery
    // helpers, are made while init writes the directory and the pre-flight runs.
    let network = network.unwrap_or_else(|| Network::start(&engine, &profile));
    let early = EarlyHelpers::start(&engine, &profile);
    // The new containers' files go into their volumes while init writes them.
    let deliver = |planned: &[crate::stackdir::PlannedFile]| early.deliver(&engine, planned);
    let resolved = match init::ensure(
        global,
        given(args.templates.as_deref(), args.accept.as_deref()),
        args.force,
        true,
        &init_output,
        &deliver,
    )
    .await
    {
        Ok(resolved) => resolved,
        Err(err) => {
            early.undo(&engine).await;
            network.undo(&engine).await;
            return Err(err);
        }
    };
    let dir = StackDir::new(&global.dir);
    up(&output, engine, resolved.profile, dir, args, Some(network), Some(early)).await
}

/// What `up` did: its `hardstack.up/v1` document, and why the command fails when it does (a
/// service not usable, a check of verify failed): printed first, then failed.
pub struct Brought {
    pub document: serde_json::Value,
    /// Every service answered as an application would (verify may still have failed).
    pub usable: bool,
    pub failure: Option<String>,
}

impl Brought {
    /// Success, or the failure as the command's error (exit 1).
    pub fn into_result(self) -> anyhow::Result<ExitCode> {
        match self.failure {
            None => Ok(ExitCode::SUCCESS),
            Some(failure) => Err(anyhow::anyhow!(failure)),
        }
    }
}

/// The render inputs the command line gave.
fn given<'a>(templates: Option<&'a std::path::Path>, accept: Option<&'a [String]>) -> crate::bundle::Given<'a> {
    crate::bundle::Given { templates, accept }
}

/// Brings the stack of `dir` up with `engine`, acting for that directory (`engine_for`, whose
/// claim check the caller made), with the network the caller started making, or made here.
/// With the new containers' delivery helpers the caller started making (`bring`), where it
/// did. Prints lines for a person; the document is the caller's to print (or to hold
/// in its own).
pub async fn up(
    output: &Output,
    engine: Engine,
    profile: Profile,
    dir: StackDir,
    args: &UpArgs,
    network: Option<Network>,
    early: Option<EarlyHelpers>,
) -> anyhow::Result<Brought> {
    let network = network.unwrap_or_else(|| Network::start(&engine, &profile));
    let brought = up_with(output, engine.clone(), profile, dir, args, network.clone(), early.clone()).await;
    // A helper no delivery took (up stopped before its container): gone before the network is
    // looked at, since it is one of the stack's containers.
    if let Some(early) = early {
        early.undo(&engine).await;
    }
    match brought {
        Err(err) if !network_used(&engine, &network).await => {
            network.undo(&engine).await;
            Err(err)
        }
        brought => brought,
    }
}

/// Whether the stack has a container (then its network stays, whoever made it).
async fn network_used(engine: &Engine, network: &Network) -> bool {
    engine.stack_containers(&network.names.stack).await.map_or(true, |containers| !containers.is_empty())
}

async fn up_with(
    output: &Output,
    engine: Engine,
    profile: Profile,
    dir: StackDir,
    args: &UpArgs,
    network: Network,
    early: Option<EarlyHelpers>,
) -> anyhow::Result<Brought> {
    let timeout = args.timeout;
    let started = Instant::now();
    output.detail(format!("engine {} (API {})", engine.server_version, engine.api_version));
    let mut specs = containers::running_specs(&profile);
    // PostgreSQL's replicas come up once the primary is usable (their copy is made from it).
    let mut replicas = crate::replica::specs(&profile);
    // Redis's replicas and Sentinels beyond node 0 come up beside their service's node 0.
    let mut other_nodes = crate::sentinel::specs(&profile);
    // Qdrant's peers beyond node 0 join through it once it is usable.
    other_nodes.extend(crate::peers::specs(&profile));
    let names: Vec<&str> = specs.iter().chain(&replicas).chain(&other_nodes).map(|s| s.alias.as_str()).collect();
    let progress = Progress::new(output, &names);

    let images = async {
        let mut images = Vec::new();
        for spec in &specs {
            if !engine.has_image(&spec.image).await {
                progress.stage(spec.service.name(), &format!("pulling {}", spec.image));
            }
            let source = preflight::image(&engine, &profile, spec, true).await;
            images.push(source.map_err(|err| EnvironmentError(format!("{err:#}")))?);
        }
        anyhow::Ok(images)
    };
    let every: Vec<ContainerSpec> = specs.iter().chain(&replicas).chain(&other_nodes).cloned().collect();
    let checks = async { anyhow::Ok(preflight::for_up(&engine, &profile, &every).await) };
    let (checks, images) = tokio::try_join!(checks, images)?;
    stop_at_a_failure(&checks)?;
    for (spec, source) in specs.iter_mut().zip(images) {
        if let preflight::ImageSource::Local(image) = source {
            output.line(format!(
                "{}: image {} is missing and cannot be pulled; using {image}, built by images/build.sh",
                spec.service, spec.image
            ));
            spec.image = image.to_owned();
        }
    }
    if let Some(spec) = specs.iter().find(|s| s.service == Service::Postgres) {
        stop_at_a_failure(&[preflight::pgaudit(&engine, &profile, &spec.image).await])?;
        replicas.iter_mut().for_each(|replica| replica.image = spec.image.clone());
    }
    for spec in specs.iter().filter(|s| matches!(s.service, Service::Redis | Service::Qdrant)) {
        let nodes = other_nodes.iter_mut().filter(|node| node.service == spec.service);
        nodes.for_each(|node| node.image = spec.image.clone());
    }
    let names = containers::stack_names(&profile);

    // A stack whose data volumes this run creates holds no data yet: where backups are required,
    // its first backup and restore test are taken here, so a new stack ends its first `up`
    // verified (no stack can have a tested set before it exists).
    let first_backup = profile.backup.required && !args.no_verify && holds_no_data(&engine, &profile).await?;
    let store = crate::secrets::store::Store::open(&profile, &dir).await?;
    let redis_admin = match profile.runs(Service::Redis) {
        true => Some(store.current(&layout::login_secret(Service::Redis, layout::ADMIN)).await?.value),
        false => None,
    };
    let prune = args.prune;
    let stack = Arc::new(Stack {
        engine,
        dir,
        names,
        network,
        early,
        progress,
        timeout,
        profile: profile.clone(),
        prune,
        redis_admin,
        first_started: tokio::sync::watch::channel(!specs.iter().any(|s| s.service == Service::Postgres)).0,
    });
    // A service starts once what it connects to is usable (an exporter that finds its server
    // down at start exits); the others start at once, all in parallel.
    let (mut senders, receivers): (std::collections::BTreeMap<_, _>, std::collections::BTreeMap<_, _>) = specs
        .iter()
        .map(|spec| {
            let (sender, receiver) = tokio::sync::watch::channel(false);
            ((spec.service, sender), (spec.service, receiver))
        })
        .unzip();
    output.detail(format!(
        "pre-flight (ports, CPUs, images), the network started, the secrets read: {:.2}s",
        started.elapsed().as_secs_f64()
    ));
    let mut tasks = Vec::new();
    for spec in specs.into_iter().chain(replicas).chain(other_nodes) {
        let replica = crate::replica::standby_node(&profile, &spec);
        // A Redis replica, a Sentinel or a Qdrant peer beyond node 0: its healthcheck says it is
        // usable, once its node 0 is (the peers' cluster is settled once all are). Where Redis
        // is replicated, node 0's own healthcheck says so too:
        // the application's address is the recorded primary's, which may be the node that is
        // down (the Sentinels promote another; `settle` and verify follow).
        let other_node = crate::sentinel::node(&spec).or(crate::peers::node(&spec)).filter(|node| *node > 0);
        let replicated_redis = spec.service == Service::Redis && profile.redis.replicas > 0;
        let target = match (replica, other_node) {
            (Some(node), _) => probe::replica_target(&profile, &stack.dir, &store, node).await?,
            (None, Some(_)) => None,
            (None, None) if replicated_redis => None,
            (None, None) => probe::app_target(&profile, &stack.dir, &store, spec.service).await?,
        };
        let readiness = match target {
            Some(target) => Readiness::Probe(Box::new(target)),
            None => Readiness::Healthcheck,
        };
        // A replica waits for its primary; a service, for what it connects to.
        let upstreams = match (replica, other_node) {
            (Some(_), _) => &[Service::Postgres][..],
            (None, Some(_)) => match spec.service {
                Service::Qdrant => &[Service::Qdrant][..],
                _ => &[Service::Redis][..],
            },
            (None, None) => spec.service.upstreams(),
        };
        let extra = replica.is_some() || other_node.is_some();
        let waits: Vec<_> = upstreams
            .iter()
            .filter(|upstream| extra || **upstream != spec.service)
            .filter_map(|upstream| Some((*upstream, receivers.get(upstream)?.clone())))
            .collect();
        let done = if extra { None } else { senders.remove(&spec.service) };
        let stack = stack.clone();
        tasks.push(tokio::spawn(async move {
            let (service, alias) = (spec.service, spec.alias.clone());
            let progress = &stack.progress;
            let mut result = Ok(());
            for (upstream, mut ready) in waits {
                if ready.wait_for(|ready| *ready).await.is_err() {
                    result = Err(anyhow::anyhow!("not started: {upstream}, which it connects to, is not usable"));
                    break;
                }
            }
            let result = match result {
                Ok(()) => bring_up(&stack, &spec, readiness).await,
                Err(err) => Err(err),
            };
            if result.is_ok()
                && let Some(done) = done
            {
                let _ = done.send(true);
            }
            match &result {
                Ok((plan, timings)) => progress
                    .finish(&alias, &format!("usable ({}, {:.1}s)", plan.change(), timings.total().as_secs_f64())),
                Err(_) => progress.finish(&alias, "failed"),
            }
            (service, alias, result)
        }));
    }
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for task in tasks {
        let (service, alias, result) = task.await.context("a service task panicked")?;
        match result {
            Ok((plan, timings)) => {
                output.detail(format!("{alias}: {}", timings.describe(service, alias != service.name())));
                let mut entry = plan.report();
                entry["seconds"] = json!(timings.total().as_secs_f64());
                report.push(entry)
            }
            Err(err) => {
                report.push(json!({"service": alias, "error": format!("{err:#}")}));
                failures.push(format!("{alias}: {err:#}"));
            }
        }
    }
    super::nodes::remove_undeclared(output, &stack.engine, &profile).await?;
    stack.network.ready().await?;
    let usable_after = started.elapsed().as_secs_f64();
    if !failures.is_empty() {
        return Ok(Brought {
            document: json!({"schema": "hardstack.up/v1", "stack": profile.stack.name, "services": report, "usable": false, "seconds": usable_after}),
            usable: false,
            failure: Some(format!("the stack is not usable:\n{}", failures.join("\n"))),
        });
    }
    // Redis's replicas follow the primary the Sentinels name (an old primary come back too).
    let mut profile = profile;
    if profile.redis.replicas > 0 && profile.runs(Service::Redis) {
        let primary = super::nodes::settle_redis(output, &stack.engine, &profile, &stack.dir, &store).await?;
        profile.redis.primary = Some(primary);
    }
    // Qdrant's peers: one cluster, every peer knowing every other and one leader.
    converge::peers::settle(&stack.engine, &profile, &stack.dir, &store).await?;
    output.line(format!("stack {} is usable ({usable_after:.1}s)", profile.stack.name));
    // A rotation an earlier run left half done is finished before anything relies on a login.
    let resumed = super::rotate::finish_in_progress(output, &profile, &stack.dir, &stack.engine).await?;
    let first_backup = match first_backup {
        true => Some(take_first_backup(output, &profile, &stack).await?),
        false => None,
    };
    let verified = if args.no_verify { None } else { Some(verify(output, &profile, &stack).await?) };
    let (verify_json, failed) = match &verified {
        None => (json!(null), Vec::new()),
        Some((vantage, checks)) => (
            {
                let mut document = report::to_json("verify", &profile.stack.name, checks);
                document["vantage"] = json!(vantage);
                document
            },
            checks.iter().filter(|c| c.verdict == report::Verdict::Fail).map(|c| c.id.as_str()).collect(),
        ),
    };
    let document = json!({
        "schema": "hardstack.up/v1",
        "stack": profile.stack.name, "services": report, "usable": true, "seconds": usable_after,
        "verify": verify_json, "verified_seconds": started.elapsed().as_secs_f64(), "resumed_rotations": resumed,
        "first_backup": first_backup,
    });
    let failure = (!failed.is_empty()).then(|| {
        format!(
            "the stack is up, but {} of verify's checks failed: {}; `hardstack verify -v` shows the evidence",
            failed.len(),
            failed.join(", ")
        )
    });
    Ok(Brought { document, usable: true, failure })
}

/// `verify`'s checks once the stack is usable, from where they reach the services (inside the
/// stack network when it publishes nothing): the summary, and the failed checks with their
/// evidence.
async fn verify(output: &Output, profile: &Profile, stack: &Stack) -> anyhow::Result<(verify::Vantage, Vec<Check>)> {
    let started = Instant::now();
    let vantage = verify::Vantage::reaching(profile);
    let context = verify::Context::gather(profile.clone(), stack.dir.clone(), &stack.engine, vantage).await?;
    let checks = verify::verify(&context, &stack.engine).await?;
    if report::any_failed(&checks) {
        output.table(&report::failures_table(&checks));
    } else {
        let from = if vantage == verify::Vantage::Network { ", from inside the stack network" } else { "" };
        output.line(format!(
            "verified: {} ({:.0} ms{from})",
            report::summary(&checks),
            started.elapsed().as_secs_f64() * 1000.0
        ));
    }
    Ok((vantage, checks))
}

/// Whether the stack has data volumes and none of them exists yet (this run creates them all).
async fn holds_no_data(engine: &Engine, profile: &Profile) -> anyhow::Result<bool> {
    let data = containers::data_volumes(profile);
    let existing = engine.stack_volumes(&profile.stack.name).await?;
    Ok(!data.is_empty() && data.iter().all(|volume| !existing.contains(volume)))
}

/// The first backup of a new stack and its restore test, as `backup` and `backup --test` take
/// them (`up` holds the lock): both documents. A failed restore test is reported by verify's
/// `checklist.backups`; a backup that cannot be taken ends `up`.
async fn take_first_backup(output: &Output, profile: &Profile, stack: &Stack) -> anyhow::Result<serde_json::Value> {
    output.line("a new stack with backup.required: taking its first backup and its restore test");
    let taken = super::backup::take(output, &stack.engine, profile, &stack.dir)
        .await
        .context("the stack is usable, but its first backup failed; `hardstack backup` takes it again")?;
    // Boxed: the restore test brings up a throwaway stack through `up`.
    let (_, tested) = Box::pin(super::backup::test(output, &stack.engine, profile, &stack.dir))
        .await
        .context("the stack is usable, but the restore test of its first backup failed to run; `hardstack backup --test` runs it again")?;
    Ok(json!({ "backup": taken, "restore_test": tested }))
}

/// The first failed pre-flight check as an environment failure (exit 2): its reason says what
/// to do.
fn stop_at_a_failure(checks: &[Check]) -> anyhow::Result<()> {
    match checks.iter().find(|c| c.verdict == report::Verdict::Fail) {
        Some(check) => Err(EnvironmentError(check.reason.clone()).into()),
        None => Ok(()),
    }
}

mod early;
mod service;

pub use early::{EarlyHelpers, Taken};
use service::{Stack, bring_up};
