//! One file per subcommand: the control flow. Commands call the layers below and print through
//! `output`; nothing below calls back up here.

pub mod audit;
pub mod backup;
pub mod doctor;
pub mod down;
pub mod env;
pub mod init;
pub mod plan;
pub mod restore;
pub mod rotate;
pub mod status;
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
    let identity = if record { crate::identity::Identity::ensure(dir)? } else { crate::identity::Identity::of(dir)? };
    let engine = crate::runtime::connect().await?.acting_for(identity.owner(&profile.stack.name, dir));
    let specs = crate::containers::container_specs(profile);
    engine.check_claim(&crate::containers::stack_names(profile), &specs).await?;
    Ok(engine)
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
        OutputFormat::Human => Format::Human,
        OutputFormat::Json => Format::Json,
    };
    Output { format, quiet: global.quiet, verbose: global.verbose }
}
