//! `hardstack profile schema | show [NAME] [--explain]`: the profile made discoverable. The
//! schema is generated from the serde model; show prints the effective profile, explained from
//! the same schema.

use std::process::ExitCode;

use serde_json::json;

use crate::cli::{GlobalArgs, ProfileArgs, ProfileCommand};
use crate::output::{self, Format};
use crate::profile::{explain, schema};
use crate::settings;

/// Runs `profile`.
pub async fn run(global: &GlobalArgs, args: &ProfileArgs) -> anyhow::Result<ExitCode> {
    let output = super::output(global);
    match &args.command {
        ProfileCommand::Schema => {
            let schema = schema::schema();
            match output.format {
                Format::Json => output.json(schema),
                Format::Human => {
                    output::raw_stdout(format!("{}\n", serde_json::to_string_pretty(&schema)?).as_bytes())?
                }
            }
        }
        ProfileCommand::Show(show) => {
            let resolved = settings::resolve_named(global, show.name.as_deref())?;
            let (explained, keys) = explain::explain(&resolved.profile)?;
            output.json(&json!({
                "schema": "hardstack.profile/v1",
                "name": resolved.profile.name,
                "origin": resolved.origin,
                "profile": resolved.profile,
                "keys": if show.explain { json!(keys) } else { json!(null) },
            }));
            if output.format == Format::Human {
                let text = match show.explain {
                    true => explained,
                    false => toml::to_string(&resolved.profile)?,
                };
                output::raw_stdout(
                    format!("# effective profile {} (from {})\n{text}", resolved.profile.name, resolved.origin)
                        .as_bytes(),
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
