//! The `BOOTSTRAP_*` environment: every variable the binary reads, its default, and its validation.
//!
//! Raw strings are read with envy, then checked here, once, into [`Settings`]; the rest of the
//! program only sees ready-to-use values. A bad value becomes [`Error::Config`] with one line that
//! names the variable and what it accepts (exit code 2).
//!
//! - [`variables`]: the table of every variable (name, default, meaning), which `--help` prints;
//! - `values`: the checks of one value each (a port, a duration, a node list...);
//! - [`help`]: the text of `--help`;
//! - this file: [`Settings`], read and validated in one place.

mod help;
#[cfg(test)]
mod tests;
mod values;
pub mod variables;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::Error;
use crate::credentials::Credentials;
use crate::node::HostPort;
use crate::tls::{Tls, TlsFiles};

pub use help::help;
use values::*;
use variables::reject_unknown;
pub use variables::{PREFIX, VARIABLES};

/// How logs (and the report) are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines and a table.
    Text,
    /// One JSON object per line.
    Json,
}

/// What a run does when the StatefulSet is still not Ready after `BOOTSTRAP_READY_TIMEOUT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenNotReady {
    /// Exit 1 (retryable), naming the pods that are not ready: the one-shot Job's way.
    Fail,
    /// Exit 0 and change nothing: a scheduled run leaves a rollout, or pods still starting, to
    /// the pods themselves (readiness, `rejoin`) and looks again at its next tick.
    Skip,
}

/// The validated configuration of one run.
#[derive(Clone)]
pub struct Settings {
    /// Namespace of the StatefulSet; `None` means discover it.
    pub namespace: Option<String>,
    /// Name of the StatefulSet.
    pub statefulset: String,
    /// Name of its headless Service.
    pub service: String,
    /// The cluster's DNS suffix.
    pub cluster_domain: String,
    /// The client port of every node (Kubernetes mode).
    pub redis_port: u16,
    /// Replicas per master (R).
    pub replicas_per_master: usize,
    /// Scale in: the node count to drain down to (pods from this index up give their slots away).
    pub drain_to: Option<usize>,
    /// Bound on readiness, DNS and reaching the nodes.
    pub ready_timeout: Duration,
    /// Bound on the cluster agreeing after it is formed.
    pub converge_timeout: Duration,
    /// What a run does when the pods are still not Ready after `ready_timeout`.
    pub when_not_ready: WhenNotReady,
    /// `handover`: bound on handing a master's slots to its replica.
    pub handover_timeout: Duration,
    /// `rejoin`: bound on looking for known peers at new addresses.
    pub rejoin_timeout: Duration,
    /// Static mode: the nodes, in pod order.
    pub nodes: Option<Vec<HostPort>>,
    /// A DNS server to use instead of the system's.
    pub dns_server: Option<SocketAddr>,
    /// AUTH: a password (given, or in a file), with an ACL user when one is set.
    pub credentials: Option<Credentials>,
    /// `users` and `watch`: the Secret of the users' passwords, one file per user.
    pub users_dir: Option<PathBuf>,
    /// `users`: the users' ACL rules, one file per user.
    pub acl_dir: Option<PathBuf>,
    /// `watch`: where to serve `/metrics`.
    pub metrics_address: Option<SocketAddr>,
    /// Whether the ServiceAccount may get Kubernetes nodes (for their zones): only then does a run
    /// ask, so a run without `components/placement` makes no request its Role forbids.
    pub read_nodes: bool,
    /// The `BOOTSTRAP_TLS_*` files, when `BOOTSTRAP_TLS_CA_FILE` is set.
    pub tls_files: Option<TlsFiles>,
    /// Those files read and checked ([`Settings::from_env`] reads them at startup; the pipeline
    /// reads them itself when settings were made otherwise).
    pub tls: Option<Tls>,
    /// Text or JSON output.
    pub log_format: LogFormat,
    /// Observe and plan only.
    pub dry_run: bool,
    /// Repair the placement of a formed cluster (`BOOTSTRAP_REPAIR_PLACEMENT`).
    pub repair_placement: bool,
    /// `backup` and `restore`: where backups live (`BOOTSTRAP_BACKUP_URL`).
    pub backup_url: Option<crate::store::Location>,
    /// `backup`: how many complete backups to keep (`BOOTSTRAP_BACKUP_KEEP`).
    pub backup_keep: usize,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Written out by hand so the password never reaches a log line.
        f.debug_struct("Settings")
            .field("namespace", &self.namespace)
            .field("statefulset", &self.statefulset)
            .field("service", &self.service)
            .field("cluster_domain", &self.cluster_domain)
            .field("redis_port", &self.redis_port)
            .field("replicas_per_master", &self.replicas_per_master)
            .field("drain_to", &self.drain_to)
            .field("ready_timeout", &self.ready_timeout)
            .field("converge_timeout", &self.converge_timeout)
            .field("when_not_ready", &self.when_not_ready)
            .field("handover_timeout", &self.handover_timeout)
            .field("rejoin_timeout", &self.rejoin_timeout)
            .field("nodes", &self.nodes)
            .field("dns_server", &self.dns_server)
            .field("credentials", &self.credentials)
            .field("users_dir", &self.users_dir)
            .field("acl_dir", &self.acl_dir)
            .field("metrics_address", &self.metrics_address)
            .field("read_nodes", &self.read_nodes)
            .field("tls_files", &self.tls_files)
            .field("log_format", &self.log_format)
            .field("dry_run", &self.dry_run)
            .field("repair_placement", &self.repair_placement)
            .field("backup_url", &self.backup_url)
            .field("backup_keep", &self.backup_keep)
            .finish()
    }
}

