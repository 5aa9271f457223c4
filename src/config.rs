//! The `BOOTSTRAP_*` environment: every variable the binary reads, its default, and its validation.
//!
//! Raw strings are read with envy, then checked here, once, into [`Settings`]; the rest of the
//! program only sees ready-to-use values. A bad value becomes [`Error::Config`] with one line that
//! names the variable and what it accepts (exit code 2).

use std::collections::HashSet;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::Error;
use crate::credentials::Credentials;
use crate::node::HostPort;
use crate::tls::{Tls, TlsFiles};

/// The prefix of every variable.
pub const PREFIX: &str = "BOOTSTRAP_";

/// Every variable the binary reads: name, default, meaning. `--help` prints this table and the
/// manifest tests check the Job's environment against it.
pub const VARIABLES: &[(&str, &str, &str)] = &[
    (
        "BOOTSTRAP_NAMESPACE",
        "the pod's namespace, else the kubeconfig's, else default",
        "where the StatefulSet lives",
    ),
    (
        "BOOTSTRAP_STATEFULSET",
        "redis-app",
        "the StatefulSet whose pods form the cluster",
    ),
    ("BOOTSTRAP_SERVICE", "redis-service", "its headless Service"),
    ("BOOTSTRAP_CLUSTER_DOMAIN", "cluster.local", "DNS suffix"),
    ("BOOTSTRAP_REDIS_PORT", "6379", "client port of every node"),
    (
        "BOOTSTRAP_REPLICAS_PER_MASTER",
        "1",
        "R: the cluster has N/(1+R) masters, each with R replicas",
    ),
    (
        "BOOTSTRAP_DRAIN_TO",
        "unset",
        "scale in: move every slot off the pods from this index up, before the StatefulSet shrinks to it",
    ),
    (
        "BOOTSTRAP_READY_TIMEOUT",
        "10m",
        "how long to wait for readiness, DNS and reachability (90s, 10m)",
    ),
    (
        "BOOTSTRAP_CONVERGE_TIMEOUT",
        "2m",
        "how long to wait for the cluster to agree after forming it",
    ),
    (
        "BOOTSTRAP_WHEN_NOT_READY",
        "fail",
        "pods still not Ready after BOOTSTRAP_READY_TIMEOUT (a rollout, slow starts): fail (exit 1) or skip (exit 0, change nothing: for scheduled runs)",
    ),
    (
        "BOOTSTRAP_HANDOVER_TIMEOUT",
        "30s",
        "handover (preStop): how long a master may take to hand its slots to a replica",
    ),
    (
        "BOOTSTRAP_REJOIN_TIMEOUT",
        "10m",
        "rejoin (pod start): how long to keep looking for known peers at new addresses",
    ),
    (
        "BOOTSTRAP_NODES",
        "unset",
        "static mode: host:port,host:port,... (no Kubernetes API; node i plays pod i)",
    ),
    (
        "BOOTSTRAP_DNS_SERVER",
        "unset",
        "ip:port of the DNS server to ask instead of resolv.conf",
    ),
    (
        "BOOTSTRAP_PASSWORD",
        "unset",
        "password sent with AUTH to every node",
    ),
    (
        "BOOTSTRAP_USERNAME",
        "unset",
        "ACL user sent with the password (AUTH user password); needs BOOTSTRAP_PASSWORD",
    ),
    // Read and checked at startup by src/tls.rs: a bad file is exit 2 before any node is reached.
    (
        "BOOTSTRAP_TLS_CA_FILE",
        "unset",
        "CA bundle: speak TLS to every node and verify its certificate and name",
    ),
    (
        "BOOTSTRAP_TLS_CERT_FILE",
        "unset",
        "client certificate, for nodes that ask for one",
    ),
    (
        "BOOTSTRAP_TLS_KEY_FILE",
        "unset",
        "the client certificate's key",
    ),
    (
        "BOOTSTRAP_READ_NODES",
        "false",
        "get each pod's Kubernetes node for its zone: set by components/placement, whose ClusterRole allows it",
    ),
    (
        "BOOTSTRAP_LOG_FORMAT",
        "text",
        "text for people, json for log pipelines",
    ),
    (
        "BOOTSTRAP_DRY_RUN",
        "false",
        "observe and print the plan, change nothing",
    ),
    (
        "BOOTSTRAP_REPAIR_PLACEMENT",
        "true",
        "on a healthy cluster, re-pair replicas (CLUSTER REPLICATE, manual CLUSTER FAILOVER) so no \
         shard lives on one node or zone; false: for pods placed by hand",
    ),
];

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
    /// AUTH: a password, with an ACL user when one is set.
    pub credentials: Option<Credentials>,
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
            .field("read_nodes", &self.read_nodes)
            .field("tls_files", &self.tls_files)
            .field("log_format", &self.log_format)
            .field("dry_run", &self.dry_run)
            .field("repair_placement", &self.repair_placement)
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
    username: Option<String>,
    tls_ca_file: Option<String>,
    tls_cert_file: Option<String>,
    tls_key_file: Option<String>,
    read_nodes: Option<String>,
    log_format: Option<String>,
    dry_run: Option<String>,
    repair_placement: Option<String>,
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
        let mut settings = Settings::from_vars(utf8_vars(std::env::vars_os())?)?;
        settings.tls = settings
            .tls_files
            .as_ref()
            .map(TlsFiles::load)
            .transpose()?;
        Ok(settings)
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
        let credentials = credentials(raw.username, raw.password)?;
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
        let read_nodes = flag("BOOTSTRAP_READ_NODES", raw.read_nodes)?;
        let dry_run = flag("BOOTSTRAP_DRY_RUN", raw.dry_run)?;
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
            read_nodes,
            tls_files,
            tls: None,
            log_format,
            dry_run,
            repair_placement: boolean("BOOTSTRAP_REPAIR_PLACEMENT", raw.repair_placement, true)?,
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

