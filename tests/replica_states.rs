//! What a replica shows of itself, on real nodes, one cluster of six for every check:
//!
//! - a replica left with a slot open that its master never opened (Valkey replicates `CLUSTER
//!   SETSLOT` to a master's replicas before the master applies it; a master answering
//!   `NOREPLICAS` keeps its old state while the replica keeps the new one) is cleared by the next
//!   run, a *repair*: `CLUSTER SETSLOT <slot> STABLE` on its master, nothing else; a slot really
//!   being moved (open on both masters) is never touched: refused, as before. Redis 7.0 does not
//!   replicate `SETSLOT`: its replicas never show the stale state, and the run leaves Redis alone;
//! - the pod's readiness probe (`ready`) reads a master and a synced replica in one round trip
//!   (`INFO` and `CLUSTER INFO`, counted in `INFO commandstats`), and reads the view (`CLUSTER
//!   NODES`) only for a replica whose link to its master is down.

mod common;

use std::time::Duration;

use common::*;

/// The cluster's block: 127.34.1.0/24 (tests/common/BLOCKS.md).
fn ip34(index: usize) -> String {
    format!("127.34.1.{}", 11 + index)
}

/// Each node's own open slots (`[42-<-<id>]`, `[42->-<id>]`), pod order.
fn open_slots(nodes: &[RedisNode]) -> Vec<Vec<String>> {
    own_roles(nodes)
        .into_iter()
        .map(|(_, _, _, slots)| {
            slots
                .split_whitespace()
                .filter(|s| s.starts_with('['))
                .map(str::to_string)
                .collect()
        })
        .collect()
}

