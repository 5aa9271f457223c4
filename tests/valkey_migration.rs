//! Moving a running cluster from Redis to Valkey by the StatefulSet's rolling update (what
//! `components/valkey` applied to a running install does), on real nodes: six Redis 7.0 pods
//! rolled pod 5 down to pod 0 onto Valkey 8.0, each played as the kubelet plays it (the
//! `handover` hook, SIGTERM, a few seconds away, back on a new IP with its data directory under
//! `valkey-server`, `rejoin`, the next pod only once `ready` passes), while a client writes to
//! every shard:
//!
//! - no acknowledged write is lost, every shard's longest write gap stays within 0.5 s (a manual
//!   failover's pause, not an election's seconds) of the longest the same client sees on a node
//!   nothing happens to (the machine's own stalls), `--cluster check` is clean and a bootstrap
//!   run afterwards sends no command that changes a node;
//! - paused half-way (a StatefulSet `partition`: pods 2 to 5 on Valkey, 0 and 1 on Redis), the
//!   mixed cluster is healthy (every replica in sync, `--cluster check` clean, writes served)
//!   and a bootstrap run is a no-op; then the roll goes on to the end;
//! - the same over TLS with production's ACL users (`default` off, replicas as `replication`,
//!   the pod commands and the bootstrap as `bootstrap`).
//!
//! And what going back cannot do: a pod whose data Valkey rewrote, started again as Redis 7.0,
//! stops at `check-data` (it would never come up empty), and in Kubernetes mode the bootstrap
//! sees it crash-looping, waits, and neither replaces nor forgets it; rolled forward again, it is
//! back with its node ID and a run is a no-op.
//!
//! Runs once (it is Redis and Valkey by nature, not in scripts/test.sh's Valkey list).
//! Loopback blocks 127.33.1.0/24 to 127.33.3.0/24 (see `common/BLOCKS.md`).

mod common;
mod dns;
mod fake_api;

use std::time::{Duration, Instant};

use common::*;
use dns::FakeDns;
use fake_api::{FakeApi, PodState, Stage};

/// How long a stopped pod stays away before it is back on a new IP (a real pod: seconds).
const AWAY: Duration = Duration::from_secs(5);

/// Every shard's longest gap between two acknowledged writes, at most, beyond the longest gap
/// the same client sees on a node nothing happens to (see [`assert_writes_served`]): a manual
/// failover's pause and a redirection, where an election would cost the node timeout and more.
const LONGEST_GAP: Duration = Duration::from_millis(500);

/// Pod `index`'s address in `127.33.<block>.0/24` (new addresses from index 10 on).
fn address(block: u8, index: usize) -> String {
    format!("127.33.{block}.{}", 11 + index)
}

/// `base` on the given server.
fn on(base: &Options, server: Server) -> Options {
    Options {
        server: Some(server),
        ..base.clone()
    }
}

/// The server a node says it runs.
fn runs(node: &RedisNode) -> Server {
    if node.cli(&["info", "server"]).contains("valkey_version:") {
        Server::Valkey
    } else {
        Server::Redis
    }
}

/// Six Redis pods formed into a cluster, every replica caught up.
fn redis_cluster(block: u8, base: &Options) -> Vec<RedisNode> {
    let redis = on(base, Server::Redis);
    let nodes: Vec<RedisNode> = (0..6)
        .map(|i| {
            let ip = address(block, i);
            RedisNode::start(&ip, &pod_options(&redis, &ip, i))
        })
        .collect();
    let formed = run_static(&nodes);
    assert_eq!(formed.code, 0, "{formed:?}");
    wait_replicated(&nodes);
    assert!(nodes.iter().all(|n| runs(n) == Server::Redis));
    nodes
}

/// Rolls `pods` (in that order) onto Valkey; returns how long it took.
fn roll_onto_valkey(
    nodes: &mut [RedisNode],
    block: u8,
    base: &Options,
    pods: &[usize],
    writer: &Writer,
) -> Duration {
    let valkey = on(base, Server::Valkey);
    let started = Instant::now();
    for &i in pods {
        let pod = Instant::now();
        roll_pod(
            nodes,
            i,
            &valkey,
            AWAY,
            &address(block, 10 + i),
            |event, _, nodes| {
                // A pod that moved is reached at its new address.
                if event == PodEvent::Started {
                    writer.seeds(nodes);
                }
            },
        );
        assert_eq!(runs(&nodes[i]), Server::Valkey, "pod {i}");
        eprintln!("pod {i} on Valkey and ready in {:?}", pod.elapsed());
    }
    started.elapsed()
}

