//! Static mode end to end: real redis-server "pods" on loopback, the real binary as a subprocess.

mod common;

use common::*;

/// The node's own `CLUSTER NODES` line, split into fields.
fn myself(node: &RedisNode) -> Vec<String> {
    node.cli(&["cluster", "nodes"])
        .lines()
        .find(|l| l.contains("myself"))
        .expect("a myself line")
        .split(' ')
        .map(str::to_string)
        .collect()
}

/// Asserts pods 0..M are masters with the planned slots and pod M+k replicates pod k mod M.
fn assert_layout(nodes: &[RedisNode], masters: usize, slots: &[&str]) {
    let ids: Vec<String> = nodes.iter().map(RedisNode::id).collect();
    for (i, node) in nodes.iter().enumerate() {
        let me = myself(node);
        if i < masters {
            assert!(
                me[2].contains("master"),
                "pod {i} should be a master: {me:?}"
            );
            assert_eq!(me[8..].join(" "), slots[i], "slots of pod {i}");
        } else {
            assert!(
                me[2].contains("slave"),
                "pod {i} should be a replica: {me:?}"
            );
            assert_eq!(me[3], ids[(i - masters) % masters], "master of pod {i}");
        }
    }
}

fn formed(nodes: &[RedisNode], extra: &[(&str, &str)]) -> Run {
    let list = node_list(nodes);
    let mut env = vec![
        ("BOOTSTRAP_NODES", list.as_str()),
        ("BOOTSTRAP_CONVERGE_TIMEOUT", "60s"),
    ];
    env.extend_from_slice(extra);
    bootstrap(&env)
}

