//! *waiting*: a pod just left: the StatefulSet shrank, or a pod lost its volume and came back
//! with a new node ID. The nodes still know its old ID, but not every node flags it `fail` yet
//! (Redis agrees on that within `cluster-node-timeout`). Until they do, neither *shrink* nor
//! *replace* may forget it (a `FORGET` before the `fail` would be gossiped back), and refusing
//! would make a person run the Job again for a state that resolves itself in seconds. So the
//! run changes nothing, reads the nodes again and plans anew ([`crate::settle`]).
//!
//! Only an ID that looks gone wherever it is known: flagged `fail?` or `fail`, its link down,
//! or announcing the name of one of this StatefulSet's pods beyond the N (a removed pod still
//! shutting down: the StatefulSet deletes it, nothing else can own that name). A stranger that
//! some node still reaches and that is not such a pod is alive: another cluster's node, refused
//! ([`super::refuse`]). A departed ID that owns slots is left to *shrink*'s refusal (slots lost
//! without a drain), checked first: waiting would not bring them back.
//!
//! Also waited for: a master every node flags `fail` that still owns slots while one of the pods
//! is its replica (its volume was lost, say). Redis's failover promotes that replica within a
//! second or two and the slots go with it; then *replace* takes over. Without such a replica the
//! slots are lost, and *replace* refuses.

use std::collections::{BTreeMap, HashSet};

use crate::cluster_nodes::ClusterNode;
use crate::node::Node;
use crate::observation::Observation;

/// Why the run must wait, or `None` when no departed ID awaits its `fail` flag.
pub(super) fn waiting(nodes: &[Node], observations: &[Observation]) -> Option<String> {
    if observations.iter().any(|o| !o.cluster_enabled) {
        return None;
    }
    let ours: HashSet<&str> = observations.iter().map(|o| o.id.as_str()).collect();
    let mut strangers: BTreeMap<&str, Vec<&ClusterNode>> = BTreeMap::new();
    for o in observations {
        for line in o.nodes.iter().filter(|l| !l.flags.handshake) {
            if !ours.contains(line.id.as_str()) {
                strangers.entry(line.id.as_str()).or_default().push(line);
            }
        }
    }
    let gone = |l: &&ClusterNode| {
        l.flags.fail
            || l.flags.pfail
            || !l.connected
            || l.hostname.as_deref().is_some_and(|h| removed_pod(nodes, h))
    };
    if strangers.values().flatten().any(|l| !gone(l)) {
        return None;
    }
    let pending: Vec<String> = strangers
        .iter()
        .filter(|(_, seen)| seen.iter().any(|l| !l.flags.fail))
        .map(|(id, seen)| {
            let agreed = seen.iter().filter(|l| l.flags.fail).count();
            format!(
                "{id} (flagged fail by {agreed} of the {} nodes that know it)",
                seen.len()
            )
        })
        .collect();
    if !pending.is_empty() {
        return Some(format!(
            "node(s) {} left the cluster (a pod removed, or back with a new ID) and are not yet \
             flagged fail by every node: waiting for them to agree (cluster-node-timeout) before \
             forgetting them",
            pending.join(", ")
        ));
    }
    // Agreed failed, but a master that still owns slots while one of the pods replicates it:
    // Redis's failover is about to promote that replica and move the slots to it.
    let failing_over: Vec<String> = strangers
        .iter()
        .filter(|(_, seen)| seen.iter().any(|l| l.has_slots()))
        .filter_map(|(id, _)| {
            let replica = observations.iter().position(|o| {
                o.myself()
                    .is_some_and(|me| me.flags.replica && me.master_id.as_deref() == Some(*id))
            })?;
            Some(format!("{id} (its replica {})", nodes[replica].name))
        })
        .collect();
    if failing_over.is_empty() {
        return None;
    }
    Some(format!(
        "failed master(s) {} still own slots: waiting for Redis's failover to promote the replica \
         and move the slots to it",
        failing_over.join(", ")
    ))
}

/// `name` is a pod of the StatefulSet whose pods 0..N are `nodes` (`<set>-<i>`), with an ordinal
/// of N or more: a pod the StatefulSet removed. Static mode's `host:port` names never match.
fn removed_pod(nodes: &[Node], name: &str) -> bool {
    let Some(set) = nodes.first().and_then(|n| n.name.strip_suffix("-0")) else {
        return false;
    };
    let ordinal_of = |name: &str| {
        name.strip_prefix(set)?
            .strip_prefix('-')?
            .parse::<usize>()
            .ok()
    };
    let ours = nodes
        .iter()
        .enumerate()
        .all(|(i, n)| ordinal_of(&n.name) == Some(i));
    ours && ordinal_of(name).is_some_and(|k| k >= nodes.len())
}
