//! What kube-state-metrics says of the cluster's namespace, as series with its standard names and
//! labels: the StatefulSet, its pods (each on a Kubernetes node of its own), the one-shot
//! bootstrap Job and the heal CronJob with the runs it keeps. The test changes the story (a pod
//! deleted and recreated on a new address, the runs failing) and serves it again.

use super::kube_state_metrics::Series;

/// The heal CronJob's schedule period (`*/5 * * * *`), in seconds.
const PERIOD: f64 = 300.0;
/// The runs the CronJob keeps (its `failedJobsHistoryLimit` and `successfulJobsHistoryLimit`).
const KEPT: usize = 3;

/// The namespace's state.
pub struct KubeState {
    /// The namespace.
    pub namespace: String,
    /// The StatefulSet; its pods are `<statefulset>-<i>`.
    pub statefulset: String,
    /// Each pod's address; None while the pod does not exist (deleted, not yet recreated).
    pub pods: Vec<Option<String>>,
    /// The heal CronJob's kept runs failed (and none succeeded for four schedules), and the
    /// bootstrap Job failed.
    pub failing: bool,
    /// Unix time the story is told at.
    pub now: f64,
}

impl KubeState {
    /// The last time the CronJob was scheduled.
    fn last_schedule(&self) -> f64 {
        (self.now / PERIOD).floor() * PERIOD
    }

    /// The names of the heal runs kept, newest first (the CronJob controller names a run by its
    /// scheduled time in minutes).
    pub fn heal_runs(&self) -> Vec<String> {
        (0..KEPT)
            .map(|run| {
                let created = self.last_schedule() - run as f64 * PERIOD;
                format!("redis-cluster-heal-{}", (created / 60.0) as u64)
            })
            .collect()
    }

    /// Every series kube-state-metrics would export for it.
    pub fn series(&self) -> Vec<Series> {
        let mut out = Vec::new();
        let mut add = |name: &str, labels: &[(&str, &str)], value: f64| {
            let mut all = vec![("namespace".to_string(), self.namespace.clone())];
            all.extend(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            out.push((name.to_string(), all, value));
        };
        let sts = self.statefulset.as_str();
        add(
            "kube_statefulset_replicas",
            &[("statefulset", sts)],
            self.pods.len() as f64,
        );
        for (i, ip) in self.pods.iter().enumerate() {
            if let Some(ip) = ip {
                let (pod, node, host) = (
                    format!("{sts}-{i}"),
                    format!("node-{i}"),
                    format!("10.0.0.{}", 10 + i),
                );
                add(
                    "kube_pod_info",
                    &[
                        ("pod", pod.as_str()),
                        ("pod_ip", ip.as_str()),
                        ("node", node.as_str()),
                        ("host_ip", host.as_str()),
                        ("created_by_kind", "StatefulSet"),
                        ("created_by_name", sts),
                    ],
                    1.0,
                );
            }
        }
        // The heal CronJob, created a day ago.
        let last_schedule = self.last_schedule();
        let cronjob = [("cronjob", "redis-cluster-heal")];
        add("kube_cronjob_created", &cronjob, self.now - 86_400.0);
        add("kube_cronjob_spec_suspend", &cronjob, 0.0);
        add(
            "kube_cronjob_status_last_schedule_time",
            &cronjob,
            last_schedule,
        );
        add(
            "kube_cronjob_next_schedule_time",
            &cronjob,
            last_schedule + PERIOD,
        );
        // Failing: every kept run failed, and the last success is four schedules old. Else the
        // kept runs succeeded, the last one 20 s after it started.
        let last_success = if self.failing {
            last_schedule - 4.0 * PERIOD + 20.0
        } else {
            last_schedule + 20.0
        };
        add(
            "kube_cronjob_status_last_successful_time",
            &cronjob,
            last_success.min(self.now),
        );
        // A Job's condition: kube_job_complete or kube_job_failed (condition true, false, unknown).
        let condition = if self.failing {
            "kube_job_failed"
        } else {
            "kube_job_complete"
        };
        for (run, name) in self.heal_runs().iter().enumerate() {
            let job = [("job_name", name.as_str())];
            add(
                "kube_job_created",
                &job,
                last_schedule - run as f64 * PERIOD,
            );
            add(
                "kube_job_owner",
                &[
                    ("job_name", name.as_str()),
                    ("owner_kind", "CronJob"),
                    ("owner_name", "redis-cluster-heal"),
                    ("owner_is_controller", "true"),
                ],
                1.0,
            );
            for (status, value) in [("true", 1.0), ("false", 0.0), ("unknown", 0.0)] {
                add(
                    condition,
                    &[("job_name", name.as_str()), ("condition", status)],
                    value,
                );
            }
        }
        // The one-shot bootstrap Job.
        for (status, value) in [("true", 1.0), ("false", 0.0), ("unknown", 0.0)] {
            add(
                condition,
                &[
                    ("job_name", "redis-cluster-bootstrap"),
                    ("condition", status),
                ],
                value,
            );
        }
        out
    }
}
