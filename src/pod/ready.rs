//! `ready`, the Redis pod's readiness probe: Ready means the node serves.
//!
//! Not ready while the node loads its data, nor while a replica's link to its master is down or a
//! sync is in progress: a StatefulSet's rolling update then waits for each restarted replica to be
//! in sync before it stops the next pod, so a master is never stopped while its only replica is
//! still copying. Ready otherwise: a master, and a node that knows no other node yet (the
//! bootstrap forms the cluster only once every pod is Ready, so a fresh node must be).
//!
//! A full restart must not deadlock: a replica whose master is at a stale address cannot sync
//! until someone re-meshes it, and the bootstrap waits for Ready before it re-meshes. `rejoin`
//! re-meshes from inside the pods without waiting for anyone; and a replica whose master its own
//! view flags unreachable (`fail?`, `fail`, no address) is ready too, since there is nothing to be
//! in sync with, so the bootstrap can always act.

use crate::client::Client;
use crate::observation::{self, Observation};
use crate::observe::observe;
use crate::pod::Context;
use crate::{Error, Result};

/// The probe's answer, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Serving.
    Ready(String),
    /// Not serving yet.
    NotReady(String),
}

/// Decides from the node's `INFO` (persistence and replication) and its observation.
pub fn verdict(info: &str, seen: &Observation) -> Verdict {
    let fields = observation::fields(info);
    if fields.get("loading") == Some(&"1") {
        return Verdict::NotReady("loading its data".into());
    }
    if !seen.cluster_enabled {
        return Verdict::Ready("cluster mode is off".into());
    }
    if seen.alone() {
        return Verdict::Ready("knows no other node yet (the bootstrap forms the cluster)".into());
    }
    if fields.get("role") != Some(&"slave") {
        return Verdict::Ready("a master".into());
    }
    let link_up = fields.get("master_link_status") == Some(&"up");
    let syncing = fields.get("master_sync_in_progress") == Some(&"1");
    if link_up && !syncing {
        return Verdict::Ready("a replica in sync with its master".into());
    }
    let master_id = seen.myself().and_then(|m| m.master_id.as_deref());
    let master = master_id.and_then(|id| seen.knows(id));
    match master {
        Some(m) if m.flags.healthy() => Verdict::NotReady(if syncing {
            "a replica still syncing with its master".into()
        } else {
            "a replica whose link to its master is down".into()
        }),
        // Nothing to be in sync with: the shard waits for a failover or for the bootstrap.
        _ => Verdict::Ready(format!(
            "a replica whose master {} is unreachable in its view (nothing to sync with)",
            master_id.unwrap_or("-")
        )),
    }
}

/// Exit 0 when the local node serves, [`Error::NotReady`] (exit 1) when not.
pub async fn run(ctx: &Context) -> Result<()> {
    // One attempt: the kubelet runs the probe again.
    let client = Client::connect(
        &ctx.local,
        ctx.settings.credentials.as_ref(),
        ctx.settings.tls.as_ref(),
    )
    .await?;
    let info = match client
        .query::<String>(
            redis::cmd("INFO").arg("persistence").arg("replication"),
            "INFO",
        )
        .await
    {
        Ok(info) => info,
        Err(Error::Command { source, .. }) if source.code() == Some("LOADING") => {
            return Err(Error::NotReady("loading its data".into()));
        }
        Err(e) => return Err(e),
    };
    let seen = match observe(&client).await {
        Ok(seen) => seen,
        Err(Error::Command { source, .. }) if source.code() == Some("LOADING") => {
            return Err(Error::NotReady("loading its data".into()));
        }
        Err(e) => return Err(e),
    };
    match verdict(&info, &seen) {
        Verdict::Ready(why) => {
            println!("ready: {why}");
            Ok(())
        }
        Verdict::NotReady(why) => Err(Error::NotReady(why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const MASTER: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn replica(master_flags: &str) -> Observation {
        Observation::parse(
            "role:slave\r\ncluster_enabled:1\r\n",
            ME,
            &format!(
                "{ME} 10.0.0.4:6379@16379 myself,slave {MASTER} 0 0 1 connected\n\
                 {MASTER} 10.0.0.1:6379@16379 {master_flags} - 0 0 1 connected 0-16383\n"
            ),
            "cluster_state:ok\r\n",
        )
        .unwrap()
    }

    fn ready(v: Verdict) -> bool {
        matches!(v, Verdict::Ready(_))
    }

    #[test]
    fn a_replica_is_ready_once_in_sync() {
        let seen = replica("master");
        let synced =
            "loading:0\r\nrole:slave\r\nmaster_link_status:up\r\nmaster_sync_in_progress:0\r\n";
        assert!(ready(verdict(synced, &seen)));
        let syncing =
            "loading:0\r\nrole:slave\r\nmaster_link_status:down\r\nmaster_sync_in_progress:1\r\n";
        assert_eq!(
            verdict(syncing, &seen),
            Verdict::NotReady("a replica still syncing with its master".into())
        );
        let down =
            "loading:0\r\nrole:slave\r\nmaster_link_status:down\r\nmaster_sync_in_progress:0\r\n";
        assert!(!ready(verdict(down, &seen)));
    }

    #[test]
    fn loading_is_never_ready() {
        let info = "loading:1\r\nrole:master\r\n";
        assert!(!ready(verdict(info, &replica("master"))));
    }

    #[test]
    fn a_replica_of_an_unreachable_master_is_ready_so_nothing_deadlocks() {
        let down =
            "loading:0\r\nrole:slave\r\nmaster_link_status:down\r\nmaster_sync_in_progress:0\r\n";
        for flags in ["master,fail?", "master,fail"] {
            assert!(ready(verdict(down, &replica(flags))), "{flags}");
        }
    }

    #[test]
    fn a_fresh_node_and_a_master_are_ready() {
        let fresh = Observation::parse(
            "role:master\r\ncluster_enabled:1\r\n",
            ME,
            &format!("{ME} :6379@16379 myself,master - 0 0 0 connected\n"),
            "cluster_state:fail\r\n",
        )
        .unwrap();
        assert!(ready(verdict("loading:0\r\nrole:master\r\n", &fresh)));
        let master = Observation::parse(
            "role:master\r\ncluster_enabled:1\r\n",
            ME,
            &format!(
                "{ME} 10.0.0.1:6379@16379 myself,master - 0 0 1 connected 0-16383\n\
                 {MASTER} 10.0.0.4:6379@16379 slave {ME} 0 0 1 connected\n"
            ),
            "cluster_state:ok\r\n",
        )
        .unwrap();
        assert!(ready(verdict("loading:0\r\nrole:master\r\n", &master)));
    }
}
