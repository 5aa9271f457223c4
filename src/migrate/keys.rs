//! Moves the keys of open slots: `CLUSTER GETKEYSINSLOT` for every slot of a group in one round
//! trip, then one `MIGRATE ... KEYS` per slot (a `MIGRATE` takes keys of one slot only), a few
//! per round trip, until the source holds none. Memory is bounded by the group and the batch,
//! whatever the number of keys. Never `REPLACE`: a key that already exists on the target
//! (`BUSYKEY`) stops the move with the slot left open.
//!
//! A `MIGRATE` blocks its source until the target has restored every key, and Redis runs the
//! commands of one pipelined read back to back: a round trip of 64 slots' `MIGRATE`s (~4,000
//! keys at 1,000,000 keys) held a source for 65–95 ms, and every client of it waited. So each
//! round trip carries at most [`Pace`] keys, adapted to what the last one took, towards
//! [`TARGET`] per round trip. And a target restores one source's round trip at a time (the
//! pair's `turn`): three sources feeding one new master at once blocked it three times as long,
//! and kept more nodes busy than a 2-core machine has cores.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::pair::Pair;
use crate::client::Client;
use crate::{Error, Result};

/// At most this many keys per round trip, whatever the pace. One `MIGRATE` of 1000 small keys is
/// one pipelined `RESTORE-ASKING` burst from the source; redis-cli sends 10.
pub const BATCH: usize = 1000;

/// At most this many key names listed per round trip (`GETKEYSINSLOT` over several slots).
const LISTED: usize = 4 * BATCH;

/// At least this many keys per round trip: redis-cli's batch.
const MIN_BATCH: usize = 10;

/// How long one round trip of `MIGRATE`s should block its source: a client's write waits at most
/// about this long behind it (redis-cli's 10-key `MIGRATE`s block for 6–17 ms at 1 KB values on
/// this project's benchmark machine).
pub const TARGET: Duration = Duration::from_millis(4);

/// Keys per round trip of `MIGRATE`s for one move, adapted to the time the last one took: the
/// source's speed (value sizes, load) is learnt as the move goes.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    keys: usize,
}

impl Default for Pace {
    /// Starts low: the first round trips measure the source before any bigger one blocks it.
    fn default() -> Pace {
        Pace { keys: 50 }
    }
}

impl Pace {
    /// Keys the next round trip may carry.
    pub fn keys(&self) -> usize {
        self.keys
    }

    /// Learns from a round trip that moved `keys` in `took`: aims the next at [`TARGET`], at most
    /// doubling (one fast answer is no proof) and at once down when it was slow.
    pub fn learn(&mut self, keys: usize, took: Duration) {
        if keys == 0 {
            return;
        }
        let per_key = took.as_secs_f64() / keys as f64;
        let fit = (TARGET.as_secs_f64() / per_key.max(1e-9)) as usize;
        self.keys = fit.min(self.keys * 2).clamp(MIN_BATCH, BATCH);
    }
}

/// The I/O timeout `MIGRATE` is given for its own connection to the target, in ms; below the
/// client's 5 s command timeout so the node reports its own error first.
const MIGRATE_TIMEOUT_MS: u64 = 4000;

