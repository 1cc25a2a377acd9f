//! The only writer to the terminal: human lines, JSON documents, and (later) progress bars.
//! Respects `--quiet` and `NO_COLOR`. Secrets reach stdout only through `secret_stdout`, which
//! `env` alone calls.

use std::io::Write as _;

use crate::cli::{GlobalArgs, OutputFormat};

/// Where a command's messages go.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub format: OutputFormat,
    pub quiet: bool,
    pub verbose: bool,
}

impl Output {
    pub fn new(global: &GlobalArgs) -> Output {
        Output { format: global.output, quiet: global.quiet, verbose: global.verbose }
    }

    /// A line for a person; nothing with --quiet or -o json.
    pub fn line(&self, text: impl AsRef<str>) {
        if !self.quiet && self.format == OutputFormat::Human {
            println!("{}", text.as_ref());
        }
    }

    /// A detail line shown with --verbose.
    pub fn detail(&self, text: impl AsRef<str>) {
        if self.verbose {
            self.line(text);
        }
    }

    /// A JSON document on stdout when -o json.
    pub fn json(&self, value: &serde_json::Value) {
        if self.format == OutputFormat::Json {
            println!("{}", serde_json::to_string_pretty(value).expect("JSON values serialize"));
        }
    }
}

/// Writes text that contains secrets to stdout, because the user asked for exactly that.
pub fn secret_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}
