//! `overlays/valkey`: the base's cluster on Valkey instead of Redis. Checks that the overlay changes
//! exactly the server (image, command, config file and data path, probes) and nothing else, and
//! runs the rendered config and probe against a real `valkey-server`.
//!
//! The overlay also goes through every check of tests/manifests.rs (it is in `ALL` there) and the
//! strict schema validation of tests/manifest_schemas.rs. Needs `kubectl`, `valkey-server` and
//! `valkey-cli` (scripts/install-deps.sh). Loopback block 43 (see `common/BLOCKS.md`).

mod kustomize;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Container};
use kustomize::render;
use serde_json::Value;

const VALKEY: &str = "overlays/valkey";

/// The Valkey overlay without what components/monitoring adds (its objects, the exporter sidecar,
/// the pod's scrape annotations; tests/manifests_monitoring.rs checks those): what this file
/// compares with the base.
fn render_valkey() -> Vec<Value> {
    render(VALKEY)
        .into_iter()
        .filter(|d| d["metadata"]["labels"]["app.kubernetes.io/component"] != "monitoring")
        .map(|mut d| {
            if d["kind"] == "StatefulSet" {
                let template = &mut d["spec"]["template"];
                let containers = template["spec"]["containers"].as_array_mut().unwrap();
                containers.retain(|c| c["name"] != "redis-exporter");
                let metadata = template["metadata"].as_object_mut().unwrap();
                metadata.remove("annotations");
            }
            d
        })
        .collect()
}

fn one<T: serde::de::DeserializeOwned>(docs: &[Value], kind: &str) -> T {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind}");
    serde_json::from_value(found[0].clone()).unwrap()
}

fn server_container(sts: &StatefulSet) -> Container {
    let pod = sts.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    pod.containers
        .iter()
        .find(|c| c.name == "redis")
        .unwrap()
        .clone()
}

fn strings(list: &Option<Vec<String>>) -> Vec<&str> {
    list.iter().flatten().map(String::as_str).collect()
}

/// The shell command of an exec probe (`sh -c COMMAND`).
fn probe_command(probe: &Option<k8s_openapi::api::core::v1::Probe>) -> String {
    let command = strings(&probe.as_ref().unwrap().exec.as_ref().unwrap().command);
    assert_eq!(&command[..2], ["sh", "-c"]);
    command[2].to_string()
}

/// The config file of the rendered ConfigMap, and its key.
fn config(docs: &[Value]) -> (String, String) {
    let config_map: ConfigMap = one(docs, "ConfigMap");
    let data = config_map.data.unwrap();
    assert_eq!(data.len(), 1, "one config file: {:?}", data.keys());
    data.into_iter().next().unwrap()
}

fn directives(conf: &str) -> Vec<&str> {
    conf.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// Image, command, config path, data path and probes are Valkey's; the config holds the guide's
/// settings with the data under the data volume's mount.
#[test]
fn the_valkey_overlay_runs_valkey_server_with_its_own_config_and_data_paths() {
    let docs = render_valkey();
    let sts: StatefulSet = one(&docs, "StatefulSet");
    let server = server_container(&sts);

    // A full version tag, never a floating one.
    let image = server.image.as_deref().unwrap();
    let version = image.strip_prefix("valkey/valkey:8.0.").expect(image);
    assert!(version.parse::<u32>().is_ok(), "{image}");

    // valkey-server, exec'd by the shell that starts `rejoin` beside it.
    let command = strings(&server.command);
    assert_eq!(command[..2], ["sh", "-c"]);
    assert!(
        command[2].contains("exec valkey-server \"$@\""),
        "{command:?}"
    );
    assert_eq!(command[3..], ["valkey-server"]);
    assert_eq!(
        strings(&server.args),
        [
            "/etc/valkey/valkey.conf",
            "--protected-mode",
            "no",
            "--cluster-announce-ip",
            "$(POD_IP)",
            "--cluster-announce-hostname",
            "$(POD_NAME)"
        ]
    );
    let mounts: Vec<(&str, &str)> = server
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.name.as_str(), m.mount_path.as_str()))
        .collect();
    assert_eq!(
        mounts,
        [
            ("redis-conf", "/etc/valkey"),
            ("redis-data-storage", "/data"),
            ("bootstrap-bin", "/opt/bootstrap")
        ]
    );
    let pod = sts.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let items = pod.volumes.as_ref().unwrap()[0]
        .config_map
        .as_ref()
        .unwrap()
        .items
        .clone()
        .unwrap();
    assert_eq!(
        (items[0].key.as_str(), items[0].path.as_str()),
        ("valkey.conf", "valkey.conf")
    );

    let (key, conf) = config(&docs);
    assert_eq!(key, "valkey.conf");
    assert_eq!(
        directives(&conf),
        [
            "appendonly yes",
            "cluster-enabled yes",
            "cluster-config-file /data/nodes.conf",
            "cluster-node-timeout 5000",
            "dir /data",
            "port 6379",
        ]
    );

    // Liveness with valkey-cli; readiness is the bootstrap's `ready`, which speaks to either.
    let command = probe_command(&server.liveness_probe);
    assert!(
        command.contains("valkey-cli") && !command.contains("redis-cli"),
        "{command}"
    );
    let readiness = strings(
        &server
            .readiness_probe
            .as_ref()
            .unwrap()
            .exec
            .as_ref()
            .unwrap()
            .command,
    );
    assert_eq!(
        readiness,
        ["/opt/bootstrap/redis-cluster-bootstrap", "ready"]
    );
}