/// Six fresh nodes become 3 masters (redis-cli's slot split) and 3 replicas 3→0, 4→1, 5→2.
#[test]
fn six_fresh_nodes_form_the_guides_cluster() {
    let nodes = start_nodes(10, 6);
    let run = formed(&nodes, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_layout(&nodes, 3, &["0-5460", "5461-10922", "10923-16383"]);
    for node in &nodes {
        let (ok, text) = cluster_check(node);
        assert!(ok, "redis-cli --cluster check from {}:\n{text}", node.addr);
    }
    assert!(
        run.stdout
            .contains("outcome=formed decision=fresh nodes=6 masters=3"),
        "{run:?}"
    );
    assert_eq!(
        run.stdout
            .lines()
            .filter(|l| l.contains(" replica "))
            .count(),
        3,
        "{run:?}"
    );
}

/// Nine nodes with two replicas per master: 3 masters, each followed by two replicas.
#[test]
fn nine_nodes_with_two_replicas_per_master() {
    let nodes = start_nodes(11, 9);
    let run = formed(&nodes, &[("BOOTSTRAP_REPLICAS_PER_MASTER", "2")]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_layout(&nodes, 3, &["0-5460", "5461-10922", "10923-16383"]);
    let (ok, text) = cluster_check(&nodes[0]);
    assert!(ok, "{text}");
    assert!(text.contains("2 additional replica(s)"), "{text}");
}

/// A second run on a formed cluster exits 0, sends no command that changes state, and leaves
/// topology and epochs as they were.
#[test]
fn a_second_run_changes_nothing() {
    let nodes = start_nodes(12, 6);
    assert_eq!(formed(&nodes, &[]).code, 0);
    let before: Vec<_> = nodes
        .iter()
        .map(|n| (topology(n), n.cli(&["cluster", "info"])))
        .collect();
    for node in &nodes {
        node.cli(&["config", "resetstat"]);
    }
    let run = formed(&nodes, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("decision=formed") && run.stdout.contains("steps=0"),
        "{run:?}"
    );
    for (node, (topology_before, info_before)) in nodes.iter().zip(before) {
        assert_eq!(topology(node), topology_before, "topology of {}", node.addr);
        let epochs = |info: &str| -> Vec<String> {
            info.lines()
                .filter(|l| l.contains("epoch"))
                .map(str::to_string)
                .collect()
        };
        assert_eq!(
            epochs(&node.cli(&["cluster", "info"])),
            epochs(&info_before)
        );
        let stats = node.cli(&["info", "commandstats"]);
        for write in [
            "cluster|meet",
            "cluster|addslots",
            "cluster|replicate",
            "cluster|set-config-epoch",
        ] {
            assert!(
                !stats.contains(&format!("cmdstat_{write}")),
                "{} got {write}:\n{stats}",
                node.addr
            );
        }
    }
}

/// `BOOTSTRAP_DRY_RUN=true` prints the plan and leaves fresh nodes alone.
#[test]
fn a_dry_run_prints_the_plan_and_changes_nothing() {
    let nodes = start_nodes(13, 6);
    let run = formed(&nodes, &[("BOOTSTRAP_DRY_RUN", "true")]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("would run") && run.stdout.contains("CLUSTER ADDSLOTSRANGE 0 5460"),
        "{run:?}"
    );
    assert!(run.stdout.contains("outcome=dry-run"), "{run:?}");
    for node in &nodes {
        let info = node.cli(&["cluster", "info"]);
        assert!(
            info.contains("cluster_known_nodes:1") && info.contains("cluster_slots_assigned:0"),
            "{info}"
        );
    }
}

/// JSON mode: every log line and every report line is one JSON object.
#[test]
fn json_mode_writes_one_object_per_line() {
    let nodes = start_nodes(14, 6);
    let run = formed(&nodes, &[("BOOTSTRAP_LOG_FORMAT", "json")]);
    assert_eq!(run.code, 0, "{run:?}");
    for line in run.stderr.lines().chain(run.stdout.lines()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v.is_object(), "{line}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["outcome"], "formed");
    assert_eq!(summary["masters"], 3);
    assert!(summary["phases"]["converge_ms"].is_u64(), "{summary}");
    assert!(
        run.stderr.lines().any(|l| l.contains("\"phase\":\"form\"")),
        "{run:?}"
    );
}

/// With requirepass on every node, BOOTSTRAP_PASSWORD forms the cluster; a wrong one exits 2.
#[test]
fn a_password_is_sent_with_auth() {
    let options = Options {
        password: Some("s3cret".into()),
        ..Options::default()
    };
    let nodes = start_nodes_with(15, 6, &options);
    let wrong = formed(&nodes, &[("BOOTSTRAP_PASSWORD", "wrong")]);
    assert_eq!(wrong.code, 2, "{wrong:?}");
    assert!(wrong.stderr.contains("BOOTSTRAP_PASSWORD"), "{wrong:?}");
    assert!(
        !wrong.stderr.contains("wrong"),
        "the password must not be logged: {wrong:?}"
    );
    let missing = formed(&nodes, &[]);
    assert_eq!(missing.code, 2, "{missing:?}");
    let run = formed(&nodes, &[("BOOTSTRAP_PASSWORD", "s3cret")]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(!run.stderr.contains("s3cret") && !run.stdout.contains("s3cret"));
    let info = redis_cli(nodes[3].addr, Some("s3cret"), &["info", "replication"]);
    assert!(info.contains("master_link_status:up"), "{info}");
}

/// A node that never answers makes the run fail with exit 1 after the timeout, naming it.
#[test]
fn an_unreachable_node_exits_1_naming_it() {
    let mut nodes = start_nodes(16, 6);
    nodes[4].kill();
    let list = node_list(&nodes);
    let run = bootstrap(&[
        ("BOOTSTRAP_NODES", &list),
        ("BOOTSTRAP_READY_TIMEOUT", "2s"),
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("127.0.16.15:6379") && run.stderr.contains("unreachable"),
        "{run:?}"
    );
    assert!(
        nodes[0]
            .cli(&["cluster", "info"])
            .contains("cluster_known_nodes:1")
    );
}

/// Bad configuration exits 2 with one line naming the variable.
#[test]
fn bad_configuration_exits_2_naming_the_variable() {
    for (var, value) in [
        ("BOOTSTRAP_NODES", "127.0.0.1"),
        ("BOOTSTRAP_REPLICAS_PER_MASTER", "-1"),
        ("BOOTSTRAP_READY_TIMEOUT", "forever"),
        ("BOOTSTRAP_LOG_FORMAT", "yaml"),
        ("BOOTSTRAP_DRY_RUN", "perhaps"),
        ("BOOTSTRAP_NODE", "127.0.0.1:6379"),
    ] {
        let run = bootstrap(&[(var, value)]);
        assert_eq!(run.code, 2, "{var}: {run:?}");
        assert_eq!(run.stderr.trim().lines().count(), 1, "{var}: {run:?}");
        assert!(run.stderr.contains(var), "{var}: {run:?}");
    }
}

/// `--help` lists every variable and the exit codes; `--version` prints the version.
#[test]
fn help_and_version() {
    let bin = env!("CARGO_BIN_EXE_redis-cluster-bootstrap");
    let help = std::process::Command::new(bin)
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success());
    for (name, _, _) in redis_cluster_bootstrap::config::VARIABLES {
        assert!(text.contains(name), "--help lacks {name}");
    }
    assert!(text.contains("Exit codes"), "{text}");
    let version = std::process::Command::new(bin)
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("redis-cluster-bootstrap {}", env!("CARGO_PKG_VERSION"))
    );
    let bad = std::process::Command::new(bin)
        .arg("--frobnicate")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
