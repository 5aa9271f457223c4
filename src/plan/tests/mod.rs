//! Unit tests of the planner: one per decision and per refusal, on observations built as Redis
//! prints them.

use super::*;
use crate::layout::Role;

fn id(i: usize) -> String {
    format!("{:040x}", i + 1)
}

fn pods(n: usize) -> Vec<Node> {
    (0..n)
        .map(|i| {
            Node::new(
                format!("redis-app-{i}"),
                format!("127.0.0.{}:6379", 11 + i).parse().unwrap(),
            )
        })
        .collect()
}

fn info(master: Option<&str>, keys: u64) -> String {
    let role = match master {
        Some(addr) => {
            let (host, port) = addr.rsplit_once(':').unwrap();
            format!(
                "role:slave\r\nmaster_host:{host}\r\nmaster_port:{port}\r\nmaster_link_status:up"
            )
        }
        None => "role:master".to_string(),
    };
    format!(
        "# Replication\r\n{role}\r\n# Cluster\r\ncluster_enabled:1\r\n# Keyspace\r\ndb0:keys={keys},expires=0\r\n"
    )
}

/// A node that knows only itself, with optional slots and epoch.
fn alone(i: usize, slots: &str, epoch: u64, keys: u64) -> Observation {
    let line = format!(
        "{} :6379@16379 myself,master - 0 0 {epoch} connected {slots}",
        id(i)
    );
    let ci = format!("cluster_state:fail\r\ncluster_known_nodes:1\r\ncluster_my_epoch:{epoch}\r\n");
    Observation::parse(&info(None, keys), &id(i), &line, &ci).unwrap()
}

/// Every node's view of one cluster: `masters[j]` is `None` for a master (slots from `slots`),
/// `Some(m)` for a replica of pod m; `addr(j)` is where everyone thinks pod j is.
fn cluster(
    masters: &[Option<usize>],
    slots: &[&str],
    addr: impl Fn(usize) -> String,
) -> Vec<Observation> {
    cluster_seen(masters, slots, |j| j as u64 + 1, |_, j| Some(addr(j)))
}

/// Like [`cluster`], with config epochs per pod, and `seen(me, j)` the address at which pod `me`
/// sees pod `j` (`None`: `noaddr`). A replica's `INFO` names where its master is in its own view.
fn cluster_seen(
    masters: &[Option<usize>],
    slots: &[&str],
    epoch: impl Fn(usize) -> u64,
    seen: impl Fn(usize, usize) -> Option<String>,
) -> Vec<Observation> {
    let n = masters.len();
    (0..n)
        .map(|me| {
            let lines: Vec<String> = (0..n)
                .map(|j| {
                    let myself = if j == me { "myself," } else { "" };
                    let (role, master) = match masters[j] {
                        None => ("master", "-".to_string()),
                        Some(m) => ("slave", id(m)),
                    };
                    let (addr, noaddr) = match seen(me, j) {
                        Some(a) => (a, ""),
                        None => (":6379".to_string(), ",noaddr"),
                    };
                    format!(
                        "{} {addr}@16379 {myself}{role}{noaddr} {master} 0 0 {} connected {}",
                        id(j),
                        epoch(j),
                        slots[j]
                    )
                })
                .collect();
            let ci = format!(
                "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\ncluster_known_nodes:{n}\r\ncluster_my_epoch:{}\r\n",
                epoch(me)
            );
            let master = masters[me].and_then(|m| seen(me, m));
            Observation::parse(&info(master.as_deref(), 0), &id(me), &lines.join("\n"), &ci).unwrap()
        })
        .collect()
}

const SIX: [&str; 6] = ["0-5460", "5461-10922", "10923-16383", "", "", ""];
const PAIRS: [Option<usize>; 6] = [None, None, None, Some(0), Some(1), Some(2)];

fn here(j: usize) -> String {
    format!("127.0.0.{}:6379", 11 + j)
}

/// `CLUSTER REPLICATE` of pods 3, 4, 5 to 0, 1, 2.
fn pairs() -> Vec<Step> {
    (3..6)
        .map(|i| Step::Replicate {
            node: i,
            master: i - 3,
            master_id: id(i - 3),
        })
        .collect()
}

/// The views of pods `0..kept` after the StatefulSet removed the pods above them: every kept pod
/// flags each removed pod's ID `fail`, its link down.
fn removed(mut obs: Vec<Observation>, kept: usize) -> Vec<Observation> {
    let gone: Vec<String> = (kept..obs.len()).map(id).collect();
    obs.truncate(kept);
    for o in &mut obs {
        for line in o.nodes.iter_mut().filter(|l| gone.contains(&l.id)) {
            line.flags.fail = true;
            line.connected = false;
        }
    }
    obs
}

