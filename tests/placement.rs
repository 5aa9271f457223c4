//! Placement-aware pairing end to end: the real binary in Kubernetes mode against the fake API
//! server (pods with `spec.nodeName`, Kubernetes nodes with zone labels, or a ServiceAccount that
//! may not get nodes), the fake DNS, and real redis-server nodes playing the pods. Where a test
//! installs from a kustomization, the fake API grants exactly what its Role and ClusterRoles grant
//! (403 otherwise, as RBAC does) and the binary gets its Job's `BOOTSTRAP_READ_NODES`.
//!
//! Loopback blocks 170–179 and 250 (see `common/BLOCKS.md`): `.1` is the API and DNS server,
//! `.11`, `.12`, ... the pods. `SHOW_RUNS=1` prints every run's output.

mod common;
mod dns;
mod fake_api;
mod kustomize;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{RedisNode, Run};
use dns::FakeDns;
use fake_api::{FakeApi, Stage};

/// A StatefulSet of six pods spread over Kubernetes nodes.
struct World {
    api: FakeApi,
    dns: FakeDns,
    pods: Vec<RedisNode>,
    /// The Kubernetes node of pod i.
    on: Vec<&'static str>,
}

impl World {
    /// Six Ready pods at `on[i]`; `nodes` are the Kubernetes nodes the API server knows, with
    /// their zones.
    fn new(block: u8, on: [&'static str; 6], nodes: &[(&str, Option<&str>)]) -> World {
        let api = FakeApi::start(block, "infra");
        let dns = FakeDns::start(block);
        let pods = common::start_nodes(block, 6);
        for (i, pod) in pods.iter().enumerate() {
            dns.add(
                &format!("redis-app-{i}.redis-service.infra.svc.cluster.local"),
                pod.addr.ip(),
            );
        }
        for (name, zone) in nodes {
            api.add_node(name, *zone);
        }
        api.show(&Stage::ready(6, 6));
        api.place(&on);
        World {
            api,
            dns,
            pods,
            on: on.to_vec(),
        }
    }

    fn bootstrap(&self) -> Run {
        self.bootstrap_with(&[])
    }

    /// A run with these variables besides the test's own.
    fn bootstrap_with(&self, extra: &[(&str, &str)]) -> Run {
        let kubeconfig = self.api.kubeconfig("infra");
        let dns = self.dns.addr.to_string();
        let mut env = vec![
            ("KUBECONFIG", kubeconfig.as_str()),
            ("BOOTSTRAP_DNS_SERVER", dns.as_str()),
            ("BOOTSTRAP_READY_TIMEOUT", "60s"),
            ("BOOTSTRAP_CONVERGE_TIMEOUT", "60s"),
        ];
        env.extend_from_slice(extra);
        let run = common::bootstrap(&env);
        if std::env::var_os("SHOW_RUNS").is_some() {
            eprintln!("{run:?}");
        }
        run
    }

    /// `(replica, master)` by pod index, as pod 0 sees the cluster.
    fn pairs(&self) -> Vec<(usize, usize)> {
        let pod_of: HashMap<String, usize> = self
            .pods
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id(), i))
            .collect();
        let mut pairs: Vec<(usize, usize)> = common::topology(&self.pods[0])
            .into_iter()
            .filter(|(_, role, _, _)| role == "replica")
            .map(|(id, _, master, _)| (pod_of[&id], pod_of[&master]))
            .collect();
        pairs.sort();
        pairs
    }

    /// Asserts exit 0, a clean `redis-cli --cluster check`, and a report row per pod naming its
    /// Kubernetes node.
    fn assert_formed(&self, run: &Run) {
        assert_eq!(run.code, 0, "{run:?}");
        let (ok, check) = common::cluster_check(&self.pods[0]);
        assert!(ok, "redis-cli --cluster check:\n{check}\n{run:?}");
        assert!(
            run.stdout.lines().next().unwrap().contains("NODE"),
            "{run:?}"
        );
        for (i, pod) in self.pods.iter().enumerate() {
            let row = run
                .stdout
                .lines()
                .find(|line| line.contains(&pod.host_port()))
                .unwrap_or_else(|| panic!("no report row for pod {i}\n{run:?}"));
            assert!(
                row.contains(&format!("redis-app-{i}")) && row.contains(self.on[i]),
                "{row}\n{run:?}"
            );
        }
    }
}

/// What `kubectl apply -k DIR` gives the bootstrap's ServiceAccount: the `(verb, resource)` pairs
/// of every Role and ClusterRole of the rendering (tests/manifests.rs checks that each is bound to
/// it).
fn granted_by(dir: &str) -> Vec<(String, String)> {
    let mut granted = Vec::new();
    for doc in kustomize::render(dir) {
        if doc["kind"] != "Role" && doc["kind"] != "ClusterRole" {
            continue;
        }
        for rule in doc["rules"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                for verb in rule["verbs"].as_array().unwrap() {
                    let pair = (verb.as_str().unwrap(), resource.as_str().unwrap());
                    granted.push((pair.0.to_string(), pair.1.to_string()));
                }
            }
        }
    }
    granted
}

