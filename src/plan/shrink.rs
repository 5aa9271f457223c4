//! *shrink*: the StatefulSet shrank. The N pods form a whole cluster of the layout's shape (M
//! masters owning slots, each followed by R of the pods), but they still know node IDs that are
//! none of the N pods, flagged `fail`: the removed pods → `CLUSTER FORGET` each removed ID on every
//! node that knows it, in one round trip, within Redis's 60 s ban (the same step as *replace*).
//! Removed replicas qualify too.
//!
//! Only IDs that own no slots. A removed node that still owns slots took their keys with it (the
//! StatefulSet shrank without a drain): refused, naming the lost slots, the removed IDs and what to
//! do. An ID whose announced hostname is one of the N pods is a pod that came back empty
//! (*replace*), not a removed one; a state of another shape is left to the other decisions.

use std::collections::{BTreeMap, HashSet};

use super::replace::who;
use super::{Decision, Plan, Step};
use crate::cluster_nodes::ClusterNode;
use crate::layout::Layout;
use crate::node::Node;
use crate::observation::Observation;
use crate::slots::{self, SlotRange};

/// The shrink plan, `Err` a refusal, `None` when this is no shrink.
pub(super) fn shrink(
    nodes: &[Node],
    layout: &Layout,
    observations: &[Observation],
) -> Option<Result<Plan, String>> {
    if observations.iter().any(|o| !o.cluster_enabled) {
        return None;
    }
    let ours: HashSet<&str> = observations.iter().map(|o| o.id.as_str()).collect();
    if ours.len() != nodes.len() {
        return None;
    }
    let mut removed: BTreeMap<&str, Vec<&ClusterNode>> = BTreeMap::new();
    for o in observations {
        for line in o.nodes.iter().filter(|l| !ours.contains(l.id.as_str())) {
            removed.entry(line.id.as_str()).or_default().push(line);
        }
    }
    let lines = || removed.values().flatten();
    if removed.is_empty()
        || lines().any(|l| !l.flags.handshake && !l.flags.fail && !l.flags.pfail)
        || lines().any(|l| nodes.iter().any(|n| l.announces(&n.name)))
        || !whole_cluster(layout, observations)
    {
        return None;
    }
    let mut lost: Vec<String> = Vec::new();
    let mut all_lost: Vec<SlotRange> = Vec::new();
    for (id, seen) in &removed {
        let mut owned: Vec<SlotRange> = seen.iter().flat_map(|l| l.slots.clone()).collect();
        owned.sort_by_key(|r| (*r.start(), *r.end()));
        owned.dedup();
        if !owned.is_empty() {
            lost.push(format!(
                "{id} ({}) owns {}",
                who(nodes, seen),
                slots::format(&owned)
            ));
            all_lost.extend(owned);
        }
    }
    if !lost.is_empty() {
        all_lost.sort_by_key(|r| (*r.start(), *r.end()));
        all_lost.dedup();
        return Some(Err(format!(
            "the StatefulSet shrank to {} pods without a drain: slots {} ({} slots) are lost with the \
             removed nodes ({}). Scale the StatefulSet back up so those pods return with their volumes, \
             then drain them with BOOTSTRAP_DRAIN_TO={} before scaling down; or, accepting the loss of \
             those slots' keys, assign them with `redis-cli --cluster fix` and run the bootstrap again",
            nodes.len(),
            slots::format(&all_lost),
            slots::count(&all_lost),
            lost.join("; "),
            nodes.len()
        )));
    }
    if lines().any(|l| !l.flags.handshake && !l.flags.fail) {
        // Not every node flags them `fail` yet: *waiting*.
        return None;
    }
    let mut steps: Vec<Step> = Vec::new();
    for (i, o) in observations.iter().enumerate() {
        for id in removed.keys() {
            if o.knows(id).is_some() {
                steps.push(Step::Forget {
                    node: i,
                    id: id.to_string(),
                });
            }
        }
    }
    let mut plan = Plan::new(Decision::Shrink, steps);
    for (id, seen) in &removed {
        plan.notes.push(format!(
            "forgetting removed node {id} ({}): it owns no slots and is none of the {} pods",
            who(nodes, seen),
            nodes.len()
        ));
    }
    Some(Ok(plan))
}

/// The N pods are one cluster of the layout's shape: each knows every other, the masters own
/// slots, and each master is followed by exactly R of the pods (slots may be missing: lost).
fn whole_cluster(layout: &Layout, observations: &[Observation]) -> bool {
    let mut followers: BTreeMap<&str, usize> = BTreeMap::new();
    let mut replicas: Vec<&str> = Vec::new();
    for o in observations {
        if observations
            .iter()
            .any(|p| o.knows(&p.id).is_none_or(|l| l.flags.handshake))
        {
            return false;
        }
        let Some(me) = o.myself() else { return false };
        if me.flags.replica {
            let Some(master) = me.master_id.as_deref() else {
                return false;
            };
            replicas.push(master);
        } else if me.has_slots() {
            followers.insert(o.id.as_str(), 0);
        } else {
            return false;
        }
    }
    for master in replicas {
        match followers.get_mut(master) {
            Some(count) => *count += 1,
            None => return false,
        }
    }
    followers.len() == layout.masters
        && followers.values().all(|&c| c == layout.replicas_per_master)
}
