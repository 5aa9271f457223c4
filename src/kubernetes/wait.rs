//! Waiting for the StatefulSet to be Ready: a watch, bounded by the ready timeout.
//!
//! kube's `watch_object` lists the StatefulSet, then watches it from that resourceVersion, and
//! re-lists and re-watches whenever the stream ends or fails; every version is checked at once
//! against [`Rollout`], so the Ready event ends the wait without delay. Failures are retried with
//! [`ApiBackoff`], except a 403. When the timeout expires, the pods say why they are not ready.

use std::pin::pin;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use kube::core::Selector;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::time::Instant;
use tracing::{info, warn};

use super::rollout::Rollout;
use super::{Target, api_error, diagnosis};
use crate::{Error, Result};

/// How long the pods may take to list once the wait has timed out.
const DIAGNOSIS_TIMEOUT: Duration = Duration::from_secs(10);

/// What the watch knows of the StatefulSet so far.
#[derive(Default)]
enum Known {
    /// Nothing yet: the API server has not answered.
    #[default]
    Nothing,
    /// The API server says it does not exist.
    Missing,
    /// Its latest version.
    Found(Box<StatefulSet>),
}

/// The state of the wait, kept outside the watch so the timeout can explain itself.
#[derive(Default)]
struct Progress {
    known: Known,
    /// The last line logged, to log only changes.
    said: String,
    /// The last API failure since the last good answer.
    error: Option<String>,
}

/// Waits until the StatefulSet is Ready and returns that version of it; gives up at `deadline`,
/// the end of the ready timeout `budget`.
pub(super) async fn until_ready(
    statefulsets: &Api<StatefulSet>,
    pods: &Api<Pod>,
    target: &Target,
    deadline: Instant,
    budget: Duration,
) -> Result<StatefulSet> {
    let mut progress = Progress::default();
    match tokio::time::timeout_at(deadline, watch(statefulsets, target, &mut progress)).await {
        Ok(ready) => ready,
        Err(_) => Err(Error::Timeout {
            phase: "readiness",
            after: budget,
            detail: explain(pods, target, &progress).await,
        }),
    }
}

/// Follows the StatefulSet until its rollout is done.
async fn watch(
    api: &Api<StatefulSet>,
    target: &Target,
    progress: &mut Progress,
) -> Result<StatefulSet> {
    let mut versions =
        pin!(watcher::watch_object(api.clone(), &target.name).backoff(ApiBackoff::new()));
    while let Some(version) = versions.next().await {
        match version {
            Ok(Some(sts)) => {
                progress.error = None;
                let rollout = Rollout::of(&sts);
                let line = rollout.to_string();
                if progress.said != line {
                    info!(
                        statefulset = %target.name,
                        ready = rollout.ready,
                        wanted = rollout.wanted,
                        "{line}"
                    );
                    progress.said = line;
                }
                if rollout.is_done() {
                    return Ok(sts);
                }
                progress.known = Known::Found(Box::new(sts));
            }
            Ok(None) => {
                progress.error = None;
                progress.known = Known::Missing;
                let line = format!("{target} does not exist yet; waiting for it to be created");
                if progress.said != line {
                    info!("{line}");
                    progress.said = line;
                }
            }
            Err(e) => {
                if let Some((verb, status)) = api_error::forbidden_verb(&e) {
                    return Err(api_error::forbidden(
                        verb,
                        "statefulsets.apps",
                        target,
                        status,
                    ));
                }
                let why = api_error::describe(&e);
                warn!(statefulset = %target.name, error = %why, "the Kubernetes API failed; retrying");
                progress.error = Some(why);
            }
        }
    }
    // The watcher re-establishes itself for ever; it only ends if kube changes that.
    Err(Error::Kubernetes(format!("the watch of {target} ended")))
}

/// The detail of the timeout error: how far the rollout got, and why each unready pod is not ready.
async fn explain(pods: &Api<Pod>, target: &Target, progress: &Progress) -> String {
    let mut detail = match &progress.known {
        Known::Nothing => format!("{target} could not be read"),
        Known::Missing => format!("{target} does not exist yet"),
        Known::Found(sts) => {
            let mut text = format!("{target}: {}", Rollout::of(sts));
            match tokio::time::timeout(DIAGNOSIS_TIMEOUT, unready_pods(pods, target, sts)).await {
                Ok(Ok(lines)) => {
                    for line in &lines {
                        warn!("not ready: {line}");
                    }
                    if !lines.is_empty() {
                        text.push_str(&format!("; not ready: {}", lines.join("; ")));
                    }
                }
                Ok(Err(why)) => text.push_str(&format!("; the pods could not be read: {why}")),
                Err(_) => text.push_str("; the pods could not be read in time"),
            }
            text
        }
    };
    if let Some(error) = &progress.error {
        detail.push_str(&format!("; last API error: {error}"));
    }
    detail
}

/// One line per pod of the StatefulSet that is not ready, from the pods its selector matches.
async fn unready_pods(
    pods: &Api<Pod>,
    target: &Target,
    sts: &StatefulSet,
) -> Result<Vec<String>, String> {
    let spec = sts.spec.clone().unwrap_or_default();
    let selector = Selector::try_from(spec.selector).map_err(|e| format!("bad selector: {e}"))?;
    let list = pods
        .list(&ListParams::default().labels_from(&selector))
        .await
        .map_err(|e| match api_error::forbidden_status(&e) {
            Some(status) => api_error::forbidden("list", "pods", target, status).to_string(),
            None => api_error::describe_client(&e),
        })?;
    let expected: Vec<String> = (0..spec.replicas.unwrap_or(1))
        .map(|i| format!("{}-{i}", target.name))
        .collect();
    Ok(diagnosis::unready(&expected, &list.items))
}

/// Retries of a failed list or watch: quick at first (a blip), then every few seconds (an outage),
/// for ever: the ready timeout is what gives up.
struct ApiBackoff(backoff::ExponentialBackoff);

impl ApiBackoff {
    fn new() -> ApiBackoff {
        ApiBackoff(
            backoff::ExponentialBackoffBuilder::new()
                .with_initial_interval(Duration::from_millis(250))
                .with_max_interval(Duration::from_secs(5))
                .with_max_elapsed_time(None)
                .build(),
        )
    }
}

impl Iterator for ApiBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        backoff::backoff::Backoff::next_backoff(&mut self.0)
    }
}

impl kube::runtime::utils::Backoff for ApiBackoff {
    fn reset(&mut self) {
        backoff::backoff::Backoff::reset(&mut self.0);
    }
}
