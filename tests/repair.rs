//! Placement repair end to end: a formed cluster whose pods "move" (the nodes the fake API server
//! reports change, as after a drain or a full restart) is re-paired by the next run, one
//! `CLUSTER REPLICATE` or manual `CLUSTER FAILOVER` at a time, while a client keeps writing; a
//! placement that no pairing makes safe is left alone with its warnings; a cluster whose replicas
//! are not R per master (Redis's replica migration) is repaired in static mode too.
//!
//! Loopback blocks 192–199 (see `common/BLOCKS.md`): `.1` is the API and DNS server, `.11`,
//! `.12`, ... the pods. `SHOW_RUNS=1` prints every run's output.

mod common;
mod dns;
mod fake_api;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use dns::FakeDns;
use fake_api::{FakeApi, Stage};

const KEYS: usize = 2_000;

/// A StatefulSet of `n` pods on Kubernetes nodes without zones.
struct World {
    api: FakeApi,
    dns: FakeDns,
    pods: Vec<RedisNode>,
    replicas: String,
}

impl World {
    fn new(block: u8, on: &[&str], replicas: usize) -> World {
        let api = FakeApi::start(block, "infra");
        let dns = FakeDns::start(block);
        let pods = start_nodes(block, on.len());
        for (i, pod) in pods.iter().enumerate() {
            dns.add(
                &format!("redis-app-{i}.redis-service.infra.svc.cluster.local"),
                pod.addr.ip(),
            );
        }
        let mut nodes: Vec<&str> = on.to_vec();
        nodes.sort();
        nodes.dedup();
        for name in nodes {
            api.add_node(name, None);
        }
        api.show(&Stage::ready(on.len() as i32, on.len()));
        api.place(on);
        World {
            api,
            dns,
            pods,
            replicas: replicas.to_string(),
        }
    }

    fn bootstrap(&self, extra: &[(&str, &str)]) -> Run {
        let kubeconfig = self.api.kubeconfig("infra");
        let dns = self.dns.addr.to_string();
        let mut env = vec![
            ("KUBECONFIG", kubeconfig.as_str()),
            ("BOOTSTRAP_DNS_SERVER", dns.as_str()),
            ("BOOTSTRAP_REPLICAS_PER_MASTER", self.replicas.as_str()),
            ("BOOTSTRAP_READY_TIMEOUT", "60s"),
            ("BOOTSTRAP_CONVERGE_TIMEOUT", "60s"),
        ];
        env.extend_from_slice(extra);
        let run = bootstrap(&env);
        if std::env::var_os("SHOW_RUNS").is_some() {
            eprintln!("{run:?}");
        }
        run
    }

    /// Each shard as (master, replicas) by pod index, as pod 0 sees the cluster.
    fn shards(&self) -> Vec<(usize, Vec<usize>)> {
        let pod_of: HashMap<String, usize> = self
            .pods
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id(), i))
            .collect();
        let view = topology(&self.pods[0]);
        let mut shards: Vec<(usize, Vec<usize>)> = view
            .iter()
            .filter(|(_, role, _, slots)| role.contains("master") && !slots.is_empty())
            .map(|(id, _, _, _)| (pod_of[id], Vec::new()))
            .collect();
        for (id, role, master, _) in &view {
            if role == "replica" {
                let shard = shards
                    .iter_mut()
                    .find(|(m, _)| pod_of[master] == *m)
                    .expect("a replica of a master with slots");
                shard.1.push(pod_of[id]);
            }
        }
        shards.sort();
        shards
    }

    fn events(&self, reason: &str) -> Vec<String> {
        self.api
            .events()
            .iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .map(|e| e.note.clone().unwrap_or_default())
            .collect()
    }
}

/// Runs the bootstrap while a client writes; returns the run and how many writes were
/// acknowledged (at least one).
fn run_while_writing(world: &World, rt: &tokio::runtime::Runtime) -> (Run, usize) {
    let (stop, written) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let addrs: Vec<_> = world.pods.iter().map(|n| n.addr).collect();
    let task = rt.spawn(writer(addrs, stop.clone(), written.clone()));
    let run = world.bootstrap(&[]);
    stop.store(true, Ordering::Relaxed);
    rt.block_on(task).unwrap();
    let live = written.load(Ordering::Relaxed);
    assert!(live > 0, "the writer wrote nothing during the run");
    (run, live)
}

