//! One file per subcommand: the control flow. Commands call the layers below and print through
//! `output`; nothing below calls back up here.

pub mod audit;
pub mod backup;
pub mod connect;
pub mod doctor;
pub mod down;
pub mod env;
pub mod init;
mod nodes;
pub mod plan;
pub mod profile;
pub mod restore;
pub mod rotate;
pub mod status;
pub mod switchover;
pub mod up;
pub mod verify;

use crate::cli::{GlobalArgs, OutputFormat};
use crate::output::{Format, Output};

/// The engine, acting for this stack directory's identity (recorded first when `record`, by a
/// command that holds the lock), once no container, volume or network of the stack's names
/// turned out to be another directory's.
pub async fn engine_for(
    dir: &crate::stackdir::StackDir,
    profile: &crate::profile::Profile,
    record: bool,
) -> anyhow::Result<crate::runtime::Engine> {
    let engine = engine_unchecked(dir, profile, record).await?;
    check_claim(&engine, profile).await?;
    Ok(engine)
}

/// [`engine_for`] before the claim check, for a caller that checks it itself ([`check_claim`])
/// and undoes what it made meanwhile where the check fails.
pub async fn engine_unchecked(
    dir: &crate::stackdir::StackDir,
    profile: &crate::profile::Profile,
    record: bool,
) -> anyhow::Result<crate::runtime::Engine> {
    let identity = if record { crate::identity::Identity::ensure(dir)? } else { crate::identity::Identity::of(dir)? };
    Ok(crate::runtime::connect().await?.acting_for(identity.owner(&profile.stack.name, dir)))
}

/// Refuses when a container, volume or the network of the stack's names is another
/// directory's.
pub async fn check_claim(engine: &crate::runtime::Engine, profile: &crate::profile::Profile) -> anyhow::Result<()> {
    let mut specs = crate::containers::running_specs(profile);
    specs.extend(crate::replica::specs(profile));
    engine.check_claim(&crate::containers::stack_names(profile), &specs).await
}

/// Says, as a warning, which audit rules the stack directory accepts failing (never silently).
pub fn warn_accepted(output: &Output, inputs: &crate::inputs::Inputs) {
    if !inputs.accepted.is_empty() {
        output.line(format!(
            "warning: this stack accepts failing audit rules {} (recorded in inputs.json; `up --accept none` stops accepting them)",
            inputs.accepted.join(", ")
        ));
    }
}

/// Takes the stack directory's lock for a command that changes the stack, waiting at most
/// `--lock-wait` and saying once who holds it.
pub async fn lock(global: &GlobalArgs, command: &str) -> anyhow::Result<crate::lock::StackLock> {
    let dir = crate::stackdir::StackDir::new(&global.dir);
    crate::lock::StackLock::acquire(&dir, command, global.lock_wait, |holder| {
        output(global).line(format!(
            "{} is locked by {holder}; waiting up to {}s",
            global.dir.display(),
            global.lock_wait.as_secs()
        ))
    })
    .await
}

/// Where a command's messages go, from the global flags.
pub fn output(global: &GlobalArgs) -> Output {
    let format = match global.output {
        OutputFormat::Human | OutputFormat::Env => Format::Human,
        OutputFormat::Json => Format::Json,
    };
    Output { format, quiet: global.quiet, verbose: global.verbose }
}

/// What the command line asks that no run can give, as a usage error (exit 64): checked before
/// anything runs.
pub fn check_usage(global: &GlobalArgs, command: &crate::cli::Command) -> anyhow::Result<()> {
    use crate::cli::Command;
    let refuse = |message: &str| Err(crate::error::UsageError(message.to_owned()).into());
    match (global.output, command) {
        (OutputFormat::Env, Command::Env(_)) => Ok(()),
        (OutputFormat::Env, _) => refuse("-o env is `hardstack env`'s dotenv form; other commands print human or json"),
        (OutputFormat::Json, Command::Status(args)) if args.watch.is_some() => refuse(
            "status --watch redraws a screen for a person; -o json prints one document: drop --watch and run status on a schedule",
        ),
        (OutputFormat::Json, Command::Rotate(args)) if args.daemon => refuse(
            "rotate --daemon runs until stopped and speaks in lines; -o json prints one document per run: drop --daemon and run rotate from a timer",
        ),
        _ => Ok(()),
    }
}

/// `hardstack completions SHELL`: the script, or with -o json one document that holds it.
pub fn completions(global: &GlobalArgs, args: &crate::cli::CompletionsArgs) -> anyhow::Result<std::process::ExitCode> {
    let script = crate::cli::completion_script(args.shell);
    match output(global).format {
        Format::Json => output(global).json(&serde_json::json!({
            "schema": "hardstack.completions/v1",
            "shell": args.shell.to_string(),
            "script": String::from_utf8_lossy(&script),
        })),
        Format::Human => crate::output::raw_stdout(&script)?,
    }
    Ok(std::process::ExitCode::SUCCESS)
}
