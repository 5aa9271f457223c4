//! The monitoring as a running Prometheus sees it: Debian's `prometheus` evaluating the
//! PrometheusRule as `overlays/production` renders it, scraping Debian's redis_exporter beside
//! each of 6 real nodes formed by the binary (one exporter per pod, the sidecar's environment,
//! targets labelled as the PodMonitor labels them and moved as pods move), and kube-state-metrics'
//! series served by the test. One cluster, in this order:
//!
//! 1. healthy: once every target is scraped, no alert at all is pending or firing;
//! 2. the heal CronJob's runs fail (and the bootstrap Job): the job alerts fire from the
//!    kube-state-metrics series, with the failed runs' names, and clear once a run succeeds;
//! 3. every dashboard panel's query (and each variable's `label_values`) returns data;
//! 4. a rolling restart played as the kubelet plays it (tests/common/roll.rs: the exporter stops
//!    with its pod, the `handover` hook, SIGTERM, away, back on a new address with `rejoin`, the
//!    next pod once `ready` passes): the shard alert goes pending as each pod is away, and no
//!    critical alert fires;
//! 5. a master killed and kept down: the critical shard alert fires for its shard (the promoted
//!    replica's pod) within its `for:` plus two scrape intervals of the kill.
//!
//! Time is scaled: Prometheus scrapes every 2 s instead of the PodMonitor's 30 s, and every `for:`
//! is scaled by the same 1/15 (5m: 20 s, 2m: 8 s, 15m: 60 s), so an alert waits the same number of
//! scrapes as in production; a pod away 3 s here is away 45 s there. The rules' expressions are
//! the rendered ones, untouched (the promtool tests check them at full scale).
//!
//! Needs `kubectl`, `prometheus` and `prometheus-redis-exporter` (scripts/install-deps.sh).
//! Addresses 127.31.1.0/24 (tests/common/BLOCKS.md): Prometheus on .1, kube-state-metrics on .2,
//! the pods on .11–.16, back from the roll on .21–.26.

mod common;
mod kustomize;
mod prometheus;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use kustomize::render;
use prometheus::exporter::Exporter;
use prometheus::kube_state::KubeState;
use prometheus::kube_state_metrics::KubeStateMetrics;
use prometheus::{Config, Labels, Prometheus, Target, unix_now};
use serde_json::Value;

/// The test's scrape interval (the PodMonitor's is 30 s: every `for:` is scaled by the ratio).
const SCRAPE: Duration = Duration::from_secs(2);
/// The rule evaluation interval: a fraction of a scrape, so an alert's timing is the scrape's.
const EVALUATION: Duration = Duration::from_millis(500);
/// How long a stopped pod stays away (45 s at production's scale).
const AWAY: Duration = Duration::from_secs(3);
/// The cluster's namespace and StatefulSet, as production names them.
const NAMESPACE: &str = "infra";
/// See [`NAMESPACE`].
const STATEFULSET: &str = "redis-app";
/// The job label the Prometheus Operator gives a PodMonitor's targets: `<namespace>/<name>`.
const JOB: &str = "infra/redis-cluster";
/// The alert a killed master must fire, and a roll must not.
const SHARD_ALERT: &str = "RedisClusterShardWithoutSyncedReplica";

/// Pod `i`'s first address.
fn pod_ip(i: usize) -> String {
    format!("127.31.1.{}", 11 + i)
}

/// Pod `i`'s address once the roll brought it back.
fn rolled_ip(i: usize) -> String {
    format!("127.31.1.{}", 21 + i)
}

/// Pod `i`'s name.
fn pod_name(i: usize) -> String {
    format!("{STATEFULSET}-{i}")
}

