//! components/monitoring as the overlays render it: the redis_exporter sidecar (pinned, restricted,
//! its own node over loopback, TLS with components/monitoring-tls), the PodMonitor, the
//! PrometheusRule and the dashboard's ConfigMap, in every overlay that uses the component and in
//! no other. One test runs production's rendered sidecar for real: Debian's exporter, through the
//! sidecar's own shell and with its environment, over TLS (the pod's own certificate as the client
//! certificate, verified against the CA) and logged in as production's `exporter` user on a real
//! node that requires both: it scrapes fully, the user gets NOPERM for anything that writes, and a
//! password rotation never fails a login (the port closes only for the moment the sidecar swaps
//! exporters).
//!
//! Needs `kubectl`, `redis-server`, `redis-cli` and `prometheus-redis-exporter`. Loopback block
//! 127.31.2.0/24 (tests/common/BLOCKS.md).

mod common;
mod kustomize;

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Options, RedisNode, redis_cli, tls_for_ips, wait_until, which};
use kustomize::render;
use serde_json::Value;

/// The kustomizations that include components/monitoring, and those that do not.
const WITH: [&str; 2] = ["overlays/production", "overlays/valkey"];
const WITHOUT: [&str; 3] = ["manifests", ".", "overlays/dev"];

fn find<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn statefulset(docs: &[Value]) -> &Value {
    find(docs, "StatefulSet")[0]
}

fn container<'a>(sts: &'a Value, name: &str) -> Option<&'a Value> {
    sts["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
}

fn env<'a>(c: &'a Value, name: &str) -> Option<&'a str> {
    c["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
}