fn six() -> (Vec<Node>, Layout) {
    (pods(6), Layout::new(6, 1).unwrap())
}

#[test]
fn fresh_nodes_get_the_whole_plan_in_order() {
    let (nodes, layout) = six();
    let obs: Vec<Observation> = (0..6).map(|i| alone(i, "", 0, 0)).collect();
    let p = plan(&nodes, &layout, &obs).unwrap();
    assert_eq!(p.decision, Decision::Fresh);
    let adds: Vec<&Step> = p
        .steps
        .iter()
        .filter(|s| matches!(s, Step::AddSlots { .. }))
        .collect();
    assert_eq!(
        adds,
        [
            &Step::AddSlots {
                node: 0,
                slots: 0..=5460
            },
            &Step::AddSlots {
                node: 1,
                slots: 5461..=10922
            },
            &Step::AddSlots {
                node: 2,
                slots: 10923..=16383
            }
        ]
    );
    assert_eq!(
        p.steps
            .iter()
            .filter(|s| matches!(s, Step::SetEpoch { .. }))
            .count(),
        6
    );
    assert_eq!(
        p.steps
            .iter()
            .filter(|s| matches!(s, Step::Meet { .. }))
            .count(),
        12
    );
    let pairs: Vec<(usize, usize)> = p
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Replicate {
                node,
                master,
                master_id,
            } => {
                assert_eq!(master_id, &id(*master));
                Some((*node, *master))
            }
            _ => None,
        })
        .collect();
    assert_eq!(pairs, [(3, 0), (4, 1), (5, 2)]);
    // Slots first (they start Redis's clock), epochs before any MEET, replicas last.
    let kinds: Vec<u8> = p
        .steps
        .iter()
        .map(|s| match s {
            Step::AddSlots { .. } => 0,
            Step::SetEpoch { .. } => 1,
            Step::Meet { .. } => 2,
            Step::Replicate { .. } => 3,
            Step::Forget { .. } => 4,
            Step::CopyFunctions { .. } | Step::MoveSlots { .. } => 5,
            Step::Failover { .. } | Step::Stabilize { .. } => 6,
        })
        .collect();
    assert!(kinds.is_sorted(), "{kinds:?}");
}

/// Fresh nodes meet the three seeds (the first masters) and each replica its own master: at most
/// 4 MEETs per node however large N grows, and no replica waits for gossip to find its master.
#[test]
fn fresh_nodes_meet_three_seeds_and_replicas_their_master() {
    let nodes = pods(200);
    let layout = Layout::new(200, 1).unwrap();
    let obs: Vec<Observation> = (0..200).map(|i| alone(i, "", 0, 0)).collect();
    let p = plan(&nodes, &layout, &obs).unwrap();
    let meets: Vec<(usize, usize)> = p
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Meet { node, peer } => Some((*node, *peer)),
            _ => None,
        })
        .collect();
    assert!(meets.len() <= 4 * 200, "{}", meets.len());
    for node in 1..200 {
        let met: Vec<usize> = meets
            .iter()
            .filter(|(n, _)| *n == node)
            .map(|(_, peer)| *peer)
            .collect();
        for seed in 0..3.min(node) {
            assert!(
                met.contains(&seed),
                "pod {node} should meet seed {seed}: {met:?}"
            );
        }
        if let Role::Replica(master) = layout.role(node) {
            assert_eq!(met[0], master, "pod {node} should meet its master first");
        }
    }
}

#[test]
fn an_agreed_cluster_is_formed_with_nothing_to_do() {
    let (nodes, layout) = six();
    let p = plan(&nodes, &layout, &cluster(&PAIRS, &SIX, here)).unwrap();
    assert_eq!(
        p,
        Plan {
            decision: Decision::Formed,
            steps: vec![],
            notes: vec![]
        }
    );
}

#[test]
fn a_failed_over_cluster_is_still_formed() {
    let (nodes, layout) = six();
    // Pod 3 took over pod 0's slots; pod 0 came back as its replica.
    let masters = [Some(3), None, None, None, Some(1), Some(2)];
    let slots = ["", "5461-10922", "10923-16383", "0-5460", "", ""];
    let p = plan(&nodes, &layout, &cluster(&masters, &slots, here)).unwrap();
    assert_eq!(p.decision, Decision::Formed);
}

