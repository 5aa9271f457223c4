//! *Repair placement*: pods moved after formation (a drain, a full restart, failovers), and now a
//! shard's master shares a Kubernetes node or zone with its replicas, a domain holds most masters,
//! or the replicas are no longer R per master. Taken only on a formed, healthy cluster (the caller
//! checks): every slot served, every replica in sync, no node `fail`.
//!
//! Pure code. The input is where each pod runs and the shards as the nodes report them; the output
//! is the moves to make, one at a time, each waited for before the next:
//!
//! - [`Move::Replicate`]: `CLUSTER REPLICATE` on a replica, which leaves its shard for another
//!   (it drops its data and resyncs from its new master);
//! - [`Move::Failover`]: a manual `CLUSTER FAILOVER` (never `FORCE` or `TAKEOVER`) on a synced
//!   replica, which swaps roles with its master inside the shard. Slots never move.
//!
//! How it chooses:
//!
//! 1. **The goal** is the best the placement allows, as the pairing at formation sees it
//!    ([`super::placement::choose`]): no replica in its master's zone, else none on its master's
//!    node; and no failure domain holding a majority of the masters when a choice of masters
//!    avoids it (losing it would leave too few masters to vote a failover).
//! 2. **Few changes.** The current masters are kept (pinned) while they allow the goal; when they
//!    do not, pins are dropped one at a time, the first whose release reaches the goal, else the
//!    master in the most crowded domain. New masters go to the shard they already belong to when
//!    they can. Replicas then keep their shard whenever it fits (a b-matching by augmenting paths,
//!    each replica first trying its own shard).
//! 3. **Safe order.** At any moment at most one shard lacks a synced replica, and it is the one
//!    the next move feeds: a replica leaves a shard that keeps another synced replica (a *free*
//!    move) or, when none does (R = 1), a replica goes to a shard that needs it and the shard it
//!    left gets its own replica with the very next move. A move into a shard without a safe
//!    replica comes first, so the unsafe shard gains a safe replica before it gives up its unsafe
//!    one. Failovers happen when no shard lacks a replica, to a replica that has synced.
//! 4. **Only if better.** The moves are planned only when the result is strictly better (fewer
//!    shards without a replica outside the master's node, then zone; replicas R per master; no
//!    majority of masters in one domain; fewer replicas beside their master) and the order above
//!    exists; otherwise nothing is done and the per-shard warnings say what is unsafe.

use std::collections::HashMap;

use super::placement::{self, Pin, Separation};
use super::{Decision, Plan, Step};
use crate::layout::Layout;
use crate::node::{Node, Place};
use crate::observation::Observation;

/// One change to a formed cluster, by pod index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// `CLUSTER REPLICATE` on `replica`: it leaves its shard and follows `master`.
    Replicate {
        /// The replica that moves.
        replica: usize,
        /// The master it follows next.
        master: usize,
    },
    /// A manual `CLUSTER FAILOVER` on `replica`, a synced replica of `master`: they swap roles.
    Failover {
        /// The replica that becomes master.
        replica: usize,
        /// The master that becomes its replica.
        master: usize,
    },
}

/// The planned repair: its moves in order, and what the result guarantees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// The moves, each waited for (resync, or the old master turned replica) before the next.
    pub moves: Vec<Move>,
    /// The shards once done, as (master, replicas) by pod index, in the input's shard order.
    pub shards: Vec<(usize, Vec<usize>)>,
}

/// How good a layout is; lower is better, compared in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Score {
    /// Shards with no replica outside their master's Kubernetes node.
    pub unsafe_nodes: usize,
    /// Shards with no replica outside their master's zone (pods in two zones or more).
    pub unsafe_zones: usize,
    /// How far the replica counts are from R per master (sum of the differences).
    pub uneven: usize,
    /// 1 when one zone holds a majority of the masters.
    pub zone_majority: usize,
    /// 1 when one Kubernetes node holds a majority of the masters.
    pub node_majority: usize,
    /// Replicas on their master's node.
    pub shared_nodes: usize,
    /// Replicas in their master's zone (pods in two zones or more).
    pub shared_zones: usize,
}

