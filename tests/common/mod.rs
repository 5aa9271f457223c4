//! Test harness: real `redis-server` processes, one per "pod", each on its own loopback IP and
//! port 6379 like pods, started with `--bind-source-addr` so the cluster bus sees the right peer
//! address; and the real binary run as a subprocess.
//!
//! Every test takes its own block of addresses, `127.0.<block>.0/24`, so tests run in parallel.
//! Blocks in use: see `BLOCKS.md` beside this file.
//!
//! The server is Redis (`redis-server`, `redis-cli`) unless `BOOTSTRAP_TEST_SERVER=valkey` names
//! Valkey (`valkey-server`, `valkey-cli`): `scripts/test.sh` runs the real-node tests once with each.

#![allow(dead_code)]

mod checks;
mod mount;
mod roll;
mod secure;
mod values;
#[allow(unused_imports)] // Not every test binary checks keys.
pub use checks::*;
#[allow(unused_imports)] // Only the secrets tests mount files as the kubelet does.
pub use mount::*;
#[allow(unused_imports)] // Not every test binary plays pods.
pub use roll::*;
#[allow(unused_imports)] // Not every test binary locks its nodes down.
pub use secure::*;
#[allow(unused_imports)] // Only the tests of backups and restores compare values.
pub use values::*;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The node timeout the tests run with (the guide uses 5000 ms; shorter keeps tests quick).
pub const NODE_TIMEOUT_MS: u32 = 2000;

/// The variable that names the server the real-node tests run against.
pub const SERVER_VARIABLE: &str = "BOOTSTRAP_TEST_SERVER";

/// The server implementation under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// Redis (Debian's 7.0): `redis-server`, `redis-cli`.
    Redis,
    /// Valkey (8.0, bookworm-backports): `valkey-server`, `valkey-cli`.
    Valkey,
}

impl Server {
    /// The server named by `BOOTSTRAP_TEST_SERVER` (unset: Redis).
    pub fn under_test() -> Server {
        match std::env::var(SERVER_VARIABLE).as_deref() {
            Err(_) | Ok("") | Ok("redis") => Server::Redis,
            Ok("valkey") => Server::Valkey,
            Ok(other) => panic!("{SERVER_VARIABLE}={other:?}: expected redis or valkey"),
        }
    }

    /// The server binary.
    pub fn server_binary(self) -> &'static str {
        match self {
            Server::Redis => "redis-server",
            Server::Valkey => "valkey-server",
        }
    }

    /// The command-line client.
    pub fn cli_binary(self) -> &'static str {
        match self {
            Server::Redis => "redis-cli",
            Server::Valkey => "valkey-cli",
        }
    }
}

/// One redis-server (or valkey-server) process playing one pod.
pub struct RedisNode {
    /// The pod's address.
    pub addr: SocketAddr,
    /// Its data directory (kept across restarts of the same "pod").
    pub dir: PathBuf,
    /// [`Options::cli_user`].
    pub cli_user: Option<(String, String)>,
    /// [`Options::bootstrap_user`].
    pub bootstrap_user: Option<(String, String)>,
    /// [`Options::tls`].
    pub tls: Option<TlsFiles>,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
}

/// Options of a node beyond the defaults.
#[derive(Clone, Default)]
pub struct Options {
    /// Start with `cluster-enabled no`.
    pub standalone: bool,
    /// `requirepass` and `masterauth`.
    pub password: Option<String>,
    /// Extra `--name value` arguments.
    pub extra: Vec<String>,
    /// For nodes whose `default` user is off (an ACL): the user and password the harness's
    /// `redis-cli` and cluster client log in as.
    pub cli_user: Option<(String, String)>,
    /// For such nodes: the user and password the binary is run with (`BOOTSTRAP_USERNAME`,
    /// `BOOTSTRAP_PASSWORD`) by [`run_static`].
    pub bootstrap_user: Option<(String, String)>,
    /// TLS only: `--port 0`, `--tls-port 6379`, TLS on the cluster bus and replication, with the
    /// node's certificate for its address from these files.
    pub tls: Option<TlsFiles>,
    /// The server to start when not the one under test (a test across Redis and Valkey).
    pub server: Option<Server>,
    /// Configuration given on the server's stdin (`-` as its last argument), as production's
    /// startup gives the ACL users.
    pub stdin: Option<String>,
}

