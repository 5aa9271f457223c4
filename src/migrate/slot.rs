//! One slot's move, as `redis-cli --cluster reshard` does it: `IMPORTING` on the target, then
//! `MIGRATING` on the source, the keys ([`super::keys`]), then `SETSLOT NODE` on the target (which
//! bumps its epoch and wins), the source, and every other master. Safe to run again on a slot left
//! open at any of these points: the target that already owns the slot only needs the others told.

use futures::future::try_join_all;

use super::auth::Auth;
use super::keys;
use crate::client::Client;
use crate::{Error, Result};

/// The nodes one slot's move talks to, and their IDs.
pub struct Pair<'a> {
    /// The master giving the slot.
    pub source: &'a Client,
    /// Its node ID.
    pub source_id: &'a str,
    /// The master receiving it.
    pub target: &'a Client,
    /// Its node ID.
    pub target_id: &'a str,
    /// Every other master, told the new owner too.
    pub others: &'a [Client],
}

/// Moves `slot`; returns the number of keys that moved.
pub async fn move_slot(pair: &Pair<'_>, slot: u16, auth: &Auth) -> Result<u64> {
    let setslot = |state: &str, id: &str| {
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("SETSLOT").arg(slot).arg(state).arg(id);
        cmd
    };
    let importing = pair
        .target
        .query::<()>(
            &setslot("IMPORTING", pair.source_id),
            "CLUSTER SETSLOT IMPORTING",
        )
        .await;
    let mut moved = 0;
    match importing {
        // Resumed after the target took the slot: its keys are all there already.
        Err(Error::Command { source, .. }) if source.to_string().contains("already the owner") => {}
        Err(e) => return Err(e),
        Ok(()) => {
            pair.source
                .query::<()>(
                    &setslot("MIGRATING", pair.target_id),
                    "CLUSTER SETSLOT MIGRATING",
                )
                .await?;
            moved = keys::drain_slot(pair.source, pair.target, slot, auth).await?;
        }
    }
    let node = setslot("NODE", pair.target_id);
    pair.target
        .query::<()>(&node, "CLUSTER SETSLOT NODE")
        .await?;
    match pair.source.query::<()>(&node, "CLUSTER SETSLOT NODE").await {
        // A key written before MIGRATING reached the source: move it too, then tell it again.
        Err(Error::Command { source, .. }) if source.to_string().contains("still hold keys") => {
            moved += keys::drain_slot(pair.source, pair.target, slot, auth).await?;
            pair.source
                .query::<()>(&node, "CLUSTER SETSLOT NODE")
                .await?;
        }
        other => other?,
    }
    try_join_all(
        pair.others
            .iter()
            .map(|c| c.query::<()>(&node, "CLUSTER SETSLOT NODE")),
    )
    .await?;
    Ok(moved)
}
