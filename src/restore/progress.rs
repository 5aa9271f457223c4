//! How a restore knows where it stands, kept in the target itself so that a re-run after an
//! interruption resumes instead of refusing a target that now holds keys.
//!
//! - The progress key [`KEY`] holds `<backup name> <phase>`: set (NX) before the first key is
//!   written, so a target holding keys and no progress key holds someone else's keys (refused),
//!   and a target whose progress key names another backup is refused too; deleted last.
//! - Per slot whose recorded writes were applied, a done-marker ([`marker`]) in that slot, set in
//!   the same transaction as those writes: a re-run skips exactly the slots already done.
//!
//! Phases: `keys` (snapshots being restored: `RESTORE` without `REPLACE` is idempotent), `tails`
//! (recorded writes being applied, per slot, skipped where a marker says done), `cleanup`
//! (markers being deleted). A re-run starts at the phase the key names, so a snapshot key that a
//! tail deleted is never restored again.

use std::sync::OnceLock;

use crate::slots::{self, key_slot};

/// The progress key.
pub const KEY: &str = "redis-cluster-bootstrap:restore";

/// The prefix of the done-markers.
pub const MARKER: &str = "redis-cluster-bootstrap:restore:done:";

/// Where a restore stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Restoring the snapshots' keys.
    Keys,
    /// Applying the recorded writes.
    Tails,
    /// Deleting the done-markers.
    Cleanup,
}

impl Phase {
    /// Its name in the progress key.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Keys => "keys",
            Phase::Tails => "tails",
            Phase::Cleanup => "cleanup",
        }
    }

    /// The progress key's value for backup `backup` at this phase.
    pub fn value(self, backup: &str) -> String {
        format!("{backup} {}", self.name())
    }

    /// Parses a progress key's value: the backup and the phase.
    pub fn parse(value: &str) -> Option<(&str, Phase)> {
        let (backup, phase) = value.rsplit_once(' ')?;
        let phase = match phase {
            "keys" => Phase::Keys,
            "tails" => Phase::Tails,
            "cleanup" => Phase::Cleanup,
            _ => return None,
        };
        Some((backup, phase))
    }
}

/// The done-marker of `slot`: a key in that slot (its hash tag hashes to it).
pub fn marker(slot: u16) -> String {
    format!("{MARKER}{{{}}}", tags()[slot as usize])
}

/// For every slot, the smallest number whose decimal digits hash to it.
fn tags() -> &'static [u32] {
    static TAGS: OnceLock<Vec<u32>> = OnceLock::new();
    TAGS.get_or_init(|| {
        let mut tags = vec![u32::MAX; slots::SLOTS as usize];
        let mut missing = slots::SLOTS as usize;
        let mut n = 0u32;
        while missing > 0 {
            let slot = key_slot(n.to_string().as_bytes()) as usize;
            if tags[slot] == u32::MAX {
                tags[slot] = n;
                missing -= 1;
            }
            n += 1;
        }
        tags
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_has_a_marker_in_it() {
        for slot in [0, 1, 5460, 5461, 16383] {
            assert_eq!(key_slot(marker(slot).as_bytes()), slot);
        }
        assert_eq!(
            Phase::parse(&Phase::Tails.value("20261207T211206.123Z")),
            Some(("20261207T211206.123Z", Phase::Tails))
        );
    }
}
