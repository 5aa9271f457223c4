//! The Lease that keeps two runs from acting on one cluster at once.
//!
//! The one-shot Job, the CronJob and a run started by hand can overlap, and Kubernetes may start a
//! Job's pod twice. In Kubernetes mode a run therefore holds the `coordination.k8s.io/v1` Lease
//! `<statefulset>-bootstrap`, in the StatefulSet's namespace, from observe until the cluster has
//! converged ([`hold`]): it renews the Lease while it works and releases it at the end, whether the
//! work succeeded or failed. Another run waits for it (within `BOOTSTRAP_READY_TIMEOUT`), then
//! observes afresh, so it sees what the first one did.
//!
//! The protocol is client-go's leader election on a Lease: read it; if nobody holds it, or its
//! holder has not renewed it for `leaseDurationSeconds` as measured by *our* clock since we first
//! saw that version (clocks of different nodes never meet), replace it with ourselves as holder.
//! Every write is a replace guarded by the `resourceVersion` we read, so of two runs that race, the
//! API server lets exactly one win (the other gets 409 Conflict and reads again).
//!
//! Hand-written on kube's `Api<Lease>` rather than a crate (see Cargo.toml): kube-leader-election
//! needs kube 4; kube-lease-manager (kube 5) locks with server-side apply and renews with
//! unguarded strategic-merge patches, which needs `patch` in the Role and relies on field-manager
//! conflicts, where this needs only get/create/update and one rule everyone can check.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::time::Instant;
use tracing::{info, warn};

use super::{Target, api_error};
use crate::shutdown::Shutdown;
use crate::{Error, Result};

/// How long a holder that stopped renewing keeps the Lease (`leaseDurationSeconds`), as in
/// client-go's default: a crashed run blocks others for at most this long.
pub const DURATION: Duration = Duration::from_secs(15);

/// How often the holder renews: three chances before [`DURATION`] runs out.
const RENEW_EVERY: Duration = Duration::from_secs(5);

/// How often a waiting run reads the Lease again.
const RETRY_EVERY: Duration = Duration::from_millis(500);

/// The verbs the binary uses on its own Lease by name (the Role restricts them with
/// `resourceNames`); `create` cannot be restricted by name.
pub const NAMED_VERBS: &[&str] = &["get", "update"];

/// The Lease of a StatefulSet's bootstrap runs.
pub fn name(statefulset: &str) -> String {
    format!("{statefulset}-bootstrap")
}

/// Who this run is, as the Lease's `holderIdentity`: the pod name (`HOSTNAME`, which Kubernetes
/// sets to it) and a random suffix, since two runs in one pod or on one workstation share a name.
pub fn identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "redis-cluster-bootstrap".into());
    // RandomState is seeded randomly per process: a random number without a dependency.
    let random = RandomState::new().hash_one(std::process::id());
    format!("{host}_{:08x}", random as u32)
}

/// Runs `work()` while holding the Lease of `target`: waits for it at most `wait`, then starts
/// `work` (so it observes only once the Lease is ours), renews the Lease while `work` runs, and releases it when `work` ends, on success and on every error. If the Lease is
/// lost (not renewed for [`DURATION`], or taken by another run), `work` is stopped and the run
/// fails with exit 1: another run may be acting, and what was done is safe to resume. A signal
/// while waiting for the Lease stops the run at once (nothing was changed yet); a Lease created in
/// that instant expires after [`DURATION`].
pub async fn hold<T, F: Future<Output = Result<T>>>(
    client: Client,
    target: &Target,
    wait: Duration,
    shutdown: &Shutdown,
    work: impl FnOnce() -> F,
) -> Result<T> {
    let api: Api<Lease> = Api::namespaced(client, &target.namespace);
    let me = identity();
    let lease_name = name(&target.name);
    let held = tokio::select! {
        held = acquire(&api, &lease_name, &me, target, wait) => held?,
        signal = shutdown.wait() => return Err(Error::Interrupted {
            signal,
            phase: "lease",
            detail: "nothing was changed".into(),
        }),
    };
    let shared = Arc::new(Mutex::new(held));
    let mut renewer = tokio::spawn(renew(api.clone(), shared.clone(), me.clone()));
    let result = tokio::select! {
        result = work() => result,
        lost = &mut renewer => Err(Error::Kubernetes(format!(
            "lost the lease {}/{lease_name} ({}): another run may be acting now; stopped (what \
             was done is safe to resume)",
            target.namespace,
            lost.unwrap_or_else(|e| e.to_string()),
        ))),
    };
    // Once `work` has ended the renewer must stop before the release, or it would renew again.
    renewer.abort();
    let latest = shared.lock().unwrap().clone();
    release(&api, latest, &me, target).await;
    result
}

