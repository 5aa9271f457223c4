//! Kubernetes nodes for the fake API server: where each pod runs (`spec.nodeName`, `status.hostIP`)
//! and `GET /api/v1/nodes/{name}`, answered with a Node shaped like a real kubelet-registered one
//! (hostname, zone and region labels, addresses, conditions, node info).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeCondition, NodeStatus, NodeSystemInfo, Pod,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

use super::{Body, FakeApi, Shared, error, json};

/// The nodes the fake knows and which one each pod runs on.
#[derive(Default)]
pub(super) struct Nodes {
    /// Node name → its zone label, if any; in the order they were added.
    known: Vec<(String, Option<String>)>,
    /// The node of pod i.
    pods_on: Vec<String>,
}

impl FakeApi {
    /// Adds a node named `name` (with a `topology.kubernetes.io/zone` label when `zone` is set).
    pub fn add_node(&self, name: &str, zone: Option<&str>) {
        let mut state = self.shared.state.lock().unwrap();
        state
            .nodes
            .known
            .push((name.to_string(), zone.map(str::to_string)));
    }

    /// Runs pod i on node `on[i]`, from now on (pods shown later keep it).
    pub fn place(&self, on: &[&str]) {
        let mut state = self.shared.state.lock().unwrap();
        state.nodes.pods_on = on.iter().map(|n| n.to_string()).collect();
        let pods_on = state.nodes.pods_on.clone();
        let known = state.nodes.known.clone();
        place(&mut state.pods, &pods_on, &known);
    }
}

/// Sets each scheduled pod's node and host IP.
pub(super) fn place(pods: &mut [Pod], on: &[String], known: &[(String, Option<String>)]) {
    for (pod, node) in pods.iter_mut().zip(on) {
        let scheduled = pod.status.as_ref().is_some_and(|s| s.pod_ip.is_some());
        if !scheduled {
            continue;
        }
        if let Some(spec) = pod.spec.as_mut() {
            spec.node_name = Some(node.clone());
        }
        if let Some(status) = pod.status.as_mut() {
            let at = known.iter().position(|(n, _)| n == node).unwrap_or(0);
            status.host_ip = Some(internal_ip(at));
        }
    }
}

fn internal_ip(index: usize) -> String {
    format!("10.0.0.{}", index + 1)
}

impl Shared {
    /// `GET /api/v1/nodes/{name}`: the Node, or a 404 `Status`.
    pub(super) fn get_node(&self, name: &str) -> hyper::Response<Body> {
        let state = self.state.lock().unwrap();
        match state.nodes.known.iter().position(|(n, _)| n == name) {
            Some(at) => json(200, &node(name, state.nodes.known[at].1.as_deref(), at)),
            None => error(
                404,
                "NotFound",
                format!("nodes {name:?} not found"),
                Some((name, "", "nodes")),
            ),
        }
    }

    /// Applies the placement to pods just rebuilt for a new stage.
    pub(super) fn keep_placement(state: &mut super::State) {
        let pods_on = state.nodes.pods_on.clone();
        let known = state.nodes.known.clone();
        place(&mut state.pods, &pods_on, &known);
    }
}

/// Node `name`, the `at`-th registered, as the API server shows it.
fn node(name: &str, zone: Option<&str>, at: usize) -> Node {
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), name.to_string()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), "amd64".to_string()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        ("beta.kubernetes.io/arch".to_string(), "amd64".to_string()),
    ]);
    if let Some(zone) = zone {
        labels.insert("topology.kubernetes.io/zone".into(), zone.into());
        labels.insert(
            "topology.kubernetes.io/region".into(),
            zone.trim_end_matches(char::is_alphabetic).into(),
        );
    }
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            uid: Some(format!("0000-node-{name}")),
            resource_version: Some((1000 + at).to_string()),
            creation_timestamp: Some(Time(Timestamp::UNIX_EPOCH)),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                "node.alpha.kubernetes.io/ttl".to_string(),
                "0".to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(Default::default()),
        status: Some(NodeStatus {
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: internal_ip(at),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: name.into(),
                },
            ]),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: Some("KubeletReady".into()),
                message: Some("kubelet is posting ready status".into()),
                last_heartbeat_time: Some(Time(Timestamp::UNIX_EPOCH)),
                last_transition_time: Some(Time(Timestamp::UNIX_EPOCH)),
            }]),
            node_info: Some(NodeSystemInfo {
                architecture: "amd64".into(),
                container_runtime_version: "containerd://1.7.13".into(),
                kernel_version: "6.1.0-18-amd64".into(),
                kube_proxy_version: "v1.30.0".into(),
                kubelet_version: "v1.30.0".into(),
                machine_id: format!("{at:032x}"),
                operating_system: "linux".into(),
                os_image: "Debian GNU/Linux 12 (bookworm)".into(),
                system_uuid: format!("0000-{name}"),
                boot_id: format!("boot-{name}"),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}
