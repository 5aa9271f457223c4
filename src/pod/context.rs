//! Which node a pod command works on, and how it names and finds the node's peers.
//!
//! In a pod (no `BOOTSTRAP_NODES`) the local node is `127.0.0.1:BOOTSTRAP_REDIS_PORT`, its
//! certificate checked against the pod's DNS name (`$POD_NAME.<service>.<namespace>.svc.<domain>`,
//! the name the bootstrap checks too); a peer is named after the pod name it announces
//! (`cluster-announce-hostname`, `redis-app-3` or `redis-app-3.<external domain>`) and found
//! through the headless Service's DNS, which publishes not-ready pods too. In static mode
//! `BOOTSTRAP_NODES` lists the local node first and, for `rejoin`, its peers after it; a peer
//! reached through `CLUSTER NODES` is checked against its IP, as written addresses are.

use std::net::SocketAddr;
use std::time::Duration;

use crate::cluster_nodes::ClusterNode;
use crate::config::Settings;
use crate::kubernetes::namespace;
use crate::node::{HostPort, Node};
use crate::pod::PodCommand;
use crate::resolve;
use crate::{Error, Result};

/// How long one round of peer lookups may take: `rejoin` asks again on its next round.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// The local node and the way to its peers.
pub struct Context {
    /// The configuration (credentials, TLS, timeouts).
    pub settings: Settings,
    /// The node this pod runs.
    pub local: Node,
    /// Where its peers are.
    pub peers: Peers,
}

/// Where the local node's peers are.
pub enum Peers {
    /// Static mode: the addresses after the first of `BOOTSTRAP_NODES`.
    Listed(Vec<HostPort>),
    /// In a pod: the StatefulSet's pods, by name, through the headless Service.
    Pods(PodDns),
}

/// The DNS names of the StatefulSet's pods.
pub struct PodDns {
    service: String,
    namespace: String,
    domain: String,
    port: u16,
}

impl PodDns {
    /// `<pod>.<service>.<namespace>.svc.<domain>`.
    pub fn name_of(&self, pod: &str) -> String {
        format!(
            "{pod}.{}.{}.svc.{}",
            self.service, self.namespace, self.domain
        )
    }
}

impl Context {
    /// The context of `command` from the settings (and, in a pod, `POD_NAME` or `HOSTNAME`).
    pub async fn new(command: PodCommand, settings: Settings) -> Result<Context> {
        match settings.nodes.clone() {
            Some(nodes) => Context::listed(command, settings, nodes).await,
            None => {
                let pod = pod_name()?;
                Context::in_pod(settings, &pod)
            }
        }
    }

    async fn listed(
        command: PodCommand,
        settings: Settings,
        nodes: Vec<HostPort>,
    ) -> Result<Context> {
        if command != PodCommand::Rejoin && nodes.len() != 1 {
            return Err(Error::Config(format!(
                "BOOTSTRAP_NODES lists {} nodes: expected exactly one for `{}`, the local node \
                 (or leave it unset in a pod)",
                nodes.len(),
                command.name()
            )));
        }
        let (first, rest) = nodes.split_first().expect("node_list is never empty");
        let target = [(first.to_string(), first.host.clone(), first.port)];
        let local = resolve::resolve_all(&target, &settings).await?.remove(0);
        Ok(Context {
            settings,
            local,
            peers: Peers::Listed(rest.to_vec()),
        })
    }