/// Waits until this run holds the Lease, creating it if it does not exist, and returns it as
/// written.
async fn acquire(
    api: &Api<Lease>,
    lease_name: &str,
    me: &str,
    target: &Target,
    wait: Duration,
) -> Result<Lease> {
    let started = Instant::now();
    let deadline = started + wait;
    // The version of the Lease first seen held by someone else, and when we first saw it.
    let mut seen: Option<(String, Instant)> = None;
    let mut last_problem: String;
    loop {
        match api.get_opt(lease_name).await {
            Ok(None) => match api
                .create(&PostParams::default(), &fresh(lease_name, me))
                .await
            {
                Ok(lease) => return Ok(took(lease, target, started, None)),
                Err(e) => last_problem = failed("create", e, target)?,
            },
            Ok(Some(lease)) => {
                let spec = lease.spec.clone().unwrap_or_default();
                let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
                let version = lease.metadata.resource_version.clone().unwrap_or_default();
                let expired = match &holder {
                    None => true,
                    Some(h) if h == me => true,
                    Some(h) => {
                        let held_for = spec
                            .lease_duration_seconds
                            .map_or(DURATION, |s| Duration::from_secs(s.max(0) as u64));
                        match &seen {
                            Some((v, at)) if *v == version => at.elapsed() >= held_for,
                            _ => {
                                if seen.is_none() {
                                    info!(
                                        lease = lease_name,
                                        holder = %h,
                                        "another run holds the lease; waiting for it"
                                    );
                                }
                                seen = Some((version, Instant::now()));
                                false
                            }
                        }
                    }
                };
                if expired {
                    let previous = holder.clone().filter(|h| h != me);
                    match api
                        .replace(lease_name, &PostParams::default(), &taken(lease, me))
                        .await
                    {
                        Ok(lease) => return Ok(took(lease, target, started, previous)),
                        Err(e) => last_problem = failed("update", e, target)?,
                    }
                } else {
                    last_problem = format!("held by {}", holder.unwrap_or_default());
                }
            }
            Err(e) => last_problem = failed("get", e, target)?,
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                phase: "waiting for the lease",
                after: wait,
                detail: format!(
                    "lease {}/{lease_name}: {last_problem}; another run is working on the \
                     cluster, or ended without releasing it (it expires {}s after its last renewal)",
                    target.namespace,
                    DURATION.as_secs()
                ),
            });
        }
        tokio::time::sleep_until(deadline.min(Instant::now() + RETRY_EVERY)).await;
    }
}

/// Logs that the Lease is ours and returns it.
fn took(lease: Lease, target: &Target, started: Instant, previous: Option<String>) -> Lease {
    let waited = started.elapsed();
    info!(
        lease = lease.metadata.name.as_deref().unwrap_or(""),
        namespace = %target.namespace,
        waited_ms = waited.as_millis() as u64,
        previous_holder = previous.as_deref().unwrap_or("-"),
        "holding the lease: no other run acts on the cluster until this one ends"
    );
    lease
}

/// A failed call while acquiring: a 403 stops the run (exit 2, naming what to grant); a 409 means
/// another run wrote first (read again); anything else is logged and retried until the wait ends.
fn failed(verb: &str, error: kube::Error, target: &Target) -> Result<String> {
    if let Some(status) = api_error::forbidden_status(&error) {
        return Err(api_error::forbidden(
            verb,
            "leases.coordination.k8s.io",
            target,
            status,
        ));
    }
    let text = api_error::describe_client(&error);
    if !matches!(&error, kube::Error::Api(s) if s.code == 409) {
        warn!(error = %text, "cannot {verb} the lease yet; retrying");
    }
    Ok(text)
}

