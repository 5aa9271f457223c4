//! The frame `backup` and `restore` run in, as the bootstrap does: the nodes are `BOOTSTRAP_NODES`
//! (static mode) or the StatefulSet's pods once Ready (Kubernetes mode); in Kubernetes mode the
//! work holds the bootstrap's Lease, so it never runs while a run grows, drains or repairs the
//! cluster, and its result is recorded as one Event regarding the StatefulSet:
//!
//! | result | type | reason | action |
//! |---|---|---|---|
//! | done | Normal | `BackedUp` / `Restored` | `Backup` / `Restore` |
//! | refused (exit 3) | Warning | `Refused` | `Backup` / `Restore` |
//! | the pods or the Lease not there in time (exit 1) | Warning | `TimedOut` | `WaitForReady`, `AcquireLease` |
//! | stopped by a signal (exit 1) | Warning | `Interrupted` | `Backup` / `Restore` |
//! | any other failure (exit 1) | Warning | `BackupFailed` / `RestoreFailed` | `Backup` / `Restore` |
//! | bad configuration, a missing grant (exit 2) | none | | |

use std::future::Future;

use crate::config::Settings;
use crate::kubernetes::{self, events};
use crate::node::Node;
use crate::shutdown::Shutdown;
use crate::{Error, Result, resolve};

/// Which job, for its Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// `backup`.
    Backup,
    /// `restore`.
    Restore,
}

impl Job {
    /// The command's name.
    pub fn name(self) -> &'static str {
        match self {
            Job::Backup => "backup",
            Job::Restore => "restore",
        }
    }

    /// The Event of a result (the table above); none for bad configuration (the Job's log says
    /// it, and the same configuration usually stops the Event too).
    pub fn record(self, result: &Result<String>) -> Option<events::Record> {
        let (done, failed, action) = match self {
            Job::Backup => ("BackedUp", "BackupFailed", "Backup"),
            Job::Restore => ("Restored", "RestoreFailed", "Restore"),
        };
        let (warning, reason, action, note) = match result {
            Ok(note) => (false, done, action, note.clone()),
            Err(Error::Config(_) | Error::Forbidden(_)) => return None,
            Err(e @ Error::Refused(_)) => (true, "Refused", action, crate::one_line(e)),
            Err(e @ Error::Timeout { phase, .. }) => {
                let waited = events::waited_for(phase).unwrap_or(action);
                (true, "TimedOut", waited, crate::one_line(e))
            }
            Err(e @ Error::Interrupted { .. }) => (true, "Interrupted", action, crate::one_line(e)),
            Err(e) => (true, failed, action, crate::one_line(e)),
        };
        Some(events::Record {
            warning,
            reason,
            action,
            note: events::note(note),
        })
    }
}

/// Finds the nodes and runs `work` on them: holding the Lease and recording the Event in
/// Kubernetes mode. `work`'s `Ok` is the one-line summary the Event notes.
pub async fn run<F, Fut>(
    settings: &Settings,
    shutdown: &Shutdown,
    job: Job,
    work: F,
) -> Result<String>
where
    F: FnOnce(Vec<Node>) -> Fut,
    Fut: Future<Output = Result<String>>,
{
    let Some(list) = &settings.nodes else {
        let (client, target) = kubernetes::client(settings).await?;
        let discovered = tokio::select! {
            nodes = kubernetes::discover(settings) => nodes,
            signal = shutdown.wait() => Err(interrupted(signal)),
        };
        let result = match discovered {
            Ok(nodes) => {
                let wait = settings.ready_timeout;
                kubernetes::lease::hold(client.clone(), &target, wait, shutdown, || work(nodes))
                    .await
            }
            Err(e) => Err(e),
        };
        if let Some(record) = job.record(&result) {
            events::record_one(client, &target, &record).await;
        }
        return result;
    };
    let targets = resolve::static_targets(list);
    let nodes = tokio::select! {
        nodes = resolve::resolve_all(&targets, settings) => nodes?,
        signal = shutdown.wait() => return Err(interrupted(signal)),
    };
    work(nodes).await
}

fn interrupted(signal: &'static str) -> Error {
    Error::Interrupted {
        signal,
        phase: "discover",
        detail: "nothing was changed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_result_records_its_event_and_bad_configuration_none() {
        let done = Job::Backup.record(&Ok("outcome=backed-up".into())).unwrap();
        assert_eq!(
            (done.warning, done.reason, done.action),
            (false, "BackedUp", "Backup")
        );
        let refused = Job::Restore
            .record(&Err(Error::Refused("the target holds 3 keys".into())))
            .unwrap();
        assert_eq!((refused.warning, refused.reason), (true, "Refused"));
        assert!(refused.note.contains("holds 3 keys"));
        let failed = Job::Restore
            .record(&Err(Error::Storage("read".into())))
            .unwrap();
        assert_eq!(failed.reason, "RestoreFailed");
        let waited = Job::Backup
            .record(&Err(Error::Timeout {
                phase: "waiting for the lease",
                after: std::time::Duration::from_secs(600),
                detail: "held by redis-cluster-heal-1".into(),
            }))
            .unwrap();
        assert_eq!(
            (waited.warning, waited.reason, waited.action),
            (true, "TimedOut", "AcquireLease")
        );
        assert!(
            Job::Backup
                .record(&Err(Error::Config("x".into())))
                .is_none()
        );
    }
}