/// Apart from the server, the Valkey overlay deploys exactly the base: same objects, same Job,
/// same StatefulSet shape (replicas, storage, security, resources).
#[test]
fn the_valkey_overlay_changes_the_server_and_nothing_else() {
    let normalize = |docs: Vec<Value>| -> Vec<Value> {
        docs.into_iter()
            .map(|mut doc| {
                match doc["kind"].as_str().unwrap() {
                    "ConfigMap" => {
                        doc["metadata"]["name"] = Value::Null;
                        doc["data"] = Value::Null;
                    }
                    "StatefulSet" => {
                        let pod = &mut doc["spec"]["template"]["spec"];
                        pod["volumes"][0]["configMap"] = Value::Null;
                        pod["initContainers"][0]["image"] = Value::Null;
                        let container = &mut pod["containers"][0];
                        for field in [
                            "image",
                            "command",
                            "args",
                            "readinessProbe",
                            "livenessProbe",
                            "volumeMounts",
                        ] {
                            container[field] = Value::Null;
                        }
                    }
                    "Job" => {
                        let container = &mut doc["spec"]["template"]["spec"]["containers"][0];
                        container["image"] = Value::Null;
                    }
                    _ => {}
                }
                doc
            })
            .collect()
    };
    assert_eq!(normalize(render_valkey()), normalize(render("manifests")));
}

/// The rendered valkey.conf, command line and readiness probe, run against a real valkey-server:
/// it starts in cluster mode, keeps nodes.conf and the AOF in the data directory, and the probe
/// passes.
#[test]
fn the_rendered_config_and_probe_work_on_a_real_valkey_server() {
    let docs = render_valkey();
    let sts: StatefulSet = one(&docs, "StatefulSet");
    let server = server_container(&sts);
    let (_, conf) = config(&docs);
    let ip = "127.0.43.11";

    // The pod's paths, moved into a temporary directory: /etc/valkey and /data.
    let root = tempfile::tempdir().unwrap();
    let etc = root.path().join("etc-valkey");
    let data = root.path().join("data");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    let conf = conf.replace("/data", data.to_str().unwrap());
    std::fs::write(etc.join("valkey.conf"), conf).unwrap();

    let mut args: Vec<String> = strings(&server.args)
        .iter()
        // Kubernetes expands $(POD_IP) and $(POD_NAME) from the downward API.
        .map(|a| {
            a.replace("/etc/valkey", etc.to_str().unwrap())
                .replace("$(POD_IP)", ip)
                .replace("$(POD_NAME)", "redis-app-0")
        })
        .collect();
    args.extend([
        "--bind".into(),
        ip.into(),
        "--logfile".into(),
        "valkey.log".into(),
    ]);
    // The container's command as written: the shell starts the bootstrap's `rejoin` (here the
    // binary under test, pointed at this node: a fresh node has nothing to rejoin) and execs
    // valkey-server with the arguments.
    let binary = env!("CARGO_BIN_EXE_redis-cluster-bootstrap");
    let command: Vec<String> = strings(&server.command)
        .iter()
        .map(|a| a.replace("/opt/bootstrap/redis-cluster-bootstrap", binary))
        .collect();
    let node = format!("{ip}:6379");
    let mut child = Command::new(&command[0])
        .args(&command[1..])
        .args(&args)
        .env("BOOTSTRAP_NODES", &node)
        .current_dir(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("start {command:?} (scripts/install-deps.sh installs valkey): {e}")
        });

    // The readiness probe (the bootstrap's `ready`) and the liveness probe, pointed at this
    // node's address instead of the pod's 127.0.0.1.
    let readiness = strings(
        &server
            .readiness_probe
            .as_ref()
            .unwrap()
            .exec
            .as_ref()
            .unwrap()
            .command,
    )
    .iter()
    .map(|a| a.replace("/opt/bootstrap/redis-cluster-bootstrap", binary))
    .collect::<Vec<_>>();
    let liveness = probe_command(&server.liveness_probe).replace("127.0.0.1", ip);
    let deadline = Instant::now() + Duration::from_secs(10);
    let ready = loop {
        let ok = Command::new(&readiness[0])
            .args(&readiness[1..])
            .env_clear()
            .env("BOOTSTRAP_NODES", &node)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
            && Command::new("sh")
                .args(["-c", &liveness])
                .status()
                .unwrap()
                .success();
        if ok || Instant::now() > deadline {
            break ok;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let probe = format!("{readiness:?}, {liveness}");
    let cli = |args: &[&str]| -> String {
        let out = Command::new("valkey-cli")
            .args(["-h", ip, "-p", "6379"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let info = cli(&["info", "server"]);
    let cluster = cli(&["info", "cluster"]);
    let nodes_conf = data.join("nodes.conf").is_file();
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(data.join("valkey.log")).unwrap_or_default();

    assert!(ready, "the readiness probe never passed: {probe}\n{log}");
    assert!(info.contains("valkey_version:8.0."), "{info}");
    assert!(cluster.contains("cluster_enabled:1"), "{cluster}");
    assert!(nodes_conf, "nodes.conf is not in the data directory\n{log}");
}
