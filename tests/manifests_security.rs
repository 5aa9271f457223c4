//! The security settings of the manifests (issue 14), rendered with `kubectl kustomize`: the ACL
//! users of `overlays/production` against the rules the binary builds (`src/commands.rs`), the
//! TLS component, the NetworkPolicy, `reclaimPolicy: Retain`, `maxmemory` below the memory limit,
//! the enforced restricted Pod Security Standard and the Traefik route. One test runs production's
//! Redis container for real (its startup script, rendered config and probe) with certificates made
//! by `openssl`.
//!
//! Needs `kubectl`, and for the real run `redis-server`, `redis-cli` and `openssl`. Loopback
//! block 230 (tests/common/BLOCKS.md).

mod dns;
mod kustomize;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVar, Namespace, PodSpec};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer};
use k8s_openapi::api::storage::v1::StorageClass;
use kustomize::{render, repo};
use redis_cluster_bootstrap::commands;
use serde::de::DeserializeOwned;
use serde_json::Value;

const BASE: &str = "manifests";
const PRODUCTION: &str = "overlays/production";
const ALL: [&str; 5] = [BASE, ".", "overlays/dev", PRODUCTION, "overlays/valkey"];
/// Where components/tls mounts the Secret redis-tls.
const TLS_DIR: &str = "/etc/redis-tls";

fn all<K: k8s_openapi::Resource + DeserializeOwned>(docs: &[Value]) -> Vec<K> {
    docs.iter()
        .filter(|d| d["kind"] == K::KIND)
        .map(|d| serde_json::from_value(d.clone()).unwrap())
        .collect()
}

fn one<K: k8s_openapi::Resource + DeserializeOwned>(docs: &[Value]) -> K {
    let mut found = all::<K>(docs);
    assert_eq!(found.len(), 1, "expected one {}", K::KIND);
    found.remove(0)
}

/// The documents of kind `kind` named `name`.
fn custom<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// The ConfigMap redis-conf (its name carries a hash; components may add other ConfigMaps).
fn redis_conf(docs: &[Value]) -> ConfigMap {
    let configs: Vec<ConfigMap> = all::<ConfigMap>(docs)
        .into_iter()
        .filter(|c| {
            c.metadata
                .name
                .as_deref()
                .unwrap()
                .starts_with("redis-conf-")
        })
        .collect();
    assert_eq!(configs.len(), 1, "expected one ConfigMap redis-conf");
    configs.into_iter().next().unwrap()
}

fn pod_of_statefulset(docs: &[Value]) -> PodSpec {
    one::<StatefulSet>(docs)
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
}

fn pod_of_job(docs: &[Value]) -> PodSpec {
    one::<Job>(docs).spec.unwrap().template.spec.unwrap()
}

fn pod_of_cron_job(docs: &[Value]) -> PodSpec {
    let cron = one::<CronJob>(docs);
    cron.spec
        .unwrap()
        .job_template
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
}

fn container<'a>(pod: &'a PodSpec, name: &str) -> &'a Container {
    pod.containers.iter().find(|c| c.name == name).unwrap()
}

fn env<'a>(c: &'a Container, name: &str) -> Option<&'a EnvVar> {
    c.env.iter().flatten().find(|e| e.name == name)
}

/// A container's command and arguments, as one list.
fn argv(c: &Container) -> Vec<String> {
    [c.command.clone(), c.args.clone()]
        .into_iter()
        .flatten()
        .flatten()
        .collect()
}

/// (Secret, key) of a variable set from a Secret.
fn secret_ref(var: &EnvVar) -> Option<(String, String)> {
    let source = var.value_from.as_ref()?.secret_key_ref.as_ref()?;
    Some((source.name.clone(), source.key.clone()))
}

/// The production Redis container's startup script.
fn startup_script(docs: &[Value]) -> String {
    container(&pod_of_statefulset(docs), "redis")
        .args
        .clone()
        .unwrap()
        .join("\n")
}

/// The rules after `user NAME on ">$VAR"` in the startup script, and VAR.
fn acl_line(script: &str, user: &str) -> (String, String) {
    let prefix = format!("user {user} on \">$");
    let rest = script
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{script}"));
    let (var, rules) = rest.split_once("\" ").unwrap();
    (var.to_string(), rules.to_string())
}

