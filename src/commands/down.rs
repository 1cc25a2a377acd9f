//! `hardstack down`: remove this stack's containers and network, and with `--volumes` its
//! volumes. Only objects carrying the stack's label are touched.

use std::process::ExitCode;

use serde_json::json;

use crate::cli::{DownArgs, GlobalArgs};
use crate::containers;
use crate::runtime;
use crate::settings;

/// Runs `down`.
pub async fn run(global: &GlobalArgs, args: &DownArgs) -> anyhow::Result<ExitCode> {
    let output = super::output(global);
    let profile = settings::stack_profile(global)?.profile;
    let engine = runtime::connect().await?;
    let names = containers::stack_names(&profile);
    let removed = engine.stack_containers(&names.stack).await?;
    let removals = removed.iter().map(|name| engine.remove(name));
    for result in futures_util::future::join_all(removals).await {
        result?;
    }
    let network = engine.remove_network(&names).await?;
    let mut volumes = Vec::new();
    if args.volumes {
        volumes = engine.stack_volumes(&names.stack).await?;
        for volume in &volumes {
            engine.remove_volume(volume).await?;
        }
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
