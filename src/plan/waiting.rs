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
//! second or two and the slots go with it, and the other nodes learn it a moment later (until
//! then the promoted pod claims the slots in its own view while others still give them to the
//! failed ID); then *replace* takes over. Without such a replica or claim the slots are lost,
//! and *replace* refuses.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use crate::cluster_nodes::ClusterNode;
use crate::node::Node;
use crate::observation::Observation;

/// The node IDs that are none of the N, with every line that knows them (handshakes aside).
pub(super) fn strangers(observations: &[Observation]) -> BTreeMap<&str, Vec<&ClusterNode>> {
    let ours: HashSet<&str> = observations.iter().map(|o| o.id.as_str()).collect();
    let mut strangers: BTreeMap<&str, Vec<&ClusterNode>> = BTreeMap::new();
    for o in observations {
        for line in o.nodes.iter().filter(|l| !l.flags.handshake) {
            if !ours.contains(line.id.as_str()) {
                strangers.entry(line.id.as_str()).or_default().push(line);
            }
        }
    }
    strangers
}

/// The IDs that are none of the N and look gone in every line that knows them: flagged `fail?`
/// or `fail`, link down, or announcing a pod name of this StatefulSet that is beyond the N (a
/// removed pod) or is one of the N, now served by another ID (a pod back with a new ID).
///
/// A link is not proof of life: Redis shows a link `connected` while it tries to reconnect to a
/// dead address, for an instant on loopback and for up to the connect timeout where the address
/// no longer answers. So a run remembers every ID it has once seen gone ([`crate::settle`]).
pub fn departed(nodes: &[Node], observations: &[Observation]) -> HashSet<String> {
    let gone = |l: &&ClusterNode| {
        l.flags.fail
            || l.flags.pfail
            || !l.connected
            || l.announced_pod().is_some_and(|pod| removed_pod(nodes, pod))
            || nodes.iter().any(|n| l.announces(&n.name))
    };
    strangers(observations)
        .into_iter()
        .filter(|(_, seen)| seen.iter().all(gone))
        .map(|(id, _)| id.to_string())
        .collect()
}

/// Why the run must wait, or `None` when no departed ID awaits its `fail` flag. `departed` holds
/// the IDs seen gone by earlier observations of this run.
pub(super) fn waiting(
    nodes: &[Node],
    observations: &[Observation],
    departed_before: &HashSet<String>,
) -> Option<String> {
    if observations.iter().any(|o| !o.cluster_enabled) {
        return None;
    }
    let strangers = strangers(observations);
    let departed_now = departed(nodes, observations);
    if strangers
        .keys()
        .any(|id| !departed_now.contains(*id) && !departed_before.contains(*id))
    {
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
    // Agreed failed, but a master that still owns slots while one of the pods replicates it (the
    // failover is coming) or already claims all of them (the other views have yet to learn it).
    let failing_over: Vec<String> = strangers
        .iter()
        .filter(|(_, seen)| seen.iter().any(|l| l.has_slots()))
        .filter_map(|(id, seen)| heir(nodes, observations, id, seen))
        .collect();
    if failing_over.is_empty() {
        return None;
    }
    Some(format!(
        "failed master(s) {} still own slots in some views: waiting for Redis's failover to promote \
         the replica and for every node to learn that it owns the slots now",
        failing_over.join(", ")
    ))
}

/// The pod taking over the slots of failed master `id`: its replica, or a master that claims in
/// its own view every slot some view still gives to `id`. `None`: nobody, the slots are lost.
fn heir(
    nodes: &[Node],
    observations: &[Observation],
    id: &str,
    seen: &[&ClusterNode],
) -> Option<String> {
    let mut unclaimed: BTreeSet<u16> = seen
        .iter()
        .flat_map(|l| l.slots.iter().cloned().flatten())
        .collect();
    for (i, o) in observations.iter().enumerate() {
        let Some(me) = o.myself() else { continue };
        if me.flags.replica && me.master_id.as_deref() == Some(id) {
            return Some(format!("{id} (its replica {})", nodes[i].name));
        }
    }
    let mut heirs = Vec::new();
    for (i, o) in observations.iter().enumerate() {
        let Some(me) = o.myself().filter(|me| !me.flags.replica) else {
            continue;
        };
        let before = unclaimed.len();
        for range in &me.slots {
            for slot in range.clone() {
                unclaimed.remove(&slot);
            }
        }
        if unclaimed.len() < before {
            heirs.push(nodes[i].name.as_str());
        }
    }
    (unclaimed.is_empty() && !heirs.is_empty())
        .then(|| format!("{id} (its slots now claimed by {})", heirs.join(", ")))
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
