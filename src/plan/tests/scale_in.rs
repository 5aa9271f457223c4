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

/// Right after the StatefulSet shrank, while pods 6 and 7 are still shutting down: the others
/// still reach them. They announce this StatefulSet's pod names beyond the six: *waiting*. The
/// same IDs without those names could be another cluster's live nodes: refused.
#[test]
fn removed_pods_still_shutting_down_are_waited_for() {
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
    // The pod names as announced by the base, and under components/external-access's domain.
    for domain in ["", ".redis.example.com"] {
        let mut obs = cluster(&masters, &slots, here);
        obs.truncate(6);
        let why = plan(&nodes, &layout, &obs).unwrap_err();
        assert!(why.contains("another cluster"), "{why}");

        for o in &mut obs {
            for line in o.nodes.iter_mut() {
                line.hostname = Some(format!(
                    "redis-app-{}{domain}",
                    usize::from_str_radix(&line.id, 16).unwrap() - 1
                ));
            }
        }
        let p = plan(&nodes, &layout, &obs).unwrap();
        assert_eq!(p.decision, Decision::Waiting, "{domain}: {p:?}");
        assert!(p.steps.is_empty());
        let why = p.notes.join(" ");
        assert!(why.contains(&id(6)) && why.contains(&id(7)), "{why}");

        // A name of another set is no pod of ours: a live node of another cluster.
        for o in &mut obs {
            for line in o.nodes.iter_mut().filter(|l| l.id == id(6)) {
                line.hostname = Some(format!("other-app-6{domain}"));
            }
        }
        let why = plan(&nodes, &layout, &obs).unwrap_err();
        assert!(why.contains("another cluster"), "{domain}: {why}");
    }
}