/// The variables as strings, before validation.
#[derive(Deserialize, Default)]
struct Raw {
    namespace: Option<String>,
    statefulset: Option<String>,
    service: Option<String>,
    cluster_domain: Option<String>,
    redis_port: Option<String>,
    replicas_per_master: Option<String>,
    drain_to: Option<String>,
    ready_timeout: Option<String>,
    converge_timeout: Option<String>,
    when_not_ready: Option<String>,
    handover_timeout: Option<String>,
    rejoin_timeout: Option<String>,
    nodes: Option<String>,
    dns_server: Option<String>,
    password: Option<String>,
    password_file: Option<String>,
    username: Option<String>,
    users_dir: Option<String>,
    acl_dir: Option<String>,
    metrics_address: Option<String>,
    tls_ca_file: Option<String>,
    tls_cert_file: Option<String>,
    tls_key_file: Option<String>,
    read_nodes: Option<String>,
    log_format: Option<String>,
    dry_run: Option<String>,
    repair_placement: Option<String>,
    backup_url: Option<String>,
    backup_keep: Option<String>,
}

impl Settings {
    /// Reads and validates the process environment.
    ///
    /// Variables that are not `BOOTSTRAP_*` are never looked at, even when they are not UTF-8
    /// (any process may inherit such a variable); a `BOOTSTRAP_*` one that is not UTF-8 is an
    /// error naming it.
    ///
    /// The TLS files are read here too, so a bad one stops the run before anything else (the
    /// manifest tests check a Job's environment with [`Settings::from_vars`], without the files).
    pub fn from_env() -> Result<Settings, Error> {
        let mut settings = Settings::from_env_unread()?;
        settings.tls = settings
            .tls_files
            .as_ref()
            .map(TlsFiles::load)
            .transpose()?;
        Ok(settings)
    }

    /// Like [`Settings::from_env`] without reading the TLS files: for `watch` and `synced`, which
    /// read them themselves and must run even when a broken renewal is on disk (the node keeps
    /// serving its certificate, and they say so).
    pub fn from_env_unread() -> Result<Settings, Error> {
        Settings::from_vars(utf8_vars(std::env::vars_os())?)
    }

