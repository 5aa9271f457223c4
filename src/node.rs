//! The nodes to bootstrap: a name (the pod's, or the host as given) and the address to reach it.
//!
//! [`HostPort`] is what a user writes in `BOOTSTRAP_NODES`; [`Node`] is what the pipeline works on
//! after DNS. The position of a node in the list is its "pod index". [`Place`] is where a pod runs
//! (its Kubernetes node and zone), when Kubernetes says so.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// A host (name or IP literal) and a port, as given by the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// A DNS name or an IP literal (IPv6 without brackets).
    pub host: String,
    /// The client port.
    pub port: u16,
}

impl FromStr for HostPort {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, port) = rest
                .split_once("]:")
                .ok_or_else(|| "an IPv6 address needs the form [addr]:port".to_string())?;
            host.parse::<std::net::Ipv6Addr>()
                .map_err(|_| format!("{host:?} is not an IPv6 address"))?;
            (host, port)
        } else {
            s.rsplit_once(':')
                .filter(|(host, _)| !host.contains(':'))
                .ok_or_else(|| "missing :port".to_string())?
        };
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{port:?} is not a port from 1 to 65535"))?;
        if host.is_empty() {
            return Err("missing host".into());
        }
        Ok(HostPort {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl HostPort {
    /// The host as an IP, when it is a literal (no DNS needed).
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

/// One node of the cluster-to-be: its name for people and its address for Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Pod name in Kubernetes mode, `host:port` as given in static mode.
    pub name: String,
    /// Where its client port listens; the cluster bus is this port + 10000.
    pub addr: SocketAddr,
    /// Where it runs; unknown in static mode.
    pub place: Place,
    /// The name its TLS certificate must carry: the pod's DNS name (no trailing dot) in Kubernetes
    /// mode, the host as written in static mode; the IP when nothing better is known.
    pub tls_name: String,
}

impl Node {
    /// Builds a node from a name and an address, its place unknown.
    pub fn new(name: impl Into<String>, addr: SocketAddr) -> Node {
        Node {
            name: name.into(),
            addr,
            place: Place::default(),
            tls_name: addr.ip().to_string(),
        }
    }

    /// The same node, its certificate expected to carry `host` (a DNS name, trailing dot dropped,
    /// or an IP, brackets dropped).
    pub fn with_tls_name(self, host: &str) -> Node {
        let host = host.trim_end_matches('.');
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Node {
            tls_name: host.to_string(),
            ..self
        }
    }
}

/// Where a pod runs: the failure domains that a master and its replica should not share.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Place {
    /// The Kubernetes node (`spec.nodeName`), when known.
    pub node: Option<String>,
    /// The node's `topology.kubernetes.io/zone` label, when the nodes could be read.
    pub zone: Option<String>,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name == self.addr.to_string() {
            write!(f, "{}", self.name)
        } else {
            write!(f, "{} ({})", self.name, self.addr)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_ipv4_and_bracketed_ipv6() {
        let a: HostPort = "redis-app-0.redis-service:6379".parse().unwrap();
        assert_eq!(
            (a.host.as_str(), a.port),
            ("redis-app-0.redis-service", 6379)
        );
        let b: HostPort = "[fd00::1]:7000".parse().unwrap();
        assert_eq!((b.host.as_str(), b.port), ("fd00::1", 7000));
        assert_eq!(b.to_string(), "[fd00::1]:7000");
        for bad in ["host", "host:0", ":6379", "fd00::1:6379", "[x]:1", "h:port"] {
            assert!(bad.parse::<HostPort>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_tls_name_is_the_host_without_its_trailing_dot_or_brackets() {
        let node = Node::new("redis-app-0", "10.0.0.2:6379".parse().unwrap());
        assert_eq!(node.tls_name, "10.0.0.2");
        let pod = node
            .clone()
            .with_tls_name("redis-app-0.redis-service.infra.svc.cluster.local.");
        assert_eq!(
            pod.tls_name,
            "redis-app-0.redis-service.infra.svc.cluster.local"
        );
        assert_eq!(node.with_tls_name("[fd00::1]").tls_name, "fd00::1");
    }
}
