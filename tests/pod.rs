//! The commands that run inside a Redis pod (`handover`, `ready`, `rejoin`), on real nodes played
//! as the kubelet plays the StatefulSet's pods: each node announces its IP and pod name, a stop is
//! the preStop hook then SIGTERM, a pod comes back seconds later on a new IP from its data
//! directory and starts `rejoin` beside Redis, and the next pod is stopped only once `ready`
//! passes (the helpers that play them are tests/common/roll.rs's).
//!
//! - A rolling restart of 6 pods (pod 5 down to pod 0) while a client writes to every shard: every
//!   master hands over before it stops, no acknowledged write is lost, the cluster is formed and
//!   clean at the end, and a bootstrap run afterwards is a no-op. Plaintext, and TLS with the
//!   production ACL user.
//! - `handover` on a replica, on an empty master, and on a master whose replica is gone: exit 0 at
//!   once, a line saying why, nothing changed.
//! - `ready`: a fresh node is ready; a replica is not while its full sync runs, and is once done.
//! - Every pod stopped at once (hooks firing), then back on new IPs with `rejoin`: whole again
//!   with no bootstrap run, no key lost, and a stranger at a peer's address left alone.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// How long a stopped pod stays away before it is back on a new IP (a real pod: seconds).
const AWAY: Duration = Duration::from_secs(5);

/// The six pods' first addresses in `block`.
fn pod_ips(block: u8) -> Vec<String> {
    (0..6).map(|i| ip(block, i)).collect()
}

/// The roll of `kubectl rollout restart`, pod 5 down to pod 0, with a client writing throughout.
fn roll(block: u8, base: &Options) {
    let mut nodes = start_pods(&pod_ips(block), base);
    let formed = run_static(&nodes);
    assert_eq!(formed.code, 0, "{formed:?}");
    wait_replicated(&nodes);
    let tags = shard_tags(&nodes[0]);
    let writer = Writer::start(&nodes[0], &nodes, tags.clone());
    std::thread::sleep(Duration::from_millis(500));

    roll_pods(
        &mut nodes,
        base,
        AWAY,
        |i| ip(block, 10 + i),
        |event, _, nodes| {
            // A pod that moved is reached at its new address.
            if event == PodEvent::Started {
                writer.seeds(nodes);
            }
        },
    );
    // Let the client see the last pod back, then stop it.
    std::thread::sleep(Duration::from_secs(1));
    let written = writer.finish();
    for (tag, shard) in tags.iter().zip(&written) {
        eprintln!(
            "shard {tag}: {} writes acknowledged, longest gap {:?}",
            shard.acked.len(),
            shard.longest
        );
    }
    assert_nothing_lost(&nodes, &tags, &written);
    wait_until("every node to agree", Duration::from_secs(60), || {
        cluster_check(&nodes[0]).0
    });
    assert_next_run_is_a_no_op(&nodes);
}

#[test]
fn a_rolling_restart_hands_every_master_over_and_loses_no_write() {
    roll(236, &Options::default());
}

#[test]
fn a_rolling_restart_over_tls_as_the_acl_user() {
    let dir = tempfile::tempdir().unwrap();
    let ips: Vec<String> = (0..16).map(|i| ip(237, i)).collect();
    let mut options = acl_options(dir.path());
    options.tls = Some(tls_for_ips(dir.path(), &ips));
    roll(237, &options);
}

