//! *replace*: a pod that lost its volume comes back empty with a new node ID; and the re-runs of an
//! interrupted replace, and the refusals when data would be lost.

use super::*;

/// The new node ID of the pod that lost its volume.
fn new_id() -> String {
    "e".repeat(40)
}

/// A formed cluster (`masters`, `slots` as in [`cluster`]) where pod `pod` came back empty and
/// alone with [`new_id`], every other node flagging its old ID `fail`.
fn lost(masters: &[Option<usize>], slots: &[&str], pod: usize) -> Vec<Observation> {
    let mut obs = cluster(masters, slots, here);
    for o in obs.iter_mut() {
        for l in o.nodes.iter_mut().filter(|l| l.id == id(pod)) {
            l.flags.fail = true;
            l.connected = false;
        }
    }
    let mut new = alone(pod, "", 0, 0);
    new.id = new_id();
    new.nodes[0].id = new_id();
    obs[pod] = new;
    obs
}

/// The FORGETs of pod `pod`'s old ID, on `on`.
fn forgets(pod: usize, on: &[usize]) -> Vec<Step> {
    on.iter()
        .map(|&node| Step::Forget { node, id: id(pod) })
        .collect()
}

fn replicate(node: usize, master: usize) -> Step {
    Step::Replicate {
        node,
        master,
        master_id: id(master),
    }
}

#[test]
fn a_replica_that_lost_its_volume_is_forgotten_met_and_replicates_again() {
    let (nodes, layout) = six();
    let p = plan(&nodes, &layout, &lost(&PAIRS, &SIX, 4)).unwrap();
    assert_eq!(p.decision, Decision::Replace);
    let mut want = forgets(4, &[0, 1, 2, 3, 5]);
    want.push(Step::Meet { node: 1, peer: 4 });
    want.push(Step::Replicate {
        node: 4,
        master: 1,
        master_id: id(1),
    });
    assert_eq!(p.steps, want);
    assert!(p.notes[0].contains("redis-app-4"), "{:?}", p.notes);
}

#[test]
fn a_lost_master_whose_replica_was_promoted_comes_back_as_the_promoted_nodes_replica() {
    let (nodes, layout) = six();
    // Pod 3 took over pod 0's slots; pod 0, a replica of 3 in every view, lost its volume.
    let masters = [Some(3), None, None, None, Some(1), Some(2)];
    let slots = ["", "5461-10922", "10923-16383", "0-5460", "", ""];
    let p = plan(&nodes, &layout, &lost(&masters, &slots, 0)).unwrap();
    assert_eq!(p.decision, Decision::Replace);
    let mut want = forgets(0, &[1, 2, 3, 4, 5]);
    want.push(Step::Meet { node: 3, peer: 0 });
    want.push(replicate(0, 3));
    assert_eq!(p.steps, want);
}

#[test]
fn a_rerun_after_some_forgets_forgets_on_the_rest_only() {
    let (nodes, layout) = six();
    let mut obs = lost(&PAIRS, &SIX, 4);
    for o in &mut obs[..2] {
        o.nodes.retain(|l| l.id != id(4));
    }
    let p = plan(&nodes, &layout, &obs).unwrap();
    assert_eq!(p.decision, Decision::Replace);
    let mut want = forgets(4, &[2, 3, 5]);
    want.push(Step::Meet { node: 1, peer: 4 });
    want.push(replicate(4, 1));
    assert_eq!(p.steps, want);
}

#[test]
fn a_rerun_after_every_forget_meets_and_replicates() {
    let (nodes, layout) = six();
    let masters = [Some(3), None, None, None, Some(1), Some(2)];
    let slots = ["", "5461-10922", "10923-16383", "0-5460", "", ""];
    let mut obs = lost(&masters, &slots, 0);
    for o in &mut obs {
        o.nodes.retain(|l| l.id != id(0));
    }
    let p = plan(&nodes, &layout, &obs).unwrap();
    assert_eq!(p.decision, Decision::Replace);
    assert_eq!(p.steps, [Step::Meet { node: 3, peer: 0 }, replicate(0, 3)]);
}

