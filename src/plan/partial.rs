//! *fresh* and *partial*: what exists is a subset of the plan (nothing at all, or what an
//! interrupted run left) → the missing steps, in order: slots, epochs, MEETs, replicas. Anything
//! that is not a subset of the plan is refused here, naming the node.

use super::Step;
use super::fresh;
use super::reconnect;
use crate::layout::{Layout, Role};
use crate::node::Node;
use crate::observation::Observation;
use crate::slots;

/// The steps still missing from the plan; `seed` is the node the others are linked with when
/// some of them already met.
pub(super) fn missing_steps(
    nodes: &[Node],
    layout: &Layout,
    observations: &[Observation],
    seed: usize,
) -> Vec<Step> {
    let mut steps = Vec::new();
    for (i, o) in observations.iter().enumerate() {
        if let (Role::Master(slots), Some(me)) = (layout.role(i), o.myself())
            && !me.has_slots()
        {
            steps.push(Step::AddSlots { node: i, slots });
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
    steps.extend(if fresh::is_fresh(observations) {
        fresh::introductions(layout)
    } else {
        reconnect::meets(nodes, observations, seed)
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
    steps
}

/// Refuses unless what exists is a subset of the plan: planned masters own their planned slots
/// or none, planned replicas own none and follow their planned master or no one, and no node that
/// would have to change holds keys.
pub(super) fn subset_of_plan(
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
