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

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVar, Namespace, PodSpec, Volume};
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
/// The pod-local user's password file (production's startup writes it, the sidecar reads it).
const POD_PASSWORD: &str = "/run/redis-pod/password";

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

/// A container of the pod, an init container (a sidecar) included.
fn any_container<'a>(pod: &'a PodSpec, name: &str) -> &'a Container {
    pod.containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

/// The ConfigMap redis-acl's rules, by user (its name carries a hash).
fn redis_acl(docs: &[Value]) -> std::collections::BTreeMap<String, String> {
    let acl: Vec<ConfigMap> = all::<ConfigMap>(docs)
        .into_iter()
        .filter(|c| {
            c.metadata
                .name
                .as_deref()
                .unwrap()
                .starts_with("redis-acl-")
        })
        .collect();
    assert_eq!(acl.len(), 1, "expected one ConfigMap redis-acl");
    acl[0].data.clone().unwrap().into_iter().collect()
}

/// The rules of one user of redis-acl, as the startup reads them.
fn rules_of(docs: &[Value], user: &str) -> String {
    let text = &redis_acl(docs)[user];
    redis_cluster_bootstrap::pod::users::rules(user, text).unwrap()
}

/// The volume named by a container's mount at `path`.
fn volume_at<'a>(pod: &'a PodSpec, c: &Container, path: &str) -> &'a Volume {
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == path)
        .unwrap_or_else(|| panic!("{} mounts nothing at {path}", c.name));
    pod.volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .unwrap()
}

/// The bootstrap and replication users of production are exactly what the binary builds from
/// its list of commands, in the ConfigMap redis-acl that the startup reads; `default` is off,
/// replicas log in as the replication user, and `--print-acl` prints the same rules.
#[test]
fn production_acl_users_are_the_ones_the_binary_builds() {
    let docs = render(PRODUCTION);
    let users: Vec<String> = redis_acl(&docs).into_keys().collect();
    assert_eq!(users, ["app", "bootstrap", "exporter", "replication"]);
    assert_eq!(rules_of(&docs, "bootstrap"), commands::bootstrap_rules());
    assert_eq!(
        rules_of(&docs, "replication"),
        commands::replication_rules()
    );
    let app = rules_of(&docs, "app");
    assert!(app.contains("-@admin"), "{app}");
    let script = startup_script(&docs);
    assert!(
        script.contains(
            "users=$(BOOTSTRAP_USERNAME=pod BOOTSTRAP_PASSWORD_FILE=/run/redis-pod/password \\"
        ) && script.contains("/opt/bootstrap/redis-cluster-bootstrap users)"),
        "{script}"
    );
    assert!(script.lines().any(|l| l.trim() == "$users"), "{script}");
    // What `users` prints for these rules: default off, replication as masteruser.
    let printed = redis_cluster_bootstrap::pod::users::directives(
        &redis_acl(&docs)
            .keys()
            .map(|u| (u.clone(), rules_of(&docs, u)))
            .collect(),
        &users
            .iter()
            .map(|u| (u.clone(), vec![format!("{u}-pw")]))
            .collect(),
        None,
        Path::new("/etc/redis-users"),
    )
    .unwrap();
    for line in [
        "user default off",
        "masteruser replication",
        "masterauth \"replication-pw\"",
    ] {
        assert!(printed.lines().any(|l| l == line), "{line}: {printed}");
    }
    // `--print-acl` prints the same rules, and the pod-local user's.
    let printed = Command::new(env!("CARGO_BIN_EXE_redis-cluster-bootstrap"))
        .arg("--print-acl")
        .output()
        .unwrap();
    let printed = String::from_utf8(printed.stdout).unwrap();
    assert!(printed.contains(&commands::bootstrap_rules()), "{printed}");
    assert!(printed.contains(&commands::pod_rules()), "{printed}");
}

