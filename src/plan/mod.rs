//! The planner: from what every node says, decide what the cluster is and what is missing.
//! Pure code (no I/O), so every decision is unit-tested. One file per decision:
//!
//! - *formed*: every node agrees on the right shape ([`crate::agreement`]) → nothing to do;
//! - *fresh* ([`fresh`]): every node knows only itself and holds no slots and no keys → the whole
//!   plan;
//! - *partial* ([`partial`]): an earlier run was interrupted and what exists is a subset of the
//!   plan → the rest;
//! - *reconnect* ([`reconnect`]): the nodes kept their IDs and slots but lost each other (new
//!   IPs, in any permutation) → `CLUSTER MEET` where a view is wrong, nothing else; a stale master
//!   that missed its own failover is re-introduced and Redis settles it by config epoch
//!   ([`stale_master`]);
//! - *replace* ([`replace`]): one pod lost its volume and came back empty with a new node ID; the
//!   others flag its old ID `fail` and it owned no slots → `CLUSTER FORGET` the old ID, `CLUSTER
//!   MEET` the new node, `CLUSTER REPLICATE` it where a replica is missing;
//! - *grow* ([`grow`]): the StatefulSet grew by whole shards and the new pods are empty → `CLUSTER
//!   MEET` them, `CLUSTER REPLICATE` the new replicas, then move slots from the fullest masters
//!   until every master holds 16384/M ±1 ([`rebalance`], carried out by [`crate::migrate`]); a
//!   half-done grow, or a slot left open by one of its moves, is finished;
//! - *drain* ([`drain`]): `BOOTSTRAP_DRAIN_TO=D` is set and there are more than D pods → move every
//!   slot off the masters among pods D and up, before the StatefulSet shrinks (checked before
//!   *grow*, which would otherwise fill the drained masters again);
//! - *shrink* ([`shrink`]): the StatefulSet shrank; the pods form the whole cluster but still know
//!   removed node IDs (no slots, `fail`) → `CLUSTER FORGET` them on every node;
//! - *repair* ([`repair`]): the cluster is healthy but its replicas are not R per master (any
//!   layout, also in static mode), or, in Kubernetes mode, pods moved so that a shard's replicas
//!   share its master's node or zone, or one domain holds most masters → `CLUSTER REPLICATE` and
//!   manual `CLUSTER FAILOVER`s, one at a time, in a safe order; never a slot moved;
//! - *settling*: the shape is complete and every address is right, the nodes only need time;
//! - *waiting* ([`waiting`]): a pod just left (removed, or back with a new ID) and not every node
//!   flags its old ID `fail` yet → nothing now: read again and plan anew once they agree;
//! - otherwise a refusal that names the node and what to do (exit code 3, [`refuse`]).
//!
//! Each step is planned only if the observations say it is missing, so a crash at any point is safe
//! to re-run.

mod components;
pub mod drain;
mod fresh;
mod grow;
mod partial;
pub mod placement;
pub mod rebalance;
mod reconnect;
mod refuse;
pub mod repair;
mod replace;
mod shape;
mod shrink;
pub mod stale_master;
pub mod stale_slots;
mod step;
mod waiting;

use std::collections::HashSet;
use std::fmt;

pub use stale_master::Settlement;
pub use step::Step;
pub use waiting::departed;

use crate::agreement;
use crate::layout::Layout;
use crate::node::Node;
use crate::observation::Observation;

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
    /// A pod lost its volume and came back empty: forget its old ID, add it back as a replica.
    Replace,
    /// The StatefulSet grew by whole shards: add them and move their share of slots to them.
    Grow,
    /// `BOOTSTRAP_DRAIN_TO` is set: move the highest shards' slots away (none left: drained).
    Drain,
    /// The StatefulSet shrank: forget the removed pods' node IDs.
    Shrink,
    /// A pod just left and not every node flags its old ID `fail` yet: read again, plan anew.
    Waiting,
    /// The cluster is healthy but its replicas are not R per master, or pods moved so that a
    /// shard shares a node or zone: re-point replicas, fail over inside shards ([`repair`]).
    Repair,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decision::Formed => "formed",
            Decision::Fresh => "fresh",
            Decision::Partial => "partial",
            Decision::Reconnect => "reconnect",
            Decision::Settling => "settling",
            Decision::Replace => "replace",
            Decision::Grow => "grow",
            Decision::Drain => "drain",
            Decision::Shrink => "shrink",
            Decision::Waiting => "waiting",
            Decision::Repair => "repair",
        })
    }
}

