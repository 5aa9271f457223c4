//! Kubernetes mode end to end: the real binary, a fake API server over real HTTP reached through a
//! real kubeconfig (`fake_api`), a DNS server answering the pods' names (`dns`), and real
//! redis-server nodes on loopback IPs playing the pods.
//!
//! Loopback blocks 50–69 and 152–169 (see `common/BLOCKS.md`); in each, `.1` is the API server (port 6443)
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

    /// As [`World::new`], each node announcing its pod name (`cluster-announce-hostname`), as the
    /// StatefulSet's pods do.
    fn announcing(block: u8, namespace: &'static str, pods: usize) -> World {
        let nodes = (0..pods)
            .map(|i| {
                let options = common::Options {
                    extra: vec![
                        "--cluster-announce-hostname".into(),
                        format!("redis-app-{i}"),
                    ],
                    ..Default::default()
                };
                RedisNode::start(&common::ip(block, i), &options)
            })
            .collect();
        World {
            block,
            namespace,
            api: FakeApi::start(block, namespace),
            dns: FakeDns::start(block),
            nodes,
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
        assert!((50..70).contains(&self.block) || (152..170).contains(&self.block));
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
    // Every call succeeded; the Lease did not exist yet (404), so it was created (201), as was
    // the Event.
    assert!(
        requests.iter().all(|r| r.authorized
            && (r.code == 200
                || (r.verb == "create" && r.code == 201)
                || (r.resource, r.verb, r.code) == ("leases", "get", 404))),
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

// ---------------------------------------------------------------------------------------------
// Day 2: the Lease and the Events
// ---------------------------------------------------------------------------------------------

/// Calls of `command` (e.g. `cluster|addslotsrange`) summed over every node's `INFO commandstats`.
fn calls(nodes: &[RedisNode], command: &str) -> u64 {
    let prefix = format!("cmdstat_{command}:calls=");
    nodes
        .iter()
        .map(|n| {
            n.cli(&["info", "commandstats"])
                .lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .and_then(|rest| rest.split(',').next())
                .map_or(0, |n| n.parse::<u64>().unwrap())
        })
        .sum()
}

#[test]
fn two_runs_started_together_take_turns_and_only_one_forms_the_cluster() {
    let world = World::new(152, "infra", 6);
    world.publish_all();
    world.api.show(&Stage::ready(6, 6));

    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| world.bootstrap("infra", &[("HOSTNAME", "redis-cluster-bootstrap-a")]));
        let b = s.spawn(|| world.bootstrap("infra", &[("HOSTNAME", "redis-cluster-heal-b")]));
        (a.join().unwrap(), b.join().unwrap())
    });
    world.assert_formed(&a);
    world.assert_formed(&b);

    // One formed it, the other waited for the Lease, observed afresh and found it formed.
    let (former, waiter, former_host) = match (
        a.stdout.contains("decision=fresh"),
        b.stdout.contains("decision=fresh"),
    ) {
        (true, false) => (&a, &b, "redis-cluster-bootstrap-a"),
        (false, true) => (&b, &a, "redis-cluster-heal-b"),
        _ => panic!("exactly one run must form the cluster\n{a:?}\n{b:?}"),
    };
    assert!(waiter.stdout.contains("decision=formed"), "{waiter:?}");
    assert!(
        waiter
            .stderr
            .contains("another run holds the lease; waiting for it"),
        "{waiter:?}"
    );
    assert!(former.stderr.contains("released the lease"), "{former:?}");

    // The nodes saw the cluster commands of one run only: 3 masters' slots, 6 epochs, 3 replicas.
    assert_eq!(calls(&world.nodes, "cluster|addslotsrange"), 3);
    assert_eq!(calls(&world.nodes, "cluster|set-config-epoch"), 6);
    assert_eq!(calls(&world.nodes, "cluster|replicate"), 3);

    // The Lease went to one run, was released, went to the other, was released: never shared.
    let holders = world.api.lease_holders();
    assert_eq!(holders.len(), 4, "{holders:?}");
    assert!(holders[0].is_some() && holders[1].is_none(), "{holders:?}");
    assert!(holders[2].is_some() && holders[3].is_none(), "{holders:?}");
    assert_ne!(holders[0], holders[2]);
    assert!(
        holders[0].as_deref().unwrap().starts_with(former_host),
        "{holders:?}"
    );
    let lease = world
        .api
        .lease("redis-app-bootstrap")
        .expect("the Lease exists");
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity, None);
    assert_eq!(spec.lease_transitions, Some(1));
    assert_eq!(spec.lease_duration_seconds, Some(15));
    assert!(world.api.requests().iter().all(|r| r.authorized));

    // One Event, from the run that formed the cluster; the no-op run recorded nothing.
    let events = world.api.events();
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    assert_eq!(event.type_.as_deref(), Some("Normal"));
    assert_eq!(event.reason.as_deref(), Some("Formed"));
    assert_eq!(event.action.as_deref(), Some("Form"));
    assert_eq!(
        event.reporting_controller.as_deref(),
        Some("redis-cluster-bootstrap")
    );
    assert_eq!(event.reporting_instance.as_deref(), Some(former_host));
    let note = event.note.as_deref().unwrap();
    assert!(
        note.starts_with("outcome=formed decision=fresh nodes=6 masters=3"),
        "{note}"
    );
    let regarding = event.regarding.as_ref().unwrap();
    assert_eq!(regarding.kind.as_deref(), Some("StatefulSet"));
    assert_eq!(regarding.api_version.as_deref(), Some("apps/v1"));
    assert_eq!(regarding.name.as_deref(), Some("redis-app"));
    assert_eq!(regarding.namespace.as_deref(), Some("infra"));
    // kubectl describe finds a StatefulSet's Events by its UID.
    assert_eq!(regarding.uid.as_deref(), Some("0000-redis-app"));
    assert_eq!(event.metadata.namespace.as_deref(), Some("infra"));
}

