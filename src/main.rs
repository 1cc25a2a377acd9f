//! The hardstack binary: parse, run, print the error chain, map to an exit code
//! (`hardstack::error::EXIT_CODES`).

use std::process::ExitCode;

use hardstack::error;

fn main() -> ExitCode {
    let cli = match hardstack::cli::parse(error::EXIT_CODES) {
        Ok(cli) => cli,
        // --help and --version print to stdout and succeed.
        Err(err) if !err.use_stderr() => err.exit(),
        Err(err) => {
            if asks_for_json(std::env::args()) {
                let message = err.to_string();
                let message = message.strip_prefix("error: ").unwrap_or(&message);
                print_json_error(message, error::USAGE, "usage: the command line is wrong");
            } else {
                let _ = err.print();
            }
            return ExitCode::from(error::USAGE);
        }
    };
    let json = cli.global.output == hardstack::cli::OutputFormat::Json;
    match hardstack::run(cli) {
        Ok(code) => code,
        Err(err) => {
            let (code, meaning) = error::exit_code(&err);
            if json {
                print_json_error(&format!("{err:#}"), code, meaning);
            } else {
                eprintln!("error: {err:#}");
            }
            ExitCode::from(code)
        }
    }
}

/// Whether a command line that did not parse asks for JSON (up to `--`, after which the
/// arguments are a client's).
fn asks_for_json(args: impl Iterator<Item = String>) -> bool {
    let args: Vec<String> = args.take_while(|arg| arg != "--").collect();
    args.iter().enumerate().any(|(i, arg)| {
        matches!(arg.as_str(), "-ojson" | "--output=json" | "-o=json")
            || (matches!(arg.as_str(), "-o" | "--output") && args.get(i + 1).is_some_and(|v| v == "json"))
    })
}

/// One JSON document on stderr.
fn print_json_error(message: &str, code: u8, meaning: &str) {
    let document = serde_json::json!({
        "schema": "hardstack.error/v1",
        "error": message.trim_end(),
        "exit_code": code,
        "meaning": meaning,
    });
    eprintln!("{}", serde_json::to_string_pretty(&document).expect("JSON values serialize"));
}
