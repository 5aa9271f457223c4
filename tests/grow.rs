//! *grow* on real nodes: the StatefulSet grows by whole shards; the new pods become masters and
//! replicas, every master ends with 16384/M ±1 slots, and no key is lost, including keys written
//! while the slots move and across a SIGKILL of the tool in the middle of a move.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;

const KEYS: usize = 20_000;

/// The pods `from..to` of `block`, started empty beside the formed ones.
fn add_pods(nodes: &mut Vec<RedisNode>, block: u8, to: usize) {
    add_pods_with(nodes, block, to, &Options::default());
}

/// [`add_pods`] with options.
fn add_pods_with(nodes: &mut Vec<RedisNode>, block: u8, to: usize, options: &Options) {
    let from = nodes.len();
    let ips: Vec<String> = (from..to).map(|i| ip(block, i)).collect();
    nodes.extend(std::thread::scope(|s| {
        let started: Vec<_> = ips
            .iter()
            .map(|ip| s.spawn(move || RedisNode::start(ip, options)))
            .collect();
        started
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    }));
}

/// Runs the binary on `nodes` with R replicas per master.
fn run(nodes: &[RedisNode], replicas: &str) -> Run {
    let list = node_list(nodes);
    bootstrap(&env(&list, replicas))
}

fn env<'a>(list: &'a str, replicas: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("BOOTSTRAP_NODES", list),
        ("BOOTSTRAP_REPLICAS_PER_MASTER", replicas),
        ("BOOTSTRAP_READY_TIMEOUT", "10s"),
        ("BOOTSTRAP_CONVERGE_TIMEOUT", "60s"),
    ]
}

/// Every master's slot count, by its own account.
fn slot_counts(nodes: &[RedisNode]) -> Vec<usize> {
    own_roles(nodes)
        .into_iter()
        .filter(|(_, role, _, _)| role.contains("master"))
        .map(|(_, _, _, slots)| {
            slots
                .split_whitespace()
                .map(|r| match r.split_once('-') {
                    Some((a, b)) => b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1,
                    None => 1,
                })
                .sum()
        })
        .collect()
}

/// No node, master or replica, shows a slot open (importing or migrating) in its own line.
fn assert_none_open(nodes: &[RedisNode]) {
    for (node, (_, _, _, slots)) in nodes.iter().zip(own_roles(nodes)) {
        assert!(!slots.contains('['), "{} shows {slots}", node.addr);
    }
}

/// The grown cluster: `masters` masters within one slot of each other, `redis-cli --cluster check`
/// clean, every key of before and of during readable, and the next run a strict no-op.
fn assert_grown(
    nodes: &[RedisNode],
    masters: usize,
    replicas: &str,
    live: usize,
    rt: &tokio::runtime::Runtime,
) {
    let counts = slot_counts(nodes);
    assert_eq!(counts.len(), masters, "{counts:?}");
    let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
    assert!(max - min <= 1, "unbalanced: {counts:?}");
    assert_none_open(nodes);
    let (ok, text) = cluster_check(&nodes[0]);
    assert!(ok, "{text}");
    assert_eq!(rt.block_on(read_keys(nodes, KEYS)), KEYS);
    assert_eq!(rt.block_on(read_live(nodes, live)), live);
    reset_stats(nodes);
    let again = run(nodes, replicas);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("decision=formed"), "{again:?}");
    assert_no_writes(nodes);
}

