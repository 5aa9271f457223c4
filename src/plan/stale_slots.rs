//! A replica's open slot that its master does not share: stale, and cleared.
//!
//! Valkey 8 replicates `CLUSTER SETSLOT` to a master's replicas before the master applies it, and
//! the master applies it only once they acknowledge: when one does not within the command's
//! timeout (2 s; a replica busy, syncing, or moved to another master meanwhile), the master
//! answers `NOREPLICAS` and keeps its old state, while the replicas that got the command keep
//! theirs. A replica so left `importing` or `migrating` a slot its master is not moving shows the
//! slot open forever (Redis never closes it: only a role change or a `SETSLOT` on it does), and
//! every tool, this one included, then refuses to touch the cluster; once promoted, it would
//! send clients to a move that is not happening. Redis 7.0 does not replicate `SETSLOT`, and
//! closes a node's open slots when it becomes a replica: its replicas never show one.
//!
//! Stale here means: a node that is a replica by its own line shows a slot open, and its master,
//! by its own line, shows no state at all for that slot. `CLUSTER SETSLOT <slot> STABLE` on that
//! master then changes nothing on the master (it has nothing to clear; it is no owner in a move
//! of that slot) and is replicated to its replicas, clearing the stale state. A slot the master
//! does have open is a move in progress, or one of its own: never touched here (the grow and drain
//! finish their own; any other is refused). Pure code; [`crate::stabilize`] confirms each one on
//! a second reading before it sends anything, since a replica may hold a master's `SETSLOT` for
//! up to its timeout before the master applies it.

use crate::observation::Observation;

/// A replica's open slot that its master does not share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleSlot {
    /// The replica (pod index) that shows the slot open.
    pub replica: usize,
    /// Its master (pod index), which shows no state for the slot.
    pub master: usize,
    /// The slot.
    pub slot: u16,
    /// How the replica shows it: `[42-<-<id>]` (importing) or `[42->-<id>]` (migrating).
    pub marker: String,
}

/// Every stale open slot, in pod order. Reads only each node's own line.
pub fn stale_slots(observations: &[Observation]) -> Vec<StaleSlot> {
    let mut stale = Vec::new();
    for (replica, o) in observations.iter().enumerate() {
        let Some(me) = o.myself().filter(|m| m.flags.replica) else {
            continue;
        };
        let Some(master_id) = me.master_id.as_deref() else {
            continue;
        };
        // The master must be one of the observed nodes, a master by its own account.
        let Some((master, own)) = observations
            .iter()
            .enumerate()
            .find(|(_, m)| m.id == master_id)
            .and_then(|(i, m)| m.myself().filter(|l| !l.flags.replica).map(|l| (i, l)))
        else {
            continue;
        };
        for marker in &me.open_slots {
            let Some(slot) = slot_of(marker) else {
                continue;
            };
            if own.open_slots.iter().all(|m| slot_of(m) != Some(slot)) {
                stale.push(StaleSlot {
                    replica,
                    master,
                    slot,
                    marker: marker.clone(),
                });
            }
        }
    }
    stale
}

/// The slot of an open-slot marker: `[42->-<id>]` and `[42-<-<id>]` are slot 42.
pub fn slot_of(marker: &str) -> Option<u16> {
    let inner = marker.strip_prefix('[')?;
    let end = inner.find(['-'])?;
    inner[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const R: &str = "cccccccccccccccccccccccccccccccccccccccc";

    /// A node's observation with only its own line, `flags` and `rest` as printed.
    fn own(id: &str, flags: &str, master: &str, rest: &str) -> Observation {
        Observation::parse(
            "cluster_enabled:1\r\n",
            id,
            &format!("{id} 10.0.0.1:6379@16379 myself,{flags} {master} 0 0 1 connected {rest}"),
            "cluster_state:ok\r\n",
        )
        .unwrap()
    }

    #[test]
    fn a_replicas_open_slot_its_master_does_not_share_is_stale() {
        let observations = [
            own(A, "master", "-", "0-8191"),
            own(B, "master", "-", "8192-16383"),
            own(R, "slave", B, &format!("[100-<-{A}] [9000->-{A}]")),
        ];
        let stale = stale_slots(&observations);
        assert_eq!(
            stale,
            vec![
                StaleSlot {
                    replica: 2,
                    master: 1,
                    slot: 100,
                    marker: format!("[100-<-{A}]")
                },
                StaleSlot {
                    replica: 2,
                    master: 1,
                    slot: 9000,
                    marker: format!("[9000->-{A}]")
                },
            ]
        );
    }

    #[test]
    fn a_move_in_progress_is_never_stale() {
        // B imports 100 from A; its replica shows the same (Valkey replicates SETSLOT): a move.
        let observations = [
            own(A, "master", "-", &format!("0-8191 [100->-{B}]")),
            own(B, "master", "-", &format!("8192-16383 [100-<-{A}]")),
            own(R, "slave", B, &format!("[100-<-{A}]")),
        ];
        assert_eq!(stale_slots(&observations), vec![]);
        // The master has the slot open otherwise: no STABLE may touch it either.
        let observations = [
            own(A, "master", "-", "0-8191"),
            own(B, "master", "-", &format!("8192-16383 [100-<-{R}]")),
            own(R, "slave", B, &format!("[100-<-{A}]")),
        ];
        assert_eq!(stale_slots(&observations), vec![]);
    }

    #[test]
    fn a_masters_own_open_slot_and_an_unknown_master_are_left_alone() {
        let observations = [
            own(A, "master", "-", &format!("0-8191 [100->-{B}]")),
            own(R, "slave", B, &format!("[100-<-{A}]")),
        ];
        assert_eq!(stale_slots(&observations), vec![]);
    }

    #[test]
    fn markers_name_their_slot() {
        assert_eq!(slot_of(&format!("[42->-{A}]")), Some(42));
        assert_eq!(slot_of(&format!("[16383-<-{A}]")), Some(16383));
        assert_eq!(slot_of("[x->-y]"), None);
    }
}
