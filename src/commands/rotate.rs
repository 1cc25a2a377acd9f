//! `hardstack rotate`: renew what is due (older than the profile's maximum age, expiring
//! certificates, and any rotation left half done), verify the stack after each rotation, and
//! re-render the stack directory from the store. `--daemon` repeats on a schedule until SIGTERM,
//! which lets the current step finish first.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use serde_json::json;

use crate::cli::{GlobalArgs, RotateArgs, UntilStep};
use crate::output::Output;
use crate::profile::Profile;
use crate::report;
use crate::rotate::{self, Outcome};
use crate::runtime;
use crate::secrets::store::Store;
use crate::settings;
use crate::stackdir::StackDir;

/// Runs `rotate`.
pub async fn run(global: &GlobalArgs, args: &RotateArgs) -> anyhow::Result<ExitCode> {
    let output = super::output(global);
    let profile = settings::stack_profile(global)?.profile;
    check_only(&profile, &args.only)?;
    let stop = Arc::new(AtomicBool::new(false));
    // Wakes the daemon's wait between passes (a permit is kept if it is not waiting yet).
    let signalled = Arc::new(tokio::sync::Notify::new());
    {
        let (stop, signalled) = (stop.clone(), signalled.clone());
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            stop.store(true, Ordering::SeqCst);
            signalled.notify_one();
        });
    }
    let dir = StackDir::new(&global.dir);
    let every = args.every.unwrap_or(rotate::DEFAULT_EVERY);
    loop {
        // The lock is held while a pass works, not while the daemon sleeps.
        let pass = async {
            let _lock = super::lock(global, "rotate").await?;
            let engine = super::engine_for(&dir, &profile, true).await?;
            // What the servers were given before this pass: the files that changed only because
            // of it are recorded as delivered after the re-render.
            let before = Store::open(&profile, &dir).await?.versions(&profile).await?;
            let failed = pass(&output, &profile, &dir, &engine, args, &stop).await?;
            rerender(&engine, &profile, &dir, &before).await?;
            anyhow::Ok(failed)
        };
        let failed = match pass.await {
            Ok(failed) => failed,
            // A daemon outlives a failed pass (an engine restart, a network blip): the rotation
            // stopped at a resumable step, and the next pass resumes it.
            Err(err) if args.daemon => {
                output.error(format!("{err:#}; retrying at the next pass"));
                false
            }
            Err(err) => return Err(err),
        };
        if failed {
            return Ok(ExitCode::from(1));
        }
        if !args.daemon || stop.load(Ordering::SeqCst) {
            return Ok(ExitCode::SUCCESS);
        }
        output.line(format!("next pass in {}", humantime::format_duration(every)));
        let stopped = tokio::select! {
            () = tokio::time::sleep(every) => false,
            () = signalled.notified() => true,
        };
        if stopped {
            output.line("stopped by signal");
            return Ok(ExitCode::SUCCESS);
        }
    }
}

/// After rotations: the stack directory follows the store (ACL file and init SQL with the
/// current credentials, so a recreated container starts with them), rendered with the stack's
/// recorded inputs, and the files that changed only because of the rotations are recorded as
/// delivered.
async fn rerender(
    engine: &runtime::Engine,
    profile: &Profile,
    dir: &StackDir,
    before: &crate::secrets::store::Versions,
) -> anyhow::Result<()> {
    crate::bundle::write(profile, dir, crate::bundle::Given::default(), false, true)
        .await
        .context("re-rendering the stack directory after rotation")?;
    rotate::deliver_rotated_files(engine, profile, dir, before)
        .await
        .context("delivering the files rotation re-rendered")
}

/// Finishes every rotation a run left in progress (interrupted, killed, or stopped by
/// `--until`), from the step its record says, whatever the profile's rotation policy: what
/// `up` does before it verifies. Returns the credentials finished.
pub async fn finish_in_progress(
    output: &Output,
    profile: &Profile,
    dir: &StackDir,
    engine: &runtime::Engine,
) -> anyhow::Result<Vec<String>> {
    let store = Store::open(profile, dir).await?;
    let stop = AtomicBool::new(false);
    let context = rotate::Context { profile, dir, store: &store, engine, stop: &stop };
    let pending = in_progress(&context).await?;
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let before = store.versions(profile).await?;
    let finished = finish(output, &context, pending).await?;
    rerender(engine, profile, dir, &before).await?;
    Ok(finished.into_iter().map(|(name, _)| name).collect())
}

/// The credentials whose rotation a run left in progress.
async fn in_progress(context: &rotate::Context<'_>) -> anyhow::Result<Vec<rotate::Credential>> {
    let mut pending = Vec::new();
    for credential in rotate::credentials(context.profile) {
        if rotate::in_progress(context, &credential).await? {
            pending.push(credential);
        }
    }
    Ok(pending)
}

/// Runs each of these rotations to its end (SIGTERM stops between steps).
async fn finish(
    output: &Output,
    context: &rotate::Context<'_>,
    pending: Vec<rotate::Credential>,
) -> anyhow::Result<Vec<(String, Outcome)>> {
    let mut finished = Vec::new();
    for credential in pending {
        let name = credential.name();
        let outcome = rotate::rotate(context, &credential, None).await.with_context(|| {
            format!("finishing the rotation of {name} left in progress; it stopped at a resumable step: run `hardstack rotate` again")
        })?;
        match &outcome {
            Outcome::Rotated { millis } => {
                output.line(format!("{name}: finished the rotation left in progress ({millis} ms)"))
            }
            Outcome::Stopped { after } => {
                output.line(format!("{name}: stopped after {after:?}; run rotate again to finish").to_lowercase())
            }
            Outcome::NotDue { .. } => {}
        }
        finished.push((name, outcome));
    }
    Ok(finished)
}

