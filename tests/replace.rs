//! *replace* on real nodes: a pod whose volume was lost comes back empty with a new node ID; the
//! bootstrap forgets the old ID everywhere and adds the pod back as the replica its shard lacks,
//! with every key written before still readable, also when the run comes before the nodes agree
//! the old ID failed (it waits). When the lost ID still owned slots (a master and its replica
//! both lost), it refuses and sends nothing.

mod common;

use std::time::Duration;

use common::*;

const KEYS: usize = 1000;

/// The replace run exits 0 with `decision=replace`; `redis-cli --cluster check` is clean, every key
/// reads back, no node knows `lost` any more, and the run after it is a strict no-op.
fn replaced(nodes: &[RedisNode], lost: &str, rt: &tokio::runtime::Runtime) -> Run {
    let replace = run_static(nodes);
    assert_eq!(replace.code, 0, "{replace:?}");
    assert!(replace.stdout.contains("decision=replace"), "{replace:?}");
    assert!(
        replace.stderr.contains(&format!("CLUSTER FORGET {lost}")),
        "{replace:?}"
    );
    let (ok, text) = cluster_check(&nodes[0]);
    assert!(ok, "{text}");
    for n in nodes {
        assert!(
            !n.cli(&["cluster", "nodes"]).contains(lost),
            "{} still knows {lost}",
            n.addr
        );
    }
    wait_replicated(nodes);
    assert_eq!(rt.block_on(read_keys(nodes, KEYS)), KEYS);
    assert_next_run_is_a_no_op(nodes);
    replace
}

/// The pod that replicates node `id` (pod 0's ID: one of pods 1-5).
fn replica_of(nodes: &[RedisNode], id: &str) -> usize {
    (1..6)
        .find(|&i| role_of(nodes, i).1 == id)
        .expect("a replica of pod 0")
}

/// Pod `pod`'s own account: (role, master ID).
fn role_of(nodes: &[RedisNode], pod: usize) -> (String, String) {
    let (_, role, master, _) = own_roles(nodes).swap_remove(pod);
    (role, master)
}

#[test]
fn a_replica_whose_volume_was_lost_is_replaced() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut nodes = formed_with_keys(180, KEYS, &rt);
    let lost = nodes[4].id();
    let master = role_of(&nodes, 4).1;
    wipe(&mut nodes[4]);
    wait_failed(
        &[&nodes[0], &nodes[1], &nodes[2], &nodes[3], &nodes[5]],
        &lost,
    );
    nodes[4].restart_on(&ip(180, 4), &Options::default());
    assert_ne!(nodes[4].id(), lost);
    replaced(&nodes, &lost, &rt);
    assert_eq!(role_of(&nodes, 4), ("replica".to_string(), master));
}

#[test]
fn a_master_lost_after_its_replica_took_over_comes_back_as_that_replicas_replica() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut nodes = formed_with_keys(181, KEYS, &rt);
    let lost = nodes[0].id();
    let heir = replica_of(&nodes, &lost);
    wipe(&mut nodes[0]);
    wait_until("the replica to take over", Duration::from_secs(30), || {
        nodes[heir].cli(&["role"]).starts_with("master")
    });
    let others: Vec<&RedisNode> = nodes[1..].iter().collect();
    wait_failed(&others, &lost);
    // The pod comes back empty on a new address.
    nodes[0].restart_on(&ip(181, 10), &Options::default());
    replaced(&nodes, &lost, &rt);
    assert_eq!(
        role_of(&nodes, 0),
        ("replica".to_string(), nodes[heir].id())
    );
}

/// The run comes the moment pod 0 (a master) is back empty on a new address, before any node
/// suspects its old ID: it waits for the `fail` flag, then for Redis's failover to give the slots
/// to the replica, then replaces, changing nothing before.
#[test]
fn a_master_lost_just_now_is_waited_for_then_replaced() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut nodes = formed_with_keys(167, KEYS, &rt);
    let lost = nodes[0].id();
    let heir = replica_of(&nodes, &lost);
    let heir_id = nodes[heir].id();
    wipe(&mut nodes[0]);
    nodes[0].restart_on(&ip(167, 10), &Options::default());
    let run = replaced(&nodes, &lost, &rt);
    assert!(
        run.stderr.contains("not yet flagged fail by every node"),
        "{run:?}"
    );
    assert_eq!(role_of(&nodes, 0), ("replica".to_string(), heir_id));
}

#[test]
fn a_master_and_its_replica_both_lost_are_refused_without_a_command() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut nodes = formed_with_keys(182, KEYS, &rt);
    let lost = nodes[0].id();
    let replica = replica_of(&nodes, &lost);
    let slots = own_roles(&nodes).swap_remove(0).3;
    let lost_replica = nodes[replica].id();
    wipe(&mut nodes[0]);
    wipe(&mut nodes[replica]);
    let others: Vec<&RedisNode> = (0..6)
        .filter(|&i| i != 0 && i != replica)
        .map(|i| &nodes[i])
        .collect();
    // Both lost IDs flagged `fail`: until then a node still counts the replica as a live member
    // of another cluster, a different refusal.
    wait_failed(&others, &lost);
    wait_failed(&others, &lost_replica);
    for i in [0, replica] {
        nodes[i].restart_on(&ip(182, i), &Options::default());
    }
    reset_stats(&nodes);
    let refused = run_static(&nodes);
    assert_eq!(refused.code, 3, "{refused:?}");
    for word in [
        lost.as_str(),
        slots.as_str(),
        "backup",
        "redis-cli --cluster fix",
    ] {
        assert!(refused.stderr.contains(word), "lacks {word:?}: {refused:?}");
    }
    assert_no_writes(&nodes);
}