/// The bootstrap and replication users of production are exactly what the binary builds from
/// its list of commands; `default` is off; replicas authenticate as the replication user.
#[test]
fn production_acl_users_are_the_ones_the_binary_builds() {
    let script = startup_script(&render(PRODUCTION));
    assert_eq!(
        acl_line(&script, "bootstrap").1,
        commands::bootstrap_rules()
    );
    assert_eq!(
        acl_line(&script, "replication").1,
        commands::replication_rules()
    );
    let app = acl_line(&script, "app").1;
    assert!(app.contains("-@admin"), "{app}");
    let lines: Vec<&str> = script.lines().map(str::trim).collect();
    assert!(lines.contains(&"user default off"), "{script}");
    assert!(lines.contains(&"masteruser replication"), "{script}");
    assert!(
        lines.contains(&"masterauth \"$REDIS_REPLICATION_PASSWORD\""),
        "{script}"
    );
    // `--print-acl` prints the same lines.
    let printed = Command::new(env!("CARGO_BIN_EXE_redis-cluster-bootstrap"))
        .arg("--print-acl")
        .output()
        .unwrap();
    let printed = String::from_utf8(printed.stdout).unwrap();
    assert!(printed.contains(&commands::bootstrap_rules()), "{printed}");
}

/// Every password comes from the Secret redis-users, which is referenced, never rendered: Redis
/// gets all three, the Job and the CronJob log in as `bootstrap` with its key only, and no
/// command line expands a password with Kubernetes' $(VAR) syntax.
#[test]
fn production_wires_the_users_passwords_from_one_secret() {
    let docs = render(PRODUCTION);
    assert!(
        docs.iter().all(|d| d["kind"] != "Secret"),
        "a password in the repository"
    );
    let pod = pod_of_statefulset(&docs);
    let redis = container(&pod, "redis");
    let script = startup_script(&docs);
    for user in ["app", "bootstrap", "replication", "exporter"] {
        let (var, _) = acl_line(&script, user);
        let source = env(redis, &var).and_then(secret_ref);
        assert_eq!(
            source,
            Some(("redis-users".to_string(), user.to_string())),
            "{var}"
        );
    }
    for (what, pod) in [
        ("Job", pod_of_job(&docs)),
        ("CronJob", pod_of_cron_job(&docs)),
    ] {
        let bootstrap = container(&pod, "bootstrap");
        assert_eq!(
            env(bootstrap, "BOOTSTRAP_USERNAME").and_then(|v| v.value.as_deref()),
            Some("bootstrap"),
            "{what}"
        );
        assert_eq!(
            env(bootstrap, "BOOTSTRAP_PASSWORD").and_then(secret_ref),
            Some(("redis-users".into(), "bootstrap".into())),
            "{what}"
        );
        let secrets: Vec<_> = bootstrap
            .env
            .iter()
            .flatten()
            .filter_map(secret_ref)
            .collect();
        assert_eq!(secrets.len(), 1, "{what}: only its own password");
    }
    for c in pod.containers.iter().chain(&pod_of_job(&docs).containers) {
        let argv = argv(c).join(" ");
        for var in c.env.iter().flatten().filter(|v| secret_ref(v).is_some()) {
            assert!(
                !argv.contains(&format!("$({})", var.name)),
                "{}: $({}) puts a password on the command line",
                c.name,
                var.name
            );
        }
    }
}

