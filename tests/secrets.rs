//! Secrets changed without an outage, on real nodes (Redis and Valkey), as production runs them:
//! six TLS-only nodes, each started the way production's Redis container starts (the ACL users
//! from `redis-cluster-bootstrap users` on redis-server's stdin: the rules of
//! `overlays/production/acl/`, the passwords of the Secret's files, a pod-local user) and watched
//! by its own `redis-cluster-bootstrap watch`; each pod has its own mounts of the Secrets
//! `redis-users` and `redis-tls`, changed as the kubelet changes them, pod by pod, and so has the
//! heal Job. A cluster client writes as `app` throughout. One cluster for every check:
//!
//! - the three passwords (`app`, `bootstrap`, `replication`) changed by the documented three
//!   steps (append the new one; put it first; remove the old one), each step reaching half the
//!   pods and the Job's mount, then the other half, with `synced` as the wait between: at each
//!   half every replica's link to its master is cut and it logs in again with its `masterauth`,
//!   and the heal run is a formed no-op. No authentication failure on any node (`ACL LOG`, and
//!   Valkey's `acl_access_denied_auth`), no full resync, no acknowledged write lost, the old
//!   passwords refused at the end;
//! - a certificate renewal (same CA, new key and serial) on every pod: new connections get the
//!   new serial, a connection made before keeps its client ID, no node restarted, replication
//!   and the cluster bus stay up;
//! - a broken renewal on one pod (a key that does not match): it keeps serving the previous
//!   certificate, and says so (an error line; `reload_failures` on its /metrics; `synced` exits
//!   1).
//!
//! Addresses: 127.32.1.11-16 (the nodes; their watchers' metrics on port 9180), see
//! tests/common/BLOCKS.md.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// The pods' addresses: 127.32.1.11 to .16.
fn pod_ip(i: usize) -> String {
    format!("127.32.1.{}", 11 + i)
}

/// Where each watcher serves its metrics (on its pod's address).
const METRICS_PORT: u16 = 9180;

/// The harness's own user (every command), defined by the same rules directory.
const HARNESS: (&str, &str) = ("admin", "admin-pw");

/// The Secret `redis-users`: user -> its file's contents.
type Users = BTreeMap<&'static str, String>;

/// One pod: its node, its mounts, its pod-local password file and its watcher.
struct Pod {
    node: RedisNode,
    tls: Mount,
    users: Mount,
    password_file: PathBuf,
    watch: Child,
    watch_log: PathBuf,
}

