//! Where the pods run, for the pairing ([`crate::plan::placement`]): each pod's Kubernetes node
//! (`spec.nodeName`, from the pod list the Role already allows) and, when the ServiceAccount may
//! also `get` nodes, each node's `topology.kubernetes.io/zone` label.
//!
//! Nodes are read only when `BOOTSTRAP_READ_NODES` says the optional ClusterRole of
//! `components/placement` is there (the component sets it): a least-privilege tool does not probe
//! for rights it was not given, and a CronJob that did would leave a 403 per node per minute in
//! the API server's audit log.
//!
//! A 403 on pods is a configuration error like any other missing permission (exit 2); a 403 on
//! nodes is not: the pairing then separates nodes but knows no zones, and says so once. It is
//! also the last node request of the run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Node as KubeNode, Pod};
use kube::Api;
use kube::api::ListParams;
use kube::core::Selector;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{Target, api_error};
use crate::node::Place;
use crate::{Error, Result};

/// The well-known label that names a node's zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// The place of each of the StatefulSet's pods, in pod order (unknown for a pod not found).
/// Zones only with `nodes`, given when the ServiceAccount may get them.
/// Retries failures other than a 403 until `deadline`, the end of the ready timeout `budget`.
pub(super) async fn read(
    pods: &Api<Pod>,
    nodes: Option<&Api<KubeNode>>,
    target: &Target,
    sts: &StatefulSet,
    deadline: Instant,
    budget: Duration,
) -> Result<Vec<Place>> {
    let spec = sts.spec.clone().unwrap_or_default();
    let selector = Selector::try_from(spec.selector)
        .map_err(|e| Error::Kubernetes(format!("{target} has a selector kube cannot use: {e}")))?;
    let params = ListParams::default().labels_from(&selector);
    let mut pause = Duration::from_millis(250);
    let list = loop {
        let why = match tokio::time::timeout_at(deadline, pods.list(&params)).await {
            Ok(Ok(list)) => break list,
            Ok(Err(e)) => {
                if let Some(status) = api_error::forbidden_status(&e) {
                    return Err(api_error::forbidden("list", "pods", target, status));
                }
                api_error::describe_client(&e)
            }
            Err(_) => "no answer".to_string(),
        };
        if Instant::now() + pause >= deadline {
            return Err(Error::Timeout {
                phase: "reading where the pods run",
                after: budget,
                detail: format!("the pods of {target} could not be listed: {why}"),
            });
        }
        warn!(error = %why, "cannot list the pods yet; retrying");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    };
    let on: BTreeMap<String, String> = list
        .items
        .iter()
        .filter_map(|pod| {
            let name = pod.metadata.name.clone()?;
            let node = pod.spec.as_ref()?.node_name.clone()?;
            Some((name, node))
        })
        .collect();
    let names = on.values().cloned().collect::<BTreeSet<String>>();
    let zones = match nodes {
        Some(nodes) => tokio::time::timeout_at(deadline, zones(nodes, &names))
            .await
            .unwrap_or_else(|_| {
                warn!("the Kubernetes nodes could not be read in time; their zones are unknown");
                BTreeMap::new()
            }),
        None => {
            info!(
                "zones not read (BOOTSTRAP_READ_NODES is off: components/placement grants get on \
                 nodes and turns it on): pairing keeps replicas off their master's node"
            );
            BTreeMap::new()
        }
    };
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let places: Vec<Place> = (0..replicas)
        .map(|i| {
            let node = on.get(&format!("{}-{i}", target.name)).cloned();
            let zone = node.as_ref().and_then(|n| zones.get(n).cloned());
            Place { node, zone }
        })
        .collect();
    let zone_count = zones.values().collect::<BTreeSet<_>>().len();
    info!(
        nodes = names.len(),
        zones = zone_count,
        "the {} pods run on {} Kubernetes node(s) in {} known zone(s)",
        places.len(),
        names.len(),
        zone_count
    );
    Ok(places)
}

/// The zone of each node that has one. Best effort: a node that cannot be read has no known zone.
///
/// The first read goes alone: when it is forbidden (the variable is set but the ClusterRoleBinding
/// is missing), no other node is asked, so a run makes at most one 403 on nodes.
async fn zones(nodes: &Api<KubeNode>, names: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut names = names.iter();
    let Some(first) = names.next() else {
        return BTreeMap::new();
    };
    let first_read = nodes.get_opt(first).await;
    let denied = first_read
        .as_ref()
        .is_err_and(|e| api_error::forbidden_status(e).is_some());
    let mut reads = vec![(first, first_read)];
    if !denied {
        let rest = names.map(|name| async move { (name, nodes.get_opt(name).await) });
        reads.extend(futures::future::join_all(rest).await);
    }
    let mut zones = BTreeMap::new();
    let mut forbidden = false;
    for (name, read) in reads {
        match read {
            Ok(Some(node)) => {
                let zone = node.metadata.labels.and_then(|mut l| l.remove(ZONE_LABEL));
                if let Some(zone) = zone {
                    zones.insert(name.clone(), zone);
                }
            }
            Ok(None) => warn!(node = %name, "Kubernetes node {name} is gone; its zone is unknown"),
            Err(e) if api_error::forbidden_status(&e).is_some() => forbidden = true,
            Err(e) => warn!(
                node = %name,
                error = %api_error::describe_client(&e),
                "cannot read Kubernetes node {name}; its zone is unknown"
            ),
        }
    }
    if forbidden {
        warn!(
            "the ServiceAccount may not get nodes, so zones are unknown: pairing keeps replicas off \
             their master's node only (BOOTSTRAP_READ_NODES is set: is the ClusterRoleBinding of \
             components/placement applied?)"
        );
    }
    zones
}
