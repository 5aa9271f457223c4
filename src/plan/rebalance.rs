//! Which slots move where so that the masters that stay (`keep`) end balanced: each holds
//! 16384/|keep| slots ±1, like `redis-cli --cluster rebalance` leaves them, and every other master
//! ends with none (a drain). Pure code.
//!
//! Minimal: a master only gives when it holds more than its share, only receives when it holds
//! less, and the masters that get the one extra slot (16384 is rarely a multiple of |keep|) are
//! those that hold the most already. A donor gives its lowest slots first, so each (from, to) pair
//! moves few contiguous ranges and the dry run reads like `slot 0-1364: node-0 → node-6`.

use std::collections::BTreeSet;
use std::fmt;

use crate::slots::{self, SlotRange};

/// Slots that move from one master to another, by node ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotMove {
    /// The master that gives the slots.
    pub from: String,
    /// The master that receives them.
    pub to: String,
    /// The slots, as sorted contiguous ranges.
    pub slots: Vec<SlotRange>,
}

impl SlotMove {
    /// Number of slots moved.
    pub fn count(&self) -> usize {
        slots::count(&self.slots)
    }

    /// The line of the dry run, naming each master with `name` (e.g. its pod).
    pub fn describe(&self, name: impl Fn(&str) -> String) -> String {
        format!(
            "slot {}: {} → {}",
            slots::format(&self.slots),
            name(&self.from),
            name(&self.to)
        )
    }
}

impl fmt::Display for SlotMove {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe(str::to_string))
    }
}

/// A slot left open by an interrupted move: `from` was migrating it to `to` (or `to` importing it
/// from `from`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSlot {
    /// The slot.
    pub slot: u16,
    /// The master it was leaving.
    pub from: String,
    /// The master it was going to.
    pub to: String,
}

/// The moves that balance `keep`: `owned` is every master's ID and slots (masters not in `keep`
/// give all of theirs away). Each master in `keep` must appear in `owned` (with no slots if new).
pub fn rebalance(owned: &[(String, Vec<SlotRange>)], keep: &[String]) -> Vec<SlotMove> {
    rebalance_resuming(owned, keep, &[]).expect("no open slot to refuse")
}

/// [`rebalance`], finishing open slots first: each open slot must be a move the balance needs (its
/// `from` gives, its `to` receives), counted as still owned by `from`; it then moves on the same
/// pair. `Err` is the first open slot that is not such a move.
pub fn rebalance_resuming(
    owned: &[(String, Vec<SlotRange>)],
    keep: &[String],
    open: &[OpenSlot],
) -> Result<Vec<SlotMove>, OpenSlot> {
    // Each master's slots, with every open slot counted at its source.
    let mut holding: Vec<(String, BTreeSet<u16>)> = owned
        .iter()
        .map(|(id, ranges)| (id.clone(), ranges.iter().flat_map(|r| r.clone()).collect()))
        .collect();
    for o in open {
        holding.iter_mut().for_each(|(_, s)| {
            s.remove(&o.slot);
        });
        match holding.iter_mut().find(|(id, _)| *id == o.from) {
            Some((_, s)) => {
                s.insert(o.slot);
            }
            None => return Err(o.clone()),
        }
    }
    let target = targets(&holding, keep);
    // How many slots each master still has to give (+) or receive (−).
    let mut balance: Vec<i64> = holding
        .iter()
        .zip(&target)
        .map(|((_, s), t)| s.len() as i64 - *t as i64)
        .collect();
    let ids: Vec<String> = holding.iter().map(|(id, _)| id.clone()).collect();
    let index = |id: &str| ids.iter().position(|h| h == id);
    let mut moved: Vec<(usize, usize, Vec<u16>)> = Vec::new();
    let give =
        |moved: &mut Vec<(usize, usize, Vec<u16>)>, from: usize, to: usize, slot: u16| match moved
            .iter_mut()
            .find(|(f, t, _)| (*f, *t) == (from, to))
        {
            Some((_, _, s)) => s.push(slot),
            None => moved.push((from, to, vec![slot])),
        };
    for o in open {
        let (Some(from), Some(to)) = (index(&o.from), index(&o.to)) else {
            return Err(o.clone());
        };
        if balance[from] <= 0 || balance[to] >= 0 {
            return Err(o.clone());
        }
        holding[from].1.remove(&o.slot);
        balance[from] -= 1;
        balance[to] += 1;
        give(&mut moved, from, to, o.slot);
    }
    // The fullest donors first, the emptiest receivers first: big contiguous ranges.
    let mut donors: Vec<usize> = (0..holding.len()).filter(|&i| balance[i] > 0).collect();
    let mut takers: Vec<usize> = (0..holding.len()).filter(|&i| balance[i] < 0).collect();
    donors.sort_by_key(|&i| (std::cmp::Reverse(balance[i]), i));
    takers.sort_by_key(|&i| (balance[i], i));
    let (mut d, mut t) = (0, 0);
    while d < donors.len() && t < takers.len() {
        let (from, to) = (donors[d], takers[t]);
        let n = balance[from].min(-balance[to]) as usize;
        let slots: Vec<u16> = holding[from].1.iter().take(n).copied().collect();
        for s in slots {
            holding[from].1.remove(&s);
            give(&mut moved, from, to, s);
        }
        balance[from] -= n as i64;
        balance[to] += n as i64;
        d += usize::from(balance[from] == 0);
        t += usize::from(balance[to] == 0);
    }
    Ok(moved
        .into_iter()
        .map(|(from, to, mut s)| {
            s.sort_unstable();
            SlotMove {
                from: holding[from].0.clone(),
                to: holding[to].0.clone(),
                slots: ranges(&s),
            }
        })
        .collect())
}

