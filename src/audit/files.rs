//! File rules: keys and secrets are 0600 (the modes `layout` gives every file), directories
//! 0700.

use std::os::unix::fs::PermissionsExt as _;

use super::{Bundle, Outcome, Rule};
use crate::layout::{Mode, expected_mode};
use Outcome::{Fail, Pass};

/// The rules of this kind of file, each with a stable id.
pub const RULES: &[Rule] = &[
    Rule {
        id: "audit.files.private_modes",
        summary: "keys, secrets and files that contain them are 0600",
        fix: "chmod 0600 the files named",
        check: files_private,
    },
    Rule {
        id: "audit.files.directory_modes",
        summary: "directories are 0700",
        fix: "chmod 0700 the directories named",
        check: files_dirs,
    },
];

fn files_private(bundle: &Bundle) -> Outcome {
    let problems: Vec<String> = bundle
        .modes
        .iter()
        .filter(|(path, is_dir, mode)| !is_dir && expected_mode(path) == Some(Mode::Private) && mode & 0o077 != 0)
        .map(|(path, _, mode)| format!("{path} is {mode:04o}"))
        .collect();
    if problems.is_empty() { Pass("keys and secrets are 0600".into()) } else { Fail(problems.join("; ")) }
}

fn files_dirs(bundle: &Bundle) -> Outcome {
    let mut problems: Vec<String> = bundle
        .modes
        .iter()
        .filter(|(_, is_dir, mode)| *is_dir && mode & 0o077 != 0)
        .map(|(path, _, mode)| format!("{path}/ is {mode:04o}"))
        .collect();
    if let Ok(meta) = std::fs::metadata(&bundle.dir)
        && meta.permissions().mode() & 0o077 != 0
    {
        problems.push(format!("{} is {:04o}", bundle.dir.display(), meta.permissions().mode() & 0o777));
    }
    if problems.is_empty() { Pass("every directory is 0700".into()) } else { Fail(problems.join("; ")) }
}
