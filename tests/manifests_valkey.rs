//! `components/valkey` (and `overlays/valkey`, the base with it): Valkey instead of Redis for any
//! kustomization. Checks that the component changes exactly the server (its image and the two
//! programs the startup and the liveness probe run) and nothing else, field by field, on the base
//! and on production, so `kubectl apply -k` is accepted on a running install (no immutable field
//! of the StatefulSet changes); and runs the rendered startup scripts for real on one data
//! directory: Valkey loads what Redis left (same node ID, same keys), and Redis 7.0 refuses what
//! Valkey wrote, with a line that says why, without ever listening.
//!
//! The overlay also goes through every check of tests/manifests.rs (it is in `ALL` there) and,
//! with production + the component, the strict schema validation of tests/manifest_schemas.rs.
//! Needs `kubectl`, `redis-server`, `valkey-server` and `valkey-cli` (scripts/install-deps.sh).
//! Loopback block 43 (see `common/BLOCKS.md`).

mod kustomize;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Container};
use kustomize::{render, render_with};
use serde_json::Value;

const VALKEY: &str = "overlays/valkey";
const COMPONENT: &str = "components/valkey";
const PRODUCTION: &str = "overlays/production";

/// The binary under test, for the paths that name it in a pod.
const BINARY: &str = env!("CARGO_BIN_EXE_redis-cluster-bootstrap");

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

fn server_container(docs: &[Value]) -> Container {
    let sts: StatefulSet = one(docs, "StatefulSet");
    let pod = sts.spec.unwrap().template.spec.unwrap();
    pod.containers
        .into_iter()
        .find(|c| c.name == "redis")
        .unwrap()
}

fn strings(list: &Option<Vec<String>>) -> Vec<String> {
    list.iter().flatten().cloned().collect()
}

/// The value of the container's variable `name`.
fn env_value(container: &Container, name: &str) -> String {
    container
        .env
        .iter()
        .flatten()
        .find(|v| v.name == name)
        .and_then(|v| v.value.clone())
        .unwrap_or_else(|| panic!("no {name} with a value"))
}

/// Every field where two renderings differ, as `Kind/name path`: lists of named entries
/// (containers, variables, volumes) are matched by name, so a path reads `env[SERVER_BINARY]`.
/// An object or entry only one side has differs as a whole.
fn differences(a: &[Value], b: &[Value]) -> BTreeSet<String> {
    fn key(doc: &Value) -> String {
        format!(
            "{}/{}",
            doc["kind"].as_str().unwrap_or("?"),
            doc["metadata"]["name"].as_str().unwrap_or("?")
        )
    }
    fn walk(path: String, a: &Value, b: &Value, out: &mut BTreeSet<String>) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let (va, vb) = (
                        x.get(k).unwrap_or(&Value::Null),
                        y.get(k).unwrap_or(&Value::Null),
                    );
                    walk(format!("{path}.{k}"), va, vb, out);
                }
            }
            // In any order: a strategic merge may reorder a list it patches (no entry of these
            // lists refers to another, so their order means nothing).
            (Value::Array(x), Value::Array(y))
                if x.iter().chain(y).all(|v| v["name"].is_string()) =>
            {
                let names: BTreeSet<&str> = x
                    .iter()
                    .chain(y)
                    .filter_map(|v| v["name"].as_str())
                    .collect();
                for name in names {
                    let find = |list: &Vec<Value>| {
                        list.iter()
                            .find(|v| v["name"] == name)
                            .cloned()
                            .unwrap_or(Value::Null)
                    };
                    walk(format!("{path}[{name}]"), &find(x), &find(y), out);
                }
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                    walk(format!("{path}[{i}]"), va, vb, out);
                }
            }
            _ if a != b => {
                out.insert(path);
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    let keys: BTreeSet<String> = a.iter().chain(b).map(key).collect();
    for k in keys {
        let find = |docs: &[Value]| docs.iter().find(|d| key(d) == k).cloned();
        match (find(a), find(b)) {
            (Some(x), Some(y)) => walk(k, &x, &y, &mut out),
            _ => {
                out.insert(format!("{k} (only in one)"));
            }
        }
    }
    out
}

