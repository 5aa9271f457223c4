//! Kubernetes mode: finds the StatefulSet, waits for it to be Ready with a watch, and names its pods.
//!
//! [`discover`] is the whole of it, in four steps:
//!
//! 1. connect with the in-cluster ServiceAccount or a kubeconfig (rustls, no OpenSSL), and pick the
//!    namespace ([`namespace`]);
//! 2. read the StatefulSet once, to fail fast on a missing permission and to say what it wants;
//! 3. watch it until its rollout is done ([`rollout`], [`wait`]); on timeout, read the pods and say
//!    why each unready one is not ready ([`diagnosis`]);
//! 4. read where each pod runs (its Kubernetes node, and the node's zone when allowed:
//!    [`placement`]);
//! 5. resolve `<sts>-<i>.<service>.<ns>.svc.<domain>` for every pod ([`crate::resolve`]).
//!
//! API errors are sorted in [`api_error`]: a 403 is a configuration problem (exit 2) that names the
//! missing permission; everything else is retried with backoff until `BOOTSTRAP_READY_TIMEOUT`.
//!
//! Day 2: while a run changes the cluster it holds a Lease ([`lease`]), so two runs never act at
//! once, and a run that changes something or fails records an Event ([`events`]).

pub mod api_error;
pub mod diagnosis;
pub mod events;
pub mod lease;
pub mod namespace;
pub mod placement;
pub mod rollout;
mod wait;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};
use tracing::{info, warn};

use crate::config::Settings;
use crate::node::Node;
use crate::{Error, Result};

/// Every permission the binary uses on the API server: (API group, resource, verbs). The Role in
/// `manifests/` must grant exactly these; a test checks it.
///
/// - `get` statefulsets: the first read, which fails fast when the Role is wrong;
/// - `list`, `watch` statefulsets: waiting for readiness (kube's watcher lists, then watches);
/// - `list` pods: where each pod runs (`spec.nodeName`), and why pods are not ready when the wait
///   times out;
/// - `get`, `create`, `update` leases: holding `<statefulset>-bootstrap` while the run acts
///   ([`lease`]; get and update only on that name, [`lease::NAMED_VERBS`]);
/// - `create` events: one Event per run that changes something or fails ([`events`]).
pub const PERMISSIONS: &[(&str, &str, &[&str])] = &[
    ("apps", "statefulsets", &["get", "list", "watch"]),
    ("", "pods", &["list"]),
    (
        "coordination.k8s.io",
        "leases",
        &["get", "create", "update"],
    ),
    ("events.k8s.io", "events", &["create"]),
];

/// Permissions the binary uses when granted and does without otherwise, in the same form. The
/// ClusterRole of the Kustomize component `components/placement` must grant exactly these; a test
/// checks it.
///
/// - `get` nodes: the `topology.kubernetes.io/zone` of each pod's node, so that a replica is kept
///   out of its master's zone too. Nodes are cluster-scoped, hence a ClusterRole. Asked only with
///   `BOOTSTRAP_READ_NODES=true`, which the component sets beside its grant; a 403 then only
///   means zones are unknown.
pub const OPTIONAL_PERMISSIONS: &[(&str, &str, &[&str])] = &[("", "nodes", &["get"])];

/// The StatefulSet this run works on, for API calls and messages.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "statefulset {}/{}", self.namespace, self.name)
    }
}

/// Finds the StatefulSet, waits for it to be Ready, and returns its pods in order, resolved, each
/// with its place.
///
/// Readiness and DNS share one budget, `BOOTSTRAP_READY_TIMEOUT`.
pub async fn discover(settings: &Settings) -> Result<Vec<Node>> {
    let started = Instant::now();
    let (client, namespace) = connect(settings).await?;
    let target = Target {
        namespace,
        name: settings.statefulset.clone(),
    };
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &target.namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);

    // One budget for the first read, the wait and DNS: a hung API server cannot stretch it.
    let deadline = tokio::time::Instant::from_std(started + settings.ready_timeout);
    if let Ok(read) = tokio::time::timeout_at(deadline, read_once(&statefulsets, &target)).await {
        read?;
    }
    let ready = wait::until_ready(
        &statefulsets,
        &pods,
        &target,
        deadline,
        settings.ready_timeout,
    )
    .await?;
    let replicas = ready.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    info!(
        statefulset = %target.name,
        namespace = %target.namespace,
        replicas,
        took = %humantime::format_duration(round(started.elapsed())),
        "the statefulset is ready"
    );

    // Only where components/placement grants it: asking without the grant is a 403 per node.
    let nodes = settings.read_nodes.then(|| Api::all(client));
    let places = placement::read(
        &pods,
        nodes.as_ref(),
        &target,
        &ready,
        deadline,
        settings.ready_timeout,
    )
    .await?;

    let targets = pod_hosts(settings, &target.namespace, replicas);
    let remaining = settings.ready_timeout.saturating_sub(started.elapsed());
    let dns_settings = Settings {
        ready_timeout: remaining,
        ..settings.clone()
    };
    let mut nodes = crate::resolve::resolve_all(&targets, &dns_settings).await?;
    for (node, place) in nodes.iter_mut().zip(places) {
        node.place = place;
    }
    Ok(nodes)
}

