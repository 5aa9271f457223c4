//! The StatefulSet's pods as the kubelet plays them on real nodes: each node announces its IP and
//! pod name; a stop is the preStop hook (`handover`) then SIGTERM; a pod comes back seconds later
//! on a new IP from its data directory and starts `rejoin` beside Redis; a rolling restart stops
//! the next pod only once `ready` passes on the last one. And a client that writes to every
//! shard throughout ([`Writer`]), to show what a roll cost it.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
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

/// The roll of `kubectl rollout restart`: pod N-1 down to pod 0, each played by [`roll_pod`]
/// with `base`. `event` is called as each pod is deleted, stops and starts.
pub fn roll_pods(
    nodes: &mut [RedisNode],
    base: &Options,
    away: Duration,
    new_ip: impl Fn(usize) -> String,
    mut event: impl FnMut(PodEvent, usize, &[RedisNode]),
) {
    for i in (0..nodes.len()).rev() {
        roll_pod(nodes, i, base, away, &new_ip(i), &mut event);
    }
}

/// Pod `i`'s part of a roll: its `handover` hook (a master hands its slots to its replica before
/// SIGTERM; asserted), away for `away`, back on `new_ip` from its data directory with `options`
/// (the pod's new template: another server, say) and `rejoin` beside it, then waits until
/// `ready` passes, as the StatefulSet waits before the next pod. `event` is called as the pod is
/// deleted, stops and starts.
pub fn roll_pod(
    nodes: &mut [RedisNode],
    i: usize,
    options: &Options,
    away: Duration,
    new_ip: &str,
    mut event: impl FnMut(PodEvent, usize, &[RedisNode]),
) {
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
    nodes[i].restart_on(new_ip, &pod_options(options, new_ip, i));
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

/// A hash tag in each master's slot range, so a writer touches every shard.
pub fn shard_tags(node: &RedisNode) -> Vec<String> {
    let ranges = [(0, 5460), (5461, 10922), (10923, 16383)];
    ranges
        .iter()
        .map(|(low, high)| {
            (0..1000)
                .map(|n| format!("s{n}"))
                .find(|tag| {
                    let slot: u32 = node.cli(&["cluster", "keyslot", tag]).parse().unwrap();
                    (*low..=*high).contains(&slot)
                })
                .unwrap()
        })
        .collect()
}

/// A client that appends 1, 2, 3, ... to one list per shard (`RPUSH {tag}:log n`), as a cluster
/// client does: each shard in a thread of its own (a stalled shard does not slow the others),
/// on one connection to the shard's master, following `MOVED` to the new master, and trying the
/// next node when the master does not answer. An `Ok` reply is an acknowledged write; the lists
/// must hold every acknowledged number at the end. One write every 10 ms per shard; its own waits
/// are 5 ms, so a gap between two writes is the cluster's, not the client's.
pub struct Writer {
    stop: Arc<AtomicBool>,
    seeds: Arc<Mutex<Vec<std::net::SocketAddr>>>,
    handles: Vec<JoinHandle<Shard>>,
}

/// How the writer logs in: a `redis://` or `rediss://` URL prefix with the user, and the TLS
/// files.
#[derive(Clone)]
struct Login {
    user: Option<(String, String)>,
    tls: Option<redis::TlsCertificates>,
}

impl Login {
    fn connect(&self, addr: &str) -> redis::RedisResult<redis::Connection> {
        let user = match &self.user {
            Some((name, password)) => format!("{name}:{password}@"),
            None => String::new(),
        };
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        let url = format!("{scheme}://{user}{addr}/");
        let client = match &self.tls {
            Some(certs) => redis::Client::build_with_tls(url, certs.clone())?,
            None => redis::Client::open(url)?,
        };
        let conn = client.get_connection_with_timeout(Duration::from_secs(1))?;
        conn.set_read_timeout(Some(Duration::from_secs(2)))?;
        conn.set_write_timeout(Some(Duration::from_secs(2)))?;
        Ok(conn)
    }
}

impl Writer {
    /// Starts writing to every shard of `nodes`, logged in as `access` logs `redis-cli` in (its
    /// user and TLS files).
    pub fn start(access: &RedisNode, nodes: &[RedisNode], tags: Vec<String>) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let seeds = Arc::new(Mutex::new(nodes.iter().map(|n| n.addr).collect::<Vec<_>>()));
        let login = Login {
            user: access.cli_user.clone(),
            tls: access.tls.as_ref().map(|tls| {
                let read = |name: &str| std::fs::read(tls.path(name)).unwrap();
                redis::TlsCertificates {
                    client_tls: Some(redis::ClientTlsConfig {
                        client_cert: read("client.crt"),
                        client_key: read("client.key"),
                    }),
                    root_cert: Some(read("ca.crt")),
                }
            }),
        };
        let handles = tags
            .into_iter()
            .map(|tag| {
                let (stop, seeds, login) = (stop.clone(), seeds.clone(), login.clone());
                std::thread::spawn(move || write_shard(&tag, &stop, &seeds, &login))
            })
            .collect();
        Writer {
            stop,
            seeds,
            handles,
        }
    }

    /// The addresses to try when a master does not answer (a pod that moved is at its new one).
    pub fn seeds(&self, nodes: &[RedisNode]) {
        *self.seeds.lock().unwrap() = nodes.iter().map(|n| n.addr).collect();
    }

    /// Stops writing: what each shard saw.
    pub fn finish(self) -> Vec<Shard> {
        self.stop.store(true, Ordering::Relaxed);
        self.handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect()
    }
}