#[test]
fn a_refused_run_releases_the_lease_and_records_a_warning() {
    let mut world = World::new(153, "infra", 6);
    world.nodes[2].restart_on(&common::ip(153, 2), &common::Options::standalone());
    world.publish_all();
    world.api.show(&Stage::ready(6, 6));

    let run = world.bootstrap("infra", &[("HOSTNAME", "redis-cluster-bootstrap-x")]);

    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("released the lease"), "{run:?}");
    let holders = world.api.lease_holders();
    assert_eq!(holders.len(), 2, "{holders:?}");
    assert_eq!(holders[1], None, "{holders:?}");
    let events = world.api.events();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].type_.as_deref(), Some("Warning"));
    assert_eq!(events[0].reason.as_deref(), Some("Refused"));
    let note = events[0].note.as_deref().unwrap();
    assert!(
        note.starts_with("refused:") && note.contains("redis-app-2"),
        "{note}"
    );
    // Refused before any change.
    assert_eq!(calls(&world.nodes, "cluster|addslotsrange"), 0);
}

#[test]
fn a_readiness_timeout_records_a_warning_and_takes_no_lease() {
    let world = World::new(154, "infra", 0);
    world.api.show(&Stage::ready(6, 4));

    let run = world.bootstrap(
        "infra",
        &[
            ("BOOTSTRAP_READY_TIMEOUT", "1s"),
            ("HOSTNAME", "redis-cluster-heal-1"),
        ],
    );

    assert_eq!(run.code, 1, "{run:?}");
    assert!(world.api.lease_holders().is_empty());
    let events = world.api.events();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].type_.as_deref(), Some("Warning"));
    assert_eq!(events[0].reason.as_deref(), Some("TimedOut"));
    assert_eq!(events[0].action.as_deref(), Some("WaitForReady"));
    assert!(
        events[0].note.as_deref().unwrap().contains("4/6 ready"),
        "{events:#?}"
    );
}

#[test]
fn a_scheduled_run_during_a_rolling_update_leaves_it_alone_without_a_warning() {
    // kubectl rollout restart, halfway: every pod Ready at this moment, but 3 of 6 still to roll.
    let world = World::new(235, "infra", 0);
    world.api.show(&Stage::ready(6, 5).rolling(3));

    let run = world.bootstrap(
        "infra",
        &[
            ("BOOTSTRAP_READY_TIMEOUT", "1s"),
            ("BOOTSTRAP_WHEN_NOT_READY", "skip"),
            ("HOSTNAME", "redis-cluster-heal-1"),
        ],
    );

    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.contains("leaving the StatefulSet alone"),
        "{run:?}"
    );
    let summary = run.stdout.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("outcome=skipped") && summary.contains("rolling update"),
        "{run:?}"
    );
    assert!(world.api.events().is_empty(), "{:#?}", world.api.events());
    assert!(world.api.lease_holders().is_empty());
}

