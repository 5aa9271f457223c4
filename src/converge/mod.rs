//! Waits until every node agrees on the whole topology (see [`crate::agreement`]).
//!
//! Polling is cheap first: one pipelined `CLUSTER INFO` + `INFO replication` per node, asked only
//! of the nodes not ready yet, all at once, the more often the fewer they are. A fresh master stays
//! at `cluster_state:fail` for seconds (Redis's rejoin delay), so most of the wait is for the last
//! few. Once every node has reported ok, N known nodes and 16384 slots it reads every
//! `CLUSTER NODES` for the full check, and returns the moment the cluster agrees.
//!
//! Meanwhile it helps gossip along: every few hundred milliseconds it reads every view, and when a
//! node has not known a peer, or its role, master or slots, for a while, the peer is told to
//! `CLUSTER MEET` that node again (the only way to make a node send its own header to another).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::future::try_join_all;
use tracing::info;

use crate::client::Client;
use crate::cluster_nodes::ClusterNode;
use crate::layout::Layout;
use crate::node::Node;
use crate::observation::Observation;
use crate::slots::SLOTS;
use crate::{Error, Result};

mod sweep;

use sweep::{Sweep, sweep};

/// How often progress is logged while waiting.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// How often the nodes not ready yet are asked again: every 10 ms, plus 0.5 ms for each of them
/// (100 nodes: 60 ms at first, 10 ms for the last one). The exit comes at most this late after
/// the last node is ready, and the nodes, busy forming, answer at most ~2000 cheap checks a second.
fn poll_every(waiting: usize) -> Duration {
    Duration::from_micros(10_000 + 500 * waiting as u64)
}

/// How long a node may hold a stale view of a peer before the peer is told to `CLUSTER MEET` it
/// again: 200 ms + 8 ms per node (N=30: 0.44 s, N=100: 1 s). Redis sends a node's slots and
/// master only in packets from the node itself, processed after the handshake; with gossip
/// keeping every "last pong" fresh, two nodes may not ping each other directly for many seconds
/// (measured: a tail of 5+ s at 100 nodes and a 5000 ms node timeout). A MEET to a known node is
/// harmless: the receiver reads the sender's header, the extra handshake ends at once. But it is
/// a handshake, on nodes that are the busier the more there are: measured at 1000 ms, nudging
/// after 0.44 s instead of 1 s took N=30 from 1.03–1.54 s to 1.04–1.33 s, while at N=100 (2
/// cores saturated) nudging after 0.3–0.5 s made it slower.
fn nudge_after(nodes: usize) -> Duration {
    Duration::from_millis(200 + 8 * nodes as u64)
}

/// How long the cluster may stay healthy with its replicas not R per master before
/// [`converge`] hands it back for a repair: every planned `CLUSTER REPLICATE` was sent before the
/// wait, so a layout that every node agrees on, links up, is Redis's own doing (a replica
/// migration, a failover) and will not change by itself.
const UNEVEN_FOR: Duration = Duration::from_secs(2);

/// At most this many nudges per node and round.
const NUDGES_PER_NODE: usize = 4;

/// What [`converge`] hands back.
pub struct Converged {
    /// Every node's observation, each with only its own line of `CLUSTER NODES` (its role,
    /// master and slots): the views were checked and dropped.
    pub observations: Vec<Observation>,
    /// Empty when every master has exactly R replicas; else what is uneven (the cluster is
    /// healthy otherwise, and the caller repairs it).
    pub uneven: Vec<String>,
}

