//! The two masters of one move and whom they tell: what [`super::slot`] (the slots' states) and
//! [`super::keys`] (their keys) both work on. Below both, so the arrows run one way: `slot` uses
//! `keys`, and both use this.

use crate::client::Client;

/// The nodes one move talks to, and their IDs.
pub struct Pair<'a> {
    /// The master giving the slots.
    pub source: &'a Client,
    /// Its node ID.
    pub source_id: &'a str,
    /// The master receiving them.
    pub target: &'a Client,
    /// Its node ID.
    pub target_id: &'a str,
    /// Every other master, told the new owner too.
    pub others: &'a [Client],
    /// The target's turn: held for each round trip of `MIGRATE`s into it, so that it restores
    /// one source's batch at a time (see [`super::keys`]), and for each round trip of
    /// `SETSLOT`s to it (see [`super::slot`]).
    pub turn: &'a tokio::sync::Mutex<()>,
}