#[test]
fn handover_on_a_replica_an_empty_master_or_a_master_without_its_replica_does_nothing() {
    let mut nodes = start_pods(&pod_ips(238), &Options::default());
    let formed = run_static(&nodes);
    assert_eq!(formed.code, 0, "{formed:?}");
    wait_replicated(&nodes);
    let master = nodes
        .iter()
        .position(|n| role(n) == "master")
        .expect("a master");
    let replica = nodes
        .iter()
        .position(|n| {
            role(n) == "slave" && n.cli(&["cluster", "myid"]) != nodes[master].id() && {
                let view = n.cli(&["cluster", "nodes"]);
                let me = view.lines().find(|l| l.contains("myself")).unwrap();
                me.split(' ').nth(3) == Some(nodes[master].id().as_str())
            }
        })
        .expect("the master's replica");

    let on_replica = pod_command(
        "handover",
        &nodes[replica].host_port(),
        &nodes[replica],
        &[],
    );
    assert_eq!(on_replica.code, 0, "{on_replica:?}");
    assert!(
        on_replica.stderr.contains("a replica (of"),
        "{on_replica:?}"
    );

    // A node that is in no cluster yet owns no slots.
    let fresh = RedisNode::start(&ip(238, 20), &Options::default());
    let on_fresh = pod_command("handover", &fresh.host_port(), &fresh, &[]);
    assert_eq!(on_fresh.code, 0, "{on_fresh:?}");
    assert!(on_fresh.stderr.contains("owns no slots"), "{on_fresh:?}");

    // The master's only replica is gone (its pod stopped first): nothing to hand to.
    nodes[replica].kill();
    let started = Instant::now();
    let alone = pod_command("handover", &nodes[master].host_port(), &nodes[master], &[]);
    assert_eq!(alone.code, 0, "{alone:?}");
    assert!(
        alone.stderr.contains("no replica is connected and in sync"),
        "{alone:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(15), "{alone:?}");
    assert_eq!(role(&nodes[master]), "master");
}

#[test]
fn ready_is_false_while_a_replica_syncs_and_true_once_in_sync() {
    let mut nodes = start_pods(&pod_ips(239), &Options::default());
    let formed = run_static(&nodes);
    assert_eq!(formed.code, 0, "{formed:?}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(write_keys(&nodes, 20_000));
    wait_replicated(&nodes);

    // Pod 5 loses its volume and comes back empty: a fresh node is ready (formation needs it).
    wipe(&mut nodes[5]);
    let addr = nodes[5].addr.ip().to_string();
    nodes[5].restart_on(&addr, &pod_options(&Options::default(), &addr, 5));
    let fresh = pod_command("ready", &nodes[5].host_port(), &nodes[5], &[]);
    assert_eq!(fresh.code, 0, "{fresh:?}");
    assert!(fresh.stdout.contains("knows no other node"), "{fresh:?}");

    // It becomes a replica of master 0, whose full sync of its 20,000 keys starts 3 s late
    // (repl-diskless-sync-delay), as a large dataset's would take seconds.
    let master = &nodes[0];
    assert_eq!(role(master), "master");
    master.cli(&["config", "set", "repl-diskless-sync", "yes"]);
    master.cli(&["config", "set", "repl-diskless-sync-delay", "3"]);
    let meet = nodes[5].cli(&["cluster", "meet", &master.addr.ip().to_string(), "6379"]);
    assert_eq!(meet, "OK");
    let master_id = master.id();
    wait_until("the handshake", Duration::from_secs(20), || {
        nodes[5].cli(&["cluster", "replicate", &master_id]) == "OK"
    });
    let mut said = Vec::new();
    let started = Instant::now();
    loop {
        let run = pod_command("ready", &nodes[5].host_port(), &nodes[5], &[]);
        said.push((run.code, run.stdout.clone() + &run.stderr));
        if run.code == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never ready: {said:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        said.iter()
            .any(|(code, text)| *code == 1 && text.contains("not ready: a replica")),
        "never not-ready during the sync: {said:#?}"
    );
    let last = &said.last().unwrap().1;
    assert!(last.contains("in sync with its master"), "{said:#?}");
    let info = nodes[5].cli(&["info", "keyspace"]);
    assert!(
        info.contains("keys="),
        "the replica holds the data once ready: {info}"
    );
}

#[test]
fn every_pod_stopped_at_once_rejoins_by_itself_on_new_ips() {
    let base = Options::default();
    let mut nodes = start_pods(&pod_ips(240), &base);
    let formed = run_static(&nodes);
    assert_eq!(formed.code, 0, "{formed:?}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(write_keys(&nodes, 2_000));
    wait_replicated(&nodes);
    let ids: Vec<String> = nodes.iter().map(RedisNode::id).collect();

    // Every hook fires at once (the masters hand over to replicas that are stopping too), then
    // every pod gets SIGTERM.
    let hooks: Vec<_> = nodes
        .iter()
        .map(|n| {
            let list = n.host_port();
            let access = access_env(n);
            std::thread::spawn(move || {
                let mut env = vec![("BOOTSTRAP_NODES", list.as_str())];
                env.extend(access.iter().map(|(k, v)| (*k, v.as_str())));
                run_binary(&["handover"], &env)
            })
        })
        .collect();
    for hook in hooks {
        let run = hook.join().unwrap();
        assert!(run.code == 0 || run.code == 1, "{run:?}");
    }
    for node in nodes.iter_mut() {
        node.terminate();
    }
    std::thread::sleep(Duration::from_secs(2));

    // A stranger (another cluster's node) answers at an address the pods will ask too.
    let stranger = RedisNode::start(&ip(240, 30), &Options::default());
    let stranger_id = stranger.id();

    // Back on new IPs, each starting rejoin beside Redis, in reverse order with a pause between.
    let mut rejoins = Vec::new();
    for i in (0..6).rev() {
        let new_ip = ip(240, 20 + i);
        nodes[i].restart_on(&new_ip, &pod_options(&base, &new_ip, i));
        let peers: Vec<String> = (0..6)
            .filter(|j| *j != i)
            .map(|j| format!("{}:6379", ip(240, 20 + j)))
            .chain(std::iter::once(stranger.host_port()))
            .collect();
        let list = format!("{},{}", nodes[i].host_port(), peers.join(","));
        let access = access_env(&nodes[i]);
        rejoins.push(std::thread::spawn(move || {
            let mut env = vec![
                ("BOOTSTRAP_NODES", list.as_str()),
                ("BOOTSTRAP_REJOIN_TIMEOUT", "90s"),
            ];
            env.extend(access.iter().map(|(k, v)| (*k, v.as_str())));
            run_binary(&["rejoin"], &env)
        }));
        std::thread::sleep(Duration::from_millis(700));
    }
    let last_start = Instant::now();
    wait_until(
        "cluster_state:ok on every node, each knowing 6 connected nodes",
        Duration::from_secs(90),
        || {
            nodes.iter().all(|n| {
                let info = n.cli(&["cluster", "info"]);
                let view = n.cli(&["cluster", "nodes"]);
                info.contains("cluster_state:ok")
                    && view.lines().count() == 6
                    && view.lines().all(|l| {
                        l.contains(" connected") && !l.contains("fail") && !l.contains("noaddr")
                    })
            })
        },
    );
    eprintln!(
        "whole again {:?} after the last pod started",
        last_start.elapsed()
    );
    for rejoin in rejoins {
        let run = rejoin.join().unwrap();
        assert_eq!(run.code, 0, "{run:?}");
        assert!(
            run.stderr.contains("every known node is connected"),
            "{run:?}"
        );
        if run.stderr.contains(&stranger.host_port()) {
            assert!(run.stderr.contains("left alone"), "{run:?}");
        }
    }
    // The same nodes (IDs), and the stranger met by no one.
    let mut now: Vec<String> = nodes.iter().map(RedisNode::id).collect();
    let mut before = ids.clone();
    now.sort();
    before.sort();
    assert_eq!(now, before);
    assert_eq!(
        stranger
            .cli(&["cluster", "info"])
            .lines()
            .find(|l| l.starts_with("cluster_known_nodes"))
            .unwrap()
            .trim(),
        "cluster_known_nodes:1"
    );
    for node in &nodes {
        assert!(!node.cli(&["cluster", "nodes"]).contains(&stranger_id));
    }
    assert_eq!(rt.block_on(read_keys(&nodes, 2_000)), 2_000);
    let (ok, check) = cluster_check(&nodes[0]);
    assert!(ok, "{check}");
}
