//! Refusals that hold whatever else the state is: the tool will not touch these nodes (exit 3).
//! Each message names the node and says what a person does next.

use std::collections::HashMap;

use crate::node::Node;
use crate::observation::Observation;

/// Cluster mode off, one node behind two addresses, a node that knows a stranger.
/// `lost` is the one stranger that *replace* forgets ([`super::replace::lost_id`]): not refused.
pub(super) fn refuse_unsafe(
    nodes: &[Node],
    observations: &[Observation],
    lost: Option<&str>,
) -> Result<(), String> {
    for (node, o) in nodes.iter().zip(observations) {
        if !o.cluster_enabled {
            return Err(format!(
                "{node} has cluster mode disabled: set `cluster-enabled yes` in its redis.conf and restart it"
            ));
        }
    }
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (i, o) in observations.iter().enumerate() {
        if let Some(j) = ids.insert(o.id.as_str(), i) {
            return Err(format!(
                "{} and {} are the same Redis node (ID {}): every address must reach a different node",
                nodes[j], nodes[i], o.id
            ));
        }
    }
    for (node, o) in nodes.iter().zip(observations) {
        for line in o.nodes.iter().filter(|l| !l.flags.handshake) {
            if !ids.contains_key(line.id.as_str()) && lost != Some(line.id.as_str()) {
                let at = line.addr.map_or("no address".into(), |a| a.to_string());
                return Err(format!(
                    "{node} knows node {} at {at}, which is not one of the {} nodes and which some \
                     node still reaches: it belongs to another cluster (or is a member outside the \
                     StatefulSet): point the bootstrap at that cluster's nodes, or remove the node from \
                     it yourself",
                    line.id,
                    nodes.len()
                ));
            }
        }
    }
    Ok(())
}

/// An open (migrating or importing) slot that no grow or drain of this run will finish.
pub(super) fn refuse_open_slots(
    nodes: &[Node],
    observations: &[Observation],
) -> Result<(), String> {
    for (node, o) in nodes.iter().zip(observations) {
        for line in &o.nodes {
            if let Some(open) = line.open_slots.first() {
                return Err(format!(
                    "{node} reports open slot {open} (a resharding in progress): finish or cancel it with \
                     `redis-cli --cluster fix`, then run the bootstrap again"
                ));
            }
        }
    }
    Ok(())
}
