//! The second entry point: commands that run inside a Redis pod, beside the node they serve.
//!
//! The bootstrap (the Job and the CronJob) looks at the whole cluster from outside; these look at
//! one node from inside its pod, at the moments only the pod sees:
//!
//! - [`handover`]: the `preStop` hook. A master that owns slots hands them to its most up-to-date
//!   replica (`CLUSTER FAILOVER`, which pauses writes until the replica has caught up) and waits
//!   until it is a replica itself, so a rollout, an upgrade or a drain stops no master.
//! - [`ready`]: the readiness probe. Ready means serving: the data is loaded and a replica is in
//!   sync with its master, so a StatefulSet's rolling update waits for each restarted pod.
//! - [`rejoin`]: run as the pod starts. A node back on a new address finds the peers it knows at
//!   their new addresses and meets them, so a full restart heals without a Job.
//! - [`install`]: the init container's step: copies this binary into the pod (the bootstrap image
//!   is distroless, so the binary copies itself).
//! - [`check_data`]: the server container's first step: refuses to go on when the data on the
//!   volume was written by a newer server than the one about to start (a roll backwards), so the
//!   pod stops with its data intact and a line that says why.
//! - [`users`]: the Redis container's first step: the node's ACL users, from the rules and the
//!   Secret's password files, as configuration for redis-server's stdin; it makes the pod-local
//!   user `watch` logs in as.
//! - [`watch`]: all along, as a native sidecar: applies changed passwords and renewed
//!   certificates to the node without a restart.
//! - [`synced`]: asked by a person between two steps of a change: has the node applied the files?
//!
//! They share the bootstrap's client (timeouts, AUTH, TLS, the one list of commands) and its
//! configuration; [`Context`] says which node is the local one and how peers are named.

pub mod check_data;
pub mod context;
pub mod handover;
pub mod install;
pub mod ready;
pub mod rejoin;
pub mod synced;
pub mod users;
pub mod watch;

pub use context::Context;

use crate::Result;
use crate::config::Settings;
use crate::shutdown::Shutdown;

/// A command run inside a Redis pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodCommand {
    /// `handover`: the preStop hook.
    Handover,
    /// `ready`: the readiness probe.
    Ready,
    /// `rejoin`: at the pod's start.
    Rejoin,
    /// `users`: the node's ACL users, before it starts.
    Users,
    /// `watch`: beside the node, until stopped.
    Watch,
    /// `synced`: has the node applied the secrets' files?
    Synced,
}

impl PodCommand {
    /// The command named by a command-line argument, if it is one of these.
    pub fn parse(arg: &str) -> Option<PodCommand> {
        match arg {
            "handover" => Some(PodCommand::Handover),
            "ready" => Some(PodCommand::Ready),
            "rejoin" => Some(PodCommand::Rejoin),
            "users" => Some(PodCommand::Users),
            "watch" => Some(PodCommand::Watch),
            "synced" => Some(PodCommand::Synced),
            _ => None,
        }
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PodCommand::Handover => "handover",
            PodCommand::Ready => "ready",
            PodCommand::Rejoin => "rejoin",
            PodCommand::Users => "users",
            PodCommand::Watch => "watch",
            PodCommand::Synced => "synced",
        }
    }
}

/// Runs one pod command. `Ok` is exit 0: handed over (or nothing to hand over), ready, rejoined
/// (or nothing to rejoin), users printed, watched until a signal, synced. Not ready and not
/// synced are [`crate::Error::NotReady`] (exit 1).
pub async fn run(command: PodCommand, settings: Settings) -> Result<()> {
    // `users` runs before the node exists: it has no node to reach.
    if command == PodCommand::Users {
        return users::run(&settings);
    }
    let context = Context::new(command, settings).await?;
    match command {
        PodCommand::Handover => handover::run(&context).await,
        PodCommand::Ready => ready::run(&context).await,
        PodCommand::Rejoin => rejoin::run(&context).await,
        PodCommand::Watch => watch::run(&context, Shutdown::listen()).await,
        PodCommand::Synced => synced::run(&context).await,
        PodCommand::Users => unreachable!("handled above"),
    }
}
