//! Debian's `prometheus` for the live monitoring test, on an address of its own: the test writes
//! its configuration (the scrape and evaluation intervals, the rule file, the exporters as targets
//! in a file that service discovery re-reads, as pods come and go, and a kube-state-metrics
//! target) and asks it questions over its HTTP API, the way Grafana and the operator do.
//!
//! Beside it: [`exporter`], Debian's redis_exporter next to one node as the sidecar runs it, and
//! [`kube_state_metrics`], kube-state-metrics' series served over HTTP, telling [`kube_state`]'s
//! story of the namespace.

#![allow(dead_code)]

pub mod exporter;
pub mod kube_state;
pub mod kube_state_metrics;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// Labels of one series.
pub type Labels = BTreeMap<String, String>;

/// One series of an instant query: its labels and value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

/// One series of a range selector: its labels and every raw sample `(unix seconds, value)`.
#[derive(Debug, Clone)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<(f64, f64)>,
}

/// An exporter target as the PodMonitor makes it: its address and its labels.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub labels: Labels,
}

/// What the test's Prometheus runs with.
pub struct Config {
    /// How often every target is scraped.
    pub scrape: Duration,
    /// How often the rules are evaluated.
    pub evaluation: Duration,
    /// The rule file's YAML (`groups:` ...).
    pub rules: String,
    /// The job name of the exporter targets (the PodMonitor's `<namespace>/<name>`).
    pub job: String,
    /// Where kube-state-metrics is scraped (its own labels kept, as kube-prometheus-stack does).
    pub kube_state_metrics: SocketAddr,
}

/// A running Prometheus; stopped (and its data removed) when dropped.
pub struct Prometheus {
    /// Where its API listens.
    pub addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
    targets: PathBuf,
    runtime: tokio::runtime::Runtime,
}

impl Prometheus {
    /// Starts `prometheus` at `addr` with `config` and no exporter target yet; returns once it
    /// is ready.
    pub fn start(addr: SocketAddr, config: &Config) -> Prometheus {
        let dir = tempfile::Builder::new()
            .prefix("prometheus-")
            .tempdir()
            .unwrap();
        let rules = dir.path().join("rules.yaml");
        std::fs::write(&rules, &config.rules).unwrap();
        let targets = dir.path().join("targets.json");
        std::fs::write(&targets, "[]").unwrap();
        let millis = |d: Duration| format!("{}ms", d.as_millis());
        let text = serde_json::json!({
            "global": {
                "scrape_interval": millis(config.scrape),
                "scrape_timeout": millis(config.scrape),
                "evaluation_interval": millis(config.evaluation),
            },
            "rule_files": [rules],
            "scrape_configs": [
                {
                    "job_name": config.job,
                    "file_sd_configs": [{"files": [targets], "refresh_interval": "1s"}],
                },
                {
                    // Its own `namespace` labels kept, as kube-prometheus-stack scrapes it.
                    "job_name": "kube-state-metrics",
                    "honor_labels": true,
                    "static_configs": [{"targets": [config.kube_state_metrics.to_string()]}],
                },
            ],
        });
        let file = dir.path().join("prometheus.yml");
        std::fs::write(&file, serde_yaml_ng::to_string(&text).unwrap()).unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(crate::common::which("prometheus"))
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let prometheus = Prometheus {
            addr,
            child,
            dir,
            targets,
            runtime,
        };
        let started = Instant::now();
        while prometheus.get("/-/ready").map(|(code, _)| code) != Some(200) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "prometheus never became ready:\n{}",
                prometheus.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        prometheus
    }

    /// Its log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Replaces the exporter targets (written whole, then renamed, as service discovery sees a
    /// pod list change).
    pub fn set_targets(&self, targets: &[Target]) {
        let groups: Vec<Value> = targets
            .iter()
            .map(|t| serde_json::json!({"targets": [t.addr.to_string()], "labels": t.labels}))
            .collect();
        let next = self.targets.with_extension("json.next");
        std::fs::write(&next, serde_json::to_string(&groups).unwrap()).unwrap();
        std::fs::rename(&next, &self.targets).unwrap();
    }

    /// `GET path` on its API: the status and the body, or None when it cannot be reached.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let addr = self.addr;
        let uri = path.to_string();
        self.runtime.block_on(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .ok()?;
            tokio::spawn(connection);
            let request = hyper::Request::get(uri)
                .header(hyper::header::HOST, addr.to_string())
                .body(Empty::<Bytes>::new())
                .ok()?;
            let response =
                tokio::time::timeout(Duration::from_secs(30), sender.send_request(request))
                    .await
                    .ok()?
                    .ok()?;
            let code = response.status().as_u16();
            let body = response.into_body().collect().await.ok()?.to_bytes();
            Some((code, String::from_utf8_lossy(&body).into_owned()))
        })
    }

    /// `GET /api/v1/<endpoint>?<params>`: the answer's `data`; panics on an error answer.
    fn api(&self, endpoint: &str, params: &[(&str, &str)]) -> Value {
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let path = format!("/api/v1/{endpoint}?{query}");
        let (code, body) = self
            .get(&path)
            .unwrap_or_else(|| panic!("prometheus at {} does not answer", self.addr));
        let answer: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        assert!(
            code == 200 && answer["status"] == "success",
            "{path}: {code} {body}"
        );
        answer["data"].clone()
    }

    /// An instant query now: every series of the resulting vector (a scalar as one series
    /// without labels).
    pub fn query(&self, expr: &str) -> Vec<Sample> {
        let data = self.api("query", &[("query", expr)]);
        match data["resultType"].as_str() {
            Some("vector") => data["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| Sample {
                    labels: labels(&r["metric"]),
                    value: number(&r["value"][1]),
                })
                .collect(),
            Some("scalar") => vec![Sample {
                labels: Labels::new(),
                value: number(&data["result"][1]),
            }],
            other => panic!("{expr}: a {other:?}, not a vector"),
        }
    }

    /// A range selector evaluated now (`metric{...}[1m]`): every raw sample, with its own
    /// timestamp.
    pub fn raw(&self, selector: &str) -> Vec<Series> {
        let data = self.api("query", &[("query", selector)]);
        assert_eq!(data["resultType"], "matrix", "{selector}");
        data["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| Series {
                labels: labels(&r["metric"]),
                samples: r["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| (v[0].as_f64().unwrap(), number(&v[1])))
                    .collect(),
            })
            .collect()
    }

    /// The values of label `name` on the series `matcher` selects (Grafana's `label_values`).
    pub fn label_values(&self, name: &str, matcher: &str) -> Vec<String> {
        self.api(&format!("label/{name}/values"), &[("match[]", matcher)])
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    /// The health of every active target (`up`, `down`, `unknown`), by address.
    pub fn targets(&self) -> BTreeMap<String, String> {
        self.api("targets", &[("state", "active")])["activeTargets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["labels"]["instance"].as_str().unwrap().to_string(),
                    t["health"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// The rule groups as loaded: `(alert, for in seconds)` of every alerting rule.
    pub fn loaded_alerts(&self) -> Vec<(String, f64)> {
        self.api("rules", &[("type", "alert")])["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().clone())
            .map(|r| {
                (
                    r["name"].as_str().unwrap().to_string(),
                    r["duration"].as_f64().unwrap(),
                )
            })
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn labels(metric: &Value) -> Labels {
    metric
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

/// Prometheus writes sample values as strings ("1", "NaN", "+Inf").
fn number(value: &Value) -> f64 {
    value.as_str().unwrap().parse().unwrap()
}

/// Now, in Unix seconds (the clock Prometheus stamps samples with).
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}
