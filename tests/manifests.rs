//! The Kustomize manifests: the base (`manifests/`), the top-level `kustomization.yaml` and every
//! overlay, rendered with `kubectl kustomize` exactly as `kubectl apply -k` would and parsed into
//! k8s-openapi types. Each test checks one claim: a value the guide sets, a fix the guide needs, or an
//! agreement with the binary itself (its variables, its exit codes, the API calls it makes).
//!
//! Needs `kubectl` (kustomize is built in). The security settings (TLS, ACL users, the
//! NetworkPolicy, ...) are checked in tests/manifests_security.rs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, EnvVar, Namespace, PodSpec, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use redis_cluster_bootstrap::ExitCode;
use redis_cluster_bootstrap::config::{Settings, VARIABLES, WhenNotReady};
use redis_cluster_bootstrap::kubernetes::{OPTIONAL_PERMISSIONS, PERMISSIONS, lease};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The base, as `kubectl apply -k manifests` deploys it.
const BASE: &str = "manifests";
/// The top-level kustomization, as `kubectl apply -k .` deploys it.
const ROOT: &str = ".";
/// The development overlay.
const DEV: &str = "overlays/dev";
/// The production overlay.
const PRODUCTION: &str = "overlays/production";
/// The Valkey overlay (its own checks are in tests/manifests_valkey.rs).
const VALKEY: &str = "overlays/valkey";
/// Everything a user can deploy.
const ALL: [&str; 5] = [BASE, ROOT, DEV, PRODUCTION, VALKEY];

/// The guide's redis.conf, line by line, and Redis's default endpoint type stated so clients keep
/// getting IPs once every node announces its pod name as hostname.
const GUIDE_REDIS_CONF: [&str; 7] = [
    "appendonly yes",
    "cluster-enabled yes",
    "cluster-config-file /var/lib/redis/nodes.conf",
    "cluster-node-timeout 5000",
    "dir /var/lib/redis",
    "port 6379",
    "cluster-preferred-endpoint-type ip",
];

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/// One `kubectl kustomize` output.
struct Rendered {
    /// The kustomization directory, relative to the repository.
    dir: String,
    /// Its documents, in order.
    docs: Vec<Value>,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `kubectl kustomize DIR` and splits its output into documents.
fn kustomize(dir: &Path) -> Vec<Value> {
    let output = match Command::new("kubectl").arg("kustomize").arg(dir).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "kubectl is not installed: these tests render the manifests with `kubectl kustomize` \
             (kubectl 1.27 or newer, kustomize built in); install kubectl and run them again"
        ),
        Err(e) => panic!("cannot run kubectl: {e}"),
    };
    assert!(
        output.status.success(),
        "kubectl kustomize {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("kubectl printed UTF-8");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("kubectl printed valid YAML"))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The rendering of one of the repository's kustomizations, made once per test binary.
fn render(dir: &str) -> &'static Rendered {
    static CACHE: Mutex<BTreeMap<String, &'static Rendered>> = Mutex::new(BTreeMap::new());
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(rendered) = cache.get(dir) {
        return rendered;
    }
    let rendered: &'static Rendered = Box::leak(Box::new(Rendered {
        dir: dir.to_string(),
        docs: kustomize(&repo().join(dir)),
    }));
    cache.insert(dir.to_string(), rendered);
    rendered
}

/// Renders a copy of the base after `edit` has changed some of its files.
fn render_edited_base(edit: impl FnOnce(&Path)) -> Rendered {
    let copy = tempfile::tempdir().expect("a temporary directory");
    for entry in std::fs::read_dir(repo().join(BASE)).expect("manifests/ exists") {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.path().join(entry.file_name())).unwrap();
    }
    edit(copy.path());
    Rendered {
        dir: "a modified copy of manifests".into(),
        docs: kustomize(copy.path()),
    }
}

/// Replaces `from` by `to` in one file, which must contain it.
fn edit_file(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} does not contain {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

fn kind_of(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or("<no kind>")
}

fn name_of(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or("<no name>")
}

impl Rendered {
    /// (kind, name) of every object.
    fn objects(&self) -> BTreeSet<(String, String)> {
        self.docs
            .iter()
            .map(|doc| (kind_of(doc).to_string(), name_of(doc).to_string()))
            .collect()
    }

    /// Every object of kind `kind`, as JSON.
    fn all_values(&self, kind: &str) -> Vec<&Value> {
        self.docs
            .iter()
            .filter(|doc| kind_of(doc) == kind)
            .collect()
    }

    /// Every object of type `K`.
    fn all<K: k8s_openapi::Resource + DeserializeOwned>(&self) -> Vec<K> {
        self.all_values(K::KIND)
            .into_iter()
            .map(|doc| serde_json::from_value(doc.clone()).expect(K::KIND))
            .collect()
    }

    /// The one object of type `K`.
    fn one<K: k8s_openapi::Resource + DeserializeOwned>(&self) -> K {
        let mut all = self.all::<K>();
        assert_eq!(
            all.len(),
            1,
            "{}: expected exactly one {}, found {}",
            self.dir,
            K::KIND,
            all.len()
        );
        all.remove(0)
    }

    fn statefulset(&self) -> StatefulSet {
        self.one()
    }

    fn job(&self) -> Job {
        self.one()
    }

    /// The headless Service that names the pods (components/external-access adds one ClusterIP
    /// Service per pod beside it).
    fn service(&self) -> Service {
        let mut headless: Vec<Service> = self
            .all::<Service>()
            .into_iter()
            .filter(|s| s.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None"))
            .collect();
        assert_eq!(headless.len(), 1, "{}: one headless Service", self.dir);
        headless.remove(0)
    }
}

// ---------------------------------------------------------------------------------------------
// Small accessors
// ---------------------------------------------------------------------------------------------

fn pod_spec_of_statefulset(sts: &StatefulSet) -> PodSpec {
    sts.spec.as_ref().unwrap().template.spec.clone().unwrap()
}

fn pod_spec_of_job(job: &Job) -> PodSpec {
    job.spec.as_ref().unwrap().template.spec.clone().unwrap()
}

fn container<'a>(pod: &'a PodSpec, name: &str) -> &'a Container {
    pod.containers
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container named {name}"))
}

fn redis_container(sts: &StatefulSet) -> Container {
    container(&pod_spec_of_statefulset(sts), "redis").clone()
}

fn bootstrap_container(job: &Job) -> Container {
    container(&pod_spec_of_job(job), "bootstrap").clone()
}

fn env<'a>(container: &'a Container, name: &str) -> Option<&'a EnvVar> {
    container.env.iter().flatten().find(|e| e.name == name)
}

fn strings(list: &Option<Vec<String>>) -> Vec<&str> {
    list.iter().flatten().map(String::as_str).collect()
}

/// A quantity in base units (bytes, cores): enough of the format for these manifests.
fn quantity(q: &Quantity) -> f64 {
    let text = q.0.as_str();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().unwrap_or_else(|_| panic!("quantity {text}"));
    let scale = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => panic!("unexpected quantity suffix in {text}"),
    };
    number * scale
}

/// (cpu request, memory request, memory limit) of a container.
fn resources(container: &Container) -> (f64, f64, f64) {
    let resources = container
        .resources
        .as_ref()
        .unwrap_or_else(|| panic!("container {} has no resources", container.name));
    let requests = resources.requests.as_ref().expect("requests");
    let limits = resources.limits.as_ref().expect("limits");
    (
        quantity(&requests["cpu"]),
        quantity(&requests["memory"]),
        quantity(&limits["memory"]),
    )
}

