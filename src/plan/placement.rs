//! Placement-aware pairing: which pods are masters and which master each replica follows, so that
//! losing one Kubernetes node (or one zone, when zones are known) never loses a whole shard.
//!
//! Pure code. The input is where each pod runs ([`Place`]), R, and what the nodes already are
//! ([`Pin`]s, from the observations); the output is a [`Pairing`] and how well it separates.
//!
//! How it chooses (the proofs are short, so they are here):
//!
//! 1. **Levels.** Zones first (when any zone is known), then nodes. At a level every pod has a
//!    *domain*: its zone (or its node when its zone is unknown) at the zone level, its node at the
//!    node level; a pod whose node is unknown is a domain of its own. A pairing *separates* at a
//!    level when no replica is in its master's domain. A node lies in one zone, so separating zones
//!    separates nodes too.
//! 2. **Which masters.** Once the masters are chosen, replicas can be given to them iff, for every
//!    domain d, the free replicas in d fit in the spare places of the masters outside d (Hall's
//!    condition: a set of replicas from two domains or more may use every master, and the places
//!    add up to the replicas). With `k` new masters in d, `f` free pods in d, `s` spare places of
//!    already-formed masters in d and `T` free replicas in all, that is `f − k ≤ T − R·k − s`, or
//!    `(R − 1)·k ≤ T − f − s`: each domain has a bound on its new masters, and *any* choice within
//!    the bounds works. So masters are picked one at a time, on the least loaded zone, then the
//!    least loaded node, then the lowest pod index, within the bounds: the masters spread (a node
//!    holding most masters would leave too few to vote a failover), and a pairing is found whenever
//!    one exists.
//! 3. **Which replica follows which master.** A bipartite assignment with R places per master, by
//!    augmenting paths (Kuhn): each replica first tries the shard the guide gives its index
//!    (`i mod M`), so the result stays close to the guide's.
//! 4. **The guide first.** The guide's layout (masters `0..M`, pod `M+k` follows master `k mod M`)
//!    is kept whenever it separates at the best level reachable and spreads the masters as well.
//!    When no level separates, the guide's layout is kept and each shard that shares a node gets a
//!    warning.
//!
//! Resuming: the choice depends on the placement alone, so a re-run after an interruption makes
//! the same one; when the nodes already show masters and replicas that the choice does not fit
//! (the pods moved since), those are kept as pins and the rest is chosen around them.

use std::collections::{BTreeSet, HashMap};

use crate::layout::Layout;
use crate::node::{Node, Place};
use crate::observation::Observation;
use crate::pairing::Pairing;
use crate::slots;

/// What the pins ask of a pairing (the pairing itself is [`crate::pairing`]'s, below both
/// [`crate::layout`] and the planner).
impl Pairing {
    /// True if every pin holds in this pairing.
    fn keeps(&self, pins: &[Option<Pin>]) -> bool {
        pins.iter().enumerate().all(|(i, pin)| match pin {
            Some(Pin::Master(k)) => self.masters[*k] == i,
            Some(Pin::Replica(k)) => self.shard[i] == *k && self.masters[*k] != i,
            None => true,
        })
    }
}

/// What a node already is, which a pairing must keep: the formation may be half done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    /// It owns exactly the slots of this shard.
    Master(usize),
    /// It replicates the pinned master of this shard.
    Replica(usize),
}

/// The pins the observations show: a node that owns exactly one shard's slots is that shard's
/// master; a replica of such a node belongs to its shard (at most R of them). Anything else pins
/// nothing: the planner refuses what fits no plan.
pub fn pins(observations: &[Observation], layout: &Layout) -> Vec<Option<Pin>> {
    let split = slots::split(layout.masters);
    let mut pins = vec![None; observations.len()];
    let mut shard_of: HashMap<&str, usize> = HashMap::new();
    for (i, o) in observations.iter().enumerate() {
        let Some(me) = o.myself().filter(|m| !m.flags.replica) else {
            continue;
        };
        let Some(k) = split.iter().position(|range| me.slots == [range.clone()]) else {
            continue;
        };
        if !shard_of.values().any(|&s| s == k) {
            shard_of.insert(o.id.as_str(), k);
            pins[i] = Some(Pin::Master(k));
        }
    }
    let mut followers = vec![0; layout.masters];
    for (i, o) in observations.iter().enumerate() {
        let Some(me) = o.myself().filter(|m| m.flags.replica) else {
            continue;
        };
        if let Some(&k) = me.master_id.as_deref().and_then(|id| shard_of.get(id))
            && followers[k] < layout.replicas_per_master
        {
            followers[k] += 1;
            pins[i] = Some(Pin::Replica(k));
        }
    }
    pins
}

