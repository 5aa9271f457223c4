//! Reliability on real redis-server nodes: resuming a half-done formation at every phase
//! boundary, re-meshing after every pod moved to a new IP, accepting a failover as formed, and
//! failing in bounded time (or refusing) with the culprit named. Every dry run is checked to send
//! no write command.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::*;

fn run(nodes: &[RedisNode], extra: &[(&str, &str)]) -> Run {
    let list = node_list(nodes);
    let mut env = vec![
        ("BOOTSTRAP_NODES", list.as_str()),
        ("BOOTSTRAP_READY_TIMEOUT", "10s"),
        ("BOOTSTRAP_CONVERGE_TIMEOUT", "60s"),
    ];
    env.extend_from_slice(extra);
    bootstrap(&env)
}

/// A dry run first (no writes), then the real run: exit 0, and the planned layout exactly.
fn dry_then_finish(nodes: &[RedisNode], decision: &str) {
    reset_stats(nodes);
    let dry = run(nodes, &[("BOOTSTRAP_DRY_RUN", "true")]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(
        dry.stdout.contains(&format!("decision={decision}")),
        "{dry:?}"
    );
    assert!(dry.stdout.contains("would run"), "{dry:?}");
    assert_no_writes(nodes);
    let real = run(nodes, &[]);
    assert_eq!(real.code, 0, "{real:?}");
    assert!(
        real.stdout.contains(&format!("decision={decision}")),
        "{real:?}"
    );
    let ids: Vec<String> = nodes.iter().map(RedisNode::id).collect();
    let slots = ["0-5460", "5461-10922", "10923-16383"];
    for (i, n) in nodes.iter().enumerate() {
        let line = n.cli(&["cluster", "nodes"]);
        let me: Vec<&str> = line
            .lines()
            .find(|l| l.contains("myself"))
            .unwrap()
            .split(' ')
            .collect();
        if i < 3 {
            assert_eq!(me[8..].join(" "), slots[i], "pod {i}: {line}");
        } else {
            assert_eq!(me[3], ids[i - 3], "pod {i}: {line}");
        }
    }
    let (ok, text) = cluster_check(&nodes[0]);
    assert!(ok, "{text}");
}

fn slots_only(nodes: &[RedisNode]) {
    for (i, range) in [("0", "5460"), ("5461", "10922"), ("10923", "16383")]
        .iter()
        .enumerate()
    {
        assert_eq!(
            nodes[i].cli(&["cluster", "addslotsrange", range.0, range.1]),
            "OK"
        );
    }
}

fn epochs(nodes: &[RedisNode]) {
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(
            n.cli(&["cluster", "set-config-epoch", &(i + 1).to_string()]),
            "OK"
        );
    }
}

fn meet(from: &RedisNode, to: &RedisNode) {
    let (ip, port) = (to.addr.ip().to_string(), to.addr.port().to_string());
    assert_eq!(from.cli(&["cluster", "meet", &ip, &port]), "OK");
}

/// Killed after assigning slots: the rerun finishes the plan.
#[test]
fn resumes_after_slots_were_assigned() {
    let nodes = start_nodes(70, 6);
    slots_only(&nodes);
    dry_then_finish(&nodes, "partial");
}

/// Killed after setting epochs: no epoch is set twice, the rest is done.
#[test]
fn resumes_after_epochs_were_set() {
    let nodes = start_nodes(71, 6);
    slots_only(&nodes);
    epochs(&nodes);
    dry_then_finish(&nodes, "partial");
}

/// Killed in the middle of the MEETs: the rest of the nodes are introduced.
#[test]
fn resumes_after_some_meets() {
    let nodes = start_nodes(72, 6);
    slots_only(&nodes);
    epochs(&nodes);
    meet(&nodes[1], &nodes[0]);
    meet(&nodes[2], &nodes[0]);
    wait_until("the handshakes", Duration::from_secs(10), || {
        nodes[0]
            .cli(&["cluster", "info"])
            .contains("cluster_known_nodes:3")
    });
    dry_then_finish(&nodes, "partial");
}

