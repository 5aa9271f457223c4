//! The stress run behind `scripts/stress-moves.sh`, not part of the suite (`#[ignore]`): grows
//! 9 → 12 pods with R = 2 and drains back to 9, each while a client writes, at the servers'
//! default `cluster-migration-barrier`, on several clusters at once and again and again. What it
//! catches needs load: a replica slow to acknowledge a `SETSLOT` (Valkey waits for it, 2 s at
//! most, per command) once made a run give up on a round trip with `SETSLOT`s still queued, and
//! the replicas kept slots open that their masters never opened. Every run must exit 0 and
//! leave no slot open on any node, every key readable.
//!
//! `BOOTSTRAP_STRESS_RUNS` (default 5) rounds of `BOOTSTRAP_STRESS_CLUSTERS` (default 2) clusters
//! at once, on 127.34.100.0/24 and up; `BOOTSTRAP_STRESS_BIN` runs another build of the binary
//! (an older commit's, to compare).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::*;

/// A number from the environment, or `default`.
fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs the binary under test (or `BOOTSTRAP_STRESS_BIN`) with these variables.
fn run(env: &[(&str, &str)]) -> Run {
    let Ok(bin) = std::env::var("BOOTSTRAP_STRESS_BIN") else {
        return bootstrap(env);
    };
    let out = std::process::Command::new(bin)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Each node's own open slots, as `addr: markers`, for the nodes that show any.
fn open_slots(nodes: &[RedisNode]) -> Vec<String> {
    nodes
        .iter()
        .zip(own_roles(nodes))
        .filter(|(_, (_, _, _, slots))| slots.contains('['))
        .map(|(n, (_, _, _, slots))| format!("{}: {slots}", n.addr))
        .collect()
}

/// One run on pods `block`: a grow 9 → 12 then a drain back to 9, each while a client writes.
/// `Err` says what went wrong.
fn grow_and_drain(block: usize, rt: &tokio::runtime::Runtime) -> Result<(), String> {
    let ips: Vec<String> = (0..12)
        .map(|i| format!("127.34.{block}.{}", 11 + i))
        .collect();
    let start = |ips: &[String]| -> Vec<RedisNode> {
        std::thread::scope(|s| {
            let started: Vec<_> = ips
                .iter()
                .map(|ip| s.spawn(move || RedisNode::start(ip, &Options::default())))
                .collect();
            started.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    let mut nodes = start(&ips[..9]);
    let list = node_list(&nodes);
    let env = |list: &str, drain: Option<&'static str>| -> Run {
        let mut env = vec![
            ("BOOTSTRAP_NODES", list),
            ("BOOTSTRAP_REPLICAS_PER_MASTER", "2"),
            ("BOOTSTRAP_CONVERGE_TIMEOUT", "120s"),
        ];
        env.extend(drain.map(|d| ("BOOTSTRAP_DRAIN_TO", d)));
        run(&env)
    };
    let formed = env(&list, None);
    if formed.code != 0 {
        return Err(format!("forming: {formed:?}"));
    }
    rt.block_on(write_keys(&nodes, 20_000));
    nodes.extend(start(&ips[9..]));
    let list = node_list(&nodes);
    for (what, drain) in [("grow", None), ("drain", Some("9"))] {
        let (stop, written) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        );
        let addrs: Vec<_> = nodes[..9].iter().map(|n| n.addr).collect();
        let task = rt.spawn(writer_from(addrs, what, stop.clone(), written.clone()));
        let moved = env(&list, drain);
        stop.store(true, Ordering::Relaxed);
        rt.block_on(task).unwrap();
        let open = open_slots(&nodes);
        if moved.code != 0 || !open.is_empty() {
            let tail: Vec<&str> = moved.stderr.lines().rev().take(12).collect();
            return Err(format!(
                "{what}: exit {}, {} node(s) with a slot open {open:#?}\n{}",
                moved.code,
                open.len(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
        let count = written.load(Ordering::Relaxed);
        let found = rt.block_on(read_from(&nodes, what, count));
        if found != count {
            return Err(format!("{what}: {found} of {count} writes read back"));
        }
    }
    match rt.block_on(read_keys(&nodes, 20_000)) {
        20_000 => Ok(()),
        found => Err(format!("{found} of 20000 keys read back")),
    }
}

#[test]
#[ignore = "a stress run: scripts/stress-moves.sh"]
fn grow_and_drain_with_two_replicas_again_and_again() {
    let (runs, clusters) = (
        setting("BOOTSTRAP_STRESS_RUNS", 5),
        setting("BOOTSTRAP_STRESS_CLUSTERS", 2),
    );
    let mut failed = Vec::new();
    for round in 0..runs {
        let results: Vec<Result<(), String>> = std::thread::scope(|s| {
            let running: Vec<_> = (0..clusters)
                .map(|c| {
                    s.spawn(move || {
                        let rt = tokio::runtime::Runtime::new().unwrap();
                        grow_and_drain(100 + (round * clusters + c) % 100, &rt)
                    })
                })
                .collect();
            running.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (c, result) in results.into_iter().enumerate() {
            let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
            match result {
                Ok(()) => eprintln!("round {round} cluster {c}: ok (load {load})"),
                Err(why) => {
                    eprintln!("round {round} cluster {c}: FAILED (load {load}): {why}");
                    failed.push(format!("round {round} cluster {c}"));
                }
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} runs failed: {failed:?}",
        failed.len(),
        runs * clusters
    );
}