/// components/tls, as production renders it: TLS-only Redis on 6379 with the bus and
/// replication on TLS, files from the Secret redis-tls mounted where tls.conf and the
/// bootstrap's BOOTSTRAP_TLS_* say, a certificate naming every pod, probes over TLS.
#[test]
fn production_turns_on_tls_everywhere_from_one_secret() {
    let docs = render(PRODUCTION);
    let kustomization: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(repo().join("components/tls/kustomization.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(kustomization["kind"], "Component");

    let config = redis_conf(&docs);
    let tls = &config.data.unwrap()["tls.conf"];
    let directives: Vec<&str> = tls
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for wanted in [
        "port 0",
        "tls-port 6379",
        "cluster-port 16379",
        "tls-cluster yes",
        "tls-replication yes",
        "tls-cert-file /etc/redis-tls/tls.crt",
        "tls-key-file /etc/redis-tls/tls.key",
        "tls-ca-cert-file /etc/redis-tls/ca.crt",
    ] {
        assert!(directives.contains(&wanted), "{wanted}: {tls}");
    }
    // tls.conf lands where the startup includes it.
    let pod = pod_of_statefulset(&docs);
    let conf = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "redis-conf")
        .unwrap();
    let items = conf.config_map.as_ref().unwrap().items.clone().unwrap();
    assert!(
        items
            .iter()
            .any(|i| i.key == "tls.conf" && i.path == "conf.d/tls.conf")
    );
    assert!(
        startup_script(&docs).contains("include /etc/redis/conf.d/*.conf"),
        "the startup does not include conf.d"
    );

    // The Secret is mounted at TLS_DIR in Redis, the Job and the CronJob.
    let mounted = |pod: &PodSpec, name: &str| {
        let volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) == Some("redis-tls"))
            .unwrap_or_else(|| panic!("{name}: no volume of the Secret redis-tls"));
        let mount = container(pod, name)
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == volume.name)
            .unwrap_or_else(|| panic!("{name}: redis-tls is not mounted"));
        assert_eq!(mount.mount_path, TLS_DIR);
        // Readable by the container's group only (fsGroup), the key included.
        assert_eq!(volume.secret.as_ref().unwrap().default_mode, Some(0o440));
        assert!(pod.security_context.as_ref().unwrap().fs_group.is_some());
    };
    mounted(&pod, "redis");
    for (what, pod) in [
        ("Job", pod_of_job(&docs)),
        ("CronJob", pod_of_cron_job(&docs)),
    ] {
        mounted(&pod, "bootstrap");
        let bootstrap = container(&pod, "bootstrap");
        for (var, file) in [
            ("BOOTSTRAP_TLS_CA_FILE", "ca.crt"),
            ("BOOTSTRAP_TLS_CERT_FILE", "tls.crt"),
            ("BOOTSTRAP_TLS_KEY_FILE", "tls.key"),
        ] {
            assert_eq!(
                env(bootstrap, var).and_then(|v| v.value.clone()),
                Some(format!("{TLS_DIR}/{file}")),
                "{what}: {var}"
            );
        }
    }

    // The probes speak TLS with the component's arguments.
    let redis = container(&pod, "redis");
    let args = env(redis, "REDISCLI_TLS_ARGS")
        .and_then(|v| v.value.clone())
        .unwrap();
    assert!(
        args.starts_with("--tls --cacert /etc/redis-tls/ca.crt"),
        "{args}"
    );
    // The pod commands (the readiness probe among them) speak TLS with the same files.
    for (var, file) in [
        ("BOOTSTRAP_TLS_CA_FILE", "ca.crt"),
        ("BOOTSTRAP_TLS_CERT_FILE", "tls.crt"),
        ("BOOTSTRAP_TLS_KEY_FILE", "tls.key"),
    ] {
        let value = env(redis, var).and_then(|v| v.value.clone());
        assert_eq!(value, Some(format!("/etc/redis-tls/{file}")), "{var}");
    }
    let liveness = redis
        .liveness_probe
        .as_ref()
        .unwrap()
        .exec
        .as_ref()
        .unwrap();
    let command = liveness.command.clone().unwrap().join(" ");
    assert!(
        command.contains("\"$CLI_BINARY\" $REDISCLI_TLS_ARGS --user app"),
        "{command}"
    );

    // The certificate names every pod (the name the bootstrap checks) and the Service.
    let certificate = custom(&docs, "Certificate", "redis-tls");
    assert_eq!(certificate["spec"]["secretName"], "redis-tls");
    let names: Vec<&str> = certificate["spec"]["dnsNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    let sts: StatefulSet = one(&docs);
    let service = sts.spec.unwrap().service_name.unwrap();
    let namespace = sts.metadata.namespace.unwrap();
    assert!(names.contains(&format!("*.{service}.{namespace}.svc.cluster.local").as_str()));
    assert!(names.contains(&service.as_str()), "{names:?}");
    let usages = certificate["spec"]["usages"].to_string();
    assert!(usages.contains("server auth") && usages.contains("client auth"));
    let issuer = &certificate["spec"]["issuerRef"]["name"];
    assert!(
        docs.iter()
            .any(|d| d["kind"] == "Issuer" && &d["metadata"]["name"] == issuer)
    );
    // The base stays plaintext, as in the guide.
    assert!(!render(BASE).iter().any(|d| d["kind"] == "Certificate"));
}