/// Healthy: `--cluster check` clean, and every replica's link to its master up.
fn assert_healthy(nodes: &[RedisNode]) {
    wait_until("every node to agree", Duration::from_secs(60), || {
        cluster_check(&nodes[0]).0
    });
    wait_until("every replica in sync", Duration::from_secs(60), || {
        nodes.iter().all(|n| {
            let info = n.cli(&["info", "replication"]);
            !info.contains("role:slave") || info.contains("master_link_status:up")
        })
    });
}

/// Stops the writers and checks what they saw: nothing lost, and no shard's gap longer than
/// [`LONGEST_GAP`] plus the control's longest. A loaded machine (2 cores shared by builds) makes
/// any server answer late now and then, roll or not; the control, the same client writing to a
/// node outside the cluster throughout, measures that, so what a shard may lose beyond it is
/// what the roll cost. On a quiet machine the control's longest gap is some 15 ms.
fn assert_writes_served(nodes: &[RedisNode], tags: &[String], writer: Writer, control: Writer) {
    // Let the client see the last pod back, then stop it.
    std::thread::sleep(Duration::from_secs(1));
    let written = writer.finish();
    let control = control.finish().remove(0).longest;
    for (tag, shard) in tags.iter().zip(&written) {
        eprintln!(
            "shard {tag}: {} writes acknowledged, longest gap {:?} (the control's: {control:?})",
            shard.acked.len(),
            shard.longest,
        );
    }
    assert_nothing_lost(nodes, tags, &written);
    for (tag, shard) in tags.iter().zip(&written) {
        assert!(
            shard.longest <= LONGEST_GAP + control,
            "shard {tag}: a write gap of {:?}, the control's longest {control:?}",
            shard.longest
        );
    }
}

/// The whole migration, paused at `pause_at` (a partition: pods from there on are rolled) where
/// the mixed cluster is checked while the client writes, then on to the end. Beside it, the
/// control: the same writer on a node outside the cluster that nothing happens to, whose longest
/// gap is what the machine's load costs any write.
fn migrate(block: u8, base: &Options, pause_at: Option<usize>) {
    let mut nodes = redis_cluster(block, base);
    let tags = shard_tags(&nodes[0]);
    let control_node = RedisNode::start(
        &address(block, 9),
        &Options {
            standalone: true,
            ..on(base, Server::Redis)
        },
    );
    let control = Writer::start(
        &control_node,
        std::slice::from_ref(&control_node),
        vec!["control".into()],
    );
    let writer = Writer::start(&nodes[0], &nodes, tags.clone());
    std::thread::sleep(Duration::from_millis(500));

    let order: Vec<usize> = (0..6).rev().collect();
    let (first, rest) = order.split_at(pause_at.map_or(6, |p| 6 - p));
    let mut took = roll_onto_valkey(&mut nodes, block, base, first, &writer);
    if let Some(partition) = pause_at {
        let servers: Vec<Server> = nodes.iter().map(runs).collect();
        for (i, server) in servers.iter().enumerate() {
            let expected = if i >= partition {
                Server::Valkey
            } else {
                Server::Redis
            };
            assert_eq!(*server, expected, "pod {i} while paused: {servers:?}");
        }
        assert_healthy(&nodes);
        // A scheduled run during the pause: nothing to do, and nothing done.
        assert_next_run_is_a_no_op(&nodes);
        eprintln!("paused at partition {partition}: {servers:?}, healthy, a run is a no-op");
    }
    took += roll_onto_valkey(&mut nodes, block, base, rest, &writer);
    eprintln!("the roll took {took:?} (each pod away {AWAY:?})");

    assert_writes_served(&nodes, &tags, writer, control);
    assert!(nodes.iter().all(|n| runs(n) == Server::Valkey));
    assert_healthy(&nodes);
    assert_next_run_is_a_no_op(&nodes);
}

#[test]
fn redis_to_valkey_paused_half_way_then_to_the_end_loses_no_write() {
    migrate(1, &Options::default(), Some(2));
}

#[test]
fn redis_to_valkey_over_tls_as_productions_acl_users() {
    let dir = tempfile::tempdir().unwrap();
    let ips: Vec<String> = (0..16).map(|i| address(2, i)).collect();
    let mut options = acl_options(dir.path());
    options.tls = Some(tls_for_ips(dir.path(), &ips));
    migrate(2, &options, None);
}