/// The "moved" placement: every shard's pods on one Kubernetes node of its own, as after a full
/// restart that the scheduler spread badly.
fn stacked(shards: &[(usize, Vec<usize>)], nodes: &[&'static str]) -> Vec<&'static str> {
    let n = shards.iter().map(|(_, r)| 1 + r.len()).sum();
    let mut on = vec![""; n];
    for (k, (master, replicas)) in shards.iter().enumerate() {
        on[*master] = nodes[k];
        for &r in replicas {
            on[r] = nodes[k];
        }
    }
    on
}

/// Forms `on.len()` pods, stacks every shard on one node, and repairs it while a client writes:
/// each shard ends with no replica on its master's node, nothing written is lost, `redis-cli
/// --cluster check` is clean, a Normal `Repaired` Event names the moves, and the next run is a
/// no-op. Returns the world for more.
fn repaired_while_writing(block: u8, on: &[&'static str], replicas: usize) -> World {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let world = World::new(block, on, replicas);
    let formed = world.bootstrap(&[]);
    assert_eq!(formed.code, 0, "{formed:?}");
    rt.block_on(write_keys(&world.pods, KEYS));

    let mut nodes: Vec<&'static str> = on.to_vec();
    nodes.sort();
    nodes.dedup();
    let moved = stacked(&world.shards(), &nodes);
    world.api.place(&moved);

    // A dry run prints the moves and changes nothing.
    reset_stats(&world.pods);
    let dry = world.bootstrap(&[("BOOTSTRAP_DRY_RUN", "true")]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(dry.stdout.contains("decision=repair"), "{dry:?}");
    assert!(dry.stdout.contains("would run redis-app-"), "{dry:?}");
    assert!(dry.stdout.contains("CLUSTER REPLICATE"), "{dry:?}");
    assert_no_writes(&world.pods);

    let (run, live) = run_while_writing(&world, &rt);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("decision=repair"), "{run:?}");
    run.stderr
        .lines()
        .filter(|l| l.contains("repair:") || l.contains(" done in "))
        .for_each(|l| eprintln!("{l}"));

    let shards = world.shards();
    assert_eq!(shards.len(), on.len() / (1 + replicas), "{shards:?}");
    for (master, followers) in &shards {
        assert_eq!(followers.len(), replicas, "{shards:?}");
        for r in followers {
            assert_ne!(
                moved[*r], moved[*master],
                "{shards:?} on {moved:?}\n{run:?}"
            );
        }
    }
    assert!(!run.stderr.contains("shared failure domain"), "{run:?}");
    let (ok, check) = cluster_check(&world.pods[0]);
    assert!(ok, "{check}");
    assert_eq!(rt.block_on(read_keys(&world.pods, KEYS)), KEYS);
    assert_eq!(rt.block_on(read_live(&world.pods, live)), live);
    let repaired = world.events("Repaired");
    assert_eq!(repaired.len(), 1, "{:#?}", world.api.events());
    assert!(
        repaired[0].contains("redis-app-") && repaired[0].contains("(on worker-"),
        "{repaired:?}"
    );

    reset_stats(&world.pods);
    let again = world.bootstrap(&[]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("decision=formed"), "{again:?}");
    assert_no_writes(&world.pods);
    world
}

#[test]
fn six_pods_stacked_by_shard_are_repaired_an_impossible_placement_left_alone_masters_spread() {
    let world = repaired_while_writing(
        192,
        &[
            "worker-a", "worker-b", "worker-c", "worker-a", "worker-b", "worker-c",
        ],
        1,
    );

    // Four of six pods on one node: no pairing keeps every replica off its master's node.
    world.api.place(&[
        "worker-a", "worker-a", "worker-a", "worker-a", "worker-b", "worker-c",
    ]);
    let events = world.api.events().len();
    reset_stats(&world.pods);
    let run = world.bootstrap(&[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("decision=formed"), "{run:?}");
    assert_no_writes(&world.pods);
    let warned = run
        .stderr
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("shared failure domain"))
        .count();
    assert!(warned >= 1, "{run:?}");
    assert_eq!(
        world.api.events().len(),
        events,
        "a formed cluster costs no Event"
    );

    // Every master on one node (as after failovers), each replica on a node of its own: the pairs
    // are apart, but losing that node would leave no majority to vote a failover. Manual
    // failovers to the synced replicas spread them, writes going on.
    world.api.add_node("worker-d", None);
    let mut on = [""; 6];
    let spare = ["worker-b", "worker-c", "worker-d"];
    for (k, (master, replicas)) in world.shards().iter().enumerate() {
        on[*master] = "worker-a";
        on[replicas[0]] = spare[k];
    }
    world.api.place(&on);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (run, live) = run_while_writing(&world, &rt);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("decision=repair"), "{run:?}");
    assert!(run.stderr.contains("CLUSTER FAILOVER"), "{run:?}");
    let shards = world.shards();
    let on_a = shards.iter().filter(|(m, _)| on[*m] == "worker-a").count();
    assert!(on_a <= 1, "{shards:?} on {on:?}\n{run:?}");
    for (master, followers) in &shards {
        assert_eq!(followers.len(), 1, "{shards:?}");
        assert_ne!(on[followers[0]], on[*master], "{shards:?} on {on:?}");
    }
    let (ok, check) = cluster_check(&world.pods[0]);
    assert!(ok, "{check}");
    assert_eq!(rt.block_on(read_keys(&world.pods, KEYS)), KEYS);
    assert_eq!(rt.block_on(read_live(&world.pods, live)), live);
    reset_stats(&world.pods);
    let again = world.bootstrap(&[]);
    assert!(again.stdout.contains("decision=formed"), "{again:?}");
    assert_no_writes(&world.pods);
}

/// Redis only: twelve nodes cost ~25 s, and the Valkey rerun of the six-pod test covers the same
/// commands there.
#[test]
fn twelve_pods_with_two_replicas_each_stacked_by_shard_are_repaired() {
    if Server::under_test() == Server::Valkey {
        return;
    }
    let on: Vec<&'static str> = ["worker-a", "worker-b", "worker-c", "worker-d"]
        .iter()
        .copied()
        .cycle()
        .take(12)
        .collect();
    repaired_while_writing(193, &on, 2);
}

/// One master with two replicas and one with none, as Redis's replica migration leaves it: in
/// static mode (no placement known) the next run re-points one replica instead of waiting.
#[test]
fn replicas_that_are_not_r_per_master_are_re_pointed() {
    let nodes = start_nodes(194, 6);
    let formed = run_static(&nodes);
    assert_eq!(formed.code, 0, "{formed:?}");
    let roles = own_roles(&nodes);
    // The replica of pod 1's shard follows pod 0's master instead.
    let index_of = |id: &str| roles.iter().position(|r| r.0 == id).unwrap();
    let (moved, _) = roles
        .iter()
        .enumerate()
        .find(|(_, r)| r.1 == "replica" && index_of(&r.2) == 1)
        .unwrap();
    nodes[moved].cli(&["cluster", "replicate", &nodes[0].id()]);
    wait_until(
        "the re-pointed replica to sync",
        Duration::from_secs(30),
        || {
            nodes[moved]
                .cli(&["info", "replication"])
                .contains("master_link_status:up")
                && nodes.iter().all(|n| {
                    n.cli(&["cluster", "nodes"])
                        .lines()
                        .filter(|l| l.contains(&nodes[0].id()) && l.contains("slave"))
                        .count()
                        == 2
                })
        },
    );

    let run = run_static(&nodes);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("decision=repair"), "{run:?}");
    let roles = own_roles(&nodes);
    let mut followers = [0; 6];
    for r in roles.iter().filter(|r| r.1 == "replica") {
        followers[index_of(&r.2)] += 1;
    }
    assert_eq!(followers[..3], [1, 1, 1], "{roles:?}");
    let (ok, check) = cluster_check(&nodes[0]);
    assert!(ok, "{check}");
    assert_next_run_is_a_no_op(&nodes);
}
