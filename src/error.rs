//! The one error type of the program and the exit code each failure maps to.
//!
//! Exit codes are part of the interface (the Job's `podFailurePolicy` relies on them):
//! 0 formed, 1 retryable, 2 bad configuration, 3 refused.

use std::time::Duration;

/// The documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// The cluster is formed and every node agrees.
    Formed = 0,
    /// A retryable failure: a timeout, an unreachable node, the API server unavailable.
    Retryable = 1,
    /// Bad configuration: fix the named variable.
    BadConfig = 2,
    /// The nodes are in a state the tool will not touch; a person must look.
    Refused = 3,
}

/// Everything that can stop a run, one variant per failing step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `BOOTSTRAP_*` variable has a value the tool cannot use.
    #[error("{0}")]
    Config(String),

    /// A node refused the password (or the user): a configuration problem, told apart so that the
    /// client can try the next password of `BOOTSTRAP_PASSWORD_FILE`.
    #[error("{0}")]
    Rejected(String),

    /// The nodes are in a state the tool will not change.
    #[error("refused: {0}")]
    Refused(String),

    /// A node could not be reached (connect, AUTH or a command) within its timeout.
    #[error("node {node} ({addr}) is unreachable: {source}")]
    Unreachable {
        /// The pod or host name.
        node: String,
        /// Its address.
        addr: String,
        /// What the Redis client said.
        #[source]
        source: redis::RedisError,
    },

    /// A node answered a command with an error.
    #[error("node {node} ({addr}) rejected `{command}`: {source}")]
    Command {
        /// The pod or host name.
        node: String,
        /// Its address.
        addr: String,
        /// The command, without secrets.
        command: String,
        /// What the node answered.
        #[source]
        source: redis::RedisError,
    },

    /// A phase did not finish within its timeout.
    #[error("{phase} did not finish within {}: {detail}", humantime::format_duration(*.after))]
    Timeout {
        /// The phase that timed out ("readiness", "convergence", ...).
        phase: &'static str,
        /// The timeout that expired.
        after: Duration,
        /// What was still missing, naming the nodes.
        detail: String,
    },

    /// A name did not resolve, or resolved badly.
    #[error("DNS: {0}")]
    Dns(String),

    /// The backup storage (`BOOTSTRAP_BACKUP_URL`) failed: a read, a write, a listing.
    #[error("storage: {0}")]
    Storage(String),

    /// The Kubernetes API failed in a way retrying will not fix soon enough.
    #[error("Kubernetes API: {0}")]
    Kubernetes(String),

    /// A signal stopped the run at a safe point; a re-run finishes what remains.
    #[error("interrupted by {signal} during {phase}: {detail}; a re-run finishes it")]
    Interrupted {
        /// `SIGTERM` or `SIGINT`.
        signal: &'static str,
        /// The phase it stopped in.
        phase: &'static str,
        /// What was done and what remains.
        detail: String,
    },

    /// `ready`: the local node does not serve yet (the readiness probe's "no").
    #[error("not ready: {0}")]
    NotReady(String),

    /// The ServiceAccount lacks a permission: a configuration problem.
    #[error("Kubernetes API: forbidden: {0}")]
    Forbidden(String),

    /// The tool was about to do something it must never do (a command outside
    /// `src/commands.rs`): a bug. Nothing was sent; a person must look, as for a refusal.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The exit code this error maps to.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Config(_) | Error::Rejected(_) | Error::Forbidden(_) => ExitCode::BadConfig,
            Error::Refused(_) | Error::Internal(_) => ExitCode::Refused,
            Error::Unreachable { .. }
            | Error::Command { .. }
            | Error::Timeout { .. }
            | Error::Interrupted { .. }
            | Error::Dns(_)
            | Error::Storage(_)
            | Error::Kubernetes(_)
            | Error::NotReady(_) => ExitCode::Retryable,
        }
    }
}

/// An error and its causes on one line, each cause once: the form every failure is logged in.
pub fn one_line(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}
