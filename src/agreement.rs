//! What "formed" means: every node agrees on the whole topology, and that topology has the right
//! shape. Pure code, used by the planner (is there anything to do?) and by the convergence loop
//! (are we done?).
//!
//! Agreement, per node: `cluster_state:ok`; it knows exactly the N nodes, each at its current
//! address, every link connected and no `fail`, `fail?`, `handshake` or `noaddr` flag; all 16384
//! slots assigned and ok; the same masters, replicas and slots as every other node; replicas report
//! `master_link_status:up`. `cluster_state:ok` alone is not enough: right after a full restart each
//! node reports ok for seconds while it reaches no one.
//!
//! Shape: M masters with slots, each with R replicas, in any pod order (after a failover roles move).

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};

use crate::layout::Layout;
use crate::node::Node;
use crate::observation::Observation;
use crate::slots;

/// Checks agreement and shape; `Err` lists what is still missing, naming the nodes.
pub fn check(
    nodes: &[Node],
    layout: &Layout,
    observations: &[Observation],
) -> Result<(), Vec<String>> {
    tally(nodes, layout, observations).exact()
}

/// [`check`], except that masters need not have exactly R replicas each: the cluster is healthy
/// (every node agrees, every slot served, every replica in sync, M masters) and only the replicas
/// are spread unevenly, or on their way from one master to another during a placement repair.
pub fn healthy(
    nodes: &[Node],
    layout: &Layout,
    observations: &[Observation],
) -> Result<(), Vec<String>> {
    tally(nodes, layout, observations).healthy()
}

fn tally(nodes: &[Node], layout: &Layout, observations: &[Observation]) -> Verdict {
    let ids: Vec<&str> = observations.iter().map(|o| o.id.as_str()).collect();
    let mut tally = Tally::new(nodes, layout, &ids);
    for (i, o) in observations.iter().enumerate() {
        tally.add(i, o);
    }
    tally.finish()
}

/// Both verdicts of one check: [`check`]'s and [`healthy`]'s, which differ only in the shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    problems: Vec<String>,
    /// What is wrong with the shape with exactly R replicas per master, and with any.
    shape_exact: Option<String>,
    shape_any: Option<String>,
}

impl Verdict {
    /// True when the cluster agrees and has exactly R replicas per master ([`check`]).
    pub fn is_exact(&self) -> bool {
        self.problems.is_empty() && self.shape_exact.is_none()
    }

    /// True when the cluster agrees, its replicas spread any way ([`healthy`]).
    pub fn is_healthy(&self) -> bool {
        self.problems.is_empty() && self.shape_any.is_none()
    }

    /// [`check`]'s result.
    pub fn exact(self) -> Result<(), Vec<String>> {
        Self::result(self.problems, self.shape_exact)
    }

    /// [`healthy`]'s result.
    pub fn healthy(self) -> Result<(), Vec<String>> {
        Self::result(self.problems, self.shape_any)
    }

    fn result(mut problems: Vec<String>, shape: Option<String>) -> Result<(), Vec<String>> {
        problems.extend(shape);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// The check, one view at a time: a caller reads a few views, adds them and drops them, and never
/// holds N views of N lines at once (at 300 nodes that is 90,000 parsed lines).
pub struct Tally<'a> {
    nodes: &'a [Node],
    layout: &'a Layout,
    /// Every node's ID, in pod order.
    ids: Vec<String>,
    /// The pod of each ID.
    index: HashMap<String, usize>,
    problems: Vec<String>,
    /// The first view added; every later view is compared with it.
    first: Option<First>,
}

/// The first view a [`Tally`] was given.
struct First {
    pod: usize,
    /// A hash of its topology ([`topology`]).
    fingerprint: u64,
    /// What is wrong with its shape with exactly R replicas per master, and with any.
    shape_exact: Option<String>,
    shape_any: Option<String>,
}

impl<'a> Tally<'a> {
    /// A check of the N `nodes`, whose IDs are `ids` (pod order).
    pub fn new(nodes: &'a [Node], layout: &'a Layout, ids: &[&str]) -> Tally<'a> {
        Tally {
            nodes,
            layout,
            ids: ids.iter().map(|id| id.to_string()).collect(),
            index: ids
                .iter()
                .enumerate()
                .map(|(i, id)| (id.to_string(), i))
                .collect(),
            problems: Vec::new(),
            first: None,
        }
    }

    /// True while every view added agrees, and the first one has the layout's shape with
    /// exactly R replicas per master: what [`Verdict::is_exact`] would say if no view followed.
    pub fn clean(&self) -> bool {
        self.problems.is_empty()
            && self
                .first
                .as_ref()
                .is_none_or(|first| first.shape_exact.is_none())
    }