/// How well a pairing keeps masters and their replicas apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Separation {
    /// No replica shares a zone (so neither a node) with its master.
    Zones,
    /// No replica shares a node with its master; zones are unknown or too few.
    Nodes,
    /// Some replica shares a node with its master: no pairing avoids it.
    Shared,
}

/// The pairing chosen for a placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// Who masters and who follows whom.
    pub pairing: Pairing,
    /// What it guarantees.
    pub separation: Separation,
    /// Whether it is the guide's layout.
    pub guide: bool,
}

/// Chooses the pairing for pods at `places` with R replicas per master, keeping `pins` (one per
/// pod). `places.len()` must be a multiple of 1 + R. Deterministic: the same input gives the same
/// choice.
pub fn choose(places: &[Place], replicas_per_master: usize, pins: &[Option<Pin>]) -> Choice {
    let masters = places.len() / (1 + replicas_per_master);
    let problem = Problem::new(places, replicas_per_master, masters);
    // The placement alone decides first, so a resumed run makes the same choice as the first one.
    let unpinned = problem.best(&vec![None; places.len()]);
    if unpinned.pairing.keeps(pins) {
        return unpinned;
    }
    problem.best(pins)
}

/// A placement, indexed for the search.
struct Problem {
    replicas_per_master: usize,
    masters: usize,
    /// Each pod's node, as a dense index (a pod on an unknown node has one of its own).
    nodes: Vec<usize>,
    /// Each pod's zone, as a dense index, when known.
    zones: Vec<Option<usize>>,
    /// The domains at each level tried, strictest first.
    levels: Vec<(Separation, Vec<usize>)>,
}

impl Problem {
    fn new(places: &[Place], replicas_per_master: usize, masters: usize) -> Problem {
        let node_key = |i: usize, p: &Place| match &p.node {
            Some(node) => format!("node {node}"),
            None => format!("pod {i}"),
        };
        let nodes = dense(places.iter().enumerate().map(|(i, p)| node_key(i, p)));
        let zone_index = dense(places.iter().map(|p| p.zone.clone().unwrap_or_default()));
        let zones: Vec<Option<usize>> = places
            .iter()
            .zip(zone_index)
            .map(|(p, z)| p.zone.as_ref().map(|_| z))
            .collect();
        let mut levels = Vec::new();
        if places.iter().any(|p| p.zone.is_some()) {
            let by_zone = dense(places.iter().enumerate().map(|(i, p)| match &p.zone {
                Some(zone) => format!("zone {zone}"),
                None => node_key(i, p),
            }));
            levels.push((Separation::Zones, by_zone));
        }
        levels.push((Separation::Nodes, nodes.clone()));
        Problem {
            replicas_per_master,
            masters,
            nodes,
            zones,
            levels,
        }
    }

    /// The best pairing that keeps `pins`: the strictest level that can be separated, the guide's
    /// layout when it does as well.
    fn best(&self, pins: &[Option<Pin>]) -> Choice {
        let n = self.nodes.len();
        let guide = Pairing::guide(n, self.masters);
        let guide_fits = guide.keeps(pins);
        for (separation, domains) in &self.levels {
            if let Some(built) = self.solve(domains, pins) {
                let pairing = if guide_fits
                    && guide.separates(domains)
                    && self.spread(&guide) <= self.spread(&built)
                {
                    guide.clone()
                } else {
                    built
                };
                return Choice {
                    guide: pairing == guide,
                    pairing,
                    separation: *separation,
                };
            }
        }
        // Replicas an earlier formation attached to their master's node stay there (moving them
        // is not this tool's to do), but the rest can still be kept apart.
        let tolerant = pins
            .iter()
            .any(|p| matches!(p, Some(Pin::Replica(_))))
            .then(|| {
                let domains = &self.levels.last().expect("the node level").1;
                self.solve_within(domains, pins, false)
            })
            .flatten();
        let pairing = if let Some(pairing) = tolerant {
            pairing
        } else if guide_fits {
            guide.clone()
        } else {
            // Every pod a domain of its own: nothing to separate, any completion of the pins.
            // Pins that none completes (not from `pins`) are dropped: the planner then refuses
            // what does not fit.
            let alone: Vec<usize> = (0..n).collect();
            self.solve(&alone, pins).unwrap_or_else(|| guide.clone())
        };
        Choice {
            guide: pairing == guide,
            pairing,
            separation: Separation::Shared,
        }
    }

