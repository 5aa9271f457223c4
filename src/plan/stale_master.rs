//! Two masters of one cluster claiming the same slots: the one with the lower config epoch is a
//! stale master that missed its own failover (it was down while its replica took over, then every
//! pod restarted). Redis settles exactly this once the two can talk: the higher config epoch keeps
//! the slots and the stale master turns into its replica and resyncs from it. So such a claim is
//! re-introduced, not refused. Claims between nodes that do not know each other (two clusters),
//! with equal epochs, or that would leave the stale master with slots of its own stay refusals.

use crate::node::Node;
use crate::observation::Observation;
use crate::slots::{self, SlotRange};

/// A stale master and the master that keeps the slots both claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// The pod that keeps the slots (the higher config epoch).
    pub keeper: usize,
    /// The stale master: it loses every slot it claims and becomes the keeper's replica.
    pub stale: usize,
    /// The slots the stale master claims.
    pub slots: Vec<SlotRange>,
    /// The keeper's config epoch.
    pub keeper_epoch: u64,
    /// The stale master's config epoch.
    pub stale_epoch: u64,
}

impl Settlement {
    /// The audit-trail line that says who keeps the slots and who becomes a replica.
    pub fn describe(&self, nodes: &[Node]) -> String {
        format!(
            "{} and {} both claim slots {}: {} keeps them (config epoch {} > {}); {} missed its own \
             failover and becomes its replica, resyncing from it once they talk",
            nodes[self.stale],
            nodes[self.keeper],
            slots::format(&self.slots),
            nodes[self.keeper].name,
            self.keeper_epoch,
            self.stale_epoch,
            nodes[self.stale].name
        )
    }
}

/// Sorts out the slots claimed by more than one node, each by its own account: the settlements
/// Redis makes by config epoch, or a refusal naming the nodes and the slot.
pub(super) fn settle(
    nodes: &[Node],
    observations: &[Observation],
) -> Result<Vec<Settlement>, String> {
    let claims: Vec<(usize, u64, &[SlotRange])> = observations
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.myself().map(|m| (i, m.config_epoch, m.slots.as_slice())))
        .filter(|(_, _, slots)| !slots.is_empty())
        .collect();
    // The claim with the highest config epoch, per slot.
    let mut owner: Vec<Option<(usize, u64)>> = vec![None; slots::SLOTS as usize];
    for &(i, epoch, ranges) in &claims {
        for slot in ranges.iter().flat_map(|r| r.clone()) {
            let current = &mut owner[slot as usize];
            match *current {
                Some((j, other)) if j != i => {
                    if !one_cluster(observations, i, j) {
                        return Err(format!(
                            "{} and {} both claim slot {slot}: they were formed as different clusters",
                            nodes[j], nodes[i]
                        ));
                    }
                    if other == epoch {
                        return Err(format!(
                            "{} and {} both claim slot {slot} with config epoch {epoch}: Redis cannot tell \
                             which one is current; check the cluster with `redis-cli --cluster check`",
                            nodes[j], nodes[i]
                        ));
                    }
                    if epoch > other {
                        *current = Some((i, epoch));
                    }
                }
                _ => *current = Some((i, epoch)),
            }
        }
    }
    let mut settlements = Vec::new();
    for &(i, epoch, ranges) in &claims {
        let holders = |slot: u16| owner[slot as usize].expect("every claimed slot has an owner");
        let mut lost = ranges.iter().flat_map(|r| r.clone()).map(holders);
        let Some(keeper) = lost.find(|(k, _)| *k != i) else {
            continue;
        };
        if ranges
            .iter()
            .flat_map(|r| r.clone())
            .map(holders)
            .all(|k| k == keeper)
        {
            settlements.push(Settlement {
                keeper: keeper.0,
                stale: i,
                slots: ranges.to_vec(),
                keeper_epoch: keeper.1,
                stale_epoch: epoch,
            });
        } else {
            // Redis would leave it a master of part of its slots, or split them: no plan expects that.
            return Err(format!(
                "{} claims slots {} that other masters of its cluster hold with a higher config epoch, \
                 but not all of them from one master: a person must look; check the cluster with \
                 `redis-cli --cluster check`",
                nodes[i],
                slots::format(ranges)
            ));
        }
    }
    Ok(settlements)
}

/// Both nodes know each other's node ID: they are members of one cluster.
fn one_cluster(observations: &[Observation], a: usize, b: usize) -> bool {
    observations[a].knows(&observations[b].id).is_some()
        && observations[b].knows(&observations[a].id).is_some()
}
