//! The hardstack binary: parse, run, print the error chain, map to an exit code.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = hardstack::cli::Cli::parse();
    let json = cli.global.output == hardstack::cli::OutputFormat::Json;
    match hardstack::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // Exit 2 when the environment failed (engine, image, port), 1 for wrong input or a
            // failed check.
            let environment = err.chain().any(|cause| cause.is::<hardstack::error::EnvironmentError>());
            let code = if environment { 2 } else { 1 };
            if json {
                let document = serde_json::json!({
                    "schema": "hardstack.error/v1",
                    "error": format!("{err:#}"),
                    "exit_code": code,
                    "meaning": if environment { "the environment failed (engine, image, port, store)" } else { "wrong input, or a check failed" },
                });
                eprintln!("{}", serde_json::to_string_pretty(&document).expect("JSON values serialize"));
            } else {
                eprintln!("error: {err:#}");
            }
            ExitCode::from(code)
        }
    }
}