    /// How unevenly the masters are spread: (most masters in one zone, most on one node).
    fn spread(&self, pairing: &Pairing) -> (usize, usize) {
        let mut zone_load: HashMap<usize, usize> = HashMap::new();
        let mut node_load: HashMap<usize, usize> = HashMap::new();
        for &m in &pairing.masters {
            if let Some(z) = self.zones[m] {
                *zone_load.entry(z).or_default() += 1;
            }
            *node_load.entry(self.nodes[m]).or_default() += 1;
        }
        let most = |loads: HashMap<usize, usize>| loads.into_values().max().unwrap_or(0);
        (most(zone_load), most(node_load))
    }

    /// A pairing that keeps `pins` and puts no replica in its master's domain, if one exists.
    fn solve(&self, domains: &[usize], pins: &[Option<Pin>]) -> Option<Pairing> {
        self.solve_within(domains, pins, true)
    }

    /// [`Problem::solve`], where `strict: false` lets pinned replicas share their master's domain.
    fn solve_within(
        &self,
        domains: &[usize],
        pins: &[Option<Pin>],
        strict: bool,
    ) -> Option<Pairing> {
        let (n, m, r) = (domains.len(), self.masters, self.replicas_per_master);
        let mut masters: Vec<Option<usize>> = vec![None; m];
        let mut shard: Vec<Option<usize>> = vec![None; n];
        // Places each master still has for replicas.
        let mut spare = vec![r; m];
        for (i, pin) in pins.iter().enumerate() {
            if let Some(Pin::Master(k)) = pin {
                masters[*k] = Some(i);
                shard[i] = Some(*k);
            }
        }
        for (i, pin) in pins.iter().enumerate() {
            if let Some(Pin::Replica(k)) = pin {
                let master = masters[*k]?;
                if (strict && domains[master] == domains[i]) || spare[*k] == 0 {
                    return None;
                }
                spare[*k] -= 1;
                shard[i] = Some(*k);
            }
        }
        let free: Vec<usize> = (0..n).filter(|&i| shard[i].is_none()).collect();
        let open: Vec<usize> = (0..m).filter(|&k| masters[k].is_none()).collect();
        // Free pods that will be replicas: T.
        let total = free.len().checked_sub(open.len())?;

        let room = bounds(domains, r, total, &free, &masters, &spare)?;
        let chosen = self.pick_masters(domains, &room, &free, &masters)?;
        // New masters take the open shards in pod order: with no pins, masters 0, 1, 2 own the
        // slots in that order, as in the guide.
        for (&k, &p) in open.iter().zip(&chosen) {
            masters[k] = Some(p);
            shard[p] = Some(k);
        }
        let masters: Vec<usize> = masters.into_iter().collect::<Option<_>>()?;
        let replicas: Vec<usize> = free.into_iter().filter(|i| !chosen.contains(i)).collect();
        for (k, members) in assign(domains, &masters, &spare, &replicas)?
            .iter()
            .enumerate()
        {
            for &i in members {
                shard[i] = Some(k);
            }
        }
        let shard: Vec<usize> = shard.into_iter().collect::<Option<_>>()?;
        Some(Pairing { masters, shard })
    }

    /// The new masters, in pod order: one at a time on the least loaded zone, then node, then the
    /// lowest pod index, each domain within its bound. `None` when the bounds leave too few.
    fn pick_masters(
        &self,
        domains: &[usize],
        room: &[usize],
        free: &[usize],
        masters: &[Option<usize>],
    ) -> Option<Vec<usize>> {
        // Masters per node and per known zone so far.
        let mut nodes = vec![0; self.nodes.iter().max().map_or(0, |x| x + 1)];
        let mut zones = vec![0; self.zones.iter().flatten().max().map_or(0, |x| x + 1)];
        let load = |pod: usize, nodes: &mut [usize], zones: &mut [usize]| {
            nodes[self.nodes[pod]] += 1;
            if let Some(z) = self.zones[pod] {
                zones[z] += 1;
            }
        };
        for &p in masters.iter().flatten() {
            load(p, &mut nodes, &mut zones);
        }
        let mut taken = vec![0; room.len()];
        let mut chosen: Vec<usize> = Vec::new();
        for _ in masters.iter().filter(|m| m.is_none()) {
            let pick = free
                .iter()
                .copied()
                .filter(|i| !chosen.contains(i) && taken[domains[*i]] < room[domains[*i]])
                .min_by_key(|&i| {
                    let zone = self.zones[i].map_or(0, |z| zones[z]);
                    (zone, nodes[self.nodes[i]], i)
                })?;
            taken[domains[pick]] += 1;
            chosen.push(pick);
            load(pick, &mut nodes, &mut zones);
        }
        chosen.sort_unstable();
        Some(chosen)
    }
}

