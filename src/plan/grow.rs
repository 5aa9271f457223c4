//! *grow*: the StatefulSet grew by whole shards. The old pods form a healthy cluster whose masters
//! own all 16384 slots, each with R replicas; the new pods hold no slot and no key → MEET them,
//! make the first new pods (by index) the new masters and the others their replicas, copy the
//! functions, then move slots from the fullest masters until every master holds 16384/M ±1
//! ([`super::rebalance`]).
//!
//! Resuming: the same rules read a half-done grow the same way (new pods already met, replicas
//! already following, some slots already moved: only the rest is planned), and a slot left open
//! by an interrupted move is finished when it is one of the moves the balance needs. Any other
//! open slot, a node flagged `fail`, or an old cluster that does not agree is refused.
//!
//! Not a grow (`None`, the other decisions apply): no empty pod to add, no master without slots,
//! and the masters already balanced; or the old cluster does not own all the slots.

use std::collections::BTreeSet;

use super::Step;
use super::rebalance::{self, OpenSlot};
use crate::layout::Layout;
use crate::node::Node;
use crate::observation::Observation;
use crate::slots::{self, SlotRange};

/// The grow plan, `Err` a refusal, `None` when this is no grow.
pub(super) fn grow(
    nodes: &[Node],
    layout: &Layout,
    observations: &[Observation],
) -> Option<Result<Vec<Step>, String>> {
    let me = |i: usize| observations[i].myself();
    // Masters that own slots, and the replicas that follow them: the cluster that exists.
    let owners: Vec<usize> = (0..nodes.len())
        .filter(|&i| me(i).is_some_and(|m| !m.flags.replica && m.has_slots()))
        .collect();
    let owner_ids: Vec<&str> = owners
        .iter()
        .map(|&i| observations[i].id.as_str())
        .collect();
    let follows_owner = |i: usize| {
        me(i).is_some_and(|m| {
            m.flags.replica
                && m.master_id
                    .as_deref()
                    .is_some_and(|id| owner_ids.contains(&id))
        })
    };
    let new: Vec<usize> = (0..nodes.len())
        .filter(|&i| !owners.contains(&i) && !follows_owner(i))
        .collect();
    let covered: BTreeSet<u16> = owners
        .iter()
        .flat_map(|&i| me(i).map(|m| m.slots.clone()).unwrap_or_default())
        .flatten()
        .collect();
    if owners.is_empty()
        || covered.len() != slots::SLOTS as usize
        || owners.iter().any(|&i| observations[i].alone())
        || owners.len() > layout.masters
        || new.iter().any(|&i| me(i).is_none())
    {
        return None;
    }
    let masters_to_add = layout.masters - owners.len();
    let (new_masters, new_replicas) = new.split_at(masters_to_add.min(new.len()));
    let mut masters: Vec<usize> = owners.clone();
    masters.extend(new_masters);
    let replicas = followers(
        &masters,
        new_replicas,
        observations,
        layout.replicas_per_master,
    )?;
    // Nothing to move: at most more replicas per master, which *partial* adds as it always did.
    if masters_to_add == 0 && balanced(layout, observations) && open_slots(observations).is_empty()
    {
        return None;
    }
    // The cluster owns every slot: a pod outside it that holds data would be lost or doubled. A new
    // master killed in its first slots holds the keys of slots it is still importing: those are
    // the grow's own, finished below.
    for &i in &new {
        let (o, node) = (&observations[i], &nodes[i]);
        let importing = |i: usize| {
            !observations[i].alone()
                && new_masters.contains(&i)
                && me(i).is_some_and(|m| m.open_slots.iter().any(|s| s.contains("-<-")))
        };
        // Its replica holds a copy of the same keys.
        let of_importing = me(i).is_some_and(|m| {
            m.flags.replica
                && new_masters.iter().any(|&n| {
                    m.master_id.as_deref() == Some(observations[n].id.as_str()) && importing(n)
                })
        });
        let importing = importing(i) || of_importing;
        if (o.keys > 0 && !importing) || me(i).is_some_and(|m| m.has_slots()) {
            return Some(Err(format!(
                "{node} holds {} key(s) and slots [{}] but is not part of the cluster that owns every \
                 slot (old data in its data dir?): move its data away; the bootstrap never deletes data",
                o.keys,
                me(i).map_or(String::new(), |m| slots::format(&m.slots))
            )));
        }
    }
    Some(plan(
        nodes,
        observations,
        &owners,
        &masters,
        new_masters,
        &replicas,
    ))
}