/// The sidecar, the PodMonitor, the rule and the dashboard are in every overlay that uses the
/// component, beside the Redis container (still the first), and in no other.
#[test]
fn every_overlay_with_the_component_renders_the_sidecar_podmonitor_rule_and_dashboard() {
    for dir in WITH {
        let docs = render(dir);
        let sts = statefulset(&docs);
        let containers = sts["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap();
        assert_eq!(
            containers[0]["name"], "redis",
            "{dir}: Redis stays the first container"
        );
        let exporter =
            container(sts, "redis-exporter").unwrap_or_else(|| panic!("{dir}: no sidecar"));
        let image = exporter["image"].as_str().unwrap();
        assert!(
            image.contains("redis_exporter:v1."),
            "{dir}: {image} is not a pinned release"
        );
        assert_eq!(exporter["ports"][0]["name"], "metrics", "{dir}");
        assert_eq!(exporter["ports"][0]["containerPort"], 9121, "{dir}");
        // Its own node, over loopback; no CONFIG.
        let addr = env(exporter, "REDIS_ADDR").unwrap();
        assert!(addr.ends_with("://127.0.0.1:6379"), "{dir}: {addr}");
        assert_eq!(
            env(exporter, "REDIS_EXPORTER_CONFIG_COMMAND"),
            Some("-"),
            "{dir}"
        );
        assert!(
            exporter.get("readinessProbe").is_none(),
            "{dir}: it must not gate the pod"
        );
        // Restricted Pod Security Standard, per container.
        let security = &exporter["securityContext"];
        assert_eq!(security["runAsNonRoot"], true, "{dir}");
        assert_eq!(security["allowPrivilegeEscalation"], false, "{dir}");
        assert_eq!(security["readOnlyRootFilesystem"], true, "{dir}");
        assert_eq!(security["capabilities"]["drop"][0], "ALL", "{dir}");
        assert!(
            exporter["resources"]["limits"]["memory"].is_string(),
            "{dir}"
        );
        let annotations = &sts["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/scrape"], "true", "{dir}");
        assert_eq!(annotations["prometheus.io/port"], "9121", "{dir}");
        assert_eq!(
            annotations["kubectl.kubernetes.io/default-container"], "redis",
            "{dir}"
        );

        // The PodMonitor selects the StatefulSet's pods, scrapes `metrics` and names the cluster.
        let monitors = find(&docs, "PodMonitor");
        assert_eq!(monitors.len(), 1, "{dir}");
        let monitor = monitors[0];
        let namespace = &sts["metadata"]["namespace"];
        assert_eq!(&monitor["metadata"]["namespace"], namespace, "{dir}");
        assert_eq!(
            monitor["spec"]["selector"]["matchLabels"], sts["spec"]["selector"]["matchLabels"],
            "{dir}"
        );
        let endpoint = &monitor["spec"]["podMetricsEndpoints"][0];
        assert_eq!(endpoint["port"], "metrics", "{dir}");
        let relabel = &endpoint["relabelings"][0];
        assert_eq!(
            relabel["sourceLabels"][0],
            "__meta_kubernetes_pod_controller_name"
        );
        assert_eq!(relabel["targetLabel"], "statefulset");

        let rules = find(&docs, "PrometheusRule");
        assert_eq!(rules.len(), 1, "{dir}");
        assert_eq!(&rules[0]["metadata"]["namespace"], namespace, "{dir}");

        let dashboards: Vec<&Value> = find(&docs, "ConfigMap")
            .into_iter()
            .filter(|c| c["metadata"]["labels"]["grafana_dashboard"] == "1")
            .collect();
        assert_eq!(dashboards.len(), 1, "{dir}");
        assert_eq!(&dashboards[0]["metadata"]["namespace"], namespace, "{dir}");
        let json: Value = serde_json::from_str(
            dashboards[0]["data"]["redis-cluster.json"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert!(json["panels"].as_array().unwrap().len() >= 10, "{dir}");
    }
    for dir in WITHOUT {
        let docs = render(dir);
        assert!(
            container(statefulset(&docs), "redis-exporter").is_none(),
            "{dir}"
        );
        assert!(find(&docs, "PodMonitor").is_empty(), "{dir}");
        assert!(find(&docs, "PrometheusRule").is_empty(), "{dir}");
    }
}

/// With components/monitoring-tls (production) the exporter speaks TLS to 127.0.0.1 with the
/// pod's certificate files, which name 127.0.0.1; production's exporter logs in as `exporter`
/// with its password from a file, never an environment variable.
#[test]
fn production_exporter_speaks_tls_and_logs_in_as_exporter_from_a_file() {
    let docs = render("overlays/production");
    let sts = statefulset(&docs);
    let exporter = container(sts, "redis-exporter").unwrap();
    assert_eq!(env(exporter, "REDIS_ADDR"), Some("rediss://127.0.0.1:6379"));
    for (var, file) in [
        ("REDIS_EXPORTER_TLS_CA_CERT_FILE", "ca.crt"),
        ("REDIS_EXPORTER_TLS_CLIENT_CERT_FILE", "tls.crt"),
        ("REDIS_EXPORTER_TLS_CLIENT_KEY_FILE", "tls.key"),
    ] {
        assert_eq!(
            env(exporter, var),
            Some(format!("/etc/redis-tls/{file}").as_str())
        );
    }
    let certificate = find(&docs, "Certificate")
        .into_iter()
        .find(|c| c["metadata"]["name"] == "redis-tls")
        .unwrap();
    assert!(
        certificate["spec"]["ipAddresses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|ip| ip == "127.0.0.1")
    );
    assert_eq!(env(exporter, "REDIS_USER"), Some("exporter"));
    let file = env(exporter, "EXPORTER_PASSWORD_FILE").unwrap();
    assert!(
        exporter["env"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e.get("valueFrom").is_none()),
        "no secret in the exporter's environment"
    );
    let volume = sts["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["secret"]["secretName"] == "redis-users")
        .expect("the Secret redis-users as a volume");
    assert_eq!(volume["secret"]["items"][0]["key"], "exporter");
    assert_eq!(
        volume["secret"]["items"].as_array().unwrap().len(),
        1,
        "its key alone"
    );
    let mount = exporter["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume["name"])
        .unwrap();
    let path = format!(
        "{}/{}",
        mount["mountPath"].as_str().unwrap(),
        volume["secret"]["items"][0]["path"].as_str().unwrap()
    );
    assert_eq!(path, file);
}

/// A peer of an ingress rule as text: `ns <labels> pod <labels>` (`ns *` for any namespace, no
/// `ns` for the policy's own), or `anywhere` for a rule without peers.
fn peer(p: &Value) -> String {
    let labels = |selector: &Value| {
        selector["matchLabels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    };
    assert!(p.get("ipBlock").is_none(), "no address ranges: {p}");
    let pods = format!("pod {}", labels(&p["podSelector"]));
    match p.get("namespaceSelector") {
        None => pods,
        Some(ns) if labels(ns).is_empty() => format!("ns * {pods}"),
        Some(ns) => format!("ns {} {pods}", labels(ns)),
    }
}

/// The (peers, ports) of every ingress rule of a NetworkPolicy, in order.
fn ingress_rules(policy: &Value) -> Vec<(Vec<String>, Vec<String>)> {
    policy["spec"]["ingress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| {
            let peers = match rule["from"].as_array() {
                None => vec!["anywhere".to_string()],
                Some(from) => from.iter().map(peer).collect(),
            };
            let ports = rule["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap()))
                .collect();
            (peers, ports)
        })
        .collect()
}

/// The container ports (init containers too) of the StatefulSet's pods, by name.
fn pod_ports(sts: &Value) -> Vec<(String, u64)> {
    let spec = &sts["spec"]["template"]["spec"];
    ["containers", "initContainers"]
        .iter()
        .flat_map(|list| spec[*list].as_array().cloned().unwrap_or_default())
        .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| {
            Some((
                p["name"].as_str()?.to_string(),
                p["containerPort"].as_u64()?,
            ))
        })
        .collect()
}

/// Production's `redis` policy admits 6379 and 16379 only, so Prometheus needs a rule of its own:
/// with the component, the NetworkPolicy `redis-metrics` lets Prometheus (by its standard label,
/// any namespace) and pods labelled `redis-metrics: "true"` reach exactly the ports the
/// PodMonitor scrapes on these pods (the exporter's 9121; production's `watch` sidecar's 9180 too),
/// and nothing else; no other policy opens those ports; no overlay without the component has it.
#[test]
fn prometheus_reaches_exactly_the_metrics_ports_where_monitoring_is_on() {
    for (dir, expected) in [
        ("overlays/production", vec!["9121/TCP", "9180/TCP"]),
        ("overlays/valkey", vec!["9121/TCP"]),
    ] {
        let docs = render(dir);
        let sts = statefulset(&docs);
        let policies = find(&docs, "NetworkPolicy");
        let metrics = policies
            .iter()
            .find(|p| p["metadata"]["name"] == "redis-metrics")
            .unwrap_or_else(|| panic!("{dir}: no NetworkPolicy redis-metrics"));
        assert_eq!(
            metrics["metadata"]["namespace"], sts["metadata"]["namespace"],
            "{dir}"
        );
        assert_eq!(
            metrics["spec"]["podSelector"]["matchLabels"], sts["spec"]["selector"]["matchLabels"],
            "{dir}: it selects the StatefulSet's pods"
        );
        assert_eq!(
            metrics["spec"]["policyTypes"],
            serde_json::json!(["Ingress"]),
            "{dir}"
        );
        let expected: Vec<String> = expected.into_iter().map(String::from).collect();
        assert_eq!(
            ingress_rules(metrics),
            [(
                vec![
                    "ns * pod app.kubernetes.io/name=prometheus".to_string(),
                    "ns * pod redis-metrics=true".to_string(),
                ],
                expected.clone(),
            )],
            "{dir}"
        );
        // Exactly the ports the PodMonitor scrapes that these pods have.
        let ports = pod_ports(sts);
        let monitor = find(&docs, "PodMonitor")[0];
        let mut scraped: Vec<String> = monitor["spec"]["podMetricsEndpoints"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| {
                let name = e["port"].as_str().unwrap();
                ports
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, number)| format!("{number}/TCP"))
            })
            .collect();
        scraped.sort();
        assert_eq!(scraped, expected, "{dir}: {ports:?}");
        // No other policy of these pods opens a metrics port.
        for other in policies
            .iter()
            .filter(|p| p["metadata"]["name"] != "redis-metrics")
        {
            if other["spec"]["ingress"].is_null() {
                continue;
            }
            for (_, ports) in ingress_rules(other) {
                assert!(
                    ports.iter().all(|p| !expected.contains(p)),
                    "{dir}: {} opens {ports:?}",
                    other["metadata"]["name"]
                );
            }
        }
    }
    for dir in WITHOUT {
        assert!(
            !render(dir)
                .iter()
                .any(|d| d["kind"] == "NetworkPolicy" && d["metadata"]["name"] == "redis-metrics"),
            "{dir}: without the component, no metrics port is opened"
        );
    }
}

/// The rule's expected masters use 1 + R with the Job's R, so changing one without the other
/// fails here.
#[test]
fn the_rules_replicas_per_master_is_the_jobs() {
    let docs = render("overlays/production");
    let job = find(&docs, "Job")[0];
    let r = env(
        &job["spec"]["template"]["spec"]["containers"][0],
        "BOOTSTRAP_REPLICAS_PER_MASTER",
    )
    .unwrap();
    let rule = find(&docs, "PrometheusRule")[0].to_string();
    assert!(
        rule.contains(&format!("* (1 + {r})")),
        "RedisClusterMastersMissing uses another R"
    );
    assert!(
        rule.contains(&format!("< {r} * max by")),
        "RedisClusterReplicasMissing uses another R"
    );
}

/// How long the sidecar's port may stay closed while it swaps one exporter for the next.
const GAP: Duration = Duration::from_secs(3);

/// A process started in its own process group, the group killed when dropped (the sidecar's shell
/// and the exporter it started, as a container's end takes both).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.wait();
    }
}

/// `GET /metrics` from `addr`, or None.
fn scrape(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text)
}

/// The value of an unlabelled metric in a scrape.
fn value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

/// Production's `exporter` user on a real node over TLS (client certificates required), and the
/// rendered sidecar (its shell, its environment, TLS included) running Debian's exporter as that
/// user: a full scrape, NOPERM for what writes, nothing denied in ACL LOG, and a two-step password
/// rotation that the exporter follows.
#[test]
fn production_exporter_user_scrapes_fully_writes_nothing_and_follows_a_rotation() {
    let docs = render("overlays/production");
    let sts = statefulset(&docs);
    // The user's rules, as the Redis container's startup reads them from the ConfigMap redis-acl.
    let acl = docs
        .iter()
        .find(|d| {
            d["kind"] == "ConfigMap"
                && d["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("redis-acl-"))
        })
        .expect("the ConfigMap redis-acl");
    let text = acl["data"]["exporter"]
        .as_str()
        .expect("production defines the exporter user");
    let rules = redis_cluster_bootstrap::pod::users::rules("exporter", text).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("users.acl");
    std::fs::write(
        &acl,
        format!("user default on nopass ~* &* +@all\nuser exporter on >old-pw {rules}\n"),
    )
    .unwrap();
    // The node's certificate names its address, as production's names 127.0.0.1, the address
    // the sidecar dials.
    let ip = "127.31.2.11";
    let tls = tls_for_ips(dir.path(), &[ip.to_string()]);
    let node = RedisNode::start(
        ip,
        &Options {
            extra: vec!["--aclfile".into(), acl.display().to_string()],
            tls: Some(tls.clone()),
            ..Options::default()
        },
    );
    let as_exporter = |password: &str, args: &[&str]| {
        let tls_args = tls.cli_args();
        let tls_args: Vec<&str> = tls_args.iter().map(String::as_str).collect();
        redis_cli(
            node.addr,
            Some(password),
            &[&tls_args, &["--user", "exporter"][..], args].concat(),
        )
    };
    // Nothing that writes.
    for command in [
        &["set", "k", "v"][..],
        &["config", "set", "maxmemory", "1"],
        &["flushall"],
        &["config", "get", "masterauth"],
    ] {
        let reply = as_exporter("old-pw", command);
        assert!(reply.starts_with("NOPERM"), "{command:?}: {reply}");
    }
    node.cli(&["acl", "log", "reset"]);

    // The sidecar as rendered, with the exporter binary and addresses of this machine.
    let exporter = container(sts, "redis-exporter").unwrap();
    let command: Vec<String> = exporter["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            c.as_str().unwrap().replace(
                "/redis_exporter",
                &which("prometheus-redis-exporter").display().to_string(),
            )
        })
        .collect();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "old-pw\n").unwrap();
    let listen = "127.31.2.111:9121";
    let mut run = Command::new(&command[0]);
    run.args(&command[1..])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap());
    // Its environment as rendered: this node's address for 127.0.0.1, and the test's files where
    // the pod mounts the Secret redis-tls (tls.crt, the pod's own certificate, is its client
    // certificate too).
    let mut scheme = String::new();
    for e in exporter["env"].as_array().unwrap() {
        let (name, Some(value)) = (e["name"].as_str().unwrap(), e["value"].as_str()) else {
            continue;
        };
        let value = match value.strip_prefix("/etc/redis-tls/") {
            Some("ca.crt") => tls.path("ca.crt"),
            Some("tls.crt") => tls.path(&format!("{ip}.crt")),
            Some("tls.key") => tls.path(&format!("{ip}.key")),
            Some(other) => panic!("{name}: a file of redis-tls the test does not make: {other}"),
            None => value.replace("127.0.0.1", ip),
        };
        if name == "REDIS_ADDR" {
            scheme = value.split("://").next().unwrap().to_string();
        }
        run.env(name, value);
    }
    assert_eq!(scheme, "rediss", "production's exporter speaks TLS");
    run.env("REDIS_EXPORTER_WEB_LISTEN_ADDRESS", listen)
        .env("EXPORTER_PASSWORD_FILE", &password_file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let _sidecar = Running(run.spawn().expect("sh runs the sidecar's script"));
    let up = || scrape(listen).and_then(|t| value(&t, "redis_up")) == Some(1.0);
    wait_until(
        "the exporter to scrape as `exporter`",
        Duration::from_secs(20),
        up,
    );
    let text = scrape(listen).unwrap();
    for metric in [
        "redis_cluster_enabled",
        "redis_memory_max_bytes",
        "redis_connected_clients",
    ] {
        assert!(value(&text, metric).is_some(), "{metric} missing:\n{text}");
    }
    assert!(text.contains("redis_instance_info{"), "{text}");
    assert_eq!(
        node.cli(&["acl", "log"]),
        "",
        "the exporter was denied something"
    );

    // Rotation: 1. the new password appended (the node accepts both); 2. put first (the
    // sidecar restarts the exporter with it within a check); 3. the old one removed, from the
    // node and the file. Every scrape answered is a full one (a failed login reads redis_up 0);
    // the port is closed only for the moment the sidecar swaps one exporter for the next.
    let started_at = |text: &str| value(text, "process_start_time_seconds");
    let first_exporter = started_at(&scrape(listen).unwrap());
    assert!(first_exporter.is_some(), "the exporter's start time");
    // Polls the sidecar every 250 ms for `limit`, or until its exporter is not the one that
    // started at `until_not` (when given): every scrape answered must be full, and the port may
    // close only while the exporter is swapped (then for GAP at most). Returns the start time of
    // the exporter last seen.
    let watch = |step: &str, limit: Duration, until_not: Option<f64>| {
        let (mut closed, mut last) = (Vec::<Instant>::new(), None);
        let started = Instant::now();
        while started.elapsed() < limit {
            // A failed login reads `redis_up 0`; no `redis_up` at all is a scrape refused or
            // cut short as the old exporter stops: the swap's moment.
            let text = scrape(listen).unwrap_or_default();
            match value(&text, "redis_up") {
                Some(up) => {
                    assert_eq!(up, 1.0, "{step}: a scrape without its node:\n{text}");
                    last = started_at(&text);
                    if until_not.is_some() && last != until_not {
                        break;
                    }
                }
                None => closed.push(Instant::now()),
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let gap = match (closed.first(), closed.last()) {
            (Some(first), Some(last)) => *last - *first,
            _ => Duration::ZERO,
        };
        assert!(
            closed.is_empty() || until_not.is_some(),
            "{step}: the port closed"
        );
        assert!(gap <= GAP, "{step}: the port closed for {gap:?}");
        last
    };
    node.cli(&["acl", "setuser", "exporter", ">new-pw"]);
    std::fs::write(&password_file, "old-pw\nnew-pw\n").unwrap();
    let same = watch("the new password appended", Duration::from_secs(2), None);
    assert_eq!(
        same, first_exporter,
        "no restart while the first line stays"
    );
    std::fs::write(&password_file, "new-pw\nold-pw\n").unwrap();
    // The sidecar checks every 10 s.
    let second_exporter = watch(
        "the new password first",
        Duration::from_secs(30),
        first_exporter,
    );
    assert_ne!(
        second_exporter, first_exporter,
        "the exporter never restarted"
    );
    node.cli(&["acl", "setuser", "exporter", "<old-pw"]);
    std::fs::write(&password_file, "new-pw\n").unwrap();
    let same = watch("the old password removed", Duration::from_secs(3), None);
    assert_eq!(same, second_exporter, "no second restart");
    let log = node.cli(&["acl", "log"]);
    assert_eq!(
        log, "",
        "an authentication failed during the rotation: {log}"
    );
    // The scrapes above logged in with the new password: the old one no longer logs in at all
    // (redis-cli stays the `default` user), the new one does (and is refused ACL WHOAMI).
    assert_eq!(as_exporter("old-pw", &["acl", "whoami"]), "default");
    assert!(as_exporter("new-pw", &["acl", "whoami"]).starts_with("NOPERM"));
}