/// Polls until every node agrees, or fails after `timeout` naming what is still missing. `ids`
/// are the nodes' IDs in pod order, as the plan found them (a node keeps its ID). Also
/// returns, for the caller to repair, once the cluster has been healthy for 2 s but for
/// its replicas not being R per master ([`crate::agreement::healthy`]).
pub async fn converge(
    clients: &[Client],
    layout: &Layout,
    mut ids: Vec<String>,
    timeout: Duration,
) -> Result<Converged> {
    let nodes: Vec<Node> = clients.iter().map(|c| c.node.clone()).collect();
    let started = Instant::now();
    let mut last_log = started;
    // The full check reads N × N lines of `CLUSTER NODES`. Once every node passes the cheap check
    // it runs every 20 ms + N/5 ms; before that only for the nudges, every 200 ms + N ms: 500
    // nodes are read at most 8 or under 2 times a second.
    let agree_every = Duration::from_millis(20 + layout.nodes as u64 / 5);
    let nudge_every = Duration::from_millis(200 + layout.nodes as u64);
    let mut last_full: Option<Instant> = None;
    let mut stale_since: HashMap<(usize, usize), Instant> = HashMap::new();
    let mut down_since: HashMap<usize, Instant> = HashMap::new();
    let mut uneven_since: Option<Instant> = None;
    // Each node's own line from the last full check.
    let mut selves: Vec<Option<ClusterNode>> = vec![None; clients.len()];
    // The nodes that have not passed the cheap check yet.
    let mut waiting: Vec<usize> = (0..clients.len()).collect();
    let mut problems = Vec::new();
    loop {
        if !waiting.is_empty() {
            let answers = try_join_all(waiting.iter().map(|&i| async move {
                // A node too busy to answer in time is not there yet: keep asking until the timeout.
                match not_ready(&clients[i], layout).await {
                    Err(e) if is_timeout(&e) => Ok(Some(e.to_string())),
                    other => other,
                }
            }))
            .await?;
            let still: Vec<(usize, String)> = waiting
                .iter()
                .zip(answers)
                .filter_map(|(&i, problem)| problem.map(|p| (i, p)))
                .collect();
            waiting = still.iter().map(|(i, _)| *i).collect();
            problems = still.into_iter().map(|(_, p)| p).collect();
        }
        let every = if waiting.is_empty() {
            agree_every
        } else {
            nudge_every
        };
        if last_full.is_none_or(|t| t.elapsed() >= every) {
            last_full = Some(Instant::now());
            match sweep(clients, &nodes, layout, &ids, &selves).await {
                Ok(found) => {
                    let Sweep {
                        observations,
                        verdict,
                        stale,
                        misdirected,
                    } = found;
                    if waiting.is_empty() && verdict.is_exact() {
                        return Ok(Converged {
                            observations,
                            uneven: Vec::new(),
                        });
                    }
                    if waiting.is_empty() && verdict.is_healthy() {
                        if uneven_since.get_or_insert_with(Instant::now).elapsed() >= UNEVEN_FOR {
                            return Ok(Converged {
                                observations,
                                uneven: verdict.exact().err().unwrap_or_default(),
                            });
                        }
                    } else {
                        uneven_since = None;
                    }
                    ids = crate::observation::ids(&observations);
                    selves = observations.iter().map(|o| o.myself().cloned()).collect();
                    nudge(clients, stale, &mut stale_since, nudge_after(nodes.len())).await?;
                    repoint(
                        clients,
                        &ids,
                        misdirected,
                        &mut down_since,
                        nudge_after(nodes.len()),
                    )
                    .await?;
                    if waiting.is_empty() {
                        problems = verdict.exact().err().unwrap_or_default();
                    }
                }
                // A node too busy to answer in time has not agreed yet.
                Err(e) if is_timeout(&e) => problems = vec![e.to_string()],
                Err(e) => return Err(e),
            }
        }
        if started.elapsed() >= timeout {
            // The full check names every node and what it lacks, not just the first ones; a node
            // too busy to answer it is named as such, inside the timeout's message.
            let problems = match sweep(clients, &nodes, layout, &ids, &selves).await {
                Ok(found) => found.verdict.exact().err().unwrap_or(problems),
                Err(e) if is_timeout(&e) => vec![e.to_string()],
                Err(e) => return Err(e),
            };
            let mut detail = summarize(&problems);
            if problems
                .iter()
                .any(|p| p.contains("does not know") || p.contains("handshake"))
            {
                detail.push_str(
                    " (nodes that never learn of each other usually cannot reach each other's cluster bus port, \
                     the client port + 10000)",
                );
            }
            return Err(Error::Timeout {
                phase: "convergence",
                after: timeout,
                detail,
            });
        }
        if last_log.elapsed() >= PROGRESS_EVERY {
            info!(
                elapsed = ?started.elapsed(),
                "waiting for every node to agree: {}{}",
                summarize(&problems),
                why_waiting(&problems)
            );
            last_log = Instant::now();
        }
        // Once the cheap check passes everywhere, only the full check is worth repeating.
        let pause = if waiting.is_empty() {
            agree_every
        } else {
            poll_every(waiting.len())
        };
        tokio::time::sleep(pause).await;
    }
}

