//! The binary's outer interface, as a log pipeline and an API server's audit log see it: JSON mode
//! prints nothing but JSON on either stream, configuration errors look like every other error, a
//! non-UTF-8 environment is handled (not a panic), and every API request names the program.
//!
//! Loopback blocks 40–42 (see `common/BLOCKS.md`).

mod common;
// Only the server and its record of requests are used here, not the scripted stages.
#[allow(unused_imports)]
mod fake_api;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;

use redis_cluster_bootstrap::kubernetes::USER_AGENT;
use serde_json::Value;

use common::Run;
use fake_api::FakeApi;

/// Runs the binary with exactly these variables (plus PATH), which may be any bytes.
fn bootstrap_os(env: &[(&OsStr, &OsStr)], args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_redis-cluster-bootstrap"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run the bootstrap binary");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn run(env: &[(&str, &str)], args: &[&str]) -> Run {
    let env: Vec<(&OsStr, &OsStr)> = env
        .iter()
        .map(|(k, v)| (OsStr::new(k), OsStr::new(v)))
        .collect();
    bootstrap_os(&env, args)
}

/// Every line of `text` parsed as one JSON object; panics naming the first line that is not.
fn json_lines(text: &str, stream: &str, run: &Run) -> Vec<Value> {
    text.lines()
        .map(|line| match serde_json::from_str::<Value>(line) {
            Ok(value) if value.is_object() => value,
            _ => panic!("a line on {stream} is not one JSON object: {line:?}\n{run:?}"),
        })
        .collect()
}

/// The ERROR line a text-mode failure ends with: `<timestamp> ERROR <message> exit_code=<code>`.
fn text_error_line(run: &Run) -> &str {
    let last = run.stderr.lines().last().unwrap_or_default();
    let fields: Vec<&str> = last.split_whitespace().collect();
    assert!(
        fields.len() > 3
            && fields[1] == "ERROR"
            && last.ends_with(&format!("exit_code={}", run.code)),
        "not an error log line: {last:?}\n{run:?}"
    );
    last
}

#[test]
fn json_mode_prints_only_json_on_both_streams_even_in_a_dry_run() {
    let nodes = common::start_nodes(40, 6);
    let list = common::node_list(&nodes);

    let dry = run(
        &[
            ("BOOTSTRAP_NODES", &list),
            ("BOOTSTRAP_LOG_FORMAT", "json"),
            ("BOOTSTRAP_DRY_RUN", "true"),
        ],
        &[],
    );

    assert_eq!(dry.code, 0, "{dry:?}");
    let out = json_lines(&dry.stdout, "stdout", &dry);
    json_lines(&dry.stderr, "stderr", &dry);
    // The plan of a fresh 6-node cluster: 3 ADDSLOTSRANGE, 6 epochs, MEETs, 3 REPLICATE.
    let planned: Vec<&str> = out.iter().filter_map(|o| o["would_run"].as_str()).collect();
    assert!(
        planned
            .iter()
            .filter(|s| s.contains("CLUSTER ADDSLOTSRANGE"))
            .count()
            == 3
            && planned
                .iter()
                .filter(|s| s.contains("CLUSTER REPLICATE"))
                .count()
                == 3,
        "{dry:?}"
    );
    assert!(out.iter().any(|o| o["outcome"] == "dry-run"), "{dry:?}");
    // A dry run changed nothing.
    assert!(nodes.iter().all(|n| {
        n.cli(&["cluster", "info"])
            .contains("cluster_known_nodes:1")
    }));
}

