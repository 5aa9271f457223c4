//! Turns host names into addresses over DNS (hickory-resolver, no libc), retrying while records lag.
//!
//! Used for the pods' names in Kubernetes mode and for the hosts of `BOOTSTRAP_NODES` in static mode.
//! The resolver follows `/etc/resolv.conf` unless `BOOTSTRAP_DNS_SERVER` names a server. A pod's
//! record can appear seconds after the pod is Ready, so a name that does not resolve is retried with
//! backoff until `BOOTSTRAP_READY_TIMEOUT`; negative answers are never cached for that reason.
//! IPv4 is asked first, then IPv6, so single-stack clusters of either kind work. IP literals skip
//! DNS. Two nodes at one address is an error: the cluster would hold one node twice.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use tracing::{debug, info};

use crate::config::Settings;
use crate::node::{HostPort, Node};
use crate::{Error, Result};

/// How long one query may take before it counts as a failed attempt (the backoff retries it).
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Static mode's `(name, host, port)` triples for [`resolve_all`]: position i plays pod i; an IP
/// has no better name than `node-<i>`, a host name is kept as given.
pub fn static_targets(list: &[HostPort]) -> Vec<(String, String, u16)> {
    list.iter()
        .enumerate()
        .map(|(i, hp)| {
            let name = match hp.ip() {
                Some(_) => format!("node-{i}"),
                None => hp.to_string(),
            };
            (name, hp.host.clone(), hp.port)
        })
        .collect()
}

/// Resolves `(name, host, port)` triples, in order, into nodes.
///
/// `name` is what people read (the pod's name); `host` is what DNS is asked. All names are
/// resolved at once, each retried until `settings.ready_timeout` has passed.
pub async fn resolve_all(
    targets: &[(String, String, u16)],
    settings: &Settings,
) -> Result<Vec<Node>> {
    let started = Instant::now();
    let needs_dns = targets.iter().any(|(_, host, _)| literal(host).is_none());
    let resolver = if needs_dns {
        Some(resolver(settings)?)
    } else {
        None
    };
    let lookups = targets.iter().map(|(name, host, port)| {
        let resolver = resolver.as_ref();
        async move {
            let ip = match (literal(host), resolver) {
                (Some(ip), _) => ip,
                (None, Some(resolver)) => {
                    lookup(resolver, name, host, settings.ready_timeout).await?
                }
                (None, None) => unreachable!("a resolver is built whenever a host is a name"),
            };
            // The certificate is checked against the host as written, not the IP reached.
            Ok::<Node, Error>(
                Node::new(name.clone(), SocketAddr::new(ip, *port)).with_tls_name(host),
            )
        }
    });
    let nodes = futures::future::try_join_all(lookups).await?;
    distinct(&nodes)?;
    if needs_dns {
        info!(
            nodes = nodes.len(),
            took = %humantime::format_duration(Duration::from_millis(started.elapsed().as_millis() as u64)),
            "resolved every node"
        );
    }
    Ok(nodes)
}

