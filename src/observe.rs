//! Reads what every node knows: `INFO` (server, replication, cluster, keyspace), `CLUSTER MYID`, `CLUSTER NODES`, `CLUSTER INFO`, one
//! pipelined round trip per node. A view of N nodes is read a few nodes at a time, each on a
//! connection of its own: the redis crate keeps a connection's read buffer at the largest reply it
//! ever read, and 300 long-lived connections each grown to a 300-line view were most of the
//! binary's memory.

use std::time::Duration;

use futures::future::try_join_all;
use futures::{StreamExt, TryStreamExt, stream};
use tracing::debug;

use crate::client::{self, Client};
use crate::credentials::Credentials;
use crate::node::Node;
use crate::observation::Observation;
use crate::tls::Tls;
use crate::{Error, Result};

/// Observes one node.
pub async fn observe(client: &Client) -> Result<Observation> {
    let info: String = client
        .query(
            redis::cmd("INFO")
                .arg("server")
                .arg("replication")
                .arg("cluster")
                .arg("keyspace"),
            "INFO",
        )
        .await?;
    if !info.contains("cluster_enabled:1") {
        return Ok(Observation::standalone(&info));
    }
    let mut pipe = redis::pipe();
    pipe.cmd("CLUSTER").arg("MYID");
    pipe.cmd("CLUSTER").arg("NODES");
    pipe.cmd("CLUSTER").arg("INFO");
    let (id, nodes, cluster_info): (String, String, String) =
        client.pipeline(&pipe, "CLUSTER MYID/NODES/INFO").await?;
    parsed(
        client,
        Observation::parse(&info, &id, &nodes, &cluster_info),
    )
}

fn parsed(
    client: &Client,
    parsed: std::result::Result<Observation, String>,
) -> Result<Observation> {
    parsed.map_err(|why| Error::Command {
        node: client.node.name.clone(),
        addr: client.node.addr.to_string(),
        command: "CLUSTER NODES".into(),
        source: redis::RedisError::from((redis::ErrorKind::Parse, "unexpected reply", why)),
    })
}

/// Observes a node known to be in cluster mode: one round trip instead of two.
pub async fn observe_member(client: &Client) -> Result<Observation> {
    let mut pipe = redis::pipe();
    pipe.cmd("INFO")
        .arg("server")
        .arg("replication")
        .arg("cluster")
        .arg("keyspace");
    pipe.cmd("CLUSTER").arg("MYID");
    pipe.cmd("CLUSTER").arg("NODES");
    pipe.cmd("CLUSTER").arg("INFO");
    let (info, id, nodes, cluster_info): (String, String, String, String) = client
        .pipeline(&pipe, "INFO/CLUSTER MYID/NODES/INFO")
        .await?;
    parsed(
        client,
        Observation::parse(&info, &id, &nodes, &cluster_info),
    )
}

/// How many nodes are observed at once by [`observe_all`] and the convergence loop's full check,
/// each on a connection of its own: the views held at once, and the connections open for them.
pub const AT_ONCE: usize = 4;

/// [`observe`] on a connection of its own, as [`apart`] says.
pub async fn observe_apart(client: &Client) -> Result<Observation> {
    apart(client, observe).await
}

/// [`observe_member`] on a connection of its own, as [`apart`] says.
pub async fn observe_member_apart(client: &Client) -> Result<Observation> {
    apart(client, observe_member).await
}

/// Runs `read` on a connection of its own to the node ([`Client::once`]), closed after the read,
/// so that the node's long-lived connection never grows a read buffer the size of a view. On the
/// node's own connection when a new one cannot be opened (a node too busy to accept in time).
async fn apart(
    client: &Client,
    read: impl AsyncFn(&Client) -> Result<Observation>,
) -> Result<Observation> {
    match client.once().await {
        Ok(once) => read(&once).await,
        Err(e) => {
            debug!(node = %client.node.name, "{e}: its view is read on its own connection");
            read(client).await
        }
    }
}

/// Observes every node, [`AT_ONCE`] at a time, each on a connection of its own; in node order.
pub async fn observe_all(clients: &[Client]) -> Result<Vec<Observation>> {
    stream::iter(clients)
        .map(observe_apart)
        .buffered(AT_ONCE)
        .try_collect()
        .await
}

/// Observes every node, [`AT_ONCE`] at a time, each on a connection of its own, keeping only
/// its own line of `CLUSTER NODES` (its role, master, slots and open slots); in node order.
pub async fn observe_selves(clients: &[Client]) -> Result<Vec<Observation>> {
    stream::iter(clients)
        .map(observe_apart)
        .buffered(AT_ONCE)
        .map_ok(Observation::without_view)
        .try_collect()
        .await
}

/// Connects to every node afresh and observes it, retrying a node that does not answer until
/// `timeout`. After slots moved, a replica that changed master may be busy for seconds (emptying
/// its old data, an AOF fsync on a slow disk), and a master turned replica may have closed our
/// connection (Valkey): neither is a reason to fail a run whose changes are all made.
pub async fn observe_anew(
    nodes: &[Node],
    credentials: Option<&Credentials>,
    tls: Option<&Tls>,
    timeout: Duration,
) -> Result<Vec<Observation>> {
    try_join_all(nodes.iter().map(|node| {
        client::retry_unreachable(node, timeout, move || async move {
            observe(&Client::connect(node, credentials, tls).await?).await
        })
    }))
    .await
}
