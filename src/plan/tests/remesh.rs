//! Unit tests of *reconnect* after any shuffle of addresses, and of a stale master that missed its
//! own failover: the views are built as Redis prints them after such restarts.

use super::*;

/// Pod `j`'s address before the restart, when `moved` maps each pod to the pod whose current
/// address it used to have.
fn before(moved: &[usize]) -> impl Fn(usize) -> String + '_ {
    move |j| here(moved[j])
}

fn meets(p: &Plan) -> Vec<(usize, usize)> {
    p.steps
        .iter()
        .filter_map(|s| match s {
            Step::Meet { node, peer } => Some((*node, *peer)),
            _ => None,
        })
        .collect()
}

/// Whether a MEET links `a` and `b`, in either direction.
fn linked(m: &[(usize, usize)], a: usize, b: usize) -> bool {
    m.contains(&(a, b)) || m.contains(&(b, a))
}

/// Every node still sees every node (itself included) where it was before the restart.
fn restarted(moved: &[usize]) -> Vec<Observation> {
    let was = before(moved);
    cluster_seen(&PAIRS, &SIX, |j| j as u64 + 1, |_, j| Some(was(j)))
}

#[test]
fn two_replicas_that_swapped_addresses_are_met_with_each_other() {
    let (nodes, layout) = six();
    let p = plan(&nodes, &layout, &restarted(&[0, 1, 2, 3, 5, 4])).unwrap();
    assert_eq!(p.decision, Decision::Reconnect);
    let m = meets(&p);
    // Every other node holds 4 and 5 at each other's address (soon `noaddr`) and meets both; the
    // pair itself, each holding the other wrong, is met once. The others are left alone.
    for x in 0..4 {
        assert!(m.contains(&(x, 4)) && m.contains(&(x, 5)), "{x}: {m:?}");
    }
    assert!(linked(&m, 4, 5), "{m:?}");
    assert_eq!(m.len(), 9, "{m:?}");
    assert_eq!(p.steps.len(), 9, "nothing but MEETs: {:?}", p.steps);
    let notes = p.notes.join("\n");
    assert!(
        notes.contains("127.0.0.16:6379 was redis-app-4's address")
            && notes.contains("127.0.0.15:6379 was redis-app-5's address"),
        "{notes}"
    );
}

#[test]
fn a_pair_holding_each_other_as_noaddr_is_met_directly() {
    let (nodes, layout) = six();
    // Pods 1 and 2 swapped; every node already noticed and holds them as `noaddr`, except that
    // each of the two still advertises its own old address.
    let seen = |me: usize, j: usize| match (me, j) {
        (1, 1) => Some(here(2)),
        (2, 2) => Some(here(1)),
        (_, 1 | 2) => None,
        _ => Some(here(j)),
    };
    let obs = cluster_seen(&PAIRS, &SIX, |j| j as u64 + 1, seen);
    let p = plan(&nodes, &layout, &obs).unwrap();
    assert_eq!(p.decision, Decision::Reconnect);
    let m = meets(&p);
    assert!(linked(&m, 1, 2), "{m:?}");
    // Every other pod holds 1 and 2 as `noaddr` and meets them: 1 and 2 would ping them in time,
    // but not before a node timeout has passed for some.
    for x in [0, 3, 4, 5] {
        assert!(m.contains(&(x, 1)) && m.contains(&(x, 2)), "{x}: {m:?}");
    }
    assert_eq!(m.len(), 9, "{m:?}");
}

#[test]
fn a_rotation_of_three_pods_meets_every_pair_of_them() {
    let (nodes, layout) = six();
    // Pod i took pod i+1's old address (1→2's, 2→3's, 3→1's).
    let p = plan(&nodes, &layout, &restarted(&[0, 3, 1, 2, 4, 5])).unwrap();
    assert_eq!(p.decision, Decision::Reconnect);
    let m = meets(&p);
    for (a, b) in [(1, 2), (1, 3), (2, 3)] {
        assert!(linked(&m, a, b), "{a}-{b}: {m:?}");
    }
    for x in [0, 4, 5] {
        for i in 1..=3 {
            assert!(m.contains(&(x, i)), "{x}-{i}: {m:?}");
        }
    }
    assert_eq!(m.len(), 12, "{m:?}");
    // Pods 4 and 5 pull from their masters' old addresses: re-pointed at the same masters.
    let rest: Vec<&Step> = p
        .steps
        .iter()
        .filter(|s| !matches!(s, Step::Meet { .. }))
        .collect();
    assert_eq!(rest, pairs()[1..].iter().collect::<Vec<_>>());
}

#[test]
fn a_master_and_its_own_replica_that_swapped_are_met_and_the_replica_re_pointed() {
    let (nodes, layout) = six();
    let p = plan(&nodes, &layout, &restarted(&[3, 1, 2, 0, 4, 5])).unwrap();
    assert_eq!(p.decision, Decision::Reconnect);
    let m = meets(&p);
    // Every other pod holds 0 and 3 at each other's address and meets both.
    for x in [1, 2, 4, 5] {
        assert!(m.contains(&(x, 0)) && m.contains(&(x, 3)), "{x}: {m:?}");
    }
    assert!(linked(&m, 0, 3), "{m:?}");
    assert!(
        p.steps.contains(&Step::Replicate {
            node: 3,
            master: 0,
            master_id: id(0)
        }),
        "{:?}",
        p.steps
    );
}

