//! `components/external-access` as `overlays/production` renders it (issue 20): one Traefik route
//! and one Service per pod, routing by SNI with TLS passed through; the nodes announcing
//! `redis-app-N.<domain>` with hostname endpoints (production's startup run with a stand-in
//! `redis-server` that prints its arguments); the certificate naming those hosts; the generated
//! file matching its generator; and production's egress rules.
//!
//! Needs `kubectl` (kustomize built in) and `sh`.

mod kustomize;

use std::collections::BTreeMap;
use std::process::Command;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Container, Service};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyEgressRule};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kustomize::{render, repo};
use serde::de::DeserializeOwned;
use serde_json::Value;

const PRODUCTION: &str = "overlays/production";

/// The objects of kind `K`.
fn all<K: k8s_openapi::Resource + DeserializeOwned>(docs: &[Value]) -> Vec<K> {
    docs.iter()
        .filter(|d| d["kind"] == K::KIND)
        .map(|d| serde_json::from_value(d.clone()).unwrap())
        .collect()
}

/// The object of kind `K` named `name`.
fn named<K: k8s_openapi::Resource + DeserializeOwned>(docs: &[Value], name: &str) -> K {
    let doc = docs
        .iter()
        .find(|d| d["kind"] == K::KIND && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {} {name}", K::KIND));
    serde_json::from_value(doc.clone()).unwrap()
}

/// The document of kind `kind` named `name`.
fn doc<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// The domain of components/external-access (ConfigMap redis-external-access-<hash>), and the
/// ConfigMap's rendered name.
fn domain(docs: &[Value]) -> (String, String) {
    let config = docs
        .iter()
        .find(|d| {
            d["kind"] == "ConfigMap"
                && d["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("redis-external-access-"))
        })
        .expect("the ConfigMap redis-external-access");
    (
        config["data"]["domain"].as_str().unwrap().to_string(),
        config["metadata"]["name"].as_str().unwrap().to_string(),
    )
}

fn statefulset(docs: &[Value]) -> StatefulSet {
    let mut found = all::<StatefulSet>(docs);
    assert_eq!(found.len(), 1);
    found.remove(0)
}

fn replicas(docs: &[Value]) -> usize {
    statefulset(docs).spec.unwrap().replicas.unwrap() as usize
}

fn redis_container(docs: &[Value]) -> Container {
    let sts = statefulset(docs);
    let pod = sts.spec.unwrap().template.spec.unwrap();
    pod.containers
        .into_iter()
        .find(|c| c.name == "redis")
        .unwrap()
}

/// `HostSNI(`name`)` → `name`.
fn sni(rule: &str) -> &str {
    rule.strip_prefix("HostSNI(`")
        .and_then(|r| r.strip_suffix("`)"))
        .unwrap_or_else(|| panic!("not one HostSNI: {rule}"))
}

/// True when a certificate name covers `host` (a wildcard covers exactly one label).
fn covers(name: &str, host: &str) -> bool {
    match name.strip_prefix("*.") {
        Some(parent) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
        None => name == host,
    }
}

/// Every pod has its own route, by its external name, passed through to a Service that selects
/// that pod alone; the guide's single route stays for clients of one node.
#[test]
fn production_routes_each_pods_external_name_to_that_pod_alone() {
    let docs = render(PRODUCTION);
    let (domain, _) = domain(&docs);
    let n = replicas(&docs);
    let per_pod: Vec<&Value> = docs
        .iter()
        .filter(|d| {
            d["kind"] == "IngressRouteTCP"
                && d["metadata"]["labels"]["app.kubernetes.io/component"] == "external-access"
        })
        .collect();
    assert_eq!(per_pod.len(), n, "one route per pod");
    for i in 0..n {
        let pod = format!("redis-app-{i}");
        let route = doc(&docs, "IngressRouteTCP", &pod);
        assert_eq!(route["apiVersion"], "traefik.io/v1alpha1");
        assert_eq!(route["spec"]["entryPoints"], serde_json::json!(["redis"]));
        assert_eq!(
            route["spec"]["tls"],
            serde_json::json!({"passthrough": true})
        );
        let rules = route["spec"]["routes"].as_array().unwrap();
        assert_eq!(rules.len(), 1, "{pod}");
        assert_eq!(
            sni(rules[0]["match"].as_str().unwrap()),
            format!("{pod}.{domain}")
        );
        let backends = rules[0]["services"].as_array().unwrap();
        assert_eq!(backends.len(), 1, "{pod}");
        assert_eq!(backends[0]["port"], 6379);

        let service: Service = named(&docs, backends[0]["name"].as_str().unwrap());
        let spec = service.spec.unwrap();
        assert_eq!(
            spec.selector,
            Some(BTreeMap::from([(
                "statefulset.kubernetes.io/pod-name".to_string(),
                pod.clone()
            )])),
            "{pod}: the Service selects that pod alone"
        );
        assert_eq!(spec.cluster_ip, None, "a ClusterIP Service, not headless");
        let ports = spec.ports.unwrap();
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].port, 6379);
        assert_eq!(ports[0].target_port, Some(IntOrString::Int(6379)));
    }
    // The guide's route, for single-node clients, is still there and still passes TLS through.
    let guide = doc(&docs, "IngressRouteTCP", "redis");
    assert_eq!(guide["spec"]["tls"]["passthrough"], true);

    // The other kustomizations publish no per-pod route.
    for dir in ["manifests", ".", "overlays/dev", "overlays/valkey"] {
        let docs = render(dir);
        assert!(
            docs.iter().all(
                |d| d["metadata"]["labels"]["app.kubernetes.io/component"] != "external-access"
            ),
            "{dir}"
        );
    }
}