/// The TLS files of a test in one directory: `ca.crt`, `<ip>.crt` and `<ip>.key` for every
/// address a node may start on, `client.crt` and `client.key`. tests/tls.rs makes them.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The directory.
    pub dir: PathBuf,
    /// `tls-auth-clients yes`: the nodes ask for a client certificate, and the binary is given
    /// one by [`run_static`].
    pub auth_clients: bool,
}

impl TlsFiles {
    /// A file of the directory, as a string for command lines and variables.
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The server's arguments for a node at `ip` (its `port` becomes 0).
    fn server_args(&self, ip: &str) -> Vec<String> {
        let auth = if self.auth_clients { "yes" } else { "no" };
        [
            ("--tls-port", "6379".to_string()),
            ("--tls-cluster", "yes".into()),
            ("--tls-replication", "yes".into()),
            ("--tls-cert-file", self.path(&format!("{ip}.crt"))),
            ("--tls-key-file", self.path(&format!("{ip}.key"))),
            ("--tls-ca-cert-file", self.path("ca.crt")),
            ("--tls-auth-clients", auth.into()),
        ]
        .into_iter()
        .flat_map(|(name, value)| [name.to_string(), value])
        .collect()
    }

    /// `redis-cli`'s arguments (always with the client certificate: harmless when not asked for).
    pub fn cli_args(&self) -> Vec<String> {
        vec![
            "--tls".into(),
            "--cacert".into(),
            self.path("ca.crt"),
            "--cert".into(),
            self.path("client.crt"),
            "--key".into(),
            self.path("client.key"),
        ]
    }
}

impl Options {
    /// A node with `cluster-enabled no`.
    pub fn standalone() -> Options {
        Options {
            standalone: true,
            ..Options::default()
        }
    }

    /// A node whose cluster bus cannot be reached: it listens on 16390 but tells its peers 16379,
    /// where nothing listens, so no handshake with it ever completes.
    pub fn hidden_bus() -> Options {
        Options {
            extra: vec![
                "--cluster-port".into(),
                "16390".into(),
                "--cluster-announce-bus-port".into(),
                "16379".into(),
            ],
            ..Options::default()
        }
    }
}

impl RedisNode {
    /// Starts a fresh node at `ip:6379` in a new temporary directory.
    pub fn start(ip: &str, options: &Options) -> RedisNode {
        let tmp = tempfile::Builder::new()
            .prefix("redis-node-")
            .tempdir()
            .unwrap();
        let dir = tmp.path().to_path_buf();
        let mut node = RedisNode::start_in(ip, &dir, options);
        node._tmp = Some(tmp);
        node
    }

