//! Unit tests of the configuration: defaults, every bad value named, the variables table.

use super::*;

fn settings(vars: &[(&str, &str)]) -> Result<Settings, Error> {
    Settings::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

#[test]
fn defaults_follow_the_spec() {
    let s = settings(&[]).unwrap();
    assert_eq!(s.statefulset, "redis-app");
    assert_eq!(s.service, "redis-service");
    assert_eq!(s.cluster_domain, "cluster.local");
    assert_eq!(s.redis_port, 6379);
    assert_eq!(s.replicas_per_master, 1);
    assert_eq!(s.ready_timeout, Duration::from_secs(600));
    assert_eq!(s.converge_timeout, Duration::from_secs(120));
    assert!(s.nodes.is_none() && !s.dry_run && s.namespace.is_none());
    assert!(
        !s.read_nodes,
        "nodes are read only where components/placement allows it"
    );
    assert_eq!(s.log_format, LogFormat::Text);
    assert_eq!(s.when_not_ready, WhenNotReady::Fail);
    assert_eq!(s.handover_timeout, Duration::from_secs(30));
    assert_eq!(s.rejoin_timeout, Duration::from_secs(600));
    assert!(s.repair_placement);
    let off = settings(&[("BOOTSTRAP_REPAIR_PLACEMENT", "false")]).unwrap();
    assert!(!off.repair_placement);
}

#[test]
fn every_bad_value_names_its_variable() {
    for (var, value) in [
        ("BOOTSTRAP_REDIS_PORT", "70000"),
        ("BOOTSTRAP_REPLICAS_PER_MASTER", "one"),
        ("BOOTSTRAP_READY_TIMEOUT", "soon"),
        ("BOOTSTRAP_CONVERGE_TIMEOUT", "0s"),
        ("BOOTSTRAP_WHEN_NOT_READY", "later"),
        ("BOOTSTRAP_HANDOVER_TIMEOUT", "never"),
        ("BOOTSTRAP_REJOIN_TIMEOUT", "-1s"),
        ("BOOTSTRAP_NODES", "127.0.0.1"),
        ("BOOTSTRAP_DNS_SERVER", "dns"),
        ("BOOTSTRAP_LOG_FORMAT", "xml"),
        ("BOOTSTRAP_DRY_RUN", "maybe"),
        ("BOOTSTRAP_READ_NODES", "zones"),
        ("BOOTSTRAP_REPAIR_PLACEMENT", "sometimes"),
        ("BOOTSTRAP_DRAIN_TO", "six"),
        ("BOOTSTRAP_DRAIN_TO", "7"),
        ("BOOTSTRAP_DRAIN_TO", "4"),
        ("BOOTSTRAP_DRAIN_TO", "-6"),
        ("BOOTSTRAP_STATEFULSET", "Redis_App"),
        ("BOOTSTRAP_CLUSTER_DOMAIN", "bad domain"),
        ("BOOTSTRAP_REPLICA_PER_MASTER", "1"),
    ] {
        let err = settings(&[(var, value)]).unwrap_err().to_string();
        assert!(err.starts_with(var), "{var}: {err}");
        assert!(!err.contains('\n'), "{var}: {err}");
    }
}

#[test]
fn the_drain_target_is_whole_shards_of_at_least_three_masters() {
    assert_eq!(settings(&[]).unwrap().drain_to, None);
    assert_eq!(
        settings(&[("BOOTSTRAP_DRAIN_TO", " 6 ")]).unwrap().drain_to,
        Some(6)
    );
    let r2 = |n: &str| {
        settings(&[
            ("BOOTSTRAP_REPLICAS_PER_MASTER", "2"),
            ("BOOTSTRAP_DRAIN_TO", n),
        ])
    };
    assert_eq!(r2("9").unwrap().drain_to, Some(9));
    let err = r2("6").unwrap_err().to_string();
    assert!(err.contains("at least 9"), "{err}");
    assert!(r2("10").is_err());
    assert!(r2("0").is_err());
}

#[test]
fn node_lists_keep_their_order_and_accept_ipv6() {
    let s = settings(&[("BOOTSTRAP_NODES", "b:1, a:2,[::1]:6379")]).unwrap();
    let nodes: Vec<String> = s.nodes.unwrap().iter().map(|n| n.to_string()).collect();
    assert_eq!(nodes, ["b:1", "a:2", "[::1]:6379"]);
    assert!(settings(&[("BOOTSTRAP_NODES", "a:1,a:1")]).is_err());
}

#[test]
fn an_empty_entry_in_the_node_list_is_a_typo() {
    for list in ["a:1,,b:2", "a:1,b:2,", ",a:1", "a:1, ,b:2"] {
        let err = settings(&[("BOOTSTRAP_NODES", list)])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("BOOTSTRAP_NODES") && err.contains("empty entry"),
            "{list}: {err}"
        );
    }
}

