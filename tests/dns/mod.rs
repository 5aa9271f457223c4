//! A DNS server for the tests: the cluster's DNS, answering the pods' names
//! (`redis-app-0.redis-service.<ns>.svc.cluster.local`) with the loopback IPs of real redis-server
//! nodes.
//!
//! It is hickory-server's authoritative in-memory zone for `cluster.local.` over UDP and TCP on
//! `127.0.<block>.1:5353`, so answers (and NXDOMAIN for names that do not exist yet) are real DNS.
//! Records can be added while the binary runs, as a record appears after its pod is Ready.

#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{LowerName, Name, RData, Record};
use hickory_server::Server;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use tokio::runtime::Runtime;

/// The zone every pod name is in.
pub const ZONE: &str = "cluster.local.";

/// The test's DNS server; it stops when dropped.
pub struct FakeDns {
    /// Where it listens (UDP and TCP): the value of `BOOTSTRAP_DNS_SERVER`.
    pub addr: SocketAddr,
    zone: Arc<InMemoryZoneHandler>,
    serial: std::sync::atomic::AtomicU32,
    _server: Server<Catalog>,
    runtime: Runtime,
}

impl FakeDns {
    /// Serves an empty `cluster.local.` zone at `127.0.<block>.1:5353`.
    pub fn start(block: u8) -> FakeDns {
        FakeDns::start_in(&format!("127.0.{block}"))
    }

    /// Like [`FakeDns::start`], in the /24 `network` (`127.33.3`: at `127.33.3.1:5353`).
    pub fn start_in(network: &str) -> FakeDns {
        let addr: SocketAddr = format!("{network}.1:5353").parse().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let origin = Name::from_str(ZONE).unwrap();
        let mut zone =
            InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
        // A minimum TTL of 0: a "no such name" answer may not be cached.
        let soa = SOA::new(
            Name::from_str("ns.dns.cluster.local.").unwrap(),
            Name::from_str("hostmaster.cluster.local.").unwrap(),
            1,
            7200,
            1800,
            86400,
            0,
        );
        zone.upsert_mut(Record::from_rdata(origin.clone(), 30, RData::SOA(soa)), 1);
        let zone = Arc::new(zone);
        let mut catalog = Catalog::new();
        catalog.upsert(
            LowerName::new(&origin),
            vec![zone.clone() as Arc<dyn ZoneHandler>],
        );
        let server = runtime.block_on(async {
            let mut server = Server::new(catalog);
            server.register_socket(
                tokio::net::UdpSocket::bind(addr)
                    .await
                    .expect("bind DNS (udp)"),
            );
            let tcp = tokio::net::TcpListener::bind(addr)
                .await
                .expect("bind DNS (tcp)");
            server.register_listener(tcp, Duration::from_secs(5), 16);
            server
        });
        FakeDns {
            addr,
            zone,
            serial: 1.into(),
            _server: server,
            runtime,
        }
    }

    /// An A (or AAAA) record for `name` (absolute, with or without the final dot), with the
    /// zone serial it is published under.
    fn record(&self, name: &str, ip: IpAddr) -> (Record, u32) {
        let name = Name::from_str(&format!("{}.", name.trim_end_matches('.'))).unwrap();
        let serial = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        (Record::from_rdata(name, 5, RData::from(ip)), serial)
    }

    /// Adds an A (or AAAA) record for `name`, now.
    pub fn add(&self, name: &str, ip: IpAddr) {
        let (record, serial) = self.record(name, ip);
        let zone = self.zone.clone();
        self.runtime
            .block_on(async move { assert!(zone.upsert(record, serial).await) });
    }

    /// Adds the record after `delay`, in the background.
    pub fn add_after(&self, delay: Duration, name: &str, ip: IpAddr) {
        let (record, serial) = self.record(name, ip);
        let zone = self.zone.clone();
        self.runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            zone.upsert(record, serial).await;
        });
    }
}
