//! From connected nodes to a plan: reads every node, waits out a *waiting* plan, arranges the
//! pairing (by placement when the pods' Kubernetes nodes are known), completes the plan with a
//! placement repair, and logs what was decided and why.

use tracing::{info, warn};

use super::{NOTHING_CHANGED, Timer, unless_stopped};
use crate::client::Client;
use crate::config::Settings;
use crate::layout::Layout;
use crate::node::Node;
use crate::observation::Observation;
use crate::plan::{self, Decision, Plan};
use crate::shutdown::Shutdown;
use crate::survey::{self, Survey};
use crate::{Error, Result, observe, settle};

/// A plan and what it was made from.
pub struct Planned {
    /// What every node said, in pod order, when the plan was made.
    pub observations: Vec<Observation>,
    /// The shape, with the pairing chosen.
    pub layout: Layout,
    /// The decision and its steps.
    pub plan: Plan,
}

/// Reads every node and plans; times `observe` and `plan`.
pub async fn plan(
    clients: &[Client],
    nodes: &[Node],
    shape: Layout,
    settings: &Settings,
    shutdown: &Shutdown,
    timer: &mut Timer,
) -> Result<Planned> {
    // A due drain moves slots whatever the views say: the planner needs them whole.
    let draining = settings.drain_to.is_some_and(|d| nodes.len() > d);
    let survey = async {
        if draining {
            Ok(Survey::Whole(observe::observe_all(clients).await?))
        } else {
            survey::survey(clients, nodes, &shape).await
        }
    };
    let survey = unless_stopped(shutdown, "observe", NOTHING_CHANGED, survey).await?;
    timer.done("observe");

    // Who masters and who follows whom: by placement when the pods' nodes are known; and a
    // placement repair when pods moved.
    let arrange =
        |observations: &[Observation]| plan::placement::arrange(shape.clone(), nodes, observations);
    let complete = |observations: &[Observation], layout: &Layout, plan: Plan| {
        let placement = settings.repair_placement;
        plan::repair::complete(plan, nodes, layout, observations, placement)
    };
    // Every view agreed on the formed cluster: planned from the nodes' own lines.
    let from_own_lines = match &survey {
        Survey::Agreed(own) => plan::plan_agreed(nodes, &shape, own, settings.drain_to),
        Survey::Whole(_) => None,
    };
    let (observations, (layout, pairing), plan) = match (survey, from_own_lines) {
        (Survey::Agreed(own), Some(plan)) => {
            let (layout, pairing) = arrange(&own);
            let plan = complete(&own, &layout, plan);
            (own, (layout, pairing), plan)
        }
        // A pod that just left is waited for (`settle`) until every node flags it `fail`.
        (survey, _) => {
            let observations = match survey {
                Survey::Whole(observations) => observations,
                // Agreed, but the masters are not balanced: the planner needs the whole views.
                Survey::Agreed(_) => {
                    let read = observe::observe_all(clients);
                    unless_stopped(shutdown, "observe", NOTHING_CHANGED, read).await?
                }
            };
            settle::plan_when_settled(
                clients,
                nodes,
                observations,
                settings.converge_timeout,
                shutdown,
                |observations, departed| {
                    let (layout, pairing) = arrange(observations);
                    let drain_to = settings.drain_to;
                    let plan =
                        plan::plan_remembering(nodes, &layout, observations, drain_to, departed)
                            .map_err(Error::Refused)?;
                    let plan = complete(observations, &layout, plan);
                    Ok(((layout, pairing), plan))
                },
            )
            .await?
        }
    };
    if let Some(d) = settings.drain_to.filter(|&d| nodes.len() <= d) {
        info!(
            "BOOTSTRAP_DRAIN_TO={d} has no effect with {} pods: once the StatefulSet has shrunk \
             and the removed nodes are forgotten, remove the variable",
            nodes.len()
        );
    }
    info!(decision = %plan.decision, steps = plan.steps.len(), "plan: {}", plan.decision.explain());
    for note in &plan.notes {
        info!("{note}");
    }
    if matches!(plan.decision, Decision::Fresh | Decision::Partial) {
        pairing
            .describe(nodes)
            .iter()
            .for_each(|line| info!("{line}"));
        pairing
            .warnings(nodes)
            .iter()
            .for_each(|line| warn!(reason = plan::placement::SHARED_FAILURE_DOMAIN, "{line}"));
    }
    for step in &plan.steps {
        tracing::debug!("planned: {}", step.describe(nodes));
    }
    timer.done("plan");
    Ok(Planned {
        observations,
        layout,
        plan,
    })
}