#[test]
fn static_mode_uses_no_lease_and_records_no_event() {
    let world = World::new(155, "infra", 6);
    world.api.show(&Stage::ready(6, 6));
    let list = common::node_list(&world.nodes);
    // A kubeconfig is there, but BOOTSTRAP_NODES means static mode: the API is never called.
    let run = world.bootstrap("infra", &[("BOOTSTRAP_NODES", list.as_str())]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("decision=fresh"), "{run:?}");
    assert!(
        world.api.requests().is_empty(),
        "{:?}",
        world.api.requests()
    );
}

#[test]
fn a_dry_run_takes_no_lease_and_records_no_event() {
    let world = World::new(156, "infra", 6);
    world.publish_all();
    world.api.show(&Stage::ready(6, 6));
    let run = world.bootstrap("infra", &[("BOOTSTRAP_DRY_RUN", "true")]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("would run"), "{run:?}");
    assert!(world.api.lease_holders().is_empty());
    assert!(world.api.events().is_empty());
}

#[test]
fn a_run_that_cannot_get_the_lease_in_time_changes_nothing_and_says_who_holds_it() {
    let world = World::new(157, "infra", 6);
    world.publish_all();
    world.api.show(&Stage::ready(6, 6));
    world.api.hold_lease(
        "redis-app-bootstrap",
        "redis-cluster-bootstrap-7d9f_0a1b2c3d",
    );

    let run = world.bootstrap("infra", &[("BOOTSTRAP_READY_TIMEOUT", "2s")]);

    assert_eq!(run.code, 1, "{run:?}");
    let error = run.stderr.lines().last().unwrap_or_default();
    assert!(
        error.contains("waiting for the lease did not finish within 2s")
            && error.contains("held by redis-cluster-bootstrap-7d9f_0a1b2c3d"),
        "{run:?}"
    );
    // It never observed, so it sent nothing to the nodes, and it left the Lease alone.
    assert_eq!(calls(&world.nodes, "cluster|addslotsrange"), 0);
    assert_eq!(calls(&world.nodes, "cluster|meet"), 0);
    assert!(world.api.lease_holders().is_empty());
    let events = world.api.events();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].reason.as_deref(), Some("TimedOut"));
    assert_eq!(events[0].action.as_deref(), Some("AcquireLease"));
}

#[test]
fn a_lease_left_by_a_crashed_run_is_taken_over_once_it_expires() {
    let world = World::new(158, "infra", 6);
    world.publish_all();
    world.api.show(&Stage::ready(6, 6));
    // A run that crashed holding the Lease: it will never renew or release it.
    world.api.hold_lease("redis-app-bootstrap", "crashed-run");

    let started = Instant::now();
    let run = world.bootstrap("infra", &[]);

    world.assert_formed(&run);
    // Not before leaseDurationSeconds (15 s) by the run's own clock, and not much after.
    assert!(started.elapsed() >= Duration::from_secs(15), "{run:?}");
    assert!(started.elapsed() < Duration::from_secs(40), "{run:?}");
    assert!(
        run.stderr.contains("previous_holder=\"crashed-run\""),
        "{run:?}"
    );
    let lease = world.api.lease("redis-app-bootstrap").unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity, None);
    assert_eq!(spec.lease_transitions, Some(1));
}

#[test]
fn a_statefulset_scaled_out_by_a_shard_grows_the_cluster_and_records_grown() {
    let world = World::new(163, "infra", 8);
    for (i, node) in world.nodes.iter().enumerate().take(6) {
        world.dns.add(&world.host(i), node.addr.ip());
    }
    world.api.show(&Stage::ready(6, 6));
    let formed = world.bootstrap("infra", &[]);
    assert_eq!(formed.code, 0, "{formed:?}");
    assert!(formed.stdout.contains("decision=fresh"), "{formed:?}");

    // `kubectl scale statefulset redis-app --replicas=8`: two new pods, Ready, in DNS.
    for (i, node) in world.nodes.iter().enumerate().skip(6) {
        world.dns.add(&world.host(i), node.addr.ip());
    }
    world.api.show(&Stage::ready(8, 8));
    let grown = world.bootstrap("infra", &[]);

    world.assert_formed(&grown);
    assert!(grown.stdout.contains("decision=grow"), "{grown:?}");
    let masters_with_slots = world.nodes[0]
        .cli(&["cluster", "nodes"])
        .lines()
        .filter(|l| l.contains("master") && l.split(' ').count() > 8)
        .count();
    assert_eq!(masters_with_slots, 4, "{grown:?}");
    let events = world.api.events();
    let reasons: Vec<_> = events.iter().filter_map(|e| e.reason.as_deref()).collect();
    assert_eq!(reasons, ["Formed", "Grown"], "{events:#?}");
    // The next scheduled run finds it formed and records nothing.
    let again = world.bootstrap("infra", &[]);
    assert!(again.stdout.contains("decision=formed"), "{again:?}");
    assert_eq!(world.api.events().len(), 2);
}