/// The failure domains of a placement: each pod's node (a pod on an unknown node is a node of its
/// own) and, when the pods span two zones or more, each pod's zone (its node when unknown).
struct Domains {
    nodes: Vec<usize>,
    zones: Option<Vec<usize>>,
}

impl Domains {
    fn new(places: &[Place]) -> Domains {
        let node_key = |i: usize, p: &Place| match &p.node {
            Some(node) => format!("node {node}"),
            None => format!("pod {i}"),
        };
        let nodes = dense(places.iter().enumerate().map(|(i, p)| node_key(i, p)));
        let mut known: Vec<&String> = places.iter().filter_map(|p| p.zone.as_ref()).collect();
        known.sort();
        known.dedup();
        let zones = (known.len() > 1).then(|| {
            dense(places.iter().enumerate().map(|(i, p)| match &p.zone {
                Some(zone) => format!("zone {zone}"),
                None => node_key(i, p),
            }))
        });
        Domains { nodes, zones }
    }

    /// The domains the goal separates: zones when they are the level reached, else nodes.
    fn at(&self, separation: Separation) -> &[usize] {
        match (separation, &self.zones) {
            (Separation::Zones, Some(zones)) => zones,
            _ => &self.nodes,
        }
    }
}

/// A layout: the master of each shard, and each pod's shard.
#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    masters: Vec<usize>,
    shard: Vec<usize>,
}

impl State {
    fn from_shards(shards: &[(usize, Vec<usize>)], n: usize) -> Option<State> {
        let mut shard = vec![usize::MAX; n];
        for (k, (master, replicas)) in shards.iter().enumerate() {
            for &p in std::iter::once(master).chain(replicas) {
                if p >= n || shard[p] != usize::MAX {
                    return None;
                }
                shard[p] = k;
            }
        }
        (!shard.contains(&usize::MAX)).then(|| State {
            masters: shards.iter().map(|(m, _)| *m).collect(),
            shard,
        })
    }

    fn replicas(&self, k: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.shard.len()).filter(move |&p| self.shard[p] == k && self.masters[k] != p)
    }

    fn is_master(&self, p: usize) -> bool {
        self.masters[self.shard[p]] == p
    }

    fn shards(&self) -> Vec<(usize, Vec<usize>)> {
        (0..self.masters.len())
            .map(|k| (self.masters[k], self.replicas(k).collect()))
            .collect()
    }
}

/// The score of a layout given as (master, replicas) shards.
pub fn score(
    places: &[Place],
    replicas_per_master: usize,
    shards: &[(usize, Vec<usize>)],
) -> Score {
    let domains = Domains::new(places);
    let mut score = Score {
        unsafe_nodes: 0,
        unsafe_zones: 0,
        uneven: 0,
        zone_majority: majority(&domains.zones, shards),
        node_majority: majority(&Some(domains.nodes.clone()), shards),
        shared_nodes: 0,
        shared_zones: 0,
    };
    for (master, replicas) in shards {
        score.uneven += replicas.len().abs_diff(replicas_per_master);
        let shared = |d: &[usize]| replicas.iter().filter(|&&r| d[r] == d[*master]).count();
        let nodes = shared(&domains.nodes);
        score.shared_nodes += nodes;
        score.unsafe_nodes += usize::from(nodes == replicas.len());
        if let Some(zones) = &domains.zones {
            let zones = shared(zones);
            score.shared_zones += zones;
            score.unsafe_zones += usize::from(zones == replicas.len());
        }
    }
    score
}

/// 1 when one domain holds more than half the masters.
fn majority(domains: &Option<Vec<usize>>, shards: &[(usize, Vec<usize>)]) -> usize {
    let Some(domains) = domains else { return 0 };
    let mut load: HashMap<usize, usize> = HashMap::new();
    for (master, _) in shards {
        *load.entry(domains[*master]).or_default() += 1;
    }
    usize::from(load.values().any(|&c| 2 * c > shards.len()))
}

