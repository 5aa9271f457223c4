//! The 16384 hash slots: which slot a key belongs to, and how the slots are split among masters.
//!
//! The split is the one `redis-cli --cluster create` makes, so a cluster formed by this tool looks
//! exactly like one formed by hand: for 3 masters 0-5460, 5461-10922, 10923-16383.

use std::ops::RangeInclusive;

use crc::{CRC_16_XMODEM, Crc};

/// Number of hash slots in a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// A contiguous range of slots, both ends included.
pub type SlotRange = RangeInclusive<u16>;

/// CRC-16/XMODEM, the checksum Redis Cluster hashes keys with.
static CRC16: Crc<u16> = Crc::<u16>::new(&CRC_16_XMODEM);

/// The slot of a key, as `CLUSTER KEYSLOT` computes it: the CRC-16 of the key modulo 16384, or
/// of its hash tag, the bytes between the first `{` and the next `}` when there are any, so
/// `{user1}.name` and `{user1}.mail` share a slot.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let tag = &key[open + 1..];
            let close = tag.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &tag[..close])
        })
        .unwrap_or(key);
    CRC16.checksum(hashed) & (SLOTS - 1)
}

/// Splits the slots among `masters` masters, in order; `masters` must be from 1 to 16384.
pub fn split(masters: usize) -> Vec<SlotRange> {
    assert!((1..=SLOTS as usize).contains(&masters), "1..=16384 masters");
    // f32 and lround, as redis-cli computes it, so the boundaries match to the slot.
    let per_master = SLOTS as f32 / masters as f32;
    let mut ranges = Vec::with_capacity(masters);
    let mut first: i64 = 0;
    let mut cursor: f32 = 0.0;
    for i in 0..masters {
        let mut last = (cursor + per_master - 1.0).round() as i64;
        if last > SLOTS as i64 || i == masters - 1 {
            last = SLOTS as i64 - 1;
        }
        if last < first {
            last = first;
        }
        ranges.push(first as u16..=last as u16);
        first = last + 1;
        cursor += per_master;
    }
    ranges
}

/// Formats ranges the way `CLUSTER NODES` does: `0-5460 5462`.
pub fn format(ranges: &[SlotRange]) -> String {
    ranges
        .iter()
        .map(|r| {
            if r.start() == r.end() {
                r.start().to_string()
            } else {
                format!("{}-{}", r.start(), r.end())
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Total number of slots in the ranges.
pub fn count(ranges: &[SlotRange]) -> usize {
    ranges
        .iter()
        .map(|r| (*r.end() as usize + 1).saturating_sub(*r.start() as usize))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_slots_are_those_of_cluster_keyslot() {
        // Each pair was answered by `CLUSTER KEYSLOT` on Redis 7.0.
        let known: &[(&[u8], u16)] = &[
            (b"foo", 12182),
            (b"bar", 5061),
            (b"hello", 866),
            (b"123456789", 12739),
            (b"12345", 5228),
            (b"-7", 13838),
            (b"", 0),
            (b"{user1000}.following", 3443),
            (b"{user1000}.followers", 3443),
            // The first `{` and the first `}` after it; an empty tag hashes the whole key.
            (b"foo{}{bar}", 8363),
            (b"foo{{bar}}zap", 4015),
            (b"foo{bar}{zap}", 5061),
            (b"{}", 15257),
            (b"{", 4092),
            (b"}", 12090),
            (b"a{b", 13340),
            (b"{a}", 15495),
            (b"x{a}y", 15495),
        ];
        for (key, slot) in known {
            assert_eq!(key_slot(key), *slot, "{}", key.escape_ascii());
        }
    }

    #[test]
    fn three_masters_split_like_redis_cli() {
        assert_eq!(split(3), vec![0..=5460, 5461..=10922, 10923..=16383]);
        assert_eq!(format(&split(3)), "0-5460 5461-10922 10923-16383");
    }

    #[test]
    fn every_slot_is_owned_exactly_once_for_3_to_200_masters() {
        for masters in 3..=200 {
            let ranges = split(masters);
            assert_eq!(ranges.len(), masters);
            let mut next = 0u32;
            for r in &ranges {
                assert_eq!(*r.start() as u32, next, "masters={masters}");
                assert!(r.end() >= r.start(), "masters={masters}");
                next = *r.end() as u32 + 1;
            }
            assert_eq!(next, SLOTS as u32, "masters={masters}");
            let sizes: Vec<usize> = ranges
                .iter()
                .map(|r| count(std::slice::from_ref(r)))
                .collect();
            let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(max - min <= 1, "masters={masters}: uneven {min}..{max}");
        }
    }
}
