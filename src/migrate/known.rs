//! Before the first slot moves, every master of a move must know the others by ID: `SETSLOT
//! IMPORTING <source>` and `SETSLOT NODE <target>` fail on a node that has not finished its
//! handshake with them, which a just-met master may not have. And each target must report
//! `cluster_state:ok`: a just-met master stays `fail` for up to `cluster-node-timeout`, and
//! answers the `RESTORE-ASKING` of a `MIGRATE` with `CLUSTERDOWN` until then.

use std::time::{Duration, Instant};

use crate::client::Client;
use crate::plan::Step;
use crate::{Error, Result};

/// How often a node is asked again.
const POLL: Duration = Duration::from_millis(20);

/// Waits until, for every move, its source, its target and every master know both by ID.
pub async fn wait(clients: &[Client], steps: &[Step], timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    for step in steps {
        let Step::MoveSlots {
            from,
            to,
            from_id,
            to_id,
            masters,
            ..
        } = step
        else {
            continue;
        };
        for &m in masters.iter().chain([from, to]) {
            for (id, peer) in [(from_id, *from), (to_id, *to)] {
                if m != peer {
                    knows(&clients[m], id, &clients[peer], deadline, timeout).await?;
                }
            }
        }
        state_ok(&clients[*to], deadline, timeout).await?;
    }
    Ok(())
}

/// Waits until `client`'s node reports `cluster_state:ok`.
async fn state_ok(client: &Client, deadline: Instant, timeout: Duration) -> Result<()> {
    loop {
        let info: String = client
            .query(redis::cmd("CLUSTER").arg("INFO"), "CLUSTER INFO")
            .await?;
        if info.lines().any(|l| l.trim() == "cluster_state:ok") {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                phase: "the new masters' cluster_state",
                after: timeout,
                detail: format!("{} still reports cluster_state:fail", client.node),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `client`'s node knows node `id` (handshake done): an O(1) lookup.
async fn knows(
    client: &Client,
    id: &str,
    peer: &Client,
    deadline: Instant,
    timeout: Duration,
) -> Result<()> {
    let mut lookup = redis::cmd("CLUSTER");
    lookup.arg("COUNT-FAILURE-REPORTS").arg(id);
    loop {
        match client
            .query::<i64>(&lookup, "CLUSTER COUNT-FAILURE-REPORTS")
            .await
        {
            Ok(_) => return Ok(()),
            Err(Error::Command { source, .. }) if source.to_string().contains("Unknown node") => {}
            Err(other) => return Err(other),
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                phase: "the cluster-bus handshake",
                after: timeout,
                detail: format!(
                    "{} does not know {} yet: is the cluster bus port (client port + 10000) reachable \
                     between the nodes?",
                    client.node, peer.node
                ),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}