/// The labels of the pods a peer selects (a podSelector's matchLabels).
fn match_labels(peer: &NetworkPolicyPeer) -> Vec<(String, String)> {
    peer.pod_selector
        .as_ref()
        .and_then(|s| s.match_labels.clone())
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// The cluster bus is fenced everywhere: only the StatefulSet's own pods reach 16379. The base
/// leaves 6379 open (the guide's clients, Traefik); production opens it only to the Redis pods
/// (replication, MIGRATE), the bootstrap's pods, pods labelled redis-client=true and Traefik.
#[test]
fn the_network_policy_fences_the_bus_and_production_the_client_port() {
    for dir in ALL {
        let docs = render(dir);
        let policy: NetworkPolicy =
            serde_json::from_value(custom(&docs, "NetworkPolicy", "redis").clone()).unwrap();
        let sts: StatefulSet = one(&docs);
        let selector = sts.spec.as_ref().unwrap().selector.match_labels.clone();
        let spec = policy.spec.unwrap();
        assert_eq!(spec.pod_selector.unwrap().match_labels, selector, "{dir}");
        assert_eq!(
            spec.policy_types,
            Some(vec!["Ingress".to_string()]),
            "{dir}"
        );
        let rules = spec.ingress.unwrap();
        let port = |p: i32| {
            rules
                .iter()
                .filter(|r| {
                    r.ports.iter().flatten().any(|q| {
                        q.port
                            == Some(
                                k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(p),
                            )
                    })
                })
                .collect::<Vec<_>>()
        };
        let bus = port(16379);
        assert_eq!(bus.len(), 1, "{dir}");
        let peers = bus[0].from.clone().expect("the bus rule names its peers");
        let own: Vec<(String, String)> = selector.clone().unwrap().into_iter().collect();
        assert_eq!(peers.len(), 1, "{dir}");
        assert_eq!(match_labels(&peers[0]), own, "{dir}");
        assert!(
            peers[0].namespace_selector.is_none(),
            "{dir}: bus open to other namespaces"
        );
        assert_eq!(bus[0].ports.as_ref().unwrap().len(), 1, "{dir}");

        let client = port(6379);
        assert_eq!(client.len(), 1, "{dir}");
        if dir != PRODUCTION {
            assert!(
                client[0].from.is_none(),
                "{dir}: 6379 is open as in the guide"
            );
            continue;
        }
        let peers = client[0]
            .from
            .clone()
            .expect("production names 6379's peers");
        let selected: Vec<Vec<(String, String)>> = peers.iter().map(match_labels).collect();
        assert!(
            selected.contains(&own),
            "replication between the Redis pods"
        );
        // The Job's and the CronJob's pods carry the labels a peer selects.
        for (what, labels) in [
            (
                "Job",
                one::<Job>(&docs)
                    .spec
                    .unwrap()
                    .template
                    .metadata
                    .unwrap()
                    .labels
                    .unwrap(),
            ),
            (
                "CronJob",
                one::<CronJob>(&docs)
                    .spec
                    .unwrap()
                    .job_template
                    .spec
                    .unwrap()
                    .template
                    .metadata
                    .unwrap()
                    .labels
                    .unwrap(),
            ),
        ] {
            assert!(
                selected
                    .iter()
                    .any(|want| !want.is_empty()
                        && want.iter().all(|(k, v)| labels.get(k) == Some(v))),
                "{what}'s pods cannot reach 6379"
            );
        }
        assert!(selected.contains(&vec![("redis-client".into(), "true".into())]));
        assert!(selected.contains(&vec![("app.kubernetes.io/name".into(), "traefik".into())]));
        assert!(
            peers.iter().all(|p| p.ip_block.is_none()),
            "no address ranges"
        );
    }
}

/// Deleting a claim keeps the data: the NFS StorageClass retains its volumes.
#[test]
fn the_storage_class_retains_volumes() {
    for dir in ALL {
        for class in all::<StorageClass>(&render(dir)) {
            assert_eq!(class.reclaim_policy.as_deref(), Some("Retain"), "{dir}");
        }
    }
    let text = std::fs::read_to_string(repo().join("manifests/storage_class.yaml")).unwrap();
    assert!(text.contains("kubectl delete pv"), "say how to clean up");
}

/// A quantity or a Redis size in bytes: enough of both formats for these manifests.
fn bytes(text: &str) -> f64 {
    let text = text.trim().to_ascii_lowercase();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().unwrap();
    number
        * match unit {
            "" | "b" => 1.0,
            "kb" | "ki" => 1024.0,
            "mb" | "mi" => 1024.0 * 1024.0,
            "gb" | "gi" => 1024.0 * 1024.0 * 1024.0,
            "k" => 1e3,
            "m" => 1e6,
            "g" => 1e9,
            other => panic!("unit {other} in {text}"),
        }
}

/// Production bounds Redis's memory with headroom below the container's limit (60–85 % of it),
/// and never evicts a key silently.
#[test]
fn production_maxmemory_leaves_headroom_below_the_limit() {
    let docs = render(PRODUCTION);
    let script = startup_script(&docs);
    let directive = |name: &str| {
        script
            .lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in the startup"))
            .to_string()
    };
    let maxmemory = bytes(&directive("maxmemory"));
    let pod = pod_of_statefulset(&docs);
    let limits = container(&pod, "redis")
        .resources
        .clone()
        .unwrap()
        .limits
        .unwrap();
    let limit = bytes(&limits["memory"].0);
    let share = maxmemory / limit;
    assert!(
        (0.6..=0.85).contains(&share),
        "maxmemory is {share:.2} of the limit"
    );
    assert_eq!(directive("maxmemory-policy"), "noeviction");
}

/// Every rendering's namespace enforces the restricted Pod Security Standard, and still warns and
/// audits.
#[test]
fn the_namespace_enforces_restricted() {
    for dir in ALL {
        let namespace: Namespace = one(&render(dir));
        let labels = namespace.metadata.labels.unwrap();
        for mode in ["enforce", "warn", "audit"] {
            assert_eq!(
                labels
                    .get(&format!("pod-security.kubernetes.io/{mode}"))
                    .map(String::as_str),
                Some("restricted"),
                "{dir}: {mode}"
            );
        }
    }
}

/// The base keeps the guide's route and says plainly what it exposes; production passes TLS
/// through for one name, which the nodes' certificate carries.
#[test]
fn the_edge_route_is_plaintext_in_the_base_and_tls_passthrough_in_production() {
    let source = std::fs::read_to_string(repo().join("manifests/ingress_route_tcp.yaml")).unwrap();
    assert!(source.contains("plaintext Redis, at the edge"), "{source}");
    let base = render(BASE);
    let route = custom(&base, "IngressRouteTCP", "redis");
    assert_eq!(route["spec"]["routes"][0]["match"], "HostSNI(`*`)");

    let production = render(PRODUCTION);
    let route = custom(&production, "IngressRouteTCP", "redis");
    assert_eq!(route["spec"]["tls"]["passthrough"], true);
    let rule = route["spec"]["routes"][0]["match"].as_str().unwrap();
    let name = rule
        .strip_prefix("HostSNI(`")
        .and_then(|r| r.strip_suffix("`)"))
        .unwrap();
    assert_ne!(name, "*");
    let certificate = custom(&production, "Certificate", "redis-tls");
    assert!(
        certificate["spec"]["dnsNames"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == name),
        "the certificate does not name {name}"
    );
}

/// A process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A CA and a certificate for `name` (and 127.0.0.1, the probes' address) signed by it, in `dir`
/// as cert-manager writes them: ca.crt, tls.crt, tls.key.
fn make_certificates(dir: &Path, name: &str) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is installed");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "tls.key",
        "-out",
        "tls.csr",
        "-subj",
        &format!("/CN={name}"),
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        format!("subjectAltName=DNS:{name},IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n"),
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "tls.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "tls.crt",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
    ]);
}