/// Plans the repair of a formed cluster whose shards are `shards` (master, replicas by pod index,
/// every pod in one), its pods at `places`. `None` when no safe order of moves makes the layout
/// better: nothing to do, or nothing that can be done.
pub fn repair(
    places: &[Place],
    replicas_per_master: usize,
    shards: &[(usize, Vec<usize>)],
) -> Option<Repair> {
    let n = places.len();
    let m = shards.len();
    if m == 0 || n != m * (1 + replicas_per_master) {
        return None;
    }
    let mut current = State::from_shards(shards, n)?;
    let domains = Domains::new(places);
    let mut moves = Vec::new();
    // A layout reached without spreading the masters may allow spreading them in turn.
    for _ in 0..3 {
        let Some(more) = once(places, replicas_per_master, &domains, &current) else {
            break;
        };
        moves.extend(more.0);
        current = more.1;
    }
    (!moves.is_empty()).then(|| Repair {
        moves,
        shards: current.shards(),
    })
}

/// One repair from `current`: the moves and the layout they reach, when it is better.
fn once(
    places: &[Place],
    r: usize,
    domains: &Domains,
    current: &State,
) -> Option<(Vec<Move>, State)> {
    let before = score(places, r, &current.shards());
    // Spreading the masters may need an order of moves that does not exist; then the shards are
    // made safe without it.
    [true, false].into_iter().find_map(|spread| {
        let target = target(places, r, domains, current, spread);
        if score(places, r, &target.shards()) >= before {
            return None;
        }
        let moves = order(current, &target, r, &domains.nodes)?;
        Some((moves, target))
    })
}

/// The layout to reach: the goal (see the module's header; the masters' spread only with
/// `spread`) with as many masters kept as allow it, and as many replicas left in their shard.
fn target(places: &[Place], r: usize, domains: &Domains, current: &State, spread: bool) -> State {
    let n = places.len();
    let m = current.masters.len();
    let free = placement::choose(places, r, &vec![None; n]);
    let goal = (
        free.separation,
        if spread {
            masters_score(domains, &free.pairing.masters)
        } else {
            (usize::MAX, usize::MAX)
        },
    );
    let mut pinned: Vec<bool> = vec![true; m];
    let reaches_with = |masters: &[usize], pinned: &[bool]| {
        let mut pins = vec![None; n];
        for k in (0..m).filter(|&k| pinned[k]) {
            pins[masters[k]] = Some(Pin::Master(k));
        }
        let choice = placement::choose(places, r, &pins);
        let got = (
            choice.separation,
            masters_score(domains, &choice.pairing.masters),
        );
        (rank(got.0) <= rank(goal.0) && got.1 <= goal.1).then_some(choice.pairing.masters)
    };
    let reaches = |pinned: &[bool]| reaches_with(&current.masters, pinned);
    // Failovers inside shards, when they reach the goal, before any master is chosen anew: one
    // that reaches it, else the one that unloads the most crowded domain most, and again.
    let within = || {
        let all = vec![true; m];
        let mut masters = current.masters.clone();
        for _ in 0..m {
            let mut best: Option<((usize, usize), Vec<usize>)> = None;
            for k in 0..m {
                for p in (0..n).filter(|&p| current.shard[p] == k && p != masters[k]) {
                    let mut tried = masters.clone();
                    tried[k] = p;
                    if let Some(done) = reaches_with(&tried, &all) {
                        return Some(done);
                    }
                    let load = crowding(domains, &tried);
                    if load < crowding(domains, &masters)
                        && best.as_ref().is_none_or(|(b, _)| load < *b)
                    {
                        best = Some((load, tried));
                    }
                }
            }
            masters = best?.1;
        }
        None
    };
    let masters = loop {
        if let Some(masters) = reaches(&pinned) {
            break masters;
        }
        if pinned.iter().all(|&p| p)
            && let Some(masters) = within()
        {
            break masters;
        }
        let still: Vec<usize> = (0..m).filter(|&k| pinned[k]).collect();
        if still.is_empty() {
            break free.pairing.masters.clone();
        }
        let release = still
            .iter()
            .copied()
            .find(|&k| {
                let mut fewer = pinned.clone();
                fewer[k] = false;
                reaches(&fewer).is_some()
            })
            .unwrap_or_else(|| {
                // The master in the most crowded domain: zone, then node.
                let load = |d: &[usize], k: usize| {
                    still
                        .iter()
                        .filter(|&&j| d[current.masters[j]] == d[current.masters[k]])
                        .count()
                };
                *still
                    .iter()
                    .max_by_key(|&&k| {
                        let zone = domains.zones.as_ref().map_or(0, |z| load(z, k));
                        (zone, load(&domains.nodes, k), std::cmp::Reverse(k))
                    })
                    .expect("one is still pinned")
            });
        pinned[release] = false;
    };
    let masters = keep_in_shard(current, &pinned, masters);
    let shard = assign(
        domains.at(free.separation),
        free.separation != Separation::Shared,
        r,
        current,
        &masters,
    );
    State { masters, shard }
}

