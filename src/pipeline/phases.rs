//! What a run does once it has a plan: the phases of each decision, in order ([`phases`], the
//! table a reader checks to see what a growth does after planning), and one small function per
//! phase. Every phase logs what it did and how long it took.

use tracing::{info, warn};

use super::{Timer, unless_stopped};
use crate::client::Client;
use crate::config::Settings;
use crate::layout::Layout;
use crate::node::Node;
use crate::observation::Observation;
use crate::plan::{self, Decision, Plan};
use crate::shutdown::Shutdown;
use crate::{Error, Result, converge, form, migrate, relocate, stabilize};

/// One phase of carrying out a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The plan's cluster steps (`src/form.rs`): slots, epochs, `MEET`s, `FORGET`s, `REPLICATE`s.
    Form,
    /// A placement repair's moves, one at a time (`src/relocate.rs`).
    Relocate,
    /// The plan's slot moves (`src/migrate/`), after its other steps.
    MoveSlots,
    /// Waits until every node agrees; repairs the replica counts when Redis moved a replica.
    Converge,
    /// Clears the replicas' stale open slots (`src/stabilize.rs`): after moves, no slot is left
    /// open on any node.
    Stabilize,
    /// Says what the user does after a drain; the report reads the nodes anew.
    Drained,
}

/// What each decision does after planning, in order. *formed* only reports what it read;
/// *waiting* never reaches here (it is waited out while planning).
pub fn phases(plan: &Plan) -> &'static [Phase] {
    use Phase::*;
    match plan.decision {
        Decision::Formed | Decision::Waiting => &[],
        Decision::Fresh
        | Decision::Partial
        | Decision::Reconnect
        | Decision::Settling
        | Decision::Replace
        | Decision::Shrink => &[Form, Converge],
        Decision::Grow => &[Form, MoveSlots, Converge, Stabilize],
        Decision::Repair => &[Stabilize, Relocate, Converge],
        // Already drained: nothing to move, and no other shape to converge to.
        Decision::Drain if plan.steps.is_empty() => &[Stabilize, Drained],
        Decision::Drain => &[Form, MoveSlots, Stabilize, Drained],
    }
}

/// What the phases work on.
pub struct Run<'a> {
    /// One connection per node, in pod order.
    pub clients: &'a [Client],
    /// The nodes, in pod order.
    pub nodes: &'a [Node],
    /// The shape the plan was made for.
    pub layout: &'a Layout,
    /// The plan.
    pub plan: &'a Plan,
    /// The run's settings (timeouts, credentials, placement).
    pub settings: &'a Settings,
    /// Stops the run at the next safe point.
    pub shutdown: &'a Shutdown,
}

/// Carries out `run`'s plan, phase by phase. `observations` are what the plan was made from;
/// returns what the report shows: each node's observation (with at least its own line), or
/// `None` when the report must read the nodes anew (a drain leaves a shape no check waits for).
pub async fn carry_out(
    run: &Run<'_>,
    observations: Vec<Observation>,
    timer: &mut Timer,
) -> Result<Option<Vec<Observation>>> {
    let phases = phases(run.plan);
    if phases.is_empty() {
        return Ok(Some(observations));
    }
    // The planner's N views are not needed past the plan, only the nodes' IDs: free them before
    // the nodes' views grow to N lines each while the cluster converges.
    let ids = crate::observation::ids(&observations);
    drop(observations);
    let mut report = None;
    for phase in phases {
        match phase {
            Phase::Form => form(run, timer).await?,
            Phase::Relocate => relocate(run, run.plan, timer).await?,
            Phase::MoveSlots => move_slots(run, timer).await?,
            Phase::Converge => report = Some(converge(run, &ids, timer).await?),
            Phase::Stabilize => stabilize(run, timer).await?,
            Phase::Drained => drained(run),
        }
    }
    Ok(report)
}

/// [`Phase::Form`].
async fn form(run: &Run<'_>, timer: &mut Timer) -> Result<()> {
    let timeout = run.settings.converge_timeout;
    form::form(run.clients, run.plan, timeout, run.shutdown).await?;
    timer.done("form");
    Ok(())
}

/// [`Phase::Relocate`], for the plan's moves or for a repair found after converging.
async fn relocate(run: &Run<'_>, plan: &Plan, timer: &mut Timer) -> Result<()> {
    let timeout = run.settings.converge_timeout;
    relocate::relocate(run.clients, run.layout, plan, timeout, run.shutdown).await?;
    timer.done("repair");
    Ok(())
}

