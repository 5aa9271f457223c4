//! Clears the replicas' stale open slots ([`crate::plan::stale_slots`]): after a grow or a drain,
//! whose `SETSLOT`s a replica may have applied where its master did not (Valkey 8), and in a
//! *repair*. Nothing is sent to a node that holds data: only `CLUSTER SETSLOT <slot> STABLE`, to
//! a master that shows no state for the slot, which replicates it to its replicas.
//!
//! Every node's own line is read. A stale slot is read again [`CONFIRM`] later, and cleared only
//! when it is still there, the same on the replica, its master still showing no state for the
//! slot: a replica holds its master's `SETSLOT` for up to the command's timeout (2 s) before the
//! master applies it, and a `STABLE` sent in that window would cancel the move someone just
//! started. Then the replicas are read until the slot is closed on each.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::client::Client;
use crate::migrate::slot::round_trip;
use crate::node::Node;
use crate::observation::Observation;
use crate::observe::observe_selves;
use crate::plan::Step;
use crate::plan::stale_slots::{StaleSlot, stale_slots};
use crate::shutdown::Shutdown;
use crate::{Error, Result};

/// How long a stale slot must stay stale before it is cleared: more than twice the `SETSLOT`
/// timeout a master waits for its replicas (2 s).
pub const CONFIRM: Duration = Duration::from_secs(5);

/// How often the replicas are read until the slots are closed.
const POLL: Duration = Duration::from_millis(200);

/// Times a `STABLE` refused with `NOREPLICAS` is sent again, 100 ms apart and more.
const RETRIES: u64 = 5;

/// Clears every confirmed stale slot; returns how many. Waits at most `timeout` for the
/// replicas to show them closed.
pub async fn stabilize(
    clients: &[Client],
    timeout: Duration,
    shutdown: &Shutdown,
) -> Result<usize> {
    let nodes: Vec<Node> = clients.iter().map(|c| c.node.clone()).collect();
    let seen = stale_slots(&observe_selves(clients).await?);
    if seen.is_empty() {
        return Ok(0);
    }
    info!(
        "{} replica slot(s) open where the master shows no move ({}): clearing them if they are \
         still so in {} s",
        seen.len(),
        names(&nodes, &seen),
        CONFIRM.as_secs()
    );
    tokio::select! {
        _ = tokio::time::sleep(CONFIRM) => {}
        signal = shutdown.wait() => return Err(Error::Interrupted {
            signal,
            phase: "stale open slots",
            detail: "no stale open slot was cleared yet".into(),
        }),
    }
    let again = stale_slots(&observe_selves(clients).await?);
    let confirmed: Vec<StaleSlot> = seen.into_iter().filter(|s| again.contains(s)).collect();
    // One STABLE per master and slot clears it on all that master's replicas.
    let mut sent: Vec<(usize, u16)> = Vec::new();
    for s in &confirmed {
        if sent.contains(&(s.master, s.slot)) {
            continue;
        }
        let step = Step::Stabilize {
            node: s.master,
            replica: s.replica,
            slot: s.slot,
            marker: s.marker.clone(),
        };
        send(&clients[s.master], s.slot).await?;
        info!(node = %nodes[s.master].name, "{}", step.describe(&nodes));
        sent.push((s.master, s.slot));
    }
    wait_closed(clients, &nodes, &confirmed, timeout).await?;
    Ok(confirmed.len())
}

/// `CLUSTER SETSLOT <slot> STABLE`. Valkey sends it to the master's replicas first and answers
/// `NOREPLICAS` when one does not acknowledge in time: sent again (it is idempotent); the
/// replicas are read afterwards in any case.
async fn send(master: &Client, slot: u16) -> Result<()> {
    let mut stable = redis::cmd("CLUSTER");
    stable.arg("SETSLOT").arg(slot).arg("STABLE");
    for attempt in 1..=RETRIES {
        let answer = master
            .each_within(
                vec![(stable.clone(), "CLUSTER SETSLOT STABLE")],
                round_trip(1),
            )
            .await?;
        match answer.into_iter().next().expect("one answer") {
            Err(Error::Command { source, .. })
                if source.code() == Some("NOREPLICAS") && attempt < RETRIES =>
            {
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            Err(Error::Command { source, .. }) if source.code() == Some("NOREPLICAS") => {
                warn!(
                    "{}: {source}; its replicas apply the STABLE once they catch up",
                    master.node
                );
                return Ok(());
            }
            other => return other,
        }
    }
    Ok(())
}

/// Waits until no replica of `cleared` shows its slot open any more.
async fn wait_closed(
    clients: &[Client],
    nodes: &[Node],
    cleared: &[StaleSlot],
    timeout: Duration,
) -> Result<()> {
    let started = Instant::now();
    loop {
        let selves = observe_selves(clients).await?;
        let open: Vec<&StaleSlot> = cleared.iter().filter(|s| still_open(&selves, s)).collect();
        if open.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            let open: Vec<StaleSlot> = open.into_iter().cloned().collect();
            return Err(Error::Timeout {
                phase: "stale open slots",
                after: timeout,
                detail: format!(
                    "{} still show the slot open after CLUSTER SETSLOT STABLE on their master; the \
                     next run clears it",
                    names(nodes, &open)
                ),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// True while the replica of `s` still shows its slot open.
fn still_open(selves: &[Observation], s: &StaleSlot) -> bool {
    selves[s.replica]
        .myself()
        .is_some_and(|me| me.open_slots.contains(&s.marker))
}

/// `node-7 slot 100 [100-<-…]`, for the log.
fn names(nodes: &[Node], stale: &[StaleSlot]) -> String {
    stale
        .iter()
        .map(|s| format!("{} slot {} {}", nodes[s.replica].name, s.slot, s.marker))
        .collect::<Vec<_>>()
        .join(", ")
}