#[test]
fn only_bootstrap_variables_must_be_utf8() {
    use std::os::unix::ffi::OsStringExt;
    let bad = || OsString::from_vec(vec![b'x', 0xff]);
    let ok = |s: &str| OsString::from(s);
    // Any other variable, in its name or its value, is not even read.
    let vars = utf8_vars([
        (ok("OTHER"), bad()),
        (bad(), ok("1")),
        (ok("BOOTSTRAP_NODES"), ok("a:1")),
    ])
    .unwrap();
    assert_eq!(vars, [("BOOTSTRAP_NODES".to_string(), "a:1".to_string())]);
    let err = utf8_vars([(ok("BOOTSTRAP_PASSWORD"), bad())])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("BOOTSTRAP_PASSWORD is not valid UTF-8"),
        "{err}"
    );
    let mut name = b"BOOTSTRAP_X".to_vec();
    name.push(0xff);
    let err = utf8_vars([(OsString::from_vec(name), ok("1"))])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("BOOTSTRAP_X"), "{err}");
}

#[test]
fn a_username_needs_a_password() {
    let err = settings(&[("BOOTSTRAP_USERNAME", "bootstrap")])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("BOOTSTRAP_USERNAME"), "{err}");
    assert!(err.contains("BOOTSTRAP_PASSWORD"), "{err}");
    let s = settings(&[
        ("BOOTSTRAP_USERNAME", "bootstrap"),
        ("BOOTSTRAP_PASSWORD", "hunter2"),
    ])
    .unwrap();
    let credentials = s.credentials.unwrap();
    assert_eq!(credentials.username(), Some("bootstrap"));
    assert_eq!(credentials.logins().unwrap()[0].password(), "hunter2");
    let err = settings(&[
        ("BOOTSTRAP_USERNAME", "boot strap"),
        ("BOOTSTRAP_PASSWORD", "x"),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("BOOTSTRAP_USERNAME"), "{err}");
}

#[test]
fn a_password_is_given_or_in_a_file_not_both() {
    let err = settings(&[
        ("BOOTSTRAP_PASSWORD", "x"),
        ("BOOTSTRAP_PASSWORD_FILE", "/etc/redis-users/bootstrap"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("BOOTSTRAP_PASSWORD and BOOTSTRAP_PASSWORD_FILE"),
        "{err}"
    );
    // The file is read when connecting, not here: a pod's startup may create it.
    let s = settings(&[
        ("BOOTSTRAP_USERNAME", "pod"),
        ("BOOTSTRAP_PASSWORD_FILE", " /run/redis-pod/password "),
    ])
    .unwrap();
    let credentials = s.credentials.unwrap();
    assert_eq!(credentials.username(), Some("pod"));
    let err = credentials.logins().unwrap_err().to_string();
    assert!(
        err.contains("/run/redis-pod/password cannot be read"),
        "{err}"
    );
    let s = settings(&[
        ("BOOTSTRAP_USERS_DIR", "/etc/redis-users"),
        ("BOOTSTRAP_ACL_DIR", "/etc/redis-acl"),
        ("BOOTSTRAP_METRICS_ADDRESS", "0.0.0.0:9180"),
    ])
    .unwrap();
    assert_eq!(s.users_dir.unwrap().to_str(), Some("/etc/redis-users"));
    assert_eq!(s.acl_dir.unwrap().to_str(), Some("/etc/redis-acl"));
    assert_eq!(s.metrics_address.unwrap().port(), 9180);
    let err = settings(&[("BOOTSTRAP_METRICS_ADDRESS", ":9180")])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("BOOTSTRAP_METRICS_ADDRESS=\":9180\""),
        "{err}"
    );
}

#[test]
fn tls_files_pair_up_here_and_are_read_at_startup() {
    // from_vars checks the pairing only: the manifest tests run it on a Job's environment.
    let s = settings(&[
        ("BOOTSTRAP_TLS_CA_FILE", "/etc/redis-tls/ca.crt"),
        ("BOOTSTRAP_TLS_CERT_FILE", "/etc/redis-tls/tls.crt"),
        ("BOOTSTRAP_TLS_KEY_FILE", "/etc/redis-tls/tls.key"),
    ])
    .unwrap();
    let files = s.tls_files.unwrap();
    assert_eq!(files.ca, "/etc/redis-tls/ca.crt");
    assert!(s.tls.is_none(), "read by from_env, not from_vars");
    let err = settings(&[("BOOTSTRAP_TLS_KEY_FILE", "/k")]).unwrap_err();
    assert!(
        err.to_string().starts_with("BOOTSTRAP_TLS_KEY_FILE is set"),
        "{err}"
    );
    let err = settings(&[
        ("BOOTSTRAP_TLS_CERT_FILE", "/c"),
        ("BOOTSTRAP_TLS_KEY_FILE", "/k"),
    ])
    .unwrap_err();
    assert!(
        err.to_string().contains("BOOTSTRAP_TLS_CA_FILE is not"),
        "{err}"
    );
}

#[test]
fn the_password_stays_out_of_debug_output() {
    let s = settings(&[("BOOTSTRAP_PASSWORD", "hunter2")]).unwrap();
    assert!(!format!("{s:?}").contains("hunter2"));
}