/// What the writer saw of one shard.
#[derive(Debug, Default)]
pub struct Shard {
    /// The numbers acknowledged, in order.
    pub acked: Vec<u64>,
    /// The longest time between two acknowledged writes.
    pub longest: Duration,
}

/// A thread that connects to every node as it appears (a pod back on its new address) and hands
/// the connections over, as a cluster client's refresh does: the writer then follows a handover
/// to that node on an open connection, and never waits for a connection (over TLS, a handshake)
/// between two writes.
fn connector(
    stop: &Arc<AtomicBool>,
    seeds: &Arc<Mutex<Vec<std::net::SocketAddr>>>,
    login: &Login,
) -> std::sync::mpsc::Receiver<(String, redis::Connection)> {
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop, seeds, login) = (stop.clone(), seeds.clone(), login.clone());
    std::thread::spawn(move || {
        let mut known: Vec<std::net::SocketAddr> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let now_known = seeds.lock().unwrap().clone();
            let new: Vec<std::net::SocketAddr> = now_known
                .iter()
                .filter(|a| !known.contains(a))
                .copied()
                .collect();
            for addr in &new {
                // A node that does not answer yet is tried again on the next round.
                if let Ok(c) = login.connect(&addr.to_string()) {
                    let _ = tx.send((addr.to_string(), c));
                    known.push(*addr);
                }
            }
            known.retain(|a| now_known.contains(a));
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    rx
}

/// One shard's writes, until `stop`: see [`Writer`]. Like a cluster client it keeps a
/// connection to every node it has reached, so following a handover to a replica it already
/// knows costs no new connection (nor, over TLS, a handshake).
fn write_shard(
    tag: &str,
    stop: &Arc<AtomicBool>,
    seeds: &Arc<Mutex<Vec<std::net::SocketAddr>>>,
    login: &Login,
) -> Shard {
    let key = format!("{{{tag}}}:log");
    let mut seen = Shard::default();
    let mut last_ok: Option<Instant> = None;
    let (mut n, mut next_seed) = (0u64, 0usize);
    let mut owner: Option<String> = None;
    let mut open: HashMap<String, redis::Connection> = HashMap::new();
    let connected = connector(stop, seeds, login);
    while !stop.load(Ordering::Relaxed) {
        open.extend(connected.try_iter());
        n += 1;
        while !stop.load(Ordering::Relaxed) {
            let addr = owner.clone().unwrap_or_else(|| {
                let list = seeds.lock().unwrap();
                next_seed += 1;
                list[next_seed % list.len()].to_string()
            });
            let pushed = match open.entry(addr.clone()) {
                Entry::Occupied(mut c) => redis::cmd("RPUSH").arg(&key).arg(n).query(c.get_mut()),
                Entry::Vacant(slot) => login.connect(&addr).and_then(|c| {
                    redis::cmd("RPUSH")
                        .arg(&key)
                        .arg(n)
                        .query::<u64>(slot.insert(c))
                }),
            };
            match pushed {
                Ok(_) => {
                    let now = Instant::now();
                    if let Some(last) = last_ok {
                        seen.longest = seen.longest.max(now - last);
                    }
                    last_ok = Some(now);
                    seen.acked.push(n);
                    owner = Some(addr);
                    break;
                }
                // Not executed: the same number goes to the master named.
                Err(e) if e.redirect_node().is_some() => {
                    owner = e.redirect_node().map(|(to, _)| to.to_string());
                }
                // Maybe executed (a reply lost): a new number, on another node.
                Err(_) => {
                    open.remove(&addr);
                    owner = None;
                    n += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    seen
}

/// Asserts that each shard's list holds every acknowledged number.
pub fn assert_nothing_lost(nodes: &[RedisNode], tags: &[String], written: &[Shard]) {
    for (tag, Shard { acked, .. }) in tags.iter().zip(written) {
        assert!(acked.len() > 10, "too few writes to {tag}: {}", acked.len());
        let stored: std::collections::HashSet<u64> = nodes[0]
            .cli(&["-c", "LRANGE", &format!("{{{tag}}}:log"), "0", "-1"])
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        let lost: Vec<&u64> = acked.iter().filter(|n| !stored.contains(n)).collect();
        assert!(lost.is_empty(), "{tag}: acknowledged but lost: {lost:?}");
    }
}
