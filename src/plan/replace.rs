//! *replace*: a pod lost its volume and came back empty, with a new node ID, while the other nodes
//! still know its old ID and flag it `fail` → `CLUSTER FORGET` the old ID on every node that knows
//! it, `CLUSTER MEET` the new node, and `CLUSTER REPLICATE` it to the master whose shard lacks a
//! replica.
//!
//! Only when nothing is lost with the old ID: it owns no slots in any view (it was a replica, or its
//! replica was promoted), it is the only missing ID, the new node holds no keys, and the others
//! form the whole cluster minus that one replica. A lost ID that still owns slots means lost data:
//! refused, naming the slots and what a person can do. A re-run after an interrupted replace sees
//! the old ID on fewer nodes (some FORGETs ran), or on none and the new node already met: it
//! finishes the same way.

use std::collections::HashMap;

use super::{Decision, Plan, Step};
use crate::cluster_nodes::ClusterNode;
use crate::layout::Layout;
use crate::node::Node;
use crate::observation::Observation;
use crate::slots::{self, SlotRange};

/// The one lost node ID that *replace* forgets: a stranger (not one of the N) that every node
/// knowing it flags `fail`. `Ok(None)` when there is no stranger, or one that some node holds as
/// alive (another cluster's node, refused as before). `Err` when a lost ID still owns slots, when
/// two or more are lost, or when the nodes do not all agree yet that it failed (a safety net:
/// *waiting* is planned before this is asked, so no `FORGET` can precede the `fail` flag).
pub(super) fn lost_id(
    nodes: &[Node],
    observations: &[Observation],
) -> Result<Option<String>, String> {
    if observations.iter().any(|o| !o.cluster_enabled) {
        // Refused as it is, before anything else.
        return Ok(None);
    }
    let strangers = super::waiting::strangers(observations);
    if strangers.is_empty()
        || strangers
            .values()
            .flatten()
            .any(|l| !l.flags.fail && !l.flags.pfail)
    {
        return Ok(None);
    }
    for (id, seen) in &strangers {
        let mut owned: Vec<SlotRange> = seen.iter().flat_map(|l| l.slots.clone()).collect();
        owned.sort_by_key(|r| (*r.start(), *r.end()));
        owned.dedup();
        if !owned.is_empty() {
            return Err(format!(
                "node {id} ({}) is lost (flagged fail) and still owns slots {}: the data of those slots \
                 is gone unless its volume is restored. Restore that pod's volume from a backup and \
                 restart it, or accept losing those slots' data and assign them to a live master with \
                 `redis-cli --cluster fix`; then run the bootstrap again",
                who(nodes, seen),
                slots::format(&owned)
            ));
        }
    }
    if strangers.len() > 1 {
        let ids: Vec<String> = strangers
            .iter()
            .map(|(id, seen)| format!("{id} ({})", who(nodes, seen)))
            .collect();
        return Err(format!(
            "{} nodes are lost (flagged fail): {}; the bootstrap replaces one lost node at a time: \
             restore their volumes, or remove them yourself with `CLUSTER FORGET` on every node",
            ids.len(),
            ids.join(", ")
        ));
    }
    let (id, seen) = strangers.into_iter().next().expect("one stranger");
    if seen.iter().any(|l| !l.flags.fail) {
        return Err(format!(
            "node {id} ({}) is suspected failing (fail?) but not yet agreed failed: run the bootstrap \
             again once every node flags it fail (after cluster-node-timeout)",
            who(nodes, &seen)
        ));
    }
    Ok(Some(id.to_string()))
}