/// The `(pod name, fully qualified host, port)` of every pod, in pod order.
///
/// The trailing dot makes the name absolute, so the resolver never tries the search domains of
/// `resolv.conf` first (a pod has `ndots:5` and three of them).
fn pod_hosts(settings: &Settings, namespace: &str, replicas: i32) -> Vec<(String, String, u16)> {
    (0..replicas.max(0))
        .map(|i| {
            let pod = format!("{}-{i}", settings.statefulset);
            let host = format!(
                "{pod}.{}.{namespace}.svc.{}.",
                settings.service, settings.cluster_domain
            );
            (pod, host, settings.redis_port)
        })
        .collect()
}

/// The User-Agent of every request to the API server: `redis-cluster-bootstrap/<version>`.
pub const USER_AGENT: &str = concat!(env!("CARGO_PKG_NAME"), "/", env!("CARGO_PKG_VERSION"));
/// The API client and the StatefulSet of this run, built like [`discover`]'s but without its log
/// line: for the Lease and the Event around the bootstrap.
pub async fn client(settings: &Settings) -> Result<(Client, Target)> {
    let (config, namespace) = config(settings).await?;
    let client = Client::try_from(config)
        .map_err(|e| Error::Kubernetes(format!("cannot build the API client: {e}")))?;
    let target = Target {
        namespace,
        name: settings.statefulset.clone(),
    };
    Ok((client, target))
}

/// Builds the client from the environment and picks the namespace.
async fn connect(settings: &Settings) -> Result<(Client, String)> {
    let (config, namespace) = config(settings).await?;
    info!(
        server = %config.cluster_url,
        namespace = %namespace,
        "connecting to the Kubernetes API"
    );
    let client = Client::try_from(config)
        .map_err(|e| Error::Kubernetes(format!("cannot build the API client: {e}")))?;
    Ok((client, namespace))
}

/// The client's configuration from the environment, and the namespace.
async fn config(settings: &Settings) -> Result<(kube::Config, String)> {
    // Tries KUBECONFIG (or ~/.kube/config), then the in-cluster ServiceAccount.
    let mut config = kube::Config::infer().await.map_err(|e| {
        Error::Config(format!(
            "BOOTSTRAP_NODES is unset, so the Kubernetes API is needed, but there is no configuration for it \
             ({e}): run in a pod with a ServiceAccount, set KUBECONFIG, or set BOOTSTRAP_NODES for static mode"
        ))
    })?;
    // kube's own retry layer would retry 429/503 silently for minutes; the watcher's backoff
    // retries them instead, with a log line for each failure and within our timeout.
    config.default_retry = false;
    // Names this program in the API server's audit log (kube sends no User-Agent of its own).
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(USER_AGENT),
    ));
    let namespace = namespace::choose(
        settings.namespace.as_deref(),
        namespace::from_service_account(namespace::SERVICE_ACCOUNT_NAMESPACE).as_deref(),
        &config.default_namespace,
    );
    Ok((config, namespace))
}

/// Reads the StatefulSet once: a wrong Role fails here, at once, and the log says what it wants.
///
/// Only a 403 is an error; anything else (missing, API down) is left to the watch, which waits
/// for it and retries.
async fn read_once(api: &Api<StatefulSet>, target: &Target) -> Result<()> {
    match api.get_opt(&target.name).await {
        Ok(Some(sts)) => {
            let replicas = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            info!(statefulset = %target.name, namespace = %target.namespace, replicas, "found the statefulset");
            Ok(())
        }
        // The watch says so, and waits for it.
        Ok(None) => Ok(()),
        Err(e) => match api_error::forbidden_status(&e) {
            Some(status) => Err(api_error::forbidden(
                "get",
                "statefulsets.apps",
                target,
                status,
            )),
            None => {
                warn!(error = %e, "cannot read the statefulset yet; the watch will retry");
                Ok(())
            }
        },
    }
}

/// Durations in logs, to the millisecond.
fn round(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_hosts_are_absolute_names_in_pod_order() {
        let mut settings = Settings::from_vars(Vec::new()).unwrap();
        settings.redis_port = 7000;
        let hosts = pod_hosts(&settings, "infra", 3);
        assert_eq!(
            hosts[2],
            (
                "redis-app-2".to_string(),
                "redis-app-2.redis-service.infra.svc.cluster.local.".to_string(),
                7000
            )
        );
        assert_eq!(hosts.len(), 3);
        assert!(pod_hosts(&settings, "infra", -1).is_empty());
    }
}