/// Moves every key of `slots` (all migrating from the pair's source to its target) at `pace`;
/// returns how many moved.
pub async fn drain(pair: &Pair<'_>, slots: &[u16], pace: &mut Pace) -> Result<u64> {
    let (source, target) = (pair.source, pair.target);
    let mut moved = 0;
    let mut pending: VecDeque<u16> = slots.iter().copied().collect();
    while !pending.is_empty() {
        // Listing keys is cheap next to moving them, but not free: one round trip lists at most
        // `LISTED` names, for as many slots as fit.
        let count = pace.keys();
        let listed = (LISTED / count).clamp(1, pending.len());
        let asked: Vec<u16> = pending.drain(..listed).collect();
        let mut fetch = redis::pipe();
        for &slot in &asked {
            fetch
                .cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(count);
        }
        let keys: Vec<Vec<Vec<u8>>> = source.pipeline(&fetch, "CLUSTER GETKEYSINSLOT").await?;
        let batches: Vec<(u16, Vec<Vec<u8>>)> = asked
            .into_iter()
            .zip(keys)
            .filter(|(_, k)| !k.is_empty())
            .collect();
        // A short batch was a slot's last: a key that does not exist on a migrating source is
        // created on the target (ASK), so the source's keys only ever go away.
        pending.extend(
            batches
                .iter()
                .filter(|(_, keys)| keys.len() == count)
                .map(|(slot, _)| *slot),
        );
        let mut rest = &batches[..];
        while !rest.is_empty() {
            // As many slots' MIGRATEs as the pace allows, at least one.
            let budget = pace.keys();
            let mut take = 0;
            let mut keys = 0;
            while take < rest.len() && (take == 0 || keys + rest[take].1.len() <= budget) {
                keys += rest[take].1.len();
                take += 1;
            }
            let (now, later) = rest.split_at(take);
            rest = later;
            let _turn = pair.turn.lock().await;
            let started = Instant::now();
            moved += migrate_all(source, target, now).await?;
            pace.learn(keys, started.elapsed());
        }
    }
    Ok(moved)
}

/// One round trip: a `MIGRATE` per slot of `batches`; returns how many keys moved.
async fn migrate_all(
    source: &Client,
    target: &Client,
    batches: &[(u16, Vec<Vec<u8>>)],
) -> Result<u64> {
    let migrates = batches
        .iter()
        .map(|(_, keys)| (migrate(target, keys), "MIGRATE"))
        .collect();
    let results = source.each(migrates).await?;
    let mut moved = 0;
    for ((slot, keys), result) in batches.iter().zip(results) {
        match result {
            Ok(()) => moved += keys.len() as u64,
            Err(Error::Command { source: e, .. }) if e.code() == Some("BUSYKEY") => {
                return Err(Error::Refused(format!(
                    "slot {slot} is left open: one of its keys already exists on {} ({e}); the \
                     bootstrap never overwrites a key: compare the key on both nodes, remove the \
                     wrong copy, then run again",
                    target.node
                )));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(moved)
}

/// `MIGRATE host port "" 0 timeout [AUTH ...] KEYS k1 .. kn`.
fn migrate(target: &Client, keys: &[Vec<u8>]) -> redis::Cmd {
    let mut cmd = redis::cmd("MIGRATE");
    cmd.arg(target.node.addr.ip().to_string())
        .arg(target.node.addr.port())
        .arg("")
        .arg(0)
        .arg(MIGRATE_TIMEOUT_MS);
    // `AUTH2 user pass` or `AUTH pass`: MIGRATE authenticates to the target as this run's own
    // connection to it did (with a password file: the password that node accepted).
    if let Some(login) = target.login() {
        cmd.arg(login.migrate_args());
    }
    cmd.arg("KEYS").arg(keys);
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_round_trip_shrinks_the_batch_at_once() {
        let mut pace = Pace { keys: 1000 };
        // 1000 keys in 40 ms: 40 µs a key, so 100 keys fit in 4 ms.
        pace.learn(1000, Duration::from_millis(40));
        assert_eq!(pace.keys(), 100);
    }

    #[test]
    fn a_fast_round_trip_at_most_doubles_it_up_to_the_cap() {
        let mut pace = Pace::default();
        pace.learn(50, Duration::from_micros(50));
        assert_eq!(pace.keys(), 100);
        for _ in 0..10 {
            pace.learn(pace.keys(), Duration::from_micros(50));
        }
        assert_eq!(pace.keys(), BATCH);
    }

    #[test]
    fn a_very_slow_source_still_moves_redis_clis_ten_keys() {
        let mut pace = Pace::default();
        pace.learn(50, Duration::from_secs(1));
        assert_eq!(pace.keys(), MIN_BATCH);
    }
}