#[test]
fn a_returned_replica_on_a_new_address_gets_one_meet() {
    let (nodes, layout) = six();
    // The guide's failover: pod 3 took over, pod 0 came back as its replica on a new address.
    // The others learnt it from pod 0's pings; only pod 0 still advertises its old address.
    let masters = [Some(3), None, None, None, Some(1), Some(2)];
    let slots = ["", "5461-10922", "10923-16383", "0-5460", "", ""];
    let seen = |me: usize, j: usize| {
        Some(if (me, j) == (0, 0) {
            "127.0.1.11:6379".into()
        } else {
            here(j)
        })
    };
    let obs = cluster_seen(&masters, &slots, |j| j as u64 + 1, seen);
    let p = plan(&nodes, &layout, &obs).unwrap();
    assert_eq!(p.decision, Decision::Reconnect);
    assert_eq!(p.steps, vec![Step::Meet { node: 1, peer: 0 }]);
}

/// After pod 3 took over pod 0's slots (epoch 7) while pod 0 was down, and every pod restarted:
/// pod 0 still says it is master of 0-5460 with epoch 1 and that pod 3 is its replica.
fn stale_master(epoch_of_3: u64) -> Vec<Observation> {
    let masters = [None, None, None, None, Some(1), Some(2)];
    let slots = ["", "5461-10922", "10923-16383", "0-5460", "", ""];
    let epoch = |j: usize| if j == 3 { epoch_of_3 } else { j as u64 + 1 };
    let old = |_: usize, j: usize| Some(format!("127.0.1.{}:6379", 11 + j));
    let mut obs = cluster_seen(&masters, &slots, epoch, old);
    let own = &mut obs[0].nodes;
    own[0].slots = vec![0..=5460];
    own[3].flags.replica = true;
    own[3].flags.master = false;
    own[3].master_id = Some(id(0));
    own[3].slots.clear();
    own[3].config_epoch = 1;
    obs
}

#[test]
fn a_stale_master_of_the_same_cluster_is_re_introduced_not_refused() {
    let (nodes, layout) = six();
    let p = plan(&nodes, &layout, &stale_master(7)).unwrap();
    assert_eq!(p.decision, Decision::Reconnect);
    // Redis settles it by config epoch: no slot, epoch or role command is planned.
    assert!(
        p.steps
            .iter()
            .all(|s| matches!(s, Step::Meet { .. } | Step::Replicate { .. })),
        "{:?}",
        p.steps
    );
    assert!(
        !p.steps
            .iter()
            .any(|s| s.node() == 0 && matches!(s, Step::Replicate { .. }))
    );
    let notes = p.notes.join("\n");
    assert!(
        notes.contains("redis-app-0 (127.0.0.11:6379) and redis-app-3 (127.0.0.14:6379) both claim slots 0-5460")
            && notes.contains("redis-app-3 keeps them (config epoch 7 > 1)")
            && notes.contains("redis-app-0 missed its own failover"),
        "{notes}"
    );
}

#[test]
fn two_claims_with_one_config_epoch_are_refused() {
    let (nodes, layout) = six();
    let why = plan(&nodes, &layout, &stale_master(1)).unwrap_err();
    assert!(
        why.contains("both claim slot 0 with config epoch 1") && why.contains("redis-app-3"),
        "{why}"
    );
}

#[test]
fn a_stale_master_that_would_keep_some_slots_is_refused() {
    let (nodes, layout) = six();
    let mut obs = stale_master(7);
    // Pod 0 also claims a slot nobody else has: Redis would leave it a master of that slot.
    obs[0].nodes[0].slots = vec![0..=5460, 5461..=5461];
    obs[1].nodes[1].slots = vec![5462..=10922];
    let why = plan(&nodes, &layout, &obs).unwrap_err();
    assert!(
        why.contains("redis-app-0") && why.contains("a person must look"),
        "{why}"
    );
}

#[test]
fn thirty_nodes_on_new_addresses_each_send_and_receive_half_the_meets() {
    // 15 masters and their replicas, every node restarted on a new address.
    let n = 30;
    let bounds: Vec<usize> = (0..=15).map(|i| i * 16384 / 15).collect();
    let ranges: Vec<String> = (0..15)
        .map(|i| format!("{}-{}", bounds[i], bounds[i + 1] - 1))
        .chain((15..n).map(|_| String::new()))
        .collect();
    let slots: Vec<&str> = ranges.iter().map(String::as_str).collect();
    let masters: Vec<Option<usize>> = (0..n).map(|i| (i >= 15).then(|| i - 15)).collect();
    let old = |j: usize| format!("127.0.1.{}:6379", 11 + j);
    let obs = cluster(&masters, &slots, old);
    let p = plan(&pods(n), &Layout::new(n, 1).unwrap(), &obs).unwrap();
    assert_eq!(p.decision, Decision::Reconnect);
    let m = meets(&p);
    // Every pair once, in one round: no node waits for gossip, and none carries the handshakes
    // of many (the round-robin gives each 14 or 15 to send, as many to receive).
    assert_eq!(m.len(), n * (n - 1) / 2);
    for i in 0..n {
        let sent = m.iter().filter(|x| x.0 == i).count();
        let received = m.iter().filter(|x| x.1 == i).count();
        assert!((14..=15).contains(&sent), "{i} sends {sent}");
        assert!((14..=15).contains(&received), "{i} receives {received}");
    }
}