/// The rendered objects of `kind`.
fn find<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// The rendered PrometheusRule's spec (what the operator hands Prometheus) with every `for:`
/// multiplied by `factor`, as YAML; and each alert's `for:` as scaled.
fn scaled_rules(docs: &[Value], factor: f64) -> (String, BTreeMap<String, Duration>) {
    let mut spec = find(docs, "PrometheusRule")[0]["spec"].clone();
    let mut fors = BTreeMap::new();
    for group in spec["groups"].as_array_mut().unwrap() {
        for rule in group["rules"].as_array_mut().unwrap() {
            let name = rule["alert"].as_str().unwrap().to_string();
            let rendered = match rule["for"].as_str() {
                Some(text) => humantime::parse_duration(text).unwrap(),
                None => Duration::ZERO,
            };
            let scaled = rendered.mul_f64(factor);
            if !scaled.is_zero() {
                rule["for"] = Value::String(format!("{}ms", scaled.as_millis()));
            }
            fors.insert(name, scaled);
        }
    }
    (serde_yaml_ng::to_string(&spec).unwrap(), fors)
}

/// The PodMonitor's scrape interval, as rendered.
fn podmonitor_interval(docs: &[Value]) -> Duration {
    let endpoint = &find(docs, "PodMonitor")[0]["spec"]["podMetricsEndpoints"][0];
    humantime::parse_duration(endpoint["interval"].as_str().unwrap()).unwrap()
}