impl Pod {
    /// The variables the pod's `watch` and `synced` run with (its container's environment).
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("BOOTSTRAP_NODES", self.node.host_port()),
            ("BOOTSTRAP_TLS_CA_FILE", path(&self.tls.path("ca.crt"))),
            ("BOOTSTRAP_TLS_CERT_FILE", path(&self.tls.path("tls.crt"))),
            ("BOOTSTRAP_TLS_KEY_FILE", path(&self.tls.path("tls.key"))),
            ("BOOTSTRAP_USERS_DIR", path(&self.users.dir)),
            ("BOOTSTRAP_USERNAME", "pod".into()),
            ("BOOTSTRAP_PASSWORD_FILE", path(&self.password_file)),
        ]
    }

    /// `synced` in this pod.
    fn synced(&self) -> Run {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run_binary(&["synced"], &env)
    }

    /// The watcher's log so far.
    fn watch_log(&self) -> String {
        std::fs::read_to_string(&self.watch_log).unwrap_or_default()
    }

    /// The watcher's metrics, as Prometheus scrapes them.
    fn metrics(&self) -> String {
        let addr = SocketAddr::new(self.node.addr.ip(), METRICS_PORT);
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: watch\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = self.watch.kill();
        let _ = self.watch.wait();
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// The directory of ACL rules (the ConfigMap `redis-acl`): production's files, and the harness's
/// user.
fn rules_dir(dir: &Path) -> PathBuf {
    let rules = dir.join("acl");
    std::fs::create_dir_all(&rules).unwrap();
    let production = Path::new(env!("CARGO_MANIFEST_DIR")).join("overlays/production/acl");
    for user in ["app", "bootstrap", "replication"] {
        std::fs::copy(production.join(user), rules.join(user)).unwrap();
    }
    std::fs::write(rules.join(HARNESS.0), "~* &* +@all\n").unwrap();
    rules
}

/// The Secret `redis-users` as the kubelet writes it (every key, or only `keys`).
fn write_users(mount: &mut Mount, users: &Users, keys: Option<&[&str]>) {
    let files: Vec<(&str, &[u8])> = users
        .iter()
        .filter(|(user, _)| keys.is_none_or(|k| k.contains(user)))
        .map(|(user, text)| (*user, text.as_bytes()))
        .collect();
    mount.write(&files);
}

/// A certificate for every pod's address (one Secret for all pods, as components/tls makes),
/// written as `<name>.crt` and `<name>.key`; its serial as `openssl x509 -serial` prints it.
fn issue(ca: &Ca, dir: &Path, name: &str) -> String {
    let ips: Vec<String> = (0..6).map(pod_ip).collect();
    ca.issue(dir, name, &ips, false);
    serial_of_file(&dir.join(format!("{name}.crt")))
}

fn serial_of_file(file: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(file)
        .output()
        .expect("openssl is installed");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches("serial=")
        .to_string()
}

/// The serial of the certificate a node presents to a new connection, as `openssl s_client`
/// shows it.
fn serving_serial(node: &RedisNode, ca: &Path) -> String {
    let mut client = Command::new("openssl")
        .args(["s_client", "-connect", &node.host_port(), "-CAfile"])
        .arg(ca)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut text = String::new();
    client
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let _ = client.wait();
    let pem = text
        .split("-----BEGIN CERTIFICATE-----")
        .nth(1)
        .and_then(|rest| rest.split("-----END CERTIFICATE-----").next())
        .unwrap_or_else(|| panic!("no certificate from {}: {text}", node.addr));
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        format!("-----BEGIN CERTIFICATE-----{pem}-----END CERTIFICATE-----\n"),
    )
    .unwrap();
    serial_of_file(file.path())
}

/// Starts pod `i` as production's Redis container starts: `users` prints the ACL users (and
/// writes the pod-local user's new password), redis-server reads them on stdin, TLS from the
/// pod's mount; then its `watch` sidecar.
fn start_pod(i: usize, root: &Path, rules: &Path, users: &Users, cert: &Path) -> Pod {
    let ip = pod_ip(i);
    let dir = root.join(format!("pod-{i}"));
    let mut tls = Mount::new(&dir.join("redis-tls"));
    tls.write(&tls_files(cert));
    let mut users_mount = Mount::new(&dir.join("redis-users"));
    write_users(&mut users_mount, users, None);
    let run = dir.join("redis-pod");
    std::fs::create_dir_all(&run).unwrap();
    let password_file = run.join("password");
    let acl = run_binary(
        &["users"],
        &[
            ("BOOTSTRAP_ACL_DIR", &path(rules)),
            ("BOOTSTRAP_USERS_DIR", &path(&users_mount.dir)),
            ("BOOTSTRAP_USERNAME", "pod"),
            ("BOOTSTRAP_PASSWORD_FILE", &path(&password_file)),
        ],
    );
    assert_eq!(acl.code, 0, "users: {acl:?}");
    let harness_tls = TlsFiles {
        dir: root.join("harness"),
        auth_clients: false,
    };
    let options = Options {
        tls: Some(harness_tls),
        stdin: Some(acl.stdout),
        cli_user: Some((HARNESS.0.into(), HARNESS.1.into())),
        // Production's tls.conf: the files from the mount (after the harness's defaults, so
        // they win), client certificates optional.
        extra: [
            ("--tls-cert-file", tls.path("tls.crt")),
            ("--tls-key-file", tls.path("tls.key")),
            ("--tls-ca-cert-file", tls.path("ca.crt")),
            ("--tls-auth-clients", PathBuf::from("optional")),
        ]
        .into_iter()
        .flat_map(|(name, value)| [name.to_string(), path(&value)])
        .collect(),
        ..Options::default()
    };
    let node = RedisNode::start(&ip, &options);
    let watch_log = dir.join("watch.log");
    let mut pod = Pod {
        node,
        tls,
        users: users_mount,
        password_file,
        watch: Command::new("true").spawn().unwrap(),
        watch_log,
    };
    let mut env = pod.env();
    env.push(("BOOTSTRAP_METRICS_ADDRESS", format!("{ip}:{METRICS_PORT}")));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let log = std::fs::File::create(&pod.watch_log).unwrap();
    pod.watch = bootstrap_command(&env)
        .arg("watch")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    pod
}

