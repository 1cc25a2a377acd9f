//! The hardstack binary: parse, run, print the error chain, map to an exit code.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = hardstack::cli::Cli::parse();
    match hardstack::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            // Exit 2 when the environment failed (engine, image, port), 1 for wrong input or a
            // failed check.
            let environment = err.chain().any(|cause| cause.is::<hardstack::error::EnvironmentError>());
            ExitCode::from(if environment { 2 } else { 1 })
        }
    }
}
