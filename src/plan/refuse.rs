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

/// An open (migrating or importing) slot that no grow or drain of this run will finish. A
/// replica's stale one ([`super::stale_slots`]) is no move: a *repair* clears it.
pub(super) fn refuse_open_slots(
    nodes: &[Node],
    observations: &[Observation],
) -> Result<(), String> {
    let stale = super::stale_slots::stale_slots(observations);
    for (i, (node, o)) in nodes.iter().zip(observations).enumerate() {
        for line in &o.nodes {
            let mut moving = line
                .open_slots
                .iter()
                .filter(|m| !stale.iter().any(|s| s.replica == i && s.marker == **m));
            if let Some(open) = moving.next() {
                return Err(format!(
                    "{node} reports open slot {open} (a resharding in progress): finish or cancel it with \
                     `redis-cli --cluster fix`, then run the bootstrap again"
                ));
            }
        }
    }
    Ok(())
}

/// A replica whose link to its master is down and whose server cannot load the RDB version its
/// master sends in a full sync: a cluster rolled backwards (Redis 7.0 replicas of Valkey 8.0
/// masters). Such a replica empties itself for each sync and never catches up; nothing the tool
/// does fixes that, rolling forward does. A replica whose link is up (a partial sync after a
/// handover, as in a roll forward) is left alone.
pub(super) fn refuse_unloadable_syncs(
    nodes: &[Node],
    observations: &[Observation],
) -> Result<(), String> {
    for (node, o) in nodes.iter().zip(observations) {
        if o.master_link_up != Some(false) {
            continue;
        }
        let master_id = o.myself().and_then(|m| m.master_id.as_deref());
        let Some(at) = master_id.and_then(|id| observations.iter().position(|m| m.id == id)) else {
            continue;
        };
        let (Some(replica), Some(master)) = (o.server, observations[at].server) else {
            continue;
        };
        let Some(rdb) = master.writes_for(&replica) else {
            continue;
        };
        if replica.reads(rdb) == Some(false) {
            return Err(format!(
                "{node} runs {replica}, which cannot load the RDB {rdb} that its master {}, on \
                 {master}, sends in a full sync: it never catches up, and going back to an older \
                 server is not supported. Roll its pod forward again to {master} or newer (the \
                 data is on the masters), then run the bootstrap again",
                nodes[at]
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const REPLICA: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    /// A master on `master` and its replica on `replica` (INFO server lines), the link `link`.
    fn shard(master: &str, replica: &str, link: &str) -> Vec<Observation> {
        let view = format!(
            "{MASTER} 10.0.0.1:6379@16379 master - 0 0 1 connected 0-16383\n\
             {REPLICA} 10.0.0.2:6379@16379 slave {MASTER} 0 0 1 connected\n"
        );
        let flagged = |id: &str| {
            view.lines()
                .map(|l| {
                    if l.starts_with(id) {
                        l.replacen(" master ", " myself,master ", 1).replacen(
                            " slave ",
                            " myself,slave ",
                            1,
                        )
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        vec![
            Observation::parse(
                &format!("{master}\r\nrole:master\r\ncluster_enabled:1\r\n"),
                MASTER,
                &flagged(MASTER),
                "cluster_state:ok\r\n",
            )
            .unwrap(),
            Observation::parse(
                &format!(
                    "{replica}\r\nrole:slave\r\nmaster_link_status:{link}\r\ncluster_enabled:1\r\n"
                ),
                REPLICA,
                &flagged(REPLICA),
                "cluster_state:ok\r\n",
            )
            .unwrap(),
        ]
    }

    fn nodes() -> Vec<Node> {
        ["10.0.0.1:6379", "10.0.0.2:6379"]
            .iter()
            .enumerate()
            .map(|(i, a)| Node::new(format!("redis-app-{i}"), a.parse().unwrap()))
            .collect()
    }

    const VALKEY_8: &str = "redis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.0.1";
    const REDIS_7_0: &str = "redis_version:7.0.15";

    #[test]
    fn a_redis_7_0_replica_of_a_valkey_master_that_cannot_sync_is_refused() {
        let refused =
            refuse_unloadable_syncs(&nodes(), &shard(VALKEY_8, REDIS_7_0, "down")).unwrap_err();
        for words in [
            "redis-app-1",
            "Redis 7.0.15",
            "RDB 11",
            "Valkey 8.0.1",
            "Roll its pod forward again to Valkey 8.0.1",
        ] {
            assert!(refused.contains(words), "{words:?}: {refused}");
        }
    }

    #[test]
    fn a_roll_forward_and_a_replica_in_sync_are_left_alone() {
        // Valkey replicas of Redis masters (a roll forward, paused half-way).
        assert!(refuse_unloadable_syncs(&nodes(), &shard(REDIS_7_0, VALKEY_8, "down")).is_ok());
        // The old master just handed over: its partial sync keeps the link up.
        assert!(refuse_unloadable_syncs(&nodes(), &shard(VALKEY_8, REDIS_7_0, "up")).is_ok());
        // A server that does not say what it is.
        assert!(refuse_unloadable_syncs(&nodes(), &shard("", REDIS_7_0, "down")).is_ok());
    }
}