/// True when `e` is a command that got no answer within the client's timeout.
pub(crate) fn is_timeout(e: &Error) -> bool {
    matches!(e, Error::Unreachable { source, .. } if source.is_timeout())
}

/// Re-points every replica whose link to its master has been down for `after` while it pulls
/// from an address that is not its master's (`misdirected`, see [`sweep::misdirected_replica`]):
/// `CLUSTER REPLICATE` of the *same* master. Redis 7.0 updates a master's address learnt through
/// gossip without re-pointing its replicas, and the address can change after the plan was made
/// (it is learnt while the cluster converges).
async fn repoint(
    clients: &[Client],
    ids: &[String],
    misdirected: Vec<(usize, usize)>,
    down_since: &mut HashMap<usize, Instant>,
    after: Duration,
) -> Result<()> {
    let now = Instant::now();
    down_since.retain(|replica, _| misdirected.iter().any(|(r, _)| r == replica));
    for (replica, master) in misdirected {
        let since = *down_since.entry(replica).or_insert(now);
        if now.duration_since(since) < after {
            continue;
        }
        let master_id = &ids[master];
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("REPLICATE").arg(master_id);
        clients[replica]
            .query::<()>(&cmd, "CLUSTER REPLICATE")
            .await?;
        info!(
            node = %clients[replica].node.name,
            "{}: CLUSTER REPLICATE {master_id} (replica of {}, re-pointed at its current address)",
            clients[replica].node,
            clients[master].node.name
        );
        down_since.insert(replica, now);
    }
    Ok(())
}

/// Sends one `CLUSTER MEET` for every stale view (see [`sweep::stale_in_view`]) that has lasted
/// `after`.
async fn nudge(
    clients: &[Client],
    stale: HashSet<(usize, usize)>,
    stale_since: &mut HashMap<(usize, usize), Instant>,
    after: Duration,
) -> Result<()> {
    let now = Instant::now();
    stale_since.retain(|pair, _| stale.contains(pair));
    let mut due: Vec<(usize, usize)> = stale
        .into_iter()
        .filter(|pair| {
            let since = *stale_since.entry(*pair).or_insert(now);
            now.duration_since(since) >= after
        })
        .collect();
    due.sort_unstable();
    // No node opens more handshakes at once than the introductions made it: the rest wait for
    // the next round.
    let mut sent = vec![0; clients.len()];
    due.retain(|&(sender, _)| {
        sent[sender] += 1;
        sent[sender] <= NUDGES_PER_NODE
    });
    if due.is_empty() {
        return Ok(());
    }
    try_join_all(due.iter().map(|&(sender, receiver)| async move {
        let to = clients[receiver].node.addr;
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("MEET").arg(to.ip().to_string()).arg(to.port());
        clients[sender].query::<()>(&cmd, "CLUSTER MEET").await?;
        // Every command that changes a node is in the audit trail, named like every planned step.
        info!(
            node = %clients[sender].node.name,
            "{}: CLUSTER MEET {} {} (meet {} again: one of them holds a stale view of the other)",
            clients[sender].node,
            to.ip(),
            to.port(),
            clients[receiver].node.name
        );
        Ok::<_, Error>(())
    }))
    .await?;
    for pair in &due {
        stale_since.insert(*pair, now);
    }
    let mut met: Vec<usize> = due.iter().map(|&(_, receiver)| receiver).collect();
    met.sort_unstable();
    met.dedup();
    info!(
        meets = due.len(),
        nodes = met.len(),
        "re-introduced {} node(s) with {} MEET(s) after a stale view lasted {:?}",
        met.len(),
        due.len(),
        after
    );
    Ok(())
}

