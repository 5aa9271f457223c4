//! The tests' Traefik: a TCP router that reads the SNI of each TLS connection's ClientHello and
//! forwards the connection, bytes untouched (TLS passthrough), to the backend its route names.
//! Its routes come from the rendered `IngressRouteTCP` objects ([`passthrough_routes`]), so the
//! test checks the manifests' routing, not a copy of it.
//!
//! It connects to backends from its own source address, so the nodes' `CLIENT LIST` tells a
//! connection through the router from any other; and it counts connections per SNI. A
//! connection whose SNI no route names (or that sends none) is closed, as Traefik closes it.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// What the router has seen, shared with its connections.
#[derive(Default)]
struct State {
    /// SNI → backend.
    routes: HashMap<String, SocketAddr>,
    /// Connections forwarded, per SNI.
    forwarded: BTreeMap<String, usize>,
    /// Connections closed for want of a route (the SNI, or "" when none was sent).
    refused: Vec<String>,
}

/// A running router; it stops when dropped.
pub struct SniRouter {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// The address it connects to backends from.
    pub source: IpAddr,
    state: Arc<Mutex<State>>,
    /// Its own runtime, as Traefik is its own process: a client that blocks its runtime's
    /// threads cannot stall the router it waits for.
    _runtime: tokio::runtime::Runtime,
}

impl SniRouter {
    /// Listens on `addr`; connects to backends from `source`.
    pub fn start(addr: SocketAddr, source: IpAddr) -> SniRouter {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(TcpListener::bind(addr))
            .expect("bind the router");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(forward(client, source, shared.clone()));
            }
        });
        SniRouter {
            addr,
            source,
            state,
            _runtime: runtime,
        }
    }

    /// Routes connections for `sni` to `backend` (replacing an earlier route, as Traefik follows a
    /// Service's endpoints when a pod comes back on a new IP).
    pub fn route(&self, sni: &str, backend: SocketAddr) {
        let mut state = self.state.lock().unwrap();
        state.routes.insert(sni.to_string(), backend);
    }

    /// Connections forwarded so far, per SNI.
    pub fn forwarded(&self) -> BTreeMap<String, usize> {
        self.state.lock().unwrap().forwarded.clone()
    }

    /// Connections closed for want of a route, by the SNI they sent ("" for none).
    pub fn refused(&self) -> Vec<String> {
        self.state.lock().unwrap().refused.clone()
    }
}

/// One connection: read the ClientHello, pick the backend by its SNI, then copy both ways.
async fn forward(mut client: TcpStream, source: IpAddr, state: Arc<Mutex<State>>) {
    let Ok(hello) = client_hello(&mut client).await else {
        return;
    };
    let sni = server_name(&hello[5..]).unwrap_or_default();
    let backend = {
        let mut state = state.lock().unwrap();
        match state.routes.get(&sni).copied() {
            Some(backend) => {
                *state.forwarded.entry(sni.clone()).or_default() += 1;
                backend
            }
            None => {
                state.refused.push(sni);
                return;
            }
        }
    };
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let Ok(mut server) = socket.connect(backend).await else {
        return;
    };
    if server.write_all(&hello).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

/// The first TLS record (header included), which holds the ClientHello.
async fn client_hello(client: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut record = vec![0u8; 5];
    client.read_exact(&mut record).await?;
    if record[0] != 0x16 {
        return Err(std::io::Error::other("not a TLS handshake"));
    }
    let length = u16::from_be_bytes([record[3], record[4]]) as usize;
    record.resize(5 + length, 0);
    client.read_exact(&mut record[5..]).await?;
    Ok(record)
}

/// The host name of the server_name extension of a ClientHello handshake message.
fn server_name(handshake: &[u8]) -> Option<String> {
    let mut r = Reader(handshake);
    (r.u8()? == 1).then_some(())?; // ClientHello
    r.skip(3 + 2 + 32)?; // length, client version, random
    r.vector8()?; // session ID
    r.vector16()?; // cipher suites
    r.vector8()?; // compression methods
    let mut extensions = Reader(r.vector16()?);
    while let Some(kind) = extensions.u16() {
        let mut data = Reader(extensions.vector16()?);
        if kind == 0 {
            let mut list = Reader(data.vector16()?);
            (list.u8()? == 0).then_some(())?; // host_name
            return String::from_utf8(list.vector16()?.to_vec()).ok();
        }
    }
    None
}

/// A cursor over a byte slice; every read is `None` past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    /// A vector with a one-byte length, as TLS writes it.
    fn vector8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }
    /// A vector with a two-byte length.
    fn vector16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

/// The routes of rendered manifests that pass TLS through to one pod: `(SNI, pod)` for every
/// `IngressRouteTCP` route `HostSNI(`name`)` with `tls.passthrough`, whose Service selects a pod
/// by `statefulset.kubernetes.io/pod-name`. Routes to a Service of many pods (the guide's single
/// route) are left out: they reach no node in particular.
pub fn passthrough_routes(docs: &[Value]) -> Vec<(String, String)> {
    let service = |name: &str| {
        docs.iter()
            .find(|d| d["kind"] == "Service" && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("a route names Service {name}, which is not rendered"))
    };
    let mut routes = Vec::new();
    for route in docs.iter().filter(|d| d["kind"] == "IngressRouteTCP") {
        if route["spec"]["tls"]["passthrough"] != true {
            continue;
        }
        for rule in route["spec"]["routes"].as_array().unwrap() {
            let matched = rule["match"].as_str().unwrap();
            let sni = matched
                .strip_prefix("HostSNI(`")
                .and_then(|r| r.strip_suffix("`)"))
                .unwrap_or_else(|| panic!("not one HostSNI: {matched}"));
            let target = rule["services"][0]["name"].as_str().unwrap();
            let selector = &service(target)["spec"]["selector"];
            if let Some(pod) = selector["statefulset.kubernetes.io/pod-name"].as_str() {
                routes.push((sni.to_string(), pod.to_string()));
            }
        }
    }
    routes
}
