//! *reconnect*: the nodes kept their IDs and slots but lost each other (pods restarted on new
//! IPs, in any permutation: a swap, a rotation, brand-new addresses, or a mix) → `CLUSTER MEET`
//! where a view is wrong, and `CLUSTER REPLICATE` to re-point replicas at their own master's new
//! address; no slot, epoch or role changes.
//!
//! What a MEET fixes, and why these are enough (Redis 7.0 and Valkey 8 alike):
//! - `CLUSTER MEET <addr>` sent to `a` makes `a` handshake with whoever listens at `addr`: when
//!   that is a node `a` already knows by ID, `a` moves it to that address at once. The receiver
//!   learns its own new IP from the MEET (without `cluster-announce-ip` nothing else tells it),
//!   and `a` then pings it on a new link, which moves `a` to its new address at the receiver
//!   (Redis updates a peer's address from the peer's own PING). One MEET repairs a pair.
//! - Every pair that either side holds wrong is met, all in one round: a node that holds a peer
//!   at a dead address otherwise learns the new one only from gossip, and Redis takes a gossiped
//!   address only for a peer it already flags failing, `cluster-node-timeout` after the restart.
//!   By then a majority has flagged the masters `fail`, every node reports `cluster_state:fail`,
//!   and a master's `fail` flag clears only 2 × the node timeout later: measured at N = 30 and
//!   5000 ms, meeting through one seed took 25 s where the same restart on the same addresses
//!   took 5.7 s. Meeting every such pair at once repairs every view within a few cron ticks
//!   (100 ms each), before any node times out.
//! - A node never re-learns the address of a peer it holds as `noaddr` (what it makes of a peer
//!   whose old address now answers with another node ID, IP reuse) by gossip; a MEET repairs it
//!   like any other wrong view.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use super::Step;
use crate::cluster_nodes::ClusterNode;
use crate::node::Node;
use crate::observation::Observation;

/// The MEETs and re-points that reconnect these nodes, and what the log should say about
/// addresses that now belong to another node.
pub(super) fn reconnect(nodes: &[Node], observations: &[Observation]) -> (Vec<Step>, Vec<String>) {
    let views = Views::new(nodes, observations);
    let mut steps = views.pair_meets();
    steps.extend(repoints(nodes, observations));
    (steps, views.moved_addresses())
}

/// `CLUSTER MEET` steps that link every node with `seed` at their current addresses, for
/// *partial* (an interrupted formation). One MEET per node: the seed meets a node that advertises
/// a stale address of its own (it learns its IP only by receiving a MEET), any other node meets
/// the seed.
pub(super) fn meets(nodes: &[Node], observations: &[Observation], seed: usize) -> Vec<Step> {
    Views::new(nodes, observations).seed_meets(seed)
}

/// What every node believes about every other node's address.
struct Views<'a> {
    nodes: &'a [Node],
    observations: &'a [Observation],
    /// Pod index by current address.
    at: HashMap<SocketAddr, usize>,
}