/// (Most masters in one zone, most masters on one node).
fn crowding(domains: &Domains, masters: &[usize]) -> (usize, usize) {
    let most = |d: &[usize]| {
        let mut load: HashMap<usize, usize> = HashMap::new();
        for &p in masters {
            *load.entry(d[p]).or_default() += 1;
        }
        load.into_values().max().unwrap_or(0)
    };
    (
        domains.zones.as_deref().map_or(0, most),
        most(&domains.nodes),
    )
}

/// How strict a separation is: lower is stricter.
fn rank(separation: Separation) -> u8 {
    match separation {
        Separation::Zones => 0,
        Separation::Nodes => 1,
        Separation::Shared => 2,
    }
}

/// (1 when a zone holds most masters, 1 when a node does).
fn masters_score(domains: &Domains, masters: &[usize]) -> (usize, usize) {
    let shards: Vec<(usize, Vec<usize>)> = masters.iter().map(|&p| (p, Vec::new())).collect();
    (
        majority(&domains.zones, &shards),
        majority(&Some(domains.nodes.clone()), &shards),
    )
}

/// The new masters of the shards whose pin was released, redistributed among those shards so that
/// each goes to the shard it already belongs to when it can (a failover inside the shard, not a
/// replica moved in first).
fn keep_in_shard(current: &State, pinned: &[bool], masters: Vec<usize>) -> Vec<usize> {
    let open: Vec<usize> = (0..masters.len()).filter(|&k| !pinned[k]).collect();
    let mut pool: Vec<usize> = open.iter().map(|&k| masters[k]).collect();
    let mut out = masters;
    let mut unfilled = Vec::new();
    for &k in &open {
        match pool.iter().position(|&p| current.shard[p] == k) {
            Some(at) => out[k] = pool.remove(at),
            None => unfilled.push(k),
        }
    }
    for (k, p) in unfilled.into_iter().zip(pool) {
        out[k] = p;
    }
    out
}

/// Each pod's shard once the masters are `masters`: R replicas per master, none in its master's
/// domain when `strict` (the goal's level makes that possible), each replica first trying the
/// shard it is in. Without `strict`, replicas still avoid their master's domain where they can.
fn assign(
    domains: &[usize],
    strict: bool,
    r: usize,
    current: &State,
    masters: &[usize],
) -> Vec<usize> {
    let n = current.shard.len();
    let m = masters.len();
    let mut shard = vec![usize::MAX; n];
    for (k, &p) in masters.iter().enumerate() {
        shard[p] = k;
    }
    let replicas: Vec<usize> = (0..n).filter(|&p| shard[p] == usize::MAX).collect();
    let mut matching = Matching {
        domains,
        masters,
        members: vec![Vec::new(); m],
        seen: vec![false; m],
        r,
        current,
    };
    let mut waiting = Vec::new();
    for &p in &replicas {
        let k = current.shard[p];
        if matching.members[k].len() < r && matching.fits(p, k) {
            matching.members[k].push(p);
        } else {
            waiting.push(p);
        }
    }
    let mut stranded = Vec::new();
    for p in waiting {
        matching.seen.fill(false);
        if !matching.augment(p) {
            stranded.push(p);
        }
    }
    // Without a strict goal some replica must share its master's domain: the matching above is
    // maximal, so the others keep their places and these take the places left, their own shard
    // first.
    debug_assert!(
        !strict || stranded.is_empty(),
        "the goal's level is reachable"
    );
    for p in stranded {
        let own = current.shard[p];
        let k = (0..m)
            .map(|step| (own + step) % m)
            .find(|&k| matching.members[k].len() < r)
            .expect("R places per master fit every replica");
        matching.members[k].push(p);
    }
    for (k, members) in matching.members.iter().enumerate() {
        for &p in members {
            shard[p] = k;
        }
    }
    shard
}

