//! Which PostgreSQL node is the primary once a switchover or failover moved it: the stack
//! directory's `topology.json`, which every command reads into the profile
//! (`postgres.primary`). Without it node 0 (`<stack>-postgres`) is the primary. What follows
//! from it is in `replica`.

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::layout::StackFile;
use crate::stackdir::StackDir;

/// `topology.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// The primary's node: 0 for `<stack>-postgres`, N for `<stack>-postgres-N`.
    #[serde(default)]
    pub postgres_primary: u8,
    /// Old primaries a failover left to rewind onto the new primary's timeline before they
    /// start again (`up` does it first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub postgres_rewind: Vec<u8>,
    /// Redis's primary node as the Sentinels last said (`up` records it): 0 for
    /// `<stack>-redis`, N for `<stack>-redis-N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_primary: Option<u8>,
}

/// The recorded topology; `None` where no switchover or failover ever happened.
pub fn read(dir: &StackDir) -> anyhow::Result<Option<Topology>> {
    let path = dir.file(&StackFile::Topology);
    match crate::stackdir::read_optional(&path)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).with_context(|| {
            format!(
                "reading {}: it is damaged; write {{\"postgres_primary\": N}} with the node `hardstack status` shows as primary",
                path.display()
            )
        }),
    }
}

/// The recorded topology, or the one of a stack that never moved its primaries.
pub fn current(dir: &StackDir) -> anyhow::Result<Topology> {
    Ok(read(dir)?.unwrap_or_default())
}

/// Forgets the topology: the stack's data is gone (`down --volumes`) or replaced (a restore
/// fills node 0), so node 0 is the primary again.
pub fn forget(dir: &StackDir) -> anyhow::Result<()> {
    let path = dir.file(&StackFile::Topology);
    match std::fs::remove_file(&path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(anyhow::Error::new(err).context(format!("removing {}", path.display())))
        }
        _ => Ok(()),
    }
}

/// Records the topology (atomically: a run interrupted left the old record or the new one,
/// never half of one).
pub fn record(dir: &StackDir, topology: &Topology) -> anyhow::Result<()> {
    let text = serde_json::to_vec_pretty(topology)?;
    crate::fsio::write_atomic(&dir.file(&StackFile::Topology), &text, 0o644)
}
