//! The hardstack binary: parse, run, print the error chain, map to an exit code.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = hardstack::cli::Cli::parse();
    match hardstack::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            // Exit 1: the input is wrong or a check failed. Environment failures (Docker, AWS)
            // carry their own code once those commands exist.
            ExitCode::from(1)
        }
    }
}