/// A new Lease held by `me`.
fn fresh(lease_name: &str, me: &str) -> Lease {
    let now = MicroTime(Timestamp::now());
    Lease {
        metadata: ObjectMeta {
            name: Some(lease_name.into()),
            labels: Some(
                [(
                    "app.kubernetes.io/managed-by".to_string(),
                    "redis-cluster-bootstrap".to_string(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(me.into()),
            lease_duration_seconds: Some(DURATION.as_secs() as i32),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_transitions: Some(0),
            ..LeaseSpec::default()
        }),
    }
}

/// `lease` (as read, with its resourceVersion) taken over by `me`.
fn taken(mut lease: Lease, me: &str) -> Lease {
    let now = MicroTime(Timestamp::now());
    let mut spec = lease.spec.take().unwrap_or_default();
    if spec.holder_identity.as_deref() != Some(me) {
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        spec.acquire_time = Some(now.clone());
    }
    spec.holder_identity = Some(me.into());
    spec.lease_duration_seconds = Some(DURATION.as_secs() as i32);
    spec.renew_time = Some(now);
    lease.spec = Some(spec);
    lease
}

/// Renews the Lease every [`RENEW_EVERY`]; returns (ending the run's work) only when it is lost:
/// taken by another run, or not renewed for [`DURATION`].
async fn renew(api: Api<Lease>, held: Arc<Mutex<Lease>>, me: String) -> String {
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let mut current = held.lock().unwrap().clone();
        let lease_name = current.metadata.name.clone().unwrap_or_default();
        // One retry after a conflict: someone wrote between our writes (e.g. a person's kubectl).
        for _ in 0..2 {
            let mut next = current.clone();
            if let Some(spec) = next.spec.as_mut() {
                spec.renew_time = Some(MicroTime(Timestamp::now()));
            }
            match api
                .replace(&lease_name, &PostParams::default(), &next)
                .await
            {
                Ok(lease) => {
                    *held.lock().unwrap() = lease;
                    renewed = Instant::now();
                    break;
                }
                Err(kube::Error::Api(s)) if s.code == 409 => match api.get_opt(&lease_name).await {
                    Ok(Some(lease)) => {
                        let holder = lease.spec.as_ref().and_then(|s| s.holder_identity.clone());
                        if holder.as_deref() != Some(me.as_str()) {
                            return format!("now held by {}", holder.unwrap_or_default());
                        }
                        current = lease;
                    }
                    Ok(None) => return "it was deleted".into(),
                    Err(e) => {
                        warn!(error = %api_error::describe_client(&e), "cannot renew the lease");
                        break;
                    }
                },
                Err(e) => {
                    warn!(error = %api_error::describe_client(&e), "cannot renew the lease");
                    break;
                }
            }
        }
        if renewed.elapsed() >= DURATION {
            return format!("not renewed for {}s", DURATION.as_secs());
        }
    }
}

/// Gives the Lease up so a waiting run can go on at once. Never fails the run: at worst the Lease
/// expires [`DURATION`] after its last renewal.
async fn release(api: &Api<Lease>, mut lease: Lease, me: &str, target: &Target) {
    let lease_name = lease.metadata.name.clone().unwrap_or_default();
    for _ in 0..3 {
        let ours = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(me);
        if !ours {
            return;
        }
        let mut released = lease.clone();
        if let Some(spec) = released.spec.as_mut() {
            spec.holder_identity = None;
            spec.renew_time = Some(MicroTime(Timestamp::now()));
        }
        match api
            .replace(&lease_name, &PostParams::default(), &released)
            .await
        {
            Ok(_) => {
                info!(lease = %lease_name, namespace = %target.namespace, "released the lease");
                return;
            }
            Err(kube::Error::Api(s)) if s.code == 409 => match api.get_opt(&lease_name).await {
                Ok(Some(latest)) => lease = latest,
                _ => break,
            },
            Err(_) => break,
        }
    }
    warn!(
        lease = %lease_name,
        namespace = %target.namespace,
        "could not release the lease; it expires {}s after its last renewal",
        DURATION.as_secs()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_is_named_after_the_statefulset() {
        assert_eq!(name("redis-app"), "redis-app-bootstrap");
    }

    #[test]
    fn taking_a_lease_counts_a_transition_and_keeps_its_version() {
        let mut lease = fresh("redis-app-bootstrap", "a");
        lease.metadata.resource_version = Some("7".into());
        let taken = taken(lease.clone(), "b");
        let spec = taken.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("b"));
        assert_eq!(spec.lease_transitions, Some(1));
        // The replace is guarded by the version that was read.
        assert_eq!(taken.metadata.resource_version.as_deref(), Some("7"));
        // Renewing our own Lease is no transition.
        let again = super::taken(lease, "a").spec.unwrap();
        assert_eq!(again.lease_transitions, Some(0));
    }

    #[test]
    fn two_runs_have_different_identities() {
        assert_ne!(identity(), identity());
    }
}