    /// Reads and validates the given variables (all of them; non-`BOOTSTRAP_` ones are ignored).
    pub fn from_vars<I>(vars: I) -> Result<Settings, Error>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(name, _)| name.starts_with(PREFIX))
            .collect();
        reject_unknown(&vars)?;
        // Empty values count as unset, as a blank `value: ""` in a manifest means "not given".
        let raw: Raw = envy::prefixed(PREFIX)
            .from_iter(vars.into_iter().filter(|(_, value)| !value.is_empty()))
            .map_err(|e| Error::Config(format!("cannot read the BOOTSTRAP_* environment: {e}")))?;
        Settings::validate(raw)
    }

    fn validate(raw: Raw) -> Result<Settings, Error> {
        let namespace = raw
            .namespace
            .map(|v| dns_label("BOOTSTRAP_NAMESPACE", v))
            .transpose()?;
        let statefulset = dns_label(
            "BOOTSTRAP_STATEFULSET",
            raw.statefulset.unwrap_or_else(|| "redis-app".into()),
        )?;
        let service = dns_label(
            "BOOTSTRAP_SERVICE",
            raw.service.unwrap_or_else(|| "redis-service".into()),
        )?;
        let cluster_domain = domain(
            "BOOTSTRAP_CLUSTER_DOMAIN",
            raw.cluster_domain.unwrap_or_else(|| "cluster.local".into()),
        )?;
        let redis_port = match raw.redis_port {
            None => 6379,
            Some(v) => port("BOOTSTRAP_REDIS_PORT", &v)?,
        };
        let replicas_per_master = match raw.replicas_per_master {
            None => 1,
            Some(v) => v.trim().parse::<usize>().ok().filter(|r| *r <= 100).ok_or_else(|| {
                Error::Config(format!(
                    "BOOTSTRAP_REPLICAS_PER_MASTER={v:?} is not valid: expected a whole number from 0 to 100"
                ))
            })?,
        };
        let drain_to = raw
            .drain_to
            .map(|v| drain_to(&v, replicas_per_master))
            .transpose()?;
        let ready_timeout = duration("BOOTSTRAP_READY_TIMEOUT", raw.ready_timeout, "10m")?;
        let converge_timeout = duration("BOOTSTRAP_CONVERGE_TIMEOUT", raw.converge_timeout, "2m")?;
        let when_not_ready = match raw.when_not_ready.as_deref().map(str::trim) {
            None | Some("fail") => WhenNotReady::Fail,
            Some("skip") => WhenNotReady::Skip,
            Some(other) => {
                return Err(Error::Config(format!(
                    "BOOTSTRAP_WHEN_NOT_READY={other:?} is not valid: expected fail or skip"
                )));
            }
        };
        let handover_timeout = duration("BOOTSTRAP_HANDOVER_TIMEOUT", raw.handover_timeout, "30s")?;
        let rejoin_timeout = duration("BOOTSTRAP_REJOIN_TIMEOUT", raw.rejoin_timeout, "10m")?;
        let nodes = raw.nodes.map(|v| node_list(&v)).transpose()?;
        let dns_server = raw
            .dns_server
            .map(|v| {
                v.trim().parse::<SocketAddr>().map_err(|_| {
                    Error::Config(format!(
                        "BOOTSTRAP_DNS_SERVER={v:?} is not valid: expected ip:port, e.g. 10.96.0.10:53 or [fd00::10]:53"
                    ))
                })
            })
            .transpose()?;
        let credentials = credentials(raw.username, raw.password, raw.password_file)?;
        let users_dir = raw.users_dir.as_deref().map(path);
        let acl_dir = raw.acl_dir.as_deref().map(path);
        let metrics_address = raw
            .metrics_address
            .map(|v| {
                v.trim().parse::<SocketAddr>().map_err(|_| {
                    Error::Config(format!(
                        "BOOTSTRAP_METRICS_ADDRESS={v:?} is not valid: expected ip:port to listen on, e.g. 0.0.0.0:9180"
                    ))
                })
            })
            .transpose()?;
        let tls_files = TlsFiles::from_vars(
            raw.tls_ca_file.as_deref(),
            raw.tls_cert_file.as_deref(),
            raw.tls_key_file.as_deref(),
        )?;
        let log_format = match raw.log_format.as_deref().map(str::trim) {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(Error::Config(format!(
                    "BOOTSTRAP_LOG_FORMAT={other:?} is not valid: expected text or json"
                )));
            }
        };
        let read_nodes = boolean("BOOTSTRAP_READ_NODES", raw.read_nodes, false)?;
        let dry_run = boolean("BOOTSTRAP_DRY_RUN", raw.dry_run, false)?;
        Ok(Settings {
            namespace,
            statefulset,
            service,
            cluster_domain,
            redis_port,
            replicas_per_master,
            drain_to,
            ready_timeout,
            converge_timeout,
            when_not_ready,
            handover_timeout,
            rejoin_timeout,
            nodes,
            dns_server,
            credentials,
            users_dir,
            acl_dir,
            metrics_address,
            read_nodes,
            tls_files,
            tls: None,
            log_format,
            dry_run,
            repair_placement: boolean("BOOTSTRAP_REPAIR_PLACEMENT", raw.repair_placement, true)?,
            backup_url: raw
                .backup_url
                .map(|v| crate::store::Location::parse(&v))
                .transpose()?,
            backup_keep: match raw.backup_keep {
                None => 7,
                Some(v) => v
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| {
                        Error::Config(format!(
                            "BOOTSTRAP_BACKUP_KEEP={v:?} is not valid: expected a whole number of \
                         backups to keep, 1 or more"
                        ))
                    })?,
            },
        })
    }
}

/// The `BOOTSTRAP_*` variables as strings; every other variable is dropped unread.
pub fn utf8_vars<I>(vars: I) -> Result<Vec<(String, String)>, Error>
where
    I: IntoIterator<Item = (OsString, OsString)>,
{
    let mut ours = Vec::new();
    for (name, value) in vars {
        if !name.as_encoded_bytes().starts_with(PREFIX.as_bytes()) {
            continue;
        }
        let shown = name.to_string_lossy().into_owned();
        let (Ok(name), Ok(value)) = (name.into_string(), value.into_string()) else {
            return Err(Error::Config(format!(
                "{shown} is not valid UTF-8 (in its name or value): expected UTF-8 text, like every BOOTSTRAP_* value"
            )));
        };
        ours.push((name, value));
    }
    Ok(ours)
}

/// The log format asked for by `BOOTSTRAP_LOG_FORMAT`, read on its own before anything else so
/// that even a configuration error is printed in that format. `None` when the value is not one
/// of the accepted ones: the full validation then reports it (in text, the format being unknown).
pub fn log_format_from_env() -> Option<LogFormat> {
    let value = std::env::var_os("BOOTSTRAP_LOG_FORMAT");
    match value.as_ref().map(|v| v.to_str().map(str::trim)) {
        None | Some(Some("")) | Some(Some("text")) => Some(LogFormat::Text),
        Some(Some("json")) => Some(LogFormat::Json),
        Some(_) => None,
    }
}
