//! The planner: from what every node says, decide what the cluster is and what is missing.
//! Pure code (no I/O), so every decision is unit-tested.
//!
//! Decisions:
//! - *formed*: every node agrees on the right shape → nothing to do;
//! - *fresh*: every node knows only itself and holds no slots and no keys → the whole plan;
//! - *partial*: an earlier run was interrupted and what exists is a subset of the plan → the rest;
//! - *reconnect*: the nodes kept their IDs and slots but lost each other (new IPs) → `CLUSTER MEET`
//!   at the new addresses, both ways, nothing else;
//! - *settling*: the shape is complete and every address is right, the nodes only need time;
//! - otherwise a refusal that names the node and what to do (exit code 3).
//!
//! Each step is planned only if the observations say it is missing, so a crash at any point is safe
//! to re-run.

use std::collections::HashMap;
use std::fmt;

use crate::agreement;
use crate::layout::{Layout, Role};
use crate::node::Node;
use crate::observation::Observation;
use crate::slots::{self, SlotRange};

pub mod placement;

/// What the planner concluded about the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Formed and agreed: nothing to do.
    Formed,
    /// Every node is empty and alone: form the whole cluster.
    Fresh,
    /// A subset of the plan exists: finish it.
    Partial,
    /// The cluster exists but its nodes lost each other: re-introduce them.
    Reconnect,
    /// The cluster exists and is addressed right; wait for it to agree.
    Settling,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decision::Formed => "formed",
            Decision::Fresh => "fresh",
            Decision::Partial => "partial",
            Decision::Reconnect => "reconnect",
            Decision::Settling => "settling",
        })
    }
}

/// One change to make on one node. Nodes are named by their pod index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `CLUSTER ADDSLOTSRANGE` on a master.
    AddSlots {
        /// The master.
        node: usize,
        /// Its planned slots.
        slots: SlotRange,
    },
    /// `CLUSTER SET-CONFIG-EPOCH` on a node that knows no other node yet.
    SetEpoch {
        /// The node.
        node: usize,
        /// A distinct epoch (pod index + 1).
        epoch: u64,
    },
    /// `CLUSTER MEET <peer address>` sent to `node`.
    Meet {
        /// The node that is told to meet.
        node: usize,
        /// The node it meets.
        peer: usize,
    },
    /// `CLUSTER REPLICATE <master id>` on a replica.
    Replicate {
        /// The replica.
        node: usize,
        /// The master's pod index.
        master: usize,
        /// The master's node ID.
        master_id: String,
    },
}

impl Step {
    /// The node the step changes.
    pub fn node(&self) -> usize {
        match self {
            Step::AddSlots { node, .. }
            | Step::SetEpoch { node, .. }
            | Step::Meet { node, .. }
            | Step::Replicate { node, .. } => *node,
        }
    }

    /// The command as it will be sent, with the node's name: the audit trail and the dry run.
    pub fn describe(&self, nodes: &[Node]) -> String {
        let on = &nodes[self.node()];
        match self {
            Step::AddSlots { slots, .. } => {
                format!(
                    "{on}: CLUSTER ADDSLOTSRANGE {} {}",
                    slots.start(),
                    slots.end()
                )
            }
            Step::SetEpoch { epoch, .. } => format!("{on}: CLUSTER SET-CONFIG-EPOCH {epoch}"),
            Step::Meet { peer, .. } => {
                let to = &nodes[*peer];
                format!(
                    "{on}: CLUSTER MEET {} {} (meet {})",
                    to.addr.ip(),
                    to.addr.port(),
                    to.name
                )
            }
            Step::Replicate {
                master, master_id, ..
            } => {
                format!(
                    "{on}: CLUSTER REPLICATE {master_id} (replica of {})",
                    nodes[*master].name
                )
            }
        }
    }
}

/// The decision and the steps that carry it out, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// What the cluster is.
    pub decision: Decision,
    /// What is missing, in the order to do it.
    pub steps: Vec<Step>,
}