/// A misspelt variable would otherwise be silently ignored and its default used.
fn reject_unknown(vars: &[(String, String)]) -> Result<(), Error> {
    let known: HashSet<&str> = VARIABLES.iter().map(|(name, _, _)| *name).collect();
    match vars.iter().find(|(name, _)| !known.contains(name.as_str())) {
        None => Ok(()),
        Some((name, _)) => Err(Error::Config(format!(
            "{name} is not a known variable: expected one of {}",
            VARIABLES
                .iter()
                .map(|(name, _, _)| *name)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn dns_label(var: &str, value: String) -> Result<String, Error> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(value)
    } else {
        Err(Error::Config(format!(
            "{var}={value:?} is not valid: expected a Kubernetes name (lowercase letters, digits and '-', at most 63)"
        )))
    }
}

fn domain(var: &str, value: String) -> Result<String, Error> {
    let trimmed = value.trim_end_matches('.').to_string();
    let ok = !trimmed.is_empty()
        && trimmed
            .split('.')
            .all(|label| dns_label(var, label.to_string()).is_ok());
    if ok {
        Ok(trimmed)
    } else {
        Err(Error::Config(format!(
            "{var}={value:?} is not valid: expected a DNS domain such as cluster.local"
        )))
    }
}

/// A user needs a password: without one, `AUTH` cannot name the user at all.
fn credentials(
    username: Option<String>,
    password: Option<String>,
) -> Result<Option<Credentials>, Error> {
    match (username, password) {
        (None, None) => Ok(None),
        (None, Some(password)) => Ok(Some(Credentials::new(None, password))),
        (Some(_), None) => Err(Error::Config(
            "BOOTSTRAP_USERNAME is set but BOOTSTRAP_PASSWORD is not: expected both (an ACL user and its password), \
             or BOOTSTRAP_PASSWORD alone (requirepass)"
                .into(),
        )),
        (Some(user), Some(password)) => {
            let user = user.trim().to_string();
            if user.is_empty() || user.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(Error::Config(format!(
                    "BOOTSTRAP_USERNAME={user:?} is not valid: expected an ACL user name without spaces"
                )));
            }
            Ok(Some(Credentials::new(Some(user), password)))
        }
    }
}

/// `BOOTSTRAP_DRAIN_TO`: whole shards (a multiple of 1+R), at least 3 masters' worth.
/// A `true`/`false` variable (also `1`/`0`, `yes`/`no`), `default` when unset.
fn boolean(name: &str, value: Option<String>, default: bool) -> Result<bool, Error> {
    match value
        .as_deref()
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None => Ok(default),
        Some("true" | "1" | "yes") => Ok(true),
        Some("false" | "0" | "no") => Ok(false),
        Some(_) => Err(Error::Config(format!(
            "{name}={:?} is not valid: expected true or false",
            value.unwrap_or_default()
        ))),
    }
}

fn drain_to(value: &str, replicas_per_master: usize) -> Result<usize, Error> {
    let group = replicas_per_master + 1;
    let n = value.trim().parse::<usize>().map_err(|_| {
        Error::Config(format!(
            "BOOTSTRAP_DRAIN_TO={value:?} is not valid: expected a whole number of nodes, e.g. 6"
        ))
    })?;
    if !n.is_multiple_of(group) || n < 3 * group {
        return Err(Error::Config(format!(
            "BOOTSTRAP_DRAIN_TO={n} is not valid: expected a multiple of 1+{replicas_per_master} \
             (whole shards) of at least {} (3 masters with {replicas_per_master} replica(s) each)",
            3 * group
        )));
    }
    Ok(n)
}

/// A yes/no variable: `true`/`false` (also `1`/`0`, `yes`/`no`), unset meaning false.
fn flag(var: &str, value: Option<String>) -> Result<bool, Error> {
    match value.as_deref().map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if matches!(v.as_str(), "true" | "1" | "yes") => Ok(true),
        Some(v) if matches!(v.as_str(), "false" | "0" | "no") => Ok(false),
        Some(v) => Err(Error::Config(format!(
            "{var}={v:?} is not valid: expected true or false"
        ))),
    }
}

