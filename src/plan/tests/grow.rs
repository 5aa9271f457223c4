//! *grow*: the StatefulSet grew by whole shards; re-runs of a half-done grow; what is refused.

use super::*;
use crate::slots;

/// A formed cluster of six (three shards) and `new` empty pods alone beside it.
fn six_and(new: usize) -> Vec<Observation> {
    let mut obs = cluster(&PAIRS, &SIX, here);
    obs.extend((6..6 + new).map(|i| alone(i, "", 0, 0)));
    obs
}

fn moves(p: &Plan, nodes: &[Node]) -> Vec<String> {
    p.steps
        .iter()
        .filter(|s| matches!(s, Step::MoveSlots { .. }))
        .map(|s| s.describe(nodes))
        .collect()
}

/// Each master's slot count after the plan's moves, from `before` (pod → slots).
fn after(p: &Plan, mut before: Vec<usize>) -> Vec<usize> {
    for s in &p.steps {
        if let Step::MoveSlots {
            from, to, slots, ..
        } = s
        {
            before[*from] -= slots::count(slots);
            before[*to] += slots::count(slots);
        }
    }
    before
}

#[test]
fn six_to_eight_meets_the_new_shard_and_moves_its_share_from_every_master() {
    let nodes = pods(8);
    let layout = Layout::new(8, 1).unwrap();
    let p = plan(&nodes, &layout, &six_and(2)).unwrap();
    assert_eq!(p.decision, Decision::Grow);
    assert_eq!(
        p.steps[..4],
        [
            Step::Meet { node: 6, peer: 0 },
            Step::Meet { node: 7, peer: 0 },
            Step::Replicate {
                node: 7,
                master: 6,
                master_id: id(6)
            },
            Step::CopyFunctions { node: 6, from: 0 },
        ]
    );
    assert_eq!(
        moves(&p, &nodes),
        [
            "slot 5461-6826: redis-app-1 → redis-app-6",
            "slot 0-1364: redis-app-0 → redis-app-6",
            "slot 10923-12287: redis-app-2 → redis-app-6",
        ]
    );
    let counts = after(&p, vec![5461, 5462, 5461, 0, 0, 0, 0, 0]);
    assert_eq!([0, 1, 2, 6].map(|i| counts[i]), [4096; 4]);
}

