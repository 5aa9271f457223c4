//! Reads every node for the planner, a few at a time, each view on a connection of its own
//! ([`observe`]), without holding N views of N lines when it need not. A formed cluster's run
//! (the CronJob's, every 5 minutes, under the pod's memory limit) held them all: at 300 nodes
//! 90,000 parsed lines, 35 MB. So each view is checked as it arrives ([`Tally`]): while every view
//! so far agrees on a formed cluster with no slot open, it is dropped after the check, keeping
//! only the node's own line. From the first view that does not, views are kept whole and those
//! dropped before are read again: the planner needs them all.

use futures::{StreamExt, TryStreamExt, stream};

use crate::Result;
use crate::agreement::Tally;
use crate::client::Client;
use crate::layout::Layout;
use crate::node::Node;
use crate::observation::Observation;
use crate::observe::{self, AT_ONCE};

/// What the survey found, every node's observation in pod order.
#[derive(Debug)]
pub enum Survey {
    /// Every view agrees on the formed cluster ([`crate::agreement::check`] passes) and none
    /// shows an open slot: each observation holds only the node's own line.
    Agreed(Vec<Observation>),
    /// Every node's whole view, for the planner.
    Whole(Vec<Observation>),
}

/// Reads every node, [`AT_ONCE`] at a time, keeping whole views only when they do not agree.
pub async fn survey(clients: &[Client], nodes: &[Node], layout: &Layout) -> Result<Survey> {
    let mut views = stream::iter(clients)
        .map(observe::observe_apart)
        .buffered(AT_ONCE);
    let mut seen: Vec<Observation> = Vec::with_capacity(clients.len());
    let mut check: Option<Check> = None;
    // The views before the first that did not agree were dropped.
    let mut dropped = 0;
    while let Some(o) = views.next().await {
        let o = o?;
        let i = seen.len();
        if dropped == i {
            if i == 0 {
                check = Check::new(nodes, layout, &o);
            }
            if check.as_mut().is_some_and(|c| c.add(i, &o)) {
                dropped += 1;
                seen.push(o.without_view());
                continue;
            }
        }
        seen.push(o);
    }
    if dropped == seen.len() && check.is_some_and(Check::finish) {
        return Ok(Survey::Agreed(seen));
    }
    let again: Vec<Observation> = stream::iter(&clients[..dropped])
        .map(observe::observe_apart)
        .buffered(AT_ONCE)
        .try_collect()
        .await?;
    seen.splice(..dropped, again);
    Ok(Survey::Whole(seen))
}

/// The check of one survey: [`Tally`], and no slot open in any view.
struct Check<'a> {
    tally: Tally<'a>,
}

