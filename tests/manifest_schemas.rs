//! Every kustomization of the repository, rendered as `kubectl apply -k` would, passes strict
//! validation against the Kubernetes JSON schemas of the oldest and the newest Kubernetes we
//! support: what GitOps pipelines run (`kubernetes-validate --strict`, kubeconform) before an
//! API server ever sees the objects, and which rejects fields the API server would default.
//!
//! The kustomizations are found, not listed: the top-level one and every directory with a
//! kustomization file under `manifests/`, `overlays/` and `components/`. A `kind: Component`
//! cannot be rendered alone, so each component must be used by a kustomization that is rendered.
//!
//! Needs `kubectl` (kustomize built in) and `kubernetes-validate` (PyPI), which
//! `scripts/install-deps.sh` puts in `.venv/`; `KUBERNETES_VALIDATE` may name another one.

mod kustomize;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

/// The oldest Kubernetes the manifests are validated against (README, Compatibility).
const OLDEST: &str = "1.29.0";
/// The newest (the newest schemas kubernetes-validate 1.37.0 ships).
const NEWEST: &str = "1.37.0";
/// Objects of CRDs, whose schemas Kubernetes does not ship: (apiVersion, kind). Their fields are
/// checked by tests/manifests.rs.
const CUSTOM: [(&str, &str); 5] = [
    ("traefik.io/v1alpha1", "IngressRouteTCP"),
    // cert-manager's, made by components/tls.
    ("cert-manager.io/v1", "Certificate"),
    ("cert-manager.io/v1", "Issuer"),
    // The Prometheus Operator's, made by components/monitoring (their fields are checked by
    // tests/manifests_monitoring.rs, and the rules by promtool in tests/monitoring_rules.rs).
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
];
/// The directories searched for kustomizations, besides the top level.
const ROOTS: [&str; 3] = ["manifests", "overlays", "components"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The kustomization file of `dir`, if it has one.
fn kustomization_file(dir: &Path) -> Option<PathBuf> {
    ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
}

/// Every directory with a kustomization: "." and those under [`ROOTS`], relative to the repository.
fn kustomizations() -> Vec<String> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        if kustomization_file(dir).is_some() {
            found.push(dir.to_path_buf());
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut dirs: Vec<PathBuf> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for sub in dirs {
            walk(&sub, found);
        }
    }
    let mut found = vec![repo()];
    for root in ROOTS {
        walk(&repo().join(root), &mut found);
    }
    found
        .iter()
        .map(
            |p| match p.strip_prefix(repo()).unwrap().to_str().unwrap() {
                "" => ".".to_string(),
                relative => relative.to_string(),
            },
        )
        .collect()
}

/// The kustomization file of `dir`, parsed.
fn kustomization(dir: &str) -> Value {
    let path = kustomization_file(&repo().join(dir)).unwrap();
    serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn is_component(dir: &str) -> bool {
    kustomization(dir)["kind"] == "Component"
}

/// `kubectl kustomize DIR`, as text.
fn kustomize(dir: &str) -> String {
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(repo().join(dir))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run kubectl ({e}): these tests render the manifests with `kubectl kustomize`")
        });
    assert!(
        output.status.success(),
        "kubectl kustomize {dir} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// (apiVersion, kind, name) of every object of a rendering.
fn objects(text: &str) -> Vec<(String, String, String)> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|doc| !doc.is_null())
        .map(|doc| {
            let field = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (
                field(&doc["apiVersion"]),
                field(&doc["kind"]),
                field(&doc["metadata"]["name"]),
            )
        })
        .collect()
}