/// The nodes' certificate covers every route's name, with one wildcard (a grow needs no new
/// certificate), and the placeholder the component fills in is gone.
#[test]
fn production_certificate_names_every_external_host() {
    let docs = render(PRODUCTION);
    let (domain, _) = domain(&docs);
    let names: Vec<String> = doc(&docs, "Certificate", "redis-tls")["spec"]["dnsNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&format!("*.{domain}")), "{names:?}");
    assert!(
        names.iter().all(|n| !n.contains("external-access-domain")),
        "{names:?}"
    );
    // components/tls's names stay: the bootstrap checks the pods' own DNS names.
    assert!(names.contains(&"*.redis-service.infra.svc.cluster.local".to_string()));
    for route in docs.iter().filter(|d| d["kind"] == "IngressRouteTCP") {
        let host = sni(route["spec"]["routes"][0]["match"].as_str().unwrap());
        assert!(
            names.iter().any(|n| covers(n, host)),
            "the certificate does not cover {host}: {names:?}"
        );
    }
}

/// Production's startup, run with the container's environment and a stand-in `redis-server` that
/// prints its arguments: with the component, pod N announces `redis-app-N.<domain>` and hands out
/// hostnames; without it (the variables unset), its pod name and IPs, as before.
#[test]
fn production_nodes_announce_their_external_names() {
    let docs = render(PRODUCTION);
    let (domain, config_map) = domain(&docs);
    let redis = redis_container(&docs);
    let env = |name: &str| {
        redis
            .env
            .iter()
            .flatten()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .clone()
    };
    let from = env("REDIS_EXTERNAL_DOMAIN")
        .value_from
        .unwrap()
        .config_map_key_ref
        .unwrap();
    assert_eq!(
        (from.name.as_str(), from.key.as_str()),
        (config_map.as_str(), "domain")
    );
    let endpoint = env("REDIS_PREFERRED_ENDPOINT_TYPE").value.unwrap();
    assert_eq!(endpoint, "hostname");

    let bin = tempfile::tempdir().unwrap();
    let fake = bin.path().join("redis-server");
    std::fs::write(&fake, "#!/bin/sh\necho \"$@\"\n").unwrap();
    Command::new("chmod").arg("+x").arg(&fake).status().unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );
    // The pod's copy of the binary is the one under test for `check-data` (it runs first); the
    // other pod commands (`users`, `rejoin`) are not what this looks at: a stand-in answers them.
    let bootstrap = bin.path().join("redis-cluster-bootstrap");
    std::fs::write(
        &bootstrap,
        format!(
            "#!/bin/sh\ncase \"$1\" in check-data) exec {} \"$@\" ;; esac\nexit 0\n",
            env!("CARGO_BIN_EXE_redis-cluster-bootstrap")
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&bootstrap)
        .status()
        .unwrap();
    let argv: Vec<String> = [redis.command.clone().unwrap(), redis.args.clone().unwrap()]
        .concat()
        .into_iter()
        .map(|a| {
            a.replace(
                "/opt/bootstrap/redis-cluster-bootstrap",
                bootstrap.to_str().unwrap(),
            )
        })
        .collect();
    let server = env("SERVER_BINARY").value.unwrap();
    let start = |external: bool| {
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..])
            .env_clear()
            .env("PATH", &path)
            .env("SERVER_BINARY", &server)
            .env("POD_IP", "10.1.2.3")
            .env("POD_NAME", "redis-app-4");
        if external {
            c.env("REDIS_EXTERNAL_DOMAIN", &domain)
                .env("REDIS_PREFERRED_ENDPOINT_TYPE", &endpoint);
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let args = start(true);
    assert!(
        args.contains(&format!(
            "--cluster-announce-hostname redis-app-4.{domain} --cluster-preferred-endpoint-type hostname"
        )),
        "{args}"
    );
    assert!(args.contains("--cluster-announce-ip 10.1.2.3"), "{args}");
    let args = start(false);
    assert!(
        args.contains(
            "--cluster-announce-hostname redis-app-4 --cluster-preferred-endpoint-type ip"
        ),
        "{args}"
    );
}

/// The committed per-pod objects are exactly what scripts/external-access.sh renders for the
/// component's domain and the StatefulSet's size: a changed domain or a grow without re-running
/// it fails here.
#[test]
fn the_per_pod_objects_are_the_generators_output_for_the_statefulsets_size() {
    let docs = render(PRODUCTION);
    let out = Command::new(repo().join("scripts/external-access.sh"))
        .arg(replicas(&docs).to_string())
        .env("OUT", "-")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed =
        std::fs::read_to_string(repo().join("components/external-access/pods.yaml")).unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        committed,
        "run scripts/external-access.sh"
    );
}