/// How many new masters each domain may take so that the free replicas can still all be placed
/// (Hall's condition, see the module's header): `(R − 1)·k ≤ T − f − s`. `None` when a domain
/// holds more free replicas than the masters outside it can take, whatever the choice.
fn bounds(
    domains: &[usize],
    r: usize,
    total: usize,
    free: &[usize],
    masters: &[Option<usize>],
    spare: &[usize],
) -> Option<Vec<usize>> {
    let count = domains.iter().max().map_or(0, |d| d + 1);
    let mut free_in = vec![0; count];
    for &i in free {
        free_in[domains[i]] += 1;
    }
    let mut spare_in = vec![0; count];
    for (k, master) in masters.iter().enumerate() {
        if let Some(p) = master {
            spare_in[domains[*p]] += spare[k];
        }
    }
    let mut room = vec![usize::MAX; count];
    if r > 0 {
        for d in 0..count {
            let slack = total.checked_sub(free_in[d] + spare_in[d])?;
            if r > 1 {
                room[d] = slack / (r - 1);
            }
        }
    }
    Some(room)
}

/// The free replicas of each shard: a b-matching by augmenting paths, each replica first trying
/// the shard the guide gives its index. `None` when some replica finds no place.
fn assign(
    domains: &[usize],
    masters: &[usize],
    spare: &[usize],
    replicas: &[usize],
) -> Option<Vec<Vec<usize>>> {
    let m = masters.len();
    let mut matching = Matching {
        domains,
        masters,
        spare,
        members: vec![Vec::new(); m],
        seen: vec![false; m],
    };
    let mut waiting = Vec::new();
    for &i in replicas {
        let k = i % m;
        if matching.has_room(k) && matching.fits(i, k) {
            matching.members[k].push(i);
        } else {
            waiting.push(i);
        }
    }
    for i in waiting {
        matching.seen.fill(false);
        if !matching.augment(i) {
            return None;
        }
    }
    Some(matching.members)
}

/// Free replicas given to shards, at most each master's spare places, never in its domain.
struct Matching<'a> {
    domains: &'a [usize],
    masters: &'a [usize],
    spare: &'a [usize],
    /// The free replicas each shard has taken.
    members: Vec<Vec<usize>>,
    /// Shards visited by the current search.
    seen: Vec<bool>,
}

impl Matching<'_> {
    fn fits(&self, replica: usize, shard: usize) -> bool {
        self.domains[replica] != self.domains[self.masters[shard]]
    }

    fn has_room(&self, shard: usize) -> bool {
        self.members[shard].len() < self.spare[shard]
    }

    /// Finds `replica` a shard, moving others along an augmenting path if needed. Shards are
    /// tried from the one the guide gives its index, so the result stays close to the guide's.
    fn augment(&mut self, replica: usize) -> bool {
        let m = self.masters.len();
        for step in 0..m {
            let k = (replica + step) % m;
            if self.seen[k] || !self.fits(replica, k) {
                continue;
            }
            self.seen[k] = true;
            if self.has_room(k) {
                self.members[k].push(replica);
                return true;
            }
            for at in 0..self.members[k].len() {
                let other = self.members[k][at];
                if self.augment(other) {
                    self.members[k][at] = replica;
                    return true;
                }
            }
        }
        false
    }
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

/// The layout to form `nodes` with: the guide's when nothing is known of where they run (static
/// mode) or when it is already safe, else a pairing by placement. Also says what was chosen.
pub fn arrange(layout: Layout, nodes: &[Node], observations: &[Observation]) -> (Layout, Choice) {
    let places: Vec<Place> = nodes.iter().map(|n| n.place.clone()).collect();
    let pins = pins(observations, &layout);
    let choice = choose(&places, layout.replicas_per_master, &pins);
    (layout.with_pairing(choice.pairing.clone()), choice)
}

