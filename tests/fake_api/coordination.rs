//! The fake API server's Leases and Events, with the real API's rules:
//!
//! - a Lease is created once (a second create is 409 `AlreadyExists`); every write gets the next
//!   resourceVersion of the server; an update (PUT) whose `metadata.resourceVersion` is not the
//!   stored one is 409 `Conflict` with the API server's message, an update of a missing Lease is
//!   404, and a body whose name differs from the URL's is 400;
//! - an Event is validated as the API server validates `events.k8s.io/v1` (eventTime,
//!   reportingController, reportingInstance, action, reason, a type of Normal or Warning, a note of
//!   at most 1 kB, its namespace) and stored with a uid and resourceVersion.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::{Body, Shared, error, json};

const LEASES: (&str, &str) = ("coordination.k8s.io", "leases");

impl Shared {
    /// Stores a Lease held by `holder` (15 s, renewed now) without a request.
    pub(super) fn seed_lease(&self, name: &str, holder: &str) {
        let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(Timestamp::now());
        let mut state = self.state.lock().unwrap();
        state.resource_version += 1;
        let lease = Lease {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.into()),
                namespace: Some(self.namespace.clone()),
                uid: Some(format!("0000-lease-{name}")),
                resource_version: Some(state.resource_version.to_string()),
                creation_timestamp: Some(Time(Timestamp::now())),
                ..Default::default()
            },
            spec: Some(k8s_openapi::api::coordination::v1::LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(15),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        state.leases.insert(name.into(), lease);
    }

