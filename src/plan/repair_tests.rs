//! Unit tests of the placement repair: the classic full-restart case, masters gathered on one
//! node, uneven replica counts, and random placements and pairings checked against brute force,
//! replaying every move to check that at most one shard lacks a synced replica at any moment.

use super::*;

/// Pods on these Kubernetes nodes, zones unknown.
fn on(nodes: &[&str]) -> Vec<Place> {
    nodes
        .iter()
        .map(|n| Place {
            node: Some(n.to_string()),
            zone: None,
        })
        .collect()
}

/// The guide's shards for `n` pods with R replicas: masters 0..M, pod M+k follows k mod M.
fn guide(n: usize, r: usize) -> Vec<(usize, Vec<usize>)> {
    let m = n / (1 + r);
    (0..m)
        .map(|k| (k, (m..n).filter(|p| p % m == k).collect()))
        .collect()
}

/// Replays `moves` from `shards`, checking each is allowed and safe. Each move is waited for, so
/// only the replica it moved (or the master a failover demoted) is out of sync while it runs. A
/// failover goes to a replica of that master while every shard has a replica; during each move
/// at most one shard lacks a synced replica, and a shard left without a replica by one move gets
/// one with the next. Returns the shards at the end.
fn replay(shards: &[(usize, Vec<usize>)], moves: &[Move]) -> Vec<(usize, Vec<usize>)> {
    let mut shards = shards.to_vec();
    let shard_of = |shards: &[(usize, Vec<usize>)], p: usize| {
        shards
            .iter()
            .position(|(m, rs)| *m == p || rs.contains(&p))
            .expect("every pod is in a shard")
    };
    // Shards without a replica before any move (an uneven layout): allowed, fed first.
    let mut lacking_before: Vec<usize> = (0..shards.len())
        .filter(|&k| shards[k].1.is_empty())
        .collect();
    for (step, mv) in moves.iter().enumerate() {
        // The one replica out of sync while this move completes.
        let unsynced = match *mv {
            Move::Failover { replica, master } => {
                let k = shard_of(&shards, master);
                assert_eq!(shards[k].0, master, "step {step}: {mv:?}");
                assert!(shards[k].1.contains(&replica), "step {step}: {mv:?}");
                assert!(lacking_before.is_empty(), "step {step}: a shard lacks");
                shards[k].1.retain(|&p| p != replica);
                shards[k].1.push(master);
                shards[k].0 = replica;
                Some(master)
            }
            Move::Replicate { replica, master } => {
                let from = shard_of(&shards, replica);
                let to = shard_of(&shards, master);
                assert_ne!(shards[from].0, replica, "step {step}: a master moved");
                assert_eq!(shards[to].0, master, "step {step}: {mv:?}");
                assert_ne!(from, to, "step {step}: {mv:?}");
                shards[from].1.retain(|&p| p != replica);
                shards[to].1.push(replica);
                Some(replica)
            }
        };
        let lacking: Vec<usize> = (0..shards.len())
            .filter(|&k| shards[k].1.iter().all(|&p| Some(p) == unsynced))
            .collect();
        assert!(
            lacking.len() <= 1.max(lacking_before.len()),
            "step {step}: {lacking:?} lack a synced replica: {shards:?}"
        );
        // A shard that lacked a replica before this move is fed by it.
        for k in &lacking_before {
            assert!(
                !lacking.contains(k) || unsynced.is_some_and(|p| shards[*k].1.contains(&p)),
                "step {step}: shard {k} still starved: {shards:?}"
            );
        }
        lacking_before = (0..shards.len())
            .filter(|&k| shards[k].1.is_empty())
            .collect();
    }
    for (_, replicas) in &mut shards {
        replicas.sort_unstable();
    }
    shards
}

