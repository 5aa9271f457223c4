//! *drain* (`BOOTSTRAP_DRAIN_TO`): the highest shard's slots move to the kept masters; drained is a
//! no-op; roles that a drain cannot keep whole are refused.

use super::*;
use crate::slots;

/// Six grown to eight: masters 0, 1, 2 and 6; 3, 4, 5 follow 0, 1, 2 and 7 follows 6.
const GROWN: [Option<usize>; 8] = [None, None, None, Some(0), Some(1), Some(2), None, Some(6)];
const GROWN_SLOTS: [&str; 8] = [
    "1365-5460",
    "6827-10922",
    "12288-16383",
    "",
    "",
    "",
    "0-1364 5461-6826 10923-12287",
    "",
];
/// The same after the drain: pod 6 holds nothing.
const DRAINED_SLOTS: [&str; 8] = ["0-5460", "5461-10922", "10923-16383", "", "", "", "", ""];

fn eight() -> (Vec<Node>, Layout) {
    (pods(8), Layout::new(8, 1).unwrap())
}

#[test]
fn the_highest_shard_gives_every_slot_to_the_kept_masters_balanced() {
    let (nodes, layout) = eight();
    let obs = cluster(&GROWN, &GROWN_SLOTS, here);
    let p = plan_draining(&nodes, &layout, &obs, Some(6)).unwrap();
    assert_eq!(p.decision, Decision::Drain);
    let mut counts = [4096usize, 4096, 4096, 0, 0, 0, 4096, 0];
    for s in &p.steps {
        let Step::MoveSlots {
            from,
            to,
            slots,
            masters,
            ..
        } = s
        else {
            panic!("only moves: {s:?}")
        };
        assert_eq!(*from, 6);
        assert_eq!(masters, &[0, 1, 2, 6]);
        counts[*from] -= slots::count(slots);
        counts[*to] += slots::count(slots);
    }
    assert_eq!(counts[6], 0);
    assert!(
        counts[..3].iter().all(|c| (5461..=5462).contains(c)),
        "{counts:?}"
    );
    // Without the target the same cluster is formed: nothing moves.
    assert_eq!(
        plan(&nodes, &layout, &obs).unwrap().decision,
        Decision::Formed
    );
}

#[test]
fn a_drained_cluster_is_a_no_op_while_the_target_stays_set() {
    let (nodes, layout) = eight();
    let obs = cluster(&GROWN, &DRAINED_SLOTS, here);
    let p = plan_draining(&nodes, &layout, &obs, Some(6)).unwrap();
    assert_eq!((p.decision, p.steps.len()), (Decision::Drain, 0));
    // Without it, empty highest masters are a half-done grow: the slots would go back.
    assert_eq!(
        plan(&nodes, &layout, &obs).unwrap().decision,
        Decision::Grow
    );
    // Redis may turn the emptied master into a replica of the node that took its last slot.
    let mut followed = GROWN;
    followed[6] = Some(2);
    followed[7] = Some(2);
    let obs = cluster(&followed, &DRAINED_SLOTS, here);
    let p = plan_draining(&nodes, &layout, &obs, Some(6)).unwrap();
    assert_eq!((p.decision, p.steps.len()), (Decision::Drain, 0));
}

#[test]
fn a_kept_replica_of_a_drained_master_is_refused_with_the_failover_to_run() {
    let (nodes, layout) = eight();
    // After a failover, pod 3 replicates pod 6 and pod 7 is pod 0's replica.
    let mut roles = GROWN;
    roles[3] = Some(6);
    roles[7] = Some(0);
    let obs = cluster(&roles, &GROWN_SLOTS, here);
    let err = plan_draining(&nodes, &layout, &obs, Some(6)).unwrap_err();
    assert!(
        err.contains("redis-app-3")
            && err.contains("redis-app-6")
            && err.contains("CLUSTER FAILOVER"),
        "{err}"
    );
}

#[test]
fn interleaved_shards_are_refused_naming_the_shape() {
    let (nodes, layout) = eight();
    let roles = [None, None, None, None, Some(0), Some(1), Some(2), Some(3)];
    let slots = [
        "0-4095",
        "4096-8191",
        "8192-12287",
        "12288-16383",
        "",
        "",
        "",
        "",
    ];
    let err = plan_draining(&nodes, &layout, &cluster(&roles, &slots, here), Some(6)).unwrap_err();
    assert!(err.contains("not 3 whole shards"), "{err}");
}

#[test]
fn the_target_at_or_above_the_pod_count_changes_nothing() {
    let (nodes, layout) = six();
    let obs = cluster(&PAIRS, &SIX, here);
    for d in [6, 9] {
        let p = plan_draining(&nodes, &layout, &obs, Some(d)).unwrap();
        assert_eq!(p.decision, Decision::Formed);
    }
}

#[test]
fn a_failing_node_stops_the_drain() {
    let (nodes, layout) = eight();
    let mut obs = cluster(&GROWN, &GROWN_SLOTS, here);
    obs[0].nodes[5].flags.fail = true;
    let err = plan_draining(&nodes, &layout, &obs, Some(6)).unwrap_err();
    assert!(err.contains("failing"), "{err}");
}

#[test]
fn a_drain_killed_in_a_slot_finishes_it_and_the_rest() {
    let (nodes, layout) = eight();
    // Slots 0-99 already reached pod 0; killed in slot 100 (pod 6 migrating it to pod 0).
    let slots = [
        "0-99 1365-5460",
        "6827-10922",
        "12288-16383",
        "",
        "",
        "",
        "100-1364 5461-6826 10923-12287",
        "",
    ];
    let mut obs = cluster(&GROWN, &slots, here);
    obs[6].nodes[6]
        .open_slots
        .push(format!("[100->-{}]", id(0)));
    obs[0].nodes[0]
        .open_slots
        .push(format!("[100-<-{}]", id(6)));
    let p = plan_draining(&nodes, &layout, &obs, Some(6)).unwrap();
    assert_eq!(p.decision, Decision::Drain);
    let described: Vec<String> = p.steps.iter().map(|s| s.describe(&nodes)).collect();
    assert!(
        described
            .iter()
            .any(|d| d.starts_with("slot 100 ") && d.ends_with("redis-app-6 → redis-app-0")),
        "{described:?}"
    );
    // An open slot toward another pair is not the drain's: refused.
    obs[0].nodes[0].open_slots.clear();
    obs[6].nodes[6].open_slots.clear();
    obs[1].nodes[1]
        .open_slots
        .push(format!("[6827->-{}]", id(2)));
    let err = plan_draining(&nodes, &layout, &obs, Some(6)).unwrap_err();
    assert!(err.contains("not a move of this drain"), "{err}");
}
