//! Whether the cluster already has its full shape by each node's own account, whatever the
//! addresses: M masters that own all the slots, each followed by R replicas. Roles need not follow
//! pod order (after a failover they move), and a stale master that Redis will turn into a replica
//! (see [`super::stale_master`]) counts as the replica it is about to be.

use std::collections::HashMap;

use super::stale_master::Settlement;
use crate::layout::Layout;
use crate::observation::Observation;
use crate::slots;

/// True when the nodes, once they talk again, make the planned shape without any new role.
pub(super) fn full_shape(
    layout: &Layout,
    observations: &[Observation],
    settled: &[Settlement],
) -> bool {
    let demoted = |i: usize| settled.iter().find(|s| s.stale == i).map(|s| s.keeper);
    let mut owned = 0;
    let mut masters: HashMap<&str, usize> = HashMap::new();
    for (i, o) in observations.iter().enumerate() {
        let Some(me) = o.myself() else { return false };
        if me.flags.replica || demoted(i).is_some() {
            continue;
        }
        if !me.has_slots() {
            return false;
        }
        owned += slots::count(&me.slots);
        masters.insert(o.id.as_str(), 0);
    }
    for (i, o) in observations.iter().enumerate() {
        let me = o.myself().expect("checked above");
        let master = match demoted(i) {
            Some(keeper) => Some(observations[keeper].id.as_str()),
            None if me.flags.replica => me.master_id.as_deref(),
            None => continue,
        };
        match master.and_then(|m| masters.get_mut(m)) {
            Some(count) => *count += 1,
            None => return false,
        }
    }
    owned == slots::SLOTS as usize
        && masters.len() == layout.masters
        && masters.values().all(|r| *r == layout.replicas_per_master)
}