/// The number of slots each master ends with: 16384/|keep| for those in `keep`, plus one for the
/// 16384 mod |keep| that hold the most now (fewest moves); 0 for the others.
fn targets(holding: &[(String, BTreeSet<u16>)], keep: &[String]) -> Vec<usize> {
    let mut target = vec![0; holding.len()];
    if keep.is_empty() {
        return target;
    }
    let total = slots::SLOTS as usize;
    let (base, extra) = (total / keep.len(), total % keep.len());
    let mut kept: Vec<usize> = (0..holding.len())
        .filter(|&i| keep.contains(&holding[i].0))
        .collect();
    kept.sort_by_key(|&i| (std::cmp::Reverse(holding[i].1.len()), i));
    for (rank, &i) in kept.iter().enumerate() {
        target[i] = base + usize::from(rank < extra);
    }
    target
}

/// Sorted slots as contiguous ranges.
pub fn ranges(sorted: &[u16]) -> Vec<SlotRange> {
    let mut out: Vec<SlotRange> = Vec::new();
    for &s in sorted {
        match out.last_mut() {
            Some(r) if *r.end() as u32 + 1 == s as u32 => *r = *r.start()..=s,
            _ => out.push(s..=s),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: usize) -> String {
        format!("node-{i}")
    }

    /// `masters` masters holding the create split, plus `empty` new ones.
    fn split_plus(masters: usize, empty: usize) -> Vec<(String, Vec<SlotRange>)> {
        let mut owned: Vec<(String, Vec<SlotRange>)> = slots::split(masters)
            .into_iter()
            .enumerate()
            .map(|(i, r)| (id(i), vec![r]))
            .collect();
        owned.extend((masters..masters + empty).map(|i| (id(i), Vec::new())));
        owned
    }

    /// Applies the moves and returns each master's slot count, checking no slot is lost or doubled.
    fn apply(owned: &[(String, Vec<SlotRange>)], moves: &[SlotMove]) -> Vec<usize> {
        let mut holding: Vec<(String, BTreeSet<u16>)> = owned
            .iter()
            .map(|(i, r)| (i.clone(), r.iter().flat_map(|r| r.clone()).collect()))
            .collect();
        for m in moves {
            for s in m.slots.iter().flat_map(|r| r.clone()) {
                let from = holding.iter_mut().find(|(i, _)| *i == m.from).unwrap();
                assert!(from.1.remove(&s), "{} does not hold {s}", m.from);
                holding
                    .iter_mut()
                    .find(|(i, _)| *i == m.to)
                    .unwrap()
                    .1
                    .insert(s);
            }
        }
        let total: usize = holding.iter().map(|(_, s)| s.len()).sum();
        assert_eq!(total, slots::SLOTS as usize);
        holding.iter().map(|(_, s)| s.len()).collect()
    }

    #[test]
    fn three_to_four_masters_takes_from_each_old_master_its_lowest_slots() {
        let owned = split_plus(3, 1);
        let keep: Vec<String> = (0..4).map(id).collect();
        let moves = rebalance(&owned, &keep);
        let lines: Vec<String> = moves.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "slot 5461-6826: node-1 → node-3",
                "slot 0-1364: node-0 → node-3",
                "slot 10923-12287: node-2 → node-3"
            ]
        );
        assert_eq!(apply(&owned, &moves), [4096; 4]);
    }

    #[test]
    fn every_kept_master_ends_within_one_and_only_surplus_moves() {
        for (old, new) in [(3, 3), (3, 1), (4, 2), (5, 7), (3, 10), (7, 1)] {
            let owned = split_plus(old, new);
            let keep: Vec<String> = (0..old + new).map(id).collect();
            let moves = rebalance(&owned, &keep);
            let counts = apply(&owned, &moves);
            let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(max - min <= 1, "{old}+{new}: {counts:?}");
            let moved: usize = moves.iter().map(SlotMove::count).sum();
            let minimal: usize = owned
                .iter()
                .map(|(_, r)| slots::count(r).saturating_sub(slots::SLOTS as usize / keep.len()))
                .sum::<usize>();
            assert!(
                moved <= minimal,
                "{old}+{new}: moved {moved}, need {minimal}"
            );
        }
    }

    #[test]
    fn a_balanced_cluster_moves_nothing() {
        let owned = split_plus(5, 0);
        let keep: Vec<String> = (0..5).map(id).collect();
        assert!(rebalance(&owned, &keep).is_empty());
    }

    #[test]
    fn masters_not_kept_are_drained_to_zero() {
        let owned = split_plus(4, 0);
        let keep: Vec<String> = (0..3).map(id).collect();
        let moves = rebalance(&owned, &keep);
        let counts = apply(&owned, &moves);
        assert_eq!(counts[3], 0);
        assert!(
            counts[..3].iter().all(|c| (5461..=5462).contains(c)),
            "{counts:?}"
        );
        assert!(moves.iter().all(|m| m.from == id(3)));
    }

    #[test]
    fn an_open_slot_of_the_balance_is_finished_on_its_own_pair() {
        // 3 → 4 interrupted: node-0 already gave 0-99 and was moving 100 to node-3.
        let mut owned = split_plus(3, 1);
        owned[0].1 = vec![101..=5460];
        owned[3].1 = vec![0..=99, 100..=100];
        let open = [OpenSlot {
            slot: 100,
            from: id(0),
            to: id(3),
        }];
        let keep: Vec<String> = (0..4).map(id).collect();
        let moves = rebalance_resuming(&owned, &keep, &open).unwrap();
        assert!(
            moves
                .iter()
                .any(|m| m.from == id(0) && m.to == id(3) && *m.slots[0].start() == 100)
        );
        let mut before = owned.clone();
        before[0].1 = vec![100..=5460];
        before[3].1 = vec![0..=99];
        assert_eq!(apply(&before, &moves), [4096; 4]);
    }

    #[test]
    fn an_open_slot_the_balance_does_not_need_is_refused() {
        let owned = split_plus(3, 1);
        let keep: Vec<String> = (0..4).map(id).collect();
        let backwards = OpenSlot {
            slot: 0,
            from: id(0),
            to: id(1),
        };
        assert_eq!(
            rebalance_resuming(&owned, &keep, std::slice::from_ref(&backwards)),
            Err(backwards)
        );
    }

    #[test]
    fn ranges_group_contiguous_slots() {
        assert_eq!(ranges(&[1, 2, 3, 7, 9, 10]), vec![1..=3, 7..=7, 9..=10]);
    }
}
