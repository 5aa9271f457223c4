//! A cluster that serves, as `backup` and `restore` need it: every node agrees on one topology,
//! all 16384 slots are served, no slot is migrating or importing, and the list of nodes holds
//! every node of the cluster. Unlike [`crate::agreement`] it asks no shape (a restore's target may
//! have any number of masters and replicas). Pure code over the observations.

use std::collections::{BTreeMap, HashSet};

use crate::node::Node;
use crate::observation::Observation;
use crate::slots::{self, SlotRange};

/// A node's view of who is master of which slots and who replicates whom, by node ID.
type View<'a> = BTreeMap<&'a str, (Option<&'a str>, Vec<(u16, u16)>)>;

/// One master of a serving cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Master {
    /// Its position in the node list (and in the clients and observations).
    pub index: usize,
    /// Its node ID.
    pub id: String,
    /// Its slots, in order.
    pub slots: Vec<SlotRange>,
    /// Its keys (`INFO keyspace`) when observed.
    pub keys: u64,
}

/// The masters of the cluster, in slot order, or why it does not serve (each problem naming the
/// node, for a refusal).
pub fn masters(nodes: &[Node], observations: &[Observation]) -> Result<Vec<Master>, Vec<String>> {
    let mut problems = Vec::new();
    let ids: HashSet<&str> = observations.iter().map(|o| o.id.as_str()).collect();
    let mut first: Option<(usize, View)> = None;
    for (i, o) in observations.iter().enumerate() {
        let me = &nodes[i];
        if !o.cluster_enabled {
            problems.push(format!("{me} has cluster mode disabled"));
            continue;
        }
        if !o.info.state_ok {
            problems.push(format!("{me} reports cluster_state:fail"));
        }
        if o.info.slots_assigned != slots::SLOTS as u64 || o.info.slots_ok != slots::SLOTS as u64 {
            problems.push(format!(
                "{me} sees {} of {} slots served",
                o.info.slots_ok,
                slots::SLOTS
            ));
        }
        if o.master_link_up == Some(false) {
            problems.push(format!("{me} has master_link_status:down"));
        }
        for line in &o.nodes {
            if !ids.contains(line.id.as_str()) {
                problems.push(format!(
                    "{me} knows node {} ({}), which is not in the list of nodes: list every node \
                     of the cluster",
                    line.id,
                    line.addr.map_or("no address".into(), |a| a.to_string())
                ));
            }
            if !line.flags.healthy() || (!line.flags.myself && !line.connected) {
                problems.push(format!(
                    "{me} sees node {} as failing or unreachable",
                    line.id
                ));
            }
            for open in &line.open_slots {
                problems.push(format!(
                    "{me} sees slot {open} of node {} moving (migrating or importing)",
                    line.id
                ));
            }
        }
        let view: View = o
            .nodes
            .iter()
            .map(|n| {
                let master = n.master_id.as_deref().filter(|_| n.flags.replica);
                let mut ranges: Vec<(u16, u16)> =
                    n.slots.iter().map(|r| (*r.start(), *r.end())).collect();
                ranges.sort_unstable();
                (n.id.as_str(), (master, ranges))
            })
            .collect();
        match &first {
            None => first = Some((i, view)),
            Some((j, seen)) if *seen != view => problems.push(format!(
                "{} and {me} disagree on masters, replicas or slots",
                nodes[*j]
            )),
            Some(_) => {}
        }
    }
    if !problems.is_empty() {
        problems.dedup();
        return Err(problems);
    }
    let mut masters: Vec<Master> = observations
        .iter()
        .enumerate()
        .filter_map(|(index, o)| {
            let me = o.myself()?;
            (!me.flags.replica && me.has_slots()).then(|| {
                let mut slots = me.slots.clone();
                slots.sort_by_key(|r| *r.start());
                Master {
                    index,
                    id: o.id.clone(),
                    slots,
                    keys: o.keys,
                }
            })
        })
        .collect();
    masters.sort_by_key(|m| m.slots.first().map(|r| *r.start()));
    Ok(masters)
}

/// The problems on one line, for a refusal: the first few and how many more.
pub fn summarize(problems: &[String]) -> String {
    const SHOWN: usize = 4;
    let mut text = problems[..problems.len().min(SHOWN)].join("; ");
    if problems.len() > SHOWN {
        text.push_str(&format!("; and {} more", problems.len() - SHOWN));
    }
    text
}
