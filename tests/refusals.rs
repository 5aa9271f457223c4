//! Unsafe input is refused with exit 3, a message naming the node and the fix, and nothing
//! changed: the data is still there.

mod common;

use std::process::Command;

use common::*;

fn run_on(nodes: &[RedisNode], replicas: &str) -> Run {
    let list = node_list(nodes);
    bootstrap(&[
        ("BOOTSTRAP_NODES", &list),
        ("BOOTSTRAP_REPLICAS_PER_MASTER", replicas),
        ("BOOTSTRAP_CONVERGE_TIMEOUT", "30s"),
    ])
}

fn alone(node: &RedisNode) -> bool {
    node.cli(&["cluster", "info"])
        .contains("cluster_known_nodes:1")
}

/// A node with cluster mode off is named, with the setting to change.
#[test]
fn cluster_mode_disabled_is_refused() {
    let mut nodes = start_nodes(20, 6);
    nodes[2].restart_on(&ip(20, 2), &Options::standalone());
    nodes[2].cli(&["set", "k", "v"]);
    let run = run_on(&nodes, "1");
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr.contains("127.0.20.13:6379") && run.stderr.contains("cluster-enabled yes"),
        "{run:?}"
    );
    assert!(
        nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 2)
            .all(|(_, n)| alone(n))
    );
    assert_eq!(nodes[2].cli(&["get", "k"]), "v");
}

/// A node that comes up with keys from an earlier life (an old AOF) is refused and keeps them.
#[test]
fn a_node_holding_keys_outside_a_cluster_is_refused() {
    let mut nodes = start_nodes(21, 6);
    nodes[1].restart_on(&ip(21, 1), &Options::standalone());
    for i in 0..50 {
        nodes[1].cli(&["set", &format!("key:{i}"), "precious"]);
    }
    // Back in cluster mode on the same data directory, as a pod that kept an old volume.
    nodes[1].restart_on(&ip(21, 1), &Options::default());
    assert_eq!(nodes[1].cli(&["dbsize"]), "50");
    let run = run_on(&nodes, "1");
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr.contains("127.0.21.12:6379") && run.stderr.contains("50 key"),
        "{run:?}"
    );
    assert_eq!(nodes[1].cli(&["dbsize"]), "50");
    assert!(alone(&nodes[0]) && alone(&nodes[5]));
}

/// Nodes already in two different clusters are refused; both clusters keep their data.
#[test]
fn nodes_in_different_clusters_are_refused() {
    let nodes = start_nodes(22, 6);
    for group in [&nodes[0..3], &nodes[3..6]] {
        let mut cmd = Command::new(which(common::Server::under_test().cli_binary()));
        cmd.args(["--cluster", "create"])
            .args(group.iter().map(RedisNode::host_port))
            .args(["--cluster-yes"]);
        assert!(cmd.output().unwrap().status.success());
    }
    std::thread::sleep(std::time::Duration::from_secs(3));
    let before: Vec<_> = nodes.iter().map(topology).collect();
    redis_cli(nodes[0].addr, None, &["-c", "set", "precious", "1"]);
    let run = run_on(&nodes, "1");
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr.contains("different clusters") || run.stderr.contains("both claim slot"),
        "{run:?}"
    );
    let after: Vec<_> = nodes.iter().map(topology).collect();
    assert_eq!(before, after);
    assert_eq!(
        redis_cli(nodes[0].addr, None, &["-c", "get", "precious"]),
        "1"
    );
}

/// N must be divisible by 1+R, and the cluster needs at least 3 masters.
#[test]
fn impossible_shapes_are_refused_before_any_change() {
    let nodes = start_nodes(23, 5);
    let run = run_on(&nodes, "1");
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("not divisible"), "{run:?}");
    let run = run_on(&nodes[..4], "1");
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("at least 3"), "{run:?}");
    assert!(nodes.iter().all(alone));
}