#[test]
fn a_rerun_after_the_meet_only_replicates() {
    let (nodes, layout) = six();
    // Every FORGET and the MEET ran: pod 0 is a master without slots that everyone knows.
    let masters = [None, None, None, None, Some(1), Some(2)];
    let slots = ["", "5461-10922", "10923-16383", "0-5460", "", ""];
    let p = plan(&nodes, &layout, &cluster(&masters, &slots, here)).unwrap();
    assert_eq!(p.decision, Decision::Replace);
    assert_eq!(p.steps, [replicate(0, 3)]);
    // Without a failover the same state is a subset of the plan: *partial* finishes it alike.
    let masters = [None, None, None, Some(0), None, Some(2)];
    let p = plan(&nodes, &layout, &cluster(&masters, &SIX, here)).unwrap();
    assert_eq!(p.steps, [replicate(4, 1)]);
}

/// The two forms a node announces its pod in: the pod name (the base) and the pod under the
/// domain clients outside Kubernetes use (components/external-access).
const ANNOUNCED_FORMS: [&str; 2] = ["", ".redis.example.com"];

#[test]
fn the_announced_hostname_must_be_the_empty_pods() {
    let (nodes, layout) = six();
    for domain in ANNOUNCED_FORMS {
        let named = |pod: &str| {
            let mut obs = lost(&PAIRS, &SIX, 4);
            for o in &mut obs {
                for l in o.nodes.iter_mut().filter(|l| l.id == id(4)) {
                    l.hostname = Some(format!("{pod}{domain}"));
                }
            }
            obs
        };
        let p = plan(&nodes, &layout, &named("redis-app-4")).unwrap();
        assert_eq!(p.decision, Decision::Replace, "{domain}");
        assert_refused(
            &named("redis-app-9"),
            &["redis-app-9", "redis-app-4", &id(4)],
        );
    }
}

/// Pod 0, a master, lost its volume; every node flags its old ID `fail`, and it still owns
/// 0-5460.
fn lost_master() -> Vec<Observation> {
    let mut obs = lost(&PAIRS, &SIX, 0);
    for o in &mut obs {
        for l in o.nodes.iter_mut().filter(|l| l.id == id(0)) {
            l.hostname = Some("redis-app-0".into());
        }
    }
    obs
}

#[test]
fn a_lost_master_whose_replica_is_about_to_take_over_is_waited_for() {
    let (nodes, layout) = six();
    let p = plan(&nodes, &layout, &lost_master()).unwrap();
    assert_eq!(p.decision, Decision::Waiting, "{p:?}");
    assert!(p.steps.is_empty());
    let why = p.notes.join(" ");
    assert!(
        why.contains(&id(0)) && why.contains("redis-app-3") && why.contains("failover"),
        "{why}"
    );
}

/// Pod 3 was just promoted: it claims 0-5460 in its own view, the others still give them to the
/// failed ID. Not lost: waited for until every node has learnt it.
#[test]
fn a_lost_masters_slots_claimed_by_its_promoted_replica_are_waited_for() {
    let (nodes, layout) = six();
    let mut obs = lost_master();
    let me = obs[3].nodes.iter_mut().find(|l| l.flags.myself).unwrap();
    me.flags.replica = false;
    me.flags.master = true;
    me.master_id = None;
    me.slots = vec![0..=5460];
    let p = plan(&nodes, &layout, &obs).unwrap();
    assert_eq!(p.decision, Decision::Waiting, "{p:?}");
    let why = p.notes.join(" ");
    assert!(why.contains("claimed by redis-app-3"), "{why}");
    // Claiming part of them is not enough.
    let me = obs[3].nodes.iter_mut().find(|l| l.flags.myself).unwrap();
    me.slots = vec![0..=100];
    assert!(plan(&nodes, &layout, &obs).is_err());
}