#[test]
fn nodes_all_on_new_addresses_are_met_pair_by_pair_in_one_round() {
    let (nodes, layout) = six();
    let old = |j: usize| format!("127.0.1.{}:6379", 11 + j);
    let p = plan(&nodes, &layout, &cluster(&PAIRS, &SIX, old)).unwrap();
    assert_eq!(p.decision, Decision::Reconnect);
    // Every node holds every other at a dead address: each pair is met once (waiting for gossip
    // would take until the nodes flag each other failing), every node receives a MEET (it learns
    // its own new address only so), and the handshakes are spread over the nodes.
    let meets: Vec<(usize, usize)> = p
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Meet { node, peer } => Some((*node, *peer)),
            _ => None,
        })
        .collect();
    assert_eq!(meets.len(), 15, "{meets:?}");
    for a in 0..6 {
        for b in (a + 1)..6 {
            assert!(
                meets.contains(&(a, b)) || meets.contains(&(b, a)),
                "{a}-{b}: {meets:?}"
            );
        }
        assert!(
            meets.iter().any(|m| m.1 == a),
            "{a} receives none: {meets:?}"
        );
        let sent = meets.iter().filter(|m| m.0 == a).count();
        assert!(sent <= 3, "{a} sends {sent}: {meets:?}");
    }
    // Replicas still pull from their master's old address: re-pointed to the same master, after
    // the MEETs; nothing else (no slots, no epochs, no new roles).
    let rest: Vec<&Step> = p
        .steps
        .iter()
        .filter(|s| !matches!(s, Step::Meet { .. }))
        .collect();
    assert_eq!(rest, pairs().iter().collect::<Vec<_>>());
}

#[test]
fn slots_and_epochs_already_set_are_not_set_again() {
    let (nodes, layout) = six();
    let obs: Vec<Observation> = (0..6).map(|i| alone(i, SIX[i], i as u64 + 1, 0)).collect();
    let p = plan(&nodes, &layout, &obs).unwrap();
    assert_eq!(p.decision, Decision::Partial);
    assert!(
        !p.steps
            .iter()
            .any(|s| matches!(s, Step::AddSlots { .. } | Step::SetEpoch { .. }))
    );
    assert_eq!(
        p.steps
            .iter()
            .filter(|s| matches!(s, Step::Replicate { .. }))
            .count(),
        3
    );
}

#[test]
fn a_met_cluster_without_replicas_only_needs_replicate() {
    let (nodes, layout) = six();
    let masters = [None; 6];
    let p = plan(&nodes, &layout, &cluster(&masters, &SIX, here)).unwrap();
    assert_eq!(p.decision, Decision::Partial);
    assert_eq!(p.steps, pairs());
}

/// Six fresh nodes.
fn fresh() -> Vec<Observation> {
    (0..6).map(|i| alone(i, "", 0, 0)).collect()
}

/// Plans six pods from `obs` and asserts a refusal that says each of `words`.
fn assert_refused(obs: &[Observation], words: &[&str]) {
    let (nodes, layout) = six();
    let why = plan(&nodes, &layout, obs).unwrap_err();
    for word in words {
        assert!(why.contains(word), "refusal lacks {word:?}: {why}");
    }
}

#[test]
fn refuses_cluster_mode_off() {
    let mut obs = fresh();
    obs[4] = Observation::standalone("cluster_enabled:0\r\n");
    assert_refused(&obs, &["redis-app-4", "cluster-enabled yes"]);
}

#[test]
fn refuses_a_lone_node_with_keys() {
    let mut obs = fresh();
    obs[1] = alone(1, "", 0, 42);
    assert_refused(&obs, &["redis-app-1", "42 key"]);
}

#[test]
fn refuses_two_clusters() {
    let (nodes, layout) = six();
    let a = cluster(
        &[None, None, None],
        &["0-5460", "5461-10922", "10923-16383"],
        here,
    );
    let b = cluster(
        &[None, None, None],
        &["0-5460", "5461-10922", "10923-16383"],
        |j| here(j + 3),
    );
    // Rename b's IDs so they differ from a's.
    let b: Vec<Observation> = b
        .into_iter()
        .map(|mut o| {
            o.id = format!("b{}", &o.id[1..]);
            for l in &mut o.nodes {
                l.id = format!("b{}", &l.id[1..]);
            }
            o
        })
        .collect();
    let obs: Vec<Observation> = a.into_iter().chain(b).collect();
    let why = plan(&nodes, &layout, &obs).unwrap_err();
    assert!(
        why.contains("claim slot") || why.contains("different clusters"),
        "{why}"
    );
}

#[test]
fn refuses_a_node_that_knows_a_stranger() {
    let mut obs = cluster(&PAIRS, &SIX, here);
    obs[2].nodes[5].id = "f".repeat(40);
    assert_refused(&obs, &["redis-app-2", "another cluster"]);
}

