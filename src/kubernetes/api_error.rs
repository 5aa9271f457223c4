//! Sorting the API server's errors: which ones a retry can fix, and which one is a missing permission.
//!
//! A 403 will not go away by waiting: it becomes [`Error::Forbidden`] (exit 2) naming the verb and the
//! resource the ServiceAccount lacks. Everything else (connection refused, 5xx, 429, a dropped watch)
//! is logged and retried with backoff until the ready timeout; [`describe`] words it on one line.

use kube::core::Status;
use kube::runtime::watcher;

use super::Target;
use crate::Error;

/// The Status of a 403, if `error` is one.
pub fn forbidden_status(error: &kube::Error) -> Option<&Status> {
    match error {
        kube::Error::Api(status) if status.is_forbidden() => Some(status),
        _ => None,
    }
}

/// The verb the watcher was refused (`list` or `watch`) and the Status, if `error` is a 403.
pub fn forbidden_verb(error: &watcher::Error) -> Option<(&'static str, &Status)> {
    match error {
        watcher::Error::InitialListFailed(e) => forbidden_status(e).map(|s| ("list", s)),
        watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => {
            forbidden_status(e).map(|s| ("watch", s))
        }
        watcher::Error::WatchError(status) if status.is_forbidden() => Some(("watch", status)),
        _ => None,
    }
}

/// The error for a refused call: what to grant, and what the API server said (it names the user).
pub fn forbidden(verb: &str, resource: &str, target: &Target, status: &Status) -> Error {
    Error::Forbidden(format!(
        "the ServiceAccount cannot {verb} {resource} in namespace {}: grant it in the Role \
         (the API server said: {})",
        target.namespace,
        status.message.trim()
    ))
}

/// One line for a failed watch, for logs and the timeout message.
pub fn describe(error: &watcher::Error) -> String {
    match error {
        watcher::Error::InitialListFailed(e) => format!("list failed: {}", describe_client(e)),
        watcher::Error::WatchStartFailed(e) => {
            format!("watch failed to start: {}", describe_client(e))
        }
        watcher::Error::WatchFailed(e) => format!("watch broke: {}", describe_client(e)),
        watcher::Error::WatchError(status) => format!("watch ended: {}", describe_status(status)),
        watcher::Error::NoResourceVersion => error.to_string(),
    }
}

/// One line for a client error: the Status of an API error, else the chain of causes.
pub fn describe_client(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => describe_status(status),
        other => crate::one_line(other),
    }
}

fn describe_status(status: &Status) -> String {
    let mut text = status.code.to_string();
    for part in [&status.reason, &status.message] {
        if !part.is_empty() {
            text.push(' ');
            text.push_str(part);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, reason: &str, message: &str) -> kube::Error {
        let mut status = Status::failure(message, reason);
        status.code = code;
        kube::Error::Api(status.boxed())
    }

    #[test]
    fn a_403_names_the_verb_the_watcher_was_refused() {
        let list = watcher::Error::InitialListFailed(api_error(403, "Forbidden", "no"));
        let watch = watcher::Error::WatchStartFailed(api_error(403, "Forbidden", "no"));
        assert_eq!(forbidden_verb(&list).map(|(verb, _)| verb), Some("list"));
        assert_eq!(forbidden_verb(&watch).map(|(verb, _)| verb), Some("watch"));
        let unavailable =
            watcher::Error::InitialListFailed(api_error(503, "ServiceUnavailable", "busy"));
        assert!(forbidden_verb(&unavailable).is_none());
    }

    #[test]
    fn forbidden_says_what_to_grant() {
        let target = Target {
            namespace: "infra".into(),
            name: "redis-app".into(),
        };
        let status = Status::failure(
            "User \"system:serviceaccount:infra:default\" cannot watch",
            "Forbidden",
        );
        let err = forbidden("watch", "statefulsets.apps", &target, &status);
        assert_eq!(err.exit_code(), crate::ExitCode::BadConfig);
        let text = err.to_string();
        assert!(
            text.contains(
                "cannot watch statefulsets.apps in namespace infra: grant it in the Role"
            ),
            "{text}"
        );
        assert!(
            text.contains("system:serviceaccount:infra:default"),
            "{text}"
        );
    }

    #[test]
    fn transient_errors_read_on_one_line() {
        let e = watcher::Error::InitialListFailed(api_error(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        ));
        assert_eq!(
            describe(&e),
            "list failed: 503 ServiceUnavailable the server is currently unable to handle the request"
        );
    }
}