/// The kubernetes-validate program: `KUBERNETES_VALIDATE`, else the repository's `.venv/`, else
/// PATH.
fn validator() -> PathBuf {
    if let Some(path) = std::env::var_os("KUBERNETES_VALIDATE") {
        return PathBuf::from(path);
    }
    let venv = repo().join(".venv/bin/kubernetes-validate");
    if venv.is_file() {
        return venv;
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let path = Path::new(dir).join("kubernetes-validate");
        if path.is_file() {
            return path;
        }
    }
    panic!(
        "kubernetes-validate is not installed: run scripts/install-deps.sh (it installs it from PyPI \
         into .venv/), or set KUBERNETES_VALIDATE to its path"
    );
}

/// Validates the renderings (file, text) strictly against one Kubernetes version's schemas;
/// returns every problem, one line each.
fn validate(renderings: &[(String, String)], version: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, text) in renderings {
        let path = dir
            .path()
            .join(format!("{}.yaml", name.replace(['/', '.'], "_")));
        std::fs::write(&path, text).unwrap();
        files.push((name, path));
    }
    let output = Command::new(validator())
        .args(["--strict", "--kubernetes-version", version])
        .args(files.iter().map(|(_, path)| path))
        .output()
        .unwrap_or_else(|e| panic!("cannot run kubernetes-validate: {e}"));
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    // Name each file by its kustomization, not its temporary path.
    for (name, path) in &files {
        text = text.replace(&path.display().to_string(), name);
    }

    let mut problems = Vec::new();
    let mut passed = 0;
    for line in text.lines() {
        if line.starts_with("INFO") && line.contains(" passed for resource ") {
            passed += 1;
        } else if line.starts_with("WARN") && line.contains("Couldn't find schema for kind") {
            let custom = CUSTOM.iter().any(|(api_version, kind)| {
                line.contains(&format!("kind {kind} with api version {api_version} "))
            });
            if !custom {
                // A misspelt apiVersion or kind lands here, not in an ERROR.
                problems.push(line.to_string());
            }
        } else if !line.trim().is_empty() {
            problems.push(line.to_string());
        }
    }
    let expected: usize = renderings
        .iter()
        .flat_map(|(_, text)| objects(text))
        .filter(|(api_version, kind, _)| !CUSTOM.contains(&(api_version.as_str(), kind.as_str())))
        .count();
    if passed != expected {
        problems.push(format!(
            "{passed} objects passed, expected {expected} (every object but the Traefik route, cert-manager's and the Prometheus Operator's)"
        ));
    }
    if !output.status.success() && problems.is_empty() {
        problems.push(format!("kubernetes-validate exited with {}", output.status));
    }
    problems
}

/// The search finds at least what the repository is known to hold, so a broken search cannot
/// make the validation pass by validating nothing.
#[test]
fn the_search_finds_the_base_the_top_level_and_every_overlay() {
    let found: BTreeSet<String> = kustomizations().into_iter().collect();
    for dir in [
        ".",
        "manifests",
        "overlays/dev",
        "overlays/production",
        "overlays/valkey",
    ] {
        assert!(found.contains(dir), "{dir} not found in {found:?}");
    }
}

/// Every component is used by a kustomization that is rendered here, so its objects and patches are
/// validated too.
#[test]
fn every_component_is_used_by_a_rendered_kustomization() {
    let all = kustomizations();
    let (components, rendered): (Vec<&String>, Vec<&String>) =
        all.iter().partition(|dir| is_component(dir));
    let mut used = BTreeSet::new();
    for dir in &rendered {
        for entry in kustomization(dir)["components"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let path = repo().join(dir).join(entry.as_str().unwrap());
            used.insert(path.canonicalize().unwrap_or(path));
        }
    }
    for component in components {
        let path = repo().join(component).canonicalize().unwrap();
        assert!(
            used.contains(&path),
            "{component} is a Component that no overlay uses: it is never rendered, so never \
             validated; add an overlay that lists it under `components:`"
        );
    }
}

