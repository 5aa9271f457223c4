//! The PrometheusRule as `overlays/production` renders it, checked by `promtool check rules` and
//! unit-tested by `promtool test rules` on series captured from the real exporter beside real
//! nodes in real states (`scripts/capture-monitoring-fixtures.py`, committed under
//! `tests/monitoring/fixtures/`), each state held for minutes. Every alert is tested firing and
//! not firing. kube-state-metrics' series (its standard names and labels) are typed here: there is
//! no kube-state-metrics without a Kubernetes cluster.
//!
//! The `watch` sidecar's alerts are tested the same way, on series captured from the real
//! `redis-cluster-bootstrap watch` beside real TLS nodes (`scripts/capture-watch-fixtures.py`).
//!
//! Also: every metric a rule or panel names is one the exporter or the watcher here exported, or
//! a kube-state-metrics standard series; every alert has a severity and a runbook under
//! docs/runbooks/; the certificate expiry alerts fire only after cert-manager should have renewed.
//!
//! Needs `kubectl` and `promtool` (scripts/install-deps.sh).

mod kustomize;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use kustomize::{render, repo};
use serde_json::Value;

/// Labels of one series or alert.
type Labels = BTreeMap<String, String>;

/// kube-state-metrics series the rules may use (its documented, standard names).
const KUBE_STATE_METRICS: [&str; 11] = [
    "kube_statefulset_replicas",
    "kube_pod_info",
    "kube_job_failed",
    "kube_job_created",
    "kube_job_owner",
    "kube_cronjob_status_last_successful_time",
    "kube_cronjob_status_last_schedule_time",
    "kube_cronjob_next_schedule_time",
    "kube_cronjob_created",
    "kube_cronjob_spec_suspend",
    // Prometheus's own, per target.
    "up",
];

/// The PrometheusRule of `overlays/production`, as rendered (once per test binary).
fn rendered_rule() -> Value {
    static RULE: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    RULE.get_or_init(|| {
        render("overlays/production")
            .into_iter()
            .find(|d| d["kind"] == "PrometheusRule")
            .expect("production renders a PrometheusRule")
    })
    .clone()
}