/// The plan that replaces `lost` (or finishes an interrupted replace when no node knows it any
/// more, `None`). `Err` says why this is not a replace.
pub(super) fn replace(
    nodes: &[Node],
    layout: &Layout,
    observations: &[Observation],
    lost: Option<&str>,
) -> Result<Plan, String> {
    let mut me = Vec::with_capacity(nodes.len());
    for (node, o) in nodes.iter().zip(observations) {
        me.push(
            o.myself()
                .ok_or_else(|| format!("{node} does not list itself in CLUSTER NODES"))?,
        );
    }
    let lost_name = lost.map_or("a lost node".to_string(), |id| format!("lost node {id}"));
    // The new node: the only master without slots (in the rest, every master owns slots).
    let empty: Vec<usize> = (0..nodes.len())
        .filter(|&i| !me[i].flags.replica && !me[i].has_slots())
        .collect();
    let [new] = empty[..] else {
        return Err(format!(
            "{lost_name} can be replaced only by exactly one empty node, and {} node(s) are masters \
             without slots; check the cluster with `redis-cli --cluster check`",
            empty.len()
        ));
    };
    let newcomer = &nodes[new];
    if observations[new].keys > 0 {
        return Err(format!(
            "{newcomer} would replace {lost_name} but holds {} key(s): move its data away first; the \
             bootstrap never deletes data",
            observations[new].keys
        ));
    }
    if let Some(id) = lost {
        for o in observations {
            if let Some(line) = o.knows(id)
                && let Some(h) = line.hostname.as_deref()
                && !line.announces(&newcomer.name)
            {
                return Err(format!(
                    "lost node {id} announced hostname {h}, but the empty node is {newcomer}: \
                     the lost pod did not come back; check which pod lost its volume"
                ));
            }
        }
    }
    let rest: Vec<usize> = (0..nodes.len()).filter(|&i| i != new).collect();
    let master = lacking_master(layout, observations, &me, &rest).ok_or_else(|| {
        format!(
            "{newcomer} would replace {lost_name}, but the other nodes are not a whole cluster lacking \
             one replica ({} masters owning all 16384 slots with {} replica(s) each): check the cluster \
             with `redis-cli --cluster check`",
            layout.masters, layout.replicas_per_master
        )
    })?;
    for &i in &rest {
        for &j in &rest {
            if i != j && known(&observations[i], &observations[j].id).is_none() {
                return Err(format!(
                    "{newcomer} would replace {lost_name}, but {} does not know {}: the other nodes must \
                     form one cluster first",
                    nodes[i], nodes[j]
                ));
            }
        }
    }

    let mut steps: Vec<Step> = Vec::new();
    if let Some(id) = lost {
        for (i, o) in observations.iter().enumerate() {
            if known(o, id).is_some() {
                steps.push(Step::Forget {
                    node: i,
                    id: id.to_string(),
                });
            }
        }
    }
    let (o_new, o_master) = (&observations[new], &observations[master]);
    if known(o_new, &o_master.id).is_none() || known(o_master, &o_new.id).is_none() {
        // The master meets the new node: a node learns its own IP from the MEET it receives.
        steps.push(Step::Meet {
            node: master,
            peer: new,
        });
    }
    steps.push(Step::Replicate {
        node: new,
        master,
        master_id: o_master.id.clone(),
    });
    let mut plan = Plan::new(Decision::Replace, steps);
    plan.notes.push(format!(
        "{newcomer} (node ID {}) replaces {lost_name} as a replica of {}",
        o_new.id, nodes[master]
    ));
    Ok(plan)
}

/// The master of the one shard lacking a replica, when the `rest` are the whole cluster but that
/// replica: M masters owning all slots, each followed by R replicas, one by R - 1.
fn lacking_master(
    layout: &Layout,
    observations: &[Observation],
    me: &[&ClusterNode],
    rest: &[usize],
) -> Option<usize> {
    let mut followers: HashMap<&str, (usize, usize)> = HashMap::new();
    let mut owned = 0;
    for &i in rest.iter().filter(|&&i| !me[i].flags.replica) {
        owned += slots::count(&me[i].slots);
        followers.insert(observations[i].id.as_str(), (i, 0));
    }
    for &i in rest.iter().filter(|&&i| me[i].flags.replica) {
        followers.get_mut(me[i].master_id.as_deref()?)?.1 += 1;
    }
    let r = layout.replicas_per_master;
    let short: Vec<usize> = followers
        .values()
        .filter(|(_, count)| *count + 1 == r)
        .map(|(i, _)| *i)
        .collect();
    let whole = followers.values().filter(|(_, count)| *count == r).count();
    (owned == slots::SLOTS as usize
        && followers.len() == layout.masters
        && short.len() == 1
        && whole + 1 == layout.masters)
        .then(|| short[0])
}

/// `o`'s line for node `id`, handshake done.
fn known<'a>(o: &'a Observation, id: &str) -> Option<&'a ClusterNode> {
    o.knows(id).filter(|l| !l.flags.handshake)
}

/// A lost node as a person finds it: its announced hostname, or the pod now at its last address.
pub(super) fn who(nodes: &[Node], seen: &[&ClusterNode]) -> String {
    if let Some(pod) = seen.iter().find_map(|l| l.announced_pod()) {
        return format!("pod {pod}");
    }
    match seen.iter().find_map(|l| l.addr) {
        Some(addr) => match nodes.iter().find(|n| n.addr == addr) {
            Some(n) => format!("last seen at {addr}, now {}'s address", n.name),
            None => format!("last seen at {addr}"),
        },
        None => "address unknown".to_string(),
    }
}
