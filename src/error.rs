//! Errors a caller branches on, and the exit codes they map to. `main` maps an
//! [`EnvironmentError`] anywhere in a chain to [`ENVIRONMENT`], a [`UsageError`] (or clap's own
//! parse errors) to [`USAGE`]; everything else that fails is [`FAILED`].

/// Everything went as asked.
pub const SUCCESS: u8 = 0;
/// A check failed (verify, audit, doctor, a restore test), or the input was wrong (a profile's
/// value, a stack directory's file).
pub const FAILED: u8 = 1;
/// The environment failed: the engine, an image, a port, the secret store, a stack that cannot
/// be reached from here.
pub const ENVIRONMENT: u8 = 2;
/// The command line itself is wrong: an unknown command or flag, a value that does not parse,
/// flags that do not go together (sysexits' `EX_USAGE`).
pub const USAGE: u8 = 64;

/// The exit codes as `--help` and the docs show them.
pub const EXIT_CODES: &str = "\
Exit codes:
  0   success
  1   a check failed, or bad input (a profile value, a stack directory's file)
  2   the environment failed (engine, image, port, secret store, an unreachable stack)
  64  usage: an unknown command or flag, a value that does not parse, flags that do not go together";

/// The environment failed (engine unreachable, image missing, port taken, AWS unreachable, a
/// stack that cannot be reached from here): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EnvironmentError(pub String);

/// The command line asks for something no run can do (`status --watch -o json`): exit code 64.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The exit code of a failed run, and what it means.
pub fn exit_code(err: &anyhow::Error) -> (u8, &'static str) {
    if err.chain().any(|cause| cause.is::<UsageError>()) {
        (USAGE, "usage: the command line is wrong")
    } else if err.chain().any(|cause| cause.is::<EnvironmentError>()) {
        (ENVIRONMENT, "the environment failed (engine, image, port, store)")
    } else {
        (FAILED, "wrong input, or a check failed")
    }
}
