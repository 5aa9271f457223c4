//! Kubernetes mode end to end: the real binary, a fake API server over real HTTP reached through a
//! real kubeconfig (`fake_api`), a DNS server answering the pods' names (`dns`), and real
//! redis-server nodes on loopback IPs playing the pods.
//!
//! Loopback blocks 50–69 (see `common/BLOCKS.md`); in each, `.1` is the API server (port 6443)
//! and the DNS server (port 5353), `.11`, `.12`, ... are the pods. `SHOW_RUNS=1` prints every
//! run's output.

mod common;
mod dns;
mod fake_api;

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::jiff::Timestamp;
use redis_cluster_bootstrap::Error;
use redis_cluster_bootstrap::config::Settings;
use redis_cluster_bootstrap::resolve::resolve_all;

use common::{RedisNode, Run};
use dns::FakeDns;
use fake_api::{FakeApi, PodState, Stage};

/// A StatefulSet's world: its API server, its DNS and the redis-server nodes of its pods.
struct World {
    block: u8,
    namespace: &'static str,
    api: FakeApi,
    dns: FakeDns,
    nodes: Vec<RedisNode>,
}

impl World {
    /// `pods` redis-server nodes, an API server that knows nothing yet, an empty DNS zone.
    fn new(block: u8, namespace: &'static str, pods: usize) -> World {
        World {
            block,
            namespace,
            api: FakeApi::start(block, namespace),
            dns: FakeDns::start(block),
            nodes: common::start_nodes(block, pods),
        }
    }

    /// The DNS name of pod `index`.
    fn host(&self, index: usize) -> String {
        format!(
            "redis-app-{index}.redis-service.{}.svc.cluster.local",
            self.namespace
        )
    }

    /// Puts every pod in DNS, now.
    fn publish_all(&self) {
        for (i, node) in self.nodes.iter().enumerate() {
            self.dns.add(&self.host(i), node.addr.ip());
        }
    }

    /// Runs the binary against this world (kubeconfig context namespace `context`) plus `extra`.
    fn bootstrap(&self, context: &str, extra: &[(&str, &str)]) -> Run {
        let kubeconfig = self.api.kubeconfig(context);
        let dns = self.dns.addr.to_string();
        let mut env = vec![
            ("KUBECONFIG", kubeconfig.as_str()),
            ("BOOTSTRAP_DNS_SERVER", dns.as_str()),
            ("BOOTSTRAP_READY_TIMEOUT", "60s"),
            ("BOOTSTRAP_CONVERGE_TIMEOUT", "60s"),
        ];
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push((k, v));
        }
        let run = common::bootstrap(&env);
        if std::env::var_os("SHOW_RUNS").is_some() {
            eprintln!("{run:?}");
        }
        run
    }

    /// Asserts a healthy cluster, and the report's table naming every pod next to its address.
    fn assert_formed(&self, run: &Run) {
        assert_eq!(run.code, 0, "{run:?}");
        let (ok, check) = common::cluster_check(&self.nodes[0]);
        assert!(ok, "redis-cli --cluster check:\n{check}\n{run:?}");
        for (i, node) in self.nodes.iter().enumerate() {
            let row = run
                .stdout
                .lines()
                .find(|line| line.contains(&node.host_port()))
                .unwrap_or_else(|| panic!("no report row for {}\n{run:?}", node.addr));
            assert!(row.contains(&format!("redis-app-{i}")), "{row}\n{run:?}");
        }
        assert!(self.block >= 50 && self.block < 70);
    }
}

/// Where `needle` first appears in `text`, to check the order of log lines.
fn position(text: &str, needle: &str) -> usize {
    text.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} is not in:\n{text}"))
}

/// When the log line containing `needle` was written (the text format starts with the time).
fn logged_at(log: &str, needle: &str) -> SystemTime {
    let line = log
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} is not in:\n{log}"));
    let stamp: Timestamp = line.split_whitespace().next().unwrap().parse().unwrap();
    SystemTime::from(stamp)
}