/// The Secret `redis-tls`'s files for the certificate `cert` (`<cert>.crt`, `.key`, the CA
/// beside it).
fn tls_files(cert: &Path) -> Vec<(&'static str, &'static [u8])> {
    let read = |p: PathBuf| -> &'static [u8] { std::fs::read(p).unwrap().leak() };
    let dir = cert.parent().unwrap();
    let name = cert.file_name().unwrap().to_string_lossy();
    vec![
        ("ca.crt", read(dir.join("ca.crt"))),
        ("tls.crt", read(dir.join(format!("{name}.crt")))),
        ("tls.key", read(dir.join(format!("{name}.key")))),
    ]
}

/// The heal Job's mounts and its run (static mode, as the CronJob's pod runs it).
struct Job {
    tls: Mount,
    users: Mount,
}

impl Job {
    fn run(&self, pods: &[Pod]) -> Run {
        let nodes: Vec<String> = pods.iter().map(|p| p.node.host_port()).collect();
        bootstrap(&[
            ("BOOTSTRAP_NODES", &nodes.join(",")),
            ("BOOTSTRAP_READY_TIMEOUT", "10s"),
            ("BOOTSTRAP_CONVERGE_TIMEOUT", "60s"),
            ("BOOTSTRAP_USERNAME", "bootstrap"),
            (
                "BOOTSTRAP_PASSWORD_FILE",
                &path(&self.users.path("bootstrap")),
            ),
            ("BOOTSTRAP_TLS_CA_FILE", &path(&self.tls.path("ca.crt"))),
            ("BOOTSTRAP_TLS_CERT_FILE", &path(&self.tls.path("tls.crt"))),
            ("BOOTSTRAP_TLS_KEY_FILE", &path(&self.tls.path("tls.key"))),
        ])
    }

    /// A scheduled run on a formed cluster: exit 0, nothing to do, no password refused.
    fn heals(&self, pods: &[Pod], when: &str) {
        let run = self.run(pods);
        assert_eq!(run.code, 0, "{when}: {run:?}");
        assert!(run.stdout.contains("decision=formed"), "{when}: {run:?}");
        assert!(
            !run.stderr.contains("refused the first password"),
            "{when}: {run:?}"
        );
    }
}

