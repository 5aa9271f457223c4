//! One full check of the convergence loop: reads every node's `CLUSTER NODES` a few nodes at a
//! time, checks each view as it arrives ([`agreement::Tally`]) and keeps only what the loop needs
//! next: each node's own line, the pairs of nodes to introduce again, and the replicas that pull
//! from an old address. It never holds N views of N lines: at 300 nodes that was 90,000 parsed
//! lines, most of the binary's memory.

use std::collections::HashSet;
use std::net::SocketAddr;

use futures::{StreamExt, stream};

use crate::Result;
use crate::agreement::{Tally, Verdict};
use crate::client::Client;
use crate::cluster_nodes::ClusterNode;
use crate::layout::Layout;
use crate::node::Node;
use crate::observation::Observation;
use crate::observe::{AT_ONCE, observe_member_apart};

/// What one full check found.
pub struct Sweep {
    /// Every node's observation in pod order, each with only its own line of `CLUSTER NODES`.
    pub observations: Vec<Observation>,
    /// The agreement check over every view.
    pub verdict: Verdict,
    /// `(sender, receiver)`: pairs where one holds a stale view of the other ([`stale_in_view`]).
    pub stale: HashSet<(usize, usize)>,
    /// `(replica, master)`: replicas whose link is down and that pull from an old address.
    pub misdirected: Vec<(usize, usize)>,
}

/// Reads and checks every view. `ids` are the nodes' IDs in pod order; `selves` each node's own
/// line from the previous check (`None` the first time), against which the views are compared
/// for staleness.
pub async fn sweep(
    clients: &[Client],
    nodes: &[Node],
    layout: &Layout,
    ids: &[String],
    selves: &[Option<ClusterNode>],
) -> Result<Sweep> {
    let addrs: Vec<SocketAddr> = clients.iter().map(|c| c.node.addr).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut tally = Tally::new(nodes, layout, &ids);
    let mut stale = HashSet::new();
    let mut misdirected = Vec::new();
    let mut observations = Vec::with_capacity(clients.len());
    // Each view on a connection of its own: read, checked, closed.
    let mut views = stream::iter(clients)
        .map(observe_member_apart)
        .buffered(AT_ONCE);
    while let Some(o) = views.next().await {
        let (i, o) = (observations.len(), o?);
        tally.add(i, &o);
        stale_in_view(i, &o, &ids, selves, &addrs, &mut stale);
        misdirected.extend(misdirected_replica(i, &o, &ids, &addrs));
        observations.push(o.without_view());
    }
    Ok(Sweep {
        observations,
        verdict: tally.finish(),
        stale,
        misdirected,
    })
}

/// Adds to `stale` the pairs `(sender, receiver)` that node `node`'s view `o` shows: `sender` is to
/// `CLUSTER MEET` `receiver` again. Pure.
///
/// - `node` does not know a peer, or sees it with another role, master or slots than the peer
///   says of itself (`selves`): the peer meets `node`, so that `node` reads the peer's own header.
/// - `node` sees a peer as `noaddr` or at an address that is not its current one: `node` meets it
///   at its current address. Redis never re-learns the address of a `noaddr` peer, and a node
///   whose peer holds it so is pinged by no one.
pub fn stale_in_view(
    node: usize,
    o: &Observation,
    ids: &[&str],
    selves: &[Option<ClusterNode>],
    addrs: &[SocketAddr],
    stale: &mut HashSet<(usize, usize)>,
) {
    let view: std::collections::HashMap<&str, &ClusterNode> = o
        .nodes
        .iter()
        .filter(|l| !l.flags.handshake)
        .map(|l| (l.id.as_str(), l))
        .collect();
    for (peer, id) in ids.iter().enumerate().filter(|(peer, _)| *peer != node) {
        let line = view.get(id);
        if let Some(me) = selves.get(peer).and_then(Option::as_ref) {
            let agrees = line.is_some_and(|l| {
                l.flags.replica == me.flags.replica
                    && l.master_id == me.master_id
                    && l.slots == me.slots
            });
            if !agrees {
                stale.insert((peer, node));
            }
        }
        if line.is_some_and(|l| l.flags.noaddr || l.addr != Some(addrs[peer])) {
            stale.insert((node, peer));
        }
    }
}

/// `(replica, master)` when node `node` is a replica whose link is down and whose `master_host` is
/// not its master's current address. Pure.
pub fn misdirected_replica(
    node: usize,
    o: &Observation,
    ids: &[&str],
    addrs: &[SocketAddr],
) -> Option<(usize, usize)> {
    if o.master_link_up != Some(false) {
        return None;
    }
    let master_id = o.myself()?.master_id.as_deref()?;
    let master = ids.iter().position(|id| *id == master_id)?;
    o.master_addr
        .is_some_and(|a| a != addrs[master])
        .then_some((node, master))
}
