//! `rejoin`, run by a Redis pod as it starts: a node back from its volume finds the peers it knows
//! at their new addresses and meets them, so a full restart heals without waiting for a Job.
//!
//! Each round it reads the local node's `CLUSTER NODES`, looks up where its peers are now (the
//! headless Service's DNS, which publishes pods before they are Ready; or the listed addresses),
//! asks each one its node ID, and sends the local node `CLUSTER MEET` for a peer only when the
//! local node already knows that ID at another address or without one. Redis merges the
//! handshake into the known ID and both sides learn the new address. An ID it does not know is
//! never met: a stranger, or a pod that lost its volume and came back empty, stays the
//! bootstrap's (*replace*), which checks what a pod cannot. It ends when every node the local
//! node knows is connected, or at `BOOTSTRAP_REJOIN_TIMEOUT`; it runs beside Redis, never holds
//! the container back and never stops it.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::client::{self, Client};
use crate::cluster_nodes::ClusterNode;
use crate::node::Node;
use crate::observation::Observation;
use crate::observe::observe;
use crate::pod::Context;
use crate::{Error, Result};

/// Pause between rounds.
const ROUND: Duration = Duration::from_secs(1);
/// A peer met this recently is not met again: its handshake is still under way.
const MEET_AGAIN_AFTER: Duration = Duration::from_secs(5);

/// What a peer found at an address is to the local node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The local node itself (a peer list may include it).
    Myself,
    /// Known at this very address: nothing to do.
    InPlace,
    /// Known, but at another address or none: meet it here. The text says where it was known.
    Moved(String),
    /// An ID the local node does not know: never met.
    Stranger,
}

/// Classifies node `id`, found at `at`, against the local node's view.
pub fn classify(view: &Observation, at: SocketAddr, id: &str) -> Finding {
    if id == view.id {
        return Finding::Myself;
    }
    match view.knows(id) {
        None => Finding::Stranger,
        Some(line) if line.flags.noaddr || line.addr.is_none() => {
            Finding::Moved("known here without an address".into())
        }
        Some(line) if line.addr == Some(at) => Finding::InPlace,
        Some(line) => Finding::Moved(format!(
            "known here at {}",
            line.addr.map_or_else(|| "-".into(), |a| a.to_string())
        )),
    }
}

/// The nodes the local node knows but does not reach: not connected, or flagged.
pub fn pending(view: &Observation) -> Vec<&ClusterNode> {
    view.nodes
        .iter()
        .filter(|n| !n.flags.myself)
        .filter(|n| !(n.connected && n.flags.healthy()))
        .collect()
}