/// Waits until `synced` passes in every one of `pods`, and (as docs/security.md's loop checks,
/// since a kubelet may not have updated a pod's files yet) its line of each user in `expected`
/// shows that user's count of passwords and the fingerprint of the one in use: the documented
/// wait between two steps.
fn wait_synced(pods: &[&Pod], expected: &[(&str, usize, String)]) {
    let shows = |out: &str, (user, count, in_use): &(&str, usize, String)| {
        let start = format!("ok user {user}: the node accepts the {count} password(s) of ");
        let end = format!("no other; in use: {}", &sha256(in_use)[..8]);
        out.lines()
            .any(|l| l.starts_with(&start) && l.ends_with(&end))
    };
    for pod in pods {
        let started = Instant::now();
        loop {
            let run = pod.synced();
            if run.code == 0 && expected.iter().all(|e| shows(&run.stdout, e)) {
                break;
            }
            assert_eq!(run.code, 1, "{run:?}");
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{} never synced: {run:?}\n{}",
                pod.node.addr,
                pod.watch_log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Cuts every replica's link to its master (as a network blip or a master's restart would): each
/// logs in again with its `masterauth`. Waits until every replica is back in sync.
fn reconnect_replicas(pods: &[Pod]) {
    let nodes: Vec<&RedisNode> = pods.iter().map(|p| &p.node).collect();
    for node in &nodes {
        if node.cli(&["role"]).starts_with("slave") {
            node.cli(&["client", "kill", "type", "master"]);
        }
    }
    wait_until(
        "every replica's link up again",
        Duration::from_secs(20),
        || {
            nodes.iter().all(|n| {
                let info = n.cli(&["info", "replication"]);
                !info.contains("role:slave") || info.contains("master_link_status:up")
            })
        },
    );
    wait_in_sync(&nodes);
}

/// Every replica has every write its master took (its link up).
fn wait_in_sync(nodes: &[&RedisNode]) {
    let field = |info: &str, key: &str| -> Option<u64> {
        info.lines()
            .find_map(|l| l.trim().strip_prefix(key).and_then(|v| v.parse().ok()))
    };
    wait_until("every replica in sync", Duration::from_secs(20), || {
        nodes.iter().all(|n| {
            let info = n.cli(&["info", "replication"]);
            let Some(offset) = field(&info, "slave_repl_offset:") else {
                return true;
            };
            let master = info
                .lines()
                .find_map(|l| l.trim().strip_prefix("master_host:"))
                .unwrap_or_default()
                .to_string();
            info.contains("master_link_status:up")
                && nodes
                    .iter()
                    .filter(|m| m.addr.ip().to_string() == master)
                    .all(|m| {
                        field(&m.cli(&["info", "replication"]), "master_repl_offset:")
                            >= Some(offset)
                    })
        })
    });
}

/// No node counted an authentication failure: its ACL log is empty (no refused password, and no
/// command refused either), and Valkey's counter is 0.
fn assert_no_auth_failures(pods: &[Pod], when: &str) {
    for pod in pods {
        let log = pod.node.cli(&["acl", "log"]);
        assert!(log.is_empty(), "{when}: {}: ACL LOG:\n{log}", pod.node.addr);
        let stats = pod.node.cli(&["info", "stats"]);
        if let Some(line) = stats
            .lines()
            .find(|l| l.starts_with("acl_access_denied_auth:"))
        {
            assert_eq!(
                line.trim(),
                "acl_access_denied_auth:0",
                "{when}: {}",
                pod.node.addr
            );
        }
    }
}

/// The sum of every node's full resyncs served (`sync_full`).
fn full_syncs(pods: &[Pod]) -> u64 {
    pods.iter()
        .map(|p| {
            p.node
                .cli(&["info", "stats"])
                .lines()
                .find_map(|l| l.trim().strip_prefix("sync_full:")?.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}

/// An application: a cluster client writing `live:<n>` as `app`, with the password it is given;
/// it reconnects with a new one when told (an application switched to the new password).
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
    password: Arc<Mutex<String>>,
    errors: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

fn cluster_client(urls: &[String], password: &str, ca: &[u8]) -> redis::cluster::ClusterClient {
    redis::cluster::ClusterClientBuilder::new(urls.to_vec())
        .username("app")
        .password(password)
        .certs(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca.to_vec()),
        })
        .build()
        .unwrap()
}

impl Writer {
    fn start(rt: &tokio::runtime::Runtime, pods: &[Pod], password: &str, ca: Vec<u8>) -> Writer {
        let urls: Vec<String> = pods
            .iter()
            .map(|p| format!("rediss://{}/", p.node.addr))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicUsize::new(0));
        let password = Arc::new(Mutex::new(password.to_string()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let (s, a, p, e) = (
            stop.clone(),
            acked.clone(),
            password.clone(),
            errors.clone(),
        );
        let task = rt.spawn(async move {
            let mut i = 0;
            while !s.load(Ordering::Relaxed) {
                let now = p.lock().unwrap().clone();
                let mut conn = match cluster_client(&urls, &now, &ca)
                    .get_async_connection()
                    .await
                {
                    Ok(conn) => conn,
                    Err(err) => {
                        e.lock().unwrap().push(format!("connect: {err}"));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                while !s.load(Ordering::Relaxed) && *p.lock().unwrap() == now {
                    let set = redis::cmd("SET")
                        .arg(format!("live:{i}"))
                        .arg(i)
                        .query_async::<()>(&mut conn)
                        .await;
                    match set {
                        Ok(()) => {
                            i += 1;
                            a.store(i, Ordering::Relaxed);
                            // An application's steady pace, not a benchmark: every moment of
                            // the run is covered, and reading it all back stays quick.
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Err(err) => {
                            e.lock().unwrap().push(format!("SET: {err}"));
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                }
            }
        });
        Writer {
            stop,
            acked,
            password,
            errors,
            task,
        }
    }

    /// The application now logs in with `password` (as after its own rollout).
    fn switch(&self, password: &str) {
        *self.password.lock().unwrap() = password.to_string();
    }

    fn finish(self, rt: &tokio::runtime::Runtime) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        rt.block_on(self.task).unwrap();
        let errors = self.errors.lock().unwrap().clone();
        (self.acked.load(Ordering::Relaxed), errors)
    }
}

/// How many of `live:0..count` read back with their value.
async fn read_back(urls: &[String], password: &str, ca: &[u8], count: usize) -> usize {
    let mut conn = cluster_client(urls, password, ca)
        .get_async_connection()
        .await
        .unwrap();
    let mut found = 0;
    for i in 0..count {
        let v: Option<usize> = redis::cmd("GET")
            .arg(format!("live:{i}"))
            .query_async(&mut conn)
            .await
            .unwrap();
        found += usize::from(v == Some(i));
    }
    found
}

/// Each user's file at the three steps of a change from `old` to `new`.
fn step_files(old: &str, new: &str) -> [String; 3] {
    [
        format!("{old}\n{new}\n"),
        format!("{new}\n{old}\n"),
        format!("{new}\n"),
    ]
}

#[test]
fn passwords_rotate_and_certificates_renew_without_an_outage() {
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::Builder::new()
        .prefix("secrets-")
        .tempdir()
        .unwrap();
    let root = tmp.path();
    let certs = root.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let ca = Ca::new("redis-cluster-bootstrap test CA");
    std::fs::write(certs.join("ca.crt"), &ca.pem).unwrap();
    let first_serial = issue(&ca, &certs, "first");
    // The harness's redis-cli: the CA, and the first certificate as its client certificate.
    let harness = root.join("harness");
    std::fs::create_dir_all(&harness).unwrap();
    std::fs::write(harness.join("ca.crt"), &ca.pem).unwrap();
    std::fs::copy(certs.join("first.crt"), harness.join("client.crt")).unwrap();
    std::fs::copy(certs.join("first.key"), harness.join("client.key")).unwrap();

    let rules = rules_dir(root);
    let mut users: Users = BTreeMap::new();
    users.insert("app", "app-pw-1\n".into());
    users.insert("bootstrap", "bootstrap-pw-1\n".into());
    users.insert("replication", "replication-pw-1\n".into());
    users.insert(HARNESS.0, format!("{}\n", HARNESS.1));
    let mut pods: Vec<Pod> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let (rules, users, cert) = (&rules, &users, certs.join("first"));
                s.spawn(move || start_pod(i, root, rules, users, &cert))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut job = Job {
        tls: Mount::new(&root.join("job/redis-tls")),
        users: Mount::new(&root.join("job/redis-users")),
    };
    job.tls.write(&tls_files(&certs.join("first")));
    write_users(&mut job.users, &users, Some(&["bootstrap"]));

    let formed = job.run(&pods);
    assert_eq!(formed.code, 0, "{formed:?}");
    assert!(formed.stdout.contains("decision=fresh"), "{formed:?}");
    let nodes: Vec<&RedisNode> = pods.iter().map(|p| &p.node).collect();
    wait_in_sync(&nodes);
    let ca_pem = ca.pem.as_bytes().to_vec();
    let writer = Writer::start(&rt, &pods, "app-pw-1", ca_pem.clone());
    let syncs = full_syncs(&pods);
    let run_ids: Vec<String> = pods
        .iter()
        .map(|p| p.node.cli(&["info", "server"]))
        .map(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("run_id:"))
                .unwrap()
                .trim()
                .to_string()
        })
        .collect();
    wait_synced(
        &pods.iter().collect::<Vec<_>>(),
        &[("app", 1, "app-pw-1".to_string())],
    );
    job.heals(&pods, "before");
    eprintln!("formed, watched and writing after {:?}", started.elapsed());

    // Every password, by the documented three steps, each reaching half the pods (and the Job's
    // mount) first, then the rest.
    let changes = [
        ("app", step_files("app-pw-1", "app-pw-2")),
        ("bootstrap", step_files("bootstrap-pw-1", "bootstrap-pw-2")),
        (
            "replication",
            step_files("replication-pw-1", "replication-pw-2"),
        ),
    ];
    for step in 0..3 {
        let mut expected = Vec::new();
        for (user, files) in &changes {
            users.insert(user, files[step].clone());
            let listed = redis_cluster_bootstrap::passwords::parse(&files[step]);
            expected.push((*user, listed.len(), listed[0].clone()));
        }
        for pod in pods[..3].iter_mut() {
            write_users(&mut pod.users, &users, None);
        }
        write_users(&mut job.users, &users, Some(&["bootstrap"]));
        wait_synced(&pods[..3].iter().collect::<Vec<_>>(), &expected);
        let when = format!("step {} on half the pods", step + 1);
        reconnect_replicas(&pods);
        assert_no_auth_failures(&pods, &when);
        job.heals(&pods, &when);
        for pod in pods[3..].iter_mut() {
            write_users(&mut pod.users, &users, None);
        }
        wait_synced(&pods.iter().collect::<Vec<_>>(), &expected);
        let when = format!("step {} on every pod", step + 1);
        reconnect_replicas(&pods);
        assert_no_auth_failures(&pods, &when);
        if step == 1 {
            // The new password is the one in use everywhere: the application switches.
            writer.switch("app-pw-2");
        }
        eprintln!("{when} after {:?}", started.elapsed());
    }
    job.heals(&pods, "after the passwords changed");
    for pod in &pods {
        assert_eq!(
            pod.node.cli(&["config", "get", "masterauth"]),
            "masterauth\nreplication-pw-2"
        );
        for (user, old) in [
            ("app", "app-pw-1"),
            ("bootstrap", "bootstrap-pw-1"),
            ("replication", "replication-pw-1"),
        ] {
            let held = pod.node.cli(&["acl", "getuser", user]);
            assert!(
                !held.contains(&sha256(old)),
                "{user}'s old password kept:\n{held}"
            );
            assert!(held.contains(&sha256(&old.replace("-1", "-2"))), "{held}");
        }
    }
    assert_no_auth_failures(&pods, "after the passwords changed");

    // A renewal: same CA, a new key and serial, pod by pod, and the Job's mount.
    let ca_file = certs.join("ca.crt");
    for pod in &pods {
        assert_eq!(serving_serial(&pod.node, &ca_file), first_serial);
    }
    let renewed_serial = issue(&ca, &certs, "renewed");
    assert_ne!(renewed_serial, first_serial);
    let kept: Vec<(redis::aio::MultiplexedConnection, i64)> = rt.block_on(async {
        let mut kept = Vec::new();
        for pod in &pods {
            let url = format!("rediss://{}:{}@{}/", HARNESS.0, HARNESS.1, pod.node.addr);
            let client = redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca_pem.clone()),
                },
            )
            .unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let id: i64 = redis::cmd("CLIENT")
                .arg("ID")
                .query_async(&mut conn)
                .await
                .unwrap();
            kept.push((conn, id));
        }
        kept
    });
    for pod in pods.iter_mut() {
        pod.tls.write(&tls_files(&certs.join("renewed")));
    }
    job.tls.write(&tls_files(&certs.join("renewed")));
    wait_synced(&pods.iter().collect::<Vec<_>>(), &[]);
    for pod in &pods {
        assert_eq!(
            serving_serial(&pod.node, &ca_file),
            renewed_serial,
            "{}",
            pod.node.addr
        );
        assert!(
            pod.watch_log().contains("reloaded its TLS files"),
            "{}",
            pod.watch_log()
        );
    }
    rt.block_on(async {
        for (mut conn, id) in kept {
            let again: i64 = redis::cmd("CLIENT")
                .arg("ID")
                .query_async(&mut conn)
                .await
                .unwrap();
            assert_eq!(
                again, id,
                "a connection made before the renewal was replaced"
            );
        }
    });
    let nodes: Vec<&RedisNode> = pods.iter().map(|p| &p.node).collect();
    wait_in_sync(&nodes);
    for (pod, run_id) in pods.iter().zip(&run_ids) {
        let info = pod.node.cli(&["info", "server"]);
        assert!(
            info.contains(&format!("run_id:{run_id}")),
            "{} restarted",
            pod.node.addr
        );
        assert!(
            pod.node
                .cli(&["cluster", "info"])
                .contains("cluster_state:ok")
        );
    }
    job.heals(&pods, "after the renewal");
    eprintln!("renewed after {:?}", started.elapsed());

    // A broken renewal on one pod: a certificate with a key that is not its own.
    let broken_serial = issue(&ca, &certs, "broken");
    ca.issue(&certs, "other", &[pod_ip(5)], false);
    let broken = &mut pods[5];
    let ca_bytes = std::fs::read(certs.join("ca.crt")).unwrap();
    let cert_bytes = std::fs::read(certs.join("broken.crt")).unwrap();
    let key_bytes = std::fs::read(certs.join("other.key")).unwrap();
    broken.tls.write(&[
        ("ca.crt", &ca_bytes),
        ("tls.crt", &cert_bytes),
        ("tls.key", &key_bytes),
    ]);
    wait_until(
        "the broken renewal reported",
        Duration::from_secs(20),
        || {
            broken
                .metrics()
                .lines()
                .any(|l| l == "redis_cluster_bootstrap_tls_reload_failures_total 1")
        },
    );
    let log = broken.watch_log();
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("refused its renewed TLS files")),
        "{log}"
    );
    assert!(
        log.contains(&format!("keeps serving serial {renewed_serial}")),
        "{log}"
    );
    assert_eq!(serving_serial(&broken.node, &ca_file), renewed_serial);
    assert_ne!(renewed_serial, broken_serial);
    let metrics = broken.metrics();
    assert!(
        metrics
            .lines()
            .any(|l| l == "redis_cluster_bootstrap_tls_serving_matches_files 0"),
        "{metrics}"
    );
    let synced = broken.synced();
    assert_eq!(synced.code, 1, "{synced:?}");
    assert!(
        synced.stdout.contains("NOT tls: the node serves"),
        "{synced:?}"
    );
    assert_eq!(broken.node.cli(&["ping"]), "PONG");
    eprintln!("broken renewal reported after {:?}", started.elapsed());

    // Nothing lost, nobody refused, no full resync, and every watcher stops on SIGTERM (exit 0).
    let (acked, errors) = writer.finish(&rt);
    let urls: Vec<String> = pods
        .iter()
        .map(|p| format!("rediss://{}/", p.node.addr))
        .collect();
    assert!(acked > 100, "too few writes: {acked}");
    let found = rt.block_on(read_back(&urls, "app-pw-2", &ca_pem, acked));
    assert_eq!(found, acked, "acknowledged writes lost");
    assert!(
        !errors
            .iter()
            .any(|e| e.contains("WRONGPASS") || e.contains("NOAUTH") || e.contains("auth")),
        "the application was refused: {errors:?}"
    );
    assert_no_auth_failures(&pods, "at the end");
    assert_eq!(full_syncs(&pods), syncs, "a replica needed a full resync");
    for pod in pods.iter_mut() {
        let hwm = std::fs::read_to_string(format!("/proc/{}/status", pod.watch.id()))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .unwrap_or_default()
            .to_string();
        let pid = pod.watch.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = pod.watch.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{}", pod.watch_log());
        eprintln!("watch of {}: {hwm}", pod.node.addr);
    }
    eprintln!(
        "{acked} writes acknowledged, {} errors, in {:?}",
        errors.len(),
        started.elapsed()
    );
}

fn sha256(password: &str) -> String {
    redis_cluster_bootstrap::passwords::hash(password)
}
