//! One group of slots moves, as `redis-cli --cluster reshard` moves one slot, but a group per round
//! trip: `IMPORTING` on the target, then `MIGRATING` on the source, the keys ([`super::keys`]), then
//! `SETSLOT NODE` on the target (which bumps its epoch and wins), the source, and every other
//! master. Safe to run again on slots left open at any of these points: a target that already
//! owns a slot only needs the others told.

use std::time::Duration;

use futures::future::try_join_all;

use super::keys;
use super::pair::Pair;
use crate::client::{self, Client};
use crate::{Error, Result};

/// Slots opened at once between one source and one target: one round trip per step for all of
/// them. At most this many slots are open when a run is killed; each is finished by the next run.
pub const GROUP: usize = 64;

/// `CLUSTER SETSLOT <slot> <state> <id>` for each slot.
fn setslot<'a>(slots: &[u16], state: &str, id: &str, what: &'a str) -> Vec<(redis::Cmd, &'a str)> {
    slots
        .iter()
        .map(|&slot| {
            let mut cmd = redis::cmd("CLUSTER");
            cmd.arg("SETSLOT").arg(slot).arg(state).arg(id);
            (cmd, what)
        })
        .collect()
}

/// Times a `SETSLOT` refused with `NOREPLICAS` is sent again, 100 ms apart and more.
const RETRIES: u64 = 5;

/// How long Valkey 8 holds one `SETSLOT` while the node's replicas acknowledge it (its default
/// `TIMEOUT`), before it answers `NOREPLICAS`.
pub const REPLICA_WAIT: Duration = Duration::from_secs(2);

/// How long a round trip of `count` `SETSLOT`s may take: the node runs them one after the other,
/// each held up to [`REPLICA_WAIT`] when a replica is slow (a busy machine, an fsync). Giving up
/// sooner would close the connection with `SETSLOT`s queued: Valkey drops the one it holds
/// unapplied, while its replicas keep it, open, on their own (see `crate::plan::stale_slots`).
pub fn round_trip(count: usize) -> Duration {
    client::COMMAND_TIMEOUT + REPLICA_WAIT * count as u32
}

/// `CLUSTER SETSLOT <slot> <state> <id>` for each slot, in one round trip, given all the time
/// the node may take ([`round_trip`]). Valkey 8 replicates a `SETSLOT` to the node's replicas
/// first and answers `NOREPLICAS` when one does not acknowledge it in time (a replica still
/// syncing, a busy machine): those slots are sent again (the command is idempotent), and the last
/// answer stands. A replica that applied a `SETSLOT` its master answered `NOREPLICAS` to keeps
/// the slot open alone: the stale slot the run clears after its moves (`crate::stabilize`).
async fn send(
    client: &Client,
    slots: &[u16],
    state: &str,
    id: &str,
    what: &'static str,
) -> Result<Vec<Result<()>>> {
    let mut results = client
        .each_within(setslot(slots, state, id, what), round_trip(slots.len()))
        .await?;
    for attempt in 1..=RETRIES {
        let again: Vec<usize> = (0..slots.len())
            .filter(|&i| says(&results[i], "NOREPLICAS"))
            .collect();
        if again.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
        let retry: Vec<u16> = again.iter().map(|&i| slots[i]).collect();
        let answers = client
            .each_within(setslot(&retry, state, id, what), round_trip(retry.len()))
            .await?;
        for (i, answer) in again.into_iter().zip(answers) {
            results[i] = answer;
        }
    }
    Ok(results)
}

/// True when the error's text contains `words`.
fn says(result: &Result<()>, words: &str) -> bool {
    matches!(result, Err(Error::Command { source, .. }) if source.to_string().contains(words))
}

/// A master that a drain emptied may already follow the new owner (Redis turns a master that lost
/// its last slot into a replica of the node that took it, `cluster-allow-replica-migration`): it
/// refuses `SETSLOT` and learns the owner from its master instead. Valkey 8 may turn it while the
/// `SETSLOT` waits for its replicas: `UNBLOCKED ... (master -> replica?)`.
fn became_replica(result: &Result<()>) -> bool {
    says(result, "only with masters") || says(result, "master -> replica")
}

/// Moves `slots` (at most [`GROUP`]) at `pace`; returns the number of keys that moved.
pub async fn move_slots(pair: &Pair<'_>, slots: &[u16], pace: &mut keys::Pace) -> Result<u64> {
    // The target's SETSLOTs take its turn like a source's MIGRATEs: a SETSLOT NODE bumps its
    // epoch, which it writes and fsyncs to nodes.conf, and a MIGRATE sent meanwhile would hold
    // its source, and every client of the source, until that fsync is done.
    let importing = {
        let _turn = pair.turn.lock().await;
        send(
            pair.target,
            slots,
            "IMPORTING",
            pair.source_id,
            "CLUSTER SETSLOT IMPORTING",
        )
        .await?
    };
    // Resumed after the target took a slot: its keys are all there already.
    let mut open = Vec::with_capacity(slots.len());
    for (&slot, result) in slots.iter().zip(importing) {
        if !says(&result, "already the owner") {
            result?;
            open.push(slot);
        }
    }
    let mut moved = 0;
    // An empty pipeline is an error to Redis: every slot of a resumed group may be owned already.
    if !open.is_empty() {
        let migrating = send(
            pair.source,
            &open,
            "MIGRATING",
            pair.target_id,
            "CLUSTER SETSLOT MIGRATING",
        )
        .await?;
        migrating.into_iter().collect::<Result<Vec<()>>>()?;
        moved = keys::drain(pair, &open, pace).await?;
    }
    let node = |client, slots| {
        send(
            client,
            slots,
            "NODE",
            pair.target_id,
            "CLUSTER SETSLOT NODE",
        )
    };
    let told = {
        let _turn = pair.turn.lock().await;
        node(pair.target, slots).await?
    };
    told.into_iter().collect::<Result<Vec<()>>>()?;
    let told = match node(pair.source, slots).await {
        Ok(told) => told,
        // Told it lost its last slot, a master turns into a replica of the new owner; Valkey 8
        // then answers the `SETSLOT`s still waiting on its replicas `UNBLOCKED` and closes the
        // connection. The target owns the slots already (its `SETSLOT NODE` won with a new epoch)
        // and every key left before it: the source learns the owner by gossip.
        Err(e @ Error::Unreachable { .. }) => {
            tracing::warn!(
                "{e}: the target owns the slots; the source learns its new owner by gossip"
            );
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    // A key written before MIGRATING reached the source: move it too, then tell it again.
    let mut again = Vec::new();
    for (&slot, result) in slots.iter().zip(told) {
        if says(&result, "still hold keys") {
            again.push(slot);
        } else if !became_replica(&result) {
            result?;
        }
    }
    if !again.is_empty() {
        moved += keys::drain(pair, &again, pace).await?;
        let told = node(pair.source, &again).await?;
        told.into_iter().collect::<Result<Vec<()>>>()?;
    }
    try_join_all(pair.others.iter().map(|c| async move {
        let told = node(c, slots).await?;
        told.into_iter()
            .filter(|r| !became_replica(r))
            .collect::<Result<Vec<()>>>()
    }))
    .await?;
    Ok(moved)
}
