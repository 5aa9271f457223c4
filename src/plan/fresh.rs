//! *fresh*: every node knows only itself and holds no slots and no keys → the whole plan: slots,
//! distinct config epochs, introductions, replicas.

use super::Step;
use crate::layout::{Layout, Role};
use crate::observation::Observation;

/// True when every node is empty and alone, epoch 0: nothing of a cluster exists yet.
pub(super) fn is_fresh(observations: &[Observation]) -> bool {
    observations.iter().all(|o| {
        o.alone()
            && o.keys == 0
            && o.myself()
                .is_some_and(|m| !m.has_slots() && m.config_epoch == 0)
    })
}

/// How many masters every fresh node meets: the seeds through which gossip spreads.
const SEEDS: usize = 3;

/// `CLUSTER MEET` steps for fresh nodes: every node meets the first [`SEEDS`] masters, and every
/// replica also meets its own master, so that it can follow it without waiting for gossip.
///
/// Measured with `bench/` on 2 cores, 1000 ms node timeout, time until converged at N = 30 / 100:
/// everyone meets one seed (redis-cli's way) 1.7–2.1 s / 2.3–3.2 s; the masters meet each other
/// (M²/2 MEETs) 1.3–1.6 s / 1.6–2.7 s; three seeds 1.1–1.5 s / 2.0–2.4 s, with at most 4 MEETs
/// per node however large N grows; everyone meets everyone (a handshake storm) 2.8–6.0 s at 100.
pub(super) fn introductions(layout: &Layout) -> Vec<Step> {
    // The first masters of the pairing: pods 0, 1, 2 in the guide's layout, whichever pods the
    // placement made masters otherwise. Each seed meets the seeds before it.
    let seeds = &layout.pairing().masters[..SEEDS.min(layout.masters)];
    let mut steps = Vec::new();
    for node in 0..layout.nodes {
        let own = match layout.role(node) {
            Role::Replica(master) => Some(master),
            Role::Master(_) => None,
        };
        let before = seeds.iter().position(|&s| s == node).unwrap_or(seeds.len());
        let peers = own
            .into_iter()
            .chain(seeds[..before].iter().copied().filter(|&s| Some(s) != own));
        steps.extend(peers.map(|peer| Step::Meet { node, peer }));
    }
    steps
}