/// With backups (overlays/backup), the nodes also define `backup` and `restore`: exactly the rules
/// the binary builds from its BACKUP and RESTORE lists, merged into production's redis-acl (whose
/// own users are unchanged), each with its key's passwords; `--print-acl` prints the same rules.
#[test]
fn backup_acl_users_are_the_ones_the_binary_builds() {
    let docs = render("overlays/backup");
    let acl = redis_acl(&docs);
    let users: Vec<String> = acl.keys().cloned().collect();
    assert_eq!(
        users,
        [
            "app",
            "backup",
            "bootstrap",
            "exporter",
            "replication",
            "restore"
        ]
    );
    assert_eq!(rules_of(&docs, "backup"), commands::backup_rules());
    assert_eq!(rules_of(&docs, "restore"), commands::restore_rules());
    let production = render(PRODUCTION);
    for user in ["app", "bootstrap", "exporter", "replication"] {
        assert_eq!(acl[user], redis_acl(&production)[user], "{user}");
    }
    // The StatefulSet mounts the merged ConfigMap (its new name), so the pods roll to it.
    let merged = all::<ConfigMap>(&docs)
        .into_iter()
        .find_map(|c| c.metadata.name.filter(|n| n.starts_with("redis-acl-")))
        .unwrap();
    let pod = pod_of_statefulset(&docs);
    assert!(
        pod.volumes
            .iter()
            .flatten()
            .any(|v| v.config_map.as_ref().map(|c| c.name.as_str()) == Some(merged.as_str())),
        "{merged}"
    );
    let printed = redis_cluster_bootstrap::pod::users::directives(
        &users
            .iter()
            .map(|u| (u.clone(), rules_of(&docs, u)))
            .collect(),
        &users
            .iter()
            .map(|u| (u.clone(), vec![format!("{u}-pw")]))
            .collect(),
        None,
        Path::new("/etc/redis-users"),
    )
    .unwrap();
    for (user, rules) in [
        ("backup", commands::backup_rules()),
        ("restore", commands::restore_rules()),
    ] {
        let line = printed
            .lines()
            .find(|l| l.starts_with(&format!("user {user} on ")))
            .unwrap_or_else(|| panic!("no user {user}: {printed}"));
        assert!(line.ends_with(&rules), "{line}");
        assert!(line.contains(" #"), "{line}: a password as its SHA-256");
    }
    let printed = Command::new(env!("CARGO_BIN_EXE_redis-cluster-bootstrap"))
        .arg("--print-acl")
        .output()
        .unwrap();
    let printed = String::from_utf8(printed.stdout).unwrap();
    for (user, rules) in [
        ("backup", commands::backup_rules()),
        ("restore", commands::restore_rules()),
    ] {
        let want = format!("user {user} on >{}_PASSWORD {rules}\n", user.to_uppercase());
        assert!(printed.contains(&want), "{printed}");
    }
}

