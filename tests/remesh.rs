//! Re-meshing after pods restart with their volumes on addresses that other pods had before
//! (Kubernetes reuses pod IPs all the time), and after a failover that finished while a master
//! was down: on real redis-server nodes, keys written through a cluster client before are all
//! read back after, and the run after the repair is a strict no-op.

mod common;

use std::time::Duration;

use common::*;

const KEYS: usize = 2000;

/// Stops every pod, then starts pod `i` from its own data dir on `addresses[i]`.
fn restart_all_on(nodes: &mut [RedisNode], addresses: &[String]) {
    for n in nodes.iter_mut() {
        n.kill();
    }
    for (n, ip) in nodes.iter_mut().zip(addresses) {
        n.restart_on(ip, &Options::default());
    }
}

/// The repair run exits 0, re-meshes, leaves a cluster `redis-cli --cluster check` accepts with
/// every key; the run after it changes nothing.
fn repaired(nodes: &[RedisNode], rt: &tokio::runtime::Runtime) -> Run {
    let repair = run_static(nodes);
    assert_eq!(repair.code, 0, "{repair:?}");
    assert!(repair.stdout.contains("decision=reconnect"), "{repair:?}");
    let (ok, text) = cluster_check(&nodes[0]);
    assert!(ok, "{text}");
    assert_eq!(rt.block_on(read_keys(nodes, KEYS)), KEYS);
    assert_next_run_is_a_no_op(nodes);
    repair
}

/// Pod `i` restarts on the address pod `moved[i]` had.
fn shuffled(block: u8, moved: &[usize]) -> Vec<String> {
    moved.iter().map(|&j| ip(block, j)).collect()
}

#[test]
fn two_replicas_that_swapped_addresses_are_re_meshed() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut nodes = formed_with_keys(110, KEYS, &rt);
    restart_all_on(&mut nodes, &shuffled(110, &[0, 1, 2, 3, 5, 4]));
    let repair = repaired(&nodes, &rt);
    // Whether a node still shows the old address or already holds the pod as `noaddr` depends
    // on how soon it noticed; either way the log says the address was reused.
    for pod in ["node-4", "node-5"] {
        assert!(
            repair
                .stderr
                .lines()
                .any(|l| l.contains(pod) && l.contains("a reused pod IP")),
            "{repair:?}"
        );
    }
}

#[test]
fn a_master_and_its_own_replica_that_swapped_addresses_are_re_meshed() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut nodes = formed_with_keys(111, KEYS, &rt);
    let roles = own_roles(&nodes);
    restart_all_on(&mut nodes, &shuffled(111, &[3, 1, 2, 0, 4, 5]));
    repaired(&nodes, &rt);
    assert_eq!(
        own_roles(&nodes),
        roles,
        "a re-mesh changes no role or slot"
    );
}

#[test]
fn a_rotation_of_three_pods_is_re_meshed() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut nodes = formed_with_keys(112, KEYS, &rt);
    restart_all_on(&mut nodes, &shuffled(112, &[0, 2, 3, 1, 4, 5]));
    repaired(&nodes, &rt);
}

/// Pod 0 (a master) dies, pod 3 is promoted, then every pod restarts on a new address: pod 0
/// still claims its old slots with a lower config epoch. Redis settles it by epoch once they talk.
#[test]
fn a_failover_that_finished_while_the_master_was_down_is_settled_by_epoch() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut nodes = formed_with_keys(113, KEYS, &rt);
    nodes[0].kill();
    wait_until("pod 3 to take over", Duration::from_secs(30), || {
        nodes[3].cli(&["role"]).starts_with("master")
    });
    let new: Vec<String> = (0..6).map(|i| ip(213, i)).collect();
    restart_all_on(&mut nodes, &new);
    let repair = repaired(&nodes, &rt);
    assert!(
        repair.stderr.contains("node-3 keeps them")
            && repair.stderr.contains("node-0 missed its own failover"),
        "{repair:?}"
    );
    // Pods 0 and 3 are one shard again: one master, the other its replica. Which one is master
    // is Redis's business: while every address was wrong, the nodes may fail pod 3 over to pod 0
    // once pod 0 has synced from it (seen with the tests' 2 s node timeout); no key is lost then
    // either.
    let roles = own_roles(&nodes);
    let (master, replica) = if roles[0].1 == "master" {
        (&roles[0], &roles[3])
    } else {
        (&roles[3], &roles[0])
    };
    assert_eq!(
        (master.1.as_str(), replica.1.as_str()),
        ("master", "replica"),
        "{roles:?}"
    );
    assert_eq!(replica.2, master.0, "pods 0 and 3 are one shard: {roles:?}");
    assert_eq!(master.3, "0-5460", "{roles:?}");
}
