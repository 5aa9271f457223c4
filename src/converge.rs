//! Waits until every node agrees on the whole topology (see [`crate::agreement`]).
//!
//! Polling is cheap first: one pipelined `CLUSTER INFO` + `INFO replication` per node, all nodes at
//! once. Only when every node already reports ok, N known nodes and 16384 slots does it read every
//! `CLUSTER NODES` for the full check. It returns the moment the cluster agrees.

use std::time::{Duration, Instant};

use futures::future::try_join_all;
use tracing::info;

use crate::agreement;
use crate::client::Client;
use crate::layout::Layout;
use crate::node::Node;
use crate::observation::Observation;
use crate::observe::observe_all;
use crate::slots::SLOTS;
use crate::{Error, Result};

/// How often progress is logged while waiting.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Polls until every node agrees, or fails after `timeout` naming what is still missing.
pub async fn converge(
    clients: &[Client],
    layout: &Layout,
    timeout: Duration,
) -> Result<Vec<Observation>> {
    let nodes: Vec<Node> = clients.iter().map(|c| c.node.clone()).collect();
    let started = Instant::now();
    let mut last_log = started;
    // Sized so that even 500 nodes are not asked more than a couple of times a second.
    let poll = Duration::from_millis(20 + layout.nodes as u64);
    loop {
        let problems = match quick_check(clients, layout).await? {
            Some(problem) => vec![problem],
            None => {
                let observations = observe_all(clients).await?;
                match agreement::check(&nodes, layout, &observations) {
                    Ok(()) => return Ok(observations),
                    Err(problems) => problems,
                }
            }
        };
        if started.elapsed() >= timeout {
            // The full check names every node and what it lacks, not just the first one.
            let observations = observe_all(clients).await?;
            let problems = agreement::check(&nodes, layout, &observations)
                .err()
                .unwrap_or(problems);
            let mut detail = summarize(&problems);
            if problems
                .iter()
                .any(|p| p.contains("does not know") || p.contains("handshake"))
            {
                detail.push_str(
                    " (nodes that never learn of each other usually cannot reach each other's cluster bus port, \
                     the client port + 10000)",
                );
            }
            return Err(Error::Timeout {
                phase: "convergence",
                after: timeout,
                detail,
            });
        }
        if last_log.elapsed() >= PROGRESS_EVERY {
            info!(elapsed = ?started.elapsed(), "waiting for every node to agree: {}", summarize(&problems));
            last_log = Instant::now();
        }
        tokio::time::sleep(poll).await;
    }
}

/// The cheap first check; `Some` names the first node that is not there yet.
async fn quick_check(clients: &[Client], layout: &Layout) -> Result<Option<String>> {
    let answers = try_join_all(clients.iter().map(|client| async move {
        let mut pipe = redis::pipe();
        pipe.cmd("CLUSTER").arg("INFO");
        pipe.cmd("INFO").arg("replication");
        let (cluster_info, info): (String, String) = client.pipeline(&pipe, "CLUSTER INFO").await?;
        Ok::<_, Error>((client, cluster_info, info))
    }))
    .await?;
    for (client, cluster_info, info) in answers {
        let o = Observation::parse(&info, "", "", &cluster_info)
            .unwrap_or_else(|_| Observation::standalone(""));
        let name = &client.node;
        if !o.info.state_ok {
            return Ok(Some(format!("{name} reports cluster_state:fail")));
        }
        if o.info.known_nodes != layout.nodes as u64 {
            return Ok(Some(format!(
                "{name} knows {} of {} nodes",
                o.info.known_nodes, layout.nodes
            )));
        }
        if o.info.slots_ok != SLOTS as u64 {
            return Ok(Some(format!(
                "{name} sees {} of {SLOTS} slots ok",
                o.info.slots_ok
            )));
        }
        if o.master_link_up == Some(false) {
            return Ok(Some(format!("{name} has master_link_status:down")));
        }
    }
    Ok(None)
}

/// The first problems, then how many more: one log line even for 500 nodes.
pub fn summarize(problems: &[String]) -> String {
    const SHOWN: usize = 6;
    let mut text = problems
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if problems.len() > SHOWN {
        text.push_str(&format!("; and {} more", problems.len() - SHOWN));
    }
    text
}
