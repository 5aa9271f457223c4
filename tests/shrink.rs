//! Scale-in on real nodes: the StatefulSet shrinks 8 → 6 (R = 1). With the drain
//! (`BOOTSTRAP_DRAIN_TO=6`) the highest shard's slots move away first, the pods are then removed,
//! and the next run, started at once, waits until every node flags them `fail` and forgets their
//! node IDs: no key lost. Without the drain the removed master's
//! slots are lost: refused (exit 3), naming them, nothing sent. A replica that stalls while the
//! drain moves slots (a slow disk) is waited for, not reported unreachable.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::*;

const KEYS: usize = 5_000;

/// Six nodes formed with keys, grown to eight (pods 6 and 7 are a shard of their own, as a grow
/// leaves them).
///
/// The replicas never fail over on their own (`cluster-replica-no-failover`): on a machine loaded
/// by the whole suite, a master busy with the grow's moves could miss the tests' 2 s node timeout,
/// its replica take over, and the old master, once back, follow whichever node took its last
/// slot (`cluster-allow-replica-migration`): one master with two replicas, one with none, and
/// every later assertion about who masters what off by one failover. The repair of such a layout
/// is tested in tests/repair.rs; here the test is about the drain and the shrink.
fn grown_to_eight(block: u8, rt: &tokio::runtime::Runtime) -> Vec<RedisNode> {
    let options = Options {
        extra: vec!["--cluster-replica-no-failover".into(), "yes".into()],
        ..Options::default()
    };
    let mut nodes = formed_with_keys_with(block, KEYS, rt, &options);
    nodes.extend((6..8).map(|i| RedisNode::start(&ip(block, i), &options)));
    let grow = run_static(&nodes);
    assert_eq!(grow.code, 0, "{grow:?}");
    assert!(grow.stdout.contains("decision=grow"), "{grow:?}");
    wait_replicated(&nodes);
    nodes
}

/// Runs the binary on `nodes` with `BOOTSTRAP_DRAIN_TO`.
fn drain(nodes: &[RedisNode], to: &str) -> Run {
    let list = node_list(nodes);
    bootstrap(&[
        ("BOOTSTRAP_NODES", list.as_str()),
        ("BOOTSTRAP_READY_TIMEOUT", "10s"),
        ("BOOTSTRAP_CONVERGE_TIMEOUT", "60s"),
        ("BOOTSTRAP_DRAIN_TO", to),
    ])
}

/// Every master's slot count by its own account, pod order.
fn slot_counts(nodes: &[RedisNode]) -> Vec<usize> {
    own_roles(nodes)
        .into_iter()
        .filter(|(_, role, _, _)| role == "master")
        .map(|(_, _, _, slots)| {
            slots
                .split_whitespace()
                .map(|r| match r.split_once('-') {
                    Some((a, b)) => b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1,
                    None => 1,
                })
                .sum()
        })
        .collect()
}

/// SIGKILLs pods 6 and 7 ("the StatefulSet shrinks") and waits until pods 0–5 flag them `fail`.
fn remove_pods_6_and_7(nodes: &mut Vec<RedisNode>) -> Vec<String> {
    let removed: Vec<String> = nodes[6..].iter().map(RedisNode::id).collect();
    nodes.truncate(6);
    let kept: Vec<&RedisNode> = nodes.iter().collect();
    for id in &removed {
        wait_failed(&kept, id);
    }
    removed
}