#[test]
fn bootstraps_once_the_statefulset_becomes_ready() {
    let world = World::new(50, "infra", 6);
    world.publish_all();
    let ready_at = SystemTime::now() + Duration::from_millis(1600);
    world.api.script(vec![
        (Duration::ZERO, Stage::ready(6, 0).unobserved()),
        (Duration::from_millis(800), Stage::ready(6, 3)),
        (Duration::from_millis(1600), Stage::ready(6, 6)),
    ]);

    // No BOOTSTRAP_NAMESPACE: the namespace comes from the kubeconfig's context.
    let run = world.bootstrap("infra", &[]);

    world.assert_formed(&run);
    let log = &run.stderr;
    assert!(
        position(log, "0/6 ready") < position(log, "3/6 ready"),
        "{run:?}"
    );
    assert!(
        position(log, "3/6 ready") < position(log, "6/6 ready"),
        "{run:?}"
    );
    assert!(position(log, "6/6 ready") < position(log, "the statefulset is ready"));
    // The Ready event ends the wait at once, not at the next tick of a poll.
    let reaction = logged_at(log, "6/6 ready")
        .duration_since(ready_at)
        .unwrap_or_default();
    assert!(
        reaction < Duration::from_millis(500),
        "took {reaction:?} to see Ready\n{run:?}"
    );
    // A watch, not a poll: one list, then a watch that delivered every change.
    let requests = world.api.requests();
    let count = |verb: &str| {
        requests
            .iter()
            .filter(|r| r.verb == verb && r.resource == "statefulsets")
            .count()
    };
    assert_eq!((count("list"), count("watch")), (1, 1), "{requests:#?}");
    assert!(
        requests.iter().all(|r| r.authorized && r.code == 200),
        "{requests:#?}"
    );
}

#[test]
fn times_out_naming_each_pod_that_is_not_ready_and_why() {
    let world = World::new(51, "infra", 0);
    let mut stage = Stage::ready(6, 4);
    stage.pods[4] = PodState::CrashLooping;
    stage.pods[5] = PodState::Unschedulable;
    world.api.show(&stage);

    let started = Instant::now();
    let run = world.bootstrap("infra", &[("BOOTSTRAP_READY_TIMEOUT", "3s")]);

    assert_eq!(run.code, 1, "{run:?}");
    assert!(started.elapsed() >= Duration::from_secs(3), "{run:?}");
    assert!(started.elapsed() < Duration::from_secs(20), "{run:?}");
    let error = run.stderr.lines().last().unwrap_or_default();
    for expected in [
        "readiness did not finish within 3s",
        "statefulset infra/redis-app: 4/6 ready",
        "redis-app-4: ContainersReady=False: ContainersNotReady: containers with unready status: [redis]",
        "container redis waiting: CrashLoopBackOff",
        "redis-app-5: phase Pending, PodScheduled=False: Unschedulable: 0/3 nodes are available: 3 Insufficient memory.",
    ] {
        assert!(
            error.contains(expected),
            "{expected:?} missing from the error:\n{run:?}"
        );
    }
    assert!(!error.contains("redis-app-3"), "{run:?}");
}

#[test]
fn waits_for_a_pod_name_that_appears_in_dns_late() {
    let world = World::new(52, "cache", 3);
    world.api.show(&Stage::ready(3, 3));
    world.dns.add(&world.host(0), world.nodes[0].addr.ip());
    world.dns.add(&world.host(1), world.nodes[1].addr.ip());
    world.dns.add_after(
        Duration::from_secs(2),
        &world.host(2),
        world.nodes[2].addr.ip(),
    );

    // BOOTSTRAP_NAMESPACE wins over the kubeconfig's context.
    let run = world.bootstrap(
        "default",
        &[
            ("BOOTSTRAP_NAMESPACE", "cache"),
            ("BOOTSTRAP_REPLICAS_PER_MASTER", "0"),
        ],
    );

    world.assert_formed(&run);
    let waited = run
        .stderr
        .lines()
        .find(|l| l.contains("no address yet"))
        .unwrap_or_else(|| panic!("no retry logged\n{run:?}"));
    assert!(waited.contains("redis-app-2"), "{waited}");
}