/// The cheap check on one node; `Some` says what it is missing.
async fn not_ready(client: &Client, layout: &Layout) -> Result<Option<String>> {
    let mut pipe = redis::pipe();
    pipe.cmd("CLUSTER").arg("INFO");
    pipe.cmd("INFO").arg("replication");
    let (cluster_info, info): (String, String) = client.pipeline(&pipe, "CLUSTER INFO").await?;
    let o = Observation::parse(&info, "", "", &cluster_info)
        .unwrap_or_else(|_| Observation::standalone(""));
    let name = &client.node.name;
    Ok(if !o.info.state_ok {
        Some(format!("{name} reports cluster_state:fail"))
    } else if o.info.known_nodes != layout.nodes as u64 {
        Some(format!(
            "{name} knows {} of {} nodes",
            o.info.known_nodes, layout.nodes
        ))
    } else if o.info.slots_ok != SLOTS as u64 {
        Some(format!(
            "{name} sees {} of {SLOTS} slots ok",
            o.info.slots_ok
        ))
    } else if o.master_link_up == Some(false) {
        Some(format!("{name} has master_link_status:down"))
    } else {
        None
    })
}

/// What Redis itself is waiting for, when the problems show it, so that a wait of seconds is not
/// mistaken for the tool being slow.
fn why_waiting(problems: &[String]) -> &'static str {
    if problems
        .iter()
        .any(|p| p.contains("master_link_status:down"))
    {
        // Measured on Redis 7.0: the master logs "Delay next BGSAVE for diskless SYNC" and starts
        // the transfer 5 s later, whatever cluster-node-timeout is.
        " (a new replica's first sync waits for its master's repl-diskless-sync-delay, 5 s by default: \
         Redis's own delay, not the tool's; set it to 0 in redis.conf to skip it)"
    } else {
        ""
    }
}