/// `BOOTSTRAP_READ_NODES` as the bootstrap container of `kind` (Job or CronJob) in `DIR` sets it,
/// as a variable for [`World::bootstrap_with`] (none when unset).
fn read_nodes_of(dir: &str, kind: &str) -> Vec<(&'static str, String)> {
    let docs = kustomize::render(dir);
    let object = docs
        .iter()
        .find(|doc| doc["kind"] == kind)
        .unwrap_or_else(|| panic!("{dir} has no {kind}"));
    let pod = match kind {
        "CronJob" => &object["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        _ => &object["spec"]["template"]["spec"],
    };
    let containers = pod["containers"].as_array().unwrap();
    let bootstrap = containers
        .iter()
        .find(|c| c["name"] == "bootstrap")
        .unwrap();
    bootstrap["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|var| var["name"] == "BOOTSTRAP_READ_NODES")
        .map(|var| {
            (
                "BOOTSTRAP_READ_NODES",
                var["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn as_env<'a>(vars: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    vars.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Three Kubernetes nodes in three zones.
const THREE_ZONES: [(&str, Option<&str>); 3] = [
    ("worker-a", Some("eu-west-1a")),
    ("worker-b", Some("eu-west-1b")),
    ("worker-c", Some("eu-west-1c")),
];

/// The scheduler spread pods 0-2 and then 3-5 over the same three nodes, so the guide's pairs
/// (3→0, 4→1, 5→2) would each share a node.
const ROUND_ROBIN: [&str; 6] = [
    "worker-a", "worker-b", "worker-c", "worker-a", "worker-b", "worker-c",
];

/// Installed as `overlays/production` (with `components/placement`): zones are read, each node
/// once, and nothing is forbidden.
#[test]
fn no_replica_shares_a_node_or_zone_with_its_master() {
    let world = World::new(170, ROUND_ROBIN, &THREE_ZONES);
    world.api.grant_only(&granted_by("overlays/production"));
    let read_nodes = read_nodes_of("overlays/production", "Job");
    assert_eq!(read_nodes, [("BOOTSTRAP_READ_NODES", "true".to_string())]);

    let run = world.bootstrap_with(&as_env(&read_nodes));

    world.assert_formed(&run);
    let pairs = world.pairs();
    assert_eq!(pairs.len(), 3, "{pairs:?}");
    for (replica, master) in &pairs {
        assert_ne!(world.on[*replica], world.on[*master], "{pairs:?}\n{run:?}");
    }
    assert!(
        run.stderr
            .contains("pairing by placement: no replica shares a zone with its master"),
        "{run:?}"
    );
    assert!(!run.stderr.contains("shared failure domain"), "{run:?}");
    // The report names each pod's zone too.
    let header = run.stdout.lines().next().unwrap();
    assert!(header.contains("ZONE"), "{run:?}");
    assert!(run.stdout.contains("eu-west-1b"), "{run:?}");
    // The nodes were read, each once.
    let requests = world.api.requests();
    let node_reads: Vec<_> = requests.iter().filter(|r| r.resource == "nodes").collect();
    assert_eq!(node_reads.len(), 3, "{requests:#?}");
    assert!(node_reads.iter().all(|r| r.code == 200 && r.authorized));
    let names: std::collections::BTreeSet<&str> =
        node_reads.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(names.len(), 3, "{requests:#?}");
    assert!(requests.iter().all(|r| r.code != 403), "{requests:#?}");
}

/// Installed as `.` (the base and the CronJob, no `components/placement`): neither the forming
/// run nor a scheduled run after it asks for anything its Role forbids (no 403 for the API
/// server's audit log every minute), and the pairing still keeps replicas off their master's node.
#[test]
fn without_the_placement_component_no_run_asks_for_what_its_role_forbids() {
    let world = World::new(250, ROUND_ROBIN, &THREE_ZONES);
    world.api.grant_only(&granted_by("."));
    assert!(read_nodes_of(".", "Job").is_empty());
    assert!(read_nodes_of(".", "CronJob").is_empty());

    let forming = world.bootstrap_with(&as_env(&read_nodes_of(".", "Job")));

    world.assert_formed(&forming);
    for (replica, master) in world.pairs() {
        assert_ne!(world.on[replica], world.on[master], "{forming:?}");
    }
    assert!(forming.stderr.contains("zones not read"), "{forming:?}");
    let scheduled = world.bootstrap_with(&as_env(&read_nodes_of(".", "CronJob")));
    world.assert_formed(&scheduled);
    assert!(scheduled.stdout.contains("steps=0"), "{scheduled:?}");
    let requests = world.api.requests();
    assert!(requests.iter().all(|r| r.code != 403), "{requests:#?}");
    assert!(
        requests.iter().all(|r| r.resource != "nodes"),
        "{requests:#?}"
    );
    // The runs did use the API: the StatefulSet, its pods, the Lease and an Event.
    for resource in ["statefulsets", "pods", "leases", "events"] {
        assert!(
            requests
                .iter()
                .any(|r| r.resource == resource && r.code < 300),
            "{resource}: {requests:#?}"
        );
    }
}

/// `BOOTSTRAP_READ_NODES=true` but only the base Role granted (the component's binding missing):
/// one 403, one warning, and the pairing by node.
#[test]
fn without_permission_to_get_nodes_replicas_are_still_kept_off_their_masters_node() {
    let world = World::new(171, ROUND_ROBIN, &THREE_ZONES);
    world.api.grant_only(&granted_by("manifests"));

    let run = world.bootstrap_with(&[("BOOTSTRAP_READ_NODES", "true")]);

    world.assert_formed(&run);
    for (replica, master) in world.pairs() {
        assert_ne!(world.on[replica], world.on[master], "{run:?}");
    }
    assert!(
        run.stderr
            .contains("the ServiceAccount may not get nodes, so zones are unknown"),
        "{run:?}"
    );
    assert!(
        run.stderr
            .contains("pairing by placement: no replica shares a Kubernetes node with its master"),
        "{run:?}"
    );
    assert!(!run.stdout.lines().next().unwrap().contains("ZONE"));
    // Three nodes to read, but after the first 403 none is asked again.
    let requests = world.api.requests();
    let node_reads: Vec<_> = requests.iter().filter(|r| r.resource == "nodes").collect();
    assert_eq!(node_reads.len(), 1, "{requests:#?}");
    assert_eq!(node_reads[0].code, 403);
    assert!(
        requests
            .iter()
            .all(|r| r.code != 403 || r.resource == "nodes"),
        "{requests:#?}"
    );
    let warned = run
        .stderr
        .lines()
        .filter(|l| l.contains("may not get nodes"))
        .count();
    assert_eq!(warned, 1, "{run:?}");
}

#[test]
fn one_node_forms_the_guides_layout_and_every_run_warns_even_after_a_failover() {
    let world = World::new(172, ["kind"; 6], &[("kind", None)]);

    let first = world.bootstrap();

    world.assert_formed(&first);
    assert_eq!(world.pairs(), [(3, 0), (4, 1), (5, 2)]);
    let warnings = |run: &Run| {
        run.stderr
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("shared failure domain"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // One per shard when pairing, one per shard in the report.
    assert_eq!(warnings(&first).len(), 6, "{first:?}");
    // The forming run records a Warning Event beside its own; a later no-op run records none.
    let shared = |api: &FakeApi| {
        api.events()
            .iter()
            .filter(|e| e.reason.as_deref() == Some("SharedFailureDomain"))
            .count()
    };
    assert_eq!(shared(&world.api), 1, "{:#?}", world.api.events());

    // Pod 3 takes over shard 0; a later run finds the cluster formed, moves nothing, and names
    // the new master.
    world.pods[3].cli(&["cluster", "failover"]);
    // Wait until every node agrees (pod 3 a master, pod 0 its replica, links up), so that the next
    // run finds a formed cluster rather than one still settling.
    let deadline = Instant::now() + Duration::from_secs(30);
    let id3 = world.pods[3].id();
    let settled = || {
        world.pods.iter().all(|p| {
            let view = p.cli(&["cluster", "nodes"]);
            view.lines()
                .any(|l| l.starts_with(&id3) && l.contains("master"))
                && !view.contains("fail")
        }) && common::cluster_check(&world.pods[0]).0
            && world.pods[0]
                .cli(&["info", "replication"])
                .contains("master_link_status:up")
    };
    while !settled() {
        assert!(Instant::now() < deadline, "the failover never settled");
        std::thread::sleep(Duration::from_millis(200));
    }

    let again = world.bootstrap();

    world.assert_formed(&again);
    assert!(again.stdout.contains("steps=0"), "{again:?}");
    assert_eq!(shared(&world.api), 1, "a formed cluster costs no Event");
    let warned = warnings(&again);
    assert_eq!(warned.len(), 3, "{again:?}");
    assert!(
        warned.iter().any(|w| w.contains(
            "master redis-app-3: its replica redis-app-0 is on the same Kubernetes node kind"
        )),
        "{warned:#?}"
    );
}

#[test]
fn a_service_account_that_may_not_list_pods_exits_2_naming_the_permission() {
    let world = World::new(173, ROUND_ROBIN, &THREE_ZONES);
    world.api.forbid("list", "pods");

    let run = world.bootstrap();

    // Forming blind could pair a replica with its master's node: refuse to guess.
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("cannot list pods in namespace infra: grant it in the Role"),
        "{run:?}"
    );
    // Nothing was touched.
    let info = world.pods[0].cli(&["cluster", "info"]);
    assert!(info.contains("cluster_known_nodes:1"), "{info}");
}