    /// Starts a node at `ip:6379` on an existing data directory (a pod rescheduled with its volume).
    pub fn start_in(ip: &str, dir: &Path, options: &Options) -> RedisNode {
        let addr: SocketAddr = format!("{ip}:6379").parse().unwrap();
        let server = options.server.unwrap_or_else(Server::under_test);
        let redis_server = which(server.server_binary());
        let port = if options.tls.is_some() { "0" } else { "6379" };
        let mut args: Vec<String> = vec![
            "--port".into(),
            port.into(),
            "--bind".into(),
            ip.into(),
            "--bind-source-addr".into(),
            ip.into(),
            "--protected-mode".into(),
            "no".into(),
            "--dir".into(),
            dir.display().to_string(),
            "--logfile".into(),
            "redis.log".into(),
            "--appendonly".into(),
            "yes".into(),
            "--cluster-enabled".into(),
            if options.standalone { "no" } else { "yes" }.into(),
            "--cluster-config-file".into(),
            "nodes.conf".into(),
            "--cluster-node-timeout".into(),
            NODE_TIMEOUT_MS.to_string(),
            // A replica's first sync otherwise waits 5 s for more replicas to join the transfer.
            "--repl-diskless-sync-delay".into(),
            "0".into(),
        ];
        if let Some(pw) = &options.password {
            args.extend([
                "--requirepass".into(),
                pw.clone(),
                "--masterauth".into(),
                pw.clone(),
            ]);
        }
        if let Some(tls) = &options.tls {
            args.extend(tls.server_args(ip));
        }
        args.extend(options.extra.iter().cloned());
        if options.stdin.is_some() {
            args.push("-".into());
        }
        let mut child = Command::new(&redis_server)
            .args(&args)
            .current_dir(dir)
            .stdin(if options.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", redis_server.display()));
        if let (Some(text), Some(mut stdin)) = (&options.stdin, child.stdin.take()) {
            use std::io::Write;
            stdin.write_all(text.as_bytes()).unwrap();
        }
        let node = RedisNode {
            addr,
            dir: dir.to_path_buf(),
            cli_user: options.cli_user.clone(),
            bootstrap_user: options.bootstrap_user.clone(),
            tls: options.tls.clone(),
            child: Some(child),
            _tmp: None,
        };
        node.wait_up();
        node
    }

    fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
        panic!("redis-server at {} did not start:\n{log}", self.addr);
    }

    /// `host:port` as the bootstrap takes it.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// Runs `redis-cli` against this node and returns its output (trimmed).
    pub fn cli(&self, args: &[&str]) -> String {
        self.cli_at(self.addr, args)
    }

    /// Runs `redis-cli` against `addr` with this node's user and TLS files (another node of the
    /// same cluster, say, or one that moved).
    pub fn cli_at(&self, addr: SocketAddr, args: &[&str]) -> String {
        self.access().cli_at(addr, args)
    }

    /// What `redis-cli` needs to log in to this node: its user and TLS files.
    pub fn access(&self) -> Access {
        Access {
            cli_user: self.cli_user.clone(),
            tls: self.tls.clone(),
        }
    }

    /// Kills the process (SIGKILL: no shutdown wait) and keeps the data directory.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the process as the kubelet does, with SIGTERM, and waits for it to exit (a master
    /// waits for its replicas up to `shutdown-timeout`); SIGKILL after 30 s. Keeps the data.
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the process (SIGSTOP): it keeps its sockets but answers nothing, as a node stalled
    /// on a slow disk does. [`RedisNode::resume`] thaws it.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a node frozen by [`RedisNode::pause`] (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .expect("a running node")
            .id()
            .to_string();
        let sent = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(sent.success(), "kill {signal} {pid}");
    }

    /// Kills this node and starts it again on `ip` with the same data directory; keeps the temp dir.
    pub fn restart_on(&mut self, ip: &str, options: &Options) {
        self.kill();
        let tmp = self._tmp.take();
        let mut node = RedisNode::start_in(ip, &self.dir, options);
        node._tmp = tmp;
        std::mem::swap(self, &mut node);
    }

    /// The node's ID.
    pub fn id(&self) -> String {
        self.cli(&["cluster", "myid"])
    }
}

/// The harness's way into a node with `redis-cli`: its user and TLS files.
#[derive(Clone)]
pub struct Access {
    cli_user: Option<(String, String)>,
    tls: Option<TlsFiles>,
}

impl Access {
    /// Runs `redis-cli` against `addr` and returns its output (trimmed).
    pub fn cli_at(&self, addr: SocketAddr, args: &[&str]) -> String {
        let tls = self
            .tls
            .as_ref()
            .map(TlsFiles::cli_args)
            .unwrap_or_default();
        let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
        let args = [tls.as_slice(), args].concat();
        let args = args.as_slice();
        match &self.cli_user {
            None => redis_cli(addr, None, args),
            Some((user, password)) => {
                let args = [&["--user", user.as_str()], args].concat();
                redis_cli(addr, Some(password), &args)
            }
        }
    }
}