/// Every password comes from the Secret redis-users, referenced and never rendered, and only as
/// files (which the kubelet updates in place, so a change needs no restart), never as an env var:
/// the Redis container and the watch sidecar mount every key, the Job and the CronJob only
/// `bootstrap`. The pod commands log in as `bootstrap` from that file, like the Job; the sidecar
/// as the pod-local user, whose password is in a memory volume of the Redis container (whose
/// startup makes it) and the sidecar only.
#[test]
fn production_wires_the_users_passwords_from_one_secret_as_files() {
    let docs = render(PRODUCTION);
    assert!(
        docs.iter().all(|d| d["kind"] != "Secret"),
        "a password in the repository"
    );
    let pod = pod_of_statefulset(&docs);
    let job = pod_of_job(&docs);
    let cron = pod_of_cron_job(&docs);
    for (what, p) in [("StatefulSet", &pod), ("Job", &job), ("CronJob", &cron)] {
        for c in p
            .containers
            .iter()
            .chain(p.init_containers.iter().flatten())
        {
            for var in c.env.iter().flatten() {
                assert!(
                    secret_ref(var).is_none(),
                    "{what}, {}: {} is set from a Secret (a file is read again, a variable never)",
                    c.name,
                    var.name
                );
                // A file's path is no password.
                assert!(
                    !var.name.contains("PASSWORD") || var.name.ends_with("_FILE"),
                    "{what}, {}: {}",
                    c.name,
                    var.name
                );
            }
            // Kubernetes expands $(VAR) of the container's variables on its command line: with no
            // variable set from a Secret above, no password can get there.
        }
    }
    for name in ["redis", "watch"] {
        let c = any_container(&pod, name);
        let dir = env(c, "BOOTSTRAP_USERS_DIR")
            .and_then(|v| v.value.clone())
            .unwrap();
        let secret = volume_at(&pod, c, &dir)
            .secret
            .clone()
            .expect("a Secret volume");
        assert_eq!(secret.secret_name.as_deref(), Some("redis-users"), "{name}");
        assert!(secret.items.is_none(), "{name}: every user's key");
        assert_eq!(secret.default_mode, Some(0o440), "{name}");
        // The pod-local user's password, in memory, shared by these two containers only.
        let run = Path::new(POD_PASSWORD).parent().unwrap().to_str().unwrap();
        let memory = volume_at(&pod, c, run)
            .empty_dir
            .clone()
            .expect("an emptyDir");
        assert_eq!(memory.medium.as_deref(), Some("Memory"), "{name}");
    }
    let user = |c: &Container| {
        (
            env(c, "BOOTSTRAP_USERNAME").and_then(|v| v.value.clone()),
            env(c, "BOOTSTRAP_PASSWORD_FILE").and_then(|v| v.value.clone()),
        )
    };
    assert_eq!(
        user(any_container(&pod, "watch")),
        (Some("pod".into()), Some(POD_PASSWORD.into()))
    );
    assert!(
        startup_script(&docs).contains(&format!(
            "BOOTSTRAP_USERNAME=pod BOOTSTRAP_PASSWORD_FILE={POD_PASSWORD}"
        )),
        "the startup makes the sidecar's user"
    );
    assert_eq!(
        user(container(&pod, "redis")),
        (
            Some("bootstrap".into()),
            Some("/etc/redis-users/bootstrap".into())
        ),
        "the pod commands log in as the Job does"
    );
    assert_eq!(
        env(container(&pod, "redis"), "BOOTSTRAP_ACL_DIR").and_then(|v| v.value.as_deref()),
        Some("/etc/redis-acl")
    );
    for (what, p) in [("Job", &job), ("CronJob", &cron)] {
        let bootstrap = container(p, "bootstrap");
        assert_eq!(
            env(bootstrap, "BOOTSTRAP_USERNAME").and_then(|v| v.value.as_deref()),
            Some("bootstrap"),
            "{what}"
        );
        let file = env(bootstrap, "BOOTSTRAP_PASSWORD_FILE")
            .and_then(|v| v.value.clone())
            .unwrap();
        let (dir, key) = file.rsplit_once('/').unwrap();
        let secret = volume_at(p, bootstrap, dir).secret.clone().unwrap();
        assert_eq!(secret.secret_name.as_deref(), Some("redis-users"), "{what}");
        let items: Vec<(String, String)> = secret
            .items
            .unwrap()
            .into_iter()
            .map(|i| (i.key, i.path))
            .collect();
        assert_eq!(
            items,
            [(key.to_string(), key.to_string())],
            "{what}: its key only"
        );
    }
}

