//! Check results shared by `verify` and `audit`: a stable id, a verdict, a one-line reason and
//! the evidence; and the report's two forms, a table and a JSON document with a stable schema
//! (`hardstack.checks/v1`, documented in docs/json.md).

use serde::{Deserialize, Serialize};

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    #[serde(rename = "pass")]
    Pass,
    #[serde(rename = "fail")]
    Fail,
    /// The check does not apply to this stack (a service it does not run, a setting off).
    #[serde(rename = "n/a")]
    NotApplicable,
}

impl Verdict {
    fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::NotApplicable => "N/A",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Stable id, `pg.plaintext_refused`, `audit.hba.scram_only`.
    pub id: String,
    pub verdict: Verdict,
    /// One line: what holds, or what is wrong and how to fix it.
    pub reason: String,
    /// What was observed: the server's answer, the file and line.
    pub evidence: String,
}

impl Check {
    pub fn pass(id: impl Into<String>, reason: impl Into<String>, evidence: impl Into<String>) -> Check {
        Check { id: id.into(), verdict: Verdict::Pass, reason: reason.into(), evidence: evidence.into() }
    }

    pub fn fail(id: impl Into<String>, reason: impl Into<String>, evidence: impl Into<String>) -> Check {
        Check { id: id.into(), verdict: Verdict::Fail, reason: reason.into(), evidence: evidence.into() }
    }

    pub fn not_applicable(id: impl Into<String>, reason: impl Into<String>) -> Check {
        Check { id: id.into(), verdict: Verdict::NotApplicable, reason: reason.into(), evidence: String::new() }
    }
}

/// Whether any check failed.
pub fn any_failed(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.verdict == Verdict::Fail)
}

/// The JSON document of a report.
pub fn to_json(command: &str, stack: &str, checks: &[Check]) -> serde_json::Value {
    let count = |v: Verdict| checks.iter().filter(|c| c.verdict == v).count();
    serde_json::json!({
        "schema": "hardstack.checks/v1",
        "command": command,
        "stack": stack,
        "summary": {"pass": count(Verdict::Pass), "fail": count(Verdict::Fail), "n/a": count(Verdict::NotApplicable)},
        "checks": checks,
    })
}

/// The human table: id, verdict, reason; evidence under failures (and under all with verbose).
pub fn to_table(checks: &[Check], verbose: bool) -> String {
    format!("{}{}\n", rows(checks, verbose), summary(checks))
}

/// The header and one row per check.
fn rows(checks: &[Check], verbose: bool) -> String {
    let width = checks.iter().map(|c| c.id.len()).max().unwrap_or(2).max(2);
    let mut out = format!("{:<width$}  {:<6}  {}\n", "ID", "RESULT", "REASON");
    for check in checks {
        out.push_str(&format!("{:<width$}  {:<6}  {}\n", check.id, check.verdict.label(), check.reason));
        if !check.evidence.is_empty() && (verbose || check.verdict == Verdict::Fail) {
            for line in check.evidence.lines().take(6) {
                out.push_str(&format!("{:<width$}          {line}\n", ""));
            }
        }
    }
    out
}

/// One line: how many checks passed, failed and did not apply.
pub fn summary(checks: &[Check]) -> String {
    let count = |v: Verdict| checks.iter().filter(|c| c.verdict == v).count();
    format!(
        "{} checks: {} passed, {} failed, {} not applicable",
        checks.len(),
        count(Verdict::Pass),
        count(Verdict::Fail),
        count(Verdict::NotApplicable)
    )
}

/// The table of the failed checks only, with their evidence, then the summary of all.
pub fn failures_table(checks: &[Check]) -> String {
    let failed: Vec<Check> = checks.iter().filter(|c| c.verdict == Verdict::Fail).cloned().collect();
    format!("{}{}\n", rows(&failed, false), summary(checks))
}
