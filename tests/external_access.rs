//! Cluster clients outside Kubernetes (components/external-access), on real nodes: TLS nodes that
//! announce `redis-app-N.<domain>` with hostname endpoints, an SNI router standing in for Traefik
//! and configured from `overlays/production`'s rendered `IngressRouteTCP` objects, and a real
//! cluster client (redis-rs over TLS) that knows only `redis-app-0.<domain>:6379` and resolves
//! every name under the domain to the router.
//!
//! It writes and reads back a key in each of the 16384 slots; every connection it opens goes
//! through the router (the nodes' `CLIENT LIST` shows no other client address); it keeps working
//! after a `CLUSTER FAILOVER` and, with a new client, after every node restarted on a new IP and
//! the bootstrap re-meshed them. The bootstrap forms the cluster of these nodes as of any other,
//! and in Kubernetes mode it replaces a pod that lost its volume, knowing `redis-app-N.<domain>`
//! for pod `redis-app-N`.
//!
//! Needs `kubectl` (the rendering). Loopback blocks 245 (the nodes; the router on .1, connecting
//! from .2), 246 (the nodes after the restart) and 247 (Kubernetes mode: the fake API server and
//! DNS on .1).

mod common;
mod dns;
mod fake_api;
mod kustomize;
mod sni_router;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures::{StreamExt, TryStreamExt};
use redis::AsyncCommands;
use redis::cluster_async::ClusterConnection;
use serde_json::Value;
use sni_router::{SniRouter, passthrough_routes};

const BLOCK: u8 = 245;
const RESTARTED: u8 = 246;
const KUBERNETES: u8 = 247;
const PODS: usize = 6;

/// The domain set in components/external-access, as rendered.
fn external_domain(docs: &[Value]) -> String {
    let config = docs
        .iter()
        .find(|d| {
            d["kind"] == "ConfigMap"
                && d["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("redis-external-access"))
        })
        .expect("overlays/production renders the ConfigMap redis-external-access");
    config["data"]["domain"].as_str().unwrap().to_string()
}

/// A CA, `client.crt`/`.key`, and for each address a certificate naming it (what the bootstrap
/// checks in static mode) and `*.<domain>` (what clients check through the router), as
/// components/tls's certificate does with the component.
fn certificates(dir: &Path, ips: &[String], domain: &str) -> (TlsFiles, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    // OpenSSL (the nodes, on the bus) finds no issuer with an empty name.
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "external access test CA");
    let ca_pem = params.self_signed(&ca_key).unwrap().pem();
    let issuer = rcgen::Issuer::new(params, ca_key);
    std::fs::write(dir.join("ca.crt"), &ca_pem).unwrap();
    let issue = |file: &str, names: Vec<String>| {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        std::fs::write(dir.join(format!("{file}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
    };
    issue("client", vec!["client".to_string()]);
    for ip in ips {
        issue(ip, vec![ip.clone(), format!("*.{domain}")]);
    }
    let files = TlsFiles {
        dir: dir.to_path_buf(),
        auth_clients: false,
    };
    (files, ca_pem)
}

/// The options that make pod `i` announce `redis-app-i.<domain>` and hand it to clients, as
/// components/external-access does.
fn announced(domain: &str, i: usize) -> Vec<String> {
    vec![
        "--cluster-announce-hostname".into(),
        format!("redis-app-{i}.{domain}"),
        "--cluster-preferred-endpoint-type".into(),
        "hostname".into(),
    ]
}

/// Pod `i`'s options: TLS, announcing `redis-app-i.<domain>` and handing clients that name, as
/// production's startup does with the component.
fn pod_options(files: &TlsFiles, domain: &str, i: usize) -> Options {
    Options {
        tls: Some(files.clone()),
        extra: announced(domain, i),
        ..Options::default()
    }
}

/// Runs `future` on `rt`, failing the test after a minute rather than hanging it.
fn within<T>(rt: &tokio::runtime::Runtime, what: &str, future: impl Future<Output = T>) -> T {
    eprintln!("{what}");
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(60), future).await })
        .unwrap_or_else(|_| panic!("{what}: no answer within a minute"))
}

/// The ordinal of pod `redis-app-N`.
fn ordinal(pod: &str) -> usize {
    pod.strip_prefix("redis-app-").unwrap().parse().unwrap()
}

/// The client's DNS: every name under the domain is the router, as a wildcard record pointing at
/// Traefik makes it; any other name (a pod IP handed out as an endpoint) is an error, and every
/// name asked is remembered.
struct ToRouter {
    router: SocketAddr,
    domain: String,
    asked: Arc<Mutex<Vec<String>>>,
}