#[test]
fn a_missing_permission_exits_2_naming_the_verb_and_the_resource() {
    for (block, verb) in [(53, "get"), (54, "list"), (55, "watch")] {
        let world = World::new(block, "infra", 0);
        // Not ready, so that the binary has to watch.
        world.api.show(&Stage::ready(6, 3));
        world.api.forbid(verb, "statefulsets");

        let started = Instant::now();
        let run = world.bootstrap("infra", &[]);

        assert_eq!(run.code, 2, "{verb}: {run:?}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{verb}: gave up too late\n{run:?}"
        );
        let wanted =
            format!("cannot {verb} statefulsets.apps in namespace infra: grant it in the Role");
        assert!(run.stderr.contains(&wanted), "{wanted:?} missing\n{run:?}");
        assert!(
            run.stderr
                .contains("system:serviceaccount:infra:redis-cluster-bootstrap")
        );
    }
}

#[test]
fn a_timeout_says_when_the_pods_cannot_be_listed() {
    let world = World::new(56, "infra", 0);
    world.api.show(&Stage::ready(3, 1));
    world.api.forbid("list", "pods");

    let run = world.bootstrap("infra", &[("BOOTSTRAP_READY_TIMEOUT", "2s")]);

    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("1/3 ready"), "{run:?}");
    assert!(
        run.stderr
            .contains("cannot list pods in namespace infra: grant it in the Role"),
        "{run:?}"
    );
}

#[test]
fn a_statefulset_that_never_appears_times_out_saying_so() {
    let world = World::new(57, "infra", 0);

    let run = world.bootstrap("infra", &[("BOOTSTRAP_READY_TIMEOUT", "2s")]);

    assert_eq!(run.code, 1, "{run:?}");
    let error = run.stderr.lines().last().unwrap_or_default();
    assert!(
        error.contains("statefulset infra/redis-app does not exist yet"),
        "{run:?}"
    );
}

#[test]
fn retries_through_refused_connections_429s_and_503s() {
    let block = 58;
    let nodes = common::start_nodes(block, 3);
    let world = World {
        block,
        namespace: "infra",
        // Connections are refused for the first two seconds...
        api: FakeApi::start_after(block, "infra", Duration::from_secs(2)),
        dns: FakeDns::start(block),
        nodes,
    };
    world.publish_all();
    // ...then the API server answers two requests with 429 and two with 503.
    world.api.fail_next(429, 2);
    world.api.fail_next(503, 2);
    world.api.script(vec![
        (Duration::ZERO, Stage::ready(3, 1)),
        (Duration::from_millis(4500), Stage::ready(3, 3)),
    ]);

    let run = world.bootstrap("infra", &[("BOOTSTRAP_REPLICAS_PER_MASTER", "0")]);

    world.assert_formed(&run);
    let requests = world.api.requests();
    for code in [429, 503] {
        assert!(
            requests.iter().any(|r| r.code == code),
            "no {code}: {requests:#?}"
        );
    }
    assert!(run.stderr.contains("Connection refused") || run.stderr.contains("connection refused"));
    assert!(run.stderr.contains("429 TooManyRequests"), "{run:?}");
    assert!(run.stderr.contains("503 ServiceUnavailable"), "{run:?}");
}

