//! `hardstack down`: remove this stack's containers and network, and with `--volumes` its
//! volumes. Only objects carrying the stack's label are touched.

use std::process::ExitCode;

use serde_json::json;

use crate::cli::{DownArgs, GlobalArgs};
use crate::containers;
use crate::settings;

/// Runs `down`.
pub async fn run(global: &GlobalArgs, args: &DownArgs) -> anyhow::Result<ExitCode> {
    let output = super::output(global);
    let profile = settings::stack_profile(global)?.profile;
    let _lock = super::lock(global, "down").await?;
    let engine = super::engine_for(&crate::stackdir::StackDir::new(&global.dir), &profile, true).await?;
    let names = containers::stack_names(&profile);
    let crate::runtime::Removed { containers: removed, network, volumes } =
        engine.remove_stack(&names, args.volumes).await?;
    // Without its data no node is anyone's primary: the next `up` makes node 0 again.
    if args.volumes {
        crate::topology::forget(&crate::stackdir::StackDir::new(&global.dir))?;
    }
    output.json(&json!({"schema": "hardstack.down/v1", "stack": names.stack, "containers": removed, "network": network, "volumes": volumes}));
    output.line(format!(
        "stack {}: removed {} container(s){}{}",
        names.stack,
        removed.len(),
        if network { ", the network" } else { "" },
        if args.volumes { format!(", {} volume(s)", volumes.len()) } else { String::new() }
    ));
    Ok(ExitCode::SUCCESS)
}
