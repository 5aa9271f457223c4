//! Which namespace the StatefulSet is in, when `BOOTSTRAP_NAMESPACE` does not say.
//!
//! The order follows the spec: the variable, else the namespace of the pod the Job runs in (the
//! ServiceAccount's namespace file), else the kubeconfig context's namespace, else `default`.

use std::path::Path;

/// Where Kubernetes mounts the pod's namespace, next to the ServiceAccount token.
pub const SERVICE_ACCOUNT_NAMESPACE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The namespace in the ServiceAccount file at `path`, if the file exists and is not blank.
pub fn from_service_account(path: impl AsRef<Path>) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let namespace = text.trim();
    (!namespace.is_empty()).then(|| namespace.to_string())
}

/// Picks the namespace: the configured one, else the pod's, else the client's default (the
/// kubeconfig context's namespace, which kube already defaults to `default`).
pub fn choose(
    configured: Option<&str>,
    service_account: Option<&str>,
    client_default: &str,
) -> String {
    configured
        .or(service_account)
        .filter(|ns| !ns.is_empty())
        .unwrap_or(if client_default.is_empty() {
            "default"
        } else {
            client_default
        })
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_wins_then_the_pod_then_the_kubeconfig() {
        assert_eq!(choose(Some("infra"), Some("pod-ns"), "ctx-ns"), "infra");
        assert_eq!(choose(None, Some("pod-ns"), "ctx-ns"), "pod-ns");
        assert_eq!(choose(None, None, "ctx-ns"), "ctx-ns");
        assert_eq!(choose(None, None, ""), "default");
    }

    #[test]
    fn the_service_account_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("namespace");
        assert_eq!(from_service_account(&path), None);
        std::fs::write(&path, "infra\n").unwrap();
        assert_eq!(from_service_account(&path).as_deref(), Some("infra"));
        std::fs::write(&path, "  \n").unwrap();
        assert_eq!(from_service_account(&path), None);
    }
}
