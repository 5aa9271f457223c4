//! `handover`, the Redis pod's `preStop` hook: a master hands its slots to a replica before its
//! pod stops, so a rollout, an upgrade or a drain costs a pause of writes, not a failover.
//!
//! On a master that owns slots it asks every replica the local node lists for its replication
//! state, picks the one whose link is up with the highest offset, and sends it `CLUSTER FAILOVER`
//! (never `FORCE` or `TAKEOVER`: the master pauses writes and the replica waits to catch up before
//! it takes over, so no acknowledged write is lost). `CLUSTER FAILOVER` returns before the
//! failover happens, so the hook then waits until the local node reports itself a replica of the
//! new master. Redis abandons a manual failover after 5 s; the hook tries the next replica, and
//! gives up at `BOOTSTRAP_HANDOVER_TIMEOUT` (exit 1), well inside the pod's grace period.
//! A replica, a master without slots, or a master with no replica in sync returns at once (exit 0)
//! with a line saying why: the pod stops as it would without the hook.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::client::{self, Client};
use crate::cluster_nodes::{self, ClusterNode};
use crate::node::Node;
use crate::observation::{self, Observation};
use crate::observe::observe;
use crate::pod::Context;
use crate::{Error, Result};

/// How long one manual failover may take before the next replica is tried: Redis's own manual
/// failover timeout (5 s) and a margin for the election.
const ATTEMPT: Duration = Duration::from_secs(7);
/// How often the local node is asked whether it is a replica yet.
const POLL: Duration = Duration::from_millis(50);

/// A replica of the local master and how far it has replicated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The replica's node ID.
    pub id: String,
    /// Where to reach it.
    pub node: Node,
    /// `master_link_status:up` and no sync in progress.
    pub in_sync: bool,
    /// `slave_repl_offset`.
    pub offset: u64,
}

/// Why the local node has nothing to hand over, or `None` when it is a master with slots.
pub fn nothing_to_hand_over(local: &Observation) -> Option<String> {
    if !local.cluster_enabled {
        return Some("cluster mode is off: nothing to hand over".into());
    }
    let Some(myself) = local.myself() else {
        return Some("the node does not list itself in CLUSTER NODES: nothing to hand over".into());
    };
    if myself.flags.replica {
        let master = myself.master_id.as_deref().unwrap_or("-");
        return Some(format!("a replica (of {master}): nothing to hand over"));
    }
    if !myself.has_slots() {
        return Some("a master that owns no slots: nothing to hand over".into());
    }
    None
}

/// The replicas of the local master, as its `CLUSTER NODES` lists them: reachable ones only
/// (an address, no failure flag).
pub fn replicas_of_myself(local: &Observation) -> Vec<&ClusterNode> {
    local
        .nodes
        .iter()
        .filter(|n| n.flags.replica && n.master_id.as_deref() == Some(local.id.as_str()))
        .filter(|n| n.addr.is_some() && n.flags.healthy())
        .collect()
}

/// The order in which replicas are asked to take over: in sync only, the highest offset first
/// (ties by ID, so the choice is stable).
pub fn order(mut candidates: Vec<Candidate>) -> Vec<Candidate> {
    candidates.retain(|c| c.in_sync);
    candidates.sort_by(|a, b| b.offset.cmp(&a.offset).then_with(|| a.id.cmp(&b.id)));
    candidates
}