#[test]
fn refuses_open_slots() {
    let mut obs = cluster(&PAIRS, &SIX, here);
    obs[0].nodes[0].open_slots.push(format!("[93->-{}]", id(1)));
    assert_refused(&obs, &["open slot", "redis-app-0"]);
}

/// Valkey replicates `SETSLOT` to replicas; one that applied a `SETSLOT` its master never did
/// (`NOREPLICAS`) shows the slot open alone: a repair clears it on its master, never a refusal.
#[test]
fn a_replicas_stale_open_slot_is_repaired_and_a_move_in_progress_refused() {
    let layout = Layout::new(6, 1).unwrap();
    let mut obs = cluster(&PAIRS, &SIX, here);
    // Pod 4 replicates pod 1, which shows no state for slot 93.
    obs[4].nodes[4].open_slots.push(format!("[93-<-{}]", id(0)));
    let p = plan(&pods(6), &layout, &obs).unwrap();
    assert_eq!(p.decision, Decision::Repair);
    assert_eq!(
        p.steps,
        [Step::Stabilize {
            node: 1,
            replica: 4,
            slot: 93,
            marker: format!("[93-<-{}]", id(0)),
        }]
    );
    assert!(p.notes[0].contains("redis-app-4"), "{:?}", p.notes);
    assert_eq!(
        p.steps[0].describe(&pods(6)),
        format!(
            "redis-app-1 (127.0.0.12:6379): CLUSTER SETSLOT 93 STABLE (clears redis-app-4's stale [93-<-{}])",
            id(0)
        )
    );
    // Its master imports slot 93 too: a move in progress, refused as any other open slot.
    obs[1].nodes[1].open_slots.push(format!("[93-<-{}]", id(0)));
    assert_refused(&obs, &["open slot", "redis-app-1"]);
}

#[test]
fn refuses_slots_outside_the_plan() {
    let mut obs = fresh();
    obs[4] = alone(4, "0-100", 0, 0);
    assert_refused(&obs, &["redis-app-4", "outside the plan"]);
}

#[test]
fn refuses_to_turn_a_node_with_keys_into_a_replica() {
    let mut obs = cluster(&[None; 6], &SIX, here);
    obs[5].keys = 3;
    assert_refused(&obs, &["redis-app-5", "discard"]);
}

mod drain;
mod grow;
mod remesh;
mod replace;
mod scale_in;
mod shrink;

#[test]
fn a_healthy_cluster_with_replicas_not_r_per_master_is_repaired_not_waited_for() {
    // Pod 4 follows master 0 instead of master 1 (Redis's replica migration): one master with two
    // replicas, one with none, every node agreeing.
    let (nodes, layout) = six();
    let uneven = [None, None, None, Some(0), Some(0), Some(2)];
    let obs = cluster(&uneven, &SIX, here);
    let p = plan(&nodes, &layout, &obs).unwrap();
    assert_eq!(p.decision, Decision::Repair, "{p:?}");
    assert_eq!(p.steps.len(), 1, "{p:?}");
    let Step::Replicate { node, master, .. } = &p.steps[0] else {
        panic!("{p:?}");
    };
    assert!([3, 4].contains(node) && *master == 1, "{p:?}");
    // Without placement the formed guide layout needs nothing.
    let formed = cluster(&PAIRS, &SIX, here);
    let p = repair::complete(
        plan(&nodes, &layout, &formed).unwrap(),
        &nodes,
        &layout,
        &formed,
        true,
    );
    assert_eq!(p.decision, Decision::Formed, "{p:?}");
}

#[test]
fn a_formed_cluster_stacked_by_shard_is_repaired_unless_turned_off() {
    // Each shard's master and replica on one Kubernetes node.
    let (mut nodes, layout) = six();
    for (i, n) in nodes.iter_mut().enumerate() {
        n.place.node = Some(format!("worker-{}", i % 3));
    }
    let obs = cluster(&PAIRS, &SIX, here);
    let formed = plan(&nodes, &layout, &obs).unwrap();
    assert_eq!(formed.decision, Decision::Formed);
    let off = repair::complete(formed.clone(), &nodes, &layout, &obs, false);
    assert_eq!(off.decision, Decision::Formed);
    let on = repair::complete(formed, &nodes, &layout, &obs, true);
    assert_eq!(on.decision, Decision::Repair, "{on:?}");
    assert_eq!(on.steps.len(), on.notes.len());
    assert!(
        on.notes
            .iter()
            .all(|n| n.starts_with("repair: redis-app-") && n.contains("(on worker-")),
        "{:?}",
        on.notes
    );
}