#[test]
fn json_mode_prints_configuration_errors_and_unknown_arguments_as_json() {
    for (env, args, names) in [
        (
            vec![
                ("BOOTSTRAP_LOG_FORMAT", "json"),
                ("BOOTSTRAP_REDIS_PORT", "x"),
            ],
            vec![],
            "BOOTSTRAP_REDIS_PORT",
        ),
        (
            vec![
                ("BOOTSTRAP_LOG_FORMAT", "json"),
                ("BOOTSTRAP_NODES", "a:1,,b:1"),
            ],
            vec![],
            "BOOTSTRAP_NODES",
        ),
        (
            vec![("BOOTSTRAP_LOG_FORMAT", "json")],
            vec!["--nodes"],
            "--nodes",
        ),
    ] {
        let run = run(&env, &args);

        assert_eq!(run.code, 2, "{run:?}");
        assert!(run.stdout.is_empty(), "{run:?}");
        let lines = json_lines(&run.stderr, "stderr", &run);
        let error = lines.last().unwrap();
        assert_eq!(error["level"], "ERROR", "{run:?}");
        assert_eq!(error["exit_code"], 2, "{run:?}");
        assert!(
            error["message"].as_str().unwrap().contains(names),
            "{run:?}"
        );
    }
}

#[test]
fn configuration_errors_print_like_every_other_error() {
    // A failure of the run itself (refused before connecting: 4 nodes make 2 masters).
    let refused = run(
        &[(
            "BOOTSTRAP_NODES",
            "127.0.42.11:6379,127.0.42.12:6379,127.0.42.13:6379,127.0.42.14:6379",
        )],
        &[],
    );
    assert_eq!(refused.code, 3, "{refused:?}");
    text_error_line(&refused);

    for (env, args) in [
        (vec![("BOOTSTRAP_REDIS_PORT", "x")], vec![]),
        (vec![("BOOTSTRAP_LOG_FORMAT", "xml")], vec![]),
        (vec![], vec!["--nodes"]),
    ] {
        let run = run(&env, &args);
        assert_eq!(run.code, 2, "{run:?}");
        text_error_line(&run);
        assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    }
}

#[test]
fn a_non_utf8_environment_is_ignored_unless_it_is_a_bootstrap_variable() {
    let bad = OsStr::from_bytes(b"caf\xe9");
    let nodes = OsStr::new("127.0.42.11:6379,127.0.42.12:6379,127.0.42.13:6379,127.0.42.14:6379");

    // Unrelated variables, in their value or their name, are not read: the run goes on (to the
    // planner's refusal of 4 nodes, which needs no server) instead of panicking.
    let run = bootstrap_os(
        &[
            (OsStr::new("BOOTSTRAP_NODES"), nodes),
            (OsStr::new("OTHER"), bad),
            (bad, OsStr::new("1")),
        ],
        &[],
    );
    assert_eq!(run.code, 3, "{run:?}");
    assert!(!run.stderr.contains("panicked"), "{run:?}");

    // A BOOTSTRAP_* variable that is not UTF-8 is bad configuration, named.
    let run = bootstrap_os(
        &[
            (OsStr::new("BOOTSTRAP_NODES"), nodes),
            (OsStr::new("BOOTSTRAP_PASSWORD"), bad),
        ],
        &[],
    );
    assert_eq!(run.code, 2, "{run:?}");
    let error = text_error_line(&run);
    assert!(
        error.contains("BOOTSTRAP_PASSWORD is not valid UTF-8"),
        "{run:?}"
    );
    assert!(!run.stderr.contains("panicked"), "{run:?}");
}

#[test]
fn every_api_request_names_the_program_and_its_version() {
    let api = FakeApi::start(41, "infra");
    let kubeconfig = api.kubeconfig("infra");

    // The StatefulSet never appears: the binary reads, lists and watches until it gives up.
    let run = run(
        &[
            ("KUBECONFIG", &kubeconfig),
            ("BOOTSTRAP_READY_TIMEOUT", "2s"),
        ],
        &[],
    );

    assert_eq!(run.code, 1, "{run:?}");
    let requests = api.requests();
    assert!(requests.len() >= 2, "{requests:?}\n{run:?}");
    assert_eq!(
        USER_AGENT,
        format!("redis-cluster-bootstrap/{}", env!("CARGO_PKG_VERSION"))
    );
    for request in &requests {
        assert_eq!(
            request.user_agent.as_deref(),
            Some(USER_AGENT),
            "{request:?}"
        );
    }
}