/// The `images:` entry of a kustomization for the bootstrap image, as the image it produces.
fn bootstrap_image_set_by(dir: &str) -> String {
    let text = std::fs::read_to_string(repo().join(dir).join("kustomization.yaml")).unwrap();
    let kustomization: Value = serde_yaml_ng::from_str(&text).unwrap();
    let entry = kustomization["images"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|entry| entry["name"] == "redis-cluster-bootstrap");
    match entry {
        None => "redis-cluster-bootstrap".to_string(),
        Some(entry) => {
            let name = entry["newName"]
                .as_str()
                .unwrap_or("redis-cluster-bootstrap");
            match entry["newTag"].as_str() {
                Some(tag) => format!("{name}:{tag}"),
                None => name.to_string(),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Every rendering
// ---------------------------------------------------------------------------------------------

/// Every object of every rendering parses into its k8s-openapi type without losing a field, so no
/// field is misspelt or misplaced (k8s-openapi, like the API server, drops unknown fields).
#[test]
fn every_rendering_parses_into_k8s_openapi_types_without_losing_a_field() {
    /// Every field of `original` is in `typed` with the same value (`typed` may add some, such as
    /// the apiVersion and kind of a volumeClaimTemplate).
    fn assert_kept(original: &Value, typed: &Value, path: &str) {
        match (original, typed) {
            (Value::Object(original), Value::Object(typed)) => {
                for (key, value) in original {
                    let path = format!("{path}.{key}");
                    let kept = typed
                        .get(key)
                        .unwrap_or_else(|| panic!("{path} is not a field of its type"));
                    assert_kept(value, kept, &path);
                }
            }
            (Value::Array(original), Value::Array(typed)) => {
                assert_eq!(original.len(), typed.len(), "{path}");
                for (i, (value, kept)) in original.iter().zip(typed).enumerate() {
                    assert_kept(value, kept, &format!("{path}[{i}]"));
                }
            }
            _ => assert_eq!(original, typed, "{path}"),
        }
    }
    fn round_trip<K>(doc: &Value, dir: &str)
    where
        K: DeserializeOwned + serde::Serialize,
    {
        let what = format!("{dir}: {} {}", kind_of(doc), name_of(doc));
        let typed: K =
            serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_kept(doc, &serde_json::to_value(&typed).unwrap(), &what);
    }
    for dir in ALL {
        let rendered = render(dir);
        assert!(!rendered.docs.is_empty(), "{dir} renders nothing");
        for doc in &rendered.docs {
            match (doc["apiVersion"].as_str().unwrap_or(""), kind_of(doc)) {
                ("v1", "Namespace") => round_trip::<Namespace>(doc, dir),
                ("v1", "ConfigMap") => round_trip::<ConfigMap>(doc, dir),
                ("v1", "Service") => round_trip::<Service>(doc, dir),
                ("v1", "ServiceAccount") => round_trip::<ServiceAccount>(doc, dir),
                ("storage.k8s.io/v1", "StorageClass") => round_trip::<StorageClass>(doc, dir),
                ("apps/v1", "StatefulSet") => round_trip::<StatefulSet>(doc, dir),
                ("batch/v1", "Job") => round_trip::<Job>(doc, dir),
                ("batch/v1", "CronJob") => round_trip::<CronJob>(doc, dir),
                ("rbac.authorization.k8s.io/v1", "Role") => round_trip::<Role>(doc, dir),
                ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
                    round_trip::<RoleBinding>(doc, dir)
                }
                ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
                    round_trip::<ClusterRole>(doc, dir)
                }
                ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                    round_trip::<ClusterRoleBinding>(doc, dir)
                }
                ("policy/v1", "PodDisruptionBudget") => round_trip::<PodDisruptionBudget>(doc, dir),
                ("networking.k8s.io/v1", "NetworkPolicy") => round_trip::<NetworkPolicy>(doc, dir),
                // A Traefik CRD: no k8s-openapi type; checked field by field below.
                ("traefik.io/v1alpha1", "IngressRouteTCP") => {}
                // cert-manager's CRDs (components/tls): checked in tests/manifests_security.rs.
                ("cert-manager.io/v1", "Certificate" | "Issuer") => {}
                // The Prometheus Operator's CRDs (components/monitoring): checked in
                // tests/manifests_monitoring.rs.
                ("monitoring.coreos.com/v1", "PodMonitor" | "PrometheusRule") => {}
                (api_version, kind) => panic!("{dir}: unexpected object {api_version} {kind}"),
            }
        }
    }
}

/// The base holds every object of the guide plus the Job and what it needs, and nothing else.
#[test]
fn the_base_holds_every_object_of_the_guide_plus_the_job() {
    let objects: BTreeSet<(String, String)> = render(BASE)
        .objects()
        .into_iter()
        // The ConfigMap's name carries a hash; checked in its own test.
        .map(|(kind, name)| match kind.as_str() {
            "ConfigMap" => (kind, "redis-conf".to_string()),
            _ => (kind, name),
        })
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("Namespace", "infra"),
        ("StorageClass", "redis-data"),
        ("ConfigMap", "redis-conf"),
        ("Service", "redis-service"),
        ("StatefulSet", "redis-app"),
        ("NetworkPolicy", "redis"),
        ("IngressRouteTCP", "redis"),
        ("ServiceAccount", "redis-cluster-bootstrap"),
        ("Role", "redis-cluster-bootstrap"),
        ("RoleBinding", "redis-cluster-bootstrap"),
        ("Job", "redis-cluster-bootstrap"),
        ("PodDisruptionBudget", "redis-app"),
    ]
    .into_iter()
    .map(|(kind, name)| (kind.to_string(), name.to_string()))
    .collect();
    assert_eq!(objects, expected);
}

/// Every namespaced object lands in the guide's namespace `infra`; the StorageClass, the
/// Namespace and the placement component's ClusterRole and binding are cluster-scoped and carry
/// none (the guide wrongly gives its StorageClass one).
#[test]
fn every_namespaced_object_is_in_infra_and_cluster_scoped_ones_have_no_namespace() {
    for dir in ALL {
        for doc in &render(dir).docs {
            let namespace = doc["metadata"]["namespace"].as_str();
            match kind_of(doc) {
                "Namespace" | "StorageClass" | "ClusterRole" | "ClusterRoleBinding" => assert_eq!(
                    namespace,
                    None,
                    "{dir}: {} {} is cluster-scoped",
                    kind_of(doc),
                    name_of(doc)
                ),
                kind => assert_eq!(
                    namespace,
                    Some("infra"),
                    "{dir}: {kind} {} is not in infra",
                    name_of(doc)
                ),
            }
        }
        if let Some(namespace) = render(dir).all::<Namespace>().first() {
            assert_eq!(namespace.metadata.name.as_deref(), Some("infra"));
        }
    }
}

/// Every object and every pod template carries the app.kubernetes.io labels.
#[test]
fn every_object_and_pod_template_carries_app_kubernetes_io_labels() {
    for dir in ALL {
        for doc in &render(dir).docs {
            let what = format!("{dir}: {} {}", kind_of(doc), name_of(doc));
            let labels = &doc["metadata"]["labels"];
            assert!(
                labels["app.kubernetes.io/name"].is_string(),
                "{what}: no app.kubernetes.io/name"
            );
            assert_eq!(
                labels["app.kubernetes.io/part-of"], "redis-cluster",
                "{what}"
            );
            assert_eq!(
                labels["app.kubernetes.io/managed-by"], "kustomize",
                "{what}"
            );
            let template = &doc["spec"]["template"]["metadata"]["labels"];
            if !doc["spec"]["template"].is_null() {
                assert!(
                    template["app.kubernetes.io/name"].is_string(),
                    "{what}: its pod template has no app.kubernetes.io/name"
                );
                assert_eq!(
                    template["app.kubernetes.io/part-of"], "redis-cluster",
                    "{what}"
                );
            }
        }
    }
}