/// The `watch` sidecar, in every rendering that turns TLS on (components/tls) and only there: a
/// native sidecar (an init container restarted when it exits) from the bootstrap image, with
/// small limits and no startup probe (it never holds Redis back), reading the Secrets' files
/// where the Redis container does, with an environment the binary accepts and no Kubernetes API.
/// Where the users come from files (production), it watches those too.
#[test]
fn the_watch_sidecar_follows_the_secrets_wherever_tls_is_on() {
    for dir in ALL {
        let docs = render(dir);
        let pod = pod_of_statefulset(&docs);
        let watch = pod
            .init_containers
            .iter()
            .flatten()
            .find(|c| c.name == "watch");
        let tls_on = redis_conf(&docs).data.unwrap().contains_key("tls.conf");
        assert_eq!(
            watch.is_some(),
            tls_on,
            "{dir}: a watch sidecar exactly where TLS is on"
        );
        let Some(watch) = watch else { continue };
        assert_eq!(
            watch.restart_policy.as_deref(),
            Some("Always"),
            "{dir}: a native sidecar"
        );
        assert_eq!(argv(watch), ["watch"], "{dir}");
        assert!(
            watch.startup_probe.is_none(),
            "{dir}: nothing holds Redis back"
        );
        assert_eq!(
            watch.image,
            container(&pod_of_job(&docs), "bootstrap").image,
            "{dir}"
        );
        let resources = watch.resources.clone().unwrap();
        let limit = resources.limits.unwrap()["memory"].0.clone();
        assert!(bytes(&limit) <= 64.0 * 1024.0 * 1024.0, "{dir}: {limit}");
        assert!(resources.requests.unwrap().contains_key("cpu"), "{dir}");
        let security = watch.security_context.clone().unwrap();
        assert_eq!(security.read_only_root_filesystem, Some(true), "{dir}");
        // What it reads, the Redis container reads at the same paths, from the same volumes.
        let redis = container(&pod, "redis");
        for var in [
            "BOOTSTRAP_TLS_CA_FILE",
            "BOOTSTRAP_TLS_CERT_FILE",
            "BOOTSTRAP_TLS_KEY_FILE",
            "BOOTSTRAP_USERS_DIR",
        ] {
            let value = env(watch, var).and_then(|v| v.value.clone());
            assert_eq!(
                value,
                env(redis, var).and_then(|v| v.value.clone()),
                "{dir}: {var}"
            );
            let Some(path) = value.filter(|v| v.starts_with('/')) else {
                continue;
            };
            let parent = if var.ends_with("_DIR") {
                path.clone()
            } else {
                Path::new(&path).parent().unwrap().display().to_string()
            };
            assert_eq!(
                volume_at(&pod, watch, &parent).name,
                volume_at(&pod, redis, &parent).name,
                "{dir}: {var}"
            );
        }
        // An environment the binary accepts, naming this rendering's Service.
        let sts: StatefulSet = one(&docs);
        let service = sts.spec.unwrap().service_name.unwrap();
        let vars = watch
            .env
            .iter()
            .flatten()
            .filter(|v| v.name.starts_with("BOOTSTRAP_"))
            .map(|v| {
                // fieldRef metadata.namespace.
                let value = v.value.clone().unwrap_or_else(|| "infra".into());
                (v.name.clone(), value)
            });
        let settings = redis_cluster_bootstrap::config::Settings::from_vars(vars)
            .unwrap_or_else(|e| panic!("{dir}: the binary rejects the sidecar's environment: {e}"));
        assert_eq!(settings.service, service, "{dir}");
        let port = settings.metrics_address.expect("metrics").port();
        assert!(
            watch
                .ports
                .iter()
                .flatten()
                .any(|p| p.container_port == i32::from(port)),
            "{dir}: the metrics port is declared"
        );
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
        command.contains("\"$CLI_BINARY\" $REDISCLI_TLS_ARGS --user pod"),
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

/// The paths of production's Redis container, moved under a temporary directory, and the files
/// the kubelet would mount there: the rendered redis.conf and tls.conf, certificates made by
/// `openssl`, the ConfigMap redis-acl, and the Secret redis-users with `passwords`.
struct Mounted {
    root: tempfile::TempDir,
}

impl Mounted {
    fn new(docs: &[Value], passwords: &[(&str, &str)]) -> Mounted {
        let root = tempfile::tempdir().unwrap();
        let c = Mounted { root };
        for d in [
            "etc-redis/conf.d",
            "etc-redis-tls",
            "etc-redis-acl",
            "etc-redis-users",
            "run-redis-pod",
            "data",
        ] {
            std::fs::create_dir_all(c.root.path().join(d)).unwrap();
        }
        for (user, rules) in redis_acl(docs) {
            std::fs::write(c.root.path().join("etc-redis-acl").join(user), rules).unwrap();
        }
        for (user, password) in passwords {
            let file = c.root.path().join("etc-redis-users").join(user);
            std::fs::write(file, format!("{password}\n")).unwrap();
        }
        c
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// A path or text of the container, with its paths moved here.
    fn localize(&self, s: &str) -> String {
        let dir = |name: &str| self.dir(name).display().to_string();
        s.replace(
            "/opt/bootstrap/redis-cluster-bootstrap",
            env!("CARGO_BIN_EXE_redis-cluster-bootstrap"),
        )
        .replace("/etc/redis-tls", &dir("etc-redis-tls"))
        .replace("/etc/redis-acl", &dir("etc-redis-acl"))
        .replace("/etc/redis-users", &dir("etc-redis-users"))
        .replace("/run/redis-pod", &dir("run-redis-pod"))
        .replace("/etc/redis", &dir("etc-redis"))
        .replace("/var/lib/redis", &dir("data"))
    }

    /// The container's command, with its variables that have a value (moved here), the pod's IP
    /// and name.
    fn command(&self, redis: &Container, ip: &str) -> Command {
        let argv: Vec<String> = argv(redis).iter().map(|s| self.localize(s)).collect();
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap());
        // The variables with a value (BOOTSTRAP_*, SERVER_BINARY, ...); the pod's own below.
        for var in redis.env.iter().flatten() {
            if let Some(value) = &var.value {
                command.env(&var.name, self.localize(value));
            }
        }
        command.env("POD_IP", ip).env("POD_NAME", "redis-app-0");
        command
    }
}

/// Production's Redis container, run for real from the rendered manifests (its startup script
/// with `users`, redis.conf and the TLS component's tls.conf, its probes), with the files the
/// kubelet would mount: TLS only, the users as defined with passwords no redis.conf line could
/// hold verbatim (quotes, a backslash, spaces, non-ASCII), masterauth exactly the replication
/// password, no password in argv, the liveness probe passing as the pod-local user and the
/// readiness probe as `bootstrap`.
#[test]
fn production_redis_starts_with_tls_and_the_acl_users() {
    let ip = "127.0.230.11";
    let docs = render(PRODUCTION);
    let passwords = [
        ("app", "app \"Pa55\" \\word é"),
        ("bootstrap", "b00tstrap-pw"),
        ("replication", "repl \\x41 \"pw\""),
        ("exporter", "exporter-pw"),
    ];
    let files = Mounted::new(&docs, &passwords);
    make_certificates(
        &files.dir("etc-redis-tls"),
        "redis-app-0.redis-service.infra.svc.cluster.local",
    );
    let config = redis_conf(&docs).data.unwrap();
    let data = files.dir("data");
    std::fs::write(
        files.dir("etc-redis").join("redis.conf"),
        format!(
            "{}\nbind {ip}\nset-proc-title no\nlogfile {}/redis.log\n",
            files.localize(&config["redis.conf"]),
            data.display()
        ),
    )
    .unwrap();
    std::fs::write(
        files.dir("etc-redis/conf.d").join("tls.conf"),
        files.localize(&config["tls.conf"]),
    )
    .unwrap();

    let pod = pod_of_statefulset(&docs);
    let redis = container(&pod, "redis");
    let tls_args = files.localize(
        &env(redis, "REDISCLI_TLS_ARGS")
            .unwrap()
            .value
            .clone()
            .unwrap(),
    );
    let server = Running(
        files
            .command(redis, ip)
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
    let app = Some(passwords[0]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while cli(app, true, &["ping"]) != "PONG" {
        let log = std::fs::read_to_string(data.join("redis.log")).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "redis-server did not start over TLS:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The shell exec'd redis-server: its argv has no password, the pod user's neither.
    let pod_password =
        std::fs::read_to_string(files.dir("run-redis-pod").join("password")).unwrap();
    let pod_password = pod_password.trim();
    let argv = std::fs::read(format!("/proc/{}/cmdline", server.0.id())).unwrap();
    let argv = String::from_utf8_lossy(&argv).replace('\0', " ");
    assert!(argv.starts_with("redis-server "), "{argv}");
    for password in passwords.iter().map(|(_, p)| *p).chain([pod_password]) {
        assert!(
            !argv.contains(password),
            "a password on the command line: {argv}"
        );
    }
    // No plaintext: the same port without TLS gets no answer.
    assert_eq!(cli(app, false, &["ping"]), "");
    // `default` is off; each user has its rules; the replica's masterauth is the password as is.
    assert!(cli(None, true, &["get", "k"]).starts_with("NOAUTH"));
    assert_eq!(
        cli(app, true, &["set", "k", "v"]),
        "CLUSTERDOWN Hash slot not served"
    );
    let bootstrap = Some(passwords[1]);
    assert_eq!(cli(bootstrap, true, &["cluster", "myid"]).len(), 40);
    assert!(cli(bootstrap, true, &["get", "k"]).starts_with("NOPERM"));
    assert!(cli(bootstrap, true, &["config", "get", "maxmemory"]).starts_with("NOPERM"));
    let replication = Some(passwords[2]);
    assert!(cli(replication, true, &["cluster", "nodes"]).starts_with("NOPERM"));
    assert_eq!(
        cli(app, true, &["config", "get", "maxmemory"])
            .lines()
            .count(),
        1,
        "app runs no CONFIG"
    );
    let pod_user = Some(("pod", pod_password));
    assert_eq!(
        cli(pod_user, true, &["config", "get", "masterauth"]),
        format!("masterauth\n{}", passwords[2].1)
    );
    // Only what `watch` sends: no key, no cluster command.
    assert!(cli(pod_user, true, &["get", "k"]).starts_with("NOPERM"));
    assert!(cli(pod_user, true, &["cluster", "myid"]).starts_with("NOPERM"));

    // The liveness probe, pointed at this address.
    let probe = redis
        .liveness_probe
        .clone()
        .unwrap()
        .exec
        .unwrap()
        .command
        .unwrap();
    let alive = Command::new(&probe[0])
        .args(
            probe[1..]
                .iter()
                .map(|s| files.localize(s).replace("127.0.0.1", ip)),
        )
        .env("REDISCLI_TLS_ARGS", &tls_args)
        .env(
            "CLI_BINARY",
            env(redis, "CLI_BINARY").unwrap().value.clone().unwrap(),
        )
        .env_remove("REDISCLI_AUTH")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(alive.success(), "the liveness probe fails");

    // The readiness probe is the bootstrap's `ready`, with the container's BOOTSTRAP_* variables
    // (`bootstrap` with its key's file, TLS checking the pod's DNS name): ready with them, not
    // without the user. The pod's name resolves to this address, as the headless Service does.
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
    let ready = |with_user: bool| {
        let mut c2 = Command::new(files.localize(&readiness[0]));
        c2.arg("ready").env_clear();
        for var in redis.env.iter().flatten() {
            match (&var.value, var.name.as_str()) {
                (_, "BOOTSTRAP_USERNAME" | "BOOTSTRAP_PASSWORD_FILE") if !with_user => {}
                (Some(value), name) if name.starts_with("BOOTSTRAP_") => {
                    c2.env(name, files.localize(value));
                }
                _ => {}
            }
        }
        c2.env("BOOTSTRAP_NODES", format!("{pod_name}:6379"))
            .env("BOOTSTRAP_DNS_SERVER", dns.addr.to_string());
        c2.output().unwrap()
    };
    let with = ready(true);
    assert!(with.status.success(), "not ready as bootstrap: {with:?}");
    let without = ready(false);
    assert!(
        !without.status.success(),
        "ready without a user: {without:?}"
    );
}

/// The startup stops before Redis starts, saying what to fix, when a user has rules but no
/// password (its key missing from the Secret), or when a rules file sets a password.
#[test]
fn production_startup_stops_on_a_user_without_a_password_or_a_password_in_the_rules() {
    let docs = render(PRODUCTION);
    let redis = container(&pod_of_statefulset(&docs), "redis").clone();
    let missing = Mounted::new(
        &docs,
        &[("app", "a"), ("bootstrap", "b"), ("exporter", "e")],
    );
    let output = missing.command(&redis, "127.0.0.1").output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("add the key \"replication\" to the Secret redis-users"),
        "{stderr}"
    );
    let in_rules = Mounted::new(
        &docs,
        &[
            ("app", "a"),
            ("bootstrap", "b"),
            ("exporter", "e"),
            ("replication", "r"),
        ],
    );
    std::fs::write(
        in_rules.dir("etc-redis-acl").join("app"),
        "on >secret +@all\n",
    )
    .unwrap();
    let output = in_rules.command(&redis, "127.0.0.1").output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("passwords come from the Secret redis-users only"),
        "{stderr}"
    );
}