/// Every rendered kustomization passes `kubernetes-validate --strict` for the oldest and the newest
/// supported Kubernetes.
#[test]
fn every_kustomization_passes_strict_schema_validation_on_the_oldest_and_newest_kubernetes() {
    let mut renderings: Vec<(String, String)> = kustomizations()
        .into_iter()
        .filter(|dir| !is_component(dir))
        .map(|dir| {
            let text = kustomize(&dir);
            (dir, text)
        })
        .collect();
    // Production moved to Valkey by adding the component, as docs/valkey.md says.
    renderings.push((
        "overlays/production + components/valkey".into(),
        kustomize::render_text_with("overlays/production", &["components/valkey"]),
    ));
    for version in [OLDEST, NEWEST] {
        let problems = validate(&renderings, version);
        assert!(
            problems.is_empty(),
            "Kubernetes {version}, kubernetes-validate --strict:\n{}",
            problems.join("\n")
        );
    }
}

/// The one-off run's Job (`scripts/run-once.sh --print`, the Job of each kustomization under a
/// generated name, with a variable set) passes the same validation: it is created as printed. So
/// do the one-off backup and restore (`run-once.sh --print DIR backup|restore`) of every
/// kustomization that renders their CronJobs (components/backup).
#[test]
fn the_one_off_runs_job_passes_strict_schema_validation() {
    let mut runs: Vec<(String, Vec<&str>)> = Vec::new();
    for dir in kustomizations()
        .into_iter()
        .filter(|dir| !is_component(dir))
    {
        let rendered = objects(&kustomize(&dir));
        runs.push((dir.clone(), vec!["BOOTSTRAP_DRAIN_TO=6"]));
        for (what, cron) in [
            ("backup", "redis-cluster-backup"),
            ("restore", "redis-cluster-restore"),
        ] {
            if rendered.iter().any(|(_, k, n)| k == "CronJob" && n == cron) {
                runs.push((dir.clone(), vec![what, "BOOTSTRAP_BACKUP_URL=s3://b/p"]));
            }
        }
    }
    assert!(
        runs.iter().any(|(_, args)| args[0] == "restore"),
        "no kustomization renders the restore template: {runs:?}"
    );
    let renderings: Vec<(String, String)> = runs
        .into_iter()
        .map(|(dir, args)| {
            let output = Command::new(repo().join("scripts/run-once.sh"))
                .arg("--print")
                .arg(&dir)
                .args(&args)
                .current_dir(repo())
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "run-once.sh --print {dir} {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            // kubernetes-validate names each object by metadata.name and cannot read one without
            // it; the API server gives the Job its name from generateName (the prefix plus 5
            // characters), which this stands for.
            let text = String::from_utf8(output.stdout).unwrap();
            let named = text.replacen("  generateName: ", "  name: ", 1);
            assert_ne!(named, text, "{dir}: the one-off has a generateName");
            (
                format!("{dir} one-off {}", args.join(" ")),
                named.replacen("-run-\n", "-run-x7k2p\n", 1),
            )
        })
        .collect();
    for version in [OLDEST, NEWEST] {
        let problems = validate(&renderings, version);
        assert!(
            problems.is_empty(),
            "Kubernetes {version}, kubernetes-validate --strict:\n{}",
            problems.join("\n")
        );
    }
}

/// The validation fails where it must: a field the API server would default but the schema
/// requires (the Job's podFailurePolicy status that users' pipelines rejected), and a field that
/// does not exist.
#[test]
fn strict_validation_rejects_a_missing_required_field_and_an_unknown_one() {
    let base = kustomize("manifests");
    let without_status = base.replacen("status: \"True\"\n", "", 1);
    assert_ne!(without_status, base, "the Job sets the condition's status");
    let problems = validate(&[("job-without-status".into(), without_status)], OLDEST);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("'status' is a required property")),
        "{problems:?}"
    );

    let unknown = base.replacen("backoffLimit:", "backOffLimit:", 1);
    assert_ne!(unknown, base);
    let problems = validate(&[("misspelt".into(), unknown)], NEWEST);
    assert!(
        problems.iter().any(|p| p.contains("backOffLimit")),
        "{problems:?}"
    );
}