impl<'a> Check<'a> {
    /// The check of `nodes`, whose IDs are taken from `first`, pod 0's view: each pod is the
    /// node it lists at the pod's address. `None` when it lists no node at some pod's address
    /// (a fresh node, a cluster on new addresses): that is no formed cluster.
    fn new(nodes: &'a [Node], layout: &'a Layout, first: &Observation) -> Option<Check<'a>> {
        let ids = nodes
            .iter()
            .map(|n| {
                first
                    .nodes
                    .iter()
                    .find(|l| l.addr == Some(n.addr))
                    .map(|l| l.id.as_str())
            })
            .collect::<Option<Vec<&str>>>()?;
        Some(Check {
            tally: Tally::new(nodes, layout, &ids),
        })
    }

    /// Checks pod `i`'s observation; true while every view so far agrees and none shows an
    /// open slot.
    fn add(&mut self, i: usize, o: &Observation) -> bool {
        self.tally.add(i, o);
        self.tally.clean() && o.nodes.iter().all(|l| l.open_slots.is_empty())
    }

    /// True when every view agreed.
    fn finish(self) -> bool {
        self.tally.finish().is_exact()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{self, Decision};

    /// `n` pods at 127.0.0.11, .12, …
    fn pods(n: usize) -> Vec<Node> {
        (0..n)
            .map(|i| {
                Node::new(
                    format!("redis-app-{i}"),
                    format!("127.0.0.{}:6379", 11 + i).parse().unwrap(),
                )
            })
            .collect()
    }

    /// Six nodes formed the guide's way (3 → 0, 4 → 1, 5 → 2), every view whole; `slots` are
    /// the three masters' ranges.
    fn formed(slots: [&str; 3]) -> Vec<Observation> {
        let id = |i: usize| format!("{i}").repeat(40);
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
        (0..6)
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
            .collect()
    }

    const EVEN: [&str; 3] = ["0-5460", "5461-10922", "10923-16383"];

    /// The survey's verdict over whole observations, as [`survey`] reaches it view by view.
    fn agreed(nodes: &[Node], layout: &Layout, observations: &[Observation]) -> bool {
        let Some(mut check) = Check::new(nodes, layout, &observations[0]) else {
            return false;
        };
        observations
            .iter()
            .enumerate()
            .all(|(i, o)| check.add(i, o))
            && check.finish()
    }

    /// What the run decides from the survey: from the nodes' own lines when every view agreed,
    /// else from the whole views.
    fn decided(observations: &[Observation], drain_to: Option<usize>) -> Result<Decision, String> {
        let (nodes, layout) = (pods(6), Layout::new(6, 1).unwrap());
        if agreed(&nodes, &layout, observations) {
            let own: Vec<Observation> = observations
                .iter()
                .cloned()
                .map(Observation::without_view)
                .collect();
            if let Some(plan) = plan::plan_agreed(&nodes, &layout, &own, drain_to) {
                return Ok(plan.decision);
            }
        }
        plan::plan_draining(&nodes, &layout, observations, drain_to).map(|p| p.decision)
    }

    /// The planner's own decision from the whole views.
    fn planned(observations: &[Observation], drain_to: Option<usize>) -> Result<Decision, String> {
        let (nodes, layout) = (pods(6), Layout::new(6, 1).unwrap());
        plan::plan_draining(&nodes, &layout, observations, drain_to).map(|p| p.decision)
    }

    #[test]
    fn a_formed_cluster_is_decided_from_the_nodes_own_lines() {
        let (nodes, layout) = (pods(6), Layout::new(6, 1).unwrap());
        let observations = formed(EVEN);
        assert!(agreed(&nodes, &layout, &observations));
        assert_eq!(decided(&observations, None), Ok(Decision::Formed));
        assert_eq!(planned(&observations, None), Ok(Decision::Formed));
    }

    #[test]
    fn the_survey_decides_as_the_planner_does() {
        let mut cases: Vec<(&str, Vec<Observation>, Option<usize>)> = vec![
            ("formed", formed(EVEN), None),
            // Masters not balanced ±1: a grow rebalances them.
            (
                "unbalanced",
                formed(["0-4000", "4001-10922", "10923-16383"]),
                None,
            ),
            // A drain is due.
            ("drain", formed(EVEN), Some(4)),
        ];
        let mut open = formed(EVEN);
        open[1] = Observation {
            nodes: {
                let mut lines = open[1].nodes.clone();
                lines[1]
                    .open_slots
                    .push(format!("[6000-<-{}]", "0".repeat(40)));
                lines
            },
            ..open[1].clone()
        };
        cases.push(("an open slot", open, None));
        let mut differs = formed(EVEN);
        differs[4].nodes[3].master_id = Some("1".repeat(40));
        cases.push(("a view that differs", differs, None));
        // A replica's stale open slot (Valkey): a repair, decided from the whole views.
        let mut stale = formed(EVEN);
        stale[4].nodes[4]
            .open_slots
            .push(format!("[7-<-{}]", "0".repeat(40)));
        cases.push(("a replica's stale open slot", stale, None));
        let mut fresh = formed(EVEN);
        fresh[0].nodes.retain(|l| l.flags.myself);
        cases.push(("pod 0 knows no one", fresh, None));
        for (what, observations, drain_to) in cases {
            assert_eq!(
                decided(&observations, drain_to),
                planned(&observations, drain_to),
                "{what}"
            );
        }
    }

    #[test]
    fn a_view_that_differs_or_shows_an_open_slot_is_no_agreement() {
        let (nodes, layout) = (pods(6), Layout::new(6, 1).unwrap());
        let mut observations = formed(EVEN);
        observations[2].nodes[2].open_slots.push("[7->-x]".into());
        assert!(!agreed(&nodes, &layout, &observations));
        let mut observations = formed(EVEN);
        observations[5].info.state_ok = false;
        assert!(!agreed(&nodes, &layout, &observations));
    }
}