/// Every container has CPU and memory requests and a memory limit.
#[test]
fn every_container_has_requests_and_a_memory_limit() {
    for dir in ALL {
        let rendered = render(dir);
        let pods = [
            pod_spec_of_statefulset(&rendered.statefulset()),
            pod_spec_of_job(&rendered.job()),
        ];
        for container in pods.iter().flat_map(|pod| &pod.containers) {
            let (cpu, memory, limit) = resources(container);
            assert!(cpu > 0.0 && memory > 0.0, "{dir}: {}", container.name);
            assert!(
                limit >= memory,
                "{dir}: {}: limit below request",
                container.name
            );
        }
    }
}

/// The kustomizations use `labels`, `patches`, `replacements`: none of the deprecated fields.
#[test]
fn kustomizations_use_no_deprecated_fields() {
    let deprecated = [
        "commonLabels",
        "patchesStrategicMerge",
        "patchesJson6902",
        "bases",
        "vars",
    ];
    for dir in ALL {
        let text = std::fs::read_to_string(repo().join(dir).join("kustomization.yaml")).unwrap();
        let kustomization: Value = serde_yaml_ng::from_str(&text).unwrap();
        for field in deprecated {
            assert!(
                kustomization.get(field).is_none(),
                "{dir}/kustomization.yaml uses the deprecated {field}"
            );
        }
    }
}

/// The base keeps one object per snake_case file.
#[test]
fn the_base_has_one_object_per_snake_case_file() {
    for entry in std::fs::read_dir(repo().join(BASE)).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let Some(stem) = name.strip_suffix(".yaml") else {
            continue;
        };
        assert!(
            stem.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "manifests/{name} is not snake_case"
        );
        if stem == "kustomization" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let objects = serde_yaml_ng::Deserializer::from_str(&text)
            .map(|doc| Value::deserialize(doc).unwrap())
            .filter(|doc| !doc.is_null())
            .count();
        assert_eq!(objects, 1, "manifests/{name} holds {objects} objects");
    }
}

// ---------------------------------------------------------------------------------------------
// The guide's objects
// ---------------------------------------------------------------------------------------------

/// The StorageClass is the guide's NFS class, and the StatefulSet's volumes use it.
#[test]
fn the_storage_class_is_the_guides_nfs_class() {
    let rendered = render(BASE);
    let class: StorageClass = rendered.one();
    assert_eq!(class.metadata.name.as_deref(), Some("redis-data"));
    assert_eq!(class.provisioner, "fuseim.pri/ifs");
    let claim = &rendered
        .statefulset()
        .spec
        .unwrap()
        .volume_claim_templates
        .unwrap()[0];
    assert_eq!(
        claim.spec.as_ref().unwrap().storage_class_name.as_deref(),
        Some("redis-data")
    );
}

/// redis.conf is the guide's, generated into a hashed `redis-conf-*` ConfigMap that the
/// StatefulSet mounts at /etc/redis.
#[test]
fn redis_conf_is_the_guides_and_mounted_from_a_generated_config_map() {
    let rendered = render(BASE);
    let config_map: ConfigMap = rendered.one();
    let name = config_map.metadata.name.clone().unwrap();
    let hash = name
        .strip_prefix("redis-conf-")
        .expect("named redis-conf-<hash>");
    assert!(
        hash.len() >= 8 && hash.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{name}"
    );
    let conf = &config_map.data.unwrap()["redis.conf"];
    let directives: Vec<&str> = conf
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    assert_eq!(directives, GUIDE_REDIS_CONF);

    let pod = pod_spec_of_statefulset(&rendered.statefulset());
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "redis-conf")
        .expect("the redis-conf volume");
    let source = volume.config_map.as_ref().unwrap();
    assert_eq!(source.name, name);
    let items = source.items.as_ref().unwrap();
    assert_eq!(
        (items[0].key.as_str(), items[0].path.as_str()),
        ("redis.conf", "redis.conf")
    );
    let mount = container(&pod, "redis")
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == "redis-conf")
        .unwrap();
    assert_eq!(mount.mount_path, "/etc/redis");
}

/// Editing redis.conf renames the ConfigMap, which changes the pod template: the pods roll.
#[test]
fn editing_redis_conf_rolls_the_pods() {
    let edited = render_edited_base(|dir| {
        edit_file(dir, "redis.conf", "appendonly yes", "appendonly no");
    });
    let before = render(BASE).one::<ConfigMap>().metadata.name.unwrap();
    let after = edited.one::<ConfigMap>().metadata.name.unwrap();
    assert_ne!(before, after);
    let template = |sts: StatefulSet| serde_json::to_value(sts.spec.unwrap().template).unwrap();
    assert_ne!(
        template(render(BASE).statefulset()),
        template(edited.statefulset())
    );
    assert!(template(edited.statefulset()).to_string().contains(&after));
}

/// The StatefulSet keeps every value the guide gives it.
#[test]
fn the_statefulset_keeps_every_value_of_the_guide() {
    let sts = render(BASE).statefulset();
    assert_eq!(sts.metadata.name.as_deref(), Some("redis-app"));
    let spec = sts.spec.clone().unwrap();
    assert_eq!(spec.service_name.as_deref(), Some("redis-service"));
    assert_eq!(spec.replicas, Some(6));
    let guide_labels = BTreeMap::from([
        ("app".to_string(), "redis".to_string()),
        ("appCluster".to_string(), "redis-cluster".to_string()),
    ]);
    assert_eq!(spec.selector.match_labels.as_ref(), Some(&guide_labels));
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    for (key, value) in &guide_labels {
        assert_eq!(template_labels.get(key), Some(value));
    }

    let pod = pod_spec_of_statefulset(&sts);
    // The guide's 20 s, raised: the preStop handover and Redis's own shutdown must both fit
    // (the_redis_pods_hand_over_serve_and_rejoin_through_the_bootstrap_binary).
    assert_eq!(pod.termination_grace_period_seconds, Some(60));
    let preferred = pod
        .affinity
        .as_ref()
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .expect("preferred pod anti-affinity");
    assert_eq!(preferred.len(), 1);
    assert_eq!(preferred[0].weight, 100);
    let term = &preferred[0].pod_affinity_term;
    assert_eq!(term.topology_key, "kubernetes.io/hostname");
    let expression = &term
        .label_selector
        .as_ref()
        .unwrap()
        .match_expressions
        .as_ref()
        .unwrap()[0];
    assert_eq!(
        (expression.key.as_str(), expression.operator.as_str()),
        ("app", "In")
    );
    assert_eq!(strings(&expression.values), ["redis"]);

    let redis = container(&pod, "redis");
    // The guide's image `redis`, with a pinned tag.
    let image = redis.image.as_deref().unwrap();
    let (repository, tag) = image.split_once(':').expect("a pinned tag");
    assert_eq!(repository, "redis");
    assert!(tag != "latest" && !tag.is_empty(), "{image}");
    // redis-server (the program SERVER_BINARY names: components/valkey changes it), exec'd by a
    // shell that checks the data and starts the bootstrap's `rejoin` beside it (tested in
    // the_redis_pods_hand_over_serve_and_rejoin_through_the_bootstrap_binary).
    let command = strings(&redis.command);
    assert_eq!(command[..2], ["sh", "-c"]);
    assert!(
        command[2].contains("exec \"$SERVER_BINARY\" \"$@\""),
        "{command:?}"
    );
    assert_eq!(command[3..], ["start-server"]);
    let program = |name: &str| env(redis, name).and_then(|v| v.value.as_deref());
    assert_eq!(program("SERVER_BINARY"), Some("redis-server"));
    assert_eq!(program("CLI_BINARY"), Some("redis-cli"));
    // The guide's arguments, then the announced address and name (tested with the env below).
    assert_eq!(
        strings(&redis.args)[..3],
        ["/etc/redis/redis.conf", "--protected-mode", "no"]
    );
    let ports: Vec<(Option<&str>, i32, Option<&str>)> = redis
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.as_deref(), p.container_port, p.protocol.as_deref()))
        .collect();
    assert_eq!(
        ports,
        [
            (Some("redis"), 6379, Some("TCP")),
            (Some("cluster"), 16379, Some("TCP"))
        ]
    );
    let requests = redis.resources.as_ref().unwrap().requests.as_ref().unwrap();
    assert_eq!(requests["cpu"].0, "100m");
    assert_eq!(requests["memory"].0, "100Mi");
    let mounts: Vec<(&str, &str)> = redis
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.name.as_str(), m.mount_path.as_str()))
        .collect();
    assert_eq!(
        mounts,
        [
            ("redis-conf", "/etc/redis"),
            ("redis-data-storage", "/var/lib/redis"),
            // The bootstrap binary for the pod commands (not the guide's).
            ("bootstrap-bin", "/opt/bootstrap")
        ]
    );

    let claims = spec.volume_claim_templates.unwrap();
    assert_eq!(claims.len(), 1);
    assert_eq!(
        claims[0].metadata.name.as_deref(),
        Some("redis-data-storage")
    );
    let claim = claims[0].spec.as_ref().unwrap();
    assert_eq!(strings(&claim.access_modes), ["ReadWriteMany"]);
    assert_eq!(claim.storage_class_name.as_deref(), Some("redis-data"));
    let storage = &claim.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"];
    assert_eq!(storage.0, "1Gi");
}

