//! The whole run, phase by phase: discover → connect → observe → plan → form → converge → report.
//! Each phase logs what it does and how long it took, so the Job's log is the audit trail.

use std::future::Future;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::client;
use crate::config::{LogFormat, Settings, WhenNotReady};
use crate::layout::Layout;
use crate::node::Node;
use crate::plan::{self, Decision};
use crate::report::{self, Summary};
use crate::settle;
use crate::shutdown::Shutdown;
use crate::{Error, Result, converge, form, kubernetes, migrate, observe, relocate, resolve};

/// Runs the program for these settings: finds the nodes, then bootstraps them. `shutdown` stops
/// it at the next safe point.
///
/// `None` is a run that found the pods not Ready and, as `BOOTSTRAP_WHEN_NOT_READY=skip` asks,
/// left them alone (exit 0, no Event).
pub async fn run(settings: Settings, shutdown: Shutdown) -> Result<Option<Summary>> {
    let mut timer = Timer::default();
    let Some(list) = &settings.nodes else {
        return in_kubernetes(&settings, &shutdown, timer).await;
    };
    // Position i plays pod i; an IP has no better name than that, a host name is kept as given.
    let targets: Vec<(String, String, u16)> = list
        .iter()
        .enumerate()
        .map(|(i, hp)| {
            let name = match hp.ip() {
                Some(_) => format!("node-{i}"),
                None => hp.to_string(),
            };
            (name, hp.host.clone(), hp.port)
        })
        .collect();
    let resolve = resolve::resolve_all(&targets, &settings);
    let nodes = unless_stopped(&shutdown, "discover", NOTHING_CHANGED, resolve).await?;
    timer.done("discover");
    bootstrap(&nodes, &settings, &shutdown, timer)
        .await
        .map(Some)
}

const NOTHING_CHANGED: &str = "nothing was changed";

/// Runs a phase that changes nothing, or stops it at once when a signal comes; `done` says what
/// the run had done by then.
async fn unless_stopped<T>(
    shutdown: &Shutdown,
    phase: &'static str,
    done: &str,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    tokio::select! {
        result = work => result,
        signal = shutdown.wait() => Err(Error::Interrupted { signal, phase, detail: done.to_string() }),
    }
}

/// Kubernetes mode: discovers the pods, bootstraps them holding the Lease (not in a dry run, which
/// changes nothing), and records the run's Event.
async fn in_kubernetes(
    settings: &Settings,
    shutdown: &Shutdown,
    mut timer: Timer,
) -> Result<Option<Summary>> {
    let discover = kubernetes::discover(settings);
    let discovered = unless_stopped(shutdown, "discover", NOTHING_CHANGED, discover).await;
    if let (
        Err(
            e @ Error::Timeout {
                phase: "readiness",
                detail,
                ..
            },
        ),
        WhenNotReady::Skip,
    ) = (&discovered, settings.when_not_ready)
    {
        // A rollout, or pods still starting: the pods' own readiness and `rejoin` carry it, and
        // the next scheduled run looks again. Not a failure: no failed Job, no Warning.
        info!(
            "{}; leaving the StatefulSet alone (BOOTSTRAP_WHEN_NOT_READY=skip): the next run looks again",
            crate::one_line(e)
        );
        report::print_skipped(settings.log_format, detail);
        return Ok(None);
    }
    let day2 = kubernetes::client(settings)
        .await
        .ok()
        .filter(|_| !settings.dry_run);
    let result = match discovered {
        Err(e) => Err(e),
        Ok(nodes) => {
            timer.done("discover");
            match &day2 {
                Some((client, target)) => {
                    let wait = settings.ready_timeout;
                    kubernetes::lease::hold(client.clone(), target, wait, shutdown, || {
                        timer.done("lease");
                        bootstrap(&nodes, settings, shutdown, timer)
                    })
                    .await
                }
                None => bootstrap(&nodes, settings, shutdown, timer).await,
            }
        }
    };
    if let Some((client, target)) = day2 {
        kubernetes::events::record(client, &target, &result).await;
    }
    result.map(Some)
}