impl Drop for RedisNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `count` fresh cluster-enabled nodes at 127.0.`block`.11, .12, ...
pub fn start_nodes(block: u8, count: usize) -> Vec<RedisNode> {
    start_nodes_with(block, count, &Options::default())
}

/// Like [`start_nodes`], with options.
pub fn start_nodes_with(block: u8, count: usize, options: &Options) -> Vec<RedisNode> {
    let ips: Vec<String> = (0..count).map(|i| ip(block, i)).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = ips
            .iter()
            .map(|ip| s.spawn(move || RedisNode::start(ip, options)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// The loopback IP of pod `index` in `block`.
pub fn ip(block: u8, index: usize) -> String {
    format!("127.0.{block}.{}", 11 + index)
}

/// `BOOTSTRAP_NODES` for these nodes.
pub fn node_list(nodes: &[RedisNode]) -> String {
    nodes
        .iter()
        .map(RedisNode::host_port)
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs `redis-cli` and returns its trimmed output.
pub fn redis_cli(addr: SocketAddr, password: Option<&str>, args: &[&str]) -> String {
    let mut cmd = Command::new(which(Server::under_test().cli_binary()));
    cmd.args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()]);
    if let Some(pw) = password {
        cmd.env("REDISCLI_AUTH", pw);
    }
    let out = cmd.args(args).output().expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What a run of the binary printed and how it ended.
pub struct Run {
    /// The exit code.
    pub code: i32,
    /// Standard output (the report).
    pub stdout: String,
    /// Standard error (the logs).
    pub stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The real binary with exactly these environment variables (plus PATH and `RUST_LOG=info`).
pub fn bootstrap_command(env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_redis-cluster-bootstrap"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd.env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs the real binary with exactly these environment variables (plus PATH), and a hard limit.
pub fn bootstrap(env: &[(&str, &str)]) -> Run {
    run_binary(&[], env)
}

/// Runs the real binary with these arguments (`handover`, `ready`, `rejoin`: the pod commands)
/// and exactly these environment variables (plus PATH), and a hard limit.
pub fn run_binary(args: &[&str], env: &[(&str, &str)]) -> Run {
    let child = bootstrap_command(env)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the bootstrap binary");
    let out = wait_with_limit(child, Duration::from_secs(240));
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn wait_with_limit(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if rx.recv_timeout(limit).is_err() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    });
    let out = child
        .wait_with_output()
        .expect("wait for the bootstrap binary");
    let _ = tx.send(());
    out
}

/// The path of a program, or a panic that says how to install it.
pub fn which(program: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join(program);
        if p.is_file() {
            return p;
        }
    }
    for dir in ["/usr/bin", "/usr/local/bin", "/usr/sbin"] {
        let p = Path::new(dir).join(program);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "{program} is not installed: run scripts/install-deps.sh (redis-server and redis-tools from \
         Debian, valkey-server and valkey-tools from bookworm-backports; the test script does)"
    );
}

/// One node's view as `(id, role, master id, slots)` rows, for comparing topologies.
pub fn topology(node: &RedisNode) -> Vec<(String, String, String, String)> {
    let mut rows: Vec<_> = node
        .cli(&["cluster", "nodes"])
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let role = if f[2].contains("master") {
                "master"
            } else {
                "replica"
            };
            (
                f[0].to_string(),
                role.to_string(),
                f[3].to_string(),
                f[8..].join(" "),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// Runs `redis-cli --cluster check` and returns (success, output).
pub fn cluster_check(node: &RedisNode) -> (bool, String) {
    let mut cmd = Command::new(which(Server::under_test().cli_binary()));
    if let Some((user, password)) = &node.cli_user {
        cmd.args(["--user", user]).env("REDISCLI_AUTH", password);
    }
    if let Some(tls) = &node.tls {
        cmd.args(tls.cli_args());
    }
    let out = cmd
        .args(["--cluster", "check", &node.host_port()])
        .output()
        .expect("run redis-cli --cluster check");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let ok = out.status.success() && !text.contains("[ERR]") && !text.contains("[WARNING]");
    (ok, text)
}