impl redis::io::AsyncDNSResolver for ToRouter {
    fn resolve<'a, 'b: 'a>(
        &'a self,
        host: &'b str,
        _port: u16,
    ) -> redis::RedisFuture<'a, Box<dyn Iterator<Item = SocketAddr> + Send + 'a>> {
        self.asked.lock().unwrap().push(host.to_string());
        let under = host.ends_with(&format!(".{}", self.domain));
        let router = self.router;
        Box::pin(async move {
            if !under {
                let why = format!("{host} is not under the external domain");
                return Err(std::io::Error::new(std::io::ErrorKind::NotFound, why).into());
            }
            let found: Box<dyn Iterator<Item = SocketAddr> + Send> =
                Box::new(std::iter::once(router));
            Ok(found)
        })
    }
}

/// A cluster client outside Kubernetes: it knows `redis-app-0.<domain>:6379` alone, trusts the
/// CA, and resolves names with [`ToRouter`].
async fn external_client(domain: &str, ca_pem: &str, resolver: ToRouter) -> ClusterConnection {
    let seed = format!("rediss://redis-app-0.{domain}:6379");
    redis::cluster::ClusterClientBuilder::new(vec![seed])
        .certs(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca_pem.as_bytes().to_vec()),
        })
        .async_dns_resolver(resolver)
        .build()
        .unwrap()
        .get_async_connection()
        .await
        .unwrap()
}

/// CRC16/XMODEM, Redis Cluster's key hash.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// One key for each of the 16384 slots.
fn one_key_per_slot() -> Vec<String> {
    let mut keys: Vec<Option<String>> = vec![None; 16384];
    let mut missing = keys.len();
    let mut i = 0u64;
    while missing > 0 {
        let key = format!("k{i}");
        let slot = usize::from(crc16(key.as_bytes()) % 16384);
        if keys[slot].is_none() {
            keys[slot] = Some(key);
            missing -= 1;
        }
        i += 1;
    }
    keys.into_iter().map(Option::unwrap).collect()
}

/// Sets every key to `value:key`, 64 at a time.
async fn write_all(conn: &ClusterConnection, keys: &[String], value: &str) {
    futures::stream::iter(keys)
        .map(|key| {
            let mut conn = conn.clone();
            async move { conn.set::<_, _, ()>(key, format!("{value}:{key}")).await }
        })
        .buffer_unordered(64)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
}

/// How many keys read back as `value:key`.
async fn read_all(conn: &ClusterConnection, keys: &[String], value: &str) -> usize {
    let found: Vec<bool> = futures::stream::iter(keys)
        .map(|key| {
            let mut conn = conn.clone();
            async move {
                let got: Option<String> = conn.get(key).await?;
                Ok::<_, redis::RedisError>(got == Some(format!("{value}:{key}")))
            }
        })
        .buffer_unordered(64)
        .try_collect()
        .await
        .unwrap();
    found.into_iter().filter(|ok| *ok).count()
}

/// The client addresses of a node's connections, leaving out replication links (flags S and M)
/// and the `CLIENT LIST` asking.
fn client_addresses(node: &RedisNode) -> Vec<String> {
    node.cli(&["client", "list"])
        .lines()
        .filter(|l| !l.contains("cmd=client|list"))
        .filter(|l| {
            let flags = l.split(' ').find_map(|f| f.strip_prefix("flags=")).unwrap();
            !flags.contains('S') && !flags.contains('M')
        })
        .map(|l| {
            let addr = l.split(' ').find_map(|f| f.strip_prefix("addr=")).unwrap();
            addr.rsplit_once(':').unwrap().0.to_string()
        })
        .collect()
}

/// Every client connection of every node comes from the router, and every master has one.
fn assert_only_the_router_connects(nodes: &[RedisNode], router: &SniRouter) {
    let source = router.source.to_string();
    for (i, node) in nodes.iter().enumerate() {
        let clients = client_addresses(node);
        assert!(
            clients.iter().all(|a| *a == source),
            "redis-app-{i} has clients from outside the router ({source}): {clients:?}"
        );
        if node.cli(&["role"]).starts_with("master") {
            assert!(
                !clients.is_empty(),
                "master redis-app-{i} has no client through the router"
            );
        }
    }
    assert_eq!(
        router.refused(),
        Vec::<String>::new(),
        "connections without a route"
    );
}

