//! TLS on real nodes: every node listens only on its TLS port (`port 0`) with TLS on the cluster
//! bus and replication, with certificates this test makes (rcgen): a CA, one certificate per node
//! address, a client certificate.
//!
//! The binary forms the cluster entirely over TLS (with a client certificate where the nodes ask
//! for one), re-runs as a no-op, re-meshes after a full restart on new addresses, and checks the
//! name it expects (a DNS name as written in `BOOTSTRAP_NODES`, not the IP it connects to). A
//! certificate from another CA, an expired one, or one for another name is exit 2 naming the node,
//! at once rather than after the ready timeout. So is a run without `BOOTSTRAP_TLS_CA_FILE`
//! against nodes that speak only TLS.

mod common;
mod dns;
mod fake_api;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use dns::FakeDns;
use fake_api::{FakeApi, Stage};
use redis_cluster_bootstrap::ExitCode;

/// How a node's certificate is made from its address.
enum Issued {
    /// For its IP.
    ForIp,
    /// For its IP, but expired.
    Expired,
    /// For another IP than its own.
    ForOtherIp,
    /// For this DNS name only.
    ForName(String),
}

/// A directory with `ca.crt`, the client certificate and a certificate for each `(ip, how)`.
fn tls_files(dir: &Path, auth_clients: bool, nodes: &[(String, Issued)]) -> (TlsFiles, Ca) {
    let ca = Ca::new("redis-cluster-bootstrap test CA");
    std::fs::write(dir.join("ca.crt"), &ca.pem).unwrap();
    ca.issue(dir, "client", &["bootstrap".to_string()], false);
    for (ip, how) in nodes {
        let (names, expired) = match how {
            Issued::ForIp => (vec![ip.clone()], false),
            Issued::Expired => (vec![ip.clone()], true),
            Issued::ForOtherIp => (vec!["127.0.99.99".to_string()], false),
            Issued::ForName(name) => (vec![name.clone()], false),
        };
        ca.issue(dir, ip, &names, expired);
    }
    let files = TlsFiles {
        dir: dir.to_path_buf(),
        auth_clients,
    };
    (files, ca)
}

fn tls_options(files: TlsFiles) -> Options {
    Options {
        tls: Some(files),
        ..Options::default()
    }
}

fn ips(block: u8, count: usize) -> Vec<String> {
    (0..count).map(|i| ip(block, i)).collect()
}

/// Each of these addresses with a certificate for itself.
fn for_their_ips(ips: Vec<String>) -> Vec<(String, Issued)> {
    ips.into_iter().map(|ip| (ip, Issued::ForIp)).collect()
}

#[test]
fn formed_re_run_and_re_meshed_entirely_over_tls_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    // Each pod has a certificate for its first address and for the one it restarts on.
    let addresses = for_their_ips([ips(214, 6), ips(215, 6)].concat());
    let (files, _ca) = tls_files(dir.path(), true, &addresses);
    let options = tls_options(files);
    let mut nodes = start_nodes_with(214, 6, &options);

    let first = run_static(&nodes);
    assert_eq!(first.code, 0, "{first:?}");
    assert!(first.stdout.contains("decision=fresh"), "{first:?}");
    let (ok, text) = cluster_check(&nodes[0]);
    assert!(ok, "{text}");
    // The nodes listen on nothing else: the cluster was formed over TLS, and its bus speaks TLS.
    assert_eq!(nodes[0].cli(&["config", "get", "port"]), "port\n0");
    assert_next_run_is_a_no_op(&nodes);

    let roles = own_roles(&nodes);
    for n in nodes.iter_mut() {
        n.kill();
    }
    for (n, ip) in nodes.iter_mut().zip(ips(215, 6)) {
        n.restart_on(&ip, &options);
    }
    let repair = run_static(&nodes);
    assert_eq!(repair.code, 0, "{repair:?}");
    assert!(repair.stdout.contains("decision=reconnect"), "{repair:?}");
    let (ok, text) = cluster_check(&nodes[0]);
    assert!(ok, "{text}");
    assert_eq!(
        own_roles(&nodes),
        roles,
        "a re-mesh changes no role or slot"
    );
    assert_next_run_is_a_no_op(&nodes);
}