/// The Service is the guide's headless `redis-service`, plus the cluster-bus port and
/// publishNotReadyAddresses; it selects the StatefulSet's pods and is the one the StatefulSet names.
#[test]
fn the_service_is_headless_with_the_bus_port_and_publishes_not_ready_pods() {
    let rendered = render(BASE);
    let service = rendered.service();
    assert_eq!(service.metadata.name.as_deref(), Some("redis-service"));
    assert_eq!(
        service
            .metadata
            .labels
            .as_ref()
            .unwrap()
            .get("app")
            .map(String::as_str),
        Some("redis")
    );
    let spec = service.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
    assert_eq!(spec.publish_not_ready_addresses, Some(true));
    let ports: Vec<(Option<&str>, i32)> = spec
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.as_deref(), p.port))
        .collect();
    assert_eq!(
        ports,
        [(Some("redis-port"), 6379), (Some("cluster-bus"), 16379)]
    );

    let sts = rendered.statefulset().spec.unwrap();
    assert_eq!(spec.selector, sts.selector.match_labels);
    assert_eq!(sts.service_name, service.metadata.name);
}

/// The Traefik route is the guide's, in the `traefik.io/v1alpha1` group that Traefik v3 serves, and
/// its comment says it serves plain clients of one node, not cluster clients.
#[test]
fn the_ingress_route_uses_traefik_v3s_group() {
    let rendered = render(BASE);
    let routes = rendered.all_values("IngressRouteTCP");
    assert_eq!(routes.len(), 1);
    let route = routes[0];
    assert_eq!(route["apiVersion"], "traefik.io/v1alpha1");
    assert_eq!(name_of(route), "redis");
    assert_eq!(route["spec"]["entryPoints"], serde_json::json!(["redis"]));
    let rule = &route["spec"]["routes"][0];
    assert_eq!(rule["match"], "HostSNI(`*`)");
    let service = &rule["services"][0];
    assert_eq!(
        service["name"].as_str(),
        rendered.service().metadata.name.as_deref()
    );
    assert_eq!(service["port"], 6379);
    let source = std::fs::read_to_string(repo().join(BASE).join("ingress_route_tcp.yaml")).unwrap();
    assert!(source.contains("traefik.containo.us") && source.contains("MOVED"));
}

// ---------------------------------------------------------------------------------------------
// What the guide lacks: probes, a non-root Redis
// ---------------------------------------------------------------------------------------------

/// The Redis pods run the bootstrap's pod commands: an init container (restricted, read-only
/// root, the bootstrap image) copies the binary into an emptyDir the Redis container mounts
/// read-only; readiness is `ready`; the preStop hook runs `handover` with its lines on PID 1's
/// stdout; the container starts `rejoin` beside the server, which stays PID 1 (exec); the grace
/// period covers the handover's budget and Redis's shutdown-timeout; and the container's
/// `BOOTSTRAP_*` environment is one the binary accepts, logging in as the Job does.
#[test]
fn the_redis_pods_hand_over_serve_and_rejoin_through_the_bootstrap_binary() {
    const BINARY: &str = "/opt/bootstrap/redis-cluster-bootstrap";
    for dir in ALL {
        let rendered = render(dir);
        let sts = rendered.statefulset();
        let pod = pod_spec_of_statefulset(&sts);
        let init = pod
            .init_containers
            .iter()
            .flatten()
            .find(|c| c.name == "install-bootstrap")
            .unwrap_or_else(|| panic!("{dir}: no install-bootstrap init container"));
        let job = bootstrap_container(&rendered.job());
        assert_eq!(init.image, job.image, "{dir}: the bootstrap image");
        assert_eq!(strings(&init.args), ["install", "/opt/bootstrap"], "{dir}");
        let mount = |c: &Container| {
            c.volume_mounts
                .iter()
                .flatten()
                .find(|m| m.mount_path == "/opt/bootstrap")
                .cloned()
                .unwrap_or_else(|| panic!("{dir}: {} does not mount /opt/bootstrap", c.name))
        };
        let redis = redis_container(&sts);
        assert_eq!(
            mount(init).read_only,
            None,
            "{dir}: the init container writes"
        );
        assert_eq!(mount(&redis).read_only, Some(true), "{dir}");
        let volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == mount(&redis).name)
            .unwrap();
        assert!(volume.empty_dir.is_some(), "{dir}: {volume:?}");

        let readiness = redis.readiness_probe.as_ref().expect("a readiness probe");
        let command = strings(&readiness.exec.as_ref().expect("an exec probe").command);
        assert_eq!(command, [BINARY, "ready"], "{dir}");
        let liveness = redis.liveness_probe.as_ref().expect("a liveness probe");
        let command = strings(&liveness.exec.as_ref().unwrap().command).join(" ");
        assert!(command.contains("ping"), "{dir}: {command}");

        let pre_stop = redis
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.as_ref())
            .and_then(|h| h.exec.as_ref())
            .unwrap_or_else(|| panic!("{dir}: no preStop exec hook"));
        let hook = strings(&pre_stop.command).join(" ");
        assert!(
            hook.contains(&format!("exec {BINARY} handover"))
                && hook.contains(">/proc/1/fd/1 2>&1"),
            "{dir}: {hook}"
        );

        let start = [strings(&redis.command), strings(&redis.args)]
            .concat()
            .join(" ");
        assert!(
            start.contains(&format!("{BINARY} rejoin &")),
            "{dir}: rejoin is not started beside the server: {start}"
        );
        assert!(
            start.contains("exec \"$SERVER_BINARY\""),
            "{dir}: the server must be PID 1 (exec) to get SIGTERM: {start}"
        );
        // Before anything else, the data is checked against the server about to load it.
        let check = format!("{BINARY} check-data /var/lib/redis \"$SERVER_BINARY\"");
        let (before, _) = start
            .split_once(&format!("{BINARY} rejoin &"))
            .unwrap_or_default();
        assert!(
            before.contains(&check),
            "{dir}: the data is not checked before the server starts: {start}"
        );
        let server = env(&redis, "SERVER_BINARY").and_then(|v| v.value.as_deref());
        let cli = env(&redis, "CLI_BINARY").and_then(|v| v.value.as_deref());
        assert!(
            matches!(
                (server, cli),
                (Some("redis-server"), Some("redis-cli"))
                    | (Some("valkey-server"), Some("valkey-cli"))
            ),
            "{dir}: {server:?}, {cli:?}"
        );

        let settings = settings_from(&redis, rendered, "the Redis container");
        assert_eq!(
            Some(&settings.service),
            rendered.service().metadata.name.as_ref(),
            "{dir}"
        );
        let grace = pod.termination_grace_period_seconds.unwrap_or(30);
        // shutdown-timeout (10 s) after the hook, and a margin.
        assert!(
            grace as u64 >= settings.handover_timeout.as_secs() + 10 + 10,
            "{dir}: grace period {grace} s"
        );
        let job_settings = settings_of(rendered);
        let user = |s: &Settings| {
            s.credentials
                .as_ref()
                .and_then(|c| c.username().map(str::to_string))
        };
        assert_eq!(
            user(&settings),
            user(&job_settings),
            "{dir}: the pod commands log in as the Job does"
        );
        // Where the users are defined at start, `users` runs before the server.
        if settings.acl_dir.is_some() {
            assert!(
                start.contains(&format!("{BINARY} users)")),
                "{dir}: {start}"
            );
        }
        assert_eq!(
            format!("{:?}", settings.tls_files),
            format!("{:?}", job_settings.tls_files),
            "{dir}: the pod commands speak TLS as the Job does"
        );
    }
}