/// Production's Redis container, run for real from the rendered manifests (its startup script,
/// redis.conf and the TLS component's tls.conf, its probe), with certificates made here: TLS
/// only, the users as defined, passwords nowhere in argv, the probe ready over TLS as `app`.
#[test]
fn production_redis_starts_with_tls_and_the_acl_users() {
    let ip = "127.0.230.11";
    let docs = render(PRODUCTION);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let etc = root.join("etc-redis");
    let tls = root.join("etc-redis-tls");
    let data = root.join("data");
    for d in [&etc.join("conf.d"), &tls, &data] {
        std::fs::create_dir_all(d).unwrap();
    }
    make_certificates(&tls, "redis-app-0.redis-service.infra.svc.cluster.local");

    // The rendered files, with the container's paths moved into the temporary directory.
    let localize = |s: &str| {
        s.replace(
            "/opt/bootstrap/redis-cluster-bootstrap",
            env!("CARGO_BIN_EXE_redis-cluster-bootstrap"),
        )
        .replace("/etc/redis-tls", tls.to_str().unwrap())
        .replace("/etc/redis", etc.to_str().unwrap())
        .replace("/var/lib/redis", data.to_str().unwrap())
    };
    let config = redis_conf(&docs);
    let files = config.data.unwrap();
    std::fs::write(
        etc.join("redis.conf"),
        format!(
            "{}\nbind {ip}\nset-proc-title no\nlogfile {}/redis.log\n",
            localize(&files["redis.conf"]),
            data.display()
        ),
    )
    .unwrap();
    std::fs::write(etc.join("conf.d/tls.conf"), localize(&files["tls.conf"])).unwrap();

    let pod = pod_of_statefulset(&docs);
    let redis = container(&pod, "redis");
    let command: Vec<String> = argv(redis).iter().map(|s| localize(s)).collect();
    let passwords = [
        ("REDIS_APP_PASSWORD", "app-Pa55.word_~+/="),
        ("REDIS_BOOTSTRAP_PASSWORD", "b00tstrap-pw"),
        ("REDIS_REPLICATION_PASSWORD", "repl-pw"),
        ("REDIS_EXPORTER_PASSWORD", "exporter-pw"),
    ];
    let tls_args = localize(
        &env(redis, "REDISCLI_TLS_ARGS")
            .unwrap()
            .value
            .clone()
            .unwrap(),
    );
    let server = Running(
        Command::new(&command[0])
            .args(&command[1..])
            .envs(passwords)
            .env(
                "SERVER_BINARY",
                env(redis, "SERVER_BINARY").unwrap().value.clone().unwrap(),
            )
            .env("POD_IP", ip)
            .env("POD_NAME", "redis-app-0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the container's command runs"),
    );

    let cli = |user: Option<(&str, &str)>, tls: bool, args: &[&str]| {
        let mut c = Command::new("redis-cli");
        if tls {
            c.args(tls_args.split(' '));
        }
        c.args(["-h", ip, "-p", "6379"]).env_remove("REDISCLI_AUTH");
        if let Some((name, password)) = user {
            c.args(["--user", name]).env("REDISCLI_AUTH", password);
        }
        let out = c.args(args).output().expect("redis-cli is installed");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let app = Some(("app", passwords[0].1));
    let deadline = Instant::now() + Duration::from_secs(10);
    while cli(app, true, &["ping"]) != "PONG" {
        let log = std::fs::read_to_string(data.join("redis.log")).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "redis-server did not start over TLS:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The shell exec'd redis-server: its argv has no password.
    let argv = std::fs::read(format!("/proc/{}/cmdline", server.0.id())).unwrap();
    let argv = String::from_utf8_lossy(&argv).replace('\0', " ");
    assert!(argv.starts_with("redis-server "), "{argv}");
    for (_, password) in passwords {
        assert!(
            !argv.contains(password),
            "a password on the command line: {argv}"
        );
    }
    // No plaintext: the same port without TLS gets no answer.
    assert_eq!(cli(app, false, &["ping"]), "");
    // `default` is off; the bootstrap user sees the cluster but no key.
    assert!(cli(None, true, &["get", "k"]).starts_with("NOAUTH"));
    assert_eq!(
        cli(app, true, &["set", "k", "v"]),
        "CLUSTERDOWN Hash slot not served"
    );
    let bootstrap = Some(("bootstrap", passwords[1].1));
    assert_eq!(cli(bootstrap, true, &["cluster", "myid"]).len(), 40);
    assert!(cli(bootstrap, true, &["get", "k"]).starts_with("NOPERM"));
    let replication = Some(("replication", passwords[2].1));
    assert!(cli(replication, true, &["cluster", "nodes"]).starts_with("NOPERM"));
    assert_eq!(
        cli(app, true, &["config", "get", "maxmemory"])
            .lines()
            .count(),
        1,
        "app runs no CONFIG"
    );

    // The liveness probe, pointed at this address.
    let probe = redis
        .liveness_probe
        .clone()
        .unwrap()
        .exec
        .unwrap()
        .command
        .unwrap();
    let run_probe = |password: Option<&str>| {
        let mut c = Command::new(&probe[0]);
        c.args(probe[1..].iter().map(|s| s.replace("127.0.0.1", ip)))
            .env("REDISCLI_TLS_ARGS", &tls_args)
            .env(
                "CLI_BINARY",
                env(redis, "CLI_BINARY").unwrap().value.clone().unwrap(),
            )
            .env_remove("REDISCLI_AUTH");
        if let Some(password) = password {
            c.env("REDISCLI_AUTH", password);
        }
        c.stderr(Stdio::null()).status().unwrap().success()
    };
    assert!(
        run_probe(Some(passwords[0].1)),
        "the probe fails with the password"
    );
    // Alive means "answers at all": a NOAUTH reply is an answer.
    assert!(run_probe(None), "the probe fails on a node that answers");

    // The readiness probe is the bootstrap's `ready`, with the container's BOOTSTRAP_* variables
    // (the bootstrap user, TLS checking the pod's DNS name): ready with the password, not
    // without. The pod's name resolves to this address, as the headless Service resolves it.
    let dns = dns::FakeDns::start(230);
    let pod_name = "redis-app-0.redis-service.infra.svc.cluster.local";
    dns.add(pod_name, ip.parse().unwrap());
    let readiness = redis
        .readiness_probe
        .clone()
        .unwrap()
        .exec
        .unwrap()
        .command
        .unwrap();
    assert_eq!(readiness[1..], ["ready"]);
    let ready = |password: Option<&str>| {
        let mut c = Command::new(localize(&readiness[0]));
        c.arg("ready").env_clear();
        for var in redis.env.iter().flatten() {
            match (&var.value, var.name.as_str()) {
                (_, "BOOTSTRAP_PASSWORD") => {}
                (Some(value), name) if name.starts_with("BOOTSTRAP_") => {
                    c.env(name, localize(value));
                }
                _ => {}
            }
        }
        c.env("BOOTSTRAP_NODES", format!("{pod_name}:6379"))
            .env("BOOTSTRAP_DNS_SERVER", dns.addr.to_string());
        if let Some(password) = password {
            c.env("BOOTSTRAP_PASSWORD", password);
        }
        c.output().unwrap()
    };
    let with = ready(Some(passwords[1].1));
    assert!(
        with.status.success(),
        "not ready with the password: {with:?}"
    );
    let without = ready(None);
    assert!(
        !without.status.success(),
        "ready without the password: {without:?}"
    );
}

/// The startup refuses a password that redis.conf could not hold verbatim (a quote, a backslash,
/// a newline would change the directive), before starting anything.
#[test]
fn production_startup_rejects_a_password_redis_conf_cannot_hold() {
    let docs = render(PRODUCTION);
    let redis = container(&pod_of_statefulset(&docs), "redis").clone();
    let command = argv(&redis);
    for bad in [
        "",
        "quote\"d",
        "back\\slash",
        "new\nline masteruser x",
        "sp ace",
    ] {
        for var in [
            "REDIS_APP_PASSWORD",
            "REDIS_BOOTSTRAP_PASSWORD",
            "REDIS_REPLICATION_PASSWORD",
            "REDIS_EXPORTER_PASSWORD",
        ] {
            let output = Command::new(&command[0])
                .args(&command[1..])
                .env("REDIS_APP_PASSWORD", "ok")
                .env("REDIS_BOOTSTRAP_PASSWORD", "ok")
                .env("REDIS_REPLICATION_PASSWORD", "ok")
                .env("REDIS_EXPORTER_PASSWORD", "ok")
                .env(var, bad)
                .env("POD_IP", "127.0.0.1")
                .env("POD_NAME", "redis-app-0")
                .output()
                .unwrap();
            assert_eq!(output.status.code(), Some(1), "{var}={bad:?}");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(stderr.contains("redis-users"), "{var}={bad:?}: {stderr}");
        }
    }
}
