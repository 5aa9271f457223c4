//! Debian's `prometheus-redis-exporter` beside one node, as components/monitoring runs the
//! sidecar: the sidecar's environment as rendered, its own node only, listening on the pod's
//! address at port 9121 (a pod's containers share its IP).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running exporter; killed when dropped (or stopped with its pod).
pub struct Exporter {
    /// Where Prometheus scrapes it.
    pub addr: SocketAddr,
    child: Child,
}

impl Exporter {
    /// Starts the exporter for the node at `node` with the sidecar's environment `env` (its
    /// `REDIS_ADDR` and listen address replaced by this pod's), and waits until it answers.
    pub fn start(node: SocketAddr, env: &[(String, String)]) -> Exporter {
        let addr = SocketAddr::new(node.ip(), 9121);
        let mut command = Command::new(crate::common::which("prometheus-redis-exporter"));
        command.env_clear();
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command
            .env("REDIS_ADDR", format!("redis://{node}"))
            .env("REDIS_EXPORTER_WEB_LISTEN_ADDRESS", addr.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus-redis-exporter");
        let exporter = Exporter { addr, child };
        let started = Instant::now();
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "the exporter at {addr} never listened"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        exporter
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
