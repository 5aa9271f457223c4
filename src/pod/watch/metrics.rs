//! What `watch` has done, for Prometheus: `GET /metrics` on `BOOTSTRAP_METRICS_ADDRESS`, in the
//! OpenMetrics text format, so a monitoring stack can alert on a certificate that did not load or
//! is about to expire, and on users whose passwords are not what the Secret says.
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `redis_cluster_bootstrap_tls_reloads_total` | counter | the node reloaded its TLS files |
//! | `redis_cluster_bootstrap_tls_reload_failures_total` | counter | renewed files did not load (the node kept its certificate), or could not be read |
//! | `redis_cluster_bootstrap_tls_serving_not_after_seconds` | gauge | notAfter of the certificate the node presents (Unix seconds) |
//! | `redis_cluster_bootstrap_tls_serving_matches_files` | gauge | 1 when the node presents the certificate of its `tls-cert-file` |
//! | `redis_cluster_bootstrap_users_in_sync{user}` | gauge | 1 when the node accepts exactly the passwords of the user's file |
//! | `redis_cluster_bootstrap_masterauth_in_sync` | gauge | 1 when `masterauth` is the first password of the `masteruser`'s file |
//!
//! The last two exist only when the watcher follows users (`BOOTSTRAP_USERS_DIR`): a watcher of
//! certificates alone has no `masterauth` to compare, and must not report it out of sync. A user's
//! line appears at the first check of the node; each is 0 from the moment a change is found until
//! the node has taken it, so a change the node refuses stays 0 (the alert
//! `RedisClusterPasswordsNotInSync`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tracing::{debug, error, info};

/// The metrics, cheap to clone (clones share the values).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Successful reloads of the node's TLS files.
    pub tls_reloads: Counter,
    /// Renewals that did not load, or files that could not be read.
    pub tls_reload_failures: Counter,
    /// notAfter of the certificate the node presents.
    pub tls_serving_not_after: Gauge,
    /// 1 when the node presents its `tls-cert-file`'s certificate.
    pub tls_serving_matches_files: Gauge,
    /// Per user: 1 when the node accepts exactly its file's passwords.
    users_in_sync: Family<Vec<(String, String)>, Gauge>,
    /// 1 when `masterauth` is the first password of the `masteruser`'s file.
    pub masterauth_in_sync: Gauge,
}

impl Metrics {
    /// Every metric, registered, at zero; the users' two only when the watcher follows users
    /// (`users`).
    pub fn new(users: bool) -> Metrics {
        let tls_reloads = Counter::default();
        let tls_reload_failures = Counter::default();
        let tls_serving_not_after = Gauge::default();
        let tls_serving_matches_files = Gauge::default();
        let users_in_sync = Family::default();
        let masterauth_in_sync = Gauge::default();
        let mut registry = Registry::with_prefix("redis_cluster_bootstrap");
        registry.register(
            "tls_reloads",
            "Reloads of the node's TLS files (renewed certificates picked up)",
            tls_reloads.clone(),
        );
        registry.register(
            "tls_reload_failures",
            "TLS files that did not load: the node keeps serving its previous certificate",
            tls_reload_failures.clone(),
        );
        registry.register(
            "tls_serving_not_after_seconds",
            "notAfter of the certificate the node presents, in Unix seconds",
            tls_serving_not_after.clone(),
        );
        registry.register(
            "tls_serving_matches_files",
            "1 when the node presents the certificate of its tls-cert-file",
            tls_serving_matches_files.clone(),
        );
        if users {
            registry.register(
                "users_in_sync",
                "1 when the node accepts exactly the passwords of the user's file",
                users_in_sync.clone(),
            );
            registry.register(
                "masterauth_in_sync",
                "1 when masterauth is the first password of the masteruser's file",
                masterauth_in_sync.clone(),
            );
        }
        Metrics {
            registry: Arc::new(registry),
            tls_reloads,
            tls_reload_failures,
            tls_serving_not_after,
            tls_serving_matches_files,
            users_in_sync,
            masterauth_in_sync,
        }
    }

    /// Records whether `user`'s passwords on the node are its file's.
    pub fn user_in_sync(&self, user: &str, in_sync: bool) {
        self.users_in_sync
            .get_or_create(&vec![("user".to_string(), user.to_string())])
            .set(i64::from(in_sync));
    }

    /// The text Prometheus scrapes.
    pub fn text(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    fn respond(&self, path: &str) -> http::Response<Full<Bytes>> {
        let (status, content_type, body) = if path == "/metrics" {
            (
                http::StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                self.text(),
            )
        } else {
            (
                http::StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "not found: the metrics are at /metrics\n".to_string(),
            )
        };
        let mut response = http::Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
        response
    }
}

/// Serves `GET /metrics` on `addr` until the program ends. A port that cannot be bound is said
/// (an error line) and the watcher goes on without it: it must never stop for its metrics.
pub async fn serve(addr: SocketAddr, metrics: Metrics) {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            error!(
                "watch: cannot serve metrics on BOOTSTRAP_METRICS_ADDRESS={addr}: {e}; going on \
                 without them"
            );
            return;
        }
    };
    info!("watch: metrics on http://{addr}/metrics");
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    debug!(error = %e, "watch: metrics: accept failed");
                    continue;
                }
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let response = metrics.respond(request.uri().path());
                    async move { Ok::<_, Infallible>(response) }
                });
                let served = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                if let Err(e) = served {
                    debug!(error = %e, "watch: metrics: a connection ended badly");
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_every_metric_with_its_prefix() {
        let metrics = Metrics::new(true);
        metrics.tls_reload_failures.inc();
        metrics.tls_serving_not_after.set(1_925_078_400);
        metrics.user_in_sync("app", true);
        let text = metrics.text();
        for line in [
            "redis_cluster_bootstrap_tls_reloads_total 0",
            "redis_cluster_bootstrap_tls_reload_failures_total 1",
            "redis_cluster_bootstrap_tls_serving_not_after_seconds 1925078400",
            "redis_cluster_bootstrap_tls_serving_matches_files 0",
            "redis_cluster_bootstrap_users_in_sync{user=\"app\"} 1",
            "redis_cluster_bootstrap_masterauth_in_sync 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
        }
        assert_eq!(metrics.respond("/").status(), http::StatusCode::NOT_FOUND);
    }

    #[test]
    fn a_watcher_of_certificates_alone_reports_no_users() {
        let text = Metrics::new(false).text();
        assert!(
            text.contains("redis_cluster_bootstrap_tls_reloads_total 0"),
            "{text}"
        );
        assert!(
            !text.contains("masterauth") && !text.contains("users_in_sync"),
            "{text}"
        );
    }
}