/// Decides what to do. `observations[i]` is what `nodes[i]` said. `Err` is a refusal.
pub fn plan(nodes: &[Node], layout: &Layout, observations: &[Observation]) -> Result<Plan, String> {
    refuse_unsafe(nodes, observations)?;
    if agreement::check(nodes, layout, observations).is_ok() {
        return Ok(Plan {
            decision: Decision::Formed,
            steps: Vec::new(),
        });
    }
    let groups = components(observations);
    if full_shape(layout, observations) && groups.iter().any(|g| g.len() == nodes.len()) {
        let mut steps = meets(nodes, observations, 0);
        steps.extend(repoints(nodes, observations));
        let decision = if steps.is_empty() {
            Decision::Settling
        } else {
            Decision::Reconnect
        };
        return Ok(Plan { decision, steps });
    }
    if let Err(why) = subset_of_plan(nodes, layout, observations) {
        let clusters: Vec<&Vec<usize>> = groups.iter().filter(|g| g.len() > 1).collect();
        return Err(if clusters.len() > 1 {
            let names = |g: &Vec<usize>| {
                g.iter()
                    .map(|&i| nodes[i].name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "the nodes belong to different clusters ({{{}}} and {{{}}}): {why}",
                names(clusters[0]),
                names(clusters[1])
            )
        } else {
            why
        });
    }
    let fresh = observations.iter().all(|o| {
        o.alone()
            && o.keys == 0
            && o.myself()
                .is_some_and(|m| !m.has_slots() && m.config_epoch == 0)
    });
    let seed = groups
        .iter()
        .max_by_key(|g| (g.len(), std::cmp::Reverse(g[0])))
        .map_or(0, |g| g[0]);
    let mut steps = Vec::new();
    for (i, o) in observations.iter().enumerate() {
        if let (Role::Master(slots), Some(me)) = (layout.role(i), o.myself()) {
            if !me.has_slots() {
                steps.push(Step::AddSlots { node: i, slots });
            }
        }
    }
    for (i, o) in observations.iter().enumerate() {
        if o.alone() && o.myself().is_some_and(|m| m.config_epoch == 0) && o.info.my_epoch == 0 {
            steps.push(Step::SetEpoch {
                node: i,
                epoch: i as u64 + 1,
            });
        }
    }
    steps.extend(if fresh {
        introductions(layout)
    } else {
        meets(nodes, observations, seed)
    });
    for (i, o) in observations.iter().enumerate() {
        if let Role::Replica(master) = layout.role(i) {
            let master_id = &observations[master].id;
            if o.myself().and_then(|m| m.master_id.as_ref()) != Some(master_id) {
                steps.push(Step::Replicate {
                    node: i,
                    master,
                    master_id: master_id.clone(),
                });
            }
        }
    }
    let decision = if fresh {
        Decision::Fresh
    } else {
        Decision::Partial
    };
    Ok(Plan { decision, steps })
}

/// Refusals that hold whatever the rest of the state: the tool will not touch these nodes.
fn refuse_unsafe(nodes: &[Node], observations: &[Observation]) -> Result<(), String> {
    for (node, o) in nodes.iter().zip(observations) {
        if !o.cluster_enabled {
            return Err(format!(
                "{node} has cluster mode disabled: set `cluster-enabled yes` in its redis.conf and restart it"
            ));
        }
    }
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (i, o) in observations.iter().enumerate() {
        if let Some(j) = ids.insert(o.id.as_str(), i) {
            return Err(format!(
                "{} and {} are the same Redis node (ID {}): every address must reach a different node",
                nodes[j], nodes[i], o.id
            ));
        }
    }
    for (node, o) in nodes.iter().zip(observations) {
        for line in o.nodes.iter().filter(|l| !l.flags.handshake) {
            if !ids.contains_key(line.id.as_str()) {
                let at = line.addr.map_or("no address".into(), |a| a.to_string());
                return Err(format!(
                    "{node} knows node {} at {at}, which is not one of the {} nodes: it belongs to another \
                     cluster; point the bootstrap at that cluster's nodes, or remove the node from it yourself",
                    line.id,
                    nodes.len()
                ));
            }
            if let Some(open) = line.open_slots.first() {
                return Err(format!(
                    "{node} reports open slot {open} (a resharding in progress): finish or cancel it with \
                     `redis-cli --cluster fix`, then run the bootstrap again"
                ));
            }
        }
    }
    let mut owner: HashMap<u16, usize> = HashMap::new();
    for (i, o) in observations.iter().enumerate() {
        for range in o.myself().map(|m| m.slots.as_slice()).unwrap_or_default() {
            for slot in range.clone() {
                if let Some(j) = owner.insert(slot, i).filter(|j| *j != i) {
                    return Err(format!(
                        "{} and {} both claim slot {slot}: they were formed as different clusters",
                        nodes[j], nodes[i]
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Groups of nodes linked by knowing each other's IDs (each group sorted, lowest index first).
fn components(observations: &[Observation]) -> Vec<Vec<usize>> {
    let index: HashMap<&str, usize> = observations
        .iter()
        .enumerate()
        .map(|(i, o)| (o.id.as_str(), i))
        .collect();
    let mut parent: Vec<usize> = (0..observations.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for (i, o) in observations.iter().enumerate() {
        for line in o.nodes.iter().filter(|l| !l.flags.handshake) {
            if let Some(&j) = index.get(line.id.as_str()) {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in 0..observations.len() {
        let r = root(&mut parent, i);
        groups.entry(r).or_default().push(i);
    }
    let mut groups: Vec<Vec<usize>> = groups.into_values().collect();
    groups.sort();
    groups
}

/// True when, by each node's own account, the cluster already has its full shape: M masters that
/// own all the slots, each followed by R replicas. Roles need not follow pod order.
fn full_shape(layout: &Layout, observations: &[Observation]) -> bool {
    let mut owned = 0;
    let mut masters: HashMap<&str, usize> = HashMap::new();
    for o in observations {
        let Some(me) = o.myself() else { return false };
        if me.flags.replica {
            continue;
        }
        if !me.has_slots() {
            return false;
        }
        owned += slots::count(&me.slots);
        masters.insert(o.id.as_str(), 0);
    }
    for o in observations {
        let me = o.myself().expect("checked above");
        if me.flags.replica {
            match me.master_id.as_deref().and_then(|m| masters.get_mut(m)) {
                Some(count) => *count += 1,
                None => return false,
            }
        }
    }
    owned == slots::SLOTS as usize
        && masters.len() == layout.masters
        && masters.values().all(|r| *r == layout.replicas_per_master)
}

/// Refuses unless what exists is a subset of the plan: planned masters own their planned slots
/// or none, planned replicas own none and follow their planned master or no one, and no node that
/// would have to change holds keys.
fn subset_of_plan(
    nodes: &[Node],
    layout: &Layout,
    observations: &[Observation],
) -> Result<(), String> {
    for (i, o) in observations.iter().enumerate() {
        let node = &nodes[i];
        let me = o
            .myself()
            .ok_or_else(|| format!("{node} does not list itself in CLUSTER NODES"))?;
        if o.keys > 0 && o.alone() {
            return Err(format!(
                "{node} holds {} key(s) but is not part of the cluster (old data in its data dir?): \
                 move its data away or add it to a cluster yourself; the bootstrap never deletes data",
                o.keys
            ));
        }
        match layout.role(i) {
            Role::Master(planned) => {
                if me.flags.replica {
                    return Err(format!(
                        "{node} replicates {} but the plan makes it a master: this is not an interrupted \
                         bootstrap; check the cluster with `redis-cli --cluster check`",
                        me.master_id.as_deref().unwrap_or("?")
                    ));
                }
                if me.has_slots() && me.slots != [planned.clone()] {
                    return Err(format!(
                        "{node} owns slots {} but the plan gives it {}: slots are owned outside the plan; \
                         check the cluster with `redis-cli --cluster check`",
                        slots::format(&me.slots),
                        slots::format(&[planned])
                    ));
                }
                if o.keys > 0 && !me.has_slots() {
                    return Err(format!(
                        "{node} holds {} key(s) but no slots: move its data away; the bootstrap never deletes data",
                        o.keys
                    ));
                }
            }
            Role::Replica(master) => {
                if me.has_slots() {
                    return Err(format!(
                        "{node} owns slots {} but the plan makes it a replica of {}: slots are owned outside \
                         the plan; check the cluster with `redis-cli --cluster check`",
                        slots::format(&me.slots),
                        nodes[master]
                    ));
                }
                let follows = me.master_id.as_deref();
                if me.flags.replica && follows != Some(observations[master].id.as_str()) {
                    return Err(format!(
                        "{node} replicates {} but the plan makes it a replica of {}: check the cluster with \
                         `redis-cli --cluster check`",
                        follows.unwrap_or("?"),
                        nodes[master]
                    ));
                }
                if !me.flags.replica && o.keys > 0 {
                    return Err(format!(
                        "{node} holds {} key(s); making it a replica of {} would discard them: move its data \
                         away first; the bootstrap never deletes data",
                        o.keys, nodes[master]
                    ));
                }
            }
        }
    }
    Ok(())
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

/// `CLUSTER MEET` steps that make every node know `seed` and be known by it at its current address.
/// A node learns its own new address only when it receives a MEET, so a node that advertises a
/// stale address is also met by the seed.
fn meets(nodes: &[Node], observations: &[Observation], seed: usize) -> Vec<Step> {
    let knows_at = |who: usize, whom: usize| {
        observations[who]
            .knows(&observations[whom].id)
            .is_some_and(|l| !l.flags.handshake && l.addr == Some(nodes[whom].addr))
    };
    let stale = |who: usize| {
        observations[who]
            .myself()
            .and_then(|m| m.addr)
            .is_some_and(|a| a != nodes[who].addr)
    };
    let mut steps = Vec::new();
    for i in (0..nodes.len()).filter(|&i| i != seed) {
        if !knows_at(seed, i) || !knows_at(i, seed) || stale(seed) {
            steps.push(Step::Meet {
                node: i,
                peer: seed,
            });
        }
        if stale(i) {
            steps.push(Step::Meet {
                node: seed,
                peer: i,
            });
        }
    }
    steps
}

/// How many masters every fresh node meets: the seeds through which gossip spreads.
const SEEDS: usize = 3;

/// `CLUSTER MEET` steps for fresh nodes: every node meets the first [`SEEDS`] masters, and every
/// replica also meets its own master, so that it can follow it without waiting for gossip.
///
/// Measured with `bench/` on 2 cores, 1000 ms node timeout, time until converged at N = 30 / 100:
/// everyone meets one seed (redis-cli's way) 1.7–2.1 s / 2.3–3.2 s; the masters meet each other
/// (M²/2 MEETs) 1.3–1.6 s / 1.6–2.7 s; three seeds 1.1–1.5 s / 2.0–2.4 s, with at most 4 MEETs
/// per node however large N grows; everyone meets everyone (a handshake storm) 2.8–6.0 s at 100.
fn introductions(layout: &Layout) -> Vec<Step> {
    let seeds = SEEDS.min(layout.masters);
    let mut steps = Vec::new();
    for node in 1..layout.nodes {
        let own = match layout.role(node) {
            Role::Replica(master) => Some(master),
            Role::Master(_) => None,
        };
        let peers = own
            .into_iter()
            .chain((0..seeds.min(node)).filter(|&s| Some(s) != own));
        steps.extend(peers.map(|peer| Step::Meet { node, peer }));
    }
    steps
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
