//! The only writer to the terminal: human lines, JSON documents, and (later) progress bars.
//! Respects `--quiet` and `NO_COLOR`. Secrets reach stdout only through `secret_stdout`, which
//! `env` alone calls.

use std::io::Write as _;

/// Human lines or one JSON document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

/// Where a command's messages go.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub format: Format,
    pub quiet: bool,
    pub verbose: bool,
}

impl Output {
    /// A line for a person; nothing with --quiet or -o json.
    pub fn line(&self, text: impl AsRef<str>) {
        if !self.quiet && self.format == Format::Human {
            print_line(text.as_ref());
        }
    }

    /// A multi-line table for a person; printed even with --quiet (it is the result).
    pub fn table(&self, text: &str) {
        if self.format == Format::Human {
            print!("{text}");
        }
    }

    /// A screen for a person that replaces the one before (`status --watch`): the terminal is
    /// cleared first.
    pub fn redraw(&self, text: &str) {
        if self.format == Format::Human {
            print!("\x1b[2J\x1b[H{text}");
            let _ = std::io::Write::flush(&mut std::io::stdout());
        }
    }

    /// An error that does not end the command (a daemon's failed pass), on stderr.
    pub fn error(&self, text: impl AsRef<str>) {
        let _ = writeln!(std::io::stderr().lock(), "error: {}", text.as_ref());
    }

    /// A detail line shown with --verbose.
    pub fn detail(&self, text: impl AsRef<str>) {
        if self.verbose {
            self.line(text);
        }
    }

    /// A JSON document on stdout when -o json.
    pub fn json(&self, value: &serde_json::Value) {
        if self.format == Format::Json {
            print_line(&serde_json::to_string_pretty(value).expect("JSON values serialize"));
        }
    }
}

/// One line on stdout. A closed pipe (`hardstack status | head`) is not an error worth a panic.
fn print_line(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// Writes bytes to stdout as they are (a completion script).
pub fn raw_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes)?;
    stdout.flush()?;
    Ok(())
}

/// Writes text that contains secrets to stdout, because the user asked for exactly that.
pub fn secret_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Per-service progress: a spinner line per service on a terminal, plain lines otherwise.
pub struct Progress {
    bars: Option<(indicatif::MultiProgress, Vec<(String, indicatif::ProgressBar)>)>,
    quiet: bool,
}

impl Progress {
    /// One line per name; bars only when stdout is a terminal and the output is for a person.
    pub fn new(output: &Output, names: &[&str]) -> Progress {
        use std::io::IsTerminal as _;
        let quiet = output.quiet || output.format == Format::Json;
        let bars = (!quiet && std::io::stdout().is_terminal()).then(|| {
            let multi = indicatif::MultiProgress::new();
            let style =
                indicatif::ProgressStyle::with_template("{spinner} {prefix:<9} {msg}").expect("a valid template");
            let width = names.iter().map(|n| n.len()).max().unwrap_or(0);
            let bars = names
                .iter()
                .map(|name| {
                    let bar = multi.add(indicatif::ProgressBar::new_spinner());
                    bar.set_style(style.clone());
                    bar.set_prefix(format!("{name:<width$}"));
                    bar.enable_steady_tick(std::time::Duration::from_millis(120));
                    (name.to_string(), bar)
                })
                .collect();
            (multi, bars)
        });
        Progress { bars, quiet }
    }

    /// The service reached a stage (`pulling`, `creating`, `starting`, `waiting`, `usable`).
    pub fn stage(&self, name: &str, stage: &str) {
        self.show(name, stage, |bar, message| bar.set_message(message));
    }

    /// The service is done; its line keeps the final message.
    pub fn finish(&self, name: &str, message: &str) {
        self.show(name, message, |bar, message| bar.finish_with_message(message));
    }

    /// A message on the service's bar, or as a plain line when there are no bars.
    fn show(&self, name: &str, message: &str, on_bar: impl Fn(&indicatif::ProgressBar, String)) {
        match &self.bars {
            Some((_, bars)) => {
                if let Some((_, bar)) = bars.iter().find(|(n, _)| n == name) {
                    on_bar(bar, message.to_owned());
                }
            }
            None if !self.quiet => print_line(&format!("{name}: {message}")),
            None => {}
        }
    }
}

/// The process's own streams, for a client it attaches (`connect`).
pub fn streams() -> (tokio::io::Stdin, tokio::io::Stdout, tokio::io::Stderr) {
    (tokio::io::stdin(), tokio::io::stdout(), tokio::io::stderr())
}

/// The terminal's size (columns, rows) when a person types at one: standard input and output
/// are both terminals.
pub fn terminal_size() -> Option<(u16, u16)> {
    use std::io::IsTerminal as _;
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return None;
    }
    let size = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
    Some((size.ws_col, size.ws_row))
}

/// The terminal in raw mode while it lives (keys go to a container's terminal as they are
/// typed, Ctrl-C included); restored when dropped.
pub struct RawTerminal {
    saved: rustix::termios::Termios,
}

impl RawTerminal {
    /// Raw mode on standard input's terminal.
    pub fn enable() -> anyhow::Result<RawTerminal> {
        use rustix::termios::{OptionalActions, tcgetattr, tcsetattr};
        let saved = tcgetattr(std::io::stdin()).map_err(|e| anyhow::anyhow!("reading the terminal's mode: {e}"))?;
        let mut raw = saved.clone();
        raw.make_raw();
        tcsetattr(std::io::stdin(), OptionalActions::Now, &raw)
            .map_err(|e| anyhow::anyhow!("setting the terminal's mode: {e}"))?;
        Ok(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(std::io::stdin(), rustix::termios::OptionalActions::Now, &self.saved);
    }
}