fn port(var: &str, value: &str) -> Result<u16, Error> {
    value
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| {
            Error::Config(format!(
                "{var}={value:?} is not valid: expected a port from 1 to 65535"
            ))
        })
}

fn duration(var: &str, value: Option<String>, default: &str) -> Result<Duration, Error> {
    let text = value.unwrap_or_else(|| default.to_string());
    humantime::parse_duration(text.trim())
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            Error::Config(format!(
                "{var}={text:?} is not valid: expected a positive duration such as 90s, 10m or 1h"
            ))
        })
}

fn node_list(value: &str) -> Result<Vec<HostPort>, Error> {
    let mut nodes = Vec::new();
    if value.trim().is_empty() {
        return Err(Error::Config(
            "BOOTSTRAP_NODES is empty: expected host:port,host:port,... or leave it unset for Kubernetes mode"
                .into(),
        ));
    }
    for (position, item) in value.split(',').map(str::trim).enumerate() {
        // `a,,b` or a trailing comma is a typo (a node left out?), not a shorter list.
        if item.is_empty() {
            return Err(Error::Config(format!(
                "BOOTSTRAP_NODES={value:?} has an empty entry at position {}: expected host:port,host:port,... \
                 with no empty entries",
                position + 1
            )));
        }
        let node = item.parse::<HostPort>().map_err(|why| {
            Error::Config(format!(
                "BOOTSTRAP_NODES has {item:?}: {why}; expected host:port,host:port,... (IPv6 as [::1]:6379)"
            ))
        })?;
        if nodes.contains(&node) {
            return Err(Error::Config(format!(
                "BOOTSTRAP_NODES lists {item} twice: expected every node once"
            )));
        }
        nodes.push(node);
    }
    Ok(nodes)
}