/// What the component may change: the server's image and its two programs.
fn server_fields() -> BTreeSet<String> {
    let container = "StatefulSet/redis-app.spec.template.spec.containers[redis]";
    [
        format!("{container}.image"),
        format!("{container}.env[SERVER_BINARY].value"),
        format!("{container}.env[CLI_BINARY].value"),
    ]
    .into_iter()
    .collect()
}

/// The overlay runs valkey/valkey (a pinned 8.0 tag), valkey-server and valkey-cli, on the
/// base's config file and data paths.
#[test]
fn the_valkey_overlay_runs_valkey_server_on_the_bases_config_and_data_paths() {
    let docs = render_valkey();
    let server = server_container(&docs);
    let image = server.image.as_deref().unwrap();
    let version = image.strip_prefix("valkey/valkey:8.0.").expect(image);
    assert!(version.parse::<u32>().is_ok(), "{image}");
    assert_eq!(env_value(&server, "SERVER_BINARY"), "valkey-server");
    assert_eq!(env_value(&server, "CLI_BINARY"), "valkey-cli");
    // The startup and the probe name the programs through those variables.
    let start = strings(&server.command).join(" ");
    assert!(start.contains("exec \"$SERVER_BINARY\""), "{start}");
    let liveness = strings(&server.liveness_probe.unwrap().exec.unwrap().command).join(" ");
    assert!(liveness.contains("\"$CLI_BINARY\""), "{liveness}");

    let base = render("manifests");
    let config = |docs: &[Value]| one::<ConfigMap>(docs, "ConfigMap").data.unwrap();
    assert_eq!(config(&docs), config(&base));
    assert!(config(&docs)["redis.conf"].contains("dir /var/lib/redis"));
    let base_server = server_container(&base);
    assert_eq!(server.volume_mounts, base_server.volume_mounts);
    assert_eq!(server.args, base_server.args);
}

/// Apart from the server, the Valkey overlay deploys exactly the base: every object, every field
/// (the bootstrap's image aside, which the overlay names like every overlay does).
#[test]
fn the_valkey_overlay_is_the_base_with_another_server() {
    let mut expected = server_fields();
    for bootstrap in [
        "Job/redis-cluster-bootstrap.spec.template.spec.containers[bootstrap].image",
        "StatefulSet/redis-app.spec.template.spec.initContainers[install-bootstrap].image",
    ] {
        expected.insert(bootstrap.to_string());
    }
    assert_eq!(
        differences(&render_valkey(), &render("manifests")),
        expected
    );
}

/// Production with the component differs from production in the server's image and programs
/// only: no immutable field of the StatefulSet (selector, serviceName, volumeClaimTemplates,
/// podManagementPolicy) changes, so `kubectl apply -k` is accepted on a running install, and
/// the TLS, ACL and external-access settings stay as they are.
#[test]
fn production_with_the_component_changes_the_server_and_no_immutable_field() {
    let production = render(PRODUCTION);
    let on_valkey = render_with(PRODUCTION, &[COMPONENT]);
    assert_eq!(differences(&on_valkey, &production), server_fields());

    let sts = |docs: &[Value]| -> Value {
        docs.iter()
            .find(|d| d["kind"] == "StatefulSet")
            .unwrap()
            .clone()
    };
    let (a, b) = (sts(&on_valkey), sts(&production));
    for field in [
        "selector",
        "serviceName",
        "volumeClaimTemplates",
        "podManagementPolicy",
    ] {
        assert!(!b["spec"][field].is_null(), "production sets {field}");
        assert_eq!(a["spec"][field], b["spec"][field], "{field}");
    }
    let server = server_container(&on_valkey);
    assert!(
        server
            .image
            .as_deref()
            .unwrap()
            .starts_with("valkey/valkey:8.0."),
        "{:?}",
        server.image
    );
    assert_eq!(env_value(&server, "SERVER_BINARY"), "valkey-server");
}