/// Whether some pairing of pods in `domains` (M masters, R replicas each) separates them.
fn brute_force(domains: &[usize], r: usize) -> bool {
    let n = domains.len();
    let m = n / (1 + r);
    fn fill(domains: &[usize], masters: &[usize], left: &[usize], room: &mut [usize]) -> bool {
        let Some((&p, rest)) = left.split_first() else {
            return true;
        };
        for k in 0..masters.len() {
            if room[k] > 0 && domains[masters[k]] != domains[p] {
                room[k] -= 1;
                if fill(domains, masters, rest, room) {
                    return true;
                }
                room[k] += 1;
            }
        }
        false
    }
    (0u32..1 << n)
        .filter(|s| s.count_ones() as usize == m)
        .any(|set| {
            let masters: Vec<usize> = (0..n).filter(|i| set & (1 << i) != 0).collect();
            let left: Vec<usize> = (0..n).filter(|i| set & (1 << i) == 0).collect();
            fill(domains, &masters, &left, &mut vec![r; m])
        })
}

/// A small deterministic generator (xorshift), so a failure is reproducible.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[test]
fn a_full_restart_that_stacked_every_pair_is_repaired_by_swapping_replicas() {
    // The guide's pairs 0/3, 1/4, 2/5 each on one node, as after deleting every pod.
    let places = on(&["a", "b", "c", "a", "b", "c"]);
    let shards = guide(6, 1);
    assert_eq!(score(&places, 1, &shards).unsafe_nodes, 3);
    let repair = repair(&places, 1, &shards).expect("a repair");
    let end = replay(&shards, &repair.moves);
    assert_eq!(end, repair.shards);
    assert_eq!(score(&places, 1, &end).unsafe_nodes, 0);
    // Masters stay (no failover needed) and only the three replicas move, one at a time.
    assert_eq!(
        end.iter().map(|(m, _)| *m).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert!(repair.moves.len() <= 4, "{:?}", repair.moves);
    assert!(
        repair
            .moves
            .iter()
            .all(|m| matches!(m, Move::Replicate { .. }))
    );
    // The result needs nothing more.
    assert_eq!(super::repair(&places, 1, &end), None);
}

#[test]
fn a_safe_layout_is_left_alone() {
    let places = on(&["a", "b", "c", "b", "c", "a"]);
    assert_eq!(repair(&places, 1, &guide(6, 1)), None);
}

#[test]
fn masters_gathered_on_one_node_are_spread_by_failovers() {
    // Every master on node a, every replica elsewhere: safe pairs, but losing a stops every vote.
    let places = on(&["a", "a", "a", "b", "c", "d"]);
    let shards = guide(6, 1);
    assert_eq!(score(&places, 1, &shards).node_majority, 1);
    let repair = repair(&places, 1, &shards).expect("a repair");
    let end = replay(&shards, &repair.moves);
    let after = score(&places, 1, &end);
    assert_eq!((after.node_majority, after.unsafe_nodes), (0, 0), "{end:?}");
    // Two failovers inside their shards, no replica moved.
    assert_eq!(repair.moves.len(), 2, "{:?}", repair.moves);
    assert!(
        repair
            .moves
            .iter()
            .all(|m| matches!(m, Move::Failover { .. }))
    );
}

#[test]
fn an_uneven_layout_gets_r_replicas_per_master() {
    // After a replica migration: master 0 has two replicas, master 1 none.
    let places = on(&["a", "b", "c", "d", "e", "f", "g", "h"]);
    let shards = vec![(0, vec![4, 5]), (1, vec![]), (2, vec![6]), (3, vec![7])];
    let repair = repair(&places, 1, &shards).expect("a repair");
    assert_eq!(repair.moves.len(), 1, "{:?}", repair.moves);
    let end = replay(&shards, &repair.moves);
    assert!(end.iter().all(|(_, rs)| rs.len() == 1), "{end:?}");
    // Without any placement known (static mode) it is repaired all the same.
    let unknown = vec![Place::default(); 8];
    let repair = super::repair(&unknown, 1, &shards).expect("a repair");
    let end = replay(&shards, &repair.moves);
    assert!(end.iter().all(|(_, rs)| rs.len() == 1), "{end:?}");
}

#[test]
fn an_impossible_placement_is_left_alone() {
    // Four of six pods on one node: with R = 1 no pairing keeps every replica off its master.
    let places = on(&["a", "a", "a", "a", "b", "c"]);
    let shards = vec![(0, vec![4]), (1, vec![5]), (2, vec![3])];
    assert!(!brute_force(&Domains::new(&places).nodes, 1));
    assert_eq!(repair(&places, 1, &shards), None);
}

#[test]
fn repairs_exactly_when_a_safe_pairing_exists_and_never_starves_two_shards() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut repaired = 0;
    for case in 0..1500 {
        let r = 1 + rng.below(2);
        let m = 3 + rng.below(if r == 1 { 2 } else { 1 });
        let n = m * (1 + r);
        let machines = 2 + rng.below(4);
        let zoned = rng.below(3) == 0;
        let places: Vec<Place> = (0..n)
            .map(|_| {
                let node = rng.below(machines);
                Place {
                    node: Some(format!("n{node}")),
                    zone: zoned.then(|| format!("z{}", node % 2)),
                }
            })
            .collect();
        // A random pairing: a random order of the pods cut into shards, sometimes uneven.
        let mut pods: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            pods.swap(i, rng.below(i + 1));
        }
        let mut shards: Vec<(usize, Vec<usize>)> = (0..m).map(|k| (pods[k], Vec::new())).collect();
        for (at, &p) in pods[m..].iter().enumerate() {
            shards[at % m].1.push(p);
        }
        if rng.below(4) == 0 {
            let moved = shards[0].1.pop().unwrap();
            shards[1].1.push(moved);
        }
        let domains = Domains::new(&places);
        let end = match repair(&places, r, &shards) {
            Some(done) => {
                repaired += 1;
                let end = replay(&shards, &done.moves);
                assert_eq!(end, done.shards, "case {case}");
                assert_eq!(repair(&places, r, &end), None, "case {case}: {end:?}");
                end
            }
            None => shards.clone(),
        };
        assert!(
            end.iter().all(|(_, rs)| rs.len() == r),
            "case {case}: uneven {places:?} {shards:?} → {end:?}"
        );
        // With R = 1 a shard is safe exactly when its replica is apart: safe exactly when some
        // pairing is. With R ≥ 2, every shard ends safe whenever some pairing keeps every replica
        // apart.
        let after = score(&places, r, &end);
        let apart = brute_force(&domains.nodes, r);
        if r == 1 {
            assert_eq!(
                after.unsafe_nodes == 0,
                apart,
                "case {case}: nodes {places:?} {shards:?} → {end:?}"
            );
        } else if apart {
            assert_eq!(
                after.unsafe_nodes, 0,
                "case {case}: nodes {places:?} {shards:?} → {end:?}"
            );
        }
        if let Some(zones) = &domains.zones {
            let apart = brute_force(zones, r);
            if r == 1 {
                assert_eq!(
                    after.unsafe_zones == 0,
                    apart,
                    "case {case}: zones {places:?} {shards:?} → {end:?}"
                );
            } else if apart {
                assert_eq!(
                    after.unsafe_zones, 0,
                    "case {case}: zones {places:?} {shards:?} → {end:?}"
                );
            }
        }
    }
    assert!(repaired > 500, "{repaired}");
}

#[test]
fn large_clusters_are_planned_quickly() {
    // 300 pods on 10 nodes, R = 2, every shard on one node.
    let n = 300;
    let places: Vec<Place> = (0..n)
        .map(|i| Place {
            node: Some(format!("n{}", (i % 100) % 10)),
            zone: None,
        })
        .collect();
    let started = std::time::Instant::now();
    let repair = repair(&places, 2, &guide(n, 2)).expect("a repair");
    let end = replay(&guide(n, 2), &repair.moves);
    assert_eq!(score(&places, 2, &end).shared_nodes, 0);
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
}
