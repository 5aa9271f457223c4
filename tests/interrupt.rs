//! SIGTERM (Kubernetes evicting or deleting the Job's pod) in the middle of forming: the run
//! stops at a safe point, says what it did and what remains, exits 1, and a re-run finishes.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::*;

#[test]
fn sigterm_while_forming_stops_at_a_safe_point_and_a_rerun_finishes() {
    let mut nodes = start_nodes(114, 6);
    // Pod 2's cluster bus cannot be reached yet, so its replica (pod 5) never completes the
    // handshake with it and its CLUSTER REPLICATE waits: the run is held in the middle of forming,
    // deterministically.
    let hidden = Options::hidden_bus();
    nodes[2].restart_on(&ip(114, 2), &hidden);
    let list = node_list(&nodes);
    let env = [
        ("BOOTSTRAP_NODES", list.as_str()),
        ("BOOTSTRAP_CONVERGE_TIMEOUT", "60s"),
    ];
    let mut child = bootstrap_command(&env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = Vec::new();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let replicated = line.contains("CLUSTER REPLICATE");
        log.push(line);
        if replicated {
            break;
        }
    }
    assert!(
        log.last().is_some_and(|l| l.contains("CLUSTER REPLICATE")),
        "{}",
        log.join("\n")
    );
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    log.extend(lines.map(Result::unwrap));
    let status = child.wait().unwrap();
    let log = log.join("\n");
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("received SIGTERM: stopping at the next safe point"),
        "{log}"
    );
    // Pod 5's REPLICATE remains (and another replica's, when its handshake was slower than the
    // signal).
    let stopped = log
        .lines()
        .find(|l| l.contains("interrupted by SIGTERM during form: ran "))
        .unwrap_or_else(|| panic!("no interruption line:\n{log}"));
    let remaining = stopped.split_once("remaining: ").map_or("", |(_, r)| r);
    assert!(
        remaining.contains("node-5 (127.0.114.16:6379): CLUSTER REPLICATE")
            && stopped.contains("a re-run finishes it"),
        "{log}"
    );

    // The pod comes back with a reachable bus; the next run finishes what remained.
    nodes[2].restart_on(&ip(114, 2), &Options::default());
    let rerun = bootstrap(&[
        ("BOOTSTRAP_NODES", list.as_str()),
        ("BOOTSTRAP_CONVERGE_TIMEOUT", "60s"),
    ]);
    assert_eq!(rerun.code, 0, "{rerun:?}");
    assert!(rerun.stdout.contains("decision=partial"), "{rerun:?}");
    let (ok, text) = cluster_check(&nodes[0]);
    assert!(ok, "{text}");
}