impl<'a> Views<'a> {
    fn new(nodes: &'a [Node], observations: &'a [Observation]) -> Views<'a> {
        let at = nodes.iter().enumerate().map(|(i, n)| (n.addr, i)).collect();
        Views {
            nodes,
            observations,
            at,
        }
    }

    /// `who`'s line for `whom`, handshake done.
    fn line(&self, who: usize, whom: usize) -> Option<&'a ClusterNode> {
        self.observations[who]
            .knows(&self.observations[whom].id)
            .filter(|l| !l.flags.handshake)
    }

    /// `who` knows `whom` at its current address.
    fn right(&self, who: usize, whom: usize) -> bool {
        self.line(who, whom)
            .is_some_and(|l| !l.flags.noaddr && l.addr == Some(self.nodes[whom].addr))
    }

    /// `who` advertises an address of its own that is not its current one.
    fn stale_self(&self, who: usize) -> bool {
        self.observations[who]
            .myself()
            .and_then(|m| m.addr)
            .is_some_and(|a| a != self.nodes[who].addr)
    }

    /// One MEET per pair that either side holds wrong, sent by a side that holds it wrong (its
    /// handshake moves the peer to its address at once); when both do, by the one whose turn it
    /// is in a round-robin, so the handshakes spread evenly over the nodes. Then a MEET to every
    /// node that advertises a stale address of its own and receives none yet.
    fn pair_meets(&self) -> Vec<Step> {
        let n = self.nodes.len();
        let mut steps = Vec::new();
        let mut sent = vec![0usize; n];
        let mut received = vec![false; n];
        for a in 0..n {
            for b in (a + 1)..n {
                let (wa, wb) = (!self.right(a, b), !self.right(b, a));
                let (node, peer) = match (wa, wb) {
                    (false, false) => continue,
                    (true, false) => (a, b),
                    (false, true) => (b, a),
                    // The receiver learns its own address: a stale one should receive.
                    (true, true) if self.stale_self(a) != self.stale_self(b) => {
                        if self.stale_self(b) { (a, b) } else { (b, a) }
                    }
                    // A round-robin orientation: each node sends to the next N/2 after it
                    // (modulo N), so every node sends and receives about N/2.
                    (true, true) if 2 * (b - a) <= n => (a, b),
                    (true, true) => (b, a),
                };
                sent[node] += 1;
                received[peer] = true;
                steps.push(Step::Meet { node, peer });
            }
        }
        for s in (0..n).filter(|&s| self.stale_self(s) && !received[s]) {
            let sender = (0..n)
                .filter(|&i| i != s)
                .min_by_key(|&i| (self.stale_self(i), sent[i]));
            if let Some(node) = sender {
                sent[node] += 1;
                steps.push(Step::Meet { node, peer: s });
            }
        }
        steps
    }

    fn seed_meets(&self, seed: usize) -> Vec<Step> {
        let mut steps = Vec::new();
        for i in (0..self.nodes.len()).filter(|&i| i != seed) {
            if self.stale_self(i) {
                steps.push(Step::Meet {
                    node: seed,
                    peer: i,
                });
            } else if !self.right(seed, i) || !self.right(i, seed) {
                steps.push(Step::Meet {
                    node: i,
                    peer: seed,
                });
            }
        }
        // The seed itself advertises a stale address only when every node does: one MEET to it
        // tells it its own.
        let met = |s: &Step| matches!(s, Step::Meet { peer, .. } if *peer == seed);
        if self.stale_self(seed)
            && !steps.iter().any(met)
            && let Some(other) = (0..self.nodes.len()).find(|&i| i != seed)
        {
            steps.push(Step::Meet {
                node: other,
                peer: seed,
            });
        }
        steps
    }

    /// What the audit trail says about reused addresses: one line per address that some node
    /// remembers for one node while another node listens there now, and one per node that others
    /// hold as `noaddr` (what Redis makes of a peer whose old address answered with another ID).
    fn moved_addresses(&self) -> Vec<String> {
        let mut moved: BTreeMap<SocketAddr, (usize, usize)> = BTreeMap::new();
        let mut noaddr: BTreeMap<usize, usize> = BTreeMap::new();
        for o in self.observations {
            for line in &o.nodes {
                let Some(was) = self.index(&line.id) else {
                    continue;
                };
                if line.flags.noaddr {
                    *noaddr.entry(was).or_default() += 1;
                }
                let Some(addr) = line.addr else { continue };
                if let Some(&now) = self.at.get(&addr).filter(|&&now| now != was) {
                    moved.entry(addr).or_insert((was, now));
                }
            }
        }
        let moved = moved.into_iter().map(|(addr, (was, now))| {
            format!(
                "{addr} was {}'s address (node ID {}) and is now {}'s (node ID {}): a reused pod IP",
                self.nodes[was].name,
                self.observations[was].id,
                self.nodes[now].name,
                self.observations[now].id
            )
        });
        let lost = noaddr.into_iter().map(|(j, count)| {
            format!(
                "{count} node(s) hold {} (node ID {}) as noaddr: the address they had for it answered \
                 with another node ID (a reused pod IP); it is at {} now",
                self.nodes[j].name, self.observations[j].id, self.nodes[j].addr
            )
        });
        moved.chain(lost).collect()
    }

    fn index(&self, id: &str) -> Option<usize> {
        self.observations.iter().position(|o| o.id == id)
    }
}

/// `CLUSTER REPLICATE <its own master>` for replicas that replicate from an address their master
/// no longer has: Redis 7.0 updates a master's address learnt through gossip without re-pointing
/// its replicas, which then stay down. Re-issuing REPLICATE for the same master only re-points.
fn repoints(nodes: &[Node], observations: &[Observation]) -> Vec<Step> {
    let index: HashMap<&str, usize> = observations
        .iter()
        .enumerate()
        .map(|(i, o)| (o.id.as_str(), i))
        .collect();
    let mut steps = Vec::new();
    for (i, o) in observations.iter().enumerate() {
        let Some(me) = o.myself().filter(|m| m.flags.replica) else {
            continue;
        };
        let Some((&master, master_id)) = me
            .master_id
            .as_deref()
            .and_then(|id| index.get(id).map(|m| (m, id)))
        else {
            continue;
        };
        if o.master_addr.is_some_and(|a| a != nodes[master].addr) {
            steps.push(Step::Replicate {
                node: i,
                master,
                master_id: master_id.to_string(),
            });
        }
    }
    steps
}