/// True when every master that owns slots (by its own line) holds 16384/M of them, or one more:
/// nothing for a grow to move. Reads only each node's own line.
pub(super) fn balanced(layout: &Layout, observations: &[Observation]) -> bool {
    let share = slots::SLOTS as usize / layout.masters;
    observations
        .iter()
        .filter_map(|o| o.myself())
        .filter(|me| !me.flags.replica && me.has_slots())
        .all(|me| (share..=share + 1).contains(&slots::count(&me.slots)))
}

/// Whom each new replica follows: masters lacking replicas, round-robin by index (new replica j of
/// K new masters follows new master j mod K). `None` when the pods do not fill every master with
/// R replicas exactly (no whole shards: the other decisions refuse or form).
fn followers(
    masters: &[usize],
    new_replicas: &[usize],
    observations: &[Observation],
    replicas_per_master: usize,
) -> Option<Vec<(usize, usize)>> {
    let have = |m: usize| {
        let id = observations[m].id.as_str();
        observations
            .iter()
            .enumerate()
            .filter(|(i, o)| {
                !new_replicas.contains(i)
                    && o.myself()
                        .is_some_and(|me| me.flags.replica && me.master_id.as_deref() == Some(id))
            })
            .count()
    };
    let mut places: Vec<usize> = Vec::new();
    for round in 0..replicas_per_master {
        places.extend(masters.iter().filter(|&&m| have(m) <= round));
    }
    (places.len() == new_replicas.len()).then(|| new_replicas.iter().copied().zip(places).collect())
}

/// The steps of a grow whose roles are decided.
fn plan(
    nodes: &[Node],
    observations: &[Observation],
    owners: &[usize],
    masters: &[usize],
    new_masters: &[usize],
    replicas: &[(usize, usize)],
) -> Result<Vec<Step>, String> {
    check_health(nodes, observations, owners)?;
    let seed = owners[0];
    let seed_id = observations[seed].id.as_str();
    let mut steps: Vec<Step> = Vec::new();
    for &i in new_masters.iter().chain(replicas.iter().map(|(r, _)| r)) {
        if observations[i].knows(seed_id).is_none() {
            steps.push(Step::Meet {
                node: i,
                peer: seed,
            });
        }
    }
    for &(replica, master) in replicas {
        let master_id = &observations[master].id;
        let me = observations[replica].myself().expect("checked by grow");
        if me.master_id.as_ref() != Some(master_id) {
            steps.push(Step::Replicate {
                node: replica,
                master,
                master_id: master_id.clone(),
            });
        }
    }
    for &m in new_masters {
        if observations[m].myself().is_some_and(|me| me.flags.replica) {
            return Err(format!(
                "{} replicates another node but the grow makes it a new master: check the cluster with \
                 `redis-cli --cluster check`",
                nodes[m]
            ));
        }
        steps.push(Step::CopyFunctions {
            node: m,
            from: seed,
        });
    }
    let owned: Vec<(String, Vec<SlotRange>)> = masters
        .iter()
        .map(|&m| {
            let mine = observations[m].myself().map(|me| me.slots.clone());
            (observations[m].id.clone(), mine.unwrap_or_default())
        })
        .collect();
    let keep: Vec<String> = owned.iter().map(|(id, _)| id.clone()).collect();
    let open = open_slots(observations);
    let moves = rebalance::rebalance_resuming(&owned, &keep, &open).map_err(|o| {
        format!(
            "{} reports open slot {} to {} (a resharding in progress) but it is not a move of this \
             grow: finish or cancel it with `redis-cli --cluster fix`, then run the bootstrap again",
            name(nodes, observations, &o.from),
            o.slot,
            name(nodes, observations, &o.to)
        )
    })?;
    let index = |id: &str| {
        observations
            .iter()
            .position(|o| o.id == id)
            .expect("a master")
    };
    steps.extend(moves.into_iter().map(|m| Step::MoveSlots {
        from: index(&m.from),
        to: index(&m.to),
        from_id: m.from,
        to_id: m.to,
        slots: m.slots,
        masters: masters.to_vec(),
    }));
    Ok(steps)
}

