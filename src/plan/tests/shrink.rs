//! *shrink*: after the StatefulSet shrank, the removed pods' IDs are forgotten everywhere; a shrink
//! that lost slots is refused naming them.

use super::*;

/// Pods 0–5 of an eight-node cluster whose pods 6 and 7 (a shard: 7 follows 6) were removed and
/// are flagged `fail` by everyone; pod 6 owned `slots6`.
fn shrunk(slots6: &str) -> Vec<Observation> {
    let roles = [None, None, None, Some(0), Some(1), Some(2), None, Some(6)];
    let slots = if slots6.is_empty() {
        ["0-5460", "5461-10922", "10923-16383", "", "", "", "", ""]
    } else {
        [
            "1365-5460",
            "6827-10922",
            "12288-16383",
            "",
            "",
            "",
            slots6,
            "",
        ]
    };
    removed(cluster(&roles, &slots, here), 6)
}

#[test]
fn the_removed_ids_are_forgotten_on_every_node() {
    let (nodes, layout) = six();
    let p = plan(&nodes, &layout, &shrunk("")).unwrap();
    assert_eq!(p.decision, Decision::Shrink);
    let mut forgets: Vec<(usize, String)> = p
        .steps
        .iter()
        .map(|s| match s {
            Step::Forget { node, id } => (*node, id.clone()),
            other => panic!("only FORGET: {other:?}"),
        })
        .collect();
    forgets.sort();
    let expected: Vec<(usize, String)> = (0..6).flat_map(|n| [(n, id(6)), (n, id(7))]).collect();
    assert_eq!(forgets, expected);
    // BOOTSTRAP_DRAIN_TO=6, still set after the shrink, changes nothing.
    let p = plan_draining(&nodes, &layout, &shrunk(""), Some(6)).unwrap();
    assert_eq!(p.decision, Decision::Shrink);
}

#[test]
fn a_shrink_that_lost_slots_is_refused_naming_them_and_the_way_back() {
    let (nodes, layout) = six();
    let err = plan(&nodes, &layout, &shrunk("0-1364 5461-6826 10923-12287")).unwrap_err();
    for words in [
        "0-1364",
        "10923-12287",
        "4096 slots",
        &id(6),
        "BOOTSTRAP_DRAIN_TO=6",
        "redis-cli --cluster fix",
    ] {
        assert!(err.contains(words), "{words} in {err}");
    }
    assert!(!err.contains(&id(7)), "the replica lost nothing: {err}");
}

/// Asserts the plan is *waiting*, changes nothing, and names each of `ids`.
fn assert_waiting(obs: &[Observation], ids: &[String]) {
    let (nodes, layout) = six();
    let p = plan(&nodes, &layout, obs).unwrap();
    assert_eq!(p.decision, Decision::Waiting, "{p:?}");
    assert!(p.steps.is_empty(), "{p:?}");
    let why = p.notes.join(" ");
    for id in ids {
        assert!(why.contains(id.as_str()), "{id} in {why}");
    }
    assert!(why.contains("not yet flagged fail"), "{why}");
}

#[test]
fn removed_ids_not_yet_failed_everywhere_wait() {
    let mut obs = shrunk("");
    let line = obs[2].nodes.iter_mut().find(|l| l.id == id(6)).unwrap();
    line.flags.fail = false;
    line.flags.pfail = true;
    assert_waiting(&obs, &[id(6)]);
}

/// The moment the StatefulSet shrank: the removed pods' links are down, no node suspects them yet.
#[test]
fn removed_pods_no_node_suspects_yet_wait() {
    let mut obs = shrunk("");
    for o in &mut obs {
        for line in o
            .nodes
            .iter_mut()
            .filter(|l| l.id == id(6) || l.id == id(7))
        {
            line.flags.fail = false;
        }
    }
    assert_waiting(&obs, &[id(6), id(7)]);
}

/// Waiting would not bring lost slots back: the refusal comes as soon as the nodes suspect the
/// removed master, before they agree it failed.
#[test]
fn a_shrink_that_lost_slots_is_refused_without_waiting_for_the_fail_flag() {
    let (nodes, layout) = six();
    let mut obs = shrunk("0-1364 5461-6826 10923-12287");
    for o in &mut obs {
        for line in o.nodes.iter_mut().filter(|l| l.id == id(6)) {
            (line.flags.fail, line.flags.pfail) = (false, true);
        }
    }
    let err = plan(&nodes, &layout, &obs).unwrap_err();
    assert!(err.contains("4096 slots"), "{err}");
}

#[test]
fn a_removed_id_that_some_node_sees_alive_is_no_shrink() {
    let (nodes, layout) = six();
    let mut obs = shrunk("");
    let line = obs[2].nodes.iter_mut().find(|l| l.id == id(7)).unwrap();
    line.flags.fail = false;
    line.connected = true;
    let err = plan(&nodes, &layout, &obs).unwrap_err();
    assert!(err.contains("another cluster"), "{err}");
}
