//! The slot-migration engine: carries out the [`Step::MoveSlots`] of a plan (a growth or a drain).
//!
//! - [`slot`]: a group of slots' move, one round trip per step (`SETSLOT IMPORTING`/`MIGRATING`,
//!   the keys, `SETSLOT NODE`);
//! - [`keys`]: the keys of those slots, in batches (`GETKEYSINSLOT` + `MIGRATE ... KEYS`);
//! - [`pair`]: the two masters of one move and whom they tell, which both of those work on;
//! - [`known`]: waits until the masters of each move know each other;
//! - [`functions`]: `FUNCTION DUMP`/`RESTORE` onto new masters.
//!
//! Concurrency: every move runs at once, except that a node gives one group of slots at a time
//! (each move holds its source's lock): moves from different sources overlap, also into one target
//! (6 → 8 fills the new master from the three old ones at once; Redis imports slots from several
//! nodes at the same time), but a target restores one source's batch of keys at a time, each
//! batch sized to block its source for a few milliseconds ([`keys`]), and takes its own
//! `SETSLOT`s in the same turns (a `SETSLOT NODE` fsyncs its `nodes.conf`, which a `MIGRATE`
//! into it would wait out, holding its source): clients never wait long behind a move. Groups of slots follow each other with no pause. A signal stops a move between
//! two groups, never with a slot open.

pub mod functions;
pub mod keys;
pub mod known;
pub mod pair;
pub mod slot;

use std::time::{Duration, Instant};

use futures::future::try_join_all;
use tokio::sync::Mutex;
use tracing::info;

use crate::client::Client;
use crate::node::Node;
use crate::plan::Step;
use crate::shutdown::Shutdown;
use crate::slots;
use crate::{Error, Result};

/// Slots between two progress lines of one move.
const PROGRESS: usize = 1024;

/// What the moves did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    /// Slots that changed owner.
    pub slots: usize,
    /// Keys migrated.
    pub keys: u64,
}

/// Copies functions, then runs every `MoveSlots` step of `steps`; waiting for the masters to know
/// each other may take at most `timeout`.
pub async fn run(
    clients: &[Client],
    steps: &[Step],
    timeout: Duration,
    shutdown: &Shutdown,
) -> Result<Moved> {
    // Waiting for the new masters to be known and ready changes nothing: a signal stops it at once.
    tokio::select! {
        known = known::wait(clients, steps, timeout) => known?,
        signal = shutdown.wait() => return Err(Error::Interrupted {
            signal,
            phase: "move slots",
            detail: "the new nodes were met and replicated; no slot had moved yet".into(),
        }),
    }
    for step in steps {
        if let Step::CopyFunctions { node, from } = step {
            functions::copy(&clients[*from], &[&clients[*node]]).await?;
        }
    }
    let locks: Vec<Mutex<()>> = clients.iter().map(|_| Mutex::new(())).collect();
    // A target's turns: one source's batch of keys at a time (see `keys`).
    let turns: Vec<Mutex<()>> = clients.iter().map(|_| Mutex::new(())).collect();
    let nodes: Vec<Node> = clients.iter().map(|c| c.node.clone()).collect();
    let moves = steps
        .iter()
        .filter(|s| matches!(s, Step::MoveSlots { .. }))
        .map(|step| {
            let (locks, turns, nodes) = (&locks, &turns, &nodes);
            async move {
                let Step::MoveSlots { from, .. } = step else {
                    unreachable!("filtered")
                };
                let _giving = locks[*from].lock().await;
                one_move(clients, nodes, turns, step, shutdown).await
            }
        });
    let done = try_join_all(moves).await?;
    Ok(done.into_iter().fold(Moved::default(), |a, b| Moved {
        slots: a.slots + b.slots,
        keys: a.keys + b.keys,
    }))
}

/// Runs one `MoveSlots` step, one group of slots after the other.
async fn one_move(
    clients: &[Client],
    nodes: &[Node],
    turns: &[Mutex<()>],
    step: &Step,
    shutdown: &Shutdown,
) -> Result<Moved> {
    let Step::MoveSlots {
        from,
        to,
        from_id,
        to_id,
        slots: ranges,
        masters,
    } = step
    else {
        return Ok(Moved::default());
    };
    let others: Vec<Client> = masters
        .iter()
        .filter(|m| *m != from && *m != to)
        .map(|&m| clients[m].clone())
        .collect();
    let pair = pair::Pair {
        source: &clients[*from],
        source_id: from_id,
        target: &clients[*to],
        target_id: to_id,
        others: &others,
        turn: &turns[*to],
    };
    let started = Instant::now();
    let total = slots::count(ranges);
    let mut moved = Moved::default();
    let mut pace = keys::Pace::default();
    let all: Vec<u16> = ranges.iter().flat_map(|r| r.clone()).collect();
    for group in all.chunks(slot::GROUP) {
        if let Some(signal) = shutdown.requested() {
            return Err(Error::Interrupted {
                signal,
                phase: "move slots",
                detail: format!(
                    "moved {} of {total} slot(s) of {}; no slot is left open; run again to finish",
                    moved.slots,
                    step.describe(nodes)
                ),
            });
        }
        moved.keys += slot::move_slots(&pair, group, &mut pace).await?;
        moved.slots += group.len();
        // A move of a few thousand slots takes seconds to minutes: say how far it is.
        if moved.slots % PROGRESS < slot::GROUP && moved.slots < total {
            info!(
                "{}: {} of {total} slots, {} keys so far",
                step.describe(nodes),
                moved.slots,
                moved.keys
            );
        }
    }
    info!(
        slots = moved.slots,
        keys = moved.keys,
        took_ms = started.elapsed().as_millis() as u64,
        "{} ({} keys)",
        step.describe(nodes),
        moved.keys
    );
    Ok(moved)
}
