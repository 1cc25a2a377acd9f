//! `hardstack audit [DIR]`: the static rules over a stack directory, as a table or JSON.

use std::process::ExitCode;

use crate::audit::{self, Bundle};
use crate::cli::{AuditArgs, GlobalArgs};
use crate::report;

/// Runs `audit`.
pub fn run(global: &GlobalArgs, args: &AuditArgs) -> anyhow::Result<ExitCode> {
    let output = super::output(global);
    let dir = args.path.clone().unwrap_or_else(|| global.dir.clone());
    let bundle = Bundle::load(&dir)?;
    let checks = audit::audit(&bundle);
    let stack = bundle.profile.as_ref().map(|p| p.stack.name.clone()).unwrap_or_else(|| dir.display().to_string());
    output.json(&report::to_json("audit", &stack, &checks));
    output.table(&report::to_table(&checks, output.verbose));
    Ok(if report::any_failed(&checks) { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