/// The sidecar's environment as production renders it, but plaintext and as the default user:
/// this cluster has neither TLS nor ACL users (tests/manifests_monitoring.rs runs those).
fn sidecar_env(docs: &[Value]) -> Vec<(String, String)> {
    let sts = find(docs, "StatefulSet")[0];
    let exporter = sts["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "redis-exporter")
        .expect("production renders the exporter sidecar");
    exporter["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| Some((e["name"].as_str()?, e["value"].as_str()?)))
        .filter(|(name, _)| {
            !name.starts_with("REDIS_EXPORTER_TLS_")
                && !["REDIS_USER", "EXPORTER_PASSWORD_FILE"].contains(name)
        })
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// Pod `i`'s exporter as a target, labelled as the PodMonitor labels it.
fn target(i: usize, exporter: &Exporter) -> Target {
    let labels = [
        ("namespace", NAMESPACE.to_string()),
        ("pod", pod_name(i)),
        ("container", "redis-exporter".to_string()),
        ("endpoint", "metrics".to_string()),
        ("job", JOB.to_string()),
        ("statefulset", STATEFULSET.to_string()),
    ];
    Target {
        addr: exporter.addr,
        labels: labels
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    }
}

/// Everything the test runs, stopped when dropped.
struct Live {
    prometheus: Prometheus,
    kube_state_metrics: KubeStateMetrics,
    state: KubeState,
    nodes: Vec<RedisNode>,
    exporters: Vec<Option<Exporter>>,
    sidecar_env: Vec<(String, String)>,
    /// Each alert's `for:` as loaded.
    fors: BTreeMap<String, Duration>,
}

impl Live {
    /// Tells Prometheus's service discovery which exporters exist now.
    fn publish_targets(&self) {
        let targets: Vec<Target> = self
            .exporters
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|e| target(i, e)))
            .collect();
        self.prometheus.set_targets(&targets);
    }

    fn publish_kube_state(&self) {
        self.kube_state_metrics.serve(&self.state.series());
    }

    /// Every alert pending or firing now: `(alertname, state, labels)`.
    fn active_alerts(&self) -> Vec<(String, String, Labels)> {
        self.prometheus
            .query("ALERTS")
            .into_iter()
            .map(|s| {
                (
                    s.labels["alertname"].clone(),
                    s.labels["alertstate"].clone(),
                    s.labels,
                )
            })
            .collect()
    }

    /// Waits until every exporter that exists and kube-state-metrics are scraped and up.
    fn wait_scraped(&self) {
        let mut wanted: Vec<String> = self
            .exporters
            .iter()
            .flatten()
            .map(|e| e.addr.to_string())
            .collect();
        wanted.push(self.kube_state_metrics.addr.to_string());
        let started = Instant::now();
        loop {
            let targets = self.prometheus.targets();
            if wanted
                .iter()
                .all(|t| targets.get(t).map(String::as_str) == Some("up"))
            {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "targets never all up: {targets:?} (wanted {wanted:?})"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until no alert of `severity` (any, when None) is pending or firing.
    fn wait_quiet(&self, severity: Option<&str>, limit: Duration) {
        let started = Instant::now();
        loop {
            let active: Vec<_> = self
                .active_alerts()
                .into_iter()
                .filter(|(_, _, l)| severity.is_none_or(|s| l["severity"] == s))
                .collect();
            if active.is_empty() {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "alerts still active after {limit:?}: {active:#?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until alert `name` fires for `count` series (exactly); returns their labels.
    fn wait_firing(&self, name: &str, count: usize, limit: Duration) -> Vec<Labels> {
        let started = Instant::now();
        loop {
            let firing = self.prometheus.query(&format!(
                "ALERTS{{alertname=\"{name}\", alertstate=\"firing\"}}"
            ));
            assert!(firing.len() <= count, "{name} fires too often: {firing:#?}");
            if firing.len() == count {
                return firing.into_iter().map(|s| s.labels).collect();
            }
            assert!(
                started.elapsed() < limit,
                "{name} never fired {count} times within {limit:?}; active: {:#?}",
                self.active_alerts()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn prometheus_pages_for_a_killed_master_not_for_a_roll_and_every_panel_shows_data() {
    let docs = render("overlays/production");
    let factor = SCRAPE.as_secs_f64() / podmonitor_interval(&docs).as_secs_f64();
    let (rules, fors) = scaled_rules(&docs, factor);
    let ksm_addr: SocketAddr = "127.31.1.2:8080".parse().unwrap();
    let kube_state_metrics = KubeStateMetrics::start(ksm_addr);
    let prometheus = Prometheus::start(
        "127.31.1.1:9090".parse().unwrap(),
        &Config {
            scrape: SCRAPE,
            evaluation: EVALUATION,
            rules,
            job: JOB.into(),
            kube_state_metrics: ksm_addr,
        },
    );
    // Prometheus runs the rendered rules, every one, with the scaled `for:`.
    let loaded: BTreeMap<String, f64> = prometheus.loaded_alerts().into_iter().collect();
    assert_eq!(loaded.len(), fors.len(), "{loaded:?}");
    for (name, scaled) in &fors {
        assert_eq!(loaded[name], scaled.as_secs_f64(), "{name}");
    }

    let ips: Vec<String> = (0..6).map(pod_ip).collect();
    let nodes = start_pods(&ips, &Options::default());
    let sidecar_env = sidecar_env(&docs);
    let exporters = nodes
        .iter()
        .map(|n| Some(Exporter::start(n.addr, &sidecar_env)))
        .collect();
    let mut live = Live {
        prometheus,
        kube_state_metrics,
        state: KubeState {
            namespace: NAMESPACE.into(),
            statefulset: STATEFULSET.into(),
            pods: ips.iter().cloned().map(Some).collect(),
            failing: false,
            now: unix_now(),
        },
        nodes,
        exporters,
        sidecar_env,
        fors,
    };
    live.publish_kube_state();
    live.publish_targets();
    let formed = run_static(&live.nodes);
    assert_eq!(formed.code, 0, "{formed:?}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(write_keys(&live.nodes, 1000));
    wait_replicated(&live.nodes);

    let phase = |name: &str, started: Instant| eprintln!("{name}: {:.1?}", started.elapsed());
    let started = Instant::now();
    healthy_is_quiet(&live);
    phase("healthy and quiet", started);
    let started = Instant::now();
    job_alerts_fire_from_kube_state_metrics(&mut live);
    phase("the job alerts", started);
    let started = Instant::now();
    every_panel_shows_data(&live);
    phase("the dashboard", started);
    let started = Instant::now();
    a_roll_pages_no_one(&mut live);
    phase("the roll", started);
    let started = Instant::now();
    a_killed_master_pages_for_its_shard(&mut live);
    phase("the kill", started);
}

/// Step 1: A healthy cluster, every target up: nothing pending, nothing firing.
fn healthy_is_quiet(live: &Live) {
    live.wait_scraped();
    // Replicas finish their first sync and the first scrapes land: then nothing at all.
    live.wait_quiet(None, Duration::from_secs(30));
    let up = live.prometheus.query(&format!(
        "sum(redis_up{{namespace=\"{NAMESPACE}\", statefulset=\"{STATEFULSET}\"}})"
    ));
    assert_eq!(up[0].value, 6.0, "{up:?}");
}

/// Step 2: The heal CronJob's last three runs fail, none succeeded for four schedules, and the
/// bootstrap Job failed: the three job alerts fire, each run by name; once a run succeeds (and
/// the bootstrap Job is complete), they clear.
fn job_alerts_fire_from_kube_state_metrics(live: &mut Live) {
    live.state.failing = true;
    live.state.now = unix_now();
    live.publish_kube_state();
    let limit = Duration::from_secs(30);

    // Every failed run since the last success, by name.
    let mut runs: Vec<String> = live
        .wait_firing("RedisClusterHealJobFailed", 3, limit)
        .iter()
        .map(|l| {
            assert_eq!(l["namespace"], NAMESPACE);
            assert_eq!(l["severity"], "warning");
            l["job_name"].clone()
        })
        .collect();
    runs.sort();
    let mut expected = live.state.heal_runs();
    expected.sort();
    assert_eq!(runs, expected);

    let heal = live.wait_firing("RedisClusterHealNotSucceeding", 1, limit);
    assert_eq!(heal[0]["cronjob"], "redis-cluster-heal");
    let bootstrap = live.wait_firing("RedisClusterBootstrapJobFailed", 1, limit);
    assert_eq!(bootstrap[0]["job_name"], "redis-cluster-bootstrap");
    // The job alerts only: the cluster itself is fine.
    for (name, _, _) in live.active_alerts() {
        assert!(
            [
                "RedisClusterHealJobFailed",
                "RedisClusterHealNotSucceeding",
                "RedisClusterBootstrapJobFailed"
            ]
            .contains(&name.as_str()),
            "{name} is active"
        );
    }

    live.state.failing = false;
    live.state.now = unix_now();
    live.publish_kube_state();
    live.wait_quiet(None, limit);
}

/// Step 3: Every panel's every query, with the dashboard's variables set to this cluster, returns
/// at least one series; each variable's `label_values` finds this cluster.
fn every_panel_shows_data(live: &Live) {
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(kustomize::repo().join("components/monitoring/dashboard.json"))
            .unwrap(),
    )
    .unwrap();
    // Grafana's $__rate_interval: four scrape intervals at least.
    let rate_interval = format!("{}s", 4 * SCRAPE.as_secs());
    let fill = |expr: &str| {
        expr.replace("$namespace", NAMESPACE)
            .replace("$statefulset", STATEFULSET)
            .replace("$__rate_interval", &rate_interval)
    };
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        let Some(definition) = variable["definition"].as_str() else {
            continue;
        };
        let inner = definition
            .strip_prefix("label_values(")
            .and_then(|d| d.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {definition}: not label_values(...)"));
        let (matcher, label) = inner.rsplit_once(", ").unwrap();
        let values = live.prometheus.label_values(label, &fill(matcher));
        let wanted = if label == "namespace" {
            NAMESPACE
        } else {
            STATEFULSET
        };
        assert!(
            values.iter().any(|v| v == wanted),
            "variable {}: {values:?}",
            variable["name"]
        );
    }
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = fill(target["expr"].as_str().unwrap());
            let result = live.prometheus.query(&expr);
            assert!(
                !result.is_empty(),
                "panel {:?} shows nothing: {expr}",
                panel["title"]
            );
            queries += 1;
        }
    }
    eprintln!("every one of the dashboard's {queries} queries returned data");
}

/// Step 4: The roll of `kubectl rollout restart`, pod 5 down to pod 0. Each pod's exporter stops
/// with it (the kubelet stops the sidecar as the hook runs: its target is down until the pod is
/// gone, then gone), and a new one starts with the new pod, found at its new address. The shard
/// alert sees every master left alone while a pod is away, and never fires; no critical alert
/// fires.
fn a_roll_pages_no_one(live: &mut Live) {
    let started = unix_now();
    let mut nodes = std::mem::take(&mut live.nodes);
    roll_pods_with_events(live, &mut nodes);
    live.nodes = nodes;
    live.wait_scraped();
    // What was pending as the last pod came back clears (or would fire, and be caught below).
    live.wait_quiet(Some("critical"), Duration::from_secs(60));

    let window = format!("{}s", (unix_now() - started).ceil() as u64 + 1);
    let fired = live.prometheus.raw(&format!(
        "ALERTS{{severity=\"critical\", alertstate=\"firing\"}}[{window}]"
    ));
    assert!(
        fired.is_empty(),
        "critical alerts fired during the roll: {fired:#?}"
    );
    // The rule did see the roll: each master left without its replica while a pod was away.
    let pending = live.prometheus.raw(&format!(
        "ALERTS{{severity=\"critical\", alertstate=\"pending\"}}[{window}]"
    ));
    // Each pod stopped leaves its partner alone: every pod's shard, once.
    let alone: std::collections::BTreeSet<String> = pending
        .iter()
        .filter(|s| s.labels["alertname"] == SHARD_ALERT)
        .map(|s| s.labels["pod"].clone())
        .collect();
    let every: std::collections::BTreeSet<String> = (0..6).map(pod_name).collect();
    assert_eq!(
        alone, every,
        "{SHARD_ALERT} did not see every pod away: {pending:#?}"
    );
    let mut longest: BTreeMap<&str, f64> = BTreeMap::new();
    for series in &pending {
        let entry = longest.entry(&series.labels["alertname"]).or_default();
        *entry = entry.max(longest_run(&series.samples));
    }
    for (name, seconds) in longest {
        eprintln!(
            "during the roll {name} was pending for {seconds:.1} s at most (for: {:?})",
            live.fors[name]
        );
    }
}

/// The longest stretch of consecutive evaluations in `samples` (one sample per evaluation while
/// the alert is pending), in seconds.
fn longest_run(samples: &[(f64, f64)]) -> f64 {
    let gap = 2.0 * EVALUATION.as_secs_f64();
    let mut longest: f64 = 0.0;
    let mut start = samples.first().map_or(0.0, |s| s.0);
    for pair in samples.windows(2) {
        if pair[1].0 - pair[0].0 > gap {
            start = pair[1].0;
        }
        longest = longest.max(pair[1].0 - start);
    }
    longest
}

/// Plays the roll on `nodes`, keeping each pod's exporter, its target and kube-state-metrics'
/// view of the pod in step with the pod.
fn roll_pods_with_events(live: &mut Live, nodes: &mut [RedisNode]) {
    roll_pods(
        nodes,
        &Options::default(),
        AWAY,
        rolled_ip,
        |event, i, nodes| match event {
            PodEvent::Stopping => {
                // The sidecar gets SIGTERM as the hook starts; the pod is still listed.
                live.exporters[i] = None;
            }
            PodEvent::Stopped => {
                // The pod object is gone: no target, no kube_pod_info.
                live.publish_targets();
                live.state.pods[i] = None;
                live.publish_kube_state();
            }
            PodEvent::Started => {
                live.exporters[i] = Some(Exporter::start(nodes[i].addr, &live.sidecar_env));
                live.publish_targets();
                live.state.pods[i] = Some(nodes[i].addr.ip().to_string());
                live.publish_kube_state();
            }
        },
    );
}

/// Step 5: A master killed and kept down (its exporter stays, reporting it down): its replica takes
/// over and stands alone; the shard alert fires for that pod within `for:` plus two scrapes.
fn a_killed_master_pages_for_its_shard(live: &mut Live) {
    let (master, replica) = master_and_replica(&live.nodes);
    let for_shard = live.fors[SHARD_ALERT];
    let killed_at = unix_now();
    live.nodes[master].kill();
    let firing = live.wait_firing(SHARD_ALERT, 1, for_shard + Duration::from_secs(60));
    let labels = &firing[0];
    assert_eq!(labels["pod"], pod_name(replica), "{labels:?}");
    assert_eq!(labels["statefulset"], STATEFULSET);
    assert_eq!(labels["namespace"], NAMESPACE);
    assert_eq!(labels["severity"], "critical");

    // When Prometheus saw it and fired it (its own timestamps), against when the master died.
    let first = |state: &str| {
        live.prometheus
            .raw(&format!(
                "ALERTS{{alertname=\"{SHARD_ALERT}\", alertstate=\"{state}\", pod=\"{}\"}}[2m]",
                pod_name(replica)
            ))
            .iter()
            .flat_map(|series| series.samples.iter().map(|(at, _)| *at))
            .filter(|at| *at >= killed_at)
            .fold(f64::INFINITY, f64::min)
    };
    let (active_at, fired_at) = (first("pending"), first("firing"));
    eprintln!(
        "master {} killed: {SHARD_ALERT} pending after {:.2} s, firing after {:.2} s \
         (for: {for_shard:?}, scrape {SCRAPE:?})",
        pod_name(master),
        active_at - killed_at,
        fired_at - killed_at,
    );
    let bound = (for_shard + 2 * SCRAPE).as_secs_f64();
    assert!(
        fired_at - killed_at <= bound,
        "{SHARD_ALERT} fired {:.2} s after the kill, more than for: + 2 scrapes ({bound} s); \
         since the kill, {}",
        fired_at - killed_at,
        timeline(live, &pod_name(replica), killed_at)
    );
}

/// What Prometheus held for `pod` since `since`, as spans of seconds after it: the shard alert
/// pending and firing, and the series its two conditions read (to tell a gap in a condition from
/// a failed scrape).
fn timeline(live: &Live, pod: &str, since: f64) -> String {
    let spans = |selector: String| -> String {
        let mut out = Vec::new();
        for series in live.prometheus.raw(&format!("{selector}[3m]")) {
            let mut times: Vec<f64> = series
                .samples
                .iter()
                .map(|(at, _)| at - since)
                .filter(|t| *t >= -5.0)
                .collect();
            times.sort_by(f64::total_cmp);
            let mut runs: Vec<(f64, f64)> = Vec::new();
            for t in times {
                match runs.last_mut() {
                    Some((_, end))
                        if t - *end <= 1.5 * EVALUATION.as_secs_f64().max(SCRAPE.as_secs_f64()) =>
                    {
                        *end = t
                    }
                    _ => runs.push((t, t)),
                }
            }
            let runs: Vec<String> = runs
                .iter()
                .map(|(a, b)| format!("{a:.1}..{b:.1}"))
                .collect();
            out.push(format!("{:?}: {}", series.labels, runs.join(" ")));
        }
        format!("{selector} -> [{}]", out.join("; "))
    };
    [
        spans(format!(
            "ALERTS{{alertname=\"{SHARD_ALERT}\", pod=\"{pod}\"}}"
        )),
        spans(format!("up{{pod=\"{pod}\"}}")),
        spans(format!("redis_instance_info{{pod=\"{pod}\"}}")),
        spans(format!("redis_master_link_up{{pod=\"{pod}\"}}")),
        spans(format!("redis_cluster_known_nodes{{pod=\"{pod}\"}}")),
    ]
    .join("\n")
}

/// A master with slots and its replica, by index, as the replica reports it.
fn master_and_replica(nodes: &[RedisNode]) -> (usize, usize) {
    for (r, node) in nodes.iter().enumerate() {
        let info = node.cli(&["info", "replication"]);
        let host = info
            .lines()
            .find_map(|l| l.trim().strip_prefix("master_host:"))
            .map(str::to_string);
        let linked = info.contains("master_link_status:up");
        if let (Some(host), true) = (host, linked)
            && let Some(m) = nodes.iter().position(|n| n.addr.ip().to_string() == host)
        {
            return (m, r);
        }
    }
    panic!("no replica linked to its master");
}