/// Refuses an `--only` that names no credential of the stack, listing the names there are.
fn check_only(profile: &Profile, only: &[String]) -> anyhow::Result<()> {
    let names: Vec<String> = rotate::credentials(profile).iter().map(rotate::Credential::name).collect();
    for given in only {
        if !names.iter().any(|name| name == given || name.starts_with(&format!("{given}/"))) {
            return Err(crate::error::UsageError(format!(
                "--only {given} names no credential of this stack; its credentials: {}",
                names.join(", ")
            ))
            .into());
        }
    }
    Ok(())
}

/// The protocol step `--until` names.
fn step(until: UntilStep) -> rotate::Step {
    match until {
        UntilStep::Create => rotate::Step::Create,
        UntilStep::Set => rotate::Step::Set,
        UntilStep::Test => rotate::Step::Test,
    }
}

/// One pass: first every rotation left in progress is finished, then (when the profile's
/// rotation is on, or with `--force`) every credential that is due is rotated; `true` when
/// verify failed after a rotation.
async fn pass(
    output: &Output,
    profile: &Profile,
    dir: &StackDir,
    engine: &runtime::Engine,
    args: &RotateArgs,
    stop: &AtomicBool,
) -> anyhow::Result<bool> {
    let store = Store::open(profile, dir).await?;
    let context = rotate::Context { profile, dir, store: &store, engine, stop };
    let mut report = Vec::new();
    let mut verify_failed = false;
    let finished = finish(output, &context, in_progress(&context).await?).await?;
    let resumed = !finished.is_empty();
    for (name, outcome) in finished {
        report.push(json!({"credential": name, "outcome": outcome, "resumed": true}));
    }
    if resumed && !args.no_verify && !stop.load(Ordering::SeqCst) {
        verify_failed = !verified(output, profile, dir, engine, "finishing the rotations left in progress").await?;
    }
    let off = !profile.rotation.enabled && !args.force;
    if off {
        output.line(format!(
            "rotation is off in profile {} (rotation.enabled = false); --force rotates anyway",
            profile.name
        ));
    }
    for credential in rotate::credentials(profile) {
        if off || verify_failed || stop.load(Ordering::SeqCst) {
            break;
        }
        let name = credential.name();
        if !args.only.is_empty() && !args.only.iter().any(|o| *o == name || name.starts_with(&format!("{o}/"))) {
            continue;
        }
        let outcome = match rotate::due(&context, &credential, args.force).await? {
            Some(age_days) => Outcome::NotDue { age_days },
            None => rotate::rotate(&context, &credential, args.until.map(step)).await.with_context(|| {
                format!("rotating {name}; the rotation stopped at a resumable step: run `hardstack rotate` again")
            })?,
        };
        match &outcome {
            Outcome::NotDue { age_days } => output.detail(format!("{name}: not due ({age_days} days)")),
            Outcome::Rotated { millis } => output.line(format!("{name}: rotated ({millis} ms)")),
            Outcome::Stopped { after } => {
                output.line(format!("{name}: stopped after {after:?}; run rotate again to finish").to_lowercase())
            }
        }
        let rotated = matches!(outcome, Outcome::Rotated { .. });
        report.push(json!({"credential": name, "outcome": outcome}));
        if rotated && !args.no_verify {
            verify_failed = !verified(output, profile, dir, engine, &format!("rotating {name}")).await?;
        }
    }
    let expired = if verify_failed || off { Vec::new() } else { rotate::expire_previous(&context).await? };
    for name in &expired {
        output.line(format!("{name}: previous password removed after the grace period"));
    }
    output.json(&json!({"schema": "hardstack.rotate/v1", "stack": profile.stack.name, "rotation_enabled": !off, "credentials": report, "expired_previous": expired, "verify_failed": verify_failed}));
    Ok(verify_failed)
}

/// Runs verify after `what`; says which checks failed when some did.
async fn verified(
    output: &Output,
    profile: &Profile,
    dir: &StackDir,
    engine: &runtime::Engine,
    what: &str,
) -> anyhow::Result<bool> {
    let checks = verify_stack(profile, dir, engine).await?;
    if report::any_failed(&checks) {
        let failed: Vec<&str> =
            checks.iter().filter(|c| c.verdict == report::Verdict::Fail).map(|c| c.id.as_str()).collect();
        output.line(format!("verify failed after {what}: {}; stopping here", failed.join(", ")));
        for check in checks.iter().filter(|c| c.verdict == report::Verdict::Fail) {
            output.line(format!("  {}: {} ({})", check.id, check.reason, check.evidence));
        }
        return Ok(false);
    }
    Ok(true)
}

async fn verify_stack(
    profile: &Profile,
    dir: &StackDir,
    engine: &runtime::Engine,
) -> anyhow::Result<Vec<report::Check>> {
    let vantage = crate::verify::Vantage::reaching(profile);
    let context = crate::verify::Context::gather(profile.clone(), dir.clone(), engine, vantage).await?;
    crate::verify::verify(&context, engine).await
}