impl Choice {
    /// One line for the log saying which pairing is formed and what it guarantees, or `None` when
    /// nothing is known of where the pods run.
    pub fn describe(&self, nodes: &[Node]) -> Option<String> {
        nodes.iter().any(|n| n.place.node.is_some()).then(|| {
            let what = match self.separation {
                Separation::Zones => "no replica shares a zone with its master",
                Separation::Nodes => "no replica shares a Kubernetes node with its master",
                Separation::Shared => {
                    "no pairing keeps every replica off its master's Kubernetes node; forming it \
                     anyway (a warning per shard follows)"
                }
            };
            if self.guide {
                return format!("pairing: the guide's layout; {what}");
            }
            let name = |i: usize| nodes[i].name.as_str();
            let shards: Vec<String> = self
                .pairing
                .shards()
                .iter()
                .map(|(m, replicas)| {
                    let followers: Vec<&str> = replicas.iter().map(|&r| name(r)).collect();
                    format!("{} <- {}", name(*m), followers.join(", "))
                })
                .collect();
            format!(
                "pairing by placement: {what}; master <- replicas: {}",
                shards.join("; ")
            )
        })
    }

    /// One warning per shard of this pairing whose master shares a node or zone with a replica.
    pub fn warnings(&self, nodes: &[Node]) -> Vec<String> {
        shared(&self.pairing.shards(), nodes)
    }
}

/// The shards a formed cluster has by the nodes' own account, as (master, replicas) by pod index:
/// after a failover roles no longer follow pod order. A master is a node that owns slots.
pub fn observed_shards(observations: &[Observation]) -> Vec<(usize, Vec<usize>)> {
    let mut shards: Vec<(usize, Vec<usize>)> = Vec::new();
    let mut first_slot: Vec<u16> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, o) in observations.iter().enumerate() {
        if let Some(me) = o.myself().filter(|m| !m.flags.replica && m.has_slots()) {
            index.insert(o.id.as_str(), shards.len());
            first_slot.push(me.slots.iter().map(|r| *r.start()).min().unwrap_or(0));
            shards.push((i, Vec::new()));
        }
    }
    for (i, o) in observations.iter().enumerate() {
        let master = o
            .myself()
            .filter(|m| m.flags.replica)
            .and_then(|m| m.master_id.as_deref())
            .and_then(|id| index.get(id));
        if let Some(&s) = master {
            shards[s].1.push(i);
        }
    }
    let mut order: Vec<usize> = (0..shards.len()).collect();
    order.sort_by_key(|&s| first_slot[s]);
    order.into_iter().map(|s| shards[s].clone()).collect()
}

/// The `reason` field of the warnings about a shared failure domain (and the reason of a Kubernetes
/// Warning Event about it, should one be recorded).
pub const SHARED_FAILURE_DOMAIN: &str = "SharedFailureDomain";

/// One line per shard whose master shares a Kubernetes node, or a zone, with one of its replicas.
/// Zones count only when the pods span two zones or more: in a one-zone cluster every shard
/// shares its zone and no pairing can help.
pub fn shared(shards: &[(usize, Vec<usize>)], nodes: &[Node]) -> Vec<String> {
    let zones: BTreeSet<&str> = nodes
        .iter()
        .filter_map(|n| n.place.zone.as_deref())
        .collect();
    let same = |a: &Option<String>, b: &Option<String>| a.is_some() && a == b;
    let mut lines = Vec::new();
    for (master, replicas) in shards {
        let at = &nodes[*master].place;
        let mut parts = Vec::new();
        for &r in replicas {
            let place = &nodes[r].place;
            if same(&place.node, &at.node) {
                parts.push(format!(
                    "its replica {} is on the same Kubernetes node {}",
                    nodes[r].name,
                    at.node.as_deref().unwrap_or_default()
                ));
            } else if zones.len() > 1 && same(&place.zone, &at.zone) {
                parts.push(format!(
                    "its replica {} is in the same zone {}",
                    nodes[r].name,
                    at.zone.as_deref().unwrap_or_default()
                ));
            }
        }
        if !parts.is_empty() {
            lines.push(format!(
                "shared failure domain: master {}: {}; losing it loses the shard",
                nodes[*master].name,
                parts.join(", ")
            ));
        }
    }
    lines
}

#[cfg(test)]
#[path = "placement_tests.rs"]
mod tests;