#[test]
fn drained_then_shrunk_8_to_6_loses_no_key() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut nodes = grown_to_eight(190, &rt);

    // A dry run prints every move and sends nothing.
    reset_stats(&nodes);
    let list = node_list(&nodes);
    let dry = bootstrap(&[
        ("BOOTSTRAP_NODES", list.as_str()),
        ("BOOTSTRAP_DRAIN_TO", "6"),
        ("BOOTSTRAP_DRY_RUN", "true"),
    ]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(
        dry.stdout
            .contains("would run slot 0-1364 5461: node-6 → node-0"),
        "{dry:?}"
    );
    assert_no_writes(&nodes);

    let drained = drain(&nodes, "6");
    assert_eq!(drained.code, 0, "{drained:?}");
    assert!(drained.stdout.contains("decision=drain"), "{drained:?}");
    assert!(
        drained.stderr.contains("now scale the StatefulSet to 6"),
        "{drained:?}"
    );
    let counts = slot_counts(&nodes);
    // Pod 6 may stay an empty master, or follow the master that took its last slot (Redis's
    // `cluster-allow-replica-migration`): either way it holds no slot.
    let kept: Vec<usize> = counts.iter().copied().filter(|&c| c > 0).collect();
    assert_eq!(kept.len(), 3, "{counts:?}");
    assert!(kept.iter().all(|c| (5461..=5462).contains(c)), "{counts:?}");
    for pod in [6, 7] {
        assert_eq!(own_roles(&nodes)[pod].3, "", "pod {pod} holds slots");
    }
    assert_eq!(rt.block_on(read_keys(&nodes, KEYS)), KEYS);

    // Drained: the next run with the target still set changes nothing.
    reset_stats(&nodes);
    let again = drain(&nodes, "6");
    assert_eq!(again.code, 0, "{again:?}");
    assert!(
        again.stdout.contains("decision=drain") && again.stdout.contains("steps=0"),
        "{again:?}"
    );
    assert_no_writes(&nodes);

    // The StatefulSet shrinks and the next run starts at once, before any node suspects the
    // removed pods: it waits until every node flags them `fail`, then forgets them everywhere.
    let removed: Vec<String> = nodes[6..].iter().map(RedisNode::id).collect();
    nodes.truncate(6);
    let shrunk = drain(&nodes, "6");
    assert_eq!(shrunk.code, 0, "{shrunk:?}");
    assert!(
        shrunk.stderr.contains("not yet flagged fail by every node"),
        "{shrunk:?}"
    );
    assert!(shrunk.stdout.contains("decision=shrink"), "{shrunk:?}");
    assert!(shrunk.stderr.contains("has no effect"), "{shrunk:?}");
    for n in &nodes {
        let view = n.cli(&["cluster", "nodes"]);
        for id in &removed {
            assert!(
                !view.contains(id.as_str()),
                "{} still knows {id}:\n{view}",
                n.addr
            );
        }
    }
    let (ok, text) = cluster_check(&nodes[0]);
    assert!(ok, "{text}");
    assert_eq!(rt.block_on(read_keys(&nodes, KEYS)), KEYS);
    // Past Redis's 60 s ban the forgotten IDs would come back through gossip if any node had kept
    // them: wait a few node timeouts and check again, then a run is a strict no-op.
    std::thread::sleep(Duration::from_millis(2 * u64::from(NODE_TIMEOUT_MS)));
    assert_next_run_is_a_no_op(&nodes);
}

#[test]
fn a_shrink_without_the_drain_is_refused_naming_the_lost_slots() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut nodes = grown_to_eight(191, &rt);
    let lost_slots = own_roles(&nodes)[6].3.clone();
    assert!(!lost_slots.is_empty());
    let lost_id = nodes[6].id();
    remove_pods_6_and_7(&mut nodes);

    reset_stats(&nodes);
    let run = run_static(&nodes);
    assert_eq!(run.code, 3, "{run:?}");
    let first = lost_slots.split_whitespace().next().unwrap();
    assert!(run.stderr.contains(first), "{first} in {run:?}");
    assert!(run.stderr.contains(&lost_id), "{run:?}");
    assert!(run.stderr.contains("BOOTSTRAP_DRAIN_TO=6"), "{run:?}");
    assert!(run.stderr.contains("--cluster fix"), "{run:?}");
    assert_no_writes(&nodes);
}

/// Pod 7 (the drained master's replica) stops answering as the drain starts moving slots and
/// stays frozen for longer than a command's timeout after the last slot has moved: the drain
/// waits for it to answer again instead of failing a run whose changes are all made.
///
/// Redis only: Valkey 8 replicates each `CLUSTER SETSLOT` to the master's replicas and waits for
/// their acknowledgement, so there a frozen replica stalls the move itself (the run stops with
/// the slot open, and the next run finishes it, as after a SIGKILL).
#[test]
fn a_replica_stalled_during_the_drain_is_waited_for() {
    if Server::under_test() == Server::Valkey {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let nodes = grown_to_eight(166, &rt);
    let list = node_list(&nodes);
    let mut child = bootstrap_command(&[
        ("BOOTSTRAP_NODES", list.as_str()),
        ("BOOTSTRAP_READY_TIMEOUT", "10s"),
        ("BOOTSTRAP_CONVERGE_TIMEOUT", "60s"),
        ("BOOTSTRAP_DRAIN_TO", "6"),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut log = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        // Every node has been read; the moves send nothing to a replica.
        if line.contains("plan done") {
            nodes[7].pause();
        }
        // The last slot has moved: the run reads every node once more, pod 7 among them.
        if line.contains("moved 4096 slot(s)") {
            std::thread::sleep(Duration::from_secs(6));
            nodes[7].resume();
        }
        log.push(line);
    }
    let status = child.wait().unwrap();
    nodes[7].resume();
    let log = log.join("\n");
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("now scale the StatefulSet to 6"), "{log}");
    for pod in [6, 7] {
        assert_eq!(own_roles(&nodes)[pod].3, "", "pod {pod} holds slots");
    }
    assert_eq!(rt.block_on(read_keys(&nodes, KEYS)), KEYS);
}