/// Every alerting rule of the rendered PrometheusRule.
fn alerts() -> Vec<Value> {
    rendered_rule()["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .filter(|r| r.get("alert").is_some())
        .collect()
}

/// The rule named `name`.
fn alert(name: &str) -> Value {
    alerts()
        .into_iter()
        .find(|r| r["alert"] == name)
        .unwrap_or_else(|| panic!("no alert {name}"))
}

/// Writes the rendered rule's spec (what the operator hands Prometheus) to `dir/rules.yaml`.
fn write_rules(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("rules.yaml");
    let spec = &rendered_rule()["spec"];
    std::fs::write(&path, serde_yaml_ng::to_string(spec).unwrap()).unwrap();
    path
}

fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .output()
        .expect("promtool is installed (scripts/install-deps.sh)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// `name{a="b",...}` into (name, labels).
fn parse_series(key: &str) -> (String, Labels) {
    let (name, rest) = key.split_once('{').unwrap_or((key, "}"));
    let mut labels = Labels::new();
    let mut rest = rest.trim_end_matches('}');
    while let Some((k, after)) = rest.split_once("=\"") {
        let end = after.find('"').unwrap();
        labels.insert(
            k.trim_start_matches(',').to_string(),
            after[..end].to_string(),
        );
        rest = &after[end + 1..];
    }
    (name.to_string(), labels)
}

fn series_key(name: &str, labels: &Labels) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

/// One captured session: its states' series and each pod's address.
struct Fixture {
    states: Vec<(String, BTreeMap<String, f64>)>,
    pods: BTreeMap<String, String>,
    /// State → when it was captured (Unix seconds), where the session recorded it (the watcher's:
    /// its notAfter timestamps are moved onto promtool's clock, which starts at 0).
    captured_at: BTreeMap<String, f64>,
}

impl Fixture {
    fn load(session: &str) -> Fixture {
        let path = repo().join(format!("tests/monitoring/fixtures/{session}.json"));
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let states = doc["states"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let series = s["series"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
                    .collect();
                (s["name"].as_str().unwrap().to_string(), series)
            })
            .collect();
        let pods = doc["pods"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let captured_at = doc["states"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| Some((s["name"].as_str()?.to_string(), s["captured_at"].as_f64()?)))
            .collect();
        Fixture {
            states,
            pods,
            captured_at,
        }
    }

    fn state(&self, name: &str) -> &BTreeMap<String, f64> {
        &self
            .states
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no state {name}"))
            .1
    }

    /// The series of `name` in `state` whose value passes `test`, as label sets.
    fn find(&self, state: &str, name: &str, test: impl Fn(f64) -> bool) -> Vec<Labels> {
        self.state(state)
            .iter()
            .filter(|(k, v)| k.starts_with(&format!("{name}{{")) && test(**v))
            .map(|(k, _)| parse_series(k).1)
            .collect()
    }

    /// The labels every series of `pod` carries (the PodMonitor target's).
    fn target(&self, pod: &str) -> Labels {
        let mut labels = self
            .find(self.states[0].0.as_str(), "up", |_| true)
            .into_iter()
            .find(|l| l["pod"] == pod)
            .unwrap();
        labels.retain(|k, _| k != "__name__");
        labels
    }
}

/// A promtool test: series over minutes, and alerts expected at given minutes.
#[derive(Default)]
struct Scenario {
    /// Series key → one value per minute (`None`: stale, the target gone).
    series: BTreeMap<String, Vec<Option<f64>>>,
    minutes: usize,
    /// (minute, alert, expected label sets).
    checks: Vec<(usize, String, Vec<Labels>)>,
}

impl Scenario {
    /// The fixture's states in order, each held for its minutes. A notAfter timestamp (a series
    /// named `*_not_after_seconds`) keeps the time left it had at capture as its state begins.
    fn from(fixture: &Fixture, plan: &[(&str, usize)]) -> Scenario {
        let mut scenario = Scenario::default();
        for (state, minutes) in plan {
            let start = scenario.minutes;
            let mut values = fixture.state(state).clone();
            if let Some(at) = fixture.captured_at.get(*state) {
                for (key, value) in values.iter_mut() {
                    if parse_series(key).0.ends_with("_not_after_seconds") {
                        *value = *value - at + (start * 60) as f64;
                    }
                }
            }
            let values = &values;
            for key in values.keys() {
                scenario
                    .series
                    .entry(key.clone())
                    .or_insert_with(|| vec![None; start]);
            }
            for (key, column) in scenario.series.iter_mut() {
                column.extend(std::iter::repeat_n(values.get(key).copied(), *minutes));
            }
            scenario.minutes += minutes;
        }
        scenario
    }

    /// A series with the same value at every minute.
    fn constant(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.typed(name, labels, |_| Some(value));
    }

    /// A series whose value at minute m is `value(m)`.
    fn typed(&mut self, name: &str, labels: &[(&str, &str)], value: impl Fn(usize) -> Option<f64>) {
        let mut l: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.insert("job".into(), "kube-state-metrics".into());
        l.insert("namespace".into(), "infra".into());
        let values = (0..self.minutes).map(value).collect();
        self.series.insert(series_key(name, &l), values);
    }

    /// kube-state-metrics' view of the StatefulSet `sts` with `replicas` pods, each pod on a node
    /// of its own unless `nodes` names one.
    fn kube_state(&mut self, sts: &str, replicas: f64, fixture: &Fixture, nodes: &[(&str, &str)]) {
        self.constant(
            "kube_statefulset_replicas",
            &[("statefulset", sts)],
            replicas,
        );
        for (pod, ip) in &fixture.pods {
            let node = nodes
                .iter()
                .find(|(p, _)| p == pod)
                .map(|(_, n)| n.to_string())
                .unwrap_or_else(|| format!("node-{pod}"));
            self.constant(
                "kube_pod_info",
                &[
                    ("pod", pod),
                    ("pod_ip", ip),
                    ("node", &node),
                    ("created_by_kind", "StatefulSet"),
                    ("created_by_name", sts),
                    ("host_ip", "10.0.0.1"),
                ],
                1.0,
            );
        }
    }

    fn expect(&mut self, minute: usize, alert: &str, labels: Vec<Labels>) {
        self.checks.push((minute, alert.to_string(), labels));
    }

    /// promtool's test file for this scenario.
    fn to_test(&self, rules: &Path) -> String {
        let mut input = Vec::new();
        for (key, values) in &self.series {
            let values: Vec<String> = values
                .iter()
                .map(|v| v.map_or("stale".to_string(), |v| format!("{v}")))
                .collect();
            input.push(serde_json::json!({"series": key, "values": values.join(" ")}));
        }
        let checks: Vec<Value> = self
            .checks
            .iter()
            .map(|(minute, name, expected)| {
                let rule = alert(name);
                let exp: Vec<Value> = expected
                    .iter()
                    .map(|labels| {
                        let mut all = labels.clone();
                        for (k, v) in rule["labels"].as_object().unwrap() {
                            all.insert(k.clone(), v.as_str().unwrap().to_string());
                        }
                        let annotations: BTreeMap<String, String> = rule["annotations"]
                            .as_object()
                            .unwrap()
                            .iter()
                            .map(|(k, v)| (k.clone(), fill(v.as_str().unwrap(), &all)))
                            .collect();
                        serde_json::json!({"exp_labels": all, "exp_annotations": annotations})
                    })
                    .collect();
                serde_json::json!({"eval_time": format!("{minute}m"), "alertname": name, "exp_alerts": exp})
            })
            .collect();
        let doc = serde_json::json!({
            "rule_files": [rules.display().to_string()],
            "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": input, "alert_rule_test": checks}],
        });
        serde_yaml_ng::to_string(&doc).unwrap()
    }

    /// Runs promtool on it; panics with promtool's report.
    fn run(&self, what: &str) {
        let dir = tempfile::tempdir().unwrap();
        let rules = write_rules(dir.path());
        let test = dir.path().join("test.yaml");
        std::fs::write(&test, self.to_test(&rules)).unwrap();
        let (ok, text) = promtool(&["test", "rules", test.to_str().unwrap()]);
        assert!(ok, "{what}: promtool test rules:\n{text}");
    }
}

/// An annotation with `{{ $labels.NAME }}` filled in (the only template the rules use).
fn fill(template: &str, labels: &Labels) -> String {
    let mut out = template.to_string();
    while let Some(start) = out.find("{{ $labels.") {
        let end = start + out[start..].find("}}").unwrap();
        let name = out[start + "{{ $labels.".len()..end].trim();
        let value = labels.get(name).cloned().unwrap_or_default();
        out.replace_range(start..end + 2, &value);
    }
    assert!(
        !out.contains("{{"),
        "a template the test cannot fill: {template}"
    );
    out
}

/// Labels as a map.
fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A cluster-level alert's labels.
fn cluster(sts: &str) -> Labels {
    labels(&[("namespace", "infra"), ("statefulset", sts)])
}

/// A per-pod aggregated alert's labels.
fn pod(sts: &str, pod: &str) -> Labels {
    labels(&[("namespace", "infra"), ("statefulset", sts), ("pod", pod)])
}

/// The exporter alerts, none of which fires on a healthy cluster.
const EXPORTER_ALERTS: [&str; 13] = [
    "RedisClusterNodeDown",
    "RedisClusterMemoryNearMax",
    "RedisClusterEvictingKeys",
    "RedisClusterRejectingConnections",
    "RedisClusterStateNotOk",
    "RedisClusterSlotsUnassigned",
    "RedisClusterSlotsFail",
    "RedisClusterSlotsPfail",
    "RedisClusterShardWithoutSyncedReplica",
    "RedisClusterReplicaLinkDown",
    "RedisClusterReplicaSyncTooLong",
    "RedisClusterReplicationLagHigh",
    "RedisClusterReplicasMissing",
];

/// Expects no alert at all at `minute` (a healthy cluster).
fn expect_quiet(scenario: &mut Scenario, minute: usize) {
    for name in alerts().iter().map(|a| a["alert"].as_str().unwrap()) {
        scenario.expect(minute, name, vec![]);
    }
}

#[test]
fn the_rendered_rules_pass_promtool_check_rules() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(dir.path());
    let (ok, text) = promtool(&["check", "rules", rules.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("SUCCESS: {} rules found", alerts().len())),
        "{text}"
    );
}