#[test]
fn sigterm_while_waiting_for_the_lease_stops_at_once_having_changed_nothing() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let world = World::new(164, "infra", 6);
    world.publish_all();
    world.api.show(&Stage::ready(6, 6));
    world.api.hold_lease(
        "redis-app-bootstrap",
        "redis-cluster-bootstrap-7d9f_0a1b2c3d",
    );
    let kubeconfig = world.api.kubeconfig("infra");
    let dns = world.dns.addr.to_string();
    let env = [
        ("KUBECONFIG", kubeconfig.as_str()),
        ("BOOTSTRAP_DNS_SERVER", dns.as_str()),
        ("BOOTSTRAP_READY_TIMEOUT", "60s"),
    ];
    let mut child = common::bootstrap_command(&env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log: Vec<String> = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let waiting = line.contains("another run holds the lease; waiting for it");
        log.push(line);
        if waiting {
            break;
        }
    }
    let signalled = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    log.extend(lines.map(Result::unwrap));
    let status = child.wait().unwrap();
    let log = log.join("\n");

    // Within a second, not at the end of the 60 s wait.
    assert!(signalled.elapsed() < Duration::from_secs(2), "{log}");
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("interrupted by SIGTERM during lease: nothing was changed"),
        "{log}"
    );
    assert_eq!(calls(&world.nodes, "cluster|addslotsrange"), 0);
    assert!(world.api.lease_holders().is_empty());
    let events = world.api.events();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].reason.as_deref(), Some("Interrupted"));
}

/// Scale-in as docs/deploy.md tells it: 6 pods formed, scaled out to 8, drained to 6
/// (`BOOTSTRAP_DRAIN_TO=6`), then the StatefulSet shrinks and the next run comes while pods 6 and
/// 7 are still shutting down (their links up, no node suspects them). They announce pod names
/// beyond the six, so the run waits instead of refusing them as another cluster's nodes; once
/// they are gone and flagged `fail`, it forgets them and records `Shrunk`.
#[test]
fn a_run_during_the_scale_in_waits_for_the_removed_pods_then_forgets_them() {
    let mut world = World::announcing(168, "infra", 8);
    for (i, node) in world.nodes.iter().enumerate().take(6) {
        world.dns.add(&world.host(i), node.addr.ip());
    }
    world.api.show(&Stage::ready(6, 6));
    assert_eq!(world.bootstrap("infra", &[]).code, 0);
    for (i, node) in world.nodes.iter().enumerate().skip(6) {
        world.dns.add(&world.host(i), node.addr.ip());
    }
    world.api.show(&Stage::ready(8, 8));
    let grown = world.bootstrap("infra", &[]);
    assert!(grown.stdout.contains("decision=grow"), "{grown:?}");
    let drained = world.bootstrap("infra", &[("BOOTSTRAP_DRAIN_TO", "6")]);
    assert_eq!(drained.code, 0, "{drained:?}");
    assert!(drained.stdout.contains("decision=drain"), "{drained:?}");

    // `kubectl scale statefulset redis-app --replicas=6`: pods 6 and 7 terminate a moment later.
    world.api.show(&Stage::ready(6, 6));
    let removed: Vec<String> = world.nodes[6..].iter().map(RedisNode::id).collect();
    let mut leaving = world.nodes.split_off(6);
    let terminating = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        leaving.clear();
    });
    let shrunk = world.bootstrap("infra", &[("BOOTSTRAP_DRAIN_TO", "6")]);
    terminating.join().unwrap();
    world.assert_formed(&shrunk);
    assert!(
        shrunk.stderr.contains("not yet flagged fail by every node"),
        "{shrunk:?}"
    );
    assert!(shrunk.stdout.contains("decision=shrink"), "{shrunk:?}");
    for node in &world.nodes {
        let view = node.cli(&["cluster", "nodes"]);
        for id in &removed {
            assert!(!view.contains(id.as_str()), "{} knows {id}", node.addr);
        }
    }
    let events = world.api.events();
    let reasons: Vec<_> = events.iter().filter_map(|e| e.reason.as_deref()).collect();
    assert_eq!(
        reasons,
        ["Formed", "Grown", "Drained", "Shrunk"],
        "{events:#?}"
    );
}
