//! What "formed" means: every node agrees on the whole topology, and that topology has the right
//! shape. Pure code, used by the planner (is there anything to do?) and by the convergence loop
//! (are we done?).
//!
//! Agreement, per node: `cluster_state:ok`; it knows exactly the N nodes, each at its current
//! address, every link connected and no `fail`, `fail?`, `handshake` or `noaddr` flag; all 16384
//! slots assigned and ok; the same masters, replicas and slots as every other node; replicas report
//! `master_link_status:up`. `cluster_state:ok` alone is not enough: right after a full restart each
//! node reports ok for seconds while it reaches no one.
//!
//! Shape: M masters with slots, each with R replicas, in any pod order (after a failover roles move).

use std::collections::{BTreeMap, HashMap};

use crate::layout::Layout;
use crate::node::Node;
use crate::observation::Observation;
use crate::slots;

/// Checks agreement and shape; `Err` lists what is still missing, naming the nodes.
pub fn check(
    nodes: &[Node],
    layout: &Layout,
    observations: &[Observation],
) -> Result<(), Vec<String>> {
    check_with(nodes, layout, observations, true)
}

/// [`check`], except that masters need not have exactly R replicas each: the cluster is healthy
/// (every node agrees, every slot served, every replica in sync, M masters) and only the replicas
/// are spread unevenly, or on their way from one master to another during a placement repair.
pub fn healthy(
    nodes: &[Node],
    layout: &Layout,
    observations: &[Observation],
) -> Result<(), Vec<String>> {
    check_with(nodes, layout, observations, false)
}

fn check_with(
    nodes: &[Node],
    layout: &Layout,
    observations: &[Observation],
    exact_replicas: bool,
) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let index: HashMap<&str, usize> = observations
        .iter()
        .enumerate()
        .map(|(i, o)| (o.id.as_str(), i))
        .collect();
    // Every view is compared with the first as it comes: at 500 nodes, holding them all would
    // double the memory of the observations.
    let first = observations.first().map(topology);
    for (i, o) in observations.iter().enumerate() {
        let me = &nodes[i];
        if !o.info.state_ok {
            problems.push(format!("{me} reports cluster_state:fail"));
        }
        let unknown: Vec<&str> = observations
            .iter()
            .zip(nodes)
            .filter(|(peer, _)| o.knows(&peer.id).is_none())
            .map(|(_, n)| n.name.as_str())
            .collect();
        if !unknown.is_empty() {
            problems.push(format!("{me} does not know {}", unknown.join(", ")));
        } else if o.nodes.len() != layout.nodes || o.info.known_nodes != layout.nodes as u64 {
            problems.push(format!(
                "{me} knows {} nodes, expected {}",
                o.info.known_nodes.max(o.nodes.len() as u64),
                layout.nodes
            ));
        }
        if o.info.slots_assigned != slots::SLOTS as u64 || o.info.slots_ok != slots::SLOTS as u64 {
            problems.push(format!(
                "{me} sees {} of {} slots ok",
                o.info.slots_ok,
                slots::SLOTS
            ));
        }
        if o.master_link_up == Some(false) {
            problems.push(format!("{me} has master_link_status:down"));
        }
        for line in &o.nodes {
            let Some(&j) = index.get(line.id.as_str()) else {
                problems.push(format!(
                    "{me} knows node {} which is not one of ours",
                    line.id
                ));
                continue;
            };
            let peer = &nodes[j].name;
            let f = line.flags;
            let state = [
                (f.fail, "fail"),
                (f.pfail, "fail?"),
                (f.handshake, "handshake"),
                (f.noaddr, "noaddr"),
                (!f.myself && !line.connected, "disconnected"),
            ];
            for (_, what) in state.iter().filter(|(bad, _)| *bad) {
                problems.push(format!("{me} sees {peer} as {what}"));
            }
            if line.addr != Some(nodes[j].addr) {
                let seen = line.addr.map_or("no address".into(), |a| a.to_string());
                problems.push(format!("{me} sees {peer} at {seen}, not {}", nodes[j].addr));
            }
        }
        if i > 0 && first.as_ref() != Some(&topology(o)) {
            problems.push(format!(
                "{} and {} disagree on masters, replicas or slots",
                nodes[0].name, nodes[i].name
            ));
        }
    }
    if let Some(first) = &first
        && let Err(shape) = shape(first, layout, exact_replicas)
    {
        problems.push(shape);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// A node's view of who is master of which slots and who replicates whom, by node ID.
type Topology<'a> = BTreeMap<&'a str, (Option<&'a str>, Vec<(u16, u16)>)>;

fn topology(o: &Observation) -> Topology<'_> {
    o.nodes
        .iter()
        .map(|n| {
            let mut ranges: Vec<(u16, u16)> =
                n.slots.iter().map(|r| (*r.start(), *r.end())).collect();
            ranges.sort_unstable();
            let master = if n.flags.replica {
                n.master_id.as_deref()
            } else {
                None
            };
            (n.id.as_str(), (master, ranges))
        })
        .collect()
}

/// M masters that own slots, each followed by exactly R replicas (any number when not
/// `exact_replicas`), and nothing else.
fn shape(view: &Topology, layout: &Layout, exact_replicas: bool) -> Result<(), String> {
    let masters: Vec<&str> = view
        .iter()
        .filter(|(_, (master, slots))| master.is_none() && !slots.is_empty())
        .map(|(id, _)| *id)
        .collect();
    let idle = view
        .values()
        .filter(|(master, slots)| master.is_none() && slots.is_empty())
        .count();
    let mut replicas: HashMap<&str, usize> = HashMap::new();
    for (master, _) in view.values() {
        if let Some(m) = master {
            *replicas.entry(m).or_default() += 1;
        }
    }
    let uneven = masters
        .iter()
        .filter(|m| replicas.get(*m).copied().unwrap_or(0) != layout.replicas_per_master)
        .count();
    if masters.len() == layout.masters && idle == 0 && (uneven == 0 || !exact_replicas) {
        Ok(())
    } else {
        Err(format!(
            "the cluster has {} master(s) with slots, {idle} without, {uneven} without exactly {} replica(s); \
             expected {} masters with {} replica(s) each",
            masters.len(),
            layout.replicas_per_master,
            layout.masters,
            layout.replicas_per_master
        ))
    }
}
