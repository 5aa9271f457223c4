//! Every `BOOTSTRAP_*` variable the binary reads, in one table, and the check that no other one
//! is set (a misspelt variable would otherwise be ignored and its default used).

use std::collections::HashSet;

use crate::Error;

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
        "BOOTSTRAP_PASSWORD_FILE",
        "unset",
        "instead of BOOTSTRAP_PASSWORD: a file of passwords, one per line, the one in use first, \
         tried in order and read again for every connection (the Secret mounted as files)",
    ),
    (
        "BOOTSTRAP_USERNAME",
        "unset",
        "ACL user sent with the password (AUTH user password); needs BOOTSTRAP_PASSWORD or BOOTSTRAP_PASSWORD_FILE",
    ),
    (
        "BOOTSTRAP_BACKUP_URL",
        "unset",
        "backup and restore: where backups live: a directory (/backups or file:///backups) or \
         s3://bucket/prefix (endpoint and credentials from AWS_*); restore takes the backup it names, \
         else the newest under it",
    ),
    (
        "BOOTSTRAP_BACKUP_KEEP",
        "7",
        "backup: how many complete backups to keep under BOOTSTRAP_BACKUP_URL (older ones are \
         deleted once a new one is complete)",
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
        "BOOTSTRAP_USERS_DIR",
        "unset",
        "users and watch: the users' passwords, one file per user named like the Secret's keys \
         (app, bootstrap, replication, ...), one password per line",
    ),
    (
        "BOOTSTRAP_ACL_DIR",
        "unset",
        "users: the users' ACL rules, one file per user (the ConfigMap redis-acl)",
    ),
    (
        "BOOTSTRAP_METRICS_ADDRESS",
        "unset",
        "watch: ip:port to serve /metrics on (certificate reloads and expiry, users in sync)",
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

/// A misspelt variable would otherwise be silently ignored and its default used.
pub(super) fn reject_unknown(vars: &[(String, String)]) -> Result<(), Error> {
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
