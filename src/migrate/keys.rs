//! Moves the keys of open slots: `CLUSTER GETKEYSINSLOT` for every slot of a group in one round
//! trip, then one `MIGRATE ... KEYS` per slot (a `MIGRATE` takes keys of one slot only) in one
//! round trip, until the source holds none. Memory is bounded by the group and the batch, whatever
//! the number of keys. Never `REPLACE`: a key that already exists on the target (`BUSYKEY`) stops
//! the move with the slot left open.

use crate::client::Client;
use crate::credentials::Credentials;
use crate::{Error, Result};

/// Keys fetched and migrated per slot and round trip. One `MIGRATE` of 1000 small keys is one
/// pipelined `RESTORE-ASKING` burst from the source; redis-cli sends 10.
pub const BATCH: usize = 1000;

/// The I/O timeout `MIGRATE` is given for its own connection to the target, in ms; below the
/// client's 5 s command timeout so the node reports its own error first.
const MIGRATE_TIMEOUT_MS: u64 = 4000;

/// Moves every key of `slots` (all migrating from `source` to `target`); returns how many moved.
pub async fn drain(
    source: &Client,
    target: &Client,
    slots: &[u16],
    auth: Option<&Credentials>,
) -> Result<u64> {
    let mut moved = 0;
    let mut pending: Vec<u16> = slots.to_vec();
    while !pending.is_empty() {
        let mut fetch = redis::pipe();
        for &slot in &pending {
            fetch
                .cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(BATCH);
        }
        let keys: Vec<Vec<Vec<u8>>> = source.pipeline(&fetch, "CLUSTER GETKEYSINSLOT").await?;
        let batches: Vec<(u16, Vec<Vec<u8>>)> = pending
            .iter()
            .copied()
            .zip(keys)
            .filter(|(_, k)| !k.is_empty())
            .collect();
        if batches.is_empty() {
            return Ok(moved);
        }
        let migrates = batches
            .iter()
            .map(|(_, keys)| (migrate(target, keys, auth), "MIGRATE"))
            .collect();
        let results = source.each(migrates).await?;
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
        // A short batch was a slot's last: a key that does not exist on a migrating source is
        // created on the target (ASK), so the source's keys only ever go away.
        pending = batches
            .into_iter()
            .filter(|(_, keys)| keys.len() == BATCH)
            .map(|(slot, _)| slot)
            .collect();
    }
    Ok(moved)
}

/// `MIGRATE host port "" 0 timeout [AUTH ...] KEYS k1 .. kn`.
fn migrate(target: &Client, keys: &[Vec<u8>], auth: Option<&Credentials>) -> redis::Cmd {
    let mut cmd = redis::cmd("MIGRATE");
    cmd.arg(target.node.addr.ip().to_string())
        .arg(target.node.addr.port())
        .arg("")
        .arg(0)
        .arg(MIGRATE_TIMEOUT_MS);
    // `AUTH2 user pass` or `AUTH pass`: MIGRATE authenticates to the target as this run does.
    if let Some(credentials) = auth {
        cmd.arg(credentials.migrate_args());
    }
    cmd.arg("KEYS").arg(keys);
    cmd
}
