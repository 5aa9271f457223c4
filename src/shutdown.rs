//! Stopping at a safe point. Kubernetes sends SIGTERM when it evicts or deletes the Job's pod, a
//! person presses Ctrl-C (SIGINT): the run then stops between two commands, never in the middle
//! of a step, logs what it did and what remains, and exits 1 (retryable: a re-run finishes).
//!
//! Waiting phases (readiness, DNS, connecting, observing, converging) change nothing, so they
//! stop at once; forming stops before its next group of commands or its next `CLUSTER REPLICATE`.

use tokio::sync::watch;
use tracing::warn;

/// Whether a stop was asked for, and by which signal. Cheap to clone; every phase holds one.
#[derive(Debug, Clone)]
pub struct Shutdown {
    signal: watch::Receiver<Option<&'static str>>,
}

impl Shutdown {
    /// Listens for SIGTERM and SIGINT from now on. Must be called inside the async runtime.
    pub fn listen() -> Shutdown {
        let (tx, rx) = watch::channel(None);
        tokio::spawn(async move {
            let signal = received().await;
            warn!(
                signal,
                "received {signal}: stopping at the next safe point (between two commands)"
            );
            let _ = tx.send(Some(signal));
            // Keep the sender alive so `wait` never sees a closed channel.
            std::future::pending::<()>().await;
        });
        Shutdown { signal: rx }
    }

    /// A shutdown that never comes: for callers that handle signals themselves.
    pub fn never() -> Shutdown {
        let (tx, rx) = watch::channel(None);
        std::mem::forget(tx);
        Shutdown { signal: rx }
    }

    /// The signal received so far, if any.
    pub fn requested(&self) -> Option<&'static str> {
        *self.signal.borrow()
    }

    /// Resolves with the signal's name once one is received.
    pub async fn wait(&self) -> &'static str {
        let mut rx = self.signal.clone();
        match rx.wait_for(Option::is_some).await {
            Ok(signal) => signal.expect("waited for Some"),
            Err(_) => std::future::pending().await,
        }
    }
}

#[cfg(unix)]
async fn received() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => (term, int),
        _ => {
            warn!("cannot listen for SIGTERM/SIGINT: a signal will stop the run at once");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

#[cfg(not(unix))]
async fn received() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "Ctrl-C"
}