/// `calls=` of each command in a node's `INFO commandstats` (0 when never called), read once:
/// each read is an `INFO` of its own, counted from the next read on.
fn calls(node: &RedisNode, commands: &[&str]) -> Vec<u64> {
    let stats = node.cli(&["info", "commandstats"]);
    commands
        .iter()
        .map(|command| {
            let prefix = format!("cmdstat_{command}:calls=");
            stats
                .lines()
                .find_map(|l| l.trim().strip_prefix(&prefix))
                .and_then(|rest| rest.split(',').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        })
        .collect()
}

/// Runs `ready` for one node, as its pod does.
fn ready(node: &RedisNode) -> Run {
    run_binary(&["ready"], &[("BOOTSTRAP_NODES", &node.host_port())])
}

#[test]
fn a_replicas_stale_open_slot_is_cleared_a_move_in_progress_never_and_ready_reads_once() {
    let ips: Vec<String> = (0..6).map(ip34).collect();
    let nodes: Vec<RedisNode> = std::thread::scope(|s| {
        let started: Vec<_> = ips
            .iter()
            .map(|ip| s.spawn(move || RedisNode::start(ip, &Options::default())))
            .collect();
        started.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let formed = run_static(&nodes);
    assert_eq!(formed.code, 0, "{formed:?}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(write_keys(&nodes, 1_000));
    wait_replicated(&nodes);

    // Who is who: a replica `r`, its master `b`, another master `a` whose slots move to `b`.
    let roles = own_roles(&nodes);
    let index_of = |id: &str| roles.iter().position(|(i, _, _, _)| i == id).unwrap();
    let r = roles
        .iter()
        .position(|(_, role, _, _)| role == "replica")
        .unwrap();
    let b = index_of(&roles[r].2);
    let a = (0..6).find(|&i| i != b && roles[i].1 == "master").unwrap();
    let first_of_a: u16 = roles[a]
        .3
        .split(['-', ' '])
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (moving, stale) = (first_of_a, first_of_a + 1);
    let (a_id, b_id) = (roles[a].0.clone(), roles[b].0.clone());
    let setslot = |node: &RedisNode, slot: u16, state: &[&str]| {
        let mut args = vec!["cluster", "setslot"];
        let slot = slot.to_string();
        args.push(&slot);
        args.extend_from_slice(state);
        node.cli(&args)
    };

    // The stale state, by hand: `b` imports `stale` while its replica is frozen. Valkey sends
    // the SETSLOT on to the replica, waits 2 s for it, answers NOREPLICAS and keeps no state;
    // the replica, thawed, applies it.
    nodes[r].pause();
    let answer = setslot(&nodes[b], stale, &["importing", &a_id]);
    nodes[r].resume();
    let marker = format!("[{stale}-<-{a_id}]");
    match Server::under_test() {
        Server::Valkey => {
            assert!(answer.contains("NOREPLICAS"), "{answer}");
            wait_until("the replica to apply it", Duration::from_secs(10), || {
                open_slots(&nodes)[r] == [marker.clone()]
            });
            assert_eq!(open_slots(&nodes)[b], Vec::<String>::new());
        }
        // Redis applies it on the master alone: a replica never shows an open slot. Closed by
        // hand again: nothing stale to clear.
        Server::Redis => {
            assert_eq!(answer, "OK");
            assert_eq!(open_slots(&nodes)[r], Vec::<String>::new());
            assert_eq!(setslot(&nodes[b], stale, &["stable"]), "OK");
        }
    }

    // A slot really being moved, `a` → `b`, as an operator's reshard leaves it: refused, nothing
    // sent, not even the stale slot's STABLE (a refusal changes nothing).
    assert_eq!(setslot(&nodes[b], moving, &["importing", &a_id]), "OK");
    assert_eq!(setslot(&nodes[a], moving, &["migrating", &b_id]), "OK");
    reset_stats(&nodes);
    let refused = run_static(&nodes);
    assert_eq!(refused.code, 3, "{refused:?}");
    assert!(refused.stderr.contains("open slot"), "{refused:?}");
    assert_no_writes(&nodes);
    let open = open_slots(&nodes);
    assert!(
        open[a].contains(&format!("[{moving}->-{b_id}]")),
        "{open:?}"
    );
    assert!(
        open[b].contains(&format!("[{moving}-<-{a_id}]")),
        "{open:?}"
    );
    if Server::under_test() == Server::Valkey {
        assert!(open[r].contains(&marker), "{open:?}");
    }

    // The operator cancels the move; the next run clears the stale slot, and only it.
    assert_eq!(setslot(&nodes[a], moving, &["stable"]), "OK");
    assert_eq!(setslot(&nodes[b], moving, &["stable"]), "OK");
    wait_until(
        "the move's states to close",
        Duration::from_secs(10),
        || open_slots(&nodes).iter().flatten().all(|m| *m == marker),
    );
    // The frozen replica may have been flagged failing meanwhile: the run clears a stale slot
    // only on a cluster that agrees.
    wait_until("no node flagged failing", Duration::from_secs(30), || {
        nodes
            .iter()
            .all(|n| !n.cli(&["cluster", "nodes"]).contains("fail"))
    });
    reset_stats(&nodes);
    let cleared = run_static(&nodes);
    assert_eq!(cleared.code, 0, "{cleared:?}");
    assert!(
        open_slots(&nodes).iter().all(Vec::is_empty),
        "{:?}",
        open_slots(&nodes)
    );
    let (ok, check) = cluster_check(&nodes[0]);
    assert!(ok, "{check}");
    match Server::under_test() {
        Server::Valkey => {
            assert!(cleared.stdout.contains("decision=repair"), "{cleared:?}");
            assert!(
                cleared
                    .stderr
                    .contains(&format!("CLUSTER SETSLOT {stale} STABLE")),
                "{cleared:?}"
            );
            // STABLE on the master (its replica runs it from the replication stream), and on
            // no other node; no other change anywhere.
            for (i, n) in nodes.iter().enumerate() {
                for (w, sent) in WRITES.iter().zip(calls(n, &WRITES)) {
                    let stable = *w == "cluster|setslot" && (i == b || i == r);
                    assert!(sent == 0 || stable, "node {i} got {w} {sent} time(s)");
                }
            }
            assert!(calls(&nodes[b], &["cluster|setslot"])[0] >= 1);
        }
        Server::Redis => {
            assert!(cleared.stdout.contains("decision=formed"), "{cleared:?}");
            assert_no_writes(&nodes);
        }
    }
    assert_next_run_is_a_no_op(&nodes);
    assert_eq!(rt.block_on(read_keys(&nodes, 1_000)), 1_000);

    // `ready` on a master and on a synced replica: INFO and CLUSTER INFO in one pipeline, after
    // the connection's PING; no view.
    for i in [b, r] {
        reset_stats(&nodes);
        let run = ready(&nodes[i]);
        assert_eq!(run.code, 0, "{run:?}");
        let counted = calls(
            &nodes[i],
            &[
                "ping",
                "info",
                "cluster|info",
                "cluster|nodes",
                "cluster|myid",
            ],
        );
        // The counting INFO itself is not counted until it has run.
        assert_eq!(counted, [1, 1, 1, 0, 0], "{}: {run:?}", nodes[i].addr);
    }
    // A replica whose link is down reads its view once more: is its master unreachable? Its
    // master is frozen so the link stays down while `ready` runs; no failover meanwhile.
    assert_eq!(
        nodes[r].cli(&["config", "set", "cluster-replica-no-failover", "yes"]),
        "OK"
    );
    nodes[b].pause();
    nodes[r].cli(&["client", "kill", "type", "master"]);
    reset_stats(&nodes[r..=r]);
    let run = ready(&nodes[r]);
    nodes[b].resume();
    assert!(
        run.stdout.contains("replica") || run.stderr.contains("replica"),
        "{run:?}"
    );
    assert_eq!(
        calls(&nodes[r], &["info", "cluster|nodes"]),
        [1, 1],
        "{run:?}"
    );
    wait_replicated(&nodes);
}
