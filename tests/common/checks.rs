//! What a user checks on a cluster: keys written and read back through a cluster client, each
//! node's own role, and whether a run sent any command that changes a node.

use std::time::{Duration, Instant};

use super::{RedisNode, Run, bootstrap, node_list, start_nodes, topology};

/// Cluster commands that change state; none may appear in a dry run or a no-op run.
pub const WRITES: [&str; 7] = [
    "cluster|meet",
    "cluster|setslot",
    "migrate",
    "cluster|addslots",
    "cluster|replicate",
    "cluster|set-config-epoch",
    "cluster|forget",
];

/// Clears `INFO commandstats` on every node.
pub fn reset_stats(nodes: &[RedisNode]) {
    for n in nodes {
        n.cli(&["config", "resetstat"]);
    }
}

/// Asserts that no node received any of [`WRITES`] since [`reset_stats`].
pub fn assert_no_writes(nodes: &[RedisNode]) {
    for n in nodes {
        let stats = n.cli(&["info", "commandstats"]);
        for w in WRITES {
            assert!(
                !stats.contains(&format!("cmdstat_{w}")),
                "{} got {w}:\n{stats}",
                n.addr
            );
        }
    }
}

/// Polls `ok` every 50 ms until it holds, or panics after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A cluster client, the way an application connects (it follows MOVED redirections).
pub async fn cluster_connection(nodes: &[RedisNode]) -> redis::cluster_async::ClusterConnection {
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| format!("redis://{}/", n.addr))
        .collect();
    redis::cluster::ClusterClient::new(urls)
        .unwrap()
        .get_async_connection()
        .await
        .unwrap()
}

/// Writes `key:0` .. `key:<count-1>` through a cluster client.
pub async fn write_keys(nodes: &[RedisNode], count: usize) {
    let mut conn = cluster_connection(nodes).await;
    for i in 0..count {
        let _: () = redis::cmd("SET")
            .arg(format!("key:{i}"))
            .arg(i)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

/// How many of the keys written by [`write_keys`] read back with their value.
pub async fn read_keys(nodes: &[RedisNode], count: usize) -> usize {
    let mut conn = cluster_connection(nodes).await;
    let mut found = 0;
    for i in 0..count {
        let v: Option<usize> = redis::cmd("GET")
            .arg(format!("key:{i}"))
            .query_async(&mut conn)
            .await
            .unwrap();
        found += usize::from(v == Some(i));
    }
    found
}

/// Each node's own account of itself: (id, role, master, slots).
pub fn own_roles(nodes: &[RedisNode]) -> Vec<(String, String, String, String)> {
    nodes
        .iter()
        .map(|n| {
            let id = n.id();
            topology(n).into_iter().find(|row| row.0 == id).unwrap()
        })
        .collect()
}

/// Waits until every replica has every write its master took.
pub fn wait_replicated(nodes: &[RedisNode]) {
    let field = |n: &RedisNode, key: &str| -> Option<u64> {
        n.cli(&["info", "replication"])
            .lines()
            .find_map(|l| l.trim().strip_prefix(key).and_then(|v| v.parse().ok()))
    };
    wait_until("every replica to catch up", Duration::from_secs(20), || {
        nodes.iter().all(|n| match field(n, "slave_repl_offset:") {
            None => true,
            Some(offset) => {
                let host = n.cli(&["info", "replication"]);
                let master = host
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("master_host:"))
                    .map(str::to_string);
                nodes
                    .iter()
                    .filter(|m| Some(m.addr.ip().to_string()) == master)
                    .all(|m| field(m, "master_repl_offset:") == Some(offset))
            }
        })
    });
}

/// Runs the binary in static mode on these nodes, with the timeouts the real-node tests use.
pub fn run_static(nodes: &[RedisNode]) -> Run {
    let list = node_list(nodes);
    bootstrap(&[
        ("BOOTSTRAP_NODES", list.as_str()),
        ("BOOTSTRAP_READY_TIMEOUT", "10s"),
        ("BOOTSTRAP_CONVERGE_TIMEOUT", "60s"),
    ])
}

/// Six nodes formed by the binary, holding `keys` keys written through a cluster client, every
/// replica caught up.
pub fn formed_with_keys(block: u8, keys: usize, rt: &tokio::runtime::Runtime) -> Vec<RedisNode> {
    let nodes = start_nodes(block, 6);
    let first = run_static(&nodes);
    assert_eq!(first.code, 0, "{first:?}");
    rt.block_on(write_keys(&nodes, keys));
    wait_replicated(&nodes);
    nodes
}

/// The run after a repair: exit 0, `decision=formed`, and not one write command on any node.
pub fn assert_next_run_is_a_no_op(nodes: &[RedisNode]) {
    reset_stats(nodes);
    let again = run_static(nodes);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("decision=formed"), "{again:?}");
    assert_no_writes(nodes);
}