/// The pod name of node `id`, or the ID when it is none of ours.
pub(super) fn name(nodes: &[Node], observations: &[Observation], id: &str) -> String {
    observations
        .iter()
        .position(|o| o.id == id)
        .map_or(id.to_string(), |i| nodes[i].to_string())
}

/// Before any slot moves, the cluster that exists must be healthy by every member's account: no
/// node flagged `fail`, every slot served. A `fail?` alone (one node's suspicion, which a busy
/// machine raises and clears within a node timeout) does not stop it: a node that is really gone
/// fails the move's commands, which stop the run with its slots left open for the next one.
pub(super) fn check_health(
    nodes: &[Node],
    observations: &[Observation],
    owners: &[usize],
) -> Result<(), String> {
    for (i, o) in observations.iter().enumerate().filter(|(_, o)| !o.alone()) {
        if let Some(line) = o.nodes.iter().find(|l| l.flags.fail) {
            return Err(format!(
                "{} sees node {} as failing: the cluster must be healthy before slots move; bring that \
                 node back (or let the replace decision handle it), then run the bootstrap again",
                nodes[i],
                name(nodes, observations, &line.id)
            ));
        }
        let old = owners.contains(&i)
            || o.myself()
                .and_then(|m| m.master_id.as_deref())
                .is_some_and(|id| owners.iter().any(|&m| observations[m].id == id));
        if old && (!o.info.state_ok || o.info.slots_ok != slots::SLOTS as u64) {
            return Err(format!(
                "{} reports cluster_state:fail or slots not ok: the cluster must agree before slots move; \
                 run the bootstrap again once `redis-cli --cluster check` is clean",
                nodes[i]
            ));
        }
    }
    Ok(())
}

/// The open slots, by every master's own account: `[42->-<id>]` (migrating to id) and
/// `[42-<-<id>]` (importing from id), one entry per slot. Replicas are skipped: Valkey 8 shows
/// their master's open slots on their own line too.
pub(super) fn open_slots(observations: &[Observation]) -> Vec<OpenSlot> {
    let mut open: Vec<OpenSlot> = Vec::new();
    for o in observations {
        let Some(me) = o.myself().filter(|m| !m.flags.replica) else {
            continue;
        };
        for marker in &me.open_slots {
            let Some(parsed) = parse_marker(marker, &o.id) else {
                continue;
            };
            if !open.iter().any(|x| x.slot == parsed.slot) {
                open.push(parsed);
            }
        }
    }
    open
}

/// `[42->-<to>]` on `me` is 42 from `me` to `to`; `[42-<-<from>]` is 42 from `from` to `me`.
fn parse_marker(marker: &str, me: &str) -> Option<OpenSlot> {
    let inner = marker.strip_prefix('[')?.strip_suffix(']')?;
    if let Some((slot, to)) = inner.split_once("->-") {
        return Some(OpenSlot {
            slot: slot.parse().ok()?,
            from: me.to_string(),
            to: to.to_string(),
        });
    }
    let (slot, from) = inner.split_once("-<-")?;
    Some(OpenSlot {
        slot: slot.parse().ok()?,
        from: from.to_string(),
        to: me.to_string(),
    })
}