    /// The context inside pod `pod` (its name).
    pub fn in_pod(settings: Settings, pod: &str) -> Result<Context> {
        let namespace = match settings.namespace.clone() {
            Some(ns) => ns,
            None => namespace::from_service_account(namespace::SERVICE_ACCOUNT_NAMESPACE)
                .ok_or_else(|| {
                    Error::Config(
                        "BOOTSTRAP_NAMESPACE is not set and the pod's namespace file is not \
                         mounted: set BOOTSTRAP_NAMESPACE (fieldRef metadata.namespace)"
                            .into(),
                    )
                })?,
        };
        let dns = PodDns {
            service: settings.service.clone(),
            namespace,
            domain: settings.cluster_domain.clone(),
            port: settings.redis_port,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], settings.redis_port));
        let local = Node::new(pod, addr).with_tls_name(&dns.name_of(pod));
        Ok(Context {
            settings,
            local,
            peers: Peers::Pods(dns),
        })
    }

    /// A peer as the local node's `CLUSTER NODES` shows it, ready to connect to; `None` while
    /// its address is unknown.
    pub fn peer(&self, line: &ClusterNode) -> Option<Node> {
        let addr = line.addr?;
        let pod = line.announced_pod();
        let name = pod.map_or_else(|| addr.to_string(), str::to_string);
        let node = Node::new(name, addr);
        Some(match (&self.peers, pod) {
            (Peers::Pods(dns), Some(pod)) => node.with_tls_name(&dns.name_of(pod)),
            _ => node,
        })
    }

    /// Where the peers are now: the listed addresses, or the current DNS records of the pods the
    /// local node knows by name (`known`: the hostnames in its `CLUSTER NODES`). A name that does
    /// not resolve yet is left for the next round.
    pub async fn peers_now(&self, known: &[ClusterNode]) -> Vec<Node> {
        let targets: Vec<(String, String, u16)> = match &self.peers {
            Peers::Listed(list) => list
                .iter()
                .map(|hp| (hp.to_string(), hp.host.clone(), hp.port))
                .collect(),
            Peers::Pods(dns) => {
                let mut pods: Vec<&str> = known
                    .iter()
                    .filter(|n| !n.flags.myself)
                    .filter_map(ClusterNode::announced_pod)
                    .collect();
                pods.sort_unstable();
                pods.dedup();
                pods.into_iter()
                    .map(|pod| (pod.to_string(), dns.name_of(pod), dns.port))
                    .collect()
            }
        };
        let settings = Settings {
            ready_timeout: LOOKUP_TIMEOUT,
            ..self.settings.clone()
        };
        let lookups = targets.into_iter().map(|target| {
            let settings = &settings;
            async move {
                let found = resolve::resolve_all(std::slice::from_ref(&target), settings).await;
                found
                    .map_err(|e| tracing::debug!(peer = %target.0, error = %e, "not resolved yet"))
                    .ok()
                    .and_then(|mut nodes| nodes.pop())
            }
        });
        futures::future::join_all(lookups)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}

/// The pod's name: `POD_NAME` (the StatefulSet passes it), else `HOSTNAME` (a pod's hostname is
/// its name).
fn pod_name() -> Result<String> {
    ["POD_NAME", "HOSTNAME"]
        .iter()
        .filter_map(|var| std::env::var(var).ok())
        .map(|v| v.trim().to_string())
        .find(|v| !v.is_empty())
        .ok_or_else(|| {
            Error::Config(
                "neither BOOTSTRAP_NODES nor POD_NAME is set: in a pod, set POD_NAME \
                 (fieldRef metadata.name); elsewhere, set BOOTSTRAP_NODES to the local node"
                    .into(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> ClusterNode {
        crate::cluster_nodes::parse(text).unwrap().remove(0)
    }

    #[test]
    fn a_pod_checks_its_own_and_its_peers_dns_names() {
        let settings =
            Settings::from_vars([("BOOTSTRAP_NAMESPACE".into(), "infra".into())]).unwrap();
        let ctx = Context::in_pod(settings, "redis-app-0").unwrap();
        assert_eq!(ctx.local.addr.to_string(), "127.0.0.1:6379");
        assert_eq!(
            ctx.local.tls_name,
            "redis-app-0.redis-service.infra.svc.cluster.local"
        );
        for announced in ["redis-app-3", "redis-app-3.redis.example.com"] {
            let peer = ctx
                .peer(&line(&format!(
                    "{} 10.0.0.4:6379@16379,{announced} slave {} 0 0 1 connected",
                    "b".repeat(40),
                    "a".repeat(40)
                )))
                .unwrap();
            assert_eq!(peer.name, "redis-app-3");
            assert_eq!(peer.addr.to_string(), "10.0.0.4:6379");
            assert_eq!(
                peer.tls_name,
                "redis-app-3.redis-service.infra.svc.cluster.local"
            );
        }
    }

    #[test]
    fn a_peer_without_a_hostname_is_checked_against_its_ip() {
        let settings =
            Settings::from_vars([("BOOTSTRAP_NAMESPACE".into(), "infra".into())]).unwrap();
        let ctx = Context::in_pod(settings, "redis-app-0").unwrap();
        let peer = ctx
            .peer(&line(&format!(
                "{} 10.0.0.4:6379@16379 master - 0 0 1 connected 0-5460",
                "b".repeat(40)
            )))
            .unwrap();
        assert_eq!(peer.tls_name, "10.0.0.4");
        let unknown = line(&format!(
            "{} :0@0 master,noaddr - 0 0 1 disconnected",
            "c".repeat(40)
        ));
        assert!(ctx.peer(&unknown).is_none());
    }
}