/// A replica rolled onto Valkey, whose AOF Valkey then rewrote, is rolled back to Redis 7.0:
/// its startup's `check-data` refuses (exit 3) and the server never starts, so the kubelet
/// shows the pod crash-looping. The bootstrap in Kubernetes mode waits for it, says why it is not
/// ready, and changes nothing: no command to any node, its node ID still known everywhere (not
/// forgotten, not replaced). Rolled forward again, the pod is back with the same ID and its data,
/// and the run is a no-op.
#[test]
fn a_pod_that_cannot_load_its_data_crash_loops_and_is_never_replaced() {
    let network = "127.33.3";
    let redis = Options {
        server: Some(Server::Redis),
        ..Options::default()
    };
    let mut nodes: Vec<RedisNode> = (0..6)
        .map(|i| {
            let ip = address(3, i);
            RedisNode::start(&ip, &pod_options(&redis, &ip, i))
        })
        .collect();
    let formed = run_static(&nodes);
    assert_eq!(formed.code, 0, "{formed:?}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(write_keys(&nodes, 1_000));
    wait_replicated(&nodes);

    // Pod 5 (a replica) on Valkey, which rewrites its AOF in its own RDB 11.
    let ip = address(3, 5);
    let valkey = on(&redis, Server::Valkey);
    nodes[5].restart_on(&ip, &pod_options(&valkey, &ip, 5));
    wait_ready(&nodes[5]);
    let id = nodes[5].id();
    nodes[5].cli(&["bgrewriteaof"]);
    wait_until("the AOF rewrite", Duration::from_secs(20), || {
        let info = nodes[5].cli(&["info", "persistence"]);
        info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrite_scheduled:0")
    });
    nodes[5].terminate();

    // Back to Redis 7.0: the container's first step refuses, and the server is never started.
    let dir = nodes[5].dir.display().to_string();
    let check = run_binary(&["check-data", &dir, "redis-server"], &[]);
    assert_eq!(check.code, 3, "{check:?}");
    assert!(
        check.stderr.contains("is RDB version 11") && check.stderr.contains("cannot load"),
        "{check:?}"
    );

    // Kubernetes shows pod 5 crash-looping; every pod is in DNS (pod 5 at its address, where
    // nothing answers).
    let api = FakeApi::start_in(network, "infra", Duration::ZERO);
    let dns = FakeDns::start_in(network);
    for i in 0..6 {
        let name = format!("redis-app-{i}.redis-service.infra.svc.cluster.local");
        dns.add(&name, address(3, i).parse().unwrap());
    }
    let mut stage = Stage::ready(6, 6);
    stage.pods[5] = PodState::CrashLooping;
    api.show(&stage);
    let kubeconfig = api.kubeconfig("infra");
    let dns_addr = dns.addr.to_string();
    let run = |extra: &[(&str, &str)]| {
        let mut env = vec![
            ("KUBECONFIG", kubeconfig.as_str()),
            ("BOOTSTRAP_DNS_SERVER", dns_addr.as_str()),
            ("BOOTSTRAP_READY_TIMEOUT", "3s"),
            ("BOOTSTRAP_CONVERGE_TIMEOUT", "60s"),
        ];
        env.extend_from_slice(extra);
        bootstrap(&env)
    };
    let live = &nodes[..5];
    reset_stats(live);
    let waited = run(&[]);
    assert_eq!(waited.code, 1, "{waited:?}");
    let error = waited.stderr.lines().last().unwrap_or_default();
    assert!(
        error.contains("redis-app-5") && error.contains("CrashLoopBackOff"),
        "{waited:?}"
    );
    // The CronJob's setting: skipped, nothing done either.
    let skipped = run(&[("BOOTSTRAP_WHEN_NOT_READY", "skip")]);
    assert_eq!(skipped.code, 0, "{skipped:?}");
    assert!(skipped.stdout.contains("outcome=skipped"), "{skipped:?}");
    assert_no_writes(live);
    for node in live {
        assert!(
            node.cli(&["cluster", "nodes"]).contains(&id),
            "{} forgot pod 5",
            node.addr
        );
    }

    // Forward again: the pod restarts on Valkey with its data and its node ID.
    nodes[5].restart_on(&ip, &pod_options(&valkey, &ip, 5));
    assert_eq!(nodes[5].id(), id);
    wait_ready(&nodes[5]);
    api.show(&Stage::ready(6, 6));
    reset_stats(&nodes);
    let again = run(&[]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("decision=formed"), "{again:?}");
    assert_no_writes(&nodes);
    assert_eq!(rt.block_on(read_keys(&nodes, 1_000)), 1_000);
}
