//! Kubernetes mode: finds the StatefulSet, waits for it to be Ready with a watch, and names its pods.
//! (Being built; see issue 3.)

/// Every permission the binary uses on the API server: (API group, resource, verbs). The Role in
/// `manifests/` must grant exactly these; a test checks it.
pub const PERMISSIONS: &[(&str, &str, &[&str])] = &[
    ("apps", "statefulsets", &["get", "list", "watch"]),
    ("", "pods", &["list"]),
];
