//! Why pods are not ready, in one line each: pure code over the pods' status.
//!
//! When the wait for readiness times out, the message names every pod of the StatefulSet that is
//! not ready and why, from what the kubelet and the scheduler wrote in the pod: the first failing
//! condition (scheduling, init containers, containers, readiness) with its reason and message, and
//! what each unready container is doing.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

/// The conditions in the order a pod passes them: the first one that fails is the cause.
const CONDITIONS: [&str; 4] = ["PodScheduled", "Initialized", "ContainersReady", "Ready"];

/// One line per pod of `expected` that is not ready, in that order: missing pods, then the cause.
pub fn unready(expected: &[String], pods: &[Pod]) -> Vec<String> {
    expected
        .iter()
        .filter_map(|name| {
            match pods
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(name.as_str()))
            {
                None => Some(format!("{name}: no pod yet")),
                Some(pod) => why_not_ready(pod).map(|why| format!("{name}: {why}")),
            }
        })
        .collect()
}

/// Why `pod` is not ready, or `None` when it is Ready.
pub fn why_not_ready(pod: &Pod) -> Option<String> {
    let status = pod.status.clone().unwrap_or_default();
    let conditions = status.conditions.unwrap_or_default();
    let is_true = |kind: &str| {
        conditions
            .iter()
            .any(|c| c.type_ == kind && c.status == "True")
    };
    let terminating = pod.metadata.deletion_timestamp.is_some();
    if is_true("Ready") && !terminating {
        return None;
    }

    let mut why = Vec::new();
    if terminating {
        why.push("terminating".to_string());
    }
    if let Some(phase) = status.phase.as_deref().filter(|p| *p != "Running") {
        why.push(format!("phase {phase}"));
    }
    let failing = CONDITIONS.iter().find_map(|kind| {
        conditions
            .iter()
            .find(|c| c.type_ == *kind && c.status != "True")
    });
    match failing {
        Some(c) => why.push(
            [
                Some(format!("{}={}", c.type_, c.status)),
                c.reason.clone(),
                c.message.clone(),
            ]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(": "),
        ),
        None if conditions.is_empty() => why.push("no conditions reported yet".into()),
        None => {}
    }
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    why.extend(containers.filter_map(container));
    Some(why.join(", "))
}

/// What an unready container is doing, or `None` when it is ready.
fn container(c: &ContainerStatus) -> Option<String> {
    if c.ready {
        return None;
    }
    let state = c.state.clone().unwrap_or_default();
    let mut text = if let Some(w) = state.waiting {
        join(format!("container {} waiting", c.name), w.reason, w.message)
    } else if let Some(t) = state.terminated {
        join(
            format!(
                "container {} terminated with exit code {}",
                c.name, t.exit_code
            ),
            t.reason,
            t.message,
        )
    } else if state.running.is_some() {
        format!(
            "container {} running but not ready (its readiness probe fails)",
            c.name
        )
    } else {
        format!("container {} not started", c.name)
    };
    if c.restart_count > 0 {
        text.push_str(&format!(" (restarted {} times)", c.restart_count));
    }
    Some(text)
}

fn join(head: String, reason: Option<String>, message: Option<String>) -> String {
    [Some(head), reason, message]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateWaiting, PodCondition, PodStatus,
    };

    fn condition(
        kind: &str,
        status: &str,
        reason: Option<&str>,
        message: Option<&str>,
    ) -> PodCondition {
        PodCondition {
            type_: kind.into(),
            status: status.into(),
            reason: reason.map(Into::into),
            message: message.map(Into::into),
            ..Default::default()
        }
    }

    fn pod(
        name: &str,
        phase: &str,
        conditions: Vec<PodCondition>,
        containers: Vec<ContainerStatus>,
    ) -> Pod {
        let mut pod = Pod {
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: Some(conditions),
                container_statuses: Some(containers),
                ..Default::default()
            }),
            ..Default::default()
        };
        pod.metadata.name = Some(name.into());
        pod
    }

    fn redis(ready: bool, state: ContainerState, restarts: i32) -> ContainerStatus {
        ContainerStatus {
            name: "redis".into(),
            ready,
            restart_count: restarts,
            state: Some(state),
            ..Default::default()
        }
    }

    fn running() -> ContainerState {
        ContainerState {
            running: Some(ContainerStateRunning::default()),
            ..Default::default()
        }
    }

    #[test]
    fn a_ready_pod_needs_no_explanation() {
        let p = pod(
            "redis-app-0",
            "Running",
            vec![condition("Ready", "True", None, None)],
            vec![redis(true, running(), 0)],
        );
        assert_eq!(why_not_ready(&p), None);
    }

    #[test]
    fn an_unschedulable_pod_names_the_scheduler_reason() {
        let p = pod(
            "redis-app-5",
            "Pending",
            vec![condition(
                "PodScheduled",
                "False",
                Some("Unschedulable"),
                Some("0/3 nodes are available: 3 Insufficient memory."),
            )],
            vec![],
        );
        assert_eq!(
            why_not_ready(&p).unwrap(),
            "phase Pending, PodScheduled=False: Unschedulable: 0/3 nodes are available: 3 Insufficient memory."
        );
    }

    #[test]
    fn an_unready_container_names_the_condition_and_what_the_container_does() {
        let p = pod(
            "redis-app-4",
            "Running",
            vec![
                condition("PodScheduled", "True", None, None),
                condition(
                    "Ready",
                    "False",
                    Some("ContainersNotReady"),
                    Some("containers with unready status: [redis]"),
                ),
                condition(
                    "ContainersReady",
                    "False",
                    Some("ContainersNotReady"),
                    Some("containers with unready status: [redis]"),
                ),
            ],
            vec![redis(
                false,
                ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some("CrashLoopBackOff".into()),
                        message: Some("back-off 40s restarting failed container".into()),
                    }),
                    ..Default::default()
                },
                3,
            )],
        );
        assert_eq!(
            why_not_ready(&p).unwrap(),
            "ContainersReady=False: ContainersNotReady: containers with unready status: [redis], \
             container redis waiting: CrashLoopBackOff: back-off 40s restarting failed container (restarted 3 times)"
        );
    }

    #[test]
    fn only_unready_and_missing_pods_are_listed_in_pod_order() {
        let ready = pod(
            "redis-app-0",
            "Running",
            vec![condition("Ready", "True", None, None)],
            vec![],
        );
        let probing = pod(
            "redis-app-1",
            "Running",
            vec![condition(
                "Ready",
                "False",
                Some("ContainersNotReady"),
                None,
            )],
            vec![redis(false, running(), 0)],
        );
        let names: Vec<String> = (0..3).map(|i| format!("redis-app-{i}")).collect();
        assert_eq!(
            unready(&names, &[probing, ready]),
            [
                "redis-app-1: Ready=False: ContainersNotReady, container redis running but not ready (its readiness probe fails)",
                "redis-app-2: no pod yet",
            ]
        );
    }
}