/// Redis runs as the image's `redis` user (uid 999), never root, with fsGroup so the data volume is
/// writable, and meets the restricted Pod Security Standard.
#[test]
fn redis_runs_as_non_root_with_a_writable_data_volume() {
    for dir in ALL {
        let pod = pod_spec_of_statefulset(&render(dir).statefulset());
        let security = pod.security_context.as_ref().unwrap();
        assert_eq!(security.run_as_user, Some(999), "{dir}");
        assert_eq!(security.fs_group, Some(999), "{dir}");
        assert_restricted(&pod, &format!("{dir}: StatefulSet"));
        let data = container(&pod, "redis")
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == "redis-data-storage")
            .expect("the data volume");
        assert_ne!(data.read_only, Some(true), "{dir}");
    }
}

/// Checks the restricted Pod Security Standard on a pod.
fn assert_restricted(pod: &PodSpec, what: &str) {
    let pod_security = pod.security_context.clone().unwrap_or_default();
    assert_ne!(pod.host_network, Some(true), "{what}");
    assert_ne!(pod.host_pid, Some(true), "{what}");
    assert_ne!(pod.host_ipc, Some(true), "{what}");
    for volume in pod.volumes.iter().flatten() {
        assert!(volume.host_path.is_none(), "{what}: hostPath volume");
    }
    assert_ne!(pod_security.run_as_user, Some(0), "{what}");
    for c in pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
    {
        let security = c.security_context.clone().unwrap_or_default();
        let what = format!("{what}, container {}", c.name);
        assert!(
            security.run_as_non_root.or(pod_security.run_as_non_root) == Some(true),
            "{what}: runAsNonRoot"
        );
        assert_ne!(security.run_as_user, Some(0), "{what}");
        let seccomp = security
            .seccomp_profile
            .or(pod_security.seccomp_profile.clone())
            .map(|p| p.type_);
        assert_eq!(seccomp.as_deref(), Some("RuntimeDefault"), "{what}");
        assert_eq!(security.allow_privilege_escalation, Some(false), "{what}");
        assert_ne!(security.privileged, Some(true), "{what}");
        let capabilities = security.capabilities.unwrap_or_default();
        assert_eq!(strings(&capabilities.drop), ["ALL"], "{what}");
        assert!(capabilities.add.is_none(), "{what}");
        assert!(
            c.ports.iter().flatten().all(|p| p.host_port.is_none()),
            "{what}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The bootstrap Job and its permissions
// ---------------------------------------------------------------------------------------------

/// `(group, resource, verb)` triples of a permission list in the form of `kubernetes::PERMISSIONS`.
fn triples(permissions: &[(&str, &str, &[&str])]) -> BTreeSet<(String, String, String)> {
    permissions
        .iter()
        .flat_map(|(group, resource, verbs)| {
            verbs
                .iter()
                .map(move |verb| (group.to_string(), resource.to_string(), verb.to_string()))
        })
        .collect()
}

/// `(group, resource, verb)` triples a Role's or ClusterRole's rules grant. Only a Lease may be
/// restricted by name (checked by the Role's test).
fn granted_by(
    rules: &Option<Vec<k8s_openapi::api::rbac::v1::PolicyRule>>,
) -> BTreeSet<(String, String, String)> {
    let mut granted = BTreeSet::new();
    for rule in rules.iter().flatten() {
        assert!(rule.non_resource_urls.is_none());
        assert!(rule.resource_names.is_none() || strings(&rule.resources) == ["leases"]);
        for group in strings(&rule.api_groups) {
            for resource in strings(&rule.resources) {
                for verb in &rule.verbs {
                    granted.insert((group.to_string(), resource.to_string(), verb.clone()));
                }
            }
        }
    }
    granted
}

/// The Role grants exactly the calls the binary makes (`kubernetes::PERMISSIONS`): namespaced, read
/// only, nothing on Secrets. A ClusterRole only where the placement component is included.
#[test]
fn the_role_grants_exactly_what_the_binary_calls() {
    let expected = triples(PERMISSIONS);
    for dir in ALL {
        let rendered = render(dir);
        let role: Role = rendered.one();
        let granted = granted_by(&role.rules);
        assert_eq!(granted, expected, "{dir}: the Role and PERMISSIONS differ");
        // Only the Lease is restricted by name, to the one of this rendering's StatefulSet, and
        // only for the verbs that name it.
        for rule in role.rules.iter().flatten() {
            if let Some(names) = &rule.resource_names {
                let sts = rendered.statefulset().metadata.name.unwrap();
                assert_eq!(names, &[lease::name(&sts)], "{dir}");
                assert_eq!(rule.verbs, lease::NAMED_VERBS, "{dir}");
            } else if strings(&rule.resources) == ["leases"] {
                assert_eq!(rule.verbs, ["create"], "{dir}: leases by any name");
            }
        }
        assert!(granted.iter().all(|(_, resource, _)| resource != "secrets"));
        if dir != PRODUCTION {
            for kind in ["ClusterRole", "ClusterRoleBinding"] {
                assert!(rendered.all_values(kind).is_empty(), "{dir}: a {kind}");
            }
        }
    }
}

/// `components/placement` is a Kustomize Component whose ClusterRole grants exactly the optional
/// calls (`kubernetes::OPTIONAL_PERMISSIONS`: get nodes, for their zone), bound to the Job's
/// ServiceAccount in the Job's namespace; production includes it, the base does not.
#[test]
fn the_placement_component_grants_exactly_the_optional_calls_to_the_job() {
    let text = std::fs::read_to_string(repo().join("components/placement/kustomization.yaml"))
        .expect("components/placement/kustomization.yaml");
    let kustomization: Value = serde_yaml_ng::from_str(&text).unwrap();
    assert_eq!(kustomization["kind"], "Component");
    assert_eq!(
        kustomization["apiVersion"],
        "kustomize.config.k8s.io/v1alpha1"
    );

    let production = render(PRODUCTION);
    let role: ClusterRole = production.one();
    assert_eq!(
        granted_by(&role.rules),
        triples(OPTIONAL_PERMISSIONS),
        "the ClusterRole and OPTIONAL_PERMISSIONS differ"
    );
    let binding: ClusterRoleBinding = production.one();
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(Some(&binding.role_ref.name), role.metadata.name.as_ref());
    let account: ServiceAccount = production.one();
    let job = production.job();
    let subjects = binding.subjects.unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0].kind, "ServiceAccount");
    assert_eq!(Some(&subjects[0].name), account.metadata.name.as_ref());
    assert_eq!(subjects[0].namespace, job.metadata.namespace);
    assert_eq!(
        pod_spec_of_job(&job).service_account_name,
        account.metadata.name
    );
    // The base and the permissions it must grant stay namespaced.
    for kind in ["ClusterRole", "ClusterRoleBinding"] {
        assert!(
            render(BASE).all_values(kind).is_empty(),
            "the base has a {kind}"
        );
    }
}

/// production spreads the Redis pods over Kubernetes nodes (required, ignoring tainted nodes) and
/// zones (preferred), selecting exactly the StatefulSet's pods, so the pairing has room.
#[test]
fn production_spreads_the_redis_pods_over_nodes_and_zones() {
    let sts = render(PRODUCTION).statefulset();
    let selector = sts.spec.as_ref().unwrap().selector.match_labels.clone();
    let constraints = pod_spec_of_statefulset(&sts)
        .topology_spread_constraints
        .expect("topologySpreadConstraints");
    let rules: Vec<(&str, &str)> = constraints
        .iter()
        .map(|c| (c.topology_key.as_str(), c.when_unsatisfiable.as_str()))
        .collect();
    assert_eq!(
        rules,
        [
            ("kubernetes.io/hostname", "DoNotSchedule"),
            ("topology.kubernetes.io/zone", "ScheduleAnyway"),
        ]
    );
    for c in &constraints {
        assert_eq!(c.max_skew, 1);
        assert_eq!(c.label_selector.as_ref().unwrap().match_labels, selector);
        assert_eq!(c.node_taints_policy.as_deref(), Some("Honor"));
    }
    assert!(
        pod_spec_of_statefulset(&render(BASE).statefulset())
            .topology_spread_constraints
            .is_none()
    );
}

/// The RoleBinding gives that Role to the Job's ServiceAccount, in the Job's namespace.
#[test]
fn the_role_binding_gives_the_role_to_the_jobs_service_account() {
    for dir in ALL {
        let rendered = render(dir);
        let binding: RoleBinding = rendered.one();
        let role: Role = rendered.one();
        let account: ServiceAccount = rendered.one();
        let job = rendered.job();
        assert_eq!(binding.role_ref.kind, "Role");
        assert_eq!(Some(&binding.role_ref.name), role.metadata.name.as_ref());
        let subjects = binding.subjects.unwrap();
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0].kind, "ServiceAccount");
        assert_eq!(Some(&subjects[0].name), account.metadata.name.as_ref());
        assert_eq!(subjects[0].namespace, job.metadata.namespace);
        assert_eq!(
            pod_spec_of_job(&job).service_account_name,
            account.metadata.name
        );
    }
}