#[test]
fn an_api_server_that_stays_down_times_out_with_its_last_error() {
    let world = World::new(59, "infra", 0);
    world.api.show(&Stage::ready(3, 3));
    world.api.fail_next(503, 1_000);

    let run = world.bootstrap("infra", &[("BOOTSTRAP_READY_TIMEOUT", "2s")]);

    assert_eq!(run.code, 1, "{run:?}");
    let error = run.stderr.lines().last().unwrap_or_default();
    assert!(
        error.contains("statefulset infra/redis-app could not be read"),
        "{run:?}"
    );
    assert!(
        error.contains("last API error: list failed: 503 ServiceUnavailable"),
        "{run:?}"
    );
}

#[test]
fn static_mode_host_names_go_through_the_same_resolver() {
    let block = 60;
    let dns = FakeDns::start(block);
    let nodes = common::start_nodes(block, 3);
    let hosts: Vec<String> = (0..3)
        .map(|i| format!("redis-{i}.static.cluster.local:6379"))
        .collect();
    for (host, node) in hosts.iter().zip(&nodes) {
        dns.add(host.trim_end_matches(":6379"), node.addr.ip());
    }

    let run = common::bootstrap(&[
        ("BOOTSTRAP_NODES", &hosts.join(",")),
        ("BOOTSTRAP_DNS_SERVER", &dns.addr.to_string()),
        ("BOOTSTRAP_REPLICAS_PER_MASTER", "0"),
        ("BOOTSTRAP_CONVERGE_TIMEOUT", "60s"),
    ]);

    assert_eq!(run.code, 0, "{run:?}");
    assert!(common::cluster_check(&nodes[0]).0, "{run:?}");
    for (host, node) in hosts.iter().zip(&nodes) {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.contains(host.as_str()) && l.contains(&node.host_port())),
            "no row with {host} and {}\n{run:?}",
            node.addr
        );
    }
}

/// `resolve_all` in this process, asking `dns`.
fn resolve(dns: &FakeDns, hosts: &[&str]) -> Result<Vec<IpAddr>, Error> {
    let mut settings = Settings::from_vars(Vec::new()).unwrap();
    settings.dns_server = Some(dns.addr);
    settings.ready_timeout = Duration::from_secs(5);
    let targets: Vec<(String, String, u16)> = hosts
        .iter()
        .enumerate()
        .map(|(i, host)| (format!("redis-app-{i}"), host.to_string(), 6379))
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let nodes = runtime.block_on(resolve_all(&targets, &settings))?;
    Ok(nodes.iter().map(|n| n.addr.ip()).collect())
}

#[test]
fn pods_resolve_over_ipv4_and_ipv6_and_never_to_one_address() {
    let dns = FakeDns::start(61);
    let v4: IpAddr = "10.244.1.7".parse().unwrap();
    let v6: IpAddr = "fd00:10:244::8".parse().unwrap();
    dns.add("redis-app-0.redis-service.infra.svc.cluster.local", v4);
    dns.add("redis-app-1.redis-service.infra.svc.cluster.local", v6);
    dns.add("redis-app-2.redis-service.infra.svc.cluster.local", v4);

    let both = resolve(
        &dns,
        &[
            "redis-app-0.redis-service.infra.svc.cluster.local.",
            "redis-app-1.redis-service.infra.svc.cluster.local.",
        ],
    );
    assert_eq!(both.unwrap(), [v4, v6]);

    let clash = resolve(
        &dns,
        &[
            "redis-app-0.redis-service.infra.svc.cluster.local.",
            "redis-app-1.redis-service.infra.svc.cluster.local.",
            "redis-app-2.redis-service.infra.svc.cluster.local.",
        ],
    )
    .unwrap_err();
    assert!(
        clash
            .to_string()
            .contains("redis-app-0 and redis-app-2 both resolve to 10.244.1.7:6379"),
        "{clash}"
    );
}

#[test]
fn without_nodes_or_any_kubernetes_configuration_exits_2() {
    // The harness clears the environment: no BOOTSTRAP_NODES, no KUBECONFIG, no HOME, not in a pod.
    let run = common::bootstrap(&[]);

    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("set KUBECONFIG, or set BOOTSTRAP_NODES"),
        "{run:?}"
    );
}
