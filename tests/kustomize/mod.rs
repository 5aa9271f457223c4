//! `kubectl kustomize` of a directory of this repository, as JSON documents: what the manifest
//! tests that read objects loosely (by `kind`) start from.

#![allow(dead_code)] // Each test binary uses some of these.

use std::path::PathBuf;
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `kubectl kustomize DIR` (relative to the repository), one JSON value per document.
pub fn render(dir: &str) -> Vec<Value> {
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(repo().join(dir))
        .output()
        .expect("kubectl is installed (kustomize built in)");
    assert!(
        output.status.success(),
        "kubectl kustomize {dir}:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|doc| !doc.is_null())
        .collect()
}

/// `kubectl kustomize` of a kustomization made for the test, as text: `resource` (a directory
/// of this repository, e.g. `overlays/production`) with `components` added, as a user adds a
/// component to the kustomization they apply.
pub fn render_text_with(resource: &str, components: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    // kustomize takes no absolute path: up to the root, then down to the repository.
    let up = "../".repeat(dir.path().components().count() - 1);
    let path = |p: &str| {
        let absolute = repo().join(p);
        format!("{up}{}", absolute.strip_prefix("/").unwrap().display())
    };
    let listed = |items: Vec<String>| {
        items
            .iter()
            .map(|i| format!("  - {i}\n"))
            .collect::<String>()
    };
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n{}components:\n{}",
            listed(vec![path(resource)]),
            listed(components.iter().map(|c| path(c)).collect()),
        ),
    )
    .unwrap();
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir.path())
        .output()
        .expect("kubectl is installed (kustomize built in)");
    assert!(
        output.status.success(),
        "kubectl kustomize {resource} + {components:?}:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// [`render_text_with`], one JSON value per document.
pub fn render_with(resource: &str, components: &[&str]) -> Vec<Value> {
    let text = render_text_with(resource, components);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|doc| !doc.is_null())
        .collect()
}