/// The (pod labels, ports) an egress rule allows, for comparing rules: `None` labels for a rule
/// to any address; a namespace-qualified peer as `ns=<labels> pod=<labels>`.
fn allowed(rule: &NetworkPolicyEgressRule) -> (Vec<String>, Vec<String>) {
    let label = |m: &Option<BTreeMap<String, String>>| {
        m.iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let peers = match &rule.to {
        None => vec!["anywhere".to_string()],
        Some(to) => to
            .iter()
            .map(|p| {
                assert!(p.ip_block.is_none(), "no address ranges");
                let pods = label(&p.pod_selector.as_ref().unwrap().match_labels);
                match &p.namespace_selector {
                    None => format!("pod {pods}"),
                    Some(ns) => format!("ns {} pod {pods}", label(&ns.match_labels)),
                }
            })
            .collect(),
    };
    let ports = rule
        .ports
        .iter()
        .flatten()
        .map(|p| {
            let port = match p.port.as_ref().unwrap() {
                IntOrString::Int(n) => n.to_string(),
                IntOrString::String(s) => s.clone(),
            };
            format!("{port}/{}", p.protocol.as_deref().unwrap())
        })
        .collect();
    (peers, ports)
}

/// Production fences the way out: the Redis pods reach each other (6379, 16379) and DNS only; the
/// bootstrap's pods reach the Redis pods' 6379, DNS and the API server's ports only.
#[test]
fn production_fences_egress_of_the_redis_and_bootstrap_pods() {
    let docs = render(PRODUCTION);
    let redis_pods = "pod app=redis,appCluster=redis-cluster".to_string();
    let dns = (
        vec!["ns kubernetes.io/metadata.name=kube-system pod k8s-app=kube-dns".to_string()],
        vec!["53/UDP".to_string(), "53/TCP".to_string()],
    );

    let redis: NetworkPolicy = named(&docs, "redis-egress");
    let spec = redis.spec.unwrap();
    assert_eq!(
        spec.pod_selector.unwrap().match_labels,
        statefulset(&docs).spec.unwrap().selector.match_labels
    );
    assert_eq!(spec.policy_types, Some(vec!["Egress".to_string()]));
    assert!(spec.ingress.is_none());
    let rules: Vec<_> = spec.egress.unwrap().iter().map(allowed).collect();
    assert_eq!(
        rules,
        [
            (
                vec![redis_pods.clone()],
                vec!["6379/TCP".to_string(), "16379/TCP".to_string()]
            ),
            dns.clone(),
        ]
    );

    let bootstrap: NetworkPolicy = named(&docs, "redis-cluster-bootstrap-egress");
    let spec = bootstrap.spec.unwrap();
    let selector = spec.pod_selector.unwrap().match_labels.unwrap();
    let job_labels = all::<Job>(&docs)[0]
        .clone()
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .labels
        .unwrap();
    let cron_labels = all::<CronJob>(&docs)[0]
        .clone()
        .spec
        .unwrap()
        .job_template
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .labels
        .unwrap();
    for labels in [&job_labels, &cron_labels] {
        assert!(
            selector.iter().all(|(k, v)| labels.get(k) == Some(v)),
            "{selector:?} does not select {labels:?}"
        );
    }
    assert_eq!(spec.policy_types, Some(vec!["Egress".to_string()]));
    let rules: Vec<_> = spec.egress.unwrap().iter().map(allowed).collect();
    assert_eq!(
        rules,
        [
            (vec![redis_pods], vec!["6379/TCP".to_string()]),
            dns,
            (
                vec!["anywhere".to_string()],
                vec!["443/TCP".to_string(), "6443/TCP".to_string()]
            ),
        ]
    );
}
