//! What a Qdrant peer says of its cluster (`GET /cluster`) and of a collection's shards
//! (`GET /collections/{name}/cluster`), over HTTPS with the API key.

use std::collections::BTreeSet;

use anyhow::Context as _;

use super::Target;

/// One peer's view of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerView {
    /// This peer's id.
    pub id: u64,
    /// Every peer it knows, itself included.
    pub peers: BTreeSet<u64>,
    /// The leader of the current term, if it knows one.
    pub leader: Option<u64>,
    /// Whether its consensus thread is working.
    pub working: bool,
    /// Consensus operations it has yet to apply.
    pub pending: u64,
}

/// One shard replica of a collection, as a peer reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Replica {
    pub shard: u64,
    pub peer: u64,
    /// `Active`, `Dead`, `Partial`, `Initializing`, ...
    pub state: String,
}

/// GET `path` on the peer with the API key (the target's password): its `result`.
async fn result(target: &Target, path: &str) -> anyhow::Result<serde_json::Value> {
    let client = super::https_client(target, super::CONNECT_TIMEOUT)?;
    let url = format!("https://{}:{}{path}", target.host, target.port);
    let response = client.get(&url).header("api-key", target.password.expose()).send().await?;
    let status = response.status();
    anyhow::ensure!(status.is_success(), "GET {path} answered {status}");
    let mut body: serde_json::Value = response.json().await.with_context(|| format!("reading GET {path}"))?;
    Ok(body["result"].take())
}

/// The peer's view of the cluster; an error where it runs as a single node.
pub async fn peer(target: &Target) -> anyhow::Result<PeerView> {
    let result = result(target, "/cluster").await?;
    anyhow::ensure!(
        result["status"] == "enabled",
        "{} runs as a single node (cluster {})",
        target.host,
        result["status"]
    );
    let id = result["peer_id"].as_u64().context("GET /cluster gave no peer_id")?;
    let peers = result["peers"]
        .as_object()
        .context("GET /cluster gave no peers")?
        .keys()
        .map(|id| id.parse().with_context(|| format!("peer id {id}")))
        .collect::<anyhow::Result<_>>()?;
    let raft = &result["raft_info"];
    Ok(PeerView {
        id,
        peers,
        leader: raft["leader"].as_u64(),
        working: result["consensus_thread_status"]["consensus_thread_status"] == "working",
        pending: raft["pending_operations"].as_u64().unwrap_or(0),
    })
}

/// The collections the peer lists.
pub async fn collections(target: &Target) -> anyhow::Result<Vec<String>> {
    let result = result(target, "/collections").await?;
    let names = result["collections"].as_array().context("GET /collections gave no list")?;
    Ok(names.iter().filter_map(|c| c["name"].as_str().map(str::to_owned)).collect())
}

/// A collection's replication factor and every replica of its shards, as the peer sees them
/// (its own and the others').
pub async fn shards(target: &Target, collection: &str) -> anyhow::Result<(u64, Vec<Replica>)> {
    let info = result(target, &format!("/collections/{collection}")).await?;
    let factor = info["config"]["params"]["replication_factor"].as_u64().unwrap_or(1);
    let cluster = result(target, &format!("/collections/{collection}/cluster")).await?;
    let own = cluster["peer_id"].as_u64().context("no peer_id")?;
    let mut replicas = Vec::new();
    for (list, local) in [("local_shards", true), ("remote_shards", false)] {
        for shard in cluster[list].as_array().into_iter().flatten() {
            replicas.push(Replica {
                shard: shard["shard_id"].as_u64().context("a shard without an id")?,
                peer: if local { own } else { shard["peer_id"].as_u64().context("a remote shard without a peer")? },
                state: shard["state"].as_str().unwrap_or("unknown").to_owned(),
            });
        }
    }
    replicas.sort();
    Ok((factor, replicas))
}