/// Replicas given to shards, R per master, by augmenting paths.
struct Matching<'a> {
    domains: &'a [usize],
    masters: &'a [usize],
    members: Vec<Vec<usize>>,
    seen: Vec<bool>,
    r: usize,
    current: &'a State,
}

impl Matching<'_> {
    fn fits(&self, p: usize, k: usize) -> bool {
        self.domains[p] != self.domains[self.masters[k]]
    }

    /// Finds `p` a shard, its own first, moving others along an augmenting path if needed.
    fn augment(&mut self, p: usize) -> bool {
        let m = self.masters.len();
        let own = self.current.shard[p];
        for step in 0..m {
            let k = (own + step) % m;
            if self.seen[k] || !self.fits(p, k) {
                continue;
            }
            self.seen[k] = true;
            if self.members[k].len() < self.r {
                self.members[k].push(p);
                return true;
            }
            for at in 0..self.members[k].len() {
                let other = self.members[k][at];
                if self.augment(other) {
                    self.members[k][at] = p;
                    return true;
                }
            }
        }
        false
    }
}

/// The moves from `current` to `target` in a safe order (see the module's header), or `None` when
/// none is found. `nodes` are the pods' node domains: a shard whose replicas all share its
/// master's node is fed first.
fn order(current: &State, target: &State, r: usize, nodes: &[usize]) -> Option<Vec<Move>> {
    let n = current.shard.len();
    let mut state = current.clone();
    let mut moves = Vec::new();
    // The shard left without a replica by the last move: the next move must feed it.
    let mut lacking: Option<usize> = None;
    let count = |s: &State, k: usize| s.replicas(k).count();
    // Shards whose replicas all share their master's node: fed first.
    let exposed = |s: &State, k: usize| {
        let master = nodes[s.masters[k]];
        s.replicas(k).all(|p| nodes[p] == master)
    };
    for _ in 0..4 * n + 4 {
        if state == *target {
            return Some(moves);
        }
        // A shard with no replica from the start (an uneven layout) is fed first as well.
        let empty = (0..state.masters.len()).find(|&k| count(&state, k) == 0);
        let need = lacking.or(empty);
        if need.is_none()
            && let Some(k) = (0..state.masters.len()).find(|&k| {
                let t = target.masters[k];
                state.masters[k] != t && state.shard[t] == k
            })
        {
            let (replica, master) = (target.masters[k], state.masters[k]);
            state.masters[k] = replica;
            moves.push(Move::Failover { replica, master });
            continue;
        }
        // Replicas that are not where the target wants them (a master waits for its failover).
        let misplaced: Vec<usize> = (0..n)
            .filter(|&p| !state.is_master(p) && state.shard[p] != target.shard[p])
            .collect();
        let from_spare = |p: &usize| count(&state, state.shard[*p]) >= 2;
        let pick = match need {
            Some(k) => misplaced
                .iter()
                .copied()
                .filter(from_spare)
                .find(|&p| target.shard[p] == k)
                .or_else(|| misplaced.iter().copied().find(from_spare))
                .or_else(|| {
                    // Any replica of a shard with one to spare, to come back later.
                    (0..n).find(|&p| !state.is_master(p) && state.shard[p] != k && from_spare(&p))
                })
                .map(|p| (p, k)),
            None => {
                let free = |p: &usize| from_spare(p);
                let into_exposed = |p: &usize| exposed(&state, target.shard[*p]);
                misplaced
                    .iter()
                    .copied()
                    .filter(|p| free(p) && into_exposed(p))
                    .chain(misplaced.iter().copied().filter(free))
                    .chain(misplaced.iter().copied().filter(into_exposed))
                    .chain(misplaced.iter().copied())
                    .next()
                    .map(|p| (p, target.shard[p]))
            }
        };
        let (p, k) = pick?;
        let left = state.shard[p];
        state.shard[p] = k;
        moves.push(Move::Replicate {
            replica: p,
            master: state.masters[k],
        });
        lacking = (count(&state, left) == 0 && r > 0).then_some(left);
    }
    None
}

