//! *drain*: the explicit first half of a scale-in. With `BOOTSTRAP_DRAIN_TO=D` set and N > D pods,
//! every slot of the masters among pods D..N-1 moves to the masters among pods 0..D-1, balanced
//! ±1 like a grow ([`super::rebalance`], carried out by [`crate::migrate`]); the StatefulSet can
//! then shrink to D without losing a key. A drained cluster is a no-op (no steps): the target stays
//! set until the StatefulSet has shrunk, or the *grow* would read the empty highest masters as a
//! half-done growth and fill them again.
//!
//! Only whole shards leave: the kept pods must already be D/(1+R) masters each followed by R kept
//! replicas. A kept pod that replicates a drained master (roles moved by a failover) is refused
//! with what to do (`CLUSTER FAILOVER` on the kept replica); so is a cluster whose shards
//! interleave pods (formed fresh at N pods, pod k+M replicates pod k), whose highest pods are not
//! shards of their own. The cluster must be healthy (no `fail`, every slot served); a slot left
//! open by an interrupted drain is finished, any other open slot is refused.

use std::collections::{BTreeSet, HashMap};

use super::grow::{check_health, name, open_slots};
use super::rebalance;
use super::{Decision, Plan, Step};
use crate::layout::Layout;
use crate::node::Node;
use crate::observation::Observation;
use crate::slots::{self, SlotRange};

/// "pods 6–7" (or "pod 7"): the pods from index `from` up to `n` - 1.
pub fn pods_from(from: usize, n: usize) -> String {
    if from + 1 == n {
        format!("pod {from}")
    } else {
        format!("pods {from}–{}", n - 1)
    }
}

/// The drain plan for target `drain_to` (< `nodes.len()`); `Err` is a refusal. No steps: drained.
pub(super) fn drain(
    nodes: &[Node],
    layout: &Layout,
    observations: &[Observation],
    drain_to: usize,
) -> Result<Plan, String> {
    let n = nodes.len();
    let leaving = pods_from(drain_to, n);
    let mut me = Vec::with_capacity(n);
    for (node, o) in nodes.iter().zip(observations) {
        let mine = o.myself().filter(|_| !o.alone()).ok_or_else(|| {
            format!(
                "{node} is not part of the cluster: BOOTSTRAP_DRAIN_TO={drain_to} drains a formed cluster; \
                 remove the variable to form or grow it"
            )
        })?;
        me.push(mine);
    }
    let masters: Vec<usize> = (0..n).filter(|&i| !me[i].flags.replica).collect();
    let covered: BTreeSet<u16> = masters
        .iter()
        .flat_map(|&i| me[i].slots.iter().flat_map(|r| r.clone()))
        .collect();
    if covered.len() != slots::SLOTS as usize {
        return Err(format!(
            "the masters own {} of {} slots: the drain moves the slots of a whole cluster; check it with \
             `redis-cli --cluster check` first",
            covered.len(),
            slots::SLOTS
        ));
    }
    check_health(nodes, observations, &masters)?;

    let index: HashMap<&str, usize> = observations
        .iter()
        .enumerate()
        .map(|(i, o)| (o.id.as_str(), i))
        .collect();
    let mut kept_replicas: HashMap<usize, usize> = HashMap::new();
    for r in (0..n).filter(|&i| me[i].flags.replica) {
        let Some(&m) = me[r].master_id.as_deref().and_then(|id| index.get(id)) else {
            return Err(format!(
                "{} replicates a node that is none of the {n} pods: check the cluster with \
                 `redis-cli --cluster check`",
                nodes[r]
            ));
        };
        if r < drain_to && m >= drain_to {
            return Err(format!(
                "{} stays but replicates {}, which the drain empties ({leaving} leave): make {} the master \
                 of its shard first (`redis-cli -h <its address> CLUSTER FAILOVER`), wait until the \
                 cluster agrees, then run the drain again",
                nodes[r], nodes[m], nodes[r]
            ));
        }
        if r < drain_to {
            *kept_replicas.entry(m).or_default() += 1;
        }
    }
    let kept: Vec<usize> = masters.iter().copied().filter(|&m| m < drain_to).collect();
    let shards = drain_to / (layout.replicas_per_master + 1);
    let whole = kept
        .iter()
        .all(|m| kept_replicas.get(m).copied().unwrap_or(0) == layout.replicas_per_master);
    if kept.len() != shards || !whole {
        return Err(format!(
            "pods 0–{} are not {shards} whole shards ({} master(s) there, each needing {} replica(s) \
             among them): the drain removes whole shards that live on the highest pods, as a grow adds \
             them; a cluster whose shards interleave (formed at {n} pods, where pod k+{} replicates pod k) \
             cannot be drained to {drain_to} pods by the bootstrap",
            drain_to - 1,
            kept.len(),
            layout.replicas_per_master,
            masters.len()
        ));
    }

    let owned: Vec<(String, Vec<SlotRange>)> = masters
        .iter()
        .map(|&m| (observations[m].id.clone(), me[m].slots.clone()))
        .collect();
    let keep: Vec<String> = kept.iter().map(|&m| observations[m].id.clone()).collect();
    let moves =
        rebalance::rebalance_resuming(&owned, &keep, &open_slots(observations)).map_err(|o| {
            format!(
                "{} reports open slot {} to {} (a resharding in progress) but it is not a move of this \
                 drain: finish or cancel it with `redis-cli --cluster fix`, then run the bootstrap again",
                name(nodes, observations, &o.from),
                o.slot,
                name(nodes, observations, &o.to)
            )
        })?;
    let steps: Vec<Step> = moves
        .into_iter()
        .map(|m| Step::MoveSlots {
            from: index[m.from.as_str()],
            to: index[m.to.as_str()],
            from_id: m.from,
            to_id: m.to,
            slots: m.slots,
            masters: masters.clone(),
        })
        .collect();
    let mut plan = Plan::new(Decision::Drain, steps);
    plan.notes.push(if plan.steps.is_empty() {
        format!("{leaving} already hold no slots")
    } else {
        format!(
            "draining {leaving}: their slots move to the masters among pods 0–{}",
            drain_to - 1
        )
    });
    Ok(plan)
}