/// Every name the client asked for is a pod's name under the domain, and so is every SNI the
/// router forwarded.
fn assert_only_pod_names(asked: &Mutex<Vec<String>>, router: &SniRouter, domain: &str) {
    let pod_name = |name: &str| {
        name.strip_suffix(&format!(".{domain}"))
            .and_then(|pod| pod.strip_prefix("redis-app-"))
            .is_some_and(|n| n.parse::<usize>().is_ok_and(|n| n < PODS))
    };
    let asked = asked.lock().unwrap().clone();
    assert!(asked.iter().all(|n| pod_name(n)), "{asked:?}");
    let forwarded = router.forwarded();
    assert!(forwarded.keys().all(|n| pod_name(n)), "{forwarded:?}");
}

#[test]
fn a_cluster_client_outside_kubernetes_reaches_every_node_through_the_sni_router() {
    let production = kustomize::render("overlays/production");
    let domain = external_domain(&production);
    let routes = passthrough_routes(&production);
    let mut pods: Vec<usize> = routes.iter().map(|(_, pod)| ordinal(pod)).collect();
    pods.sort();
    assert_eq!(pods, (0..PODS).collect::<Vec<_>>(), "{routes:?}");

    let dir = tempfile::tempdir().unwrap();
    let ips: Vec<String> = [BLOCK, RESTARTED]
        .iter()
        .flat_map(|&b| (0..PODS).map(move |i| ip(b, i)))
        .collect();
    let (files, ca_pem) = certificates(dir.path(), &ips, &domain);
    let options: Vec<Options> = (0..PODS).map(|i| pod_options(&files, &domain, i)).collect();
    let mut nodes: Vec<RedisNode> = std::thread::scope(|s| {
        let started: Vec<_> = options
            .iter()
            .enumerate()
            .map(|(i, o)| s.spawn(move || RedisNode::start(&ip(BLOCK, i), o)))
            .collect();
        started.into_iter().map(|h| h.join().unwrap()).collect()
    });

    // The bootstrap forms these nodes as any others; they announce the external names.
    let formed = run_static(&nodes);
    let log = std::fs::read_to_string(nodes[3].dir.join("redis.log")).unwrap_or_default();
    assert_eq!(formed.code, 0, "{formed:?}\n{log}");
    assert!(formed.stdout.contains("decision=fresh"), "{formed:?}");
    assert!(
        nodes[1]
            .cli(&["cluster", "nodes"])
            .contains(&format!(",redis-app-0.{domain} ")),
        "the nodes announce redis-app-N.{domain}"
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listen: SocketAddr = format!("127.0.{BLOCK}.1:6379").parse().unwrap();
    let router = SniRouter::start(listen, format!("127.0.{BLOCK}.2").parse().unwrap());
    for (sni, pod) in &routes {
        router.route(sni, nodes[ordinal(pod)].addr);
    }
    let asked = Arc::new(Mutex::new(Vec::new()));
    let resolver = || ToRouter {
        router: router.addr,
        domain: domain.clone(),
        asked: asked.clone(),
    };
    let keys = one_key_per_slot();

    // Every slot written and read back, every connection through the router.
    let client = external_client(&domain, &ca_pem, resolver());
    let conn = within(&rt, "connect through the router", client);
    within(&rt, "write", write_all(&conn, &keys, "first"));
    let read = within(&rt, "read", read_all(&conn, &keys, "first"));
    assert_eq!(read, keys.len());
    assert_only_the_router_connects(&nodes, &router);
    assert_only_pod_names(&asked, &router, &domain);

    // A replica takes over its master; the same client follows it, through the router.
    let replica = nodes
        .iter()
        .position(|n| n.cli(&["role"]).starts_with("slave"))
        .unwrap();
    assert_eq!(nodes[replica].cli(&["cluster", "failover"]), "OK");
    wait_until("the failover", Duration::from_secs(30), || {
        nodes[replica].cli(&["role"]).starts_with("master")
    });
    wait_until("every node to agree", Duration::from_secs(30), || {
        cluster_check(&nodes[0]).0
    });
    // One request first: it meets MOVED and the client learns the new map. With 64 requests in
    // flight, all meeting MOVED to a node it had no connection to yet, the redis-rs 1.8 client
    // hangs (no error, over a minute) whenever the nodes hand out hostnames: seen without the
    // router and without TLS too, and never with IP endpoints; so a client matter, not routing.
    within(
        &rt,
        "one write after the failover",
        write_all(&conn, &keys[..1], "second"),
    );
    within(
        &rt,
        "write after the failover",
        write_all(&conn, &keys, "second"),
    );
    let read = within(
        &rt,
        "read after the failover",
        read_all(&conn, &keys, "second"),
    );
    assert_eq!(read, keys.len());
    assert!(
        router
            .forwarded()
            .contains_key(&format!("redis-app-{replica}.{domain}")),
        "the promoted replica is reached by its name: {:?}",
        router.forwarded()
    );
    assert_only_the_router_connects(&nodes, &router);
    drop(conn);

    // Every pod restarts on a new IP; the routes follow (as a Service's endpoints do) and the
    // bootstrap re-meshes the nodes, which still announce the external names.
    wait_replicated(&nodes);
    for node in nodes.iter_mut() {
        node.kill();
    }
    for (i, node) in nodes.iter_mut().enumerate() {
        node.restart_on(&ip(RESTARTED, i), &options[i]);
        router.route(&format!("redis-app-{i}.{domain}"), node.addr);
    }
    let remeshed = run_static(&nodes);
    assert_eq!(remeshed.code, 0, "{remeshed:?}");
    assert!(
        remeshed.stdout.contains("decision=reconnect"),
        "{remeshed:?}"
    );
    let (ok, text) = cluster_check(&nodes[0]);
    assert!(ok, "{text}");
    let client = external_client(&domain, &ca_pem, resolver());
    let conn = within(&rt, "connect after the re-mesh", client);
    let read = within(
        &rt,
        "read after the re-mesh",
        read_all(&conn, &keys, "second"),
    );
    assert_eq!(read, keys.len());
    assert_only_the_router_connects(&nodes, &router);
    assert_only_pod_names(&asked, &router, &domain);
}

/// Kubernetes mode, with nodes announcing `redis-app-N.<domain>` (plaintext: the names matter
/// here, not TLS): the report names every pod; pod 4 comes back empty with a new node ID (its
/// volume lost) and the next run forgets the old ID and makes the new node the replica its shard
/// lacks, which it does only when the old ID's announced name is pod `redis-app-4`'s.
#[test]
fn the_bootstrap_maps_external_names_to_pods_and_replaces_a_lost_volume() {
    let domain = "redis.example.com";
    let api = fake_api::FakeApi::start(KUBERNETES, "infra");
    let dns = dns::FakeDns::start(KUBERNETES);
    let options: Vec<Options> = (0..PODS)
        .map(|i| Options {
            extra: announced(domain, i),
            ..Options::default()
        })
        .collect();
    let mut nodes: Vec<RedisNode> = (0..PODS)
        .map(|i| RedisNode::start(&ip(KUBERNETES, i), &options[i]))
        .collect();
    for (i, node) in nodes.iter().enumerate() {
        let host = format!("redis-app-{i}.redis-service.infra.svc.cluster.local");
        dns.add(&host, node.addr.ip());
    }
    api.show(&fake_api::Stage::ready(PODS as i32, PODS));
    let kubeconfig = api.kubeconfig("infra");
    let server = dns.addr.to_string();
    let run = || {
        bootstrap(&[
            ("KUBECONFIG", kubeconfig.as_str()),
            ("BOOTSTRAP_DNS_SERVER", server.as_str()),
            ("BOOTSTRAP_READY_TIMEOUT", "60s"),
            ("BOOTSTRAP_CONVERGE_TIMEOUT", "60s"),
        ])
    };
    let formed = run();
    assert_eq!(formed.code, 0, "{formed:?}");
    for (i, node) in nodes.iter().enumerate() {
        let row = formed
            .stdout
            .lines()
            .find(|l| l.contains(&node.host_port()))
            .unwrap_or_else(|| panic!("no row for {}: {formed:?}", node.addr));
        assert!(row.starts_with(&format!("redis-app-{i} ")), "{row}");
    }

    let lost = nodes[4].id();
    wipe(&mut nodes[4]);
    // Back on the same address only once the others agree it failed: a node at the old address
    // answering with a new ID keeps their links to the old ID alive.
    let others: Vec<&RedisNode> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 4)
        .map(|(_, n)| n)
        .collect();
    wait_failed(&others, &lost);
    nodes[4].restart_on(&ip(KUBERNETES, 4), &options[4]);
    assert_ne!(nodes[4].id(), lost);
    let replaced = run();
    assert_eq!(replaced.code, 0, "{replaced:?}");
    assert!(replaced.stdout.contains("decision=replace"), "{replaced:?}");
    let (ok, text) = cluster_check(&nodes[0]);
    assert!(ok, "{text}");
    for node in &nodes {
        assert!(!node.cli(&["cluster", "nodes"]).contains(&lost));
    }
    let events = api.events();
    let reasons: Vec<_> = events.iter().filter_map(|e| e.reason.as_deref()).collect();
    assert_eq!(reasons, ["Formed", "Replaced"], "{events:#?}");
}