/// The README's table of alerts is the one an operator reads first: every alert of the rendered
/// rule is in it exactly once, linked to its runbook, in bold exactly when it pages (critical),
/// and it names no alert the rule does not have.
#[test]
fn the_readme_lists_every_alert_with_its_runbook_and_severity() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme
        .find("## Monitoring")
        .expect("README: a Monitoring section");
    let end = start
        + readme[start..]
            .find("\n## ")
            .unwrap_or(readme.len() - start);
    let section = &readme[start..end];
    let listed = section.matches("](docs/runbooks/RedisCluster").count();
    assert_eq!(listed, alerts().len(), "README: one runbook link per alert");
    for rule in alerts() {
        let name = rule["alert"].as_str().unwrap();
        let short = name.trim_start_matches("RedisCluster");
        let link = format!("[{short}](docs/runbooks/{name}.md)");
        assert_eq!(section.matches(&link).count(), 1, "README: {link}");
        let bold = section.contains(&format!("**{link}**"));
        let critical = rule["labels"]["severity"] == "critical";
        assert_eq!(
            bold, critical,
            "README: {name} is bold exactly when critical"
        );
    }
}

#[test]
fn every_alert_has_a_severity_and_a_runbook_that_exists() {
    let names: Vec<String> = alerts()
        .iter()
        .map(|a| a["alert"].as_str().unwrap().to_string())
        .collect();
    assert!(names.len() >= 15, "{names:?}");
    for rule in alerts() {
        let name = rule["alert"].as_str().unwrap();
        let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
        assert!(
            ["critical", "warning"].contains(&severity),
            "{name}: {severity}"
        );
        let url = rule["annotations"]["runbook_url"].as_str().unwrap();
        assert!(
            url.ends_with(&format!("docs/runbooks/{name}.md")),
            "{name}: {url}"
        );
        let page = std::fs::read_to_string(repo().join(format!("docs/runbooks/{name}.md")))
            .unwrap_or_else(|e| panic!("{name}: docs/runbooks/{name}.md: {e}"));
        for section in [
            "## What it means here",
            "## Confirm it",
            "## What the bootstrap already does",
            "## What a person must do",
        ] {
            assert!(
                page.contains(section),
                "{name}: its runbook lacks {section}"
            );
        }
        assert!(
            page.contains(&format!("Severity: **{severity}**")),
            "{name}: the runbook's severity"
        );
    }
    // No runbook for an alert that does not exist.
    for entry in std::fs::read_dir(repo().join("docs/runbooks")).unwrap() {
        let file = entry.unwrap().file_name().into_string().unwrap();
        let name = file.trim_end_matches(".md");
        assert!(
            names.iter().any(|n| n == name),
            "docs/runbooks/{file}: no such alert"
        );
    }
}

