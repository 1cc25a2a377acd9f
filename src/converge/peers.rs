//! Qdrant's cluster on the running stack: each peer reached at its container's address on the
//! stack network (verified as its alias), and `settle`: waiting until every peer knows every
//! other, agrees on one leader and has applied what the consensus committed, which is when a
//! cluster is usable (a peer that answers REST before it has joined serves an incomplete
//! cluster).

use std::time::Duration;

use anyhow::Context as _;

use crate::layout;
use crate::probe::{self, Target, cluster::PeerView};
use crate::profile::{Profile, Service};
use crate::retry::{Attempt, Backoff};
use crate::runtime::Engine;
use crate::secrets::Secret;
use crate::secrets::store::Store;
use crate::stackdir::StackDir;

/// How long the peers have to agree after they started.
const SETTLE_WITHIN: Duration = Duration::from_secs(120);

/// Peer `node` at its address on the stack network, with `key`, presenting the first
/// application user's certificate where Qdrant demands one (Qdrant has no logins of its own).
pub async fn target(
    engine: &Engine,
    profile: &Profile,
    dir: &StackDir,
    node: u8,
    key: Secret,
) -> anyhow::Result<Target> {
    let name = crate::peers::container_name(profile, node);
    let network = crate::containers::stack_names(profile).network;
    let address = engine.address_on(&name, &network).await?;
    let port = Service::Qdrant.container_port();
    let login = profile.users.first().context("the profile has no application user")?.name.clone();
    Ok(Target {
        address: Some(std::net::SocketAddr::new(address, port)),
        host: crate::peers::alias(node),
        port,
        user: login.clone(),
        password: key,
        database: String::new(),
        tls: probe::client_tls(dir, &login, profile.demands_client_cert(Service::Qdrant))?,
    })
}

/// Whether the views agree: each peer knows `nodes` peers, the same ones, and the same leader,
/// its consensus working with nothing left to apply. `Err` says what does not hold yet.
pub fn agreed(views: &[(u8, PeerView)], nodes: usize) -> Result<(), String> {
    let Some((_, first)) = views.first() else { return Err("no peer answered".into()) };
    for (node, view) in views {
        let alias = crate::peers::alias(*node);
        if view.peers.len() != nodes {
            return Err(format!("{alias} knows {} of {nodes} peers", view.peers.len()));
        }
        if view.peers != first.peers {
            return Err(format!("{alias} knows other peers than {}", crate::peers::alias(views[0].0)));
        }
        if view.leader.is_none() || view.leader != first.leader {
            return Err(format!(
                "{alias} names leader {:?}, {} names {:?}",
                view.leader,
                crate::peers::alias(views[0].0),
                first.leader
            ));
        }
        if !view.working || view.pending > 0 {
            return Err(format!("{alias}'s consensus is not caught up ({} operations pending)", view.pending));
        }
    }
    Ok(())
}

/// Every peer's view, node 0 first.
async fn views(
    engine: &Engine,
    profile: &Profile,
    dir: &StackDir,
    key: &Secret,
) -> anyhow::Result<Vec<(u8, PeerView)>> {
    let mut views = Vec::new();
    for node in profile.qdrant.node_numbers() {
        let target = target(engine, profile, dir, node, key.clone()).await?;
        let view =
            probe::cluster::peer(&target).await.with_context(|| format!("asking {} for the cluster", target.host))?;
        views.push((node, view));
    }
    Ok(views)
}

/// Waits until the peers agree (see [`agreed`]); a cluster only.
pub async fn settle(engine: &Engine, profile: &Profile, dir: &StackDir, store: &Store) -> anyhow::Result<()> {
    if !crate::peers::is_cluster(profile) {
        return Ok(());
    }
    let key = store.current(layout::QDRANT_API_KEY).await?.value;
    agree_within(engine, profile, dir, &key, SETTLE_WITHIN).await
}

/// Waits up to `within` until the peers, asked with `key`, agree (see [`agreed`]).
pub async fn agree_within(
    engine: &Engine,
    profile: &Profile,
    dir: &StackDir,
    key: &Secret,
    within: Duration,
) -> anyhow::Result<()> {
    let nodes = usize::from(profile.qdrant.nodes);
    Backoff::every(Duration::from_millis(200), within)
        .run(|| async {
            match views(engine, profile, dir, key).await {
                Ok(views) => match agreed(&views, nodes) {
                    Ok(()) => Attempt::Done(()),
                    Err(why) => Attempt::Retry(anyhow::anyhow!(why)),
                },
                Err(err) => Attempt::Retry(err),
            }
        })
        .await
        .with_context(|| format!("Qdrant's {nodes} peers did not form one cluster within {}s", within.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: u64, peers: &[u64], leader: Option<u64>) -> PeerView {
        PeerView { id, peers: peers.iter().copied().collect(), leader, working: true, pending: 0 }
    }

    #[test]
    fn peers_agree_only_when_each_knows_all_and_names_one_leader() {
        let all = [1, 2, 3];
        let good = [(0, view(1, &all, Some(1))), (1, view(2, &all, Some(1))), (2, view(3, &all, Some(1)))];
        assert_eq!(agreed(&good, 3), Ok(()));
        let joining = [(0, view(1, &all, Some(1))), (1, view(2, &[1, 2], Some(1)))];
        assert!(agreed(&joining, 3).unwrap_err().contains("qdrant-1 knows 2 of 3"));
        let split = [(0, view(1, &all, Some(1))), (1, view(2, &all, Some(2)))];
        assert!(agreed(&split, 3).unwrap_err().contains("leader"));
        let mut behind = good.clone();
        behind[2].1.pending = 4;
        assert!(agreed(&behind, 3).unwrap_err().contains("4 operations pending"));
        assert!(agreed(&[], 3).is_err());
    }
}