impl Decision {
    /// What the decision means, for the log line that announces the plan.
    pub fn explain(self) -> &'static str {
        match self {
            Decision::Formed => "the cluster is formed and every node agrees; nothing to do",
            Decision::Fresh => "every node is empty and alone; forming the cluster",
            Decision::Partial => "an earlier run was interrupted; finishing what is missing",
            Decision::Reconnect => "the nodes lost each other (new addresses); re-introducing them",
            Decision::Settling => "the cluster is complete; waiting for every node to agree",
            Decision::Grow => {
                "the StatefulSet grew by whole shards; adding them and moving their share of slots"
            }
            Decision::Drain => {
                "BOOTSTRAP_DRAIN_TO is set: moving every slot off the highest pods before the StatefulSet shrinks"
            }
            Decision::Shrink => {
                "the StatefulSet shrank: forgetting the removed pods' node IDs on every node"
            }
            Decision::Repair => {
                "the cluster is healthy but its replicas are not R per master, or share a machine \
                 with their master: re-pairing them one move at a time"
            }
            Decision::Waiting => {
                "a pod just left and not every node flags it fail yet; waiting for them to agree"
            }
            Decision::Replace => {
                "a pod lost its volume and came back empty; forgetting its old node ID and adding it as a replica"
            }
        }
    }
}

/// The decision, the steps that carry it out in order, and what the audit trail should say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// What the cluster is.
    pub decision: Decision,
    /// What is missing, in the order to do it.
    pub steps: Vec<Step>,
    /// Findings worth a log line: addresses that now belong to another node, stale masters that
    /// Redis will settle by config epoch.
    pub notes: Vec<String>,
}

impl Plan {
    fn new(decision: Decision, steps: Vec<Step>) -> Plan {
        Plan {
            decision,
            steps,
            notes: Vec::new(),
        }
    }
}

/// The plan of a run whose every view agreed on the formed cluster with no slot open
/// ([`crate::survey`]), made from each node's own line alone: *formed*, as [`plan`] decides from
/// such views, unless a drain is due or the masters' slots are not balanced ±1 (a *grow*
/// rebalances them). `None` then: the planner needs the whole views.
pub fn plan_agreed(
    nodes: &[Node],
    layout: &Layout,
    observations: &[Observation],
    drain_to: Option<usize>,
) -> Option<Plan> {
    let draining = drain_to.is_some_and(|d| nodes.len() > d);
    (!draining && grow::balanced(layout, observations))
        .then(|| Plan::new(Decision::Formed, Vec::new()))
}

/// Decides what to do. `observations[i]` is what `nodes[i]` said. `Err` is a refusal.
pub fn plan(nodes: &[Node], layout: &Layout, observations: &[Observation]) -> Result<Plan, String> {
    plan_draining(nodes, layout, observations, None)
}

/// [`plan`] with `BOOTSTRAP_DRAIN_TO`: with more pods than `drain_to`, the plan is the *drain*.
pub fn plan_draining(
    nodes: &[Node],
    layout: &Layout,
    observations: &[Observation],
    drain_to: Option<usize>,
) -> Result<Plan, String> {
    plan_remembering(nodes, layout, observations, drain_to, &HashSet::new())
}

