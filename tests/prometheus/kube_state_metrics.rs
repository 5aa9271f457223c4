//! kube-state-metrics' series over HTTP, as the test sets them: there is no Kubernetes here to
//! read them from, so the test states what kube-state-metrics would say (its standard names and
//! labels) and changes it as the story goes (a pod moves, a Job fails).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// One series: its name, labels and value.
pub type Series = (String, Vec<(String, String)>, f64);

/// The endpoint; it stops when dropped.
pub struct KubeStateMetrics {
    /// Where it listens (`/metrics`, or any path).
    pub addr: SocketAddr,
    text: Arc<Mutex<String>>,
    _runtime: tokio::runtime::Runtime,
}

impl KubeStateMetrics {
    /// Serves no series yet at `addr`.
    pub fn start(addr: SocketAddr) -> KubeStateMetrics {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let text = Arc::new(Mutex::new(String::new()));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .expect("bind the kube-state-metrics endpoint");
        let served = text.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let served = served.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |_request| {
                        let body = served.lock().unwrap().clone();
                        async move {
                            Ok::<_, Infallible>(
                                hyper::Response::builder()
                                    .header("Content-Type", "text/plain; version=0.0.4")
                                    .body(Full::new(Bytes::from(body)))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        KubeStateMetrics {
            addr,
            text,
            _runtime: runtime,
        }
    }

    /// Serves exactly these series from now on, in the text exposition format.
    pub fn serve(&self, series: &[Series]) {
        let mut text = String::new();
        for (name, labels, value) in series {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            text.push_str(&format!("{name}{{{}}} {value}\n", labels.join(",")));
        }
        *self.text.lock().unwrap() = text;
    }
}
