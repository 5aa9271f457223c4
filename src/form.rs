//! Carries out a plan: slots first (they start Redis's clock towards `cluster_state:ok`), config
//! epochs (only possible before a node knows anyone) and `CLUSTER FORGET` (every node within
//! Redis's 60 s ban, before any MEET could gossip the lost ID back) in one round trip, then
//! `CLUSTER MEET`, then — each replica the moment it knows its master — `CLUSTER REPLICATE`. Each
//! group runs on all nodes at once, and every command is logged with the node it changed: the
//! audit trail. A signal stops it before its next group of commands or its next
//! `CLUSTER REPLICATE`, never in the middle of one, and the error says what remains.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::{join_all, try_join_all};
use tracing::{info, warn};

use crate::client::Client;
use crate::cluster_nodes;
use crate::node::Node;
use crate::plan::{Decision, Plan, Step};
use crate::shutdown::Shutdown;
use crate::{Error, Result};

/// How often a replica is asked whether it knows its master yet.
const HANDSHAKE_POLL: Duration = Duration::from_millis(10);

/// How long a re-pointed replica may not know its master at its new address before it is told to
/// `CLUSTER MEET` it again. Redis drops a handshake that gets no answer within the node timeout
/// (1 s at least), and on a starved machine (100 nodes restarted at once, 4950 handshakes) some
/// do: such a replica would wait for gossip, which brings no address for a peer flagged `fail`
/// everywhere. A MEET while a handshake is under way is a no-op.
const MEET_AGAIN: Duration = Duration::from_secs(1);

/// Runs every step of the plan; waiting for handshakes may take at most `timeout`.
pub async fn form(
    clients: &[Client],
    plan: &Plan,
    timeout: Duration,
    shutdown: &Shutdown,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let nodes: Vec<Node> = clients.iter().map(|c| c.node.clone()).collect();
    let progress = Progress::new(plan, &nodes, shutdown);
    let of_kind = |pick: fn(&Step) -> bool| {
        plan.steps
            .iter()
            .enumerate()
            .filter(|(_, s)| pick(s))
            .collect::<Vec<_>>()
    };
    // Slots and epochs in one round trip per node, slots first: on 100 busy nodes a round trip
    // that waits for the slowest one costs 50–100 ms, and the MEETs wait for it.
    progress.check()?;
    run(
        clients,
        &nodes,
        &of_kind(|s| {
            matches!(
                s,
                Step::AddSlots { .. } | Step::SetEpoch { .. } | Step::Forget { .. }
            )
        }),
        &progress,
    )
    .await?;
    progress.check()?;
    run(
        clients,
        &nodes,
        &of_kind(|s| matches!(s, Step::Meet { .. })),
        &progress,
    )
    .await?;
    let replicate = of_kind(|s| matches!(s, Step::Replicate { .. }));
    let at_address = plan.decision == Decision::Reconnect;
    if !replicate.is_empty() {
        let started = Instant::now();
        // Each replica follows its master the moment it knows it, not after the slowest handshake.
        // Every replica reaches its own safe point before a signal is reported, so no REPLICATE
        // already sent goes unlogged.
        let results = join_all(replicate.iter().map(|s| {
            let (nodes, progress) = (&nodes, &progress);
            async move {
                tokio::select! {
                    known = knows_master(clients, nodes, s.1, deadline, timeout, at_address) => known?,
                    _ = shutdown.wait() => return Ok(()),
                }
                if shutdown.requested().is_some() {
                    return Ok(());
                }
                match run(clients, nodes, &[*s], progress).await {
                    Err(e) if at_address && overtaken_by_failover(&e) => {
                        warn!(
                            "{e}: a failover moved the roles while replicas were re-pointed; left \
                             to Redis, the convergence check judges the result"
                        );
                        Ok(())
                    }
                    other => other,
                }
            }
        }))
        .await;
        results.into_iter().collect::<Result<Vec<()>>>()?;
        progress.check()?;
        info!(took = ?started.elapsed(), "every replica follows its master");
    }
    Ok(())
}