    /// Checks pod `i`'s observation `o`.
    pub fn add(&mut self, i: usize, o: &Observation) {
        let (nodes, layout) = (self.nodes, self.layout);
        let me = &nodes[i];
        let problems = &mut self.problems;
        if o.id != self.ids[i] {
            problems.push(format!("{me} changed its ID while the check ran"));
        }
        if !o.info.state_ok {
            problems.push(format!("{me} reports cluster_state:fail"));
        }
        let known: HashSet<&str> = o.nodes.iter().map(|l| l.id.as_str()).collect();
        let unknown: Vec<&str> = self
            .ids
            .iter()
            .zip(nodes)
            .filter(|(id, _)| !known.contains(id.as_str()))
            .map(|(_, n)| n.name.as_str())
            .collect();
        if !unknown.is_empty() {
            problems.push(format!("{me} does not know {}", few(&unknown)));
        } else if o.nodes.len() != layout.nodes || o.info.known_nodes != layout.nodes as u64 {
            problems.push(format!(
                "{me} knows {} nodes, expected {}",
                o.info.known_nodes.max(o.nodes.len() as u64),
                layout.nodes
            ));
        }
        if o.info.slots_assigned != slots::SLOTS as u64 || o.info.slots_ok != slots::SLOTS as u64 {
            problems.push(format!(
                "{me} sees {} of {} slots ok",
                o.info.slots_ok,
                slots::SLOTS
            ));
        }
        if o.master_link_up == Some(false) {
            problems.push(format!("{me} has master_link_status:down"));
        }
        for line in &o.nodes {
            let Some(&j) = self.index.get(line.id.as_str()) else {
                problems.push(format!(
                    "{me} knows node {} which is not one of ours",
                    line.id
                ));
                continue;
            };
            let peer = &nodes[j].name;
            let f = line.flags;
            let state = [
                (f.fail, "fail"),
                (f.pfail, "fail?"),
                (f.handshake, "handshake"),
                (f.noaddr, "noaddr"),
                (!f.myself && !line.connected, "disconnected"),
            ];
            for (_, what) in state.iter().filter(|(bad, _)| *bad) {
                problems.push(format!("{me} sees {peer} as {what}"));
            }
            if line.addr != Some(nodes[j].addr) {
                let seen = line.addr.map_or("no address".into(), |a| a.to_string());
                problems.push(format!("{me} sees {peer} at {seen}, not {}", nodes[j].addr));
            }
        }
        let view = topology(o);
        let fingerprint = {
            let mut hasher = DefaultHasher::new();
            view.hash(&mut hasher);
            hasher.finish()
        };
        match &self.first {
            None => {
                self.first = Some(First {
                    pod: i,
                    fingerprint,
                    shape_exact: shape(&view, layout, true).err(),
                    shape_any: shape(&view, layout, false).err(),
                })
            }
            Some(first) if first.fingerprint != fingerprint => problems.push(format!(
                "{} and {} disagree on masters, replicas or slots",
                nodes[first.pod].name, me.name
            )),
            Some(_) => {}
        }
    }

    /// Both verdicts over every view added.
    pub fn finish(self) -> Verdict {
        let (shape_exact, shape_any) = match self.first {
            Some(first) => (first.shape_exact, first.shape_any),
            None => (None, None),
        };
        Verdict {
            problems: self.problems,
            shape_exact,
            shape_any,
        }
    }
}

