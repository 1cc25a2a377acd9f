//! `hardstack verify`: every check against the running stack, concurrently; the table (or
//! JSON), then the exit code: 1 when a check failed, 2 when the stack cannot be reached.

use std::process::ExitCode;
use std::time::Instant;

use crate::cli::GlobalArgs;
use crate::report;
use crate::runtime;
use crate::settings;
use crate::stackdir::StackDir;
use crate::verify::{self, Context};

/// Runs `verify`.
pub async fn run(global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let output = super::output(global);
    let profile = settings::stack_profile(global)?.profile;
    let started = Instant::now();
    let engine = runtime::connect().await?;
    let stack = profile.stack.name.clone();
    let context = Context::gather(profile, StackDir::new(&global.dir), engine).await?;
    let checks = verify::verify(&context).await;
    output.json(&report::to_json("verify", &stack, &checks));
    output.table(&report::to_table(&checks, output.verbose));
    output.line(format!("verify took {:.0} ms", started.elapsed().as_secs_f64() * 1000.0));
    Ok(if report::any_failed(&checks) { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