    /// Releases a stored Lease as its holder does at the end of a run (holder cleared, renewed
    /// now, a new resourceVersion), without a request.
    pub(super) fn release_seeded_lease(&self, name: &str) {
        let mut state = self.state.lock().unwrap();
        state.resource_version += 1;
        let version = state.resource_version.to_string();
        let lease = state.leases.get_mut(name).expect("the Lease exists");
        lease.metadata.resource_version = Some(version);
        let spec = lease.spec.as_mut().unwrap();
        spec.holder_identity = None;
        spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
            Timestamp::now(),
        ));
    }

    pub(super) fn get_lease(&self, namespace: &str, name: &str) -> hyper::Response<Body> {
        let state = self.state.lock().unwrap();
        match state
            .leases
            .get(name)
            .filter(|_| namespace == self.namespace)
        {
            Some(lease) => json(200, lease),
            None => not_found(name),
        }
    }

    pub(super) fn create_lease(&self, namespace: &str, body: &[u8]) -> hyper::Response<Body> {
        let Ok(mut lease) = serde_json::from_slice::<Lease>(body) else {
            return error(400, "BadRequest", "the body is not a Lease".into(), None);
        };
        let Some(name) = lease.metadata.name.clone() else {
            return error(
                422,
                "Invalid",
                "Lease.coordination.k8s.io \"\" is invalid: metadata.name: Required value".into(),
                None,
            );
        };
        let mut state = self.state.lock().unwrap();
        if namespace != self.namespace {
            return error(
                404,
                "NotFound",
                format!("namespaces {namespace:?} not found"),
                None,
            );
        }
        if state.leases.contains_key(&name) {
            return error(
                409,
                "AlreadyExists",
                format!("leases.coordination.k8s.io {name:?} already exists"),
                Some((&name, LEASES.0, LEASES.1)),
            );
        }
        state.resource_version += 1;
        let rv = state.resource_version.to_string();
        lease.metadata.namespace = Some(namespace.into());
        lease.metadata.uid = Some(format!("0000-lease-{name}"));
        lease.metadata.resource_version = Some(rv.clone());
        lease.metadata.creation_timestamp = Some(Time(Timestamp::now()));
        let holder = lease.spec.as_ref().and_then(|s| s.holder_identity.clone());
        state.lease_writes.push((holder, rv));
        state.leases.insert(name, lease.clone());
        json(201, &lease)
    }

    pub(super) fn replace_lease(
        &self,
        namespace: &str,
        name: &str,
        body: &[u8],
    ) -> hyper::Response<Body> {
        let Ok(mut lease) = serde_json::from_slice::<Lease>(body) else {
            return error(400, "BadRequest", "the body is not a Lease".into(), None);
        };
        if lease.metadata.name.as_deref() != Some(name) {
            return error(
                400,
                "BadRequest",
                format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    lease.metadata.name.as_deref().unwrap_or("")
                ),
                None,
            );
        }
        let mut state = self.state.lock().unwrap();
        let Some(stored) = state
            .leases
            .get(name)
            .filter(|_| namespace == self.namespace)
        else {
            return not_found(name);
        };
        // The optimistic lock of every update: the version the writer read must still be the
        // stored one. (Leases allow an update without a resourceVersion; the binary always sends
        // one.)
        if let Some(version) = &lease.metadata.resource_version
            && Some(version) != stored.metadata.resource_version.as_ref()
        {
            return error(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on leases.coordination.k8s.io {name:?}: the \
                     object has been modified; please apply your changes to the latest version \
                     and try again"
                ),
                Some((name, LEASES.0, LEASES.1)),
            );
        }
        state.resource_version += 1;
        let rv = state.resource_version.to_string();
        let stored = &state.leases[name];
        lease.metadata.namespace = stored.metadata.namespace.clone();
        lease.metadata.uid = stored.metadata.uid.clone();
        lease.metadata.creation_timestamp = stored.metadata.creation_timestamp.clone();
        lease.metadata.resource_version = Some(rv.clone());
        let holder = lease.spec.as_ref().and_then(|s| s.holder_identity.clone());
        state.lease_writes.push((holder, rv));
        state.leases.insert(name.into(), lease.clone());
        json(200, &lease)
    }

    pub(super) fn create_event(&self, namespace: &str, body: &[u8]) -> hyper::Response<Body> {
        let Ok(mut event) = serde_json::from_slice::<Event>(body) else {
            return error(400, "BadRequest", "the body is not an Event".into(), None);
        };
        let name = event.metadata.name.clone().unwrap_or_default();
        let mut problems = Vec::new();
        if name.is_empty() {
            problems.push("metadata.name: Required value".to_string());
        }
        if event.event_time.is_none() {
            problems.push("eventTime: Required value".into());
        }
        for (field, value, limit) in [
            ("reportingController", &event.reporting_controller, 253),
            ("reportingInstance", &event.reporting_instance, 128),
            ("action", &event.action, 128),
            ("reason", &event.reason, 128),
        ] {
            match value.as_deref() {
                None | Some("") => problems.push(format!("{field}: Required value")),
                Some(v) if v.len() > limit => {
                    problems.push(format!("{field}: Too long: may not be more than {limit}"))
                }
                Some(_) => {}
            }
        }
        if !matches!(event.type_.as_deref(), Some("Normal" | "Warning")) {
            problems.push(format!(
                "type: Unsupported value: {:?}: supported values: \"Normal\", \"Warning\"",
                event.type_.as_deref().unwrap_or("")
            ));
        }
        if event.note.as_ref().is_some_and(|n| n.len() > 1024) {
            problems.push("note: Too long: may not be more than 1024 bytes".into());
        }
        if event
            .metadata
            .namespace
            .as_deref()
            .is_some_and(|ns| ns != namespace)
        {
            problems.push("metadata.namespace: does not match the namespace of the URL".into());
        }
        if !problems.is_empty() {
            return invalid(&name, &problems.join(", "));
        }
        let mut state = self.state.lock().unwrap();
        state.resource_version += 1;
        event.metadata.namespace = Some(namespace.into());
        event.metadata.uid = Some(format!("0000-event-{}", state.recorded.len()));
        event.metadata.resource_version = Some(state.resource_version.to_string());
        event.metadata.creation_timestamp = Some(Time(Timestamp::now()));
        state.recorded.push(event.clone());
        json(201, &event)
    }
}

fn not_found(name: &str) -> hyper::Response<Body> {
    error(
        404,
        "NotFound",
        format!("leases.coordination.k8s.io {name:?} not found"),
        Some((name, LEASES.0, LEASES.1)),
    )
}

fn invalid(name: &str, problems: &str) -> hyper::Response<Body> {
    error(
        422,
        "Invalid",
        format!("Event.events.k8s.io {name:?} is invalid: {problems}"),
        Some((name, "events.k8s.io", "events")),
    )
}