/// The first names of a list, then how many more: a node of a fresh 300-node cluster does not
/// know 299 others, and one line per node is enough to say so.
fn few(names: &[&str]) -> String {
    const SHOWN: usize = 8;
    let mut text = names[..names.len().min(SHOWN)].join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

/// A node's view of who is master of which slots and who replicates whom, by node ID.
type Topology<'a> = BTreeMap<&'a str, (Option<&'a str>, Vec<(u16, u16)>)>;

fn topology(o: &Observation) -> Topology<'_> {
    o.nodes
        .iter()
        .map(|n| {
            let mut ranges: Vec<(u16, u16)> =
                n.slots.iter().map(|r| (*r.start(), *r.end())).collect();
            ranges.sort_unstable();
            let master = if n.flags.replica {
                n.master_id.as_deref()
            } else {
                None
            };
            (n.id.as_str(), (master, ranges))
        })
        .collect()
}

/// M masters that own slots, each followed by exactly R replicas (any number when not
/// `exact_replicas`), and nothing else.
fn shape(view: &Topology, layout: &Layout, exact_replicas: bool) -> Result<(), String> {
    let masters: Vec<&str> = view
        .iter()
        .filter(|(_, (master, slots))| master.is_none() && !slots.is_empty())
        .map(|(id, _)| *id)
        .collect();
    let idle = view
        .values()
        .filter(|(master, slots)| master.is_none() && slots.is_empty())
        .count();
    let mut replicas: HashMap<&str, usize> = HashMap::new();
    for (master, _) in view.values() {
        if let Some(m) = master {
            *replicas.entry(m).or_default() += 1;
        }
    }
    let uneven = masters
        .iter()
        .filter(|m| replicas.get(*m).copied().unwrap_or(0) != layout.replicas_per_master)
        .count();
    if masters.len() == layout.masters && idle == 0 && (uneven == 0 || !exact_replicas) {
        Ok(())
    } else {
        Err(format!(
            "the cluster has {} master(s) with slots, {idle} without, {uneven} without exactly {} replica(s); \
             expected {} masters with {} replica(s) each",
            masters.len(),
            layout.replicas_per_master,
            layout.masters,
            layout.replicas_per_master
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` pods `<prefix>0`, `<prefix>1`, … at 127.0.0.11, .12, …
    fn pods(prefix: &str, n: usize) -> Vec<Node> {
        (0..n)
            .map(|i| {
                Node::new(
                    format!("{prefix}{i}"),
                    format!("127.0.0.{}:6379", 11 + i).parse().unwrap(),
                )
            })
            .collect()
    }

    /// Six nodes, 3 masters (0–2) with one replica each (3→0, 4→1, 5→2), every view whole.
    fn formed() -> (Vec<Node>, Layout, Vec<Observation>) {
        let nodes = pods("redis-app-", 6);
        let layout = Layout::new(6, 1).unwrap();
        let id = |i: usize| format!("{i}").repeat(40);
        let slots = ["0-5460", "5461-10922", "10923-16383"];
        let line = |i: usize, me: usize| {
            let flags = if i == me { "myself," } else { "" };
            let (role, master, slots) = if i < 3 {
                ("master", "-".to_string(), slots[i])
            } else {
                ("slave", id(i - 3), "")
            };
            format!(
                "{} 127.0.0.{}:6379@16379 {flags}{role} {master} 0 0 1 connected {slots}",
                id(i),
                11 + i
            )
        };
        let observations = (0..6)
            .map(|me| {
                let view: Vec<String> = (0..6).map(|i| line(i, me)).collect();
                let info = if me < 3 {
                    "role:master\r\ncluster_enabled:1\r\n"
                } else {
                    "role:slave\r\nmaster_link_status:up\r\ncluster_enabled:1\r\n"
                };
                Observation::parse(
                    info,
                    &id(me),
                    &view.join("\n"),
                    "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\ncluster_known_nodes:6\r\n",
                )
                .unwrap()
            })
            .collect();
        (nodes, layout, observations)
    }

    #[test]
    fn a_formed_cluster_agrees() {
        let (nodes, layout, observations) = formed();
        assert_eq!(check(&nodes, &layout, &observations), Ok(()));
        assert_eq!(healthy(&nodes, &layout, &observations), Ok(()));
    }

    #[test]
    fn one_view_that_differs_is_named_against_the_first() {
        let (nodes, layout, mut observations) = formed();
        // Pod 4 sees pod 3 as a replica of pod 1 instead of pod 0.
        observations[4].nodes[3].master_id = Some("1".repeat(40));
        let problems = check(&nodes, &layout, &observations).unwrap_err();
        assert_eq!(
            problems,
            vec!["redis-app-0 and redis-app-4 disagree on masters, replicas or slots"]
        );
    }

    #[test]
    fn uneven_replicas_are_healthy_but_not_exact() {
        let (nodes, layout, mut observations) = formed();
        // Every view: pod 5 replicates pod 0, so pod 0 has two replicas and pod 2 none.
        for o in &mut observations {
            o.nodes[5].master_id = Some("0".repeat(40));
        }
        let problems = check(&nodes, &layout, &observations).unwrap_err();
        assert!(
            problems[0].contains("2 without exactly 1 replica"),
            "{problems:?}"
        );
        assert_eq!(healthy(&nodes, &layout, &observations), Ok(()));
    }

    #[test]
    fn a_node_that_knows_no_one_names_the_first_few_it_lacks() {
        let nodes = pods("n", 12);
        let layout = Layout::new(12, 1).unwrap();
        let observations: Vec<Observation> = (0..12)
            .map(|i| {
                let id = format!("{i:040}");
                Observation::parse(
                    "cluster_enabled:1\r\n",
                    &id,
                    &format!(
                        "{id} 127.0.0.{}:6379@16379 myself,master - 0 0 0 connected",
                        11 + i
                    ),
                    "cluster_state:fail\r\ncluster_known_nodes:1\r\n",
                )
                .unwrap()
            })
            .collect();
        let problems = check(&nodes, &layout, &observations).unwrap_err();
        assert!(
            problems.contains(
                &"n0 (127.0.0.11:6379) does not know n1, n2, n3, n4, n5, n6, n7, n8 and 3 more"
                    .into()
            ),
            "{problems:?}"
        );
    }
}