/// Bootstraps these nodes (in pod order): the part shared by static and Kubernetes mode.
pub async fn bootstrap(
    nodes: &[Node],
    settings: &Settings,
    shutdown: &Shutdown,
    mut timer: Timer,
) -> Result<Summary> {
    let layout = Layout::new(nodes.len(), settings.replicas_per_master).map_err(Error::Refused)?;
    info!(
        nodes = layout.nodes,
        masters = layout.masters,
        replicas_per_master = layout.replicas_per_master,
        "bootstrapping {} nodes: {} masters with {} replica(s) each",
        layout.nodes,
        layout.masters,
        layout.replicas_per_master
    );

    let tls = tls(settings)?;
    let clients = unless_stopped(
        shutdown,
        "connect",
        NOTHING_CHANGED,
        client::connect_all(
            nodes,
            settings.credentials.as_ref(),
            tls.as_ref(),
            settings.ready_timeout,
        ),
    )
    .await?;
    timer.done("connect");

    let observations = unless_stopped(
        shutdown,
        "observe",
        NOTHING_CHANGED,
        observe::observe_all(&clients),
    )
    .await?;
    timer.done("observe");

    // Who masters and who follows whom: by placement when the pods' nodes are known. A pod that
    // just left is waited for (`settle`) until every node flags it `fail`.
    let shape = layout;
    let (observations, (layout, pairing), plan) = settle::plan_when_settled(
        &clients,
        nodes,
        observations,
        settings.converge_timeout,
        shutdown,
        |observations, departed| {
            let (layout, pairing) = plan::placement::arrange(shape.clone(), nodes, observations);
            let plan =
                plan::plan_remembering(nodes, &layout, observations, settings.drain_to, departed)
                    .map_err(Error::Refused)?;
            let plan = plan::repair::complete(
                plan,
                nodes,
                &layout,
                observations,
                settings.repair_placement,
            );
            Ok(((layout, pairing), plan))
        },
    )
    .await?;
    if let Some(d) = settings.drain_to.filter(|&d| nodes.len() <= d) {
        info!(
            "BOOTSTRAP_DRAIN_TO={d} has no effect with {} pods: once the StatefulSet has shrunk \
             and the removed nodes are forgotten, remove the variable",
            nodes.len()
        );
    }
    info!(decision = %plan.decision, steps = plan.steps.len(), "plan: {}", explain(plan.decision));
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

    let mut summary = Summary {
        outcome: "formed",
        decision: plan.decision,
        nodes: layout.nodes,
        masters: layout.masters,
        replicas_per_master: layout.replicas_per_master,
        steps: plan.steps.len(),
        phases: Vec::new(),
        shared_failure_domains: Vec::new(),
        repairs: if plan.decision == Decision::Repair {
            plan.notes.clone()
        } else {
            Vec::new()
        },
    };
    if settings.dry_run {
        warn!("dry run: nothing was changed");
        summary.outcome = "dry-run";
        for step in &plan.steps {
            print_would_run(settings.log_format, &step.describe(nodes));
        }
        summary.phases = timer.phases;
        report::print(settings.log_format, nodes, &observations, &summary);
        return Ok(summary);
    }

    if plan.decision == Decision::Drain {
        return drain(&clients, nodes, settings, shutdown, &plan, timer, summary).await;
    }
    let observations = if plan.decision == Decision::Formed {
        observations
    } else {
        // The planner's N views are not needed past the plan, only the nodes' IDs: free them
        // before the nodes' views grow to N lines each while the cluster converges.
        let ids = crate::observation::ids(&observations);
        drop(observations);
        if plan.decision == Decision::Repair {
            relocate::relocate(
                &clients,
                &layout,
                &plan,
                settings.converge_timeout,
                shutdown,
            )
            .await?;
            timer.done("repair");
        } else {
            form::form(&clients, &plan, settings.converge_timeout, shutdown).await?;
            timer.done("form");
        }
        if plan
            .steps
            .iter()
            .any(|s| matches!(s, plan::Step::MoveSlots { .. }))
        {
            move_slots(&clients, &plan, settings, shutdown, &mut timer).await?;
        }
        let agreed = unless_stopped(
            shutdown,
            "converge",
            "every planned change was made; the nodes were still coming to agree",
            converge::converge(&clients, &layout, ids, settings.converge_timeout),
        )
        .await?;
        timer.done("converge");
        if agreed.uneven.is_empty() {
            agreed.observations
        } else {
            repair_replicas(
                &clients,
                nodes,
                &layout,
                agreed.observations,
                settings,
                shutdown,
                &mut timer,
            )
            .await?
        }
    };
    info!(
        "every node agrees: {} masters, {} replicas, 16384 slots",
        layout.masters,
        layout.replicas()
    );
    summary.phases = timer.total();
    summary.shared_failure_domains =
        plan::placement::shared(&plan::placement::observed_shards(&observations), nodes);
    report::print(settings.log_format, nodes, &observations, &summary);
    Ok(summary)
}

/// The cluster came out of the run healthy but not R replicas per master: Redis re-pointed a
/// replica on its own meanwhile (a replica migration, a failover under load). Waiting would not
/// change it: repair it, then wait for agreement once more.
async fn repair_replicas(
    clients: &[client::Client],
    nodes: &[Node],
    layout: &Layout,
    observations: Vec<crate::observation::Observation>,
    settings: &Settings,
    shutdown: &Shutdown,
    timer: &mut Timer,
) -> Result<Vec<crate::observation::Observation>> {
    let uneven = plan::Plan {
        decision: Decision::Repair,
        steps: Vec::new(),
        notes: Vec::new(),
    };
    let repair = plan::repair::complete(
        uneven,
        nodes,
        layout,
        &observations,
        settings.repair_placement,
    );
    warn!(
        "the cluster is healthy but its replicas are not {} per master (Redis moved one on its \
         own meanwhile): repairing it with {} move(s)",
        layout.replicas_per_master,
        repair.steps.len()
    );
    relocate::relocate(
        clients,
        layout,
        &repair,
        settings.converge_timeout,
        shutdown,
    )
    .await?;
    timer.done("repair");
    let ids = crate::observation::ids(&observations);
    let agreed = converge::converge(clients, layout, ids, settings.converge_timeout).await?;
    timer.done("converge");
    if agreed.uneven.is_empty() {
        Ok(agreed.observations)
    } else {
        Err(Error::Timeout {
            phase: "convergence",
            after: settings.converge_timeout,
            detail: converge::summarize(&agreed.uneven),
        })
    }
}