/// A server started by a rendered startup script, the pod's paths moved into a directory.
struct Pod {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Pod {
    /// Runs the container's command of `docs` at `ip`, with the pod's config under `root/etc`
    /// and its volume at `data`, and the container's own SERVER_BINARY and CLI_BINARY.
    fn start(docs: &[Value], ip: &str, root: &Path, data: &Path) -> (Child, Container) {
        let server = server_container(docs);
        let etc = root.join("etc-redis");
        std::fs::create_dir_all(&etc).unwrap();
        let localize = |s: &str| {
            s.replace("/opt/bootstrap/redis-cluster-bootstrap", BINARY)
                .replace("/etc/redis", etc.to_str().unwrap())
                .replace("/var/lib/redis", data.to_str().unwrap())
                .replace("$(POD_IP)", ip)
                .replace("$(POD_NAME)", "redis-app-0")
        };
        let conf = one::<ConfigMap>(docs, "ConfigMap").data.unwrap()["redis.conf"].clone();
        std::fs::write(etc.join("redis.conf"), localize(&conf)).unwrap();
        let argv: Vec<String> = [strings(&server.command), strings(&server.args)]
            .concat()
            .iter()
            .map(|a| localize(a))
            .collect();
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            // Beside the pod's: its own address, a log file, and a short node timeout so a lone
            // master takes writes within a second.
            .args(["--bind", ip, "--logfile", "server.log"])
            .args(["--cluster-node-timeout", "1000"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("SERVER_BINARY", env_value(&server, "SERVER_BINARY"))
            .env("CLI_BINARY", env_value(&server, "CLI_BINARY"))
            .env("BOOTSTRAP_NODES", format!("{ip}:6379"))
            .current_dir(data)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the container's command runs");
        (child, server)
    }

    /// [`Pod::start`], waiting until both of the container's probes pass.
    fn serving(docs: &[Value], ip: &str, root: &Path, data: &Path) -> Pod {
        let (child, server) = Pod::start(docs, ip, root, data);
        let pod = Pod {
            child,
            addr: format!("{ip}:6379").parse().unwrap(),
            log: data.join("server.log"),
        };
        let readiness: Vec<String> = strings(
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
        .map(|a| a.replace("/opt/bootstrap/redis-cluster-bootstrap", BINARY))
        .collect();
        let liveness = strings(
            &server
                .liveness_probe
                .as_ref()
                .unwrap()
                .exec
                .as_ref()
                .unwrap()
                .command,
        )
        .iter()
        .map(|a| a.replace("127.0.0.1", ip))
        .collect::<Vec<_>>();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = Command::new(&readiness[0])
                .args(&readiness[1..])
                .env_clear()
                .env("BOOTSTRAP_NODES", pod.addr.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success();
            let alive = Command::new(&liveness[0])
                .args(&liveness[1..])
                .env("CLI_BINARY", env_value(&server, "CLI_BINARY"))
                .status()
                .unwrap()
                .success();
            if ready && alive {
                return pod;
            }
            assert!(
                Instant::now() < deadline,
                "the probes never passed:\n{}",
                std::fs::read_to_string(&pod.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the lone master serves its slots again (`cluster_state:ok`).
    fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.cli(&["cluster", "info"]).contains("cluster_state:ok") {
            assert!(Instant::now() < deadline, "cluster_state never ok");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("valkey-cli")
            .args(["-h", &self.addr.ip().to_string(), "-p", "6379"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// SIGTERM, as the kubelet stops a pod: the server saves and exits.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let _ = self.child.wait();
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether anything listens at `addr`.
fn listening(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// One pod's volume across servers, each started by its kustomization's real startup script:
/// the base's Redis 7.0 writes keys; `overlays/valkey`'s Valkey 8.0 loads them (same node ID,
/// same keys) and rewrites the AOF in its own RDB 11; Redis 7.0 then cannot load it: the
/// server alone exits with its own error, the startup stops at `check-data` (exit 3, the files
/// and both versions named, the way out said) and nothing ever listens; Valkey again loads
/// every key.
#[test]
fn valkey_loads_what_redis_left_and_redis_refuses_what_valkey_wrote() {
    let redis = render("manifests");
    let valkey = render_valkey();
    let ip = "127.0.43.11";
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).unwrap();

    let pod = Pod::serving(&redis, ip, root.path(), &data);
    assert!(pod.cli(&["info", "server"]).contains("redis_version:7."));
    assert_eq!(pod.cli(&["cluster", "addslotsrange", "0", "16383"]), "OK");
    let id = pod.cli(&["cluster", "myid"]);
    pod.wait_ok();
    for i in 0..100 {
        assert_eq!(pod.cli(&["set", &format!("key:{i}"), &i.to_string()]), "OK");
    }
    pod.stop();

    let pod = Pod::serving(&valkey, ip, root.path(), &data);
    assert!(pod.cli(&["info", "server"]).contains("valkey_version:8.0."));
    assert_eq!(pod.cli(&["cluster", "myid"]), id);
    pod.wait_ok();
    assert_eq!(pod.cli(&["dbsize"]), "100");
    assert_eq!(pod.cli(&["get", "key:42"]), "42");
    // The AOF rewritten by Valkey, as it is once the AOF grows: its base is now RDB 11.
    pod.cli(&["bgrewriteaof"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pod
        .cli(&["info", "persistence"])
        .contains("aof_rewrite_in_progress:0")
        || pod
            .cli(&["info", "persistence"])
            .contains("aof_rewrite_scheduled:1")
    {
        assert!(Instant::now() < deadline, "the AOF rewrite never ended");
        std::thread::sleep(Duration::from_millis(100));
    }
    pod.stop();
    let aof = data.join("appendonlydir");
    let bases: Vec<PathBuf> = std::fs::read_dir(&aof)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".base.rdb"))
        .collect();
    assert_eq!(bases.len(), 1, "{bases:?}");
    let header = std::fs::read(&bases[0]).unwrap();
    assert_eq!(&header[..9], b"REDIS0011");

    // redis-server alone on these files: it fails loudly, and never serves them empty.
    let out = Command::new("redis-server")
        .arg(data.join("../etc-redis/redis.conf"))
        .args(["--bind", ip, "--logfile", "alone.log"])
        .current_dir(&data)
        .output()
        .unwrap();
    let log = std::fs::read_to_string(data.join("alone.log")).unwrap();
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("Can't handle RDB format version 11"), "{log}");
    assert!(!listening(format!("{ip}:6379").parse().unwrap()));

    // The base's startup: check-data stops it first, with a line that says why.
    let (child, _) = Pod::start(&redis, ip, root.path(), &data);
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{said}");
    for words in [
        "is RDB version 11",
        "Redis 7.0.",
        "cannot load",
        "going back to an older server is not supported",
        "Roll this pod forward again",
        "do not run redis-check-aof --fix",
    ] {
        assert!(said.contains(words), "{words:?} not in: {said}");
    }
    assert!(!listening(format!("{ip}:6379").parse().unwrap()));
    assert_eq!(
        std::fs::read(&bases[0]).unwrap(),
        header,
        "the data is intact"
    );

    // Forward again: every key is there.
    let pod = Pod::serving(&valkey, ip, root.path(), &data);
    assert_eq!(pod.cli(&["cluster", "myid"]), id);
    assert_eq!(pod.cli(&["dbsize"]), "100");
    pod.stop();
}
