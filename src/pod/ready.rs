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
//!
//! Every pod runs it every few seconds, so it costs one round trip in the common case: `INFO`
//! (loading, cluster mode, role, link and sync state) and `CLUSTER INFO` (does the node know
//! another?) in one pipeline. Only a replica whose link is down, or still syncing, needs its view
//! (`CLUSTER NODES`: is its master unreachable?), in a second.

use redis::Value;

use crate::client::Client;
use crate::observation::{self, Observation};
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

/// The verdict from `INFO` (persistence, replication and cluster) and `CLUSTER INFO` alone
/// (`None` when cluster mode is off), as [`verdict`] reaches it; `None` when it needs the node's
/// view: a replica whose link is down or still syncing.
pub fn quick(info: &str, cluster_info: Option<&str>) -> Option<Verdict> {
    let fields = observation::fields(info);
    if fields.get("loading") == Some(&"1") {
        return Some(Verdict::NotReady("loading its data".into()));
    }
    if fields.get("cluster_enabled") != Some(&"1") {
        return Some(Verdict::Ready("cluster mode is off".into()));
    }
    // CLUSTER NODES lists every node CLUSTER INFO counts, itself included.
    let known = cluster_info.map(observation::fields).and_then(|f| {
        f.get("cluster_known_nodes")
            .and_then(|n| n.parse::<u64>().ok())
    });
    if known == Some(1) {
        return Some(Verdict::Ready(
            "knows no other node yet (the bootstrap forms the cluster)".into(),
        ));
    }
    if fields.get("role") != Some(&"slave") {
        return Some(Verdict::Ready("a master".into()));
    }
    let link_up = fields.get("master_link_status") == Some(&"up");
    let syncing = fields.get("master_sync_in_progress") == Some(&"1");
    (link_up && !syncing).then(|| Verdict::Ready("a replica in sync with its master".into()))
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
    let mut info = redis::cmd("INFO");
    info.arg("persistence").arg("replication").arg("cluster");
    let mut cluster_info = redis::cmd("CLUSTER");
    cluster_info.arg("INFO");
    let replies = client
        .replies(vec![(info, "INFO"), (cluster_info, "CLUSTER INFO")])
        .await?;
    let mut replies = replies.into_iter().map(|reply| reply.and_then(text));
    let info = loaded(replies.next().expect("one reply per command"))?;
    let cluster_info = replies.next().expect("one reply per command");
    // With cluster mode off, CLUSTER INFO is an error, and INFO says why.
    let cluster_info = match observation::fields(&info).get("cluster_enabled") {
        Some(&"1") => Some(loaded(cluster_info)?),
        _ => None,
    };
    let verdict = match quick(&info, cluster_info.as_deref()) {
        Some(verdict) => verdict,
        None => {
            let nodes = loaded(
                client
                    .query::<String>(redis::cmd("CLUSTER").arg("NODES"), "CLUSTER NODES")
                    .await,
            )?;
            let seen = Observation::parse(&info, "", &nodes, cluster_info.as_deref().unwrap_or(""))
                .map_err(|why| Error::Command {
                    node: client.node.name.clone(),
                    addr: client.node.addr.to_string(),
                    command: "CLUSTER NODES".into(),
                    source: redis::RedisError::from((
                        redis::ErrorKind::Parse,
                        "unexpected reply",
                        why,
                    )),
                })?;
            verdict(&info, &seen)
        }
    };
    match verdict {
        Verdict::Ready(why) => {
            println!("ready: {why}");
            Ok(())
        }
        Verdict::NotReady(why) => Err(Error::NotReady(why)),
    }
}

/// A reply, or not ready when the node is still loading its data (`LOADING`).
fn loaded(reply: Result<String>) -> Result<String> {
    match reply {
        Err(Error::Command { source, .. }) if source.code() == Some("LOADING") => {
            Err(Error::NotReady("loading its data".into()))
        }
        other => other,
    }
}

/// A bulk-string reply as text.
fn text(reply: Value) -> Result<String> {
    redis::from_redis_value(reply).map_err(|e| Error::NotReady(format!("unexpected reply: {e}")))
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
    fn one_round_trip_decides_as_the_view_would_except_for_a_replica_out_of_sync() {
        let cluster = "\r\ncluster_enabled:1\r\n";
        let known = |n: usize| format!("cluster_state:ok\r\ncluster_known_nodes:{n}\r\n");
        let alone = Observation::parse(
            "role:master\r\ncluster_enabled:1\r\n",
            ME,
            &format!("{ME} :6379@16379 myself,master - 0 0 0 connected\n"),
            "cluster_state:fail\r\n",
        )
        .unwrap();
        let synced =
            "loading:0\r\nrole:slave\r\nmaster_link_status:up\r\nmaster_sync_in_progress:0";
        let cases = [
            ("loading:1\r\nrole:master", 2, replica("master")),
            ("loading:0\r\nrole:master", 1, alone),
            ("loading:0\r\nrole:master", 2, replica("master")),
            (synced, 2, replica("master")),
        ];
        for (info, n, seen) in cases {
            let info = format!("{info}{cluster}");
            assert_eq!(
                quick(&info, Some(&known(n))),
                Some(verdict(&info, &seen)),
                "{info}"
            );
        }
        for link in [
            "down\r\nmaster_sync_in_progress:1",
            "down\r\nmaster_sync_in_progress:0",
        ] {
            let info = format!("loading:0\r\nrole:slave\r\nmaster_link_status:{link}{cluster}");
            assert_eq!(quick(&info, Some(&known(2))), None, "{info}");
        }
        let off = "loading:0\r\nrole:master\r\ncluster_enabled:0\r\n";
        assert_eq!(
            quick(off, None),
            Some(verdict(off, &Observation::standalone(off)))
        );
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