/// Moves the plan's slots (grow, drain), after its other steps are done.
async fn move_slots(
    clients: &[client::Client],
    plan: &plan::Plan,
    settings: &Settings,
    shutdown: &Shutdown,
    timer: &mut Timer,
) -> Result<()> {
    let moved = migrate::run(clients, &plan.steps, settings.converge_timeout, shutdown).await?;
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

/// Carries out a drain (nothing when already drained) and says what the user does next. The
/// cluster is left with empty masters on the highest pods, a shape no other run converges to: the
/// report follows the moves, and the next run (still drained) checks it.
async fn drain(
    clients: &[client::Client],
    nodes: &[Node],
    settings: &Settings,
    shutdown: &Shutdown,
    plan: &plan::Plan,
    mut timer: Timer,
    mut summary: Summary,
) -> Result<Summary> {
    let d = settings.drain_to.expect("a drain has a target");
    if !plan.steps.is_empty() {
        form::form(clients, plan, settings.converge_timeout, shutdown).await?;
        move_slots(clients, plan, settings, shutdown, &mut timer).await?;
    }
    summary.outcome = "drained";
    info!(
        "drained: {} hold no slots; now scale the StatefulSet to {d}, and keep BOOTSTRAP_DRAIN_TO={d} \
         set until it has shrunk",
        plan::drain::pods_from(d, nodes.len())
    );
    summary.phases = timer.total();
    let tls = tls(settings)?;
    let observations = observe::observe_anew(
        nodes,
        settings.credentials.as_ref(),
        tls.as_ref(),
        settings.converge_timeout,
    )
    .await?;
    report::print(settings.log_format, nodes, &observations, &summary);
    Ok(summary)
}

/// The TLS client configuration: read already at startup by `Settings::from_env`, read here when
/// the settings came otherwise, so TLS is never silently off.
fn tls(settings: &Settings) -> Result<Option<crate::tls::Tls>> {
    Ok(match (&settings.tls, &settings.tls_files) {
        (None, Some(files)) => Some(files.load()?),
        (tls, _) => tls.clone(),
    })
}

fn explain(decision: Decision) -> &'static str {
    match decision {
        Decision::Formed => "the cluster is formed and every node agrees; nothing to do",
        Decision::Fresh => "every node is empty and alone; forming the cluster",
        Decision::Partial => "an earlier run was interrupted; finishing what is missing",
        Decision::Reconnect => "the nodes lost each other (new addresses); re-introducing them",
        Decision::Settling => "the cluster is complete; waiting for every node to agree",
        Decision::Grow => {
            "the StatefulSet grew by whole shards; adding them and moving their share of slots"
        }
        Decision::Drain => {
            "BOOTSTRAP_DRAIN_TO is set: moving every slot off the highest pods before the StatefulSet shrinks"
        }
        Decision::Shrink => {
            "the StatefulSet shrank: forgetting the removed pods' node IDs on every node"
        }
        Decision::Repair => {
            "the cluster is healthy but its replicas are not R per master, or share a machine \
             with their master: re-pairing them one move at a time"
        }
        Decision::Waiting => {
            "a pod just left and not every node flags it fail yet; waiting for them to agree"
        }
        Decision::Replace => {
            "a pod lost its volume and came back empty; forgetting its old node ID and adding it as a replica"
        }
    }
}

/// Times the phases; each `done` logs the phase and its duration.
#[derive(Debug)]
pub struct Timer {
    start: Instant,
    last: Instant,
    phases: Vec<(&'static str, Duration)>,
}

impl Default for Timer {
    fn default() -> Timer {
        let now = Instant::now();
        Timer {
            start: now,
            last: now,
            phases: Vec::new(),
        }
    }
}

impl Timer {
    /// Ends the current phase.
    pub fn done(&mut self, phase: &'static str) {
        let took = self.last.elapsed();
        self.last = Instant::now();
        info!(
            phase,
            took_ms = took.as_millis() as u64,
            "{phase} done in {}",
            human(took)
        );
        self.phases.push((phase, took));
    }

    fn total(mut self) -> Vec<(&'static str, Duration)> {
        self.phases.push(("total", self.start.elapsed()));
        self.phases
    }
}

fn human(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

/// One planned step of a dry run on stdout: a line for people, or one JSON object for log
/// pipelines (which drop anything that is not JSON).
fn print_would_run(format: LogFormat, step: &str) {
    match format {
        LogFormat::Text => println!("would run {step}"),
        LogFormat::Json => println!("{}", serde_json::json!({ "would_run": step })),
    }
}