/// The first problems, then how many more: one log line even for 500 nodes.
pub fn summarize(problems: &[String]) -> String {
    const SHOWN: usize = 6;
    let mut text = problems
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if problems.len() > SHOWN {
        text.push_str(&format!("; and {} more", problems.len() - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C: &str = "cccccccccccccccccccccccccccccccccccccccc";

    /// Every stale pair over all views, each compared with every node's own line.
    fn stale_views(observations: &[Observation], addrs: &[SocketAddr]) -> HashSet<(usize, usize)> {
        let ids: Vec<&str> = observations.iter().map(|o| o.id.as_str()).collect();
        let selves: Vec<Option<ClusterNode>> =
            observations.iter().map(|o| o.myself().cloned()).collect();
        let mut stale = HashSet::new();
        for (i, o) in observations.iter().enumerate() {
            sweep::stale_in_view(i, o, &ids, &selves, addrs, &mut stale);
        }
        stale
    }

    fn misdirected_replicas(
        observations: &[Observation],
        addrs: &[SocketAddr],
    ) -> Vec<(usize, usize)> {
        let ids: Vec<&str> = observations.iter().map(|o| o.id.as_str()).collect();
        observations
            .iter()
            .enumerate()
            .filter_map(|(i, o)| sweep::misdirected_replica(i, o, &ids, addrs))
            .collect()
    }

    /// One node's view: `(id, myself, role, master, slots)` per line, as Redis prints it.
    fn view(id: &str, lines: &[(&str, &str, &str)]) -> Observation {
        let text: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(j, (who, flags, rest))| {
                format!("{who} 127.0.0.{}:6379@16379 {flags} {rest}", 11 + j)
            })
            .collect();
        Observation::parse(
            "# Cluster\r\ncluster_enabled:1\r\n",
            id,
            &text.join("\n"),
            "cluster_state:ok\r\n",
        )
        .unwrap()
    }

    #[test]
    fn a_view_missing_a_peer_or_its_slots_or_its_master_is_stale() {
        let a = "- 0 0 1 connected 0-8191";
        let b = "- 0 0 2 connected 8192-16383";
        let c = format!("{A} 0 0 1 connected");
        let observations = [
            // A sees B without its slots and C without its master.
            view(
                A,
                &[
                    (A, "myself,master", a),
                    (B, "master", "- 0 0 2 connected"),
                    (C, "slave", "- 0 0 1 connected"),
                ],
            ),
            // B does not know C yet.
            view(B, &[(A, "master", a), (B, "myself,master", b)]),
            // C sees everything as it is.
            view(
                C,
                &[(A, "master", a), (B, "master", b), (C, "myself,slave", &c)],
            ),
        ];
        let addrs: Vec<SocketAddr> = (0..3)
            .map(|j| format!("127.0.0.{}:6379", 11 + j).parse().unwrap())
            .collect();
        let stale = stale_views(&observations, &addrs);
        assert_eq!(stale, HashSet::from([(1, 0), (2, 0), (2, 1)]));
    }

    #[test]
    fn a_peer_seen_as_noaddr_or_at_an_old_address_is_met_by_the_node_that_sees_it() {
        let a = "- 0 0 1 connected 0-8191";
        let b = "- 0 0 2 connected 8192-16383";
        let c = format!("{A} 0 0 1 connected");
        let mut observations = vec![
            view(
                A,
                &[(A, "myself,master", a), (B, "master", b), (C, "slave", &c)],
            ),
            view(
                B,
                &[(A, "master", a), (B, "myself,master", b), (C, "slave", &c)],
            ),
            view(
                C,
                &[
                    (A, "master", a),
                    (B, "master,noaddr", b),
                    (C, "myself,slave", &c),
                ],
            ),
        ];
        // A still sees C at C's old address.
        observations[0].nodes[2].addr = Some("127.0.9.13:6379".parse().unwrap());
        let addrs: Vec<SocketAddr> = (0..3)
            .map(|j| format!("127.0.0.{}:6379", 11 + j).parse().unwrap())
            .collect();
        let stale = stale_views(&observations, &addrs);
        assert_eq!(stale, HashSet::from([(2, 1), (0, 2)]));
    }

    #[test]
    fn the_first_check_knows_no_selves_yet_but_still_meets_a_peer_seen_at_an_old_address() {
        let a = "- 0 0 1 connected 0-8191";
        let mut seen_by_a = view(
            A,
            &[(A, "myself,master", a), (B, "master", "- 0 0 2 connected")],
        );
        seen_by_a.nodes[1].addr = Some("127.0.9.12:6379".parse().unwrap());
        let addrs: Vec<SocketAddr> = (0..2)
            .map(|j| format!("127.0.0.{}:6379", 11 + j).parse().unwrap())
            .collect();
        let selves = vec![None, None];
        let mut stale = HashSet::new();
        sweep::stale_in_view(0, &seen_by_a, &[A, B], &selves, &addrs, &mut stale);
        // A meets B at its current address; that A lacks B's slots waits for B's own line.
        assert_eq!(stale, HashSet::from([(0, 1)]));
    }

    #[test]
    fn a_replica_whose_link_is_down_and_pulls_from_an_old_address_is_re_pointed() {
        let info = |link: &str| {
            format!(
                "# Replication\r\nrole:slave\r\nmaster_host:127.0.9.11\r\nmaster_port:6379\r\nmaster_link_status:{link}\r\n# Cluster\r\ncluster_enabled:1\r\n"
            )
        };
        let lines = format!(
            "{A} 127.0.0.11:6379@16379 master - 0 0 1 connected 0-16383\n{C} 127.0.0.13:6379@16379 myself,slave {A} 0 0 1 connected"
        );
        let replica = |link: &str| {
            Observation::parse(&info(link), C, &lines, "cluster_state:ok\r\n").unwrap()
        };
        let master = view(A, &[(A, "myself,master", "- 0 0 1 connected 0-16383")]);
        let addrs: Vec<SocketAddr> = (0..3)
            .map(|j| format!("127.0.0.{}:6379", 11 + j).parse().unwrap())
            .collect();
        let filler = view(B, &[(B, "myself,master", "- 0 0 2 connected")]);
        let down = [master.clone(), filler.clone(), replica("down")];
        assert_eq!(misdirected_replicas(&down, &addrs), vec![(2, 0)]);
        // Up, or pulling from the right address: nothing to do.
        let up = [master, filler, replica("up")];
        assert!(misdirected_replicas(&up, &addrs).is_empty());
    }
}
