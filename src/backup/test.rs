//! The restore test: what a throwaway stack restored from a set holds, compared with what the
//! set's manifest says was backed up, and the record `checklist.backups` and `status` read.

use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::{Backups, Manifest};
use crate::profile::{Profile, Service};
use crate::runtime::Engine;
use crate::secrets::store::Store;
use crate::stackdir::StackDir;

/// The last restore test.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The set restored.
    pub set: String,
    /// When that set's backup finished (RFC 3339).
    pub set_finished: String,
    /// When the test ran.
    pub tested: String,
    pub passed: bool,
    pub seconds: f64,
    /// What differed, or why the test failed.
    pub problems: Vec<String>,
    /// When a test last passed, and the set it restored: kept when a later test fails.
    pub last_pass: Option<Pass>,
}

/// A passed restore test.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pass {
    pub set: String,
    pub set_finished: String,
    pub tested: String,
}

impl Record {
    /// The age of the newest set a restore test proved, if one passed.
    pub fn proven_set_age(&self) -> Option<Duration> {
        let pass = self.last_pass.as_ref()?;
        let finished = super::parse_time(&pass.set_finished).ok()?;
        Some(SystemTime::now().duration_since(finished).unwrap_or_default())
    }
}

/// Writes the record of a test of `manifest`'s set, keeping the last pass.
pub fn record(backups: &Backups, manifest: &Manifest, seconds: f64, problems: Vec<String>) -> anyhow::Result<Record> {
    let tested = super::rfc3339(SystemTime::now());
    let passed = problems.is_empty();
    let last_pass = if passed {
        Some(Pass { set: manifest.id.clone(), set_finished: manifest.finished.clone(), tested: tested.clone() })
    } else {
        backups.restore_test()?.and_then(|r| r.last_pass)
    };
    let record = Record {
        set: manifest.id.clone(),
        set_finished: manifest.finished.clone(),
        tested,
        passed,
        seconds,
        problems,
        last_pass,
    };
    let bytes = serde_json::to_vec_pretty(&record).context("serializing the restore-test record")?;
    crate::fsio::write_atomic(&backups.root.join(crate::layout::backups::RESTORE_TEST), &bytes, 0o600)?;
    Ok(record)
}

/// Compares a restored stack with the set's manifest: every difference, by service.
pub async fn compare(
    engine: &Engine,
    profile: &Profile,
    dir: &StackDir,
    store: &Store,
    manifest: &Manifest,
) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    for part in &manifest.services {
        let restored = match part.service {
            Service::Postgres => {
                let spec = crate::containers::container_spec(profile, Service::Postgres);
                super::postgres::contents_of(engine, &spec, super::postgres::Reading::RowsAndChecksums).await?
            }
            Service::Redis => super::redis::contents(engine, profile, dir, store, Some(&part.contents)).await?,
            Service::Qdrant => super::qdrant::Api::connect(engine, profile, dir, store).await?.contents().await?,
            Service::Pgbouncer
            | Service::PostgresExporter
            | Service::RedisExporter
            | Service::PgbouncerExporter
            | Service::Prometheus
            | Service::QdrantFront
            | Service::RedisSentinel => continue,
        };
        problems.extend(part.contents.differences(&restored).into_iter().map(|d| format!("{}: {d}", part.service)));
    }
    Ok(problems)
}
