//! The text of `--help`: usage, the pod commands, the table of variables and the exit codes.

use super::VARIABLES;

/// The text of `--help`.
pub fn help() -> String {
    let mut text = format!(
        "{} {}\n{}\n\nUsage: redis-cluster-bootstrap [--help | --version | --print-acl]\n       \
         redis-cluster-bootstrap backup | restore\n       \
         redis-cluster-bootstrap handover | ready | rejoin | users | watch | synced | install DIR\n\n\
         Without a command it forms or heals the cluster (the Job and the CronJob).\n\
         backup   one consistent backup of every master under BOOTSTRAP_BACKUP_URL\n\
         restore  the backup BOOTSTRAP_BACKUP_URL names (else the newest under it) into a\n         \
         formed, empty cluster of any shape\n\
         --print-acl prints the ACL users it needs (bootstrap, replication, pod, backup, restore).\n\n\
         Inside a Redis pod (the local node is 127.0.0.1:BOOTSTRAP_REDIS_PORT, or the first of\n\
         BOOTSTRAP_NODES):\n  \
         handover  preStop: a master that owns slots hands them to its most up-to-date replica\n            \
         (CLUSTER FAILOVER) and waits until it is a replica itself\n  \
         ready     readiness probe: exit 0 once the node serves (loaded, a replica in sync)\n  \
         rejoin    at start: CLUSTER MEET the known peers found at new addresses\n  \
         users     before the node starts: print its ACL users (rules from BOOTSTRAP_ACL_DIR,\n            \
         passwords from BOOTSTRAP_USERS_DIR) as configuration for redis-server's stdin\n  \
         watch     beside the node until stopped: apply changed passwords and renewed\n            \
         certificates (BOOTSTRAP_USERS_DIR, BOOTSTRAP_TLS_*) without a restart\n  \
         synced    exit 0 when the node has applied those files (one line per item)\n  \
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