/// Forms `old` pods with R = `replicas`, writes [`KEYS`] keys, adds pods up to `new`, and grows
/// while a client keeps writing; returns the nodes and how many live writes were acknowledged.
fn grow_while_writing(
    block: u8,
    old: usize,
    new: usize,
    replicas: &str,
    rt: &tokio::runtime::Runtime,
) -> (Vec<RedisNode>, usize) {
    let mut nodes = start_nodes(block, old);
    let formed = run(&nodes, replicas);
    assert_eq!(formed.code, 0, "{formed:?}");
    rt.block_on(write_keys(&nodes, KEYS));
    add_pods(&mut nodes, block, new);
    // The servers' default cluster-migration-barrier (1): with 2 replicas per master, Redis may
    // hand one to a master that just got its first slots; the run repairs the counts.
    // A dry run prints every move and changes nothing.
    reset_stats(&nodes);
    let list = node_list(&nodes);
    let mut dry = env(&list, replicas);
    dry.push(("BOOTSTRAP_DRY_RUN", "true"));
    let dry = bootstrap(&dry);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(dry.stdout.contains("would run slot 0-"), "{dry:?}");
    assert!(dry.stdout.contains(&format!("→ node-{old}")), "{dry:?}");
    assert_no_writes(&nodes);
    let (stop, written) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let addrs: Vec<_> = nodes[..old].iter().map(|n| n.addr).collect();
    let task = rt.spawn(writer(addrs, stop.clone(), written.clone()));
    let grown = run(&nodes, replicas);
    stop.store(true, Ordering::Relaxed);
    rt.block_on(task).unwrap();
    assert_eq!(grown.code, 0, "{grown:?}");
    assert!(grown.stdout.contains("decision=grow"), "{grown:?}");
    assert!(
        grown.stderr.contains("→"),
        "the moves are logged: {grown:?}"
    );
    // The phase timings, for `--nocapture`.
    grown
        .stderr
        .lines()
        .filter(|l| l.contains(" done in ") || l.contains("moved "))
        .for_each(|l| eprintln!("{l}"));
    let live = written.load(Ordering::Relaxed);
    assert!(live > 0, "the writer wrote nothing while the cluster grew");
    (nodes, live)
}

#[test]
fn six_to_eight_moves_a_quarter_of_the_slots_with_no_key_lost() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (nodes, live) = grow_while_writing(159, 6, 8, "1", &rt);
    assert_grown(&nodes, 4, "1", live, &rt);
}

/// R = 2 with the servers' default migration barrier: grown 9 → 12 while a client writes, then
/// drained back to 9 while it writes again; after each, no node shows a slot open (on Valkey a
/// replica may keep a SETSLOT its master never applied: the run clears it).
#[test]
fn nine_to_twelve_and_drained_back_with_two_replicas_per_master() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (nodes, live) = grow_while_writing(160, 9, 12, "2", &rt);
    assert_grown(&nodes, 4, "2", live, &rt);
    let (stop, written) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let addrs: Vec<_> = nodes[..9].iter().map(|n| n.addr).collect();
    let task = rt.spawn(writer_from(addrs, "drained", stop.clone(), written.clone()));
    let list = node_list(&nodes);
    let mut draining = env(&list, "2");
    draining.push(("BOOTSTRAP_DRAIN_TO", "9"));
    let drained = bootstrap(&draining);
    stop.store(true, Ordering::Relaxed);
    rt.block_on(task).unwrap();
    assert_eq!(drained.code, 0, "{drained:?}");
    assert!(drained.stdout.contains("decision=drain"), "{drained:?}");
    assert_none_open(&nodes);
    // Pods 9-11 hold no slot (Redis may turn the emptied master into a replica); the three
    // kept masters hold them all, within one slot of each other.
    let counts: Vec<usize> = slot_counts(&nodes).into_iter().filter(|c| *c > 0).collect();
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(
        counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1,
        "{counts:?}"
    );
    for (node, (_, _, _, slots)) in nodes.iter().zip(own_roles(&nodes)).skip(9) {
        assert!(slots.is_empty(), "{} still holds {slots}", node.addr);
    }
    assert_eq!(rt.block_on(read_keys(&nodes, KEYS)), KEYS);
    assert_eq!(rt.block_on(read_live(&nodes, live)), live);
    let during = written.load(Ordering::Relaxed);
    assert!(
        during > 0,
        "the writer wrote nothing while the cluster drained"
    );
    assert_eq!(rt.block_on(read_from(&nodes, "drained", during)), during);
}

/// True when some node shows an open slot (`[slot->-id]` or `[slot-<-id]`).
fn slot_open(conns: &mut [redis::Connection]) -> bool {
    conns.iter_mut().any(|c| {
        redis::cmd("CLUSTER")
            .arg("NODES")
            .query::<String>(c)
            .is_ok_and(|text| text.contains("->-") || text.contains("-<-"))
    })
}

