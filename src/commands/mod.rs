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

/// Where a command's messages go, from the global flags.
pub fn output(global: &GlobalArgs) -> Output {
    let format = match global.output {
        OutputFormat::Human => Format::Human,
        OutputFormat::Json => Format::Json,
    };
    Output { format, quiet: global.quiet, verbose: global.verbose }
}
