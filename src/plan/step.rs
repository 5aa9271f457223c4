//! One change the planner asks for, on one node, and how it reads in the audit trail.

use crate::node::Node;
use crate::slots::SlotRange;

/// One change to make on one node. Nodes are named by their pod index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `CLUSTER ADDSLOTSRANGE` on a master.
    AddSlots {
        /// The master.
        node: usize,
        /// Its planned slots.
        slots: SlotRange,
    },
    /// `CLUSTER SET-CONFIG-EPOCH` on a node that knows no other node yet.
    SetEpoch {
        /// The node.
        node: usize,
        /// A distinct epoch (pod index + 1).
        epoch: u64,
    },
    /// `CLUSTER MEET <peer address>` sent to `node`.
    Meet {
        /// The node that is told to meet.
        node: usize,
        /// The node it meets.
        peer: usize,
    },
    /// `CLUSTER FORGET <id>`: `node` drops a lost node's ID (only in *replace*).
    Forget {
        /// The node that forgets.
        node: usize,
        /// The lost node's ID.
        id: String,
    },
    /// `CLUSTER REPLICATE <master id>` on a replica.
    Replicate {
        /// The replica.
        node: usize,
        /// The master's pod index.
        master: usize,
        /// The master's node ID.
        master_id: String,
    },
    /// A manual `CLUSTER FAILOVER` (no `FORCE`, no `TAKEOVER`) on a synced replica: it and its
    /// master swap roles (only in a placement repair, [`super::repair`]).
    Failover {
        /// The replica that becomes master.
        node: usize,
        /// Its master, which becomes its replica.
        master: usize,
        /// The master's node ID.
        master_id: String,
    },
    /// `CLUSTER SETSLOT <slot> STABLE` on a master that shows no state for the slot, which
    /// replicates it to its replicas: clears a replica's stale open slot ([`super::stale_slots`]).
    Stabilize {
        /// The master, told the slot is stable.
        node: usize,
        /// Its replica that shows the slot open.
        replica: usize,
        /// The slot.
        slot: u16,
        /// How the replica shows it (`[42-<-<id>]`).
        marker: String,
    },
    /// Moves slots from one master to another with their keys ([`crate::migrate`]): a growth or a
    /// drain.
    MoveSlots {
        /// The master giving the slots.
        from: usize,
        /// The master receiving them.
        to: usize,
        /// `from`'s node ID.
        from_id: String,
        /// `to`'s node ID.
        to_id: String,
        /// The slots, as sorted ranges.
        slots: Vec<SlotRange>,
        /// Every master of the cluster once the move is done (told the new owner of each slot).
        masters: Vec<usize>,
    },
    /// `FUNCTION DUMP` on `from`, `FUNCTION RESTORE` on the new master `node` (when `from` has
    /// functions and `node` none), as `redis-cli --cluster add-node` does.
    CopyFunctions {
        /// The new master.
        node: usize,
        /// An old master whose functions are copied.
        from: usize,
    },
}

impl Step {
    /// The node the step changes.
    pub fn node(&self) -> usize {
        match self {
            Step::AddSlots { node, .. }
            | Step::SetEpoch { node, .. }
            | Step::Meet { node, .. }
            | Step::Forget { node, .. }
            | Step::Replicate { node, .. }
            | Step::Failover { node, .. }
            | Step::Stabilize { node, .. }
            | Step::CopyFunctions { node, .. } => *node,
            Step::MoveSlots { from, .. } => *from,
        }
    }

    /// The command as it will be sent, with the node's name: the audit trail and the dry run.
    pub fn describe(&self, nodes: &[Node]) -> String {
        let on = &nodes[self.node()];
        match self {
            Step::AddSlots { slots, .. } => {
                format!(
                    "{on}: CLUSTER ADDSLOTSRANGE {} {}",
                    slots.start(),
                    slots.end()
                )
            }
            Step::SetEpoch { epoch, .. } => format!("{on}: CLUSTER SET-CONFIG-EPOCH {epoch}"),
            Step::Meet { peer, .. } => {
                let to = &nodes[*peer];
                format!(
                    "{on}: CLUSTER MEET {} {} (meet {})",
                    to.addr.ip(),
                    to.addr.port(),
                    to.name
                )
            }
            Step::Forget { id, .. } => format!("{on}: CLUSTER FORGET {id} (a lost node)"),
            Step::Replicate {
                master, master_id, ..
            } => {
                format!(
                    "{on}: CLUSTER REPLICATE {master_id} (replica of {})",
                    nodes[*master].name
                )
            }
            Step::Failover { master, .. } => {
                format!(
                    "{on}: CLUSTER FAILOVER (takes over from its master {})",
                    nodes[*master].name
                )
            }
            Step::Stabilize {
                replica,
                slot,
                marker,
                ..
            } => format!(
                "{on}: CLUSTER SETSLOT {slot} STABLE (clears {}'s stale {marker})",
                nodes[*replica].name
            ),
            Step::MoveSlots {
                from, to, slots, ..
            } => format!(
                "slot {}: {} → {}",
                crate::slots::format(slots),
                nodes[*from].name,
                nodes[*to].name
            ),
            Step::CopyFunctions { from, .. } => {
                format!(
                    "{on}: FUNCTION RESTORE (the functions of {})",
                    nodes[*from].name
                )
            }
        }
    }
}
