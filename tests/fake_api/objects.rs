//! The objects the fake API server serves, built as k8s-openapi types so their JSON has exactly the
//! shape of the real API's: a StatefulSet like the guide's `redis-app`, its pods in one of a few
//! states, and `Status` objects for errors.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetSpec, StatefulSetStatus,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodCondition, PodSpec, PodStatus, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, Status, StatusDetails, Time,
};
use k8s_openapi::jiff::Timestamp;

/// The StatefulSet's `metadata.generation`: its spec was changed once after creation.
pub const GENERATION: i64 = 2;

/// What one pod is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodState {
    /// Running and Ready.
    Ready,
    /// Running, its readiness probe not passing yet.
    Starting,
    /// Its container exits and the kubelet backs off restarting it.
    CrashLooping,
    /// No node has room for it.
    Unschedulable,
}

/// The StatefulSet and its pods at one moment of a script.
#[derive(Debug, Clone)]
pub struct Stage {
    /// `spec.replicas`.
    pub replicas: i32,
    /// Whether the controller has observed the latest spec (`observedGeneration == generation`).
    pub observed: bool,
    /// The pods that exist, pod 0 first; fewer than `replicas` while the controller creates them.
    pub pods: Vec<PodState>,
    /// A rolling update in progress: how many pods (the highest ordinals, as the controller rolls
    /// them) run the new revision; `None` when no update is under way.
    pub rolled: Option<usize>,
}

impl Stage {
    /// `replicas` pods, observed, the first `ready` of them Ready and the others starting.
    pub fn ready(replicas: i32, ready: usize) -> Stage {
        Stage {
            replicas,
            observed: true,
            pods: (0..replicas as usize)
                .map(|i| {
                    if i < ready {
                        PodState::Ready
                    } else {
                        PodState::Starting
                    }
                })
                .collect(),
            rolled: None,
        }
    }

    /// The same, in the middle of a rolling update that has replaced `rolled` pods so far.
    pub fn rolling(mut self, rolled: usize) -> Stage {
        self.rolled = Some(rolled);
        self
    }

    /// The same, before the controller has observed the latest spec.
    pub fn unobserved(mut self) -> Stage {
        self.observed = false;
        self
    }

    /// Pods that are Ready.
    pub fn ready_count(&self) -> i32 {
        self.pods.iter().filter(|p| **p == PodState::Ready).count() as i32
    }
}

/// The guide's pod labels, also the StatefulSet's selector.
pub fn labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("app".to_string(), name.to_string())])
}

fn meta(namespace: &str, name: &str, resource_version: u64) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(namespace.into()),
        uid: Some(format!("0000-{name}")),
        resource_version: Some(resource_version.to_string()),
        creation_timestamp: Some(Time(Timestamp::UNIX_EPOCH)),
        ..Default::default()
    }
}

/// The API server omits zero counts (`omitempty`).
fn nonzero(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}

/// The StatefulSet `name` as the API server shows it in `stage`.
pub fn statefulset(
    namespace: &str,
    name: &str,
    stage: &Stage,
    resource_version: u64,
) -> StatefulSet {
    let ready = stage.ready_count();
    let existing = stage.pods.len() as i32;
    let revision = format!("{name}-5d8c7b9f6c");
    let rolled = stage.rolled.unwrap_or(0) as i32;
    StatefulSet {
        metadata: ObjectMeta {
            generation: Some(GENERATION),
            labels: Some(labels(name)),
            ..meta(namespace, name, resource_version)
        },
        spec: Some(StatefulSetSpec {
            replicas: Some(stage.replicas),
            selector: LabelSelector {
                match_labels: Some(labels(name)),
                match_expressions: None,
            },
            service_name: Some("redis-service".into()),
            pod_management_policy: Some("OrderedReady".into()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateStatefulSetStrategy {
                    partition: Some(0),
                    max_unavailable: None,
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(name)),
                    ..Default::default()
                }),
                spec: Some(pod_spec()),
            },
            ..Default::default()
        }),
        status: Some(StatefulSetStatus {
            observed_generation: Some(if stage.observed {
                GENERATION
            } else {
                GENERATION - 1
            }),
            replicas: existing,
            ready_replicas: nonzero(ready),
            available_replicas: nonzero(ready),
            current_replicas: nonzero(existing - rolled),
            updated_replicas: nonzero(stage.rolled.map_or(existing, |_| rolled)),
            current_revision: Some(revision.clone()),
            // kubectl rollout restart: a new template, so a new revision, until every pod runs it.
            update_revision: Some(match stage.rolled {
                Some(_) => format!("{name}-7f9d6c5b4a"),
                None => revision,
            }),
            collision_count: Some(0),
            ..Default::default()
        }),
    }
}