/// Meets the known peers found at new addresses until every known node is connected.
pub async fn run(ctx: &Context) -> Result<()> {
    let started = Instant::now();
    let deadline = started + ctx.settings.rejoin_timeout;
    let local = client::retry_unreachable(&ctx.local, ctx.settings.rejoin_timeout, || {
        Client::connect(
            &ctx.local,
            ctx.settings.credentials.as_ref(),
            ctx.settings.tls.as_ref(),
        )
    })
    .await?;
    let mut met: HashMap<SocketAddr, Instant> = HashMap::new();
    let mut strangers: HashSet<(SocketAddr, String)> = HashSet::new();
    loop {
        match observe(&local).await {
            Ok(view) => {
                if let Some(done) = done(&view, met.len(), started) {
                    info!(node = %ctx.local, "rejoin: {done}");
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    return Err(timed_out(ctx, &view));
                }
                for (peer, id) in identify(ctx, &view).await {
                    act(ctx, &local, &view, &peer, &id, &mut met, &mut strangers).await;
                }
            }
            // Still loading its data, or busy: the next round asks again.
            Err(e @ (Error::Command { .. } | Error::Unreachable { .. })) => {
                debug!(node = %ctx.local, error = %e, "rejoin: the local node does not answer yet");
                if Instant::now() >= deadline {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
        tokio::time::sleep(ROUND).await;
    }
}

/// Why there is nothing (more) to do, if there is nothing.
fn done(view: &Observation, met: usize, started: Instant) -> Option<String> {
    if !view.cluster_enabled {
        return Some("cluster mode is off: nothing to rejoin".into());
    }
    if view.alone() {
        return Some("the node knows no other node (the bootstrap forms the cluster)".into());
    }
    pending(view).is_empty().then(|| {
        format!(
            "every known node is connected ({} peers; met {met} at a new address) after {}",
            view.nodes.len() - 1,
            humantime::format_duration(Duration::from_millis(started.elapsed().as_millis() as u64))
        )
    })
}

/// Asks every peer found now for its node ID; a peer that does not answer is left for the next
/// round.
async fn identify(ctx: &Context, view: &Observation) -> Vec<(Node, String)> {
    let peers = ctx.peers_now(&view.nodes).await;
    let asks = peers.into_iter().map(|peer| async move {
        let client = Client::connect(
            &peer,
            ctx.settings.credentials.as_ref(),
            ctx.settings.tls.as_ref(),
        )
        .await
        .map_err(|e| debug!(peer = %peer, error = %e, "rejoin: peer not answering yet"))
        .ok()?;
        let id: String = client
            .query(redis::cmd("CLUSTER").arg("MYID"), "CLUSTER MYID")
            .await
            .ok()?;
        Some((peer, id.trim().to_string()))
    });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Meets `peer` if the local node knows its ID elsewhere; says once that a stranger is left alone.
async fn act(
    ctx: &Context,
    local: &Client,
    view: &Observation,
    peer: &Node,
    id: &str,
    met: &mut HashMap<SocketAddr, Instant>,
    strangers: &mut HashSet<(SocketAddr, String)>,
) {
    match classify(view, peer.addr, id) {
        Finding::Myself | Finding::InPlace => {}
        Finding::Stranger => {
            if strangers.insert((peer.addr, id.to_string())) {
                warn!(
                    node = %ctx.local,
                    peer = %peer,
                    "rejoin: {peer} is node {id}, which this node does not know: left alone (a new \
                     or emptied pod is the bootstrap's to replace)"
                );
            }
        }
        Finding::Moved(was) => {
            if met
                .get(&peer.addr)
                .is_some_and(|at| at.elapsed() < MEET_AGAIN_AFTER)
            {
                return;
            }
            info!(
                node = %ctx.local,
                peer = %peer,
                "rejoin: CLUSTER MEET {} {} (node {id}, {was})",
                peer.addr.ip(),
                peer.addr.port()
            );
            let meet = redis::cmd("CLUSTER")
                .arg("MEET")
                .arg(peer.addr.ip().to_string())
                .arg(peer.addr.port())
                .to_owned();
            match local.query::<()>(&meet, "CLUSTER MEET").await {
                Ok(()) => {
                    met.insert(peer.addr, Instant::now());
                }
                Err(e) => {
                    warn!(node = %ctx.local, peer = %peer, error = %e, "rejoin: CLUSTER MEET failed; trying again next round")
                }
            }
        }
    }
}

/// The timeout, naming the nodes still unreached and where the local node last knew them.
fn timed_out(ctx: &Context, view: &Observation) -> Error {
    let unreached: Vec<String> = pending(view)
        .iter()
        .map(|n| {
            let name = n.hostname.as_deref().unwrap_or(&n.id);
            let at = n
                .addr
                .map_or_else(|| "no address".into(), |a| a.to_string());
            format!("{name} ({}, last known at {at})", n.id)
        })
        .collect();
    Error::Timeout {
        phase: "rejoin",
        after: ctx.settings.rejoin_timeout,
        detail: format!(
            "{} still reaches no {}; the bootstrap's next run takes over",
            ctx.local,
            unreached.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const PEER: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const LOST: &str = "cccccccccccccccccccccccccccccccccccccccc";

    fn view() -> Observation {
        Observation::parse(
            "role:master\r\ncluster_enabled:1\r\n",
            ME,
            &format!(
                "{ME} 10.0.1.1:6379@16379,redis-app-0 myself,master - 0 0 1 connected 0-5460\n\
                 {PEER} 10.0.0.2:6379@16379,redis-app-1 master,fail? - 0 0 2 disconnected 5461-16383\n\
                 {LOST} :0@0 slave,noaddr {ME} 0 0 1 disconnected\n"
            ),
            "cluster_state:fail\r\n",
        )
        .unwrap()
    }

    fn at(ip: &str) -> SocketAddr {
        format!("{ip}:6379").parse().unwrap()
    }

    #[test]
    fn a_known_id_at_a_new_address_is_met() {
        let found = classify(&view(), at("10.0.1.2"), PEER);
        assert_eq!(found, Finding::Moved("known here at 10.0.0.2:6379".into()));
        assert!(matches!(
            classify(&view(), at("10.0.1.3"), LOST),
            Finding::Moved(_)
        ));
    }

    #[test]
    fn a_known_id_in_place_and_myself_are_left_alone() {
        assert_eq!(classify(&view(), at("10.0.0.2"), PEER), Finding::InPlace);
        assert_eq!(classify(&view(), at("10.0.1.1"), ME), Finding::Myself);
    }

    #[test]
    fn an_unknown_id_is_never_met() {
        let stranger = "dddddddddddddddddddddddddddddddddddddddd";
        assert_eq!(
            classify(&view(), at("10.0.0.2"), stranger),
            Finding::Stranger
        );
    }

    #[test]
    fn pending_lists_every_node_not_connected() {
        let view = view();
        let ids: Vec<&str> = pending(&view).iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, [PEER, LOST]);
    }
}
