//! A Qdrant cluster's checks: every peer knows every other and names the same leader; every
//! shard of every collection has as many replicas as its replication factor asks (at most one
//! per peer), all active; the p2p port refuses a client without a certificate of the stack CA
//! (a TLS alert), and with one but without the API key answers UNAUTHENTICATED
//! (`enforce_internal_auth`), while the same call with the key is answered.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use rustls::AlertDescription;

use super::{CheckFuture, Context, Refusal, accepted, bounded, prepare, refused, tls_exchange_at};
use crate::layout;
use crate::peers::{P2P_PORT, alias};
use crate::probe::{self, ClientTls, Target, cluster::PeerView};
use crate::profile::Service;
use crate::retry::{Attempt, Backoff};

/// An internal call every peer serves: the consensus commit it has applied (an empty request).
const INTERNAL_CALL: &str = "/qdrant.QdrantInternal/GetConsensusCommit";

/// Peer `node` as the checks reach it, with the API key.
fn target(context: &Context, node: u8) -> anyhow::Result<Target> {
    let alias = alias(node);
    let address = *context.nodes.get(&alias).with_context(|| format!("{alias} is not reached"))?;
    let login = context.users().first().map(|u| u.name.clone()).unwrap_or_default();
    let mutual = context.profile.demands_client_cert(Service::Qdrant);
    Ok(Target {
        host: alias,
        port: address.port(),
        user: login.clone(),
        password: context.secret(layout::QDRANT_API_KEY)?,
        database: String::new(),
        tls: context.tls_for(&login, mutual)?,
        address: Some(address),
    })
}

/// How long the peers have to agree before the check fails.
const AGREE_WITHIN: Duration = Duration::from_secs(5);

/// Every peer's view of the cluster, node 0 first.
async fn views(context: &Context) -> anyhow::Result<Vec<(u8, PeerView)>> {
    let mut views = Vec::new();
    for node in context.profile.qdrant.node_numbers() {
        let target = target(context, node)?;
        views.push((node, probe::cluster::peer(&target).await.with_context(|| format!("asking {}", target.host))?));
    }
    Ok(views)
}

/// Node 0's p2p address.
fn p2p(context: &Context) -> anyhow::Result<SocketAddr> {
    let address = *context.nodes.get(&alias(0)).context("qdrant is not reached")?;
    Ok(SocketAddr::new(address.ip(), P2P_PORT))
}

/// A unary call on node 0's p2p port (HTTP/2 over TLS, verified as `qdrant`), with `tls`'s
/// client certificate and `key` if any.
async fn internal_call(context: &Context, tls: &ClientTls, key: Option<&str>) -> anyhow::Result<String> {
    let mut config = probe::rustls_config(tls)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    let name = alias(0);
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .http2_prior_knowledge()
        .resolve(&name, p2p(context)?)
        .timeout(probe::CONNECT_TIMEOUT)
        .build()?;
    super::front::grpc(client, format!("https://{name}:{P2P_PORT}{INTERNAL_CALL}"), key, &[]).await
}

