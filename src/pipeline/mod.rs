//! The whole run: discover → connect → observe and plan ([`planning`]) → the decision's phases
//! ([`phases`]: form, move slots, converge, ...) → report. Each phase logs what it does and how
//! long it took ([`Timer`]), so the Job's log is the audit trail.

mod phases;
mod planning;
mod timer;

use std::future::Future;

use tracing::{info, warn};

pub use phases::{Phase, phases};
pub use timer::Timer;

use crate::client;
use crate::config::{LogFormat, Settings, WhenNotReady};
use crate::layout::Layout;
use crate::node::Node;
use crate::plan::{self, Decision};
use crate::report::{self, Summary};
use crate::shutdown::Shutdown;
use crate::{Error, Result, kubernetes, observe, resolve};

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
    let targets = resolve::static_targets(list);
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
    let shape = Layout::new(nodes.len(), settings.replicas_per_master).map_err(Error::Refused)?;
    info!(
        nodes = shape.nodes,
        masters = shape.masters,
        replicas_per_master = shape.replicas_per_master,
        "bootstrapping {} nodes: {} masters with {} replica(s) each",
        shape.nodes,
        shape.masters,
        shape.replicas_per_master
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

    let planning::Planned {
        observations,
        layout,
        plan,
    } = planning::plan(&clients, nodes, shape, settings, shutdown, &mut timer).await?;
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
        summary.phases = timer.phases();
        report::print(settings.log_format, nodes, &observations, &summary);
        return Ok(summary);
    }

    let run = phases::Run {
        clients: &clients,
        nodes,
        layout: &layout,
        plan: &plan,
        settings,
        shutdown,
    };
    let observations = match phases::carry_out(&run, observations, &mut timer).await? {
        Some(observations) => {
            info!(
                "every node agrees: {} masters, {} replicas, 16384 slots",
                layout.masters,
                layout.replicas()
            );
            summary.phases = timer.total();
            summary.shared_failure_domains =
                plan::placement::shared(&plan::placement::observed_shards(&observations), nodes);
            observations
        }
        // A drain: the report follows the moves, read anew.
        None => {
            summary.outcome = "drained";
            summary.phases = timer.total();
            observe::observe_anew(
                nodes,
                settings.credentials.as_ref(),
                tls.as_ref(),
                settings.converge_timeout,
            )
            .await?
        }
    };
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

/// One planned step of a dry run on stdout: a line for people, or one JSON object for log
/// pipelines (which drop anything that is not JSON).
fn print_would_run(format: LogFormat, step: &str) {
    match format {
        LogFormat::Text => println!("would run {step}"),
        LogFormat::Json => println!("{}", serde_json::json!({ "would_run": step })),
    }
}