/// A rule that names a metric the exporter here does not export (or that kube-state-metrics does
/// not have) would never fire: each `redis_*` name is in what the capture saw exported.
#[test]
fn every_metric_a_rule_or_panel_names_is_exported() {
    let names = |file: &str| -> BTreeSet<String> {
        std::fs::read_to_string(repo().join("tests/monitoring").join(file))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    // What the exporter exported, and what the watcher did (each captured, never typed here).
    let exporter = names("exported_metrics.txt");
    let watcher = names("watch_metrics.txt");
    assert!(exporter.contains("redis_cluster_state"), "{exporter:?}");
    assert!(
        watcher.contains("redis_cluster_bootstrap_users_in_sync"),
        "{watcher:?}"
    );
    let exported: BTreeSet<String> = exporter.union(&watcher).cloned().collect();
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("components/monitoring/dashboard.json")).unwrap(),
    )
    .unwrap();
    // The panels' queries and the variables' (not the descriptions, which name the exporter).
    let queries: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().clone())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .chain(
            dashboard["templating"]["list"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|v| v["definition"].as_str().map(str::to_string)),
        )
        .collect();
    let dashboard = queries.join("\n");
    let mut texts: Vec<(String, String)> = alerts()
        .iter()
        .map(|a| {
            (
                a["alert"].as_str().unwrap().to_string(),
                a["expr"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    texts.push(("the dashboard".into(), dashboard));
    for (what, text) in texts {
        // A metric name is a word outside a selector's braces (label names and matchers) and
        // outside quotes (label values, regexes): `x == 0` is a comparison, not a matcher.
        let mut names = BTreeSet::new();
        let bytes = text.as_bytes();
        let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
        let (mut i, mut braces, mut quoted) = (0, 0, false);
        while i < bytes.len() {
            let c = bytes[i];
            if quoted {
                // Past an escaped character, or out of the string.
                i += if c == b'\\' { 2 } else { 1 };
                quoted = c != b'"';
            } else if c == b'"' {
                quoted = true;
                i += 1;
            } else if c == b'{' || c == b'}' {
                braces += if c == b'{' { 1 } else { -1 };
                i += 1;
            } else if ident(c) && (i == 0 || !ident(bytes[i - 1])) {
                let start = i;
                while i < bytes.len() && ident(bytes[i]) {
                    i += 1;
                }
                let word = &text[start..i];
                let metric =
                    word.starts_with("redis_") || word.starts_with("kube_") || word == "up";
                if braces == 0 && metric {
                    names.insert(word.to_string());
                }
            } else {
                i += 1;
            }
        }
        for name in names {
            assert!(
                exported.contains(&name) || KUBE_STATE_METRICS.contains(&name.as_str()),
                "{what} names {name}, which neither the exporter nor the watcher here exports"
            );
        }
    }
}

/// A master killed and kept down: pfail, then fail (its replica held back), then the failover.
#[test]
fn a_killed_master_fires_pfail_fail_state_and_then_the_shard_alert() {
    let f = Fixture::load("master_killed");
    let killed = f.find("master_pfail", "redis_up", |v| v == 0.0)[0]["pod"].clone();
    let link = f.find("master_pfail", "redis_master_link_up", |v| v == 0.0);
    let replica = link[0]["pod"].clone();
    let mut s = Scenario::from(
        &f,
        &[
            ("healthy", 10),
            ("master_pfail", 6),
            ("master_fail", 4),
            ("after_failover", 20),
        ],
    );
    s.kube_state("redis-app", 6.0, &f, &[]);
    expect_quiet(&mut s, 9);
    s.expect(15, "RedisClusterSlotsPfail", vec![cluster("redis-app")]);
    s.expect(15, "RedisClusterStateNotOk", vec![]);
    s.expect(19, "RedisClusterStateNotOk", vec![cluster("redis-app")]);
    s.expect(19, "RedisClusterSlotsFail", vec![cluster("redis-app")]);
    let mut link_labels = link[0].clone();
    link_labels.retain(|k, _| k != "__name__");
    s.expect(19, "RedisClusterReplicaLinkDown", vec![link_labels]);
    // The shard: the replica alone since the kill, first as a replica without its master, then
    // as a master without a replica: one alert, continuous.
    s.expect(14, "RedisClusterShardWithoutSyncedReplica", vec![]);
    s.expect(
        15,
        "RedisClusterShardWithoutSyncedReplica",
        vec![pod("redis-app", &replica)],
    );
    s.expect(
        39,
        "RedisClusterShardWithoutSyncedReplica",
        vec![pod("redis-app", &replica)],
    );
    s.expect(39, "RedisClusterNodeDown", vec![pod("redis-app", &killed)]);
    s.expect(39, "RedisClusterStateNotOk", vec![]);
    s.expect(39, "RedisClusterSlotsFail", vec![]);
    s.expect(34, "RedisClusterReplicasMissing", vec![]);
    s.expect(
        39,
        "RedisClusterReplicasMissing",
        vec![cluster("redis-app")],
    );
    s.run("a master killed");
}

/// A replica whose link is down while both nodes run: the shard and the link alerts, nothing
/// about the cluster's state.
#[test]
fn a_detached_replica_fires_the_link_and_shard_alerts() {
    let f = Fixture::load("replica_detached");
    let link = f.find("replica_detached", "redis_master_link_up", |v| v == 0.0);
    let replica = link[0]["pod"].clone();
    let master_ip = link[0]["master_host"].clone();
    let master = f
        .pods
        .iter()
        .find(|(_, ip)| **ip == master_ip)
        .unwrap()
        .0
        .clone();
    let mut s = Scenario::from(&f, &[("healthy", 10), ("replica_detached", 20)]);
    s.kube_state("redis-app", 6.0, &f, &[]);
    expect_quiet(&mut s, 9);
    let mut link_labels = link[0].clone();
    link_labels.retain(|k, _| k != "__name__");
    s.expect(29, "RedisClusterReplicaLinkDown", vec![link_labels]);
    let mut both = vec![pod("redis-app", &master), pod("redis-app", &replica)];
    both.sort();
    s.expect(29, "RedisClusterShardWithoutSyncedReplica", both);
    s.expect(29, "RedisClusterStateNotOk", vec![]);
    s.expect(29, "RedisClusterNodeDown", vec![]);
    s.run("a replica detached");
}

/// A replica gone for good: its master's shard, the node, and too few replicas.
#[test]
fn a_replica_gone_fires_the_shard_node_and_replica_count_alerts() {
    let f = Fixture::load("replica_gone");
    let gone = f.find("replica_gone", "redis_up", |v| v == 0.0)[0]["pod"].clone();
    // The master that reports no replica any more.
    let with_replica = f.find("replica_gone", "redis_connected_slave_lag_seconds", |_| {
        true
    });
    let master = f
        .find("replica_gone", "redis_instance_info", |_| true)
        .into_iter()
        .find(|i| i["role"] == "master" && !with_replica.iter().any(|r| r["pod"] == i["pod"]))
        .unwrap()["pod"]
        .clone();
    let mut s = Scenario::from(&f, &[("healthy", 10), ("replica_gone", 20)]);
    s.kube_state("redis-app", 6.0, &f, &[]);
    expect_quiet(&mut s, 9);
    s.expect(
        29,
        "RedisClusterShardWithoutSyncedReplica",
        vec![pod("redis-app", &master)],
    );
    s.expect(29, "RedisClusterNodeDown", vec![pod("redis-app", &gone)]);
    s.expect(
        29,
        "RedisClusterReplicasMissing",
        vec![cluster("redis-app")],
    );
    s.expect(29, "RedisClusterStateNotOk", vec![]);
    s.run("a replica gone");
}

/// A replica in a full sync that lasts: too long a sync, and a shard without a synced replica.
#[test]
fn a_long_full_sync_fires_the_sync_and_shard_alerts() {
    let f = Fixture::load("replica_full_sync");
    let syncing = f.find("replica_full_sync", "redis_master_sync_in_progress", |v| {
        v == 1.0
    });
    let mut sync_labels = syncing[0].clone();
    sync_labels.retain(|k, _| k != "__name__");
    let mut s = Scenario::from(&f, &[("healthy", 10), ("replica_full_sync", 20)]);
    s.kube_state("redis-app", 6.0, &f, &[]);
    expect_quiet(&mut s, 9);
    s.expect(24, "RedisClusterReplicaSyncTooLong", vec![]);
    s.expect(29, "RedisClusterReplicaSyncTooLong", vec![sync_labels]);
    s.expect(29, "RedisClusterStateNotOk", vec![]);
    s.run("a long full sync");
}

/// A replica that stalls while its master takes writes: lag above the backlog, on the master.
#[test]
fn a_lagging_replica_fires_the_lag_alert_measured_on_the_master() {
    let f = Fixture::load("replica_lagging");
    let mut s = Scenario::from(&f, &[("healthy", 10), ("replica_lagging", 10)]);
    s.kube_state("redis-app", 6.0, &f, &[]);
    expect_quiet(&mut s, 9);
    // The master's view of its online replica: offset far behind.
    let lagging: Vec<Labels> = f
        .find(
            "replica_lagging",
            "redis_connected_slave_offset_bytes",
            |_| true,
        )
        .into_iter()
        .filter(|l| {
            let master = f.find("replica_lagging", "redis_master_repl_offset", |_| true);
            let offset = master
                .iter()
                .find(|m| m["pod"] == l["pod"])
                .map(|m| f.state("replica_lagging")[&series_key("redis_master_repl_offset", m)])
                .unwrap();
            offset
                - f.state("replica_lagging")[&series_key("redis_connected_slave_offset_bytes", l)]
                > 1_048_576.0
        })
        .map(|mut l| {
            l.retain(|k, _| k != "__name__");
            l
        })
        .collect();
    assert_eq!(lagging.len(), 1, "{lagging:?}");
    s.expect(14, "RedisClusterReplicationLagHigh", vec![]);
    s.expect(19, "RedisClusterReplicationLagHigh", lagging);
    s.run("a lagging replica");
}

/// A master near maxmemory with an eviction policy: the memory and eviction alerts.
#[test]
fn a_full_master_fires_the_memory_and_eviction_alerts() {
    let f = Fixture::load("memory_full");
    let evicting = f.find("memory_full", "redis_evicted_keys_total", |v| v > 0.0);
    let target = f.target(&evicting[0]["pod"]);
    let mut s = Scenario::from(&f, &[("healthy", 10), ("memory_full", 10)]);
    expect_quiet(&mut s, 9);
    s.expect(12, "RedisClusterEvictingKeys", vec![target.clone()]);
    s.expect(19, "RedisClusterEvictingKeys", vec![]);
    s.expect(19, "RedisClusterMemoryNearMax", vec![target]);
    s.run("a full master");
}

/// A node that reached maxclients: the rejected-connections alert, which then clears.
#[test]
fn rejected_connections_fire_the_connection_alert() {
    let f = Fixture::load("connections_rejected");
    let rejecting = f.find(
        "connections_rejected",
        "redis_rejected_connections_total",
        |v| v > 0.0,
    );
    let target = f.target(&rejecting[0]["pod"]);
    let mut s = Scenario::from(&f, &[("healthy", 10), ("connections_rejected", 10)]);
    expect_quiet(&mut s, 9);
    s.expect(12, "RedisClusterRejectingConnections", vec![target]);
    s.expect(19, "RedisClusterRejectingConnections", vec![]);
    s.run("rejected connections");
}

/// A scratch cluster (another StatefulSet in the same Prometheus) with half its slots, one node
/// never met: its own alerts, under its own labels, beside a healthy cluster that fires nothing.
#[test]
fn a_scratch_cluster_with_unassigned_slots_fires_only_for_itself() {
    let scratch = Fixture::load("scratch_unassigned");
    let healthy = Fixture::load("replica_gone");
    let mut s = Scenario::from(&scratch, &[("slots_unassigned", 20)]);
    let other = Scenario::from(&healthy, &[("healthy", 20)]);
    s.series.extend(other.series);
    s.kube_state("scratch", 3.0, &scratch, &[]);
    s.kube_state("redis-app", 6.0, &healthy, &[]);
    let known: Vec<Labels> = scratch
        .find("slots_unassigned", "redis_cluster_known_nodes", |_| true)
        .into_iter()
        .map(|mut l| {
            l.retain(|k, _| k != "__name__");
            l
        })
        .collect();
    s.expect(4, "RedisClusterSlotsUnassigned", vec![]);
    s.expect(19, "RedisClusterSlotsUnassigned", vec![cluster("scratch")]);
    s.expect(19, "RedisClusterStateNotOk", vec![cluster("scratch")]);
    s.expect(14, "RedisClusterMastersMissing", vec![]);
    s.expect(19, "RedisClusterMastersMissing", vec![cluster("scratch")]);
    s.expect(19, "RedisClusterKnownNodesMismatch", known);
    s.expect(19, "RedisClusterReplicasMissing", vec![cluster("scratch")]);
    // The scratch cluster's two met masters have no replica; the third node, alone, does not count.
    s.expect(
        19,
        "RedisClusterShardWithoutSyncedReplica",
        vec![pod("scratch", "scratch-0"), pod("scratch", "scratch-1")],
    );
    s.expect(19, "RedisClusterNodeDown", vec![]);
    s.run("a scratch cluster");
}

/// kube-state-metrics' series beside a healthy cluster: a shard on one Kubernetes node, the
/// bootstrap Job failing, a heal run failing, and the CronJob not succeeding for three schedules.
#[test]
fn kube_state_metrics_fire_the_placement_and_job_alerts() {
    let f = Fixture::load("master_killed");
    let mut s = Scenario::from(&f, &[("healthy", 40)]);
    // A master and the replica it reports, on one node.
    let replica_of_master = f.find("healthy", "redis_connected_slave_offset_bytes", |_| true);
    let master = replica_of_master[0]["pod"].clone();
    let replica_ip = replica_of_master[0]["slave_ip"].clone();
    let replica = f
        .pods
        .iter()
        .find(|(_, ip)| **ip == replica_ip)
        .unwrap()
        .0
        .clone();
    s.kube_state(
        "redis-app",
        6.0,
        &f,
        &[(&master, "node-a"), (&replica, "node-a")],
    );
    // The one-shot Job fails at minute 10.
    s.typed(
        "kube_job_failed",
        &[
            ("job_name", "redis-cluster-bootstrap"),
            ("condition", "true"),
        ],
        |m| Some(if m >= 10 { 1.0 } else { 0.0 }),
    );
    // The heal CronJob: every 5 minutes, successful until minute 10; the run created at minute
    // 15 fails at minute 16; none succeeds after.
    let last_schedule = |m: usize| 300.0 * (m / 5) as f64;
    s.typed(
        "kube_cronjob_status_last_schedule_time",
        &[("cronjob", "redis-cluster-heal")],
        move |m| Some(last_schedule(m)),
    );
    s.typed(
        "kube_cronjob_next_schedule_time",
        &[("cronjob", "redis-cluster-heal")],
        move |m| Some(last_schedule(m) + 300.0),
    );
    s.typed(
        "kube_cronjob_status_last_successful_time",
        &[("cronjob", "redis-cluster-heal")],
        move |m| Some(last_schedule(m.min(10))),
    );
    s.constant(
        "kube_cronjob_created",
        &[("cronjob", "redis-cluster-heal")],
        0.0,
    );
    s.constant(
        "kube_cronjob_spec_suspend",
        &[("cronjob", "redis-cluster-heal")],
        0.0,
    );
    let heal = [("job_name", "redis-cluster-heal-900")];
    s.typed("kube_job_created", &heal, |m| (m >= 15).then_some(900.0));
    s.typed("kube_job_failed", &[heal[0], ("condition", "true")], |m| {
        (m >= 15).then_some(if m >= 16 { 1.0 } else { 0.0 })
    });
    s.typed(
        "kube_job_owner",
        &[
            heal[0],
            ("owner_kind", "CronJob"),
            ("owner_name", "redis-cluster-heal"),
            ("owner_is_controller", "true"),
        ],
        |m| (m >= 15).then_some(1.0),
    );

    for name in [
        "RedisClusterBootstrapJobFailed",
        "RedisClusterHealJobFailed",
        "RedisClusterHealNotSucceeding",
    ] {
        s.expect(9, name, vec![]);
    }
    s.expect(14, "RedisClusterShardOnOneNode", vec![]);
    s.expect(
        16,
        "RedisClusterShardOnOneNode",
        vec![labels(&[
            ("namespace", "infra"),
            ("statefulset", "redis-app"),
            ("pod", &master),
            ("node", "node-a"),
            ("pod_ip", &replica_ip),
        ])],
    );
    s.expect(
        12,
        "RedisClusterBootstrapJobFailed",
        vec![labels(&[
            ("namespace", "infra"),
            ("job", "kube-state-metrics"),
            ("job_name", "redis-cluster-bootstrap"),
            ("condition", "true"),
        ])],
    );
    s.expect(
        17,
        "RedisClusterHealJobFailed",
        vec![labels(&[
            ("namespace", "infra"),
            ("job_name", "redis-cluster-heal-900"),
        ])],
    );
    s.expect(20, "RedisClusterHealNotSucceeding", vec![]);
    s.expect(
        26,
        "RedisClusterHealNotSucceeding",
        vec![labels(&[
            ("namespace", "infra"),
            ("cronjob", "redis-cluster-heal"),
        ])],
    );
    // Nothing else: the cluster itself is healthy.
    for name in EXPORTER_ALERTS {
        s.expect(39, name, vec![]);
    }
    s.run("kube-state-metrics");
}

/// Labels of the found series, only `keep`'s, sorted (as promtool compares alert lists).
fn only(found: Vec<Labels>, keep: &[&str]) -> Vec<Labels> {
    let mut out: Vec<Labels> = found
        .into_iter()
        .map(|mut l| {
            l.retain(|k, _| keep.contains(&k.as_str()));
            l
        })
        .collect();
    out.sort();
    out
}

/// A renewal every node refused (a key of another certificate): each node keeps serving the old
/// one, and the alert fires for each until the Secret is fixed and the renewal taken.
#[test]
fn a_refused_renewal_fires_on_each_node_until_a_good_one_is_taken() {
    let f = Fixture::load("watch_renewal");
    let refused = only(
        f.find(
            "renewal_refused",
            "redis_cluster_bootstrap_tls_serving_matches_files",
            |v| v == 0.0,
        ),
        &["namespace", "statefulset", "pod"],
    );
    assert_eq!(refused.len(), 3, "every node refused: {refused:?}");
    let failures = f.find(
        "renewal_refused",
        "redis_cluster_bootstrap_tls_reload_failures_total",
        |v| v == 1.0,
    );
    assert_eq!(failures.len(), 3, "each counted its refusal: {failures:?}");
    let mut s = Scenario::from(
        &f,
        &[
            ("healthy", 10),
            ("renewal_refused", 20),
            ("renewal_fixed", 15),
        ],
    );
    expect_quiet(&mut s, 9);
    s.expect(19, "RedisClusterCertificateRenewalRefused", vec![]);
    s.expect(29, "RedisClusterCertificateRenewalRefused", refused);
    for name in [
        "RedisClusterCertificateNotRenewed",
        "RedisClusterCertificateExpiring",
        "RedisClusterUsersOutOfSync",
        "RedisClusterMasterauthOutOfSync",
    ] {
        s.expect(29, name, vec![]);
    }
    expect_quiet(&mut s, 44);
    s.run("a refused renewal");
}

/// A watch sidecar that stops answering while its pod runs (killed on pod 1): after 10 minutes
/// the alert fires for that pod alone, not for a scrape or two missed, and the certificate and
/// password alerts, blind there, fire for nothing.
#[test]
fn a_watcher_that_stops_answering_fires_for_its_pod_after_10_minutes() {
    let f = Fixture::load("watch_renewal");
    let down = only(
        f.find("watcher_down", "up", |v| v == 0.0),
        &["namespace", "statefulset", "pod"],
    );
    assert_eq!(down.len(), 1, "one watcher killed: {down:?}");
    assert_eq!(down[0]["pod"], "redis-app-1");
    let mut s = Scenario::from(&f, &[("healthy", 10), ("watcher_down", 20)]);
    expect_quiet(&mut s, 9);
    s.expect(15, "RedisClusterWatcherDown", vec![]);
    s.expect(25, "RedisClusterWatcherDown", down);
    for name in [
        "RedisClusterCertificateRenewalRefused",
        "RedisClusterCertificateNotRenewed",
        "RedisClusterCertificateExpiring",
        "RedisClusterUsersOutOfSync",
        "RedisClusterMasterauthOutOfSync",
    ] {
        s.expect(25, name, vec![]);
    }
    s.run("a watcher down");
}

/// The served certificate with 25, 20 and 6 days left: nothing at 25 (cert-manager renews at
/// 30, so that is a renewal due, not missed), the warning at 20, the page at 6.
#[test]
fn a_certificate_near_expiry_warns_at_21_days_and_pages_at_7() {
    let f = Fixture::load("watch_expiry");
    let mut s = Scenario::from(
        &f,
        &[
            ("healthy", 10),
            ("expires_in_25_days", 30),
            ("expires_in_20_days", 30),
            ("expires_in_6_days", 30),
        ],
    );
    expect_quiet(&mut s, 9);
    expect_quiet(&mut s, 39);
    s.expect(54, "RedisClusterCertificateNotRenewed", vec![]);
    s.expect(
        69,
        "RedisClusterCertificateNotRenewed",
        vec![cluster("redis-app")],
    );
    s.expect(69, "RedisClusterCertificateExpiring", vec![]);
    s.expect(84, "RedisClusterCertificateExpiring", vec![]);
    s.expect(
        99,
        "RedisClusterCertificateExpiring",
        vec![cluster("redis-app")],
    );
    s.expect(
        99,
        "RedisClusterCertificateNotRenewed",
        vec![cluster("redis-app")],
    );
    // Each renewal was taken: the node serves its files.
    s.expect(99, "RedisClusterCertificateRenewalRefused", vec![]);
    s.run("a certificate near expiry");
}

/// A rotation of `replication` that one node refuses for masterauth and another for the user:
/// one alert each, on that node only.
#[test]
fn a_rotation_a_node_refuses_fires_the_users_and_masterauth_alerts() {
    let f = Fixture::load("watch_users");
    let users = only(
        f.find(
            "rotation_refused",
            "redis_cluster_bootstrap_users_in_sync",
            |v| v == 0.0,
        ),
        &["namespace", "statefulset", "pod", "user"],
    );
    let masterauth = only(
        f.find(
            "rotation_refused",
            "redis_cluster_bootstrap_masterauth_in_sync",
            |v| v == 0.0,
        ),
        &["namespace", "statefulset", "pod"],
    );
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0]["user"], "replication");
    assert_eq!(masterauth.len(), 1, "{masterauth:?}");
    assert_ne!(users[0]["pod"], masterauth[0]["pod"]);
    let mut s = Scenario::from(&f, &[("healthy", 10), ("rotation_refused", 20)]);
    expect_quiet(&mut s, 9);
    s.expect(19, "RedisClusterUsersOutOfSync", vec![]);
    s.expect(19, "RedisClusterMasterauthOutOfSync", vec![]);
    s.expect(29, "RedisClusterUsersOutOfSync", users);
    s.expect(29, "RedisClusterMasterauthOutOfSync", masterauth);
    s.expect(29, "RedisClusterCertificateRenewalRefused", vec![]);
    s.run("a refused rotation");
}

/// The expiry alerts' days against components/tls's Certificate as production renders it: the
/// warning only once cert-manager has had a week past renewBefore to renew (a served certificate
/// younger than that is a renewal on its way), the page later still.
#[test]
fn the_expiry_alerts_fire_only_after_cert_manager_should_have_renewed() {
    let days = |name: &str| -> f64 {
        let expr = alert(name)["expr"].as_str().unwrap().to_string();
        let (_, after) = expr.split_once("< ").unwrap();
        let (n, unit) = after.trim().split_once(" * ").unwrap();
        assert_eq!(unit, "86400", "{name}: {expr}");
        n.parse().unwrap()
    };
    let hours = |v: &Value| -> f64 {
        v.as_str()
            .unwrap()
            .strip_suffix('h')
            .unwrap()
            .parse()
            .unwrap()
    };
    let certificate = render("overlays/production")
        .into_iter()
        .find(|d| d["kind"] == "Certificate" && d["metadata"]["name"] == "redis-tls")
        .expect("production renders the Certificate redis-tls");
    let renew_before = hours(&certificate["spec"]["renewBefore"]) / 24.0;
    let duration = hours(&certificate["spec"]["duration"]) / 24.0;
    let warning = days("RedisClusterCertificateNotRenewed");
    let critical = days("RedisClusterCertificateExpiring");
    assert!(duration > renew_before, "{duration} {renew_before}");
    assert!(
        warning + 7.0 <= renew_before,
        "the warning at {warning} days, cert-manager renews at {renew_before}"
    );
    assert!(
        critical < warning && critical >= 7.0,
        "{critical} {warning}"
    );
}
