//! The frame `backup` and `restore` run in, as the bootstrap does: the nodes are `BOOTSTRAP_NODES`
//! (static mode) or the StatefulSet's pods once Ready (Kubernetes mode); in Kubernetes mode the
//! work holds the bootstrap's Lease, so it never runs while a run grows, drains or repairs the
//! cluster, and its result is recorded as one Event regarding the StatefulSet.

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

    /// The Event of a result: Normal `BackedUp`/`Restored`; Warning `Refused` or
    /// `BackupFailed`/`RestoreFailed`; none for bad configuration (the Job's log says it).
    pub fn record(self, result: &Result<String>) -> Option<events::Record> {
        let (done, failed, action) = match self {
            Job::Backup => ("BackedUp", "BackupFailed", "Backup"),
            Job::Restore => ("Restored", "RestoreFailed", "Restore"),
        };
        let (warning, reason, note) = match result {
            Ok(note) => (false, done, note.clone()),
            Err(Error::Config(_) | Error::Forbidden(_)) => return None,
            Err(e @ Error::Refused(_)) => (true, "Refused", crate::one_line(e)),
            Err(e) => (true, failed, crate::one_line(e)),
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
        let nodes = tokio::select! {
            nodes = kubernetes::discover(settings) => nodes?,
            signal = shutdown.wait() => return Err(interrupted(signal)),
        };
        let (client, target) = kubernetes::client(settings).await?;
        let wait = settings.ready_timeout;
        let result =
            kubernetes::lease::hold(client.clone(), &target, wait, shutdown, || work(nodes)).await;
        if let Some(record) = job.record(&result) {
            events::record_one(client, &target, &record).await;
        }
        return result;
    };
    let targets: Vec<(String, String, u16)> = list
        .iter()
        .enumerate()
        .map(|(i, hp)| {
            let name = match hp.ip() {
                Some(_) => format!("node-{i}"),
                None => hp.to_string(),
            };
            (name, hp.host.clone(), hp.port)
        })
        .collect();
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
        assert!(
            Job::Backup
                .record(&Err(Error::Config("x".into())))
                .is_none()
        );
    }
}