/// The Job never restarts in place, fails at once on the binary's "bad configuration" and "refused"
/// exit codes, and retries (counted) on "retryable".
#[test]
fn the_job_fails_at_once_on_bad_config_or_refusal_and_retries_otherwise() {
    for dir in ALL {
        let job = render(dir).job();
        let spec = job.spec.as_ref().unwrap();
        assert_eq!(
            pod_spec_of_job(&job).restart_policy.as_deref(),
            Some("Never")
        );
        let rules = &spec
            .pod_failure_policy
            .as_ref()
            .expect("a podFailurePolicy")
            .rules;
        let on_exit = |action: &str| -> Vec<i32> {
            rules
                .iter()
                .filter(|r| r.action == action)
                .filter_map(|r| r.on_exit_codes.as_ref())
                .inspect(|c| {
                    assert_eq!(c.operator, "In");
                    assert_eq!(c.container_name.as_deref(), Some("bootstrap"));
                })
                .flat_map(|c| c.values.clone())
                .collect()
        };
        assert_eq!(
            on_exit("FailJob"),
            [ExitCode::BadConfig as i32, ExitCode::Refused as i32],
            "{dir}"
        );
        assert_eq!(on_exit("Count"), [ExitCode::Retryable as i32], "{dir}");
        assert!(
            on_exit("Ignore").is_empty(),
            "{dir}: exit codes must not be ignored"
        );
        // A pod evicted or deleted gets SIGTERM and exits 1 at its next safe point: the first
        // matching rule wins, so the disruption rule must come before the exit-1 rule.
        let position = |action: &str| rules.iter().position(|r| r.action == action);
        let disruption = rules.iter().position(|r| {
            r.action == "Ignore"
                && r.on_pod_conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "DisruptionTarget")
        });
        assert!(
            disruption.is_some() && disruption < position("Count"),
            "{dir}: an eviction must not count as a failed attempt"
        );
        assert!(spec.backoff_limit.unwrap() >= 1, "{dir}: no retry");
    }
}

/// activeDeadlineSeconds lets every retry run its full ready and converge timeouts (plus the Job's
/// backoff), and ttlSecondsAfterFinished keeps the audit log for at least a day.
#[test]
fn the_job_deadline_covers_every_retry_and_keeps_its_log_a_day() {
    for dir in ALL {
        let rendered = render(dir);
        let job = rendered.job();
        let spec = job.spec.as_ref().unwrap();
        let settings = settings_of(rendered);
        let attempts = spec.backoff_limit.unwrap() as u32 + 1;
        let per_attempt = settings.ready_timeout + settings.converge_timeout;
        // The Job controller waits 10s, 20s, 40s, ... between attempts.
        let backoff: Duration = (0..attempts - 1)
            .map(|i| Duration::from_secs(10 << i))
            .sum();
        let needed = per_attempt * attempts + backoff;
        let deadline = Duration::from_secs(spec.active_deadline_seconds.unwrap() as u64);
        assert!(deadline >= needed, "{dir}: {deadline:?} < {needed:?}");
        assert!(
            spec.ttl_seconds_after_finished.unwrap() >= 24 * 3600,
            "{dir}"
        );
    }
}

/// The Job's pod meets the restricted Pod Security Standard and needs no writable filesystem.
#[test]
fn the_job_meets_the_restricted_pod_security_standard() {
    for dir in ALL {
        let job = render(dir).job();
        let pod = pod_spec_of_job(&job);
        assert_restricted(&pod, &format!("{dir}: Job"));
        let security = bootstrap_container(&job).security_context.unwrap();
        assert_eq!(security.read_only_root_filesystem, Some(true), "{dir}");
        assert!(pod.volumes.iter().flatten().all(|v| v.empty_dir.is_none()));
    }
}

/// The Job's environment holds only variables the binary reads (it rejects unknown BOOTSTRAP_*
/// ones), service links are off so none get injected, and static mode is not set.
#[test]
fn the_jobs_environment_names_are_the_binarys_variables() {
    let known: BTreeSet<&str> = VARIABLES.iter().map(|(name, _, _)| *name).collect();
    for dir in ALL {
        let job = render(dir).job();
        let pod = pod_spec_of_job(&job);
        assert_eq!(pod.enable_service_links, Some(false), "{dir}");
        let bootstrap = bootstrap_container(&job);
        assert!(bootstrap.env_from.is_none(), "{dir}: envFrom hides names");
        for var in bootstrap.env.iter().flatten() {
            assert!(
                known.contains(var.name.as_str()),
                "{dir}: the binary does not read {}",
                var.name
            );
        }
        assert!(env(&bootstrap, "BOOTSTRAP_NODES").is_none());
        assert!(
            bootstrap.command.is_none() && bootstrap.args.is_none(),
            "{dir}"
        );
    }
}

/// The Job's environment, as the binary would read it: valid, and pointing at the StatefulSet and
/// Service of the same rendering.
fn settings_of(rendered: &Rendered) -> Settings {
    settings_from(
        &bootstrap_container(&rendered.job()),
        rendered,
        "the Job's environment",
    )
}

