//! The audit trail that outlives the Job: one `events.k8s.io/v1` Event per run that changes the
//! cluster or fails, regarding the StatefulSet, so `kubectl describe statefulset redis-app` and
//! `kubectl get events` show what every run did.
//!
//! | run | type | reason | action |
//! |---|---|---|---|
//! | *fresh*: formed the cluster | Normal | `Formed` | `Form` |
//! | *partial*: finished an interrupted run | Normal | `Resumed` | `Resume` |
//! | *reconnect*: re-introduced nodes on new addresses | Normal | `Reconnected` | `Reconnect` |
//! | *drain*: moved the highest shards' slots away (`BOOTSTRAP_DRAIN_TO`) | Normal | `Drained` | `Drain` |
//! | *shrink*: forgot the removed pods' node IDs | Normal | `Shrunk` | `Shrink` |
//! | *repair*: re-paired replicas, failed over inside shards (the note names each move) | Normal | `Repaired` | `Repair` |
//! | refused (exit 3) | Warning | `Refused` | `Plan` |
//! | a readiness, lease, handshake or convergence timeout (exit 1) | Warning | `TimedOut` | the phase |
//! | any other retryable failure (exit 1) | Warning | `Failed` | `Bootstrap` |
//! | *formed*, *settling* or already drained: nothing changed; a dry run; bad configuration (exit 2) | none | | |
//!
//! The note is the run's summary line, or its error on one line. Recording is best effort: a
//! failure to record is a warning in the log, never a failed run.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client, Resource};
use tracing::{info, warn};

use super::{Target, api_error};
use crate::plan::Decision;
use crate::report::{self, Summary};
use crate::{Error, Result};

/// `reportingController` of every Event.
pub const CONTROLLER: &str = "redis-cluster-bootstrap";

/// The API server rejects a note longer than 1 kB.
const NOTE_LIMIT: usize = 1024;

/// What one run's Event says, before it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Normal or Warning.
    pub warning: bool,
    /// Why: `Formed`, `Resumed`, `Reconnected`, `Refused`, `TimedOut`, `Failed`.
    pub reason: &'static str,
    /// What was done: `Form`, `Resume`, `Reconnect`, `Plan`, `Converge`, ...
    pub action: &'static str,
    /// The summary line or the error, at most 1 kB.
    pub note: String,
}

/// The Event a run with this result records, or `None` when it changed nothing worth recording.
pub fn record_for(result: &Result<Summary>) -> Option<Record> {
    let (warning, reason, action, note) = match result {
        Ok(summary) => {
            if summary.outcome == "dry-run" {
                return None;
            }
            let (reason, action) = match summary.decision {
                // Waiting is only ever a passing state within a run.
                Decision::Formed | Decision::Settling | Decision::Waiting => return None,
                Decision::Repair if summary.steps == 0 => return None,
                Decision::Repair => ("Repaired", "Repair"),
                Decision::Fresh => ("Formed", "Form"),
                Decision::Partial => ("Resumed", "Resume"),
                Decision::Reconnect => ("Reconnected", "Reconnect"),
                Decision::Replace => ("Replaced", "Replace"),
                Decision::Grow => ("Grown", "Grow"),
                Decision::Drain if summary.steps == 0 => return None,
                Decision::Drain => ("Drained", "Drain"),
                Decision::Shrink => ("Shrunk", "Shrink"),
            };
            let mut note = report::summary_line(summary);
            if !summary.repairs.is_empty() {
                // The moves first: the shard, the pods and their nodes are what a person looks for.
                note = format!("{}; {note}", summary.repairs.join("; "));
            }
            (false, reason, action, note)
        }
        Err(Error::Config(_) | Error::Rejected(_) | Error::Forbidden(_)) => return None,
        Err(e @ Error::Refused(_)) => (true, "Refused", "Plan", crate::one_line(e)),
        Err(e @ Error::Timeout { phase, .. }) => {
            let action = waited_for(phase).unwrap_or("Form");
            (true, "TimedOut", action, crate::one_line(e))
        }
        // Stopped by a signal at a safe point: a re-run finishes it.
        Err(e @ Error::Interrupted { .. }) => {
            (true, "Interrupted", "Bootstrap", crate::one_line(e))
        }
        Err(e) => (true, "Failed", "Bootstrap", crate::one_line(e)),
    };
    Some(Record {
        warning,
        reason,
        action,
        note: truncate(note, NOTE_LIMIT),
    })
}

