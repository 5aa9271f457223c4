//! When a StatefulSet counts as Ready: pure code over its spec and status.
//!
//! The rules are `kubectl rollout status`'s for a StatefulSet: the controller has seen the latest
//! spec (`observedGeneration >= generation`), every wanted pod is ready and no extra pod is left
//! over (`readyReplicas == replicas == spec.replicas`), and a rolling update, if any, is done.

use std::fmt;

use k8s_openapi::api::apps::v1::StatefulSet;

/// How far a StatefulSet is from Ready, as read from one version of the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    /// Pods that are Ready (`status.readyReplicas`).
    pub ready: i32,
    /// Pods wanted (`spec.replicas`, 1 when unset as the API defaults it).
    pub wanted: i32,
    /// What is still missing; `None` when the StatefulSet is Ready.
    pub waiting_for: Option<String>,
}

impl Rollout {
    /// Reads the rollout state of `sts`.
    pub fn of(sts: &StatefulSet) -> Rollout {
        let spec = sts.spec.as_ref();
        let status = sts.status.clone().unwrap_or_default();
        let wanted = spec.and_then(|s| s.replicas).unwrap_or(1);
        let ready = status.ready_replicas.unwrap_or(0);
        let generation = sts.metadata.generation.unwrap_or(0);
        let observed = status.observed_generation.unwrap_or(0);
        let strategy = spec.and_then(|s| s.update_strategy.as_ref());
        let rolling = strategy
            .and_then(|s| s.type_.as_deref())
            .is_none_or(|t| t == "RollingUpdate");
        let partition = strategy
            .and_then(|s| s.rolling_update.as_ref())
            .and_then(|r| r.partition)
            .unwrap_or(0);
        let updated = status.updated_replicas.unwrap_or(0);

        let waiting_for = if observed == 0 || observed < generation {
            Some(format!(
                "the controller to observe generation {generation} (it has seen {observed})"
            ))
        } else if ready < wanted {
            let during = if rolling && status.update_revision != status.current_revision {
                format!(" (during a rolling update, {updated}/{wanted} pods updated)")
            } else {
                String::new()
            };
            Some(format!(
                "{} more pod(s) to be ready{during}",
                wanted - ready
            ))
        } else if status.replicas > wanted || ready > wanted {
            Some(format!(
                "the scale-down to {wanted} ({} pods still exist)",
                status.replicas.max(ready)
            ))
        } else if rolling && partition > 0 {
            let due = (wanted - partition).max(0);
            (updated < due)
                .then(|| format!("the partitioned rolling update ({updated}/{due} pods updated)"))
        } else if rolling && status.update_revision != status.current_revision {
            Some(format!(
                "the rolling update ({updated}/{wanted} pods at revision {})",
                status.update_revision.as_deref().unwrap_or("?")
            ))
        } else {
            None
        };
        Rollout {
            ready,
            wanted,
            waiting_for,
        }
    }

    /// Whether the StatefulSet is Ready.
    pub fn is_done(&self) -> bool {
        self.waiting_for.is_none()
    }
}

impl fmt::Display for Rollout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} ready", self.ready, self.wanted)?;
        match &self.waiting_for {
            Some(what) => write!(f, ", waiting for {what}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        RollingUpdateStatefulSetStrategy, StatefulSetSpec, StatefulSetStatus,
        StatefulSetUpdateStrategy,
    };

    /// A StatefulSet of `wanted` replicas at generation 2, fully observed and rolled out, with
    /// `ready` pods ready.
    fn sts(wanted: i32, ready: i32) -> StatefulSet {
        let mut sts = StatefulSet {
            spec: Some(StatefulSetSpec {
                replicas: Some(wanted),
                ..Default::default()
            }),
            status: Some(StatefulSetStatus {
                observed_generation: Some(2),
                replicas: wanted,
                ready_replicas: Some(ready),
                updated_replicas: Some(wanted),
                current_revision: Some("redis-app-7d9f".into()),
                update_revision: Some("redis-app-7d9f".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        sts.metadata.generation = Some(2);
        sts
    }

    #[test]
    fn ready_when_every_pod_is_ready_and_observed() {
        let r = Rollout::of(&sts(6, 6));
        assert!(r.is_done());
        assert_eq!(r.to_string(), "6/6 ready");
    }

    #[test]
    fn progress_reads_ready_over_wanted() {
        let r = Rollout::of(&sts(6, 4));
        assert!(!r.is_done());
        assert_eq!(
            r.to_string(),
            "4/6 ready, waiting for 2 more pod(s) to be ready"
        );
        let mut empty = sts(6, 0);
        empty.status.as_mut().unwrap().ready_replicas = None;
        assert_eq!(Rollout::of(&empty).ready, 0);
    }

    #[test]
    fn an_unobserved_spec_is_not_ready_even_with_all_pods_ready() {
        let mut s = sts(6, 6);
        s.metadata.generation = Some(3);
        let r = Rollout::of(&s);
        assert!(!r.is_done());
        assert!(
            r.to_string()
                .contains("observe generation 3 (it has seen 2)"),
            "{r}"
        );
        s.status = None;
        assert!(!Rollout::of(&s).is_done());
    }

    #[test]
    fn a_scale_down_in_progress_is_not_ready() {
        let mut s = sts(3, 3);
        s.status.as_mut().unwrap().replicas = 4;
        assert!(!Rollout::of(&s).is_done());
    }

    #[test]
    fn a_rolling_update_must_finish() {
        let mut s = sts(6, 6);
        let status = s.status.as_mut().unwrap();
        status.update_revision = Some("redis-app-8a1b".into());
        status.updated_replicas = Some(2);
        let r = Rollout::of(&s);
        assert!(
            r.to_string()
                .contains("rolling update (2/6 pods at revision redis-app-8a1b)"),
            "{r}"
        );

        // OnDelete never rolls pods by itself: the revisions may differ for ever.
        s.spec.as_mut().unwrap().update_strategy = Some(StatefulSetUpdateStrategy {
            type_: Some("OnDelete".into()),
            rolling_update: None,
        });
        assert!(Rollout::of(&s).is_done());
    }

    #[test]
    fn a_partitioned_update_is_done_when_the_pods_above_the_partition_are_updated() {
        let mut s = sts(6, 6);
        s.spec.as_mut().unwrap().update_strategy = Some(StatefulSetUpdateStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateStatefulSetStrategy {
                partition: Some(4),
                max_unavailable: None,
            }),
        });
        let status = s.status.as_mut().unwrap();
        status.update_revision = Some("redis-app-8a1b".into());
        status.updated_replicas = Some(1);
        assert!(!Rollout::of(&s).is_done());
        s.status.as_mut().unwrap().updated_replicas = Some(2);
        assert!(Rollout::of(&s).is_done());
    }
}