/// Turns a *formed* plan, or the planner's *repair* (replicas not R per master), into a *repair*
/// with its steps when the layout can be made better; any other plan is returned as it is. With
/// `placement` false (`BOOTSTRAP_REPAIR_PLACEMENT=false`), where the pods run does not count: a
/// formed cluster is left alone and only the replica counts are repaired.
pub fn complete(
    plan: Plan,
    nodes: &[Node],
    layout: &Layout,
    observations: &[Observation],
    placement: bool,
) -> Plan {
    match plan.decision {
        Decision::Repair => {}
        Decision::Formed if placement => {}
        _ => return plan,
    }
    let shards = placement::observed_shards(observations);
    let places: Vec<Place> = if placement {
        nodes.iter().map(|n| n.place.clone()).collect()
    } else {
        vec![Place::default(); nodes.len()]
    };
    let Some(repair) = repair(&places, layout.replicas_per_master, &shards) else {
        return plan;
    };
    let id = |p: usize| observations[p].id.clone();
    let mut masters: Vec<usize> = shards.iter().map(|(m, _)| *m).collect();
    // A replica's stale open slot is cleared first ([`super::stale_slots`]), then the moves.
    let (mut steps, mut notes) = match plan.decision {
        Decision::Repair => (plan.steps, plan.notes),
        _ => (Vec::new(), Vec::new()),
    };
    for mv in &repair.moves {
        let shard_of = |p: usize| masters.iter().position(|&m| m == p);
        match *mv {
            Move::Replicate { replica, master } => {
                steps.push(Step::Replicate {
                    node: replica,
                    master,
                    master_id: id(master),
                });
                notes.push(format!(
                    "repair: {} {} follows {} {} (shard {})",
                    nodes[replica].name,
                    at(&nodes[replica]),
                    nodes[master].name,
                    at(&nodes[master]),
                    shard_name(observations, shards[shard_of(master).expect("a master")].0)
                ));
            }
            Move::Failover { replica, master } => {
                steps.push(Step::Failover {
                    node: replica,
                    master,
                    master_id: id(master),
                });
                let k = shard_of(master).expect("a master");
                notes.push(format!(
                    "repair: {} {} takes over shard {} from {} {} (manual failover)",
                    nodes[replica].name,
                    at(&nodes[replica]),
                    shard_name(observations, shards[k].0),
                    nodes[master].name,
                    at(&nodes[master]),
                ));
                masters[k] = replica;
            }
        }
    }
    Plan {
        decision: Decision::Repair,
        steps,
        notes,
    }
}

/// Where a pod runs, for the audit trail: `(on node-a, zone z1)`.
fn at(node: &Node) -> String {
    match (&node.place.node, &node.place.zone) {
        (Some(n), Some(z)) => format!("(on {n}, zone {z})"),
        (Some(n), None) => format!("(on {n})"),
        _ => format!("({})", node.addr),
    }
}

/// A shard named by the slots of its master as it was observed.
fn shard_name(observations: &[Observation], master: usize) -> String {
    observations[master]
        .myself()
        .map(|me| crate::slots::format(&me.slots))
        .unwrap_or_default()
}

/// Dense indices for keys, in order of first appearance.
fn dense(keys: impl Iterator<Item = String>) -> Vec<usize> {
    let mut index: HashMap<String, usize> = HashMap::new();
    keys.map(|key| {
        let next = index.len();
        *index.entry(key).or_insert(next)
    })
    .collect()
}

#[cfg(test)]
#[path = "repair_tests.rs"]
mod tests;
