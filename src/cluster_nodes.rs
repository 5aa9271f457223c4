//! Parses the output of `CLUSTER NODES`: one line per node the answering node knows.
//!
//! `<id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> <slot>...`
//! Slots are `0-5460` or `42`; open slots appear as `[42->-<id>]` (migrating) or `[42-<-<id>]`
//! (importing). Pure code.

use std::net::{IpAddr, SocketAddr};

use crate::slots::SlotRange;

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    /// The 40-character node ID.
    pub id: String,
    /// The advertised client address; `None` while unknown (`:0`, or a fresh node's empty IP).
    pub addr: Option<SocketAddr>,
    /// The announced hostname (`cluster-announce-hostname`), when the node announces one.
    pub hostname: Option<String>,
    /// The flags.
    pub flags: Flags,
    /// For a replica, the ID of its master.
    pub master_id: Option<String>,
    /// The node's config epoch.
    pub config_epoch: u64,
    /// Whether the cluster-bus link to it is connected.
    pub connected: bool,
    /// The slots it serves.
    pub slots: Vec<SlotRange>,
    /// Open (migrating or importing) slots, as printed.
    pub open_slots: Vec<String>,
}

/// The flags of a `CLUSTER NODES` line that matter to the bootstrap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// The line describes the answering node itself.
    pub myself: bool,
    /// A master.
    pub master: bool,
    /// A replica.
    pub replica: bool,
    /// Suspected failing (`fail?`).
    pub pfail: bool,
    /// Agreed failing (`fail`).
    pub fail: bool,
    /// Still in the handshake (its ID is temporary).
    pub handshake: bool,
    /// No address known.
    pub noaddr: bool,
}

impl Flags {
    /// True when nothing is wrong with the node as seen from here.
    pub fn healthy(&self) -> bool {
        !(self.pfail || self.fail || self.handshake || self.noaddr)
    }
}

impl ClusterNode {
    /// True if this node serves no slot.
    pub fn has_slots(&self) -> bool {
        !self.slots.is_empty()
    }

    /// The pod this node announces: the first DNS label of its announced hostname. A node
    /// announces its pod name (`redis-app-0`, the base) or a name under the domain clients outside
    /// Kubernetes use (`redis-app-0.redis.example.com`, components/external-access); both are pod
    /// `redis-app-0`, so what the nodes tell clients never changes which pod an ID belongs to.
    pub fn announced_pod(&self) -> Option<&str> {
        let hostname = self.hostname.as_deref()?;
        hostname.split('.').next().filter(|pod| !pod.is_empty())
    }

    /// True when the announced hostname names `node` (a pod name, or a static host as written):
    /// the hostname itself, or its first label ([`ClusterNode::announced_pod`]).
    pub fn announces(&self, node: &str) -> bool {
        self.hostname.as_deref() == Some(node) || self.announced_pod() == Some(node)
    }
}

/// Parses the whole `CLUSTER NODES` reply.
pub fn parse(text: &str) -> Result<Vec<ClusterNode>, String> {
    let lines = || text.lines().map(str::trim).filter(|l| !l.is_empty());
    // Sized exactly: the convergence loop holds N views of N lines at once.
    let mut nodes = Vec::with_capacity(lines().count());
    for line in lines() {
        nodes.push(parse_line(line)?);
    }
    Ok(nodes)
}

fn parse_line(line: &str) -> Result<ClusterNode, String> {
    let fields: Vec<&str> = line.split(' ').collect();
    if fields.len() < 8 {
        return Err(format!("unexpected CLUSTER NODES line: {line:?}"));
    }
    let mut flags = Flags::default();
    for flag in fields[2].split(',') {
        match flag {
            "myself" => flags.myself = true,
            "master" => flags.master = true,
            "slave" | "replica" => flags.replica = true,
            "fail?" => flags.pfail = true,
            "fail" => flags.fail = true,
            "handshake" => flags.handshake = true,
            "noaddr" => flags.noaddr = true,
            _ => {}
        }
    }
    let mut slots = Vec::new();
    let mut open_slots = Vec::new();
    for slot in &fields[8..] {
        if slot.starts_with('[') {
            open_slots.push(slot.to_string());
        } else if let Some((a, b)) = slot.split_once('-') {
            slots.push(number(a, line)?..=number(b, line)?);
        } else {
            let s = number(slot, line)?;
            slots.push(s..=s);
        }
    }
    Ok(ClusterNode {
        id: fields[0].to_string(),
        addr: address(fields[1]),
        hostname: hostname(fields[1]),
        flags,
        master_id: Some(fields[3]).filter(|m| *m != "-").map(str::to_string),
        config_epoch: fields[6].parse().unwrap_or(0),
        connected: fields[7] == "connected",
        slots,
        open_slots,
    })
}

