//! Day 2 without the tool, on real redis-server nodes: when every node announces its own address
//! (`cluster-announce-ip`, as the StatefulSet passes the pod IP) and its pod name
//! (`cluster-announce-hostname`), a master restarted from its data directory on a new address is
//! right everywhere by itself: every node, itself included, reports the new address in
//! `CLUSTER NODES` and `CLUSTER SLOTS` within cluster-node-timeout + 2 s, and no run of the tool is
//! needed.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// The options of pod `index` at `ip`: it announces that IP and its pod name, as the manifests do.
fn announcing(ip: &str, index: usize) -> Options {
    Options {
        extra: vec![
            "--cluster-announce-ip".into(),
            ip.into(),
            "--cluster-announce-hostname".into(),
            format!("redis-app-{index}"),
            "--cluster-preferred-endpoint-type".into(),
            "ip".into(),
        ],
        ..Options::default()
    }
}

/// The address `node` gives for node `id` in `CLUSTER NODES` (`ip:port`), without the bus port
/// and hostname.
fn address_in_cluster_nodes(node: &RedisNode, id: &str) -> Option<String> {
    node.cli(&["cluster", "nodes"]).lines().find_map(|line| {
        let mut fields = line.split(' ');
        (fields.next()? == id).then(|| {
            let address = fields.next().unwrap_or("");
            address.split('@').next().unwrap_or("").to_string()
        })
    })
}

/// Whether `node`'s `CLUSTER SLOTS` lists `ip` for the master of slot 0 (redis-cli prints each
/// range's start, end, then the master's ip, port, id, metadata, one value per line).
fn slots_name(node: &RedisNode, ip: &str, id: &str) -> bool {
    let slots = node.cli(&["cluster", "slots"]);
    let lines: Vec<&str> = slots.lines().collect();
    lines
        .windows(3)
        .any(|w| w[0] == ip && w[1] == "6379" && w[2] == id)
}

#[test]
fn a_master_restarted_on_a_new_address_is_right_everywhere_without_the_tool() {
    let block = 150;
    let mut nodes: Vec<RedisNode> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                s.spawn(move || RedisNode::start(&ip(block, i), &announcing(&ip(block, i), i)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let list = node_list(&nodes);
    let run = bootstrap(&[
        ("BOOTSTRAP_NODES", list.as_str()),
        ("BOOTSTRAP_READY_TIMEOUT", "10s"),
        ("BOOTSTRAP_CONVERGE_TIMEOUT", "60s"),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    // The announced hostname is in CLUSTER NODES, after the bus port.
    let myself = nodes[1].cli(&["cluster", "nodes"]);
    assert!(
        myself.contains(&format!("{}@16379,redis-app-1 myself", nodes[1].addr)),
        "{myself}"
    );

    // Pod 0, a master with slot 0, comes back on a new address with its volume, announcing it.
    let id = nodes[0].id();
    let new_ip = ip(block + 1, 0);
    let restarted = Instant::now();
    nodes[0].restart_on(&new_ip, &announcing(&new_ip, 0));

    let limit = Duration::from_millis(NODE_TIMEOUT_MS as u64) + Duration::from_secs(2);
    let wanted = format!("{new_ip}:6379");
    loop {
        let stale: Vec<String> = nodes
            .iter()
            .filter(|n| {
                address_in_cluster_nodes(n, &id).as_deref() != Some(wanted.as_str())
                    || !slots_name(n, &new_ip, &id)
            })
            .map(|n| n.addr.to_string())
            .collect();
        if stale.is_empty() {
            eprintln!(
                "every node reports the new address after {:?}",
                restarted.elapsed()
            );
            break;
        }
        assert!(
            restarted.elapsed() < limit,
            "after {:?} these nodes still do not report {id} at {wanted} in CLUSTER NODES and \
             CLUSTER SLOTS: {stale:?}\n{}",
            restarted.elapsed(),
            nodes[1].cli(&["cluster", "nodes"])
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The restarted master kept its node ID and its slots: it is still the master of slot 0.
    assert_eq!(nodes[0].id(), id);
    assert!(
        nodes[0]
            .cli(&["cluster", "nodes"])
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("myself,master") && l.contains(" 0-5460")),
        "{}",
        nodes[0].cli(&["cluster", "nodes"])
    );
}
