//! Carries out a placement repair ([`crate::plan::repair`]): one move at a time, each waited for
//! before the next, so at most one shard is ever without a synced replica.
//!
//! - `CLUSTER REPLICATE`: the replica drops its data and resyncs from its new master; done when
//!   every node sees it follow that master and it reports `master_link_status:up`.
//! - `CLUSTER FAILOVER` (manual: no `FORCE`, no `TAKEOVER`): the replica waits until it has
//!   caught up with its master's offset, then takes over with the master's consent; the command
//!   returns before that, so it is done only when the old master reports itself a replica of the
//!   new one and every node agrees.
//!
//! Before each move the nodes are read again: if the cluster no longer looks as the plan expects
//! (a failover of its own, a pod restarted), the repair stops there (a warning), the run waits for
//! agreement as after any change, and the next run plans anew.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::agreement;
use crate::client::Client;
use crate::layout::Layout;
use crate::node::Node;
use crate::observation::Observation;
use crate::observe::observe_all;
use crate::plan::{Plan, Step};
use crate::shutdown::Shutdown;
use crate::{Error, Result};

/// How often the nodes are read while a move completes.
const POLL: Duration = Duration::from_millis(200);

/// Makes the plan's moves in order, each waited for (at most `timeout` each).
pub async fn relocate(
    clients: &[Client],
    layout: &Layout,
    plan: &Plan,
    timeout: Duration,
    shutdown: &Shutdown,
) -> Result<()> {
    let nodes: Vec<Node> = clients.iter().map(|c| c.node.clone()).collect();
    // A stale open slot's STABLE is `crate::stabilize`'s, before the moves.
    let moves: Vec<(&Step, Option<&String>)> = plan
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s, Step::Replicate { .. } | Step::Failover { .. }))
        .map(|(i, s)| (s, plan.notes.get(i)))
        .collect();
    let total = moves.len();
    for (done, (step, note)) in moves.into_iter().enumerate() {
        if let Some(signal) = shutdown.requested() {
            return Err(Error::Interrupted {
                signal,
                phase: "repair",
                detail: format!("{done} of {total} moves made, each complete"),
            });
        }
        let observations = observe_all(clients).await?;
        if let Err(why) = expected(&nodes, &observations, step) {
            // The rest of the plan was made for a cluster that is no more: stop here, let the
            // wait for agreement see what it is, and the next run plan anew.
            warn!(
                "repair stopped after {done} of {total} moves: the cluster changed meanwhile \
                 ({why}); the next run plans anew"
            );
            return Ok(());
        }
        send(&clients[step.node()], step).await?;
        info!(node = %nodes[step.node()].name, "{}", step.describe(&nodes));
        if let Some(note) = note {
            info!("{note}");
        }
        wait_done(clients, &nodes, layout, step, timeout).await?;
    }
    Ok(())
}

/// Checks that the move still applies: the node is a synced replica (of `master` for a failover)
/// and `master` is a master.
fn expected(nodes: &[Node], observations: &[Observation], step: &Step) -> Result<(), String> {
    let (node, master, failover) = match step {
        Step::Replicate { node, master, .. } => (*node, *master, false),
        Step::Failover { node, master, .. } => (*node, *master, true),
        _ => return Err("not a repair move".into()),
    };
    let me = observations[node].myself().ok_or("no view of itself")?;
    if !me.flags.replica || observations[node].master_link_up != Some(true) {
        return Err(format!("{} is not a synced replica", nodes[node].name));
    }
    let boss = observations[master].myself().ok_or("no view of itself")?;
    if boss.flags.replica || !boss.has_slots() {
        return Err(format!("{} is not a master", nodes[master].name));
    }
    if failover && me.master_id.as_deref() != Some(observations[master].id.as_str()) {
        return Err(format!(
            "{} does not follow {}",
            nodes[node].name, nodes[master].name
        ));
    }
    Ok(())
}

/// Sends the move's one command.
async fn send(client: &Client, step: &Step) -> Result<()> {
    match step {
        Step::Replicate { master_id, .. } => {
            client
                .query::<()>(
                    redis::cmd("CLUSTER").arg("REPLICATE").arg(master_id),
                    "CLUSTER REPLICATE",
                )
                .await
        }
        Step::Failover { .. } => {
            client
                .query::<()>(redis::cmd("CLUSTER").arg("FAILOVER"), "CLUSTER FAILOVER")
                .await
        }
        _ => unreachable!("only repair moves are relocated"),
    }
}

/// Waits until the move is complete in every node's view and the cluster is healthy again.
async fn wait_done(
    clients: &[Client],
    nodes: &[Node],
    layout: &Layout,
    step: &Step,
    timeout: Duration,
) -> Result<()> {
    let started = Instant::now();
    loop {
        // A node busy with a full sync may answer late: that is not done yet, not a failure.
        let problem = match observe_all(clients).await {
            Ok(observations) => match done(nodes, layout, &observations, step) {
                Ok(()) => return Ok(()),
                Err(why) => why,
            },
            Err(e) => e.to_string(),
        };
        if started.elapsed() >= timeout {
            return Err(Error::Timeout {
                phase: "repair",
                after: timeout,
                detail: format!("{}: {problem}", step.describe(nodes)),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `Ok` when every node shows the move made and agrees, every replica in sync.
fn done(
    nodes: &[Node],
    layout: &Layout,
    observations: &[Observation],
    step: &Step,
) -> Result<(), String> {
    let (follower, leader) = match step {
        Step::Replicate { node, master, .. } => (*node, *master),
        // After a failover the old master follows the replica.
        Step::Failover { node, master, .. } => (*master, *node),
        _ => return Ok(()),
    };
    let leader_id = observations[leader].id.as_str();
    for (i, o) in observations.iter().enumerate() {
        let line = o
            .knows(&observations[follower].id)
            .ok_or_else(|| format!("{} does not know {}", nodes[i].name, nodes[follower].name))?;
        if !line.flags.replica || line.master_id.as_deref() != Some(leader_id) {
            return Err(format!(
                "{} does not see {} follow {} yet",
                nodes[i].name, nodes[follower].name, nodes[leader].name
            ));
        }
    }
    agreement::healthy(nodes, layout, observations).map_err(|p| p.join("; "))
}