/// The host as an IP, when it is a literal (IPv6 with or without brackets).
fn literal(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// The resolver: the system's configuration, or only the server of `BOOTSTRAP_DNS_SERVER`.
fn resolver(settings: &Settings) -> Result<TokioResolver> {
    let mut builder = match settings.dns_server {
        Some(server) => {
            let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                .into_iter()
                .map(|mut c| {
                    c.port = server.port();
                    c
                })
                .collect();
            let config = ResolverConfig::from_name_servers(vec![NameServerConfig::new(
                server.ip(),
                true,
                connections,
            )]);
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        }
        None => TokioResolver::builder_tokio().map_err(|e| {
            Error::Dns(format!(
                "cannot read the system's DNS configuration (/etc/resolv.conf): {e}; \
                 set BOOTSTRAP_DNS_SERVER=ip:port"
            ))
        })?,
    };
    let options = builder.options_mut();
    options.ip_strategy = LookupIpStrategy::Ipv4thenIpv6;
    // A name that does not exist yet must be asked again, not answered from the cache.
    options.negative_max_ttl = Some(Duration::ZERO);
    options.timeout = QUERY_TIMEOUT;
    options.attempts = 1;
    builder
        .build()
        .map_err(|e| Error::Dns(format!("cannot build the DNS resolver: {e}")))
}

/// Asks for `host` until it has an address or `within` has passed (at least one full query).
async fn lookup(
    resolver: &TokioResolver,
    name: &str,
    host: &str,
    within: Duration,
) -> Result<IpAddr> {
    let within = within.max(QUERY_TIMEOUT);
    let policy = backoff::ExponentialBackoffBuilder::new()
        .with_initial_interval(Duration::from_millis(100))
        .with_max_interval(Duration::from_secs(2))
        .with_max_elapsed_time(None)
        .build();
    let mut failures = 0u32;
    let mut last_error = None;
    let attempts = backoff::future::retry_notify(
        policy,
        || async {
            let answer = resolver.lookup_ip(host).await.map_err(|e| {
                backoff::Error::transient(if e.is_no_records_found() {
                    "no A or AAAA record".to_string()
                } else {
                    e.to_string()
                })
            })?;
            answer
                .iter()
                .next()
                .ok_or_else(|| backoff::Error::transient("the answer has no address".to_string()))
        },
        |error: String, _| {
            failures += 1;
            // The first failure is news; the retries that follow only matter when debugging.
            if failures == 1 {
                info!(node = name, host, %error, "no address yet; retrying until the ready timeout");
            } else {
                debug!(node = name, host, %error, failures, "still no address");
            }
            last_error = Some(error);
        },
    );
    // The timeout bounds a query in flight too, not only the pauses between queries.
    let outcome = tokio::time::timeout(within, attempts).await;
    match outcome {
        Ok(Ok(ip)) => {
            info!(node = name, host, %ip, failures, "resolved");
            Ok(ip)
        }
        Ok(Err(error)) => Err(Error::Dns(format!("{host} (node {name}): {error}"))),
        Err(_) => Err(Error::Dns(format!(
            "{host} (node {name}) has no address after {} of retries: {}",
            humantime::format_duration(Duration::from_millis(within.as_millis() as u64)),
            last_error.as_deref().unwrap_or("no answer")
        ))),
    }
}

/// Fails when two nodes resolved to the same address.
fn distinct(nodes: &[Node]) -> Result<()> {
    for (i, node) in nodes.iter().enumerate() {
        if let Some(other) = nodes[..i].iter().find(|other| other.addr == node.addr) {
            return Err(Error::Dns(format!(
                "{} and {} both resolve to {}: one address cannot be two nodes \
                 (a stale DNS record, or two names for one server)",
                other.name, node.name, node.addr
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings::from_vars(Vec::new()).unwrap()
    }

    fn targets(hosts: &[&str]) -> Vec<(String, String, u16)> {
        hosts
            .iter()
            .enumerate()
            .map(|(i, host)| (format!("node-{i}"), host.to_string(), 6379))
            .collect()
    }

    #[tokio::test]
    async fn ip_literals_skip_dns_and_keep_their_order() {
        let nodes = resolve_all(&targets(&["10.0.0.2", "fd00::1", "[fd00::2]"]), &settings())
            .await
            .unwrap();
        let addrs: Vec<String> = nodes.iter().map(|n| n.addr.to_string()).collect();
        assert_eq!(addrs, ["10.0.0.2:6379", "[fd00::1]:6379", "[fd00::2]:6379"]);
        assert_eq!(nodes[1].name, "node-1");
        assert_eq!(nodes[2].tls_name, "fd00::2");
    }

    #[tokio::test]
    async fn one_address_for_two_nodes_is_an_error() {
        let err = resolve_all(&targets(&["10.0.0.2", "10.0.0.3", "10.0.0.2"]), &settings())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Dns(_)));
        assert!(
            err.to_string()
                .contains("node-0 and node-2 both resolve to 10.0.0.2:6379"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_name_that_never_resolves_fails_after_the_timeout() {
        let mut settings = settings();
        // Nothing listens there: every query times out or is refused.
        settings.dns_server = Some("127.0.69.1:9".parse().unwrap());
        settings.ready_timeout = Duration::from_millis(300);
        let started = Instant::now();
        let err = resolve_all(
            &targets(&["redis-app-0.redis-service.infra.svc.cluster.local."]),
            &settings,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Dns(_)), "{err}");
        assert!(
            err.to_string().contains("(node node-0) has no address"),
            "{err}"
        );
        assert!(started.elapsed() < QUERY_TIMEOUT + Duration::from_secs(1));
    }
}