/// Hands the local master's slots to its best replica and waits until it is a replica itself.
pub async fn run(ctx: &Context) -> Result<()> {
    let started = Instant::now();
    let deadline = started + ctx.settings.handover_timeout;
    let local = connect(ctx, &ctx.local).await?;
    let seen = observe(&local).await?;
    if let Some(why) = nothing_to_hand_over(&seen) {
        info!(node = %ctx.local, "handover: {why}");
        return Ok(());
    }
    let candidates = order(candidates(ctx, &seen).await);
    if candidates.is_empty() {
        warn!(
            node = %ctx.local,
            "handover: no replica is connected and in sync: not handing over (the shard fails over \
             by itself after cluster-node-timeout, once this pod has stopped)"
        );
        return Ok(());
    }
    for candidate in &candidates {
        if Instant::now() >= deadline {
            break;
        }
        info!(
            node = %ctx.local,
            replica = %candidate.node,
            offset = candidate.offset,
            "handover: CLUSTER FAILOVER on {} ({}), the replica in sync with the highest offset",
            candidate.node, candidate.id
        );
        let replica = match connect(ctx, &candidate.node).await {
            Ok(replica) => replica,
            Err(e) => {
                warn!(replica = %candidate.node, error = %e, "handover: replica unreachable; trying the next");
                continue;
            }
        };
        if let Err(e) = replica
            .query::<()>(redis::cmd("CLUSTER").arg("FAILOVER"), "CLUSTER FAILOVER")
            .await
        {
            warn!(replica = %candidate.node, error = %e, "handover: CLUSTER FAILOVER refused; trying the next");
            continue;
        }
        let until = deadline.min(Instant::now() + ATTEMPT);
        if replica_of(&local, &candidate.id, until).await? {
            info!(
                node = %ctx.local,
                master = %candidate.node,
                took_ms = started.elapsed().as_millis() as u64,
                "handover: done in {}: now a replica of {} ({})",
                humantime::format_duration(Duration::from_millis(started.elapsed().as_millis() as u64)),
                candidate.node,
                candidate.id
            );
            return Ok(());
        }
        warn!(replica = %candidate.node, "handover: the failover did not complete; trying the next replica");
    }
    Err(Error::Timeout {
        phase: "handover",
        after: ctx.settings.handover_timeout,
        detail: format!(
            "{} is still a master: no replica took over (tried {}); the shard fails over by itself \
             after cluster-node-timeout once the pod has stopped",
            ctx.local,
            candidates
                .iter()
                .map(|c| c.node.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

/// Connects once, retrying briefly: the hook must not outlive the grace period.
async fn connect(ctx: &Context, node: &Node) -> Result<Client> {
    client::retry_unreachable(node, Duration::from_secs(3), || {
        Client::connect(
            node,
            ctx.settings.credentials.as_ref(),
            ctx.settings.tls.as_ref(),
        )
    })
    .await
}

/// Asks every replica the local master lists how far it has replicated; one that does not
/// answer is left out.
async fn candidates(ctx: &Context, local: &Observation) -> Vec<Candidate> {
    let asks = replicas_of_myself(local).into_iter().filter_map(|line| {
        let node = ctx.peer(line)?;
        let id = line.id.clone();
        Some(async move {
            let replica = connect(ctx, &node).await.ok()?;
            let info: String = replica
                .query(redis::cmd("INFO").arg("replication"), "INFO replication")
                .await
                .ok()?;
            let fields = observation::fields(&info);
            let in_sync = fields.get("role") == Some(&"slave")
                && fields.get("master_link_status") == Some(&"up")
                && fields.get("master_sync_in_progress") != Some(&"1");
            let offset = fields
                .get("slave_repl_offset")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            Some(Candidate {
                id,
                node,
                in_sync,
                offset,
            })
        })
    });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Waits until the local node lists itself as a replica of `master`, or `until`.
async fn replica_of(local: &Client, master: &str, until: Instant) -> Result<bool> {
    loop {
        let nodes: String = local
            .query(redis::cmd("CLUSTER").arg("NODES"), "CLUSTER NODES")
            .await?;
        // A reply that does not parse is asked again, like one that shows no change yet.
        let follows = cluster_nodes::parse(&nodes).is_ok_and(|view| {
            view.iter().any(|n| {
                n.flags.myself && n.flags.replica && n.master_id.as_deref() == Some(master)
            })
        });
        if follows {
            return Ok(true);
        }
        if Instant::now() >= until {
            return Ok(false);
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const R1: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const R2: &str = "cccccccccccccccccccccccccccccccccccccccc";

    fn seen(nodes: &str, info: &str) -> Observation {
        Observation::parse(info, ME, nodes, "cluster_state:ok\r\n").unwrap()
    }

    fn candidate(id: &str, in_sync: bool, offset: u64) -> Candidate {
        Candidate {
            id: id.into(),
            node: Node::new(id, "127.0.0.1:6379".parse().unwrap()),
            in_sync,
            offset,
        }
    }

    #[test]
    fn only_a_master_with_slots_hands_over() {
        let master = seen(
            &format!("{ME} 10.0.0.1:6379@16379 myself,master - 0 0 1 connected 0-5460\n"),
            "role:master\r\ncluster_enabled:1\r\n",
        );
        assert_eq!(nothing_to_hand_over(&master), None);
        let replica = seen(
            &format!("{ME} 10.0.0.1:6379@16379 myself,slave {R1} 0 0 1 connected\n"),
            "role:slave\r\ncluster_enabled:1\r\n",
        );
        assert!(
            nothing_to_hand_over(&replica)
                .unwrap()
                .contains("a replica")
        );
        let empty = seen(
            &format!("{ME} 10.0.0.1:6379@16379 myself,master - 0 0 1 connected\n"),
            "role:master\r\ncluster_enabled:1\r\n",
        );
        assert!(
            nothing_to_hand_over(&empty)
                .unwrap()
                .contains("owns no slots")
        );
        let standalone = Observation::standalone("role:master\r\ncluster_enabled:0\r\n");
        assert!(
            nothing_to_hand_over(&standalone)
                .unwrap()
                .contains("cluster mode is off")
        );
    }

    #[test]
    fn a_failing_or_foreign_replica_is_no_candidate() {
        let view = seen(
            &format!(
                "{ME} 10.0.0.1:6379@16379 myself,master - 0 0 1 connected 0-5460\n\
                 {R1} 10.0.0.4:6379@16379 slave {ME} 0 0 1 connected\n\
                 {R2} 10.0.0.5:6379@16379 slave,fail? {ME} 0 0 1 disconnected\n\
                 dddddddddddddddddddddddddddddddddddddddd 10.0.0.6:6379@16379 slave {R1} 0 0 1 connected\n"
            ),
            "role:master\r\ncluster_enabled:1\r\n",
        );
        let ids: Vec<&str> = replicas_of_myself(&view)
            .iter()
            .map(|n| n.id.as_str())
            .collect();
        assert_eq!(ids, [R1]);
    }

    #[test]
    fn the_most_up_to_date_replica_in_sync_goes_first() {
        let ordered = order(vec![
            candidate(R1, true, 100),
            candidate(R2, true, 250),
            candidate("dddddddddddddddddddddddddddddddddddddddd", false, 900),
        ]);
        let ids: Vec<&str> = ordered.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, [R2, R1]);
        assert!(order(vec![candidate(R1, false, 5)]).is_empty());
    }
}