/// The settings the binary reads from `container`'s `BOOTSTRAP_*` environment.
fn settings_from(container: &Container, rendered: &Rendered, what: &str) -> Settings {
    let namespace = rendered.job().metadata.namespace.clone().unwrap();
    let vars = container
        .env
        .clone()
        .unwrap()
        .into_iter()
        .filter(|var| var.name.starts_with("BOOTSTRAP_"))
        .map(|var| {
            let value = match (&var.value, &var.value_from) {
                (Some(value), None) => value.clone(),
                (None, Some(from)) if from.field_ref.is_some() => {
                    assert_eq!(
                        from.field_ref.as_ref().unwrap().field_path,
                        "metadata.namespace"
                    );
                    namespace.clone()
                }
                (None, Some(from)) if from.secret_key_ref.is_some() => "from-a-secret".into(),
                _ => panic!("{}: {} has no usable value", rendered.dir, var.name),
            };
            (var.name, value)
        });
    Settings::from_vars(vars)
        .unwrap_or_else(|e| panic!("{}: the binary rejects {what}: {e}", rendered.dir))
}

/// The binary accepts the Job's environment, and it names the StatefulSet, Service and namespace
/// of the same rendering.
#[test]
fn the_jobs_environment_points_at_the_statefulset_and_service() {
    for dir in ALL {
        let rendered = render(dir);
        let settings = settings_of(rendered);
        let sts = rendered.statefulset();
        assert_eq!(
            Some(&settings.statefulset),
            sts.metadata.name.as_ref(),
            "{dir}"
        );
        assert_eq!(
            Some(&settings.service),
            rendered.service().metadata.name.as_ref()
        );
        assert_eq!(settings.namespace, sts.metadata.namespace, "{dir}");
        let masters =
            sts.spec.unwrap().replicas.unwrap() as usize / (1 + settings.replicas_per_master);
        assert!(masters >= 3, "{dir}: a Redis Cluster needs 3 masters");
    }
}

/// Renaming the StatefulSet and the Service in their own files renames every reference: the Job's
/// environment, the StatefulSet's serviceName and the Traefik route.
#[test]
fn renaming_the_statefulset_or_service_in_one_place_renames_every_reference() {
    let renamed = render_edited_base(|dir| {
        edit_file(
            dir,
            "stateful_set.yaml",
            "\n  name: redis-app\n",
            "\n  name: cache-app\n",
        );
        edit_file(
            dir,
            "service.yaml",
            "\n  name: redis-service\n",
            "\n  name: cache-service\n",
        );
    });
    let settings = settings_of(&renamed);
    assert_eq!(settings.statefulset, "cache-app");
    assert_eq!(settings.service, "cache-service");
    assert_eq!(
        renamed.statefulset().spec.unwrap().service_name.as_deref(),
        Some("cache-service")
    );
    assert_eq!(
        renamed.all_values("IngressRouteTCP")[0]["spec"]["routes"][0]["services"][0]["name"],
        "cache-service"
    );
    let text = serde_json::to_string(&renamed.docs).unwrap();
    assert!(!text.contains("redis-app") && !text.contains("redis-service"));
}

// ---------------------------------------------------------------------------------------------
// The top-level kustomization and the overlays
// ---------------------------------------------------------------------------------------------

/// The bootstrap image in each rendering is the one its kustomization's `images:` entry sets; the
/// base keeps the placeholder.
#[test]
fn each_kustomization_sets_the_bootstrap_image() {
    assert_eq!(
        bootstrap_container(&render(BASE).job()).image.as_deref(),
        Some("redis-cluster-bootstrap")
    );
    for dir in [ROOT, DEV, PRODUCTION] {
        let image = bootstrap_container(&render(dir).job()).image.unwrap();
        assert_eq!(image, bootstrap_image_set_by(dir), "{dir}");
        assert_ne!(image, "redis-cluster-bootstrap", "{dir}: no tag");
    }
}

/// The top-level kustomization is the base, the user's image and the self-healing CronJob,
/// nothing else.
#[test]
fn the_root_is_the_base_with_the_users_image_and_the_self_healing_cron_job() {
    let image_path = "/spec/template/spec/containers/0/image";
    let without_image = |rendered: &Rendered| -> Vec<Value> {
        let mut docs = rendered.docs.clone();
        docs.retain(|doc| kind_of(doc) != "CronJob");
        for doc in docs.iter_mut().filter(|doc| kind_of(doc) == "Job") {
            *doc.pointer_mut(image_path).unwrap() = Value::Null;
        }
        // The Redis pods' init container runs the same image.
        let init_image = "/spec/template/spec/initContainers/0/image";
        for doc in docs.iter_mut().filter(|doc| kind_of(doc) == "StatefulSet") {
            *doc.pointer_mut(init_image).unwrap() = Value::Null;
        }
        docs
    };
    assert_eq!(without_image(render(ROOT)), without_image(render(BASE)));
    assert_eq!(render(ROOT).all::<CronJob>().len(), 1);
}

/// dev: the cluster's default StorageClass (no NFS class, ReadWriteOnce), no Traefik route, smaller
/// resources than the base.
#[test]
fn dev_uses_the_default_storage_class_and_small_resources() {
    let dev = render(DEV);
    assert!(dev.all::<StorageClass>().is_empty(), "the NFS StorageClass");
    assert!(
        dev.all_values("IngressRouteTCP").is_empty(),
        "the Traefik route"
    );
    let claim = dev
        .statefulset()
        .spec
        .unwrap()
        .volume_claim_templates
        .unwrap()[0]
        .spec
        .clone()
        .unwrap();
    assert_eq!(claim.storage_class_name, None);
    assert_eq!(strings(&claim.access_modes), ["ReadWriteOnce"]);
    let (cpu, memory, limit) = resources(&redis_container(&dev.statefulset()));
    let (base_cpu, base_memory, base_limit) =
        resources(&redis_container(&render(BASE).statefulset()));
    assert!(cpu < base_cpu && memory < base_memory && limit < base_limit);
}

/// production: bigger resources and volumes, and a PodDisruptionBudget that lets one Redis pod go at
/// a time and selects exactly the StatefulSet's pods.
#[test]
fn production_has_a_disruption_budget_and_bigger_resources() {
    let production = render(PRODUCTION);
    let sts = production.statefulset();
    let budget: PodDisruptionBudget = production.one();
    let spec = budget.spec.unwrap();
    assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
    assert_eq!(spec.min_available, None);
    assert_eq!(
        spec.selector.unwrap().match_labels,
        sts.spec.as_ref().unwrap().selector.match_labels
    );
    let (cpu, memory, limit) = resources(&redis_container(&sts));
    let (base_cpu, base_memory, base_limit) =
        resources(&redis_container(&render(BASE).statefulset()));
    assert!(cpu > base_cpu && memory > base_memory && limit > base_limit);
    let claim = sts.spec.unwrap().volume_claim_templates.unwrap()[0]
        .spec
        .clone()
        .unwrap();
    let storage = quantity(&claim.resources.unwrap().requests.unwrap()["storage"]);
    assert!(storage > quantity(&Quantity("1Gi".into())));
}

// ---------------------------------------------------------------------------------------------
// Day 2: announced addresses, all pods at once, the self-healing CronJob
// ---------------------------------------------------------------------------------------------

