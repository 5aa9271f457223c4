//! # redis-cluster-bootstrap
//!
//! Forms a Redis Cluster out of the pods of a StatefulSet (or a static list of nodes), safely and
//! idempotently: run it on fresh nodes and it forms the cluster; run it again and it changes nothing;
//! run it after an interruption or a full restart and it finishes or re-meshes what is there. It never
//! flushes, resets or rewrites a node that holds data: when in doubt it refuses and explains.
//!
//! ## Layout
//!
//! The pipeline reads top to bottom, one file per phase:
//!
//! - [`config`]: the `BOOTSTRAP_*` environment, parsed and validated into [`config::Settings`].
//! - [`telemetry`]: logging (text or JSON), set up once.
//! - [`kubernetes`]: finds the StatefulSet, waits for it to be Ready with a watch.
//! - [`resolve`]: turns pod and host names into addresses over DNS.
//! - [`client`]: one connection to one node, with timeouts and AUTH ([`credentials`]); it sends
//!   only the commands of [`commands`], the one list the production ACL user is built from; over
//!   [`tls`] when `BOOTSTRAP_TLS_CA_FILE` is set.
//! - [`observe`]: reads what every node knows of itself and of the cluster; [`survey`] reads it
//!   for the planner, keeping only each node's own line while every view agrees.
//! - [`plan`]: pure code that turns the observations into a decision and a list of steps, with
//!   [`layout`] (who is master of which slots, who replicates whom: a [`pairing`], which
//!   [`plan::placement`] chooses so no replica shares its master's Kubernetes node or zone),
//!   [`slots`] (the even split),
//!   [`cluster_nodes`] and [`observation`] (parsers of what Redis prints) and [`agreement`]
//!   (what "formed" means).
//! - [`form`]: carries out the steps, each only if still missing.
//! - [`migrate`]: moves slots and their keys between masters (a growth or a drain).
//! - [`relocate`]: carries out a placement repair ([`plan::repair`]), one `CLUSTER REPLICATE` or
//!   manual `CLUSTER FAILOVER` at a time, each waited for.
//! - [`stabilize`]: clears a replica's stale open slot ([`plan::stale_slots`]) with
//!   `CLUSTER SETSLOT <slot> STABLE` on its master, once confirmed.
//! - [`converge`]: waits until every node agrees on the whole topology.
//! - [`report`]: the result table and the one-line summary.
//! - [`pipeline`]: runs the phases in order and times each one: reads and plans, then carries out
//!   the decision's phases from one table ([`pipeline::phases`]).
//! - [`shutdown`]: SIGTERM and SIGINT stop the run at the next safe point.
//!
//! [`rdb`] reads RDB files (a backup's snapshots) one key at a time into the payloads `RESTORE`
//! takes; [`slots::key_slot`] says which master owns each key.
//!
//! The second entry point, [`pod`], holds the commands that run inside a Redis pod over the same
//! client, TLS and command list: `handover` (the preStop hook), `ready` (the readiness probe),
//! `rejoin` (at the pod's start), `install` (the init container copies the binary),
//! `check-data` (before the server starts: can it load the data on the volume? [`server`] says
//! which server reads which RDB version), `users` (the node's ACL users from [`passwords`] files,
//! at its start), `watch` (the sidecar that applies changed passwords and renewed certificates)
//! and `synced`.
//!
//! [`run`] is the whole program behind `main`; [`Error`] says what went wrong and which exit code it
//! maps to.

pub mod agreement;
pub mod backup;
pub mod client;
pub mod cluster_nodes;
pub mod commands;
pub mod config;
pub mod converge;
pub mod credentials;
mod error;
pub mod form;
pub mod job;
pub mod kubernetes;
pub mod layout;
pub mod migrate;
pub mod node;
pub mod observation;
pub mod observe;
pub mod pairing;
pub mod passwords;
pub mod pipeline;
pub mod plan;
pub mod pod;
pub mod rdb;
pub mod relocate;
pub mod report;
pub mod resolve;
pub mod resp;
pub mod restore;
pub mod server;
pub mod serving;
pub mod settle;
pub mod shutdown;
pub mod slots;
pub mod stabilize;
pub mod store;
pub mod survey;
pub mod telemetry;
pub mod tls;
mod tls_probe;

pub use error::{Error, ExitCode, one_line};
pub use pipeline::run;

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