fn pod_spec() -> PodSpec {
    PodSpec {
        containers: vec![Container {
            name: "redis".into(),
            image: Some("redis".into()),
            command: Some(vec!["redis-server".into()]),
            args: Some(vec![
                "/etc/redis/redis.conf".into(),
                "--protected-mode".into(),
                "no".into(),
            ]),
            ports: Some(vec![
                ContainerPort {
                    name: Some("redis".into()),
                    container_port: 6379,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                },
                ContainerPort {
                    name: Some("cluster".into()),
                    container_port: 16379,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn condition(kind: &str, ok: bool, reason: Option<&str>, message: Option<&str>) -> PodCondition {
    PodCondition {
        type_: kind.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.map(Into::into),
        message: message.map(Into::into),
        last_probe_time: None,
        last_transition_time: Some(Time(Timestamp::UNIX_EPOCH)),
        ..Default::default()
    }
}

/// Pod `index` of StatefulSet `name`, at `ip`, in `state`.
pub fn pod(
    namespace: &str,
    name: &str,
    index: usize,
    ip: &str,
    state: PodState,
    resource_version: u64,
) -> Pod {
    let pod_name = format!("{name}-{index}");
    let unready = "containers with unready status: [redis]";
    let started = ContainerState {
        running: Some(ContainerStateRunning {
            started_at: Some(Time(Timestamp::UNIX_EPOCH)),
        }),
        ..Default::default()
    };
    let container = |ready: bool, state: ContainerState, restarts: i32| ContainerStatus {
        name: "redis".into(),
        image: "docker.io/library/redis:7".into(),
        image_id: "docker.io/library/redis@sha256:0000".into(),
        container_id: Some(format!("containerd://{index:064}")),
        ready,
        started: Some(state.running.is_some()),
        restart_count: restarts,
        state: Some(state),
        ..Default::default()
    };
    let (phase, conditions, containers) = match state {
        PodState::Ready => (
            "Running",
            vec![
                condition("PodScheduled", true, None, None),
                condition("Initialized", true, None, None),
                condition("ContainersReady", true, None, None),
                condition("Ready", true, None, None),
            ],
            vec![container(true, started, 0)],
        ),
        PodState::Starting | PodState::CrashLooping => {
            let status = if state == PodState::Starting {
                container(false, started, 0)
            } else {
                ContainerStatus {
                    last_state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: 1,
                            reason: Some("Error".into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..container(
                        false,
                        ContainerState {
                            waiting: Some(ContainerStateWaiting {
                                reason: Some("CrashLoopBackOff".into()),
                                message: Some(format!(
                                    "back-off 40s restarting failed container=redis pod={pod_name}_{namespace}(0000-{pod_name})"
                                )),
                            }),
                            ..Default::default()
                        },
                        3,
                    )
                }
            };
            (
                "Running",
                vec![
                    condition("PodScheduled", true, None, None),
                    condition("Initialized", true, None, None),
                    condition(
                        "ContainersReady",
                        false,
                        Some("ContainersNotReady"),
                        Some(unready),
                    ),
                    condition("Ready", false, Some("ContainersNotReady"), Some(unready)),
                ],
                vec![status],
            )
        }
        PodState::Unschedulable => (
            "Pending",
            vec![condition(
                "PodScheduled",
                false,
                Some("Unschedulable"),
                Some(
                    "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.",
                ),
            )],
            vec![],
        ),
    };
    let scheduled = state != PodState::Unschedulable;
    Pod {
        metadata: ObjectMeta {
            labels: Some(labels(name)),
            ..meta(namespace, &pod_name, resource_version)
        },
        spec: Some(PodSpec {
            hostname: Some(pod_name.clone()),
            subdomain: Some("redis-service".into()),
            ..pod_spec()
        }),
        status: Some(PodStatus {
            phase: Some(phase.into()),
            conditions: Some(conditions),
            container_statuses: scheduled.then_some(containers),
            pod_ip: scheduled.then(|| ip.to_string()),
            host_ip: scheduled.then(|| "10.0.0.1".to_string()),
            qos_class: Some("BestEffort".into()),
            start_time: scheduled.then_some(Time(Timestamp::UNIX_EPOCH)),
            ..Default::default()
        }),
    }
}

/// A `Status` object, the body of every error the API server returns.
pub fn status(
    code: u16,
    reason: &str,
    message: String,
    details: Option<(&str, &str, &str)>,
) -> Status {
    Status {
        code: Some(code.into()),
        reason: Some(reason.into()),
        message: Some(message),
        status: Some("Failure".into()),
        details: details.map(|(name, group, kind)| StatusDetails {
            name: Some(name.into()).filter(|n: &String| !n.is_empty()),
            group: Some(group.into()).filter(|g: &String| !g.is_empty()),
            kind: Some(kind.into()),
            ..Default::default()
        }),
        metadata: Default::default(),
    }
}
