//! Plans, and waits out a *waiting* plan ([`crate::plan`]): a pod just left and the nodes have
//! not all flagged its old ID `fail` yet. Every node is read again every [`POLL`] and the plan
//! made anew, until it is something else (a *shrink*, a *replace*, a refusal); nothing but reads
//! is sent. The IDs seen gone once stay gone for the rest of the run, and a refusal of the first
//! reading is confirmed by a second: Redis shows a dead peer's link `connected` while it
//! reconnects ([`crate::plan::departed`]). Bounded by `BOOTSTRAP_CONVERGE_TIMEOUT` (exit 1 naming
//! the IDs still awaited); a signal stops the wait at once, nothing changed.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use tracing::info;

use crate::client::Client;
use crate::node::Node;
use crate::observation::Observation;
use crate::observe::observe_all;
use crate::plan::{self, Decision, Plan};
use crate::shutdown::Shutdown;
use crate::{Error, Result};

/// How often the nodes are read again. Redis flags a node `fail` about `cluster-node-timeout`
/// after it went silent; a quarter second is well below any sane timeout and costs one pipelined
/// read per node.
const POLL: Duration = Duration::from_millis(250);

/// Plans with `plan` (given the observations and the IDs this run has seen gone, it returns the
/// plan and whatever it decided on the way), reading the nodes again while the plan is
/// *waiting*. A refusal of the first reading is confirmed by a second one: a dead peer's link can
/// look alive for an instant ([`plan::departed`]). Returns the observations the final plan was
/// made from.
pub async fn plan_when_settled<T>(
    clients: &[Client],
    nodes: &[Node],
    mut observations: Vec<Observation>,
    timeout: Duration,
    shutdown: &Shutdown,
    mut plan: impl FnMut(&[Observation], &HashSet<String>) -> Result<(T, Plan)>,
) -> Result<(Vec<Observation>, T, Plan)> {
    let started = Instant::now();
    let mut said: Option<String> = None;
    let mut departed: HashSet<String> = HashSet::new();
    let mut first = true;
    loop {
        departed.extend(plan::departed(nodes, &observations));
        let planned = plan(&observations, &departed);
        if std::mem::take(&mut first) && matches!(planned, Err(Error::Refused(_))) {
            pause(shutdown).await?;
            observations = observe_all(clients).await?;
            continue;
        }
        let (extra, planned) = planned?;
        if planned.decision != Decision::Waiting {
            if said.is_some() {
                info!(
                    waited_ms = started.elapsed().as_millis() as u64,
                    "done waiting, after {:.1} s",
                    started.elapsed().as_secs_f64()
                );
            }
            return Ok((observations, extra, planned));
        }
        let why = planned.notes.join("; ");
        if started.elapsed() >= timeout {
            return Err(Error::Timeout {
                phase: "the wait for every node to flag the departed nodes fail",
                after: timeout,
                detail: why,
            });
        }
        if said.as_deref() != Some(why.as_str()) {
            info!(decision = %Decision::Waiting, "{why}");
            said = Some(why);
        }
        pause(shutdown).await?;
        observations = observe_all(clients).await?;
    }
}

/// Sleeps [`POLL`], or stops at once on a signal (nothing changed).
async fn pause(shutdown: &Shutdown) -> Result<()> {
    tokio::select! {
        _ = tokio::time::sleep(POLL) => Ok(()),
        signal = shutdown.wait() => Err(Error::Interrupted {
            signal,
            phase: "waiting",
            detail: "nothing was changed".to_string(),
        }),
    }
}
