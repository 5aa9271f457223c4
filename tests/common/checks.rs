//! What a user checks on a cluster: keys written and read back through a cluster client, each
//! node's own role, and whether a run sent any command that changes a node.

use std::time::{Duration, Instant};

use super::{Options, RedisNode, Run, bootstrap, node_list, start_nodes_with, topology};

/// Cluster commands that change state; none may appear in a dry run or a no-op run.
pub const WRITES: [&str; 8] = [
    "cluster|meet",
    "cluster|setslot",
    "migrate",
    "cluster|addslots",
    "cluster|replicate",
    "cluster|set-config-epoch",
    "cluster|forget",
    "cluster|failover",
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
    let login = match &nodes[0].cli_user {
        Some((user, password)) => format!("{user}:{password}@"),
        None => String::new(),
    };
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| format!("redis://{login}{}/", n.addr))
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

/// Runs the binary in static mode on these nodes, with the timeouts the real-node tests use (and
/// the nodes' [`Options::bootstrap_user`](super::Options), when they have one).
pub fn run_static(nodes: &[RedisNode]) -> Run {
    run_static_on(&node_list(nodes), nodes)
}

/// Like [`run_static`], with `BOOTSTRAP_NODES` as given (host names, say), and the nodes'
/// [`Options::tls`](super::Options): `BOOTSTRAP_TLS_CA_FILE`, and the client certificate when
/// the nodes ask for one.
pub fn run_static_on(list: &str, nodes: &[RedisNode]) -> Run {
    let access = access_env(&nodes[0]);
    let mut env = vec![
        ("BOOTSTRAP_NODES", list),
        ("BOOTSTRAP_READY_TIMEOUT", "10s"),
        ("BOOTSTRAP_CONVERGE_TIMEOUT", "60s"),
    ];
    env.extend(access.iter().map(|(k, v)| (*k, v.as_str())));
    bootstrap(&env)
}

/// The variables that let the binary in: the node's [`Options::bootstrap_user`](super::Options)
/// (`BOOTSTRAP_USERNAME`, `BOOTSTRAP_PASSWORD`) and its [`Options::tls`](super::Options)
/// (`BOOTSTRAP_TLS_CA_FILE`, and the client certificate when the nodes ask for one).
pub fn access_env(node: &RedisNode) -> Vec<(&'static str, String)> {
    let mut env = Vec::new();
    if let Some((user, password)) = &node.bootstrap_user {
        env.extend([
            ("BOOTSTRAP_USERNAME", user.clone()),
            ("BOOTSTRAP_PASSWORD", password.clone()),
        ]);
    }
    if let Some(tls) = &node.tls {
        env.push(("BOOTSTRAP_TLS_CA_FILE", tls.path("ca.crt")));
        if tls.auth_clients {
            env.extend([
                ("BOOTSTRAP_TLS_CERT_FILE", tls.path("client.crt")),
                ("BOOTSTRAP_TLS_KEY_FILE", tls.path("client.key")),
            ]);
        }
    }
    env
}

/// Six nodes formed by the binary, holding `keys` keys written through a cluster client, every
/// replica caught up.
pub fn formed_with_keys(block: u8, keys: usize, rt: &tokio::runtime::Runtime) -> Vec<RedisNode> {
    formed_with_keys_with(block, keys, rt, &Options::default())
}

/// Like [`formed_with_keys`], with options.
pub fn formed_with_keys_with(
    block: u8,
    keys: usize,
    rt: &tokio::runtime::Runtime,
    options: &Options,
) -> Vec<RedisNode> {
    let nodes = start_nodes_with(block, 6, options);
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

/// SIGKILLs a node and deletes what a lost volume loses: `nodes.conf`, the AOF and any RDB.
pub fn wipe(node: &mut RedisNode) {
    node.kill();
    for file in ["nodes.conf", "dump.rdb"] {
        let _ = std::fs::remove_file(node.dir.join(file));
    }
    let _ = std::fs::remove_dir_all(node.dir.join("appendonlydir"));
}

/// Waits until every node in `others` flags node `id` `fail` (not just `fail?`).
pub fn wait_failed(others: &[&RedisNode], id: &str) {
    wait_until(
        "the lost node to be flagged fail",
        Duration::from_secs(30),
        || {
            others.iter().all(|n| {
                n.cli(&["cluster", "nodes"]).lines().any(|l| {
                    let f: Vec<&str> = l.split(' ').collect();
                    f[0] == id && f[2].split(',').any(|flag| flag == "fail")
                })
            })
        },
    );
}

/// Writes `live:0`, `live:1`, ... through a cluster client until `stop`, retrying a write that
/// meets a redirection, a `TRYAGAIN` mid-move or a failover switching roles; `written` counts the
/// writes acknowledged.
pub async fn writer(
    nodes: Vec<std::net::SocketAddr>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    written: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    writer_from(nodes, "live", stop, written).await
}

/// [`writer`], writing `<prefix>:0`, `<prefix>:1`, ...: a second writer's keys apart from the
/// first's.
pub async fn writer_from(
    nodes: Vec<std::net::SocketAddr>,
    prefix: &str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    written: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let urls: Vec<String> = nodes.iter().map(|a| format!("redis://{a}/")).collect();
    let client = redis::cluster::ClusterClient::new(urls).unwrap();
    let mut conn = client.get_async_connection().await.unwrap();
    let mut i = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let set = redis::cmd("SET")
            .arg(format!("{prefix}:{i}"))
            .arg(i)
            .query_async::<()>(&mut conn)
            .await;
        match set {
            Ok(()) => {
                i += 1;
                written.store(i, std::sync::atomic::Ordering::Relaxed);
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// How many of `live:0..count` read back with their value.
pub async fn read_live(nodes: &[RedisNode], count: usize) -> usize {
    read_from(nodes, "live", count).await
}

/// How many of `<prefix>:0..count` ([`writer_from`]) read back with their value.
pub async fn read_from(nodes: &[RedisNode], prefix: &str, count: usize) -> usize {
    let mut conn = cluster_connection(nodes).await;
    let mut found = 0;
    for i in 0..count {
        let v: Option<usize> = redis::cmd("GET")
            .arg(format!("{prefix}:{i}"))
            .query_async(&mut conn)
            .await
            .unwrap();
        found += usize::from(v == Some(i));
    }
    found
}