/// [`plan_draining`] in a run that has already seen the IDs of `departed` gone
/// ([`departed`], [`crate::settle`]).
pub fn plan_remembering(
    nodes: &[Node],
    layout: &Layout,
    observations: &[Observation],
    drain_to: Option<usize>,
    departed: &HashSet<String>,
) -> Result<Plan, String> {
    if let Some(plan) = shrink::shrink(nodes, layout, observations) {
        return plan;
    }
    if let Some(why) = waiting::waiting(nodes, observations, departed) {
        let mut plan = Plan::new(Decision::Waiting, Vec::new());
        plan.notes.push(why);
        return Ok(plan);
    }
    let lost = replace::lost_id(nodes, observations)?;
    refuse::refuse_unsafe(nodes, observations, lost.as_deref())?;
    refuse::refuse_unloadable_syncs(nodes, observations)?;
    if let Some(d) = drain_to.filter(|&d| nodes.len() > d) {
        return drain::drain(nodes, layout, observations, d);
    }
    if lost.is_some() {
        return replace::replace(nodes, layout, observations, lost.as_deref());
    }
    if let Some(steps) = grow::grow(nodes, layout, observations) {
        return Ok(Plan::new(Decision::Grow, steps?));
    }
    refuse::refuse_open_slots(nodes, observations)?;
    let settled = stale_master::settle(nodes, observations)?;
    let stale = stabilize(nodes, observations);
    if agreement::check(nodes, layout, observations).is_ok() {
        return Ok(if stale.steps.is_empty() {
            Plan::new(Decision::Formed, Vec::new())
        } else {
            stale
        });
    }
    if agreement::healthy(nodes, layout, observations).is_ok() {
        // Healthy, but the replicas are not R per master (Redis's replica migration, a failover):
        // re-pointing replicas gives each master its R, no waiting makes it so by itself.
        return Ok(repair::complete(
            Plan {
                decision: Decision::Repair,
                ..stale
            },
            nodes,
            layout,
            observations,
            false,
        ));
    }
    let groups = components::components(observations);
    if shape::full_shape(layout, observations, &settled)
        && groups.iter().any(|g| g.len() == nodes.len())
    {
        let (steps, mut notes) = reconnect::reconnect(nodes, observations);
        notes.extend(settled.iter().map(|s| s.describe(nodes)));
        let decision = if steps.is_empty() {
            Decision::Settling
        } else {
            Decision::Reconnect
        };
        return Ok(Plan {
            decision,
            steps,
            notes,
        });
    }
    if let Err(why) = partial::subset_of_plan(nodes, layout, observations) {
        // A replace interrupted after every FORGET: no node knows the lost ID any more.
        if let Ok(plan) = replace::replace(nodes, layout, observations, None) {
            return Ok(plan);
        }
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
    let seed = groups
        .iter()
        .max_by_key(|g| (g.len(), std::cmp::Reverse(g[0])))
        .map_or(0, |g| g[0]);
    let steps = partial::missing_steps(nodes, layout, observations, seed);
    let decision = if fresh::is_fresh(observations) {
        Decision::Fresh
    } else {
        Decision::Partial
    };
    Ok(Plan::new(decision, steps))
}

/// A *repair* that clears every replica's stale open slot ([`stale_slots`]): one
/// `CLUSTER SETSLOT <slot> STABLE` on its master each, with a note for the audit trail. No steps
/// when there is none.
fn stabilize(nodes: &[Node], observations: &[Observation]) -> Plan {
    let mut plan = Plan::new(Decision::Repair, Vec::new());
    for s in stale_slots::stale_slots(observations) {
        plan.notes.push(format!(
            "repair: {} (a replica of {}) shows slot {} open ({}) where its master shows no move:              a SETSLOT its master never applied; cleared by CLUSTER SETSLOT {} STABLE on {}",
            nodes[s.replica].name,
            nodes[s.master].name,
            s.slot,
            s.marker,
            s.slot,
            nodes[s.master].name
        ));
        plan.steps.push(Step::Stabilize {
            node: s.master,
            replica: s.replica,
            slot: s.slot,
            marker: s.marker,
        });
    }
    plan
}

#[cfg(test)]
mod tests;