/// Every rendering's Redis pods announce the pod's own IP (downward API `status.podIP`) and pod
/// name as `cluster-announce-ip` / `cluster-announce-hostname`, and start in parallel.
#[test]
fn every_node_announces_its_pod_ip_and_name_and_all_pods_start_at_once() {
    for dir in ALL {
        let sts = render(dir).statefulset();
        let spec = sts.spec.as_ref().unwrap();
        assert_eq!(
            spec.pod_management_policy.as_deref(),
            Some("Parallel"),
            "{dir}"
        );
        let redis = redis_container(&sts);
        let field = |name: &str| {
            env(&redis, name)
                .and_then(|v| v.value_from.as_ref())
                .and_then(|f| f.field_ref.as_ref())
                .map(|f| f.field_path.clone())
        };
        assert_eq!(field("POD_IP").as_deref(), Some("status.podIP"), "{dir}");
        assert_eq!(field("POD_NAME").as_deref(), Some("metadata.name"), "{dir}");
        let command = [strings(&redis.command), strings(&redis.args)]
            .concat()
            .join(" ");
        // The kubelet expands $(VAR) in command and args; the production shell expands "$VAR"
        // (and appends components/external-access's domain when it is set).
        let announced = [
            "--cluster-announce-ip $(POD_IP) --cluster-announce-hostname $(POD_NAME)",
            "--cluster-announce-ip \"$POD_IP\" --cluster-announce-hostname \"$POD_NAME",
        ];
        assert!(
            announced.iter().any(|a| command.contains(a)),
            "{dir}: redis-server does not announce the pod IP and name: {command}"
        );
    }
}

/// The kustomizations that include the self-healing component (a `kind: Component`): the
/// top-level one and production. The base and dev have no CronJob.
#[test]
fn the_self_healing_component_is_included_by_the_root_and_production_only() {
    let text =
        std::fs::read_to_string(repo().join("components/self-healing/kustomization.yaml")).unwrap();
    let component: Value = serde_yaml_ng::from_str(&text).unwrap();
    assert_eq!(component["kind"], "Component");
    for (dir, included) in [
        (BASE, false),
        (ROOT, true),
        (DEV, false),
        (PRODUCTION, true),
    ] {
        let cron_jobs = render(dir).all::<CronJob>();
        assert_eq!(cron_jobs.len(), usize::from(included), "{dir}");
    }
}

fn cron_job_pod(cron: &CronJob) -> PodSpec {
    let job = cron
        .spec
        .as_ref()
        .unwrap()
        .job_template
        .spec
        .clone()
        .unwrap();
    job.template.spec.unwrap()
}

/// The CronJob runs every 5 minutes, never two at once, keeps a short history, and each run ends
/// before the next one: its deadline is under the period and covers its own timeouts.
#[test]
fn the_cron_job_runs_every_five_minutes_one_at_a_time_within_its_period() {
    for dir in [ROOT, PRODUCTION] {
        let rendered = render(dir);
        let cron: CronJob = rendered.one();
        let spec = cron.spec.as_ref().unwrap();
        // Every 5 minutes: pods rejoin by themselves; see the comment in cron_job.yaml.
        assert_eq!(spec.schedule, "*/5 * * * *", "{dir}");
        assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"), "{dir}");
        for limit in [
            spec.successful_jobs_history_limit,
            spec.failed_jobs_history_limit,
        ] {
            assert!(
                matches!(limit, Some(1..=5)),
                "{dir}: history limit {limit:?}"
            );
        }
        assert!(spec.starting_deadline_seconds.unwrap() < 60, "{dir}");
        let job = spec.job_template.spec.as_ref().unwrap();
        let deadline = Duration::from_secs(job.active_deadline_seconds.unwrap() as u64);
        assert!(deadline < Duration::from_secs(60), "{dir}: {deadline:?}");
        let settings = cron_settings(rendered, &cron);
        // Readiness and convergence, plus 10 s for connecting, observing and forming.
        let needed = settings.ready_timeout + settings.converge_timeout + Duration::from_secs(10);
        assert!(deadline >= needed, "{dir}: {deadline:?} < {needed:?}");
        // A re-mesh converges in about 2 x cluster-node-timeout (5000 ms in redis.conf).
        assert!(
            settings.converge_timeout >= Duration::from_secs(20),
            "{dir}"
        );
        assert_eq!(
            job.backoff_limit,
            Some(0),
            "{dir}: the next minute is the retry"
        );
        // Refusals and bad configuration fail the Job at once, as in the one-shot Job.
        assert_eq!(
            job.pod_failure_policy,
            rendered.job().spec.unwrap().pod_failure_policy,
            "{dir}"
        );
    }
}

/// The binary's settings from the CronJob's environment, checked like the Job's.
fn cron_settings(rendered: &Rendered, cron: &CronJob) -> Settings {
    let namespace = cron.metadata.namespace.clone().unwrap();
    let vars = container(&cron_job_pod(cron), "bootstrap")
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|var| {
            let value = match (&var.value, &var.value_from) {
                (Some(value), None) => value.clone(),
                (None, Some(from)) if from.field_ref.is_some() => namespace.clone(),
                (None, Some(from)) if from.secret_key_ref.is_some() => "from-a-secret".into(),
                _ => panic!("{}: {} has no usable value", rendered.dir, var.name),
            };
            (var.name, value)
        });
    Settings::from_vars(vars).unwrap_or_else(|e| {
        panic!(
            "{}: the binary rejects the CronJob's environment: {e}",
            rendered.dir
        )
    })
}

/// The CronJob's pod is the Job's: the same image, ServiceAccount, security, resources and
/// environment (Secrets included), except the two timeouts that must fit in a minute.
#[test]
fn the_cron_job_runs_the_jobs_pod_with_timeouts_that_fit() {
    for dir in [ROOT, PRODUCTION] {
        let rendered = render(dir);
        let cron: CronJob = rendered.one();
        assert_eq!(cron.metadata.namespace, rendered.job().metadata.namespace);
        let mut job_pod = pod_spec_of_job(&rendered.job());
        let mut cron_pod = cron_job_pod(&cron);
        assert_restricted(&cron_pod, &format!("{dir}: CronJob"));
        // The timeouts, and a scheduled run's way with pods that are not Ready (a rollout).
        let timeouts = [
            "BOOTSTRAP_READY_TIMEOUT",
            "BOOTSTRAP_CONVERGE_TIMEOUT",
            "BOOTSTRAP_WHEN_NOT_READY",
        ];
        for pod in [&mut job_pod, &mut cron_pod] {
            for c in &mut pod.containers {
                c.env
                    .as_mut()
                    .unwrap()
                    .retain(|v| !timeouts.contains(&v.name.as_str()));
            }
        }
        assert_eq!(
            cron_pod, job_pod,
            "{dir}: the CronJob's pod differs from the Job's"
        );
        let settings = cron_settings(rendered, &cron);
        assert_eq!(
            Some(&settings.statefulset),
            rendered.statefulset().metadata.name.as_ref()
        );
        assert_eq!(
            Some(&settings.service),
            rendered.service().metadata.name.as_ref()
        );
        // A rollout is not an incident for the schedule; the one-shot Job still fails loudly.
        assert_eq!(settings.when_not_ready, WhenNotReady::Skip, "{dir}");
        assert_eq!(settings_of(rendered).when_not_ready, WhenNotReady::Fail);
    }
}

/// No code block of the documentation applies two kustomizations: each renders the Job, whose pod
/// template is immutable, so the second apply would fail.
#[test]
fn no_instructions_apply_two_kustomizations() {
    let mut files = vec![repo().join("README.md")];
    if let Ok(docs) = std::fs::read_dir(repo().join("docs")) {
        files.extend(docs.flatten().map(|e| e.path()));
    }
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "md"))
    {
        let text = std::fs::read_to_string(file).unwrap();
        for (i, block) in text.split("```").enumerate().filter(|(i, _)| i % 2 == 1) {
            let applies = block
                .lines()
                .filter(|l| l.trim_start().starts_with("kubectl apply -k"))
                .count();
            assert!(
                applies <= 1,
                "{}: code block {} applies {applies} kustomizations:\n{block}",
                file.display(),
                i / 2 + 1
            );
        }
    }
}