#[test]
fn refuses_a_lost_node_that_still_owns_slots() {
    // No pod replicates it any more (pod 3 follows pod 1 now): 0-5460 are gone.
    let mut obs = lost_master();
    for o in &mut obs {
        for l in o.nodes.iter_mut().filter(|l| l.id == id(3)) {
            l.master_id = Some(id(1));
        }
    }
    assert_refused(
        &obs,
        &[
            &id(0),
            "pod redis-app-0",
            "0-5460",
            "backup",
            "redis-cli --cluster fix",
        ],
    );
}

#[test]
fn refuses_two_lost_nodes() {
    let mut obs = lost(&PAIRS, &SIX, 4);
    for o in obs.iter_mut() {
        for l in o.nodes.iter_mut().filter(|l| l.id == id(5)) {
            l.flags.fail = true;
        }
    }
    let mut new = alone(5, "", 0, 0);
    new.id = "d".repeat(40);
    new.nodes[0].id = new.id.clone();
    obs[5] = new;
    assert_refused(&obs, &["2 nodes are lost", &id(4), &id(5)]);
}

#[test]
fn refuses_an_empty_node_that_holds_keys() {
    let mut obs = lost(&PAIRS, &SIX, 4);
    obs[4].keys = 7;
    assert_refused(&obs, &["redis-app-4", "7 key"]);
}

#[test]
fn waits_until_every_node_agrees_the_lost_node_failed() {
    let (nodes, layout) = six();
    let mut obs = lost(&PAIRS, &SIX, 4);
    let l = obs[0].nodes.iter_mut().find(|l| l.id == id(4)).unwrap();
    (l.flags.fail, l.flags.pfail) = (false, true);
    let p = plan(&nodes, &layout, &obs).unwrap();
    assert_eq!(p.decision, Decision::Waiting, "{p:?}");
    assert!(p.steps.is_empty(), "{p:?}");
    let why = p.notes.join(" ");
    assert!(why.contains(&id(4)) && why.contains("4 of the 5"), "{why}");
}

#[test]
fn a_stranger_that_is_alive_is_still_another_clusters_node() {
    let mut obs = lost(&PAIRS, &SIX, 4);
    obs[2].nodes[5].id = "f".repeat(40);
    assert_refused(&obs, &["not one of the 6 nodes", "another cluster"]);
}

/// A dead peer's link shows `connected` for an instant while Redis reconnects: once this run has
/// seen the ID gone, it stays gone (the wait goes on rather than refusing another cluster's node).
#[test]
fn an_id_seen_gone_once_stays_gone_for_the_run() {
    let (nodes, layout) = six();
    let mut obs = lost(&PAIRS, &SIX, 4);
    for o in obs.iter_mut() {
        for l in o.nodes.iter_mut().filter(|l| l.id == id(4)) {
            l.flags.fail = false;
        }
    }
    let departed = crate::plan::departed(&nodes, &obs);
    assert!(departed.contains(&id(4)), "{departed:?}");
    obs[1]
        .nodes
        .iter_mut()
        .find(|l| l.id == id(4))
        .unwrap()
        .connected = true;
    assert!(
        plan(&nodes, &layout, &obs)
            .unwrap_err()
            .contains("another cluster")
    );
    let p = plan_remembering(&nodes, &layout, &obs, None, &departed).unwrap();
    assert_eq!(p.decision, Decision::Waiting, "{p:?}");
}

/// In Kubernetes the old ID announces the pod's name, now served by the new ID: gone, whatever
/// its link shows.
#[test]
fn an_old_id_announcing_a_pod_that_has_a_new_id_is_gone() {
    let (nodes, layout) = six();
    for domain in ANNOUNCED_FORMS {
        let mut obs = lost(&PAIRS, &SIX, 4);
        for o in obs.iter_mut() {
            for l in o.nodes.iter_mut().filter(|l| l.id == id(4)) {
                (l.flags.fail, l.connected) = (false, true);
                l.hostname = Some(format!("redis-app-4{domain}"));
            }
        }
        let p = plan(&nodes, &layout, &obs).unwrap();
        assert_eq!(p.decision, Decision::Waiting, "{domain}: {p:?}");
    }
}