/// Killed after attaching some replicas: the others are attached, the first kept.
#[test]
fn resumes_after_some_replicas() {
    let nodes = start_nodes(73, 6);
    slots_only(&nodes);
    epochs(&nodes);
    for n in &nodes[1..] {
        meet(n, &nodes[0]);
    }
    wait_until("every handshake", Duration::from_secs(15), || {
        nodes.iter().all(|n| {
            n.cli(&["cluster", "info"])
                .contains("cluster_known_nodes:6")
        })
    });
    assert_eq!(
        nodes[3].cli(&["cluster", "replicate", &nodes[0].id()]),
        "OK"
    );
    dry_then_finish(&nodes, "partial");
}

/// All pods rescheduled at once onto new IPs with their volumes: the binary re-meshes them;
/// afterwards every node advertises only new addresses and every key reads back.
#[test]
fn remeshes_after_a_full_restart_on_new_ips() {
    let mut nodes = start_nodes(74, 6);
    assert_eq!(run(&nodes, &[]).code, 0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let keys = 3000;
    rt.block_on(write_keys(&nodes, keys));
    for n in nodes.iter_mut() {
        n.kill();
    }
    for (i, n) in nodes.iter_mut().enumerate() {
        n.restart_on(&ip(124, i), &Options::default());
    }
    reset_stats(&nodes);
    let dry = run(&nodes, &[("BOOTSTRAP_DRY_RUN", "true")]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(dry.stdout.contains("decision=reconnect"), "{dry:?}");
    assert_no_writes(&nodes);

    let roles = own_roles(&nodes);
    let real = run(&nodes, &[]);
    assert_eq!(real.code, 0, "{real:?}");
    assert!(real.stdout.contains("decision=reconnect"), "{real:?}");
    // Only MEETs, and each replica re-pointed at its own master: no slot, epoch or role changes.
    assert_eq!(own_roles(&nodes), roles);
    for n in &nodes {
        let stats = n.cli(&["info", "commandstats"]);
        for w in [
            "cluster|addslots",
            "cluster|set-config-epoch",
            "cluster|failover",
        ] {
            assert!(
                !stats.contains(w),
                "a re-mesh changes no slot or epoch, {} got {w}",
                n.addr
            );
        }
        for view in [n.cli(&["cluster", "nodes"]), n.cli(&["cluster", "slots"])] {
            assert!(
                !view.contains("127.0.74."),
                "{} still advertises an old address:\n{view}",
                n.addr
            );
        }
    }
    let (ok, text) = cluster_check(&nodes[0]);
    assert!(ok, "{text}");
    assert_eq!(rt.block_on(read_keys(&nodes, keys)), keys);
}

/// The guide's failover: a master dies, its replica takes over, the old master returns on a new
/// IP as a replica. A rerun accepts the moved roles; it only tells the returned node its new
/// address (Redis never learns its own new IP without a MEET), and the run after that is a no-op.
#[test]
fn a_failed_over_cluster_is_formed() {
    let mut nodes = start_nodes(75, 6);
    assert_eq!(run(&nodes, &[]).code, 0);
    nodes[0].kill();
    wait_until("pod 3 to take over", Duration::from_secs(30), || {
        nodes[3].cli(&["role"]).starts_with("master")
    });
    nodes[0].restart_on(&ip(125, 0), &Options::default());
    wait_until(
        "pod 0 to return as a replica",
        Duration::from_secs(30),
        || {
            let info = nodes[0].cli(&["info", "replication"]);
            info.contains("role:slave") && info.contains("master_link_status:up")
        },
    );
    let before = own_roles(&nodes);
    assert!(
        before[0].1 == "replica" && before[3].1 == "master",
        "{before:?}"
    );
    reset_stats(&nodes);
    let rerun = run(&nodes, &[]);
    assert_eq!(rerun.code, 0, "{rerun:?}");
    assert_eq!(own_roles(&nodes), before, "roles and slots must not change");
    for n in &nodes {
        let stats = n.cli(&["info", "commandstats"]);
        for w in [
            "cluster|addslots",
            "cluster|replicate",
            "cluster|set-config-epoch",
            "cluster|failover",
        ] {
            assert!(!stats.contains(w), "{} got {w}", n.addr);
        }
    }
    let own = nodes[0].cli(&["cluster", "nodes"]);
    assert!(
        !own.contains("127.0.75.11:"),
        "pod 0 still advertises its old address:\n{own}"
    );
    let (ok, text) = cluster_check(&nodes[0]);
    assert!(ok, "{text}");

    reset_stats(&nodes);
    let again = run(&nodes, &[]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(
        again.stdout.contains("decision=formed steps=0")
            || again.stdout.contains("decision=formed"),
        "{again:?}"
    );
    assert_no_writes(&nodes);
    assert_eq!(own_roles(&nodes), before);
}

/// A replica whose link is down is reported with exit 1; the binary does not touch roles.
#[test]
fn a_replica_with_its_link_down_is_reported_not_fixed() {
    let nodes = start_nodes(76, 6);
    assert_eq!(run(&nodes, &[]).code, 0);
    // Pod 0 stops accepting replication; its replica (pod 3) loses the link for good.
    nodes[0].cli(&["acl", "setuser", "default", "-psync", "-sync"]);
    nodes[0].cli(&["client", "kill", "type", "replica"]);
    wait_until("the link to drop", Duration::from_secs(10), || {
        nodes[3]
            .cli(&["info", "replication"])
            .contains("master_link_status:down")
    });
    let before: Vec<_> = nodes.iter().map(topology).collect();
    let run = run(&nodes, &[("BOOTSTRAP_CONVERGE_TIMEOUT", "3s")]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("node-3 (127.0.76.14:6379) has master_link_status:down"),
        "{run:?}"
    );
    assert_eq!(before, nodes.iter().map(topology).collect::<Vec<_>>());
}

/// A node that accepts connections but never answers: exit 1 in bounded time, naming it.
#[test]
fn a_node_that_never_answers_fails_in_bounded_time() {
    let mut nodes = start_nodes(77, 6);
    nodes[5].kill();
    let silent = TcpListener::bind(nodes[5].addr).unwrap();
    let accept = std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in silent.incoming().take(50) {
            held.push(c);
        }
    });
    let start = Instant::now();
    let run = run(&nodes, &[("BOOTSTRAP_READY_TIMEOUT", "3s")]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "took {:?}",
        start.elapsed()
    );
    assert!(run.stderr.contains("127.0.77.16:6379"), "{run:?}");
    drop(accept);
}

/// A node whose cluster bus cannot be reached never completes its handshake (redis-cli waits
/// forever here): exit 1 after the timeout, naming who does not know whom.
#[test]
fn an_unreachable_cluster_bus_fails_in_bounded_time() {
    let mut nodes = start_nodes(78, 6);
    // Pod 5 listens for the bus on 16390 but tells its peers 16379, where nothing listens.
    let hidden = Options::hidden_bus();
    nodes[5].restart_on(&ip(78, 5), &hidden);
    let start = Instant::now();
    let run = run(&nodes, &[("BOOTSTRAP_CONVERGE_TIMEOUT", "8s")]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        start.elapsed() < Duration::from_secs(40),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        run.stderr.contains("does not know") && run.stderr.contains("127.0.78.16:6379"),
        "{run:?}"
    );
    assert!(run.stderr.contains("cluster bus"), "{run:?}");
}

/// A resharding in progress (a migrating slot) is refused, and left as it was.
#[test]
fn open_slots_are_refused() {
    let nodes = start_nodes(79, 6);
    assert_eq!(run(&nodes, &[]).code, 0);
    let target = nodes[1].id();
    assert_eq!(
        nodes[0].cli(&["cluster", "setslot", "100", "migrating", &target]),
        "OK"
    );
    let run = run(&nodes, &[]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr.contains("127.0.79.11:6379") && run.stderr.contains("open slot"),
        "{run:?}"
    );
    assert!(nodes[0].cli(&["cluster", "nodes"]).contains("[100->-"));
}

/// Slots owned by a node the plan makes a replica are refused before any change.
#[test]
fn slots_outside_the_plan_are_refused() {
    let nodes = start_nodes(80, 6);
    assert_eq!(nodes[4].cli(&["cluster", "addslotsrange", "0", "99"]), "OK");
    reset_stats(&nodes);
    let dry = run(&nodes, &[("BOOTSTRAP_DRY_RUN", "true")]);
    assert_eq!(dry.code, 3, "{dry:?}");
    let run = run(&nodes, &[]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr.contains("127.0.80.15:6379") && run.stderr.contains("outside the plan"),
        "{run:?}"
    );
    assert_no_writes(&nodes);
}
