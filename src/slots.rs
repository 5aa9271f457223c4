//! The 16384 hash slots and how they are split among masters.
//!
//! The split is the one `redis-cli --cluster create` makes, so a cluster formed by this tool looks
//! exactly like one formed by hand: for 3 masters 0-5460, 5461-10922, 10923-16383.

use std::ops::RangeInclusive;

/// Number of hash slots in a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// A contiguous range of slots, both ends included.
pub type SlotRange = RangeInclusive<u16>;

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