/// A re-pointing `CLUSTER REPLICATE` (*reconnect*) refused because the master it names has
/// become a replica since the nodes were read: a failover of that shard finished meanwhile (seen
/// at 100 nodes restarted on new addresses, where failovers follow the re-mesh). Nothing to do:
/// the replica follows whoever masters its shard now.
fn overtaken_by_failover(e: &Error) -> bool {
    // Redis: "I can only replicate a master, not a replica."; Valkey: "... a primary, ...".
    matches!(e, Error::Command { command, source, .. }
        if command == "CLUSTER REPLICATE" && source.to_string().contains("can only replicate a"))
}

/// Which steps ran, so that a signal can say what remains.
struct Progress<'a> {
    plan: &'a Plan,
    nodes: &'a [Node],
    shutdown: &'a Shutdown,
    done: Vec<Cell<bool>>,
}

impl<'a> Progress<'a> {
    fn new(plan: &'a Plan, nodes: &'a [Node], shutdown: &'a Shutdown) -> Progress<'a> {
        Progress {
            plan,
            nodes,
            shutdown,
            done: plan.steps.iter().map(|_| Cell::new(false)).collect(),
        }
    }

    /// The safe point: `Err` when a signal came, naming what ran and what remains.
    fn check(&self) -> Result<()> {
        let Some(signal) = self.shutdown.requested() else {
            return Ok(());
        };
        let remaining: Vec<String> = self
            .plan
            .steps
            .iter()
            .zip(&self.done)
            .filter(|(_, done)| !done.get())
            .map(|(step, _)| step.describe(self.nodes))
            .collect();
        Err(Error::Interrupted {
            signal,
            phase: "form",
            detail: format!(
                "ran {} of {} step(s); remaining: {}",
                self.plan.steps.len() - remaining.len(),
                self.plan.steps.len(),
                crate::converge::summarize(&remaining)
            ),
        })
    }
}

/// Sends one group of steps, all nodes at once: each node's steps in one pipeline, in plan order.
async fn run(
    clients: &[Client],
    nodes: &[Node],
    steps: &[(usize, &Step)],
    progress: &Progress<'_>,
) -> Result<()> {
    // Only the nodes with steps: a replica's REPLICATE runs as a group of one, 150 at once at 300
    // nodes.
    let mut by_node: BTreeMap<usize, Vec<(usize, &Step)>> = BTreeMap::new();
    for &(index, step) in steps {
        by_node.entry(step.node()).or_default().push((index, step));
    }
    try_join_all(by_node.values().map(|own| async move {
        let client = &clients[own[0].1.node()];
        let commands = own.iter().map(|(_, step)| command(step, nodes)).collect();
        let results = client.each(commands).await?;
        // Every command that ran is in the audit trail, even when one of them failed.
        let mut failed = None;
        for ((index, step), result) in own.iter().zip(results) {
            match result {
                Ok(()) => {
                    progress.done[*index].set(true);
                    info!(node = %client.node.name, "{}", step.describe(nodes))
                }
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        failed.map_or(Ok(()), Err)
    }))
    .await?;
    Ok(())
}

fn command(step: &Step, nodes: &[Node]) -> (redis::Cmd, &'static str) {
    let mut cmd = redis::cmd("CLUSTER");
    let name = match step {
        Step::AddSlots { slots, .. } => {
            cmd.arg("ADDSLOTSRANGE")
                .arg(*slots.start())
                .arg(*slots.end());
            "CLUSTER ADDSLOTSRANGE"
        }
        Step::SetEpoch { epoch, .. } => {
            cmd.arg("SET-CONFIG-EPOCH").arg(*epoch);
            "CLUSTER SET-CONFIG-EPOCH"
        }
        Step::Meet { peer, .. } => {
            let to = nodes[*peer].addr;
            cmd.arg("MEET").arg(to.ip().to_string()).arg(to.port());
            "CLUSTER MEET"
        }
        Step::Forget { id, .. } => {
            cmd.arg("FORGET").arg(id);
            "CLUSTER FORGET"
        }
        Step::Replicate { master_id, .. } => {
            cmd.arg("REPLICATE").arg(master_id);
            "CLUSTER REPLICATE"
        }
        Step::MoveSlots { .. } | Step::CopyFunctions { .. } => {
            unreachable!("slot moves are run by crate::migrate, never grouped here")
        }
        Step::Stabilize { .. } => {
            unreachable!("a stale open slot is cleared by crate::stabilize, once confirmed")
        }
        Step::Failover { .. } => {
            unreachable!("a placement repair is run by crate::relocate, one move at a time")
        }
    };
    (cmd, name)
}

/// Waits until the replica of `step` knows its master's ID (handshake done): `CLUSTER REPLICATE`
/// fails before that. With `at_address` (a re-mesh re-pointing a replica), also until it knows the
/// master at its current address: REPLICATE before that would point replication at the old one.
async fn knows_master(
    clients: &[Client],
    nodes: &[Node],
    step: &Step,
    deadline: Instant,
    timeout: Duration,
    at_address: bool,
) -> Result<()> {
    let Step::Replicate {
        node,
        master,
        master_id,
    } = step
    else {
        return Ok(());
    };
    let client = &clients[*node];
    // A node is known by its ID only once the handshake is done. Asked every 10 ms of up to 250
    // replicas at once, this O(1) lookup costs the nodes nothing, where `CLUSTER NODES` (N lines)
    // took a measurable share of 2 cores at 100 nodes.
    let mut lookup = redis::cmd("CLUSTER");
    lookup.arg("COUNT-FAILURE-REPORTS").arg(master_id);
    let mut met = Instant::now();
    loop {
        let known = match client
            .query::<i64>(&lookup, "CLUSTER COUNT-FAILURE-REPORTS")
            .await
        {
            Ok(_) if at_address => knows_address(client, master_id, nodes[*master].addr).await,
            Ok(_) => Ok(true),
            Err(Error::Command { source, .. }) if source.to_string().contains("Unknown node") => {
                Ok(false)
            }
            Err(other) => Err(other),
        };
        match known {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            // A node too busy to answer in time (100 nodes restarted at once, handshaking with
            // each other) does not know it yet: ask again until the deadline.
            Err(e) if crate::converge::is_timeout(&e) => {}
            Err(e) => return Err(e),
        }
        if at_address && met.elapsed() >= MEET_AGAIN {
            match meet_again(client, &nodes[*master]).await {
                Err(e) if crate::converge::is_timeout(&e) => {
                    warn!(
                        "{e}: a CLUSTER MEET to {} got no answer in time",
                        nodes[*master]
                    )
                }
                other => other?,
            }
            met = Instant::now();
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                phase: "the cluster-bus handshake",
                after: timeout,
                detail: format!(
                    "{} does not know its master {} yet: is the cluster bus port (client port + 10000) \
                     reachable between the nodes?",
                    nodes[*node], nodes[*master]
                ),
            });
        }
        tokio::time::sleep(HANDSHAKE_POLL).await;
    }
}

/// Tells a replica to `CLUSTER MEET` its master at its current address again, logged like every
/// command that changes a node.
async fn meet_again(client: &Client, master: &Node) -> Result<()> {
    let to = master.addr;
    let mut cmd = redis::cmd("CLUSTER");
    cmd.arg("MEET").arg(to.ip().to_string()).arg(to.port());
    client.query::<()>(&cmd, "CLUSTER MEET").await?;
    info!(
        node = %client.node.name,
        "{}: CLUSTER MEET {} {} (meet {} again: it does not know its master's new address yet)",
        client.node,
        to.ip(),
        to.port(),
        master.name
    );
    Ok(())
}

/// True when `client`'s node lists node `id` at `addr`, handshake done.
async fn knows_address(client: &Client, id: &str, addr: std::net::SocketAddr) -> Result<bool> {
    let text: String = client
        .query(redis::cmd("CLUSTER").arg("NODES"), "CLUSTER NODES")
        .await?;
    Ok(cluster_nodes::parse(&text)
        .unwrap_or_default()
        .iter()
        .any(|n| n.id == id && !n.flags.handshake && !n.flags.noaddr && n.addr == Some(addr)))
}