/// The day-1 refusal (`owns slots 0-5460 but the plan gives it 0-2730`) is now a grow.
#[test]
fn six_to_twelve_makes_the_first_three_new_pods_masters() {
    let nodes = pods(12);
    let layout = Layout::new(12, 1).unwrap();
    let p = plan(&nodes, &layout, &six_and(6)).unwrap();
    assert_eq!(p.decision, Decision::Grow);
    let replicas: Vec<(usize, usize)> = p
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Replicate { node, master, .. } => Some((*node, *master)),
            _ => None,
        })
        .collect();
    assert_eq!(replicas, [(9, 6), (10, 7), (11, 8)]);
    let counts = after(&p, vec![5461, 5462, 5461, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    for m in [0, 1, 2, 6, 7, 8] {
        assert!((2730..=2731).contains(&counts[m]), "{counts:?}");
    }
}

#[test]
fn nine_to_twelve_with_two_replicas_gives_the_new_master_both_new_replicas() {
    let nodes = pods(12);
    let layout = Layout::new(12, 2).unwrap();
    let masters = [
        None,
        None,
        None,
        Some(0),
        Some(1),
        Some(2),
        Some(0),
        Some(1),
        Some(2),
    ];
    let slots = [
        "0-5460",
        "5461-10922",
        "10923-16383",
        "",
        "",
        "",
        "",
        "",
        "",
    ];
    let mut obs = cluster(&masters, &slots, here);
    obs.extend((9..12).map(|i| alone(i, "", 0, 0)));
    let p = plan(&nodes, &layout, &obs).unwrap();
    assert_eq!(p.decision, Decision::Grow);
    assert!(p.steps.contains(&Step::Replicate {
        node: 10,
        master: 9,
        master_id: id(9)
    }));
    assert!(p.steps.contains(&Step::Replicate {
        node: 11,
        master: 9,
        master_id: id(9)
    }));
    assert_eq!(moves(&p, &nodes).len(), 3);
}

/// Eight pods in one cluster, pod 6 (followed by 7) the new master, `moved` its slots so far.
fn half_grown(slots: [&str; 8]) -> Vec<Observation> {
    let masters = [None, None, None, Some(0), Some(1), Some(2), None, Some(6)];
    cluster(&masters, &slots, here)
}

#[test]
fn a_half_done_grow_finishes_its_open_slot_first_then_the_rest() {
    let nodes = pods(8);
    let layout = Layout::new(8, 1).unwrap();
    let mut obs = half_grown([
        "101-5460",
        "5461-10922",
        "10923-16383",
        "",
        "",
        "",
        "0-100",
        "",
    ]);
    // Killed in slot 100: node 0 migrating it to 6, 6 importing it from 0.
    obs[0].nodes[0]
        .open_slots
        .push(format!("[100->-{}]", id(6)));
    obs[6].nodes[6]
        .open_slots
        .push(format!("[100-<-{}]", id(0)));
    let p = plan(&nodes, &layout, &obs).unwrap();
    assert_eq!(p.decision, Decision::Grow);
    assert!(
        !p.steps
            .iter()
            .any(|s| matches!(s, Step::Meet { .. } | Step::Replicate { .. }))
    );
    assert!(
        moves(&p, &nodes).contains(&"slot 100-1364: redis-app-0 → redis-app-6".to_string()),
        "{:?}",
        moves(&p, &nodes)
    );
    let counts = after(&p, vec![5361, 5462, 5461, 0, 0, 0, 100, 0]);
    assert_eq!([0, 1, 2, 6].map(|i| counts[i]), [4096; 4]);
}

#[test]
fn a_grow_interrupted_between_two_slots_continues() {
    let nodes = pods(8);
    let layout = Layout::new(8, 1).unwrap();
    let obs = half_grown([
        "0-5460",
        "7000-10922",
        "10923-16383",
        "",
        "",
        "",
        "5461-6999",
        "",
    ]);
    let p = plan(&nodes, &layout, &obs).unwrap();
    assert_eq!(p.decision, Decision::Grow);
    let counts = after(&p, vec![5461, 3923, 5461, 0, 0, 0, 1539, 0]);
    for m in [0, 1, 2, 6] {
        assert!((4096..=4097).contains(&counts[m]), "{counts:?}");
    }
}

#[test]
fn a_grown_and_balanced_cluster_is_formed() {
    let nodes = pods(8);
    let layout = Layout::new(8, 1).unwrap();
    let obs = half_grown([
        "1365-5460",
        "6827-10922",
        "12288-16383",
        "",
        "",
        "",
        "0-1364 5461-6826 10923-12287",
        "",
    ]);
    assert_eq!(
        plan(&nodes, &layout, &obs).unwrap().decision,
        Decision::Formed
    );
}

#[test]
fn an_open_slot_that_is_not_a_move_of_the_grow_is_refused() {
    let nodes = pods(8);
    let layout = Layout::new(8, 1).unwrap();
    let mut obs = six_and(2);
    obs[0].nodes[0].open_slots.push(format!("[7->-{}]", id(1)));
    let why = plan(&nodes, &layout, &obs).unwrap_err();
    assert!(
        why.contains("open slot 7") && why.contains("redis-app-0"),
        "{why}"
    );
}

#[test]
fn a_failing_node_stops_the_grow_before_any_move() {
    let nodes = pods(8);
    let layout = Layout::new(8, 1).unwrap();
    let mut obs = six_and(2);
    for o in &mut obs[..6] {
        o.nodes[4].flags.fail = true;
    }
    let why = plan(&nodes, &layout, &obs).unwrap_err();
    assert!(
        why.contains("failing") && why.contains("redis-app-4"),
        "{why}"
    );
}

#[test]
fn more_replicas_per_master_is_still_partial() {
    let nodes = pods(9);
    let layout = Layout::new(9, 2).unwrap();
    let p = plan(&nodes, &layout, &six_and(3)).unwrap();
    assert_eq!(p.decision, Decision::Partial);
}

#[test]
fn a_new_pod_with_keys_is_refused_as_before() {
    let nodes = pods(8);
    let layout = Layout::new(8, 1).unwrap();
    let mut obs = six_and(2);
    obs[7] = alone(7, "", 0, 5);
    let why = plan(&nodes, &layout, &obs).unwrap_err();
    assert!(why.contains("redis-app-7") && why.contains("key"), "{why}");
}

#[test]
fn adding_a_pod_short_of_a_shard_is_refused() {
    let why = Layout::new(7, 1).unwrap_err();
    assert!(why.contains("not divisible"), "{why}");
}

#[test]
fn a_grow_killed_between_meet_and_replicate_replicates_and_moves() {
    let nodes = pods(8);
    let layout = Layout::new(8, 1).unwrap();
    // Both new pods met the cluster; both are still slotless masters.
    let masters = [None, None, None, Some(0), Some(1), Some(2), None, None];
    let obs = cluster(
        &masters,
        &["0-5460", "5461-10922", "10923-16383", "", "", "", "", ""],
        here,
    );
    let p = plan(&nodes, &layout, &obs).unwrap();
    assert_eq!(p.decision, Decision::Grow);
    assert!(!p.steps.iter().any(|s| matches!(s, Step::Meet { .. })));
    assert!(p.steps.contains(&Step::Replicate {
        node: 7,
        master: 6,
        master_id: id(6)
    }));
    assert_eq!(moves(&p, &nodes).len(), 3);
}

/// Killed after `SETSLOT NODE` reached the receiver but not the giver: the receiver owns slot 100
/// already, the giver still shows it migrating. It is planned again on the same pair (the engine
/// then only tells the others).
#[test]
fn a_slot_the_receiver_already_owns_is_closed_on_the_same_pair() {
    let nodes = pods(8);
    let layout = Layout::new(8, 1).unwrap();
    let mut obs = half_grown([
        "101-5460",
        "5461-10922",
        "10923-16383",
        "",
        "",
        "",
        "0-100",
        "",
    ]);
    obs[0].nodes[0]
        .open_slots
        .push(format!("[100->-{}]", id(6)));
    let p = plan(&nodes, &layout, &obs).unwrap();
    assert!(
        moves(&p, &nodes).contains(&"slot 100-1364: redis-app-0 → redis-app-6".to_string()),
        "{:?}",
        moves(&p, &nodes)
    );
}

/// Killed in the new master's first group of slots: it holds the keys of slots it is importing
/// but owns none yet. Those keys are the grow's own: the slots are finished, nothing refused.
#[test]
fn a_new_master_killed_in_its_first_slots_holds_their_keys_and_is_finished() {
    let nodes = pods(8);
    let layout = Layout::new(8, 1).unwrap();
    let mut obs = half_grown(["0-5460", "5461-10922", "10923-16383", "", "", "", "", ""]);
    obs[6].keys = 77;
    obs[7].keys = 77;
    for slot in 0..3 {
        obs[0].nodes[0]
            .open_slots
            .push(format!("[{slot}->-{}]", id(6)));
        obs[6].nodes[6]
            .open_slots
            .push(format!("[{slot}-<-{}]", id(0)));
    }
    let p = plan(&nodes, &layout, &obs).unwrap();
    assert_eq!(p.decision, Decision::Grow);
    assert!(moves(&p, &nodes).contains(&"slot 0-1364: redis-app-0 → redis-app-6".to_string()));
    // The same keys on a new pod that imports nothing are refused.
    obs[6].nodes[6].open_slots.clear();
    obs[0].nodes[0].open_slots.clear();
    let why = plan(&nodes, &layout, &obs).unwrap_err();
    assert!(
        why.contains("redis-app-6") && why.contains("77 key(s)"),
        "{why}"
    );
}