/// [`Phase::MoveSlots`].
async fn move_slots(run: &Run<'_>, timer: &mut Timer) -> Result<()> {
    let settings = run.settings;
    let moved = migrate::run(
        run.clients,
        &run.plan.steps,
        settings.converge_timeout,
        run.shutdown,
    )
    .await?;
    info!(
        slots = moved.slots,
        keys = moved.keys,
        "moved {} slot(s) and {} key(s)",
        moved.slots,
        moved.keys
    );
    timer.done("move slots");
    Ok(())
}

/// [`Phase::Converge`]: waits for agreement. A cluster that comes out healthy but not R
/// replicas per master had a replica moved by Redis meanwhile (a replica migration, a failover
/// under load); waiting would not change it: it is repaired, then agreement is waited for once
/// more.
async fn converge(run: &Run<'_>, ids: &[String], timer: &mut Timer) -> Result<Vec<Observation>> {
    let timeout = run.settings.converge_timeout;
    let agreed = unless_stopped(
        run.shutdown,
        "converge",
        "every planned change was made; the nodes were still coming to agree",
        converge::converge(run.clients, run.layout, ids.to_vec(), timeout),
    )
    .await?;
    timer.done("converge");
    if agreed.uneven.is_empty() {
        return Ok(agreed.observations);
    }
    let repair = plan::repair::complete(
        Plan {
            decision: Decision::Repair,
            steps: Vec::new(),
            notes: Vec::new(),
        },
        run.nodes,
        run.layout,
        &agreed.observations,
        run.settings.repair_placement,
    );
    warn!(
        "the cluster is healthy but its replicas are not {} per master (Redis moved one on its \
         own meanwhile): repairing it with {} move(s)",
        run.layout.replicas_per_master,
        repair.steps.len()
    );
    relocate(run, &repair, timer).await?;
    let ids = crate::observation::ids(&agreed.observations);
    let agreed = converge::converge(run.clients, run.layout, ids, timeout).await?;
    timer.done("converge");
    if agreed.uneven.is_empty() {
        Ok(agreed.observations)
    } else {
        Err(Error::Timeout {
            phase: "convergence",
            after: timeout,
            detail: converge::summarize(&agreed.uneven),
        })
    }
}

/// [`Phase::Stabilize`]; timed only when it cleared something.
async fn stabilize(run: &Run<'_>, timer: &mut Timer) -> Result<()> {
    let timeout = run.settings.converge_timeout;
    let cleared = stabilize::stabilize(run.clients, timeout, run.shutdown).await?;
    if cleared > 0 {
        info!(cleared, "cleared {cleared} stale open slot(s) on replicas");
        timer.done("stale open slots");
    }
    Ok(())
}

/// [`Phase::Drained`]: the cluster is left with empty masters on the highest pods, a shape no
/// other run converges to; the next run (still drained) checks it.
fn drained(run: &Run<'_>) {
    let d = run.settings.drain_to.expect("a drain has a target");
    info!(
        "drained: {} hold no slots; now scale the StatefulSet to {d}, and keep BOOTSTRAP_DRAIN_TO={d} \
         set until it has shrunk",
        plan::drain::pods_from(d, run.nodes.len())
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Step;

    fn plan(decision: Decision, steps: Vec<Step>) -> Plan {
        Plan {
            decision,
            steps,
            notes: Vec::new(),
        }
    }

    #[test]
    fn a_growth_forms_moves_converges_then_closes_stale_slots() {
        use Phase::*;
        assert_eq!(
            phases(&plan(Decision::Grow, Vec::new())),
            [Form, MoveSlots, Converge, Stabilize]
        );
        assert_eq!(phases(&plan(Decision::Formed, Vec::new())), []);
        assert_eq!(
            phases(&plan(Decision::Repair, Vec::new())),
            [Stabilize, Relocate, Converge]
        );
    }

    #[test]
    fn a_drain_already_done_only_closes_stale_slots_and_says_so() {
        use Phase::*;
        assert_eq!(
            phases(&plan(Decision::Drain, Vec::new())),
            [Stabilize, Drained]
        );
        let meet = Step::Meet { node: 6, peer: 0 };
        assert_eq!(
            phases(&plan(Decision::Drain, vec![meet])),
            [Form, MoveSlots, Stabilize, Drained]
        );
    }
}