/// The text of `--help`.
pub fn help() -> String {
    let mut text = format!(
        "{} {}\n{}\n\nUsage: redis-cluster-bootstrap [--help | --version | --print-acl]\n       \
         redis-cluster-bootstrap handover | ready | rejoin | install DIR\n\n\
         Without a command it forms or heals the cluster (the Job and the CronJob).\n\
         --print-acl prints the ACL users it needs (bootstrap, replication).\n\n\
         Inside a Redis pod (the local node is 127.0.0.1:BOOTSTRAP_REDIS_PORT, or the first of\n\
         BOOTSTRAP_NODES):\n  \
         handover  preStop: a master that owns slots hands them to its most up-to-date replica\n            \
         (CLUSTER FAILOVER) and waits until it is a replica itself\n  \
         ready     readiness probe: exit 0 once the node serves (loaded, a replica in sync)\n  \
         rejoin    at start: CLUSTER MEET the known peers found at new addresses\n  \
         install   copy this binary into DIR (an init container fills an emptyDir)\n\n\
         Configuration comes from the environment only:\n\n",
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_DESCRIPTION"),
    );
    for (name, default, meaning) in VARIABLES {
        text.push_str(&format!(
            "  {name:<31} {meaning}\n  {:<31} (default: {default})\n",
            ""
        ));
    }
    text.push_str(
        "\nRUST_LOG filters the logs (default: info).\n\n\
         Exit codes:\n  0  the cluster is formed and every node agrees\n  \
         1  retryable failure: timeout, unreachable node, API server unavailable\n  \
         2  bad configuration: the message names the variable\n  \
         3  refused: the nodes are in a state the tool will not touch; a person must look\n",
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, Error> {
        Settings::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn defaults_follow_the_spec() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.statefulset, "redis-app");
        assert_eq!(s.service, "redis-service");
        assert_eq!(s.cluster_domain, "cluster.local");
        assert_eq!(s.redis_port, 6379);
        assert_eq!(s.replicas_per_master, 1);
        assert_eq!(s.ready_timeout, Duration::from_secs(600));
        assert_eq!(s.converge_timeout, Duration::from_secs(120));
        assert!(s.nodes.is_none() && !s.dry_run && s.namespace.is_none());
        assert!(
            !s.read_nodes,
            "nodes are read only where components/placement allows it"
        );
        assert_eq!(s.log_format, LogFormat::Text);
        assert_eq!(s.when_not_ready, WhenNotReady::Fail);
        assert_eq!(s.handover_timeout, Duration::from_secs(30));
        assert_eq!(s.rejoin_timeout, Duration::from_secs(600));
        assert!(s.repair_placement);
        let off = settings(&[("BOOTSTRAP_REPAIR_PLACEMENT", "false")]).unwrap();
        assert!(!off.repair_placement);
    }

    #[test]
    fn every_bad_value_names_its_variable() {
        for (var, value) in [
            ("BOOTSTRAP_REDIS_PORT", "70000"),
            ("BOOTSTRAP_REPLICAS_PER_MASTER", "one"),
            ("BOOTSTRAP_READY_TIMEOUT", "soon"),
            ("BOOTSTRAP_CONVERGE_TIMEOUT", "0s"),
            ("BOOTSTRAP_WHEN_NOT_READY", "later"),
            ("BOOTSTRAP_HANDOVER_TIMEOUT", "never"),
            ("BOOTSTRAP_REJOIN_TIMEOUT", "-1s"),
            ("BOOTSTRAP_NODES", "127.0.0.1"),
            ("BOOTSTRAP_DNS_SERVER", "dns"),
            ("BOOTSTRAP_LOG_FORMAT", "xml"),
            ("BOOTSTRAP_DRY_RUN", "maybe"),
            ("BOOTSTRAP_READ_NODES", "zones"),
            ("BOOTSTRAP_REPAIR_PLACEMENT", "sometimes"),
            ("BOOTSTRAP_DRAIN_TO", "six"),
            ("BOOTSTRAP_DRAIN_TO", "7"),
            ("BOOTSTRAP_DRAIN_TO", "4"),
            ("BOOTSTRAP_DRAIN_TO", "-6"),
            ("BOOTSTRAP_STATEFULSET", "Redis_App"),
            ("BOOTSTRAP_CLUSTER_DOMAIN", "bad domain"),
            ("BOOTSTRAP_REPLICA_PER_MASTER", "1"),
        ] {
            let err = settings(&[(var, value)]).unwrap_err().to_string();
            assert!(err.starts_with(var), "{var}: {err}");
            assert!(!err.contains('\n'), "{var}: {err}");
        }
    }

    #[test]
    fn the_drain_target_is_whole_shards_of_at_least_three_masters() {
        assert_eq!(settings(&[]).unwrap().drain_to, None);
        assert_eq!(
            settings(&[("BOOTSTRAP_DRAIN_TO", " 6 ")]).unwrap().drain_to,
            Some(6)
        );
        let r2 = |n: &str| {
            settings(&[
                ("BOOTSTRAP_REPLICAS_PER_MASTER", "2"),
                ("BOOTSTRAP_DRAIN_TO", n),
            ])
        };
        assert_eq!(r2("9").unwrap().drain_to, Some(9));
        let err = r2("6").unwrap_err().to_string();
        assert!(err.contains("at least 9"), "{err}");
        assert!(r2("10").is_err());
        assert!(r2("0").is_err());
    }

    #[test]
    fn node_lists_keep_their_order_and_accept_ipv6() {
        let s = settings(&[("BOOTSTRAP_NODES", "b:1, a:2,[::1]:6379")]).unwrap();
        let nodes: Vec<String> = s.nodes.unwrap().iter().map(|n| n.to_string()).collect();
        assert_eq!(nodes, ["b:1", "a:2", "[::1]:6379"]);
        assert!(settings(&[("BOOTSTRAP_NODES", "a:1,a:1")]).is_err());
    }

    #[test]
    fn an_empty_entry_in_the_node_list_is_a_typo() {
        for list in ["a:1,,b:2", "a:1,b:2,", ",a:1", "a:1, ,b:2"] {
            let err = settings(&[("BOOTSTRAP_NODES", list)])
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("BOOTSTRAP_NODES") && err.contains("empty entry"),
                "{list}: {err}"
            );
        }
    }

    #[test]
    fn only_bootstrap_variables_must_be_utf8() {
        use std::os::unix::ffi::OsStringExt;
        let bad = || OsString::from_vec(vec![b'x', 0xff]);
        let ok = |s: &str| OsString::from(s);
        // Any other variable, in its name or its value, is not even read.
        let vars = utf8_vars([
            (ok("OTHER"), bad()),
            (bad(), ok("1")),
            (ok("BOOTSTRAP_NODES"), ok("a:1")),
        ])
        .unwrap();
        assert_eq!(vars, [("BOOTSTRAP_NODES".to_string(), "a:1".to_string())]);
        let err = utf8_vars([(ok("BOOTSTRAP_PASSWORD"), bad())])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("BOOTSTRAP_PASSWORD is not valid UTF-8"),
            "{err}"
        );
        let mut name = b"BOOTSTRAP_X".to_vec();
        name.push(0xff);
        let err = utf8_vars([(OsString::from_vec(name), ok("1"))])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("BOOTSTRAP_X"), "{err}");
    }

    #[test]
    fn a_username_needs_a_password() {
        let err = settings(&[("BOOTSTRAP_USERNAME", "bootstrap")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("BOOTSTRAP_USERNAME"), "{err}");
        assert!(err.contains("BOOTSTRAP_PASSWORD"), "{err}");
        let s = settings(&[
            ("BOOTSTRAP_USERNAME", "bootstrap"),
            ("BOOTSTRAP_PASSWORD", "hunter2"),
        ])
        .unwrap();
        let credentials = s.credentials.unwrap();
        assert_eq!(credentials.username(), Some("bootstrap"));
        assert_eq!(credentials.password(), "hunter2");
        let err = settings(&[
            ("BOOTSTRAP_USERNAME", "boot strap"),
            ("BOOTSTRAP_PASSWORD", "x"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("BOOTSTRAP_USERNAME"), "{err}");
    }

    #[test]
    fn tls_files_pair_up_here_and_are_read_at_startup() {
        // from_vars checks the pairing only: the manifest tests run it on a Job's environment.
        let s = settings(&[
            ("BOOTSTRAP_TLS_CA_FILE", "/etc/redis-tls/ca.crt"),
            ("BOOTSTRAP_TLS_CERT_FILE", "/etc/redis-tls/tls.crt"),
            ("BOOTSTRAP_TLS_KEY_FILE", "/etc/redis-tls/tls.key"),
        ])
        .unwrap();
        let files = s.tls_files.unwrap();
        assert_eq!(files.ca, "/etc/redis-tls/ca.crt");
        assert!(s.tls.is_none(), "read by from_env, not from_vars");
        let err = settings(&[("BOOTSTRAP_TLS_KEY_FILE", "/k")]).unwrap_err();
        assert!(
            err.to_string().starts_with("BOOTSTRAP_TLS_KEY_FILE is set"),
            "{err}"
        );
        let err = settings(&[
            ("BOOTSTRAP_TLS_CERT_FILE", "/c"),
            ("BOOTSTRAP_TLS_KEY_FILE", "/k"),
        ])
        .unwrap_err();
        assert!(
            err.to_string().contains("BOOTSTRAP_TLS_CA_FILE is not"),
            "{err}"
        );
    }

    #[test]
    fn the_password_stays_out_of_debug_output() {
        let s = settings(&[("BOOTSTRAP_PASSWORD", "hunter2")]).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