#[test]
fn the_name_checked_is_the_host_as_written_not_the_ip_connected_to() {
    let block = 216;
    let dns = FakeDns::start(block);
    let names: Vec<String> = (0..6)
        .map(|i| format!("redis-app-{i}.redis-service.infra.svc.cluster.local"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    // The certificates name the pods only, as components/tls's does (a wildcard under the
    // headless Service): no IP SAN at all.
    let wildcard = "*.redis-service.infra.svc.cluster.local";
    let certs: Vec<(String, Issued)> = ips(block, 6)
        .into_iter()
        .map(|ip| (ip, Issued::ForName(wildcard.to_string())))
        .collect();
    let (files, _ca) = tls_files(dir.path(), false, &certs);
    let nodes = start_nodes_with(block, 6, &tls_options(files.clone()));
    for (name, node) in names.iter().zip(&nodes) {
        dns.add(&format!("{name}."), node.addr.ip());
    }
    let list = names
        .iter()
        .map(|name| format!("{name}:6379"))
        .collect::<Vec<_>>()
        .join(",");
    let ca = files.path("ca.crt");
    let server = dns.addr.to_string();
    let run = bootstrap(&[
        ("BOOTSTRAP_NODES", &list),
        ("BOOTSTRAP_DNS_SERVER", &server),
        ("BOOTSTRAP_TLS_CA_FILE", &ca),
        ("BOOTSTRAP_READY_TIMEOUT", "10s"),
        ("BOOTSTRAP_CONVERGE_TIMEOUT", "60s"),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let (ok, text) = cluster_check(&nodes[0]);
    assert!(ok, "{text}");

    // The same nodes written as IPs: their certificates do not name those, so nothing is sent.
    reset_stats(&nodes);
    let by_ip = run_static(&nodes);
    assert_eq!(by_ip.code, ExitCode::BadConfig as i32, "{by_ip:?}");
    assert!(
        by_ip.stderr.contains("node-0 (127.0.216.11:6379)"),
        "{by_ip:?}"
    );
    assert_no_writes(&nodes);
}

/// Three nodes (R=0) with certificates made `how`; the binary is given `ca_file` (a file of the
/// test's directory) and must exit 2 within seconds, naming pod 0 and saying `why`.
fn refused_at_once(block: u8, how: fn(&str) -> Issued, other_ca: bool, why: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let certs: Vec<(String, Issued)> = ips(block, 3)
        .into_iter()
        .map(|ip| {
            let issued = how(&ip);
            (ip, issued)
        })
        .collect();
    let (files, _ca) = tls_files(dir.path(), false, &certs);
    if other_ca {
        std::fs::write(dir.path().join("other-ca.crt"), Ca::new("another CA").pem).unwrap();
    }
    let nodes = start_nodes_with(block, 3, &tls_options(files.clone()));
    let ca = files.path(if other_ca { "other-ca.crt" } else { "ca.crt" });
    let list = node_list(&nodes);
    let started = Instant::now();
    let run = bootstrap(&[
        ("BOOTSTRAP_NODES", &list),
        ("BOOTSTRAP_REPLICAS_PER_MASTER", "0"),
        ("BOOTSTRAP_TLS_CA_FILE", &ca),
        ("BOOTSTRAP_READY_TIMEOUT", "60s"),
    ]);
    assert_eq!(run.code, ExitCode::BadConfig as i32, "{run:?}");
    // Not retried for the ready timeout: retrying cannot fix a certificate.
    assert!(started.elapsed() < Duration::from_secs(20), "{run:?}");
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("TLS certificate does not verify"))
        .unwrap_or_else(|| panic!("no line about the certificate: {run:?}"));
    let node = format!("node-0 ({}:6379)", ip(block, 0));
    assert!(line.contains(&node), "{line}");
    for why in why {
        assert!(line.contains(why), "{line} lacks {why:?}");
    }
    // The nodes were never touched (asked without verifying: the certificate may be bad).
    for n in &nodes {
        let info = n.cli(&["--insecure", "cluster", "info"]);
        assert!(info.contains("cluster_known_nodes:1"), "{info}");
    }
}

#[test]
fn a_certificate_from_another_ca_is_exit_2_naming_the_node() {
    refused_at_once(
        218,
        |_| Issued::ForIp,
        true,
        &["not signed by a CA of the bundle"],
    );
}

#[test]
fn an_expired_certificate_is_exit_2_naming_the_node() {
    refused_at_once(
        219,
        |_| Issued::Expired,
        false,
        &["certificate expired: not valid after 2021-01-01T00:00:00Z"],
    );
}

#[test]
fn a_certificate_for_another_name_is_exit_2_naming_the_node() {
    refused_at_once(
        220,
        |_| Issued::ForOtherIp,
        false,
        &["127.0.220.11", "not valid for name"],
    );
}

#[test]
fn bad_tls_files_are_exit_2_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let (files, _ca) = tls_files(dir.path(), false, &[]);
    let ca = files.path("ca.crt");
    let missing = files.path("missing.crt");
    let key = files.path("client.key");
    let cert = files.path("client.crt");
    let cases: [(&[(&str, &str)], &str); 4] = [
        (
            &[("BOOTSTRAP_TLS_CA_FILE", &missing)],
            "BOOTSTRAP_TLS_CA_FILE=",
        ),
        (&[("BOOTSTRAP_TLS_CA_FILE", &key)], "BOOTSTRAP_TLS_CA_FILE="),
        (
            &[
                ("BOOTSTRAP_TLS_CA_FILE", &ca),
                ("BOOTSTRAP_TLS_CERT_FILE", &cert),
            ],
            "BOOTSTRAP_TLS_KEY_FILE is not",
        ),
        (
            &[
                ("BOOTSTRAP_TLS_CERT_FILE", &cert),
                ("BOOTSTRAP_TLS_KEY_FILE", &key),
            ],
            "BOOTSTRAP_TLS_CA_FILE is not",
        ),
    ];
    for (vars, expected) in cases {
        // Addresses nothing listens on: the files are checked before any node is reached.
        let mut env = vec![("BOOTSTRAP_NODES", "127.0.221.11:6379,127.0.221.12:6379")];
        env.extend_from_slice(vars);
        let run = bootstrap(&env);
        assert_eq!(run.code, ExitCode::BadConfig as i32, "{run:?}");
        assert!(run.stderr.contains(expected), "{expected}: {run:?}");
    }
}

/// A node with `tls-auth-clients yes` and no client certificate given: exit 2 at once (with TLS
/// 1.3 the node says so only after the handshake).
#[test]
fn a_node_that_asks_for_a_client_certificate_without_one_is_exit_2() {
    let block = 222;
    let dir = tempfile::tempdir().unwrap();
    let certs = for_their_ips(ips(block, 3));
    let (files, _ca) = tls_files(dir.path(), true, &certs);
    let nodes = start_nodes_with(block, 3, &tls_options(files.clone()));
    let ca = files.path("ca.crt");
    let list = node_list(&nodes);
    let started = Instant::now();
    let run = bootstrap(&[
        ("BOOTSTRAP_NODES", &list),
        ("BOOTSTRAP_REPLICAS_PER_MASTER", "0"),
        ("BOOTSTRAP_TLS_CA_FILE", &ca),
        ("BOOTSTRAP_READY_TIMEOUT", "8s"),
    ]);
    assert_eq!(run.code, ExitCode::BadConfig as i32, "{run:?}");
    assert!(started.elapsed() < Duration::from_secs(6), "{run:?}");
    let node = format!(
        "node-0 ({}:6379) asks for a client certificate",
        ip(block, 0)
    );
    assert!(run.stderr.contains(&node), "{run:?}");
    assert!(
        run.stderr.contains("set BOOTSTRAP_TLS_CERT_FILE"),
        "{run:?}"
    );
}

/// `tls-auth-clients optional`: the nodes ask for a client certificate but serve a client
/// without one, so the binary without one forms the cluster.
#[test]
fn a_node_that_only_offers_client_authentication_is_served_without_a_certificate() {
    let block = 217;
    let dir = tempfile::tempdir().unwrap();
    let certs = for_their_ips(ips(block, 3));
    let (files, _ca) = tls_files(dir.path(), false, &certs);
    let options = Options {
        extra: vec!["--tls-auth-clients".into(), "optional".into()],
        ..tls_options(files.clone())
    };
    let nodes = start_nodes_with(block, 3, &options);
    let ca = files.path("ca.crt");
    let list = node_list(&nodes);
    let run = bootstrap(&[
        ("BOOTSTRAP_NODES", &list),
        ("BOOTSTRAP_REPLICAS_PER_MASTER", "0"),
        ("BOOTSTRAP_TLS_CA_FILE", &ca),
        ("BOOTSTRAP_READY_TIMEOUT", "10s"),
        ("BOOTSTRAP_CONVERGE_TIMEOUT", "60s"),
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let (ok, text) = cluster_check(&nodes[0]);
    assert!(ok, "{text}");
}

/// Kubernetes mode as production runs it: the certificate names `*.<service>.<ns>.svc.<domain>`
/// (components/tls), the nodes offer client authentication (`optional`) and the Job presents its
/// certificate. A certificate for another namespace's pods is exit 2 naming the pod, its address
/// and the name expected.
#[test]
fn kubernetes_mode_checks_each_pod_s_dns_name() {
    for (block, namespace_in_cert, formed) in [(223, "infra", true), (224, "other", false)] {
        let dir = tempfile::tempdir().unwrap();
        let wildcard = format!("*.redis-service.{namespace_in_cert}.svc.cluster.local");
        let certs: Vec<(String, Issued)> = ips(block, 6)
            .into_iter()
            .map(|ip| (ip, Issued::ForName(wildcard.clone())))
            .collect();
        let (files, _ca) = tls_files(dir.path(), false, &certs);
        let options = Options {
            extra: vec!["--tls-auth-clients".into(), "optional".into()],
            ..tls_options(files.clone())
        };
        let nodes = start_nodes_with(block, 6, &options);
        let api = FakeApi::start(block, "infra");
        api.show(&Stage::ready(6, 6));
        let dns = FakeDns::start(block);
        for (i, node) in nodes.iter().enumerate() {
            let name = format!("redis-app-{i}.redis-service.infra.svc.cluster.local");
            dns.add(&name, node.addr.ip());
        }
        let kubeconfig = api.kubeconfig("infra");
        let server = dns.addr.to_string();
        let (ca, cert, key) = (
            files.path("ca.crt"),
            files.path("client.crt"),
            files.path("client.key"),
        );
        let run = bootstrap(&[
            ("KUBECONFIG", &kubeconfig),
            ("BOOTSTRAP_DNS_SERVER", &server),
            ("BOOTSTRAP_TLS_CA_FILE", &ca),
            ("BOOTSTRAP_TLS_CERT_FILE", &cert),
            ("BOOTSTRAP_TLS_KEY_FILE", &key),
            ("BOOTSTRAP_READY_TIMEOUT", "30s"),
            ("BOOTSTRAP_CONVERGE_TIMEOUT", "60s"),
        ]);
        if formed {
            assert_eq!(run.code, 0, "{run:?}");
            let (ok, text) = cluster_check(&nodes[0]);
            assert!(ok, "{text}");
        } else {
            assert_eq!(run.code, ExitCode::BadConfig as i32, "{run:?}");
            let expected = format!(
                "redis-app-0 ({}:6379): its TLS certificate does not verify as \
                 \"redis-app-0.redis-service.infra.svc.cluster.local\"",
                ip(block, 0)
            );
            assert!(run.stderr.contains(&expected), "{run:?}");
        }
    }
}

/// A grow over TLS: the binary's connections and the nodes' own `MIGRATE` (over `tls-cluster`)
/// move keys to the new shard, and none is lost.
#[test]
fn a_grow_moves_keys_over_tls() {
    const TAGS: usize = 40;
    const PER_TAG: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let addresses = for_their_ips(ips(165, 8));
    let (files, _ca) = tls_files(dir.path(), true, &addresses);
    let options = tls_options(files);
    let mut nodes = start_nodes_with(165, 6, &options);
    let formed = run_static(&nodes);
    assert_eq!(formed.code, 0, "{formed:?}");
    // 40 hash tags of 50 keys, one MSET each, through redis-cli's cluster mode: about a quarter
    // of the tags live in slots that move.
    for tag in 0..TAGS {
        let pairs: Vec<String> = (0..PER_TAG)
            .flat_map(|i| [format!("{{t{tag}}}:{i}"), i.to_string()])
            .collect();
        let args: Vec<&str> = ["-c", "mset"]
            .into_iter()
            .chain(pairs.iter().map(String::as_str))
            .collect();
        assert_eq!(nodes[0].cli(&args), "OK");
    }
    for i in 6..8 {
        nodes.push(RedisNode::start(&ip(165, i), &options));
    }
    let grown = run_static(&nodes);
    assert_eq!(grown.code, 0, "{grown:?}");
    assert!(grown.stdout.contains("decision=grow"), "{grown:?}");
    let (ok, text) = cluster_check(&nodes[0]);
    assert!(ok, "{text}");
    let held = |n: &RedisNode| -> usize {
        if n.cli(&["role"]).starts_with("master") {
            n.cli(&["dbsize"]).parse().unwrap()
        } else {
            0
        }
    };
    assert!(held(&nodes[6]) > 0, "no key moved to node-6");
    assert_eq!(nodes.iter().map(held).sum::<usize>(), TAGS * PER_TAG);
    assert_next_run_is_a_no_op(&nodes);
}

/// Nodes that speak only TLS, and a run that was not given `BOOTSTRAP_TLS_CA_FILE` (with and
/// without a password, which is sent while connecting): exit 2 within seconds naming the variable
/// and the node, not a retry until the ready timeout; nothing changed.
#[test]
fn a_run_without_the_ca_against_tls_nodes_is_exit_2_naming_the_variable() {
    for (block, password) in [(232, None), (233, Some("s3cret"))] {
        let dir = tempfile::tempdir().unwrap();
        let certs = for_their_ips(ips(block, 3));
        let (files, _ca) = tls_files(dir.path(), false, &certs);
        let options = Options {
            password: password.map(str::to_string),
            cli_user: password.map(|p| ("default".to_string(), p.to_string())),
            ..tls_options(files)
        };
        let nodes = start_nodes_with(block, 3, &options);
        let list = node_list(&nodes);
        let mut env = vec![
            ("BOOTSTRAP_NODES", list.as_str()),
            ("BOOTSTRAP_REPLICAS_PER_MASTER", "0"),
            ("BOOTSTRAP_READY_TIMEOUT", "60s"),
        ];
        if let Some(password) = password {
            env.push(("BOOTSTRAP_PASSWORD", password));
        }
        let started = Instant::now();
        let run = bootstrap(&env);
        assert_eq!(run.code, ExitCode::BadConfig as i32, "{run:?}");
        assert!(started.elapsed() < Duration::from_secs(20), "{run:?}");
        let line = run
            .stderr
            .lines()
            .find(|l| l.contains("BOOTSTRAP_TLS_CA_FILE is not set"))
            .unwrap_or_else(|| panic!("no line about the CA: {run:?}"));
        assert!(line.contains("speaks TLS"), "{line}");
        assert!(
            line.contains(&format!("node-0 ({}:6379)", ip(block, 0))),
            "{line}"
        );
        for n in &nodes {
            let info = n.cli(&["cluster", "info"]);
            assert!(info.contains("cluster_known_nodes:1"), "{info}");
        }
    }
}