/// The action of a `TimedOut` Event for a timeout in `phase` that any job of the binary waits
/// through (the pods, the Lease); `None` for a phase of the job's own.
pub fn waited_for(phase: &str) -> Option<&'static str> {
    match phase {
        "readiness" => Some("WaitForReady"),
        "convergence" => Some("Converge"),
        "waiting for the lease" => Some("AcquireLease"),
        _ => None,
    }
}

/// Records the Event of this run's result regarding the StatefulSet of `target`, if it has one.
/// Never fails: a failure is logged as a warning.
pub async fn record(client: Client, target: &Target, result: &Result<Summary>) {
    let Some(record) = record_for(result) else {
        return;
    };
    let regarding = regarding(&client, target).await;
    publish(client.clone(), target, &regarding, &record).await;
    if let Some(shared) = shared_record(result) {
        publish(client, target, &regarding, &shared).await;
    }
}

/// Records one Event regarding the StatefulSet of `target` (a backup's, a restore's). Never
/// fails: a failure is logged as a warning.
pub async fn record_one(client: Client, target: &Target, record: &Record) {
    let regarding = regarding(&client, target).await;
    publish(client, target, &regarding, record).await;
}

/// `text` as an Event's note: at most 1 kB.
pub fn note(text: String) -> String {
    truncate(text, NOTE_LIMIT)
}

/// A Warning `SharedFailureDomain` beside a run's Event, when shards share a node or zone. Only on
/// runs that record an Event at all: a formed cluster costs no Event (the CronJob would repeat it
/// every minute); its log says it on every run.
fn shared_record(result: &Result<Summary>) -> Option<Record> {
    let summary = result.as_ref().ok()?;
    record_for(result)?;
    (!summary.shared_failure_domains.is_empty()).then(|| Record {
        warning: true,
        reason: crate::plan::placement::SHARED_FAILURE_DOMAIN,
        action: "Place",
        note: truncate(summary.shared_failure_domains.join("; "), NOTE_LIMIT),
    })
}

/// Publishes one Event; a failure is a warning in the log.
async fn publish(client: Client, target: &Target, regarding: &ObjectReference, record: &Record) {
    let reporter = Reporter {
        controller: CONTROLLER.into(),
        // Kubernetes sets HOSTNAME to the pod's name.
        instance: std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()),
    };
    let event = Event {
        type_: if record.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: record.reason.into(),
        note: Some(record.note.clone()),
        action: record.action.into(),
        secondary: None,
    };
    match Recorder::new(client, reporter)
        .publish(&event, regarding)
        .await
    {
        Ok(()) => info!(
            reason = record.reason,
            statefulset = %target.name,
            "recorded the event {} on {target}", record.reason
        ),
        Err(e) => warn!(
            error = %api_error::describe_client(&e),
            reason = record.reason,
            "could not record the event on {target} (grant `create` on events.k8s.io events); \
             the run itself is unaffected"
        ),
    }
}

/// A reference to the StatefulSet with its UID, which `kubectl describe` matches Events by; without
/// the StatefulSet (not readable, or gone) a reference by name.
async fn regarding(client: &Client, target: &Target) -> ObjectReference {
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), &target.namespace);
    match api.get_opt(&target.name).await {
        Ok(Some(sts)) => sts.object_ref(&()),
        _ => ObjectReference {
            api_version: Some("apps/v1".into()),
            kind: Some("StatefulSet".into()),
            name: Some(target.name.clone()),
            namespace: Some(target.namespace.clone()),
            ..ObjectReference::default()
        },
    }
}

