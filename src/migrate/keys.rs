//! Moves the keys of one open slot: `CLUSTER GETKEYSINSLOT` then one `MIGRATE ... KEYS` of the
//! whole batch, until the source holds none. Memory is bounded by the batch, whatever the number of
//! keys. Never `REPLACE`: a key that already exists on the target (`BUSYKEY`) stops the move with
//! the slot left open.

use redis::Value;

use super::auth::Auth;
use crate::client::Client;
use crate::{Error, Result};

/// Keys fetched and migrated per round trip pair. One `MIGRATE` of 1000 small keys is one
/// pipelined `RESTORE-ASKING` burst on the source's side; redis-cli sends 10.
pub const BATCH: usize = 1000;

/// The I/O timeout `MIGRATE` is given for its own connection to the target, in ms; below the
/// client's 5 s command timeout so the node reports its own error first.
const MIGRATE_TIMEOUT_MS: u64 = 4000;

/// Moves every key of `slot` from `source` to `target`; returns how many moved.
pub async fn drain_slot(source: &Client, target: &Client, slot: u16, auth: &Auth) -> Result<u64> {
    let mut moved = 0;
    loop {
        let keys: Vec<Vec<u8>> = source
            .query(
                redis::cmd("CLUSTER")
                    .arg("GETKEYSINSLOT")
                    .arg(slot)
                    .arg(BATCH),
                "CLUSTER GETKEYSINSLOT",
            )
            .await?;
        if keys.is_empty() {
            return Ok(moved);
        }
        let mut migrate = redis::cmd("MIGRATE");
        migrate
            .arg(target.node.addr.ip().to_string())
            .arg(target.node.addr.port())
            .arg("")
            .arg(0)
            .arg(MIGRATE_TIMEOUT_MS);
        auth.append(&mut migrate);
        migrate.arg("KEYS").arg(&keys);
        match source.query::<Value>(&migrate, "MIGRATE").await {
            Ok(_) => moved += keys.len() as u64,
            Err(Error::Command { source: e, .. }) if e.code() == Some("BUSYKEY") => {
                return Err(Error::Refused(format!(
                    "slot {slot} is left open: a key of it already exists on {} ({e}); the bootstrap never \
                     overwrites a key: compare the key on both nodes, remove the wrong copy, then run again",
                    target.node
                )));
            }
            Err(e) => return Err(e),
        }
        // A short batch was the last: keys that do not exist on a migrating source are created on
        // the target (ASK), so the source's keys only ever go away.
        if keys.len() < BATCH {
            return Ok(moved);
        }
    }
}
