//! The StatefulSet's pods as the kubelet plays them on real nodes: each node announces its IP and
//! pod name; a stop is the preStop hook (`handover`) then SIGTERM; a pod comes back seconds later
//! on a new IP from its data directory and starts `rejoin` beside Redis; a rolling restart stops
//! the next pod only once `ready` passes on the last one.

use std::time::{Duration, Instant};

use super::{Options, RedisNode, Run, access_env, node_list, run_binary};

/// Pod `i` at `ip`: it announces that IP and its pod name, as the StatefulSet's pods do.
pub fn pod_options(base: &Options, ip: &str, i: usize) -> Options {
    let mut options = base.clone();
    options.extra.extend([
        "--cluster-announce-ip".into(),
        ip.into(),
        "--cluster-announce-hostname".into(),
        format!("redis-app-{i}"),
    ]);
    options
}

/// Pods 0, 1, ... at these addresses, one each.
pub fn start_pods(ips: &[String], base: &Options) -> Vec<RedisNode> {
    ips.iter()
        .enumerate()
        .map(|(i, ip)| RedisNode::start(ip, &pod_options(base, ip, i)))
        .collect()
}

/// Runs pod command `command` with `BOOTSTRAP_NODES=list`, let in as `node` lets the binary in.
pub fn pod_command(command: &str, list: &str, node: &RedisNode, extra: &[(&str, &str)]) -> Run {
    let access = access_env(node);
    let mut env = vec![("BOOTSTRAP_NODES", list)];
    env.extend(access.iter().map(|(k, v)| (*k, v.as_str())));
    env.extend_from_slice(extra);
    run_binary(&[command], &env)
}

/// `master` or `slave`, as the node says of itself.
pub fn role(node: &RedisNode) -> String {
    node.cli(&["role"])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Waits until `ready` passes on `node` (what the kubelet waits for before the next pod).
pub fn wait_ready(node: &RedisNode) -> Duration {
    let started = Instant::now();
    loop {
        let run = pod_command("ready", &node.host_port(), node, &[]);
        if run.code == 0 {
            return started.elapsed();
        }
        assert_eq!(run.code, 1, "{run:?}");
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{} never became ready: {run:?}",
            node.addr
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// What happens to a pod during a roll, for a test that keeps something beside each pod (a
/// client's seed list, an exporter sidecar).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodEvent {
    /// The pod is being deleted: its hook is about to run (the kubelet stops the pod's other
    /// containers meanwhile).
    Stopping,
    /// The pod's Redis got SIGTERM after its hook and has exited.
    Stopped,
    /// The pod is back on its new address (Redis started, `rejoin` not yet run).
    Started,
}

/// The roll of `kubectl rollout restart`: pod N-1 down to pod 0, each one's `handover` hook (a
/// master hands its slots to its replica before SIGTERM; asserted), away for `away`, back on
/// `new_ip(i)` from its data directory with `rejoin` beside it, and the next pod only once `ready`
/// passes. `event` is called as each pod is deleted, stops and starts.
pub fn roll_pods(
    nodes: &mut [RedisNode],
    base: &Options,
    away: Duration,
    new_ip: impl Fn(usize) -> String,
    mut event: impl FnMut(PodEvent, usize, &[RedisNode]),
) {
    for i in (0..nodes.len()).rev() {
        let was_master = role(&nodes[i]) == "master";
        event(PodEvent::Stopping, i, nodes);
        let started = Instant::now();
        let handover = pod_command("handover", &nodes[i].host_port(), &nodes[i], &[]);
        assert_eq!(handover.code, 0, "pod {i}: {handover:?}");
        if was_master {
            assert!(
                handover.stderr.contains("now a replica of"),
                "pod {i}: {handover:?}"
            );
            // Handed over before it stops: the kubelet sends SIGTERM only now.
            assert_eq!(role(&nodes[i]), "slave", "pod {i} still a master");
        } else {
            assert!(
                handover.stderr.contains("nothing to hand over"),
                "pod {i}: {handover:?}"
            );
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{handover:?}");
        nodes[i].terminate();
        event(PodEvent::Stopped, i, nodes);
        std::thread::sleep(away);
        let ip = new_ip(i);
        nodes[i].restart_on(&ip, &pod_options(base, &ip, i));
        event(PodEvent::Started, i, nodes);
        // The pod starts rejoin beside Redis; on a roll its peers have not moved under it.
        let own_first: Vec<String> = std::iter::once(nodes[i].host_port())
            .chain(
                nodes
                    .iter()
                    .filter(|n| n.addr != nodes[i].addr)
                    .map(|n| n.host_port()),
            )
            .collect();
        let rejoin = pod_command(
            "rejoin",
            &own_first.join(","),
            &nodes[i],
            &[("BOOTSTRAP_REJOIN_TIMEOUT", "60s")],
        );
        assert_eq!(rejoin.code, 0, "pod {i}: {rejoin:?} ({})", node_list(nodes));
        wait_ready(&nodes[i]);
    }
}