/// `text` cut to at most `limit` bytes on a character boundary, marked with `…` when cut.
fn truncate(text: String, limit: usize) -> String {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn summary(decision: Decision, outcome: &'static str) -> Summary {
        Summary {
            outcome,
            decision,
            nodes: 6,
            masters: 3,
            replicas_per_master: 1,
            steps: 24,
            phases: vec![("total", Duration::from_millis(5018))],
            shared_failure_domains: Vec::new(),
            repairs: Vec::new(),
        }
    }

    #[test]
    fn a_change_is_a_normal_event_named_after_the_decision() {
        let formed = record_for(&Ok(summary(Decision::Fresh, "formed"))).unwrap();
        assert_eq!(
            (formed.warning, formed.reason, formed.action),
            (false, "Formed", "Form")
        );
        assert!(
            formed
                .note
                .starts_with("outcome=formed decision=fresh nodes=6")
        );
        assert_eq!(
            record_for(&Ok(summary(Decision::Partial, "formed")))
                .unwrap()
                .reason,
            "Resumed"
        );
        assert_eq!(
            record_for(&Ok(summary(Decision::Reconnect, "formed")))
                .unwrap()
                .reason,
            "Reconnected"
        );
        assert_eq!(
            record_for(&Ok(summary(Decision::Replace, "formed")))
                .unwrap()
                .reason,
            "Replaced"
        );
        assert_eq!(
            record_for(&Ok(summary(Decision::Shrink, "formed")))
                .unwrap()
                .reason,
            "Shrunk"
        );
        let mut drained = summary(Decision::Drain, "drained");
        assert_eq!(record_for(&Ok(drained.clone())).unwrap().reason, "Drained");
        // Already drained: the CronJob's runs until the StatefulSet shrinks record nothing.
        drained.steps = 0;
        assert!(record_for(&Ok(drained)).is_none());
        // A repair names each move first: the shard, the pods, their nodes.
        let mut repaired = summary(Decision::Repair, "formed");
        repaired.repairs = vec![
            "repair: redis-app-3 (on worker-b) follows redis-app-2 (on worker-c) (shard 10923-16383)"
                .into(),
        ];
        let record = record_for(&Ok(repaired.clone())).unwrap();
        assert_eq!(
            (record.warning, record.reason, record.action),
            (false, "Repaired", "Repair")
        );
        assert!(
            record.note.starts_with("repair: redis-app-3 (on worker-b)"),
            "{}",
            record.note
        );
        assert!(record.note.contains("decision=repair"), "{}", record.note);
        repaired.steps = 0;
        assert!(record_for(&Ok(repaired)).is_none());
    }

    #[test]
    fn a_shared_failure_domain_is_a_warning_beside_a_changing_run_only() {
        let mut formed = summary(Decision::Fresh, "formed");
        assert_eq!(shared_record(&Ok(formed.clone())), None);
        formed.shared_failure_domains =
            vec!["master redis-app-0: its replica redis-app-3 ...".into()];
        let shared = shared_record(&Ok(formed.clone())).unwrap();
        assert!(shared.warning);
        assert_eq!(
            (shared.reason, shared.action),
            ("SharedFailureDomain", "Place")
        );
        assert!(shared.note.contains("redis-app-3"));
        // A run that changed nothing records nothing, this warning included.
        formed.decision = Decision::Formed;
        assert_eq!(shared_record(&Ok(formed)), None);
    }

    #[test]
    fn a_run_that_changed_nothing_records_nothing() {
        assert_eq!(record_for(&Ok(summary(Decision::Formed, "formed"))), None);
        assert_eq!(record_for(&Ok(summary(Decision::Settling, "formed"))), None);
        assert_eq!(record_for(&Ok(summary(Decision::Fresh, "dry-run"))), None);
        assert_eq!(record_for(&Err(Error::Config("x".into()))), None);
    }

    #[test]
    fn refusals_and_timeouts_are_warnings() {
        let refused = record_for(&Err(Error::Refused("node-2 holds keys".into()))).unwrap();
        assert_eq!((refused.warning, refused.reason), (true, "Refused"));
        assert_eq!(refused.note, "refused: node-2 holds keys");
        let timeout = Error::Timeout {
            phase: "convergence",
            after: Duration::from_secs(120),
            detail: "node-1 knows 5 nodes".into(),
        };
        let timed_out = record_for(&Err(timeout)).unwrap();
        assert_eq!(
            (timed_out.warning, timed_out.reason, timed_out.action),
            (true, "TimedOut", "Converge")
        );
        let failed = record_for(&Err(Error::Dns("no address".into()))).unwrap();
        assert_eq!((failed.reason, failed.action), ("Failed", "Bootstrap"));
    }

    #[test]
    fn notes_fit_the_api_servers_limit() {
        let long = "é".repeat(2000);
        let note = record_for(&Err(Error::Refused(long))).unwrap().note;
        assert!(
            note.len() <= NOTE_LIMIT && note.ends_with('…'),
            "{}",
            note.len()
        );
    }
}