#[test]
fn a_sigkill_in_the_middle_of_a_move_loses_no_key_and_the_next_run_finishes() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut nodes = formed_with_keys(161, KEYS, &rt);
    add_pods(&mut nodes, 161, 8);
    let list = node_list(&nodes);
    let mut conns: Vec<redis::Connection> = nodes[..3]
        .iter()
        .map(|n| {
            redis::Client::open(format!("redis://{}/", n.addr))
                .unwrap()
                .get_connection()
                .unwrap()
        })
        .collect();
    // Freeze the tool the moment a slot is open, check it still is, then SIGKILL it: the kill
    // lands inside a move, deterministically.
    let mut child = bootstrap_command(&env(&list, "1"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    };
    let started = std::time::Instant::now();
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before a slot was seen open"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no slot was ever open"
        );
        if slot_open(&mut conns) {
            signal("-STOP");
            if slot_open(&mut conns) {
                break;
            }
            signal("-CONT");
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(slot_open(&mut conns), "the kill left no slot open");
    let resumed = run(&nodes, "1");
    assert_eq!(resumed.code, 0, "{resumed:?}");
    assert!(resumed.stdout.contains("decision=grow"), "{resumed:?}");
    assert!(!slot_open(&mut conns));
    wait_replicated(&nodes);
    assert_grown(&nodes, 4, "1", 0, &rt);
}

/// With `requirepass` everywhere, `MIGRATE` authenticates to the new master (a `MIGRATE` without
/// AUTH fails there with NOAUTH), the password is never logged, and the old masters' functions
/// are copied to the new one, as `redis-cli --cluster add-node` does. Keys share 200 hash tags, as
/// applications' keys often do, so most slots are empty.
#[test]
fn with_a_password_migrate_authenticates_and_functions_follow() {
    const PASSWORD: &str = "s3cret";
    let options = Options {
        password: Some(PASSWORD.into()),
        ..Options::default()
    };
    let mut nodes = start_nodes_with(162, 6, &options);
    let list = node_list(&nodes);
    let mut with_password = env(&list, "1");
    with_password.push(("BOOTSTRAP_PASSWORD", PASSWORD));
    let formed = bootstrap(&with_password);
    assert_eq!(formed.code, 0, "{formed:?}");
    let library = "#!lua name=grown\nredis.register_function('hello', function() return 'hi' end)";
    for n in &nodes[..3] {
        let loaded = redis_cli(n.addr, Some(PASSWORD), &["function", "load", library]);
        assert_eq!(loaded, "grown");
    }
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| format!("redis://:{PASSWORD}@{}/", n.addr))
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    const FEW: usize = 2000;
    // 200 hash tags: most groups of 64 slots hold no key at all.
    let tagged = |i: usize| format!("{{t{}}}:key:{i}", i % 200);
    let written = rt.block_on(async {
        let client = redis::cluster::ClusterClient::new(urls.clone()).unwrap();
        let mut conn = client.get_async_connection().await.unwrap();
        for i in 0..FEW {
            let _: () = redis::cmd("SET")
                .arg(tagged(i))
                .arg(i)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        FEW
    });
    add_pods_with(&mut nodes, 162, 8, &options);
    let list = node_list(&nodes);
    let mut with_password = env(&list, "1");
    with_password.push(("BOOTSTRAP_PASSWORD", PASSWORD));
    let grown = bootstrap(&with_password);
    assert_eq!(grown.code, 0, "{grown:?}");
    assert!(grown.stdout.contains("decision=grow"), "{grown:?}");
    assert!(!grown.stderr.contains(PASSWORD) && !grown.stdout.contains(PASSWORD));
    let functions = redis_cli(nodes[6].addr, Some(PASSWORD), &["function", "list"]);
    assert!(functions.contains("grown"), "{functions}");
    let moved = redis_cli(nodes[6].addr, Some(PASSWORD), &["dbsize"]);
    assert!(
        moved.parse::<usize>().unwrap() > 0,
        "node-6 holds no key: {moved}"
    );
    let found = rt.block_on(async {
        let urls: Vec<String> = nodes
            .iter()
            .map(|n| format!("redis://:{PASSWORD}@{}/", n.addr))
            .collect();
        let client = redis::cluster::ClusterClient::new(urls).unwrap();
        let mut conn = client.get_async_connection().await.unwrap();
        let mut found = 0;
        for i in 0..written {
            let v: Option<usize> = redis::cmd("GET")
                .arg(tagged(i))
                .query_async(&mut conn)
                .await
                .unwrap();
            found += usize::from(v == Some(i));
        }
        found
    });
    assert_eq!(found, FEW);
}
