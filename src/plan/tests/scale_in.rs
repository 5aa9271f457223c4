//! Scale-in beyond the drain and shrink files: a drain target left set while the StatefulSet grows
//! again, and a shrink interrupted between its FORGETs.

use super::*;

#[test]
fn new_pods_beyond_a_target_left_set_are_refused_not_drained() {
    let (nodes, layout) = (pods(8), Layout::new(8, 1).unwrap());
    let mut obs = cluster(&PAIRS, &SIX, here);
    obs.extend((6..8).map(|i| alone(i, "", 0, 0)));
    let why = plan_draining(&nodes, &layout, &obs, Some(6)).unwrap_err();
    assert!(
        why.contains("redis-app-6") && why.contains("remove the variable"),
        "{why}"
    );
}

#[test]
fn a_shrink_rerun_after_some_forgets_forgets_on_the_rest_only() {
    let (nodes, layout) = six();
    // Pods 6 and 7 were drained (Redis made them replicas of pod 0), then removed.
    let masters = [
        None,
        None,
        None,
        Some(0),
        Some(1),
        Some(2),
        Some(0),
        Some(0),
    ];
    let slots = ["0-5460", "5461-10922", "10923-16383", "", "", "", "", ""];
    let mut obs = removed(cluster(&masters, &slots, here), 6);
    // The first run forgot both on pods 0–3, then stopped.
    for o in &mut obs[..4] {
        o.nodes.retain(|l| l.id != id(6) && l.id != id(7));
    }
    let p = plan(&nodes, &layout, &obs).unwrap();
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
    assert_eq!(forgets, [(4, id(6)), (4, id(7)), (5, id(6)), (5, id(7))]);
}

/// Right after the StatefulSet shrank, before the cluster-node-timeout, the others still see the
/// removed pods alive: refused, but the message says to run again rather than only blaming
/// another cluster.
#[test]
fn removed_pods_not_yet_noticed_are_refused_with_a_wait() {
    let (nodes, layout) = six();
    let masters = [
        None,
        None,
        None,
        Some(0),
        Some(1),
        Some(2),
        Some(0),
        Some(0),
    ];
    let slots = ["0-5460", "5461-10922", "10923-16383", "", "", "", "", ""];
    let mut obs = cluster(&masters, &slots, here);
    obs.truncate(6);
    let why = plan(&nodes, &layout, &obs).unwrap_err();
    assert!(
        why.contains("just shrank") && why.contains("run again after cluster-node-timeout"),
        "{why}"
    );
}