/// Every cluster check; none where Qdrant runs as a single node.
pub fn checks(context: &Context) -> Vec<CheckFuture<'_>> {
    let mut checks: Vec<CheckFuture<'_>> = Vec::new();
    if !crate::peers::is_cluster(&context.profile) {
        return checks;
    }
    let nodes = usize::from(context.profile.qdrant.nodes);
    checks.push(bounded("qdrant.cluster.peers".into(), async move {
        let what = format!("each of the {nodes} peers knows every other and names the same leader");
        accepted("qdrant.cluster.peers", &what, async {
            // A consensus operation in flight is normal: agreement within a few seconds is.
            let views = Backoff::every(Duration::from_millis(100), AGREE_WITHIN)
                .run(|| async {
                    match views(context).await {
                        Ok(views) => match crate::converge::peers::agreed(&views, nodes) {
                            Ok(()) => Attempt::Done(views),
                            Err(why) => Attempt::Retry(anyhow::anyhow!(why)),
                        },
                        Err(err) => Attempt::Retry(err),
                    }
                })
                .await?;
            let ids: BTreeMap<u64, String> = views.iter().map(|(node, view)| (view.id, alias(*node))).collect();
            let leader = views[0].1.leader.and_then(|id| ids.get(&id).cloned()).unwrap_or_default();
            Ok(format!("{nodes} peers ({}), leader {leader}", ids.into_values().collect::<Vec<_>>().join(", ")))
        })
        .await
    }));
    checks.push(bounded("qdrant.cluster.shards".into(), async move {
        let what = "every shard of every collection has its replicas, on distinct peers, all Active";
        accepted("qdrant.cluster.shards", what, async {
            let first = target(context, 0)?;
            let collections = probe::cluster::collections(&first).await?;
            if collections.is_empty() {
                return Ok("no collection yet".to_owned());
            }
            let mut evidence = Vec::new();
            for collection in collections {
                let (factor, replicas) = probe::cluster::shards(&first, &collection).await?;
                evidence.push(shard_evidence(&collection, factor, nodes, &replicas)?);
            }
            Ok(evidence.join("; "))
        })
        .await
    }));
    checks.push(bounded("qdrant.cluster.p2p_no_cert_refused".into(), async move {
        // TLS 1.3 says so after the handshake, TLS 1.2 during it.
        let refusal = Refusal::TlsAlert(&[AlertDescription::CertificateRequired, AlertDescription::HandshakeFailure]);
        refused("qdrant.cluster.p2p_no_cert_refused", "the p2p port without a client certificate", refusal, async {
            let address = prepare(p2p(context))?;
            let tls = Ok(ClientTls { ca_pem: context.ca_pem.clone(), client: None });
            tls_exchange_at(address, &alias(0), tls, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await
        })
        .await
    }));
    checks.push(bounded("qdrant.cluster.p2p_no_key_refused".into(), async move {
        let login = context.users().first().map(|u| u.name.clone()).unwrap_or_default();
        let what = "a call on the p2p port with a certificate of the stack CA but no API key";
        let check = refused("qdrant.cluster.p2p_no_key_refused", what, Refusal::Grpc(&[16]), async {
            let tls = prepare(context.tls_for(&login, true))?;
            internal_call(context, &tls, None).await
        })
        .await;
        if check.verdict != crate::report::Verdict::Pass {
            return check;
        }
        // The refusal is the key's: the same call with it is answered.
        let with_key = async {
            let tls = context.tls_for(&login, true)?;
            let key = context.secret(layout::QDRANT_API_KEY)?;
            internal_call(context, &tls, Some(key.expose())).await
        };
        match with_key.await {
            Ok(answer) => crate::report::Check::pass(
                "qdrant.cluster.p2p_no_key_refused",
                check.reason,
                format!("{}; with the API key: {answer}", check.evidence),
            ),
            Err(err) => crate::report::Check::fail(
                "qdrant.cluster.p2p_no_key_refused",
                "the same call with the API key was not answered either",
                format!("{err:#}"),
            ),
        }
    }));
    checks
}

/// Whether a collection's replicas are as its factor asks: each shard on `min(factor, nodes)`
/// distinct peers, every replica Active. The evidence, or what is wrong.
fn shard_evidence(
    collection: &str,
    factor: u64,
    nodes: usize,
    replicas: &[probe::cluster::Replica],
) -> anyhow::Result<String> {
    let wanted = factor.min(nodes as u64) as usize;
    let mut shards: BTreeMap<u64, Vec<&probe::cluster::Replica>> = BTreeMap::new();
    for replica in replicas {
        shards.entry(replica.shard).or_default().push(replica);
    }
    anyhow::ensure!(!shards.is_empty(), "{collection}: no shard");
    for (shard, on) in &shards {
        let peers: std::collections::BTreeSet<u64> = on.iter().map(|r| r.peer).collect();
        anyhow::ensure!(
            peers.len() >= wanted,
            "{collection}: shard {shard} is on {} peer(s), its replication factor asks {wanted}",
            peers.len()
        );
        if let Some(replica) = on.iter().find(|r| r.state != "Active") {
            anyhow::bail!("{collection}: shard {shard}'s replica on peer {} is {}", replica.peer, replica.state);
        }
    }
    Ok(format!("{collection}: {} shards × {wanted} replicas, all Active", shards.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::cluster::Replica;

    fn replica(shard: u64, peer: u64, state: &str) -> Replica {
        Replica { shard, peer, state: state.into() }
    }

    #[test]
    fn a_collection_passes_with_every_shard_on_its_factor_of_peers_all_active() {
        let good = [replica(0, 1, "Active"), replica(0, 2, "Active"), replica(1, 2, "Active"), replica(1, 3, "Active")];
        assert_eq!(shard_evidence("c", 2, 3, &good).unwrap(), "c: 2 shards × 2 replicas, all Active");
        let short = [replica(0, 1, "Active"), replica(1, 2, "Active"), replica(1, 3, "Active")];
        assert!(shard_evidence("c", 2, 3, &short).unwrap_err().to_string().contains("shard 0 is on 1 peer(s)"));
        let dead = [replica(0, 1, "Active"), replica(0, 2, "Dead")];
        assert!(shard_evidence("c", 2, 3, &dead).unwrap_err().to_string().contains("is Dead"));
        assert!(shard_evidence("c", 2, 3, &[]).is_err());
    }
}
