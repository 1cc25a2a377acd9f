//! `hardstack verify`: every check against the running stack, concurrently, from the host or
//! from inside the stack network; the table (or JSON), then the exit code: 1 when a check
//! failed, 2 when the stack cannot be reached.

use std::process::ExitCode;
use std::time::Instant;

use crate::cli::{GlobalArgs, VantageArg, VerifyArgs};
use crate::report;
use crate::settings;
use crate::stackdir::StackDir;
use crate::verify::{self, Context, Vantage};

/// Runs `verify`.
pub async fn run(global: &GlobalArgs, args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let output = super::output(global);
    let profile = settings::stack_profile(global)?.profile;
    let stack = profile.stack.name.clone();
    let dir = StackDir::new(&global.dir);
    if args.inside {
        // The short-lived container's part: the server checks, as JSON, whatever they found.
        let context = Context::gather_inside(profile, dir).await?;
        let checks = verify::server_checks(&context).await;
        output.json(&report::to_json("verify", &stack, &checks));
        return Ok(ExitCode::SUCCESS);
    }
    let started = Instant::now();
    let vantage = match args.from {
        Some(VantageArg::Host) => Vantage::Host,
        Some(VantageArg::Network) => Vantage::Network,
        None => Vantage::reaching(&profile),
    };
    // What needs no engine first: the longest check starts while the engine is reached.
    let mut context = Context::prepare(profile.clone(), dir.clone(), vantage).await?;
    let engine = super::engine_for(&dir, &profile, false).await?;
    context.attach(&engine).await?;
    let checks = verify::verify(&context, &engine).await?;
    let inputs = crate::inputs::Inputs::read(&context.dir)?;
    let mut document = report::to_json("verify", &stack, &checks);
    document["vantage"] = serde_json::json!(vantage);
    document["accepted_audit_rules"] = serde_json::json!(inputs.accepted);
    output.json(&document);
    output.table(&report::to_table(&checks, output.verbose));
    super::warn_accepted(&output, &inputs);
    output.line(format!(
        "verify took {:.0} ms, from {}",
        started.elapsed().as_secs_f64() * 1000.0,
        match vantage {
            Vantage::Host => "the host",
            Vantage::Network => "inside the stack network",
        }
    ));
    Ok(if report::any_failed(&checks) { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