fn number(text: &str, line: &str) -> Result<u16, String> {
    text.parse()
        .map_err(|_| format!("unexpected slot {text:?} in CLUSTER NODES line: {line:?}"))
}

/// `ip:port@cport[,hostname]`; the IP may be IPv6 (`::1:6379@16379`) or empty.
fn address(field: &str) -> Option<SocketAddr> {
    let client = field.split(['@', ',']).next()?;
    let (ip, port) = client.rsplit_once(':')?;
    let ip: IpAddr = ip.parse().ok()?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    Some(SocketAddr::new(ip, port))
}

/// The `hostname` of `ip:port@cport,hostname`; Redis prints an empty one when none is announced
/// (and nodes.conf-style `key=value` extras are not a hostname).
fn hostname(field: &str) -> Option<String> {
    field
        .split(',')
        .nth(1)
        .filter(|h| !h.is_empty() && !h.contains('='))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORMED: &str = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.11:6379@16379 myself,master - 0 1426238317000 1 connected 0-5460
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.14:6379@16379 slave 07c37dfeb235213a872192d90877d0cd55635b91 0 1426238316232 1 connected
292f8b365bb7edb5e285caf0b7e6ddc7265a2f4c ::1:6379@16379,redis-app-2 master,fail? - 1426238317741 1426238316000 3 disconnected 10923-16383 42 [93->-e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca]
";

    #[test]
    fn reads_ids_roles_links_and_slots() {
        let nodes = parse(FORMED).unwrap();
        assert_eq!(nodes.len(), 3);
        assert!(nodes[0].flags.myself && nodes[0].flags.master);
        assert_eq!(nodes[0].slots, vec![0..=5460]);
        assert_eq!(nodes[0].addr, Some("127.0.0.11:6379".parse().unwrap()));
        assert_eq!(nodes[1].master_id.as_deref(), Some(nodes[0].id.as_str()));
        assert!(nodes[1].flags.replica && nodes[1].connected);
        assert!(nodes[2].flags.pfail && !nodes[2].connected && !nodes[2].flags.healthy());
        assert_eq!(nodes[2].slots, vec![10923..=16383, 42..=42]);
        assert_eq!(nodes[2].open_slots.len(), 1);
        assert_eq!(nodes[2].config_epoch, 3);
    }

    #[test]
    fn reads_the_announced_hostname_when_there_is_one() {
        let nodes = parse(FORMED).unwrap();
        assert_eq!(nodes[2].hostname.as_deref(), Some("redis-app-2"));
        assert_eq!(nodes[2].addr, Some("[::1]:6379".parse().unwrap()));
        assert_eq!(nodes[0].hostname, None);
        let empty = parse("a 127.0.0.1:6379@16379, master - 0 0 1 connected").unwrap();
        assert_eq!(empty[0].hostname, None);
        assert_eq!(empty[0].addr, Some("127.0.0.1:6379".parse().unwrap()));
    }

    #[test]
    fn the_pod_is_the_announced_names_first_label_in_both_forms() {
        let line = |hostname: &str| {
            parse(&format!(
                "a 10.0.0.5:6379@16379,{hostname} master - 0 0 1 connected"
            ))
            .unwrap()[0]
                .clone()
        };
        let short = line("redis-app-2");
        let external = line("redis-app-2.redis.example.com");
        for node in [&short, &external] {
            assert_eq!(node.announced_pod(), Some("redis-app-2"));
            assert!(node.announces("redis-app-2"));
            assert!(!node.announces("redis-app-20") && !node.announces("redis-app"));
        }
        // A static host written in full is announced in full.
        assert!(external.announces("redis-app-2.redis.example.com"));
        assert!(!short.announces("redis-app-2.redis.example.com"));
        assert_eq!(parse(FORMED).unwrap()[0].announced_pod(), None);
    }

    #[test]
    fn a_fresh_node_has_no_address_yet() {
        let line =
            "c5b4ae5e1b7ec5a6c4fbc3d7b4d4a5a9e0a1b2c3 :6379@16379 myself,master - 0 0 0 connected";
        let nodes = parse(line).unwrap();
        assert_eq!(nodes[0].addr, None);
        assert!(nodes[0].slots.is_empty());
    }

    #[test]
    fn ipv6_addresses_keep_their_colons() {
        let line = "a 2001:db8::5:6379@16379 master - 0 0 1 connected";
        assert_eq!(
            parse(line).unwrap()[0].addr,
            Some("[2001:db8::5]:6379".parse().unwrap())
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse("not a cluster nodes line").is_err());
    }
}
