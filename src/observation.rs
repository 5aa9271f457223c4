//! What one node says about itself and the cluster, parsed from `INFO`, `CLUSTER MYID`,
//! `CLUSTER NODES` and `CLUSTER INFO`. Pure code: [`crate::observe`] fetches the text.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::cluster_nodes::{self, ClusterNode};
use crate::server::Server;

/// Everything the planner and the convergence check need to know of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// `cluster_enabled:1` in `INFO cluster`.
    pub cluster_enabled: bool,
    /// The node's ID (`CLUSTER MYID`); empty when cluster mode is off.
    pub id: String,
    /// Total keys over all databases (`INFO keyspace`).
    pub keys: u64,
    /// For a replica, whether `master_link_status:up`.
    pub master_link_up: Option<bool>,
    /// For a replica, where it replicates from (`master_host:master_port` of `INFO replication`).
    pub master_addr: Option<SocketAddr>,
    /// The node's own view of the cluster (`CLUSTER NODES`).
    pub nodes: Vec<ClusterNode>,
    /// `CLUSTER INFO`.
    pub info: ClusterInfo,
    /// The server and its release (`INFO server`), when it says.
    pub server: Option<Server>,
}

/// The fields of `CLUSTER INFO` that matter here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterInfo {
    /// `cluster_state:ok`.
    pub state_ok: bool,
    /// `cluster_slots_assigned`.
    pub slots_assigned: u64,
    /// `cluster_slots_ok`.
    pub slots_ok: u64,
    /// `cluster_known_nodes`.
    pub known_nodes: u64,
    /// `cluster_my_epoch`.
    pub my_epoch: u64,
}

impl Observation {
    /// Parses a node that has cluster mode disabled, from its `INFO` alone.
    pub fn standalone(info: &str) -> Observation {
        let fields = fields(info);
        Observation {
            cluster_enabled: false,
            id: String::new(),
            keys: keys(info),
            master_link_up: None,
            master_addr: None,
            nodes: Vec::new(),
            info: ClusterInfo::default().with(&fields),
            server: Server::from_info(&fields),
        }
    }

    /// Parses the replies of a cluster-enabled node.
    pub fn parse(
        info: &str,
        id: &str,
        cluster_nodes: &str,
        cluster_info: &str,
    ) -> Result<Observation, String> {
        let fields = fields(info);
        let master_link_up = (fields.get("role") == Some(&"slave"))
            .then(|| fields.get("master_link_status") == Some(&"up"));
        Ok(Observation {
            cluster_enabled: fields.get("cluster_enabled") == Some(&"1"),
            id: id.trim().to_string(),
            keys: keys(info),
            master_link_up,
            master_addr: master_addr(&fields),
            nodes: cluster_nodes::parse(cluster_nodes)?,
            info: ClusterInfo::default().with(&self::fields(cluster_info)),
            server: Server::from_info(&fields),
        })
    }

    /// The node's own line of `CLUSTER NODES`.
    pub fn myself(&self) -> Option<&ClusterNode> {
        self.nodes.iter().find(|n| n.flags.myself)
    }

    /// The observation with only the node's own line of its view: what a caller keeps of a node
    /// once its view has been checked (its role, master and slots), at 1/N of the memory.
    pub fn without_view(mut self) -> Observation {
        self.nodes.retain(|n| n.flags.myself);
        self.nodes.shrink_to_fit();
        self
    }

    /// True when the node knows only itself.
    pub fn alone(&self) -> bool {
        self.nodes.iter().all(|n| n.flags.myself)
    }

    /// The line about node `id`, if this node knows it.
    pub fn knows(&self, id: &str) -> Option<&ClusterNode> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

/// Every node's ID, in the order of `observations`.
pub fn ids(observations: &[Observation]) -> Vec<String> {
    observations.iter().map(|o| o.id.clone()).collect()
}

impl ClusterInfo {
    fn with(mut self, fields: &HashMap<&str, &str>) -> ClusterInfo {
        let number = |key: &str| fields.get(key).and_then(|v| v.parse().ok()).unwrap_or(0);
        self.state_ok = fields.get("cluster_state") == Some(&"ok");
        self.slots_assigned = number("cluster_slots_assigned");
        self.slots_ok = number("cluster_slots_ok");
        self.known_nodes = number("cluster_known_nodes");
        self.my_epoch = number("cluster_my_epoch");
        self
    }
}

/// `master_host` and `master_port` of a replica, when the host is an IP.
fn master_addr(fields: &HashMap<&str, &str>) -> Option<SocketAddr> {
    let ip = fields.get("master_host")?.parse().ok()?;
    let port = fields.get("master_port")?.parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

/// `key:value` lines of INFO-style replies.
pub fn fields(text: &str) -> HashMap<&str, &str> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.trim_end().split_once(':'))
        .collect()
}

/// Sums `keys=` of every `dbN:keys=..,expires=..` line (`INFO keyspace`).
pub fn keys(info: &str) -> u64 {
    info.lines()
        .filter(|l| l.starts_with("db"))
        .filter_map(|l| l.split_once(':'))
        .filter_map(|(_, v)| v.split(',').find_map(|kv| kv.strip_prefix("keys=")))
        .filter_map(|n| n.parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# Replication\r\nrole:slave\r\nmaster_host:127.0.0.11\r\nmaster_port:6379\r\nmaster_link_status:down\r\n\
        # Cluster\r\ncluster_enabled:1\r\n# Keyspace\r\ndb0:keys=12,expires=0,avg_ttl=0\r\ndb3:keys=3,expires=1,avg_ttl=5\r\n";
    const CLUSTER_INFO: &str = "cluster_state:ok\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:16384\r\n\
        cluster_known_nodes:6\r\ncluster_my_epoch:2\r\n";
    const NODES: &str = "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.14:6379@16379 myself,slave 07c3 0 0 1 connected\n";

    #[test]
    fn reads_keys_role_link_and_cluster_info() {
        let o = Observation::parse(
            INFO,
            "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca\n",
            NODES,
            CLUSTER_INFO,
        )
        .unwrap();
        assert!(o.cluster_enabled);
        assert_eq!(o.keys, 15);
        assert_eq!(o.master_link_up, Some(false));
        assert_eq!(o.master_addr, Some("127.0.0.11:6379".parse().unwrap()));
        assert_eq!(o.id, "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca");
        assert!(o.info.state_ok);
        assert_eq!((o.info.known_nodes, o.info.my_epoch), (6, 2));
        assert!(o.alone() && o.myself().is_some());
    }

    #[test]
    fn a_standalone_node_reports_its_keys() {
        let o = Observation::standalone(
            "# Cluster\r\ncluster_enabled:0\r\n# Keyspace\r\ndb0:keys=7,expires=0\r\n",
        );
        assert!(!o.cluster_enabled);
        assert_eq!(o.keys, 7);
    }
}
