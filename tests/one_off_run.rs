//! The one-off run (`scripts/run-once.sh`): the bootstrap run now, by hand, for "run it now", a
//! scale-out or a drain, and a backup now or a restore (`... backup`, `... restore`), each as a
//! Job of its own rather than a child of a CronJob.
//!
//! The script's `--print` output, for every kustomization a user can apply, parsed into
//! k8s-openapi's Job: no owner, a generated name, the one-shot Job's pod (image, ServiceAccount,
//! Secrets) or the backup's and the restore's Job template, a budget that fits a drain of a loaded
//! cluster or the backup and restore of a large one, and the variables given. The README's and
//! docs' recipes use it, never `kubectl create job --from=cronjob`, and wait as long as the Job
//! may run. Strict schema validation of the same output is in tests/manifest_schemas.rs.
//!
//! Needs `kubectl` (kustomize is built in), as the script does.

mod kustomize;

use std::process::{Command, Output};
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Container;
use redis_cluster_bootstrap::config::Settings;
use serde::de::DeserializeOwned;

/// Every kustomization a user can deploy.
const ALL: [&str; 6] = [
    ".",
    "manifests",
    "overlays/dev",
    "overlays/production",
    "overlays/valkey",
    "overlays/backup",
];

/// The kustomization with backups (components/backup).
const BACKUPS: &str = "overlays/backup";

/// How long the keys of one drained master may take to move on a loaded cluster. docs/benchmark.md
/// moved 250,057 keys from three masters at once in 2.4 s (16 B values) and 3.6 s (1 KB): per
/// source about 35,000 keys/s or 24 MB/s, and a drained master's slots leave one group at a time.
/// A full production master (maxmemory 1536 MB) is then about 1 min of 1 KB values, or about
/// 10 min of ~20 million 16 B keys; three times slower for a real network and a busy cluster.
const DRAIN: Duration = Duration::from_secs(30 * 60);

/// The keys of a large cluster: 100 full production masters (maxmemory 1536 MB, about 20 million
/// 16 B keys each, as for [`DRAIN`]).
const LARGE_CLUSTER_KEYS: u64 = 100 * 20_000_000;

/// How long a backup of the large cluster may take: docs/benchmark.md backed up 1,000,000 keys in
/// 0.65 s; three times slower for a real network and a busy cluster: about 65 minutes.
const BACKUP: Duration = Duration::from_secs(LARGE_CLUSTER_KEYS * 650 * 3 / 1_000_000_000);

/// How long a restore of the large cluster may take: docs/benchmark.md restored 238,836 keys/s;
/// three times slower: about 7 hours.
const RESTORE: Duration = Duration::from_secs(LARGE_CLUSTER_KEYS / (238_836 / 3));

/// `scripts/run-once.sh ARGS` from the repository's root.
fn run_once(args: &[&str]) -> Output {
    Command::new("scripts/run-once.sh")
        .args(args)
        .current_dir(kustomize::repo())
        .output()
        .expect("scripts/run-once.sh runs")
}

/// The Job `scripts/run-once.sh --print DIR VARS...` would create.
fn one_off(dir: &str, vars: &[&str]) -> Job {
    let mut args = vec!["--print", dir];
    args.extend_from_slice(vars);
    let output = run_once(&args);
    assert!(
        output.status.success(),
        "run-once.sh --print {dir}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_yaml_ng::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{dir}: the one-off Job does not parse: {e}"))
}

/// The objects of type `K` that `kubectl kustomize DIR` renders.
fn rendered_all<K: k8s_openapi::Resource + DeserializeOwned>(dir: &str) -> Vec<K> {
    kustomize::render(dir)
        .into_iter()
        .filter(|doc| doc["kind"] == K::KIND)
        .map(|doc| serde_json::from_value::<K>(doc).unwrap())
        .collect()
}

/// The one object of type `K` that `kubectl kustomize DIR` renders, if any.
fn rendered<K: k8s_openapi::Resource + DeserializeOwned>(dir: &str) -> Option<K> {
    let mut found = rendered_all::<K>(dir).into_iter();
    let one = found.next();
    assert!(found.next().is_none(), "{dir}: more than one {}", K::KIND);
    one
}

/// The CronJob `name` that `kubectl kustomize DIR` renders, if any.
fn cron_job(dir: &str, name: &str) -> Option<CronJob> {
    rendered_all::<CronJob>(dir)
        .into_iter()
        .find(|c| c.metadata.name.as_deref() == Some(name))
}

/// The container of the one-off's pod (`bootstrap`, `backup` or `restore`), which runs the
/// binary.
fn container(job: &Job) -> Container {
    let pod = job.spec.clone().unwrap().template.spec.unwrap();
    assert_eq!(pod.containers.len(), 1, "{pod:?}");
    pod.containers[0].clone()
}

/// The binary's container's environment as the binary reads it (a Secret's value stands in).
fn settings(job: &Job) -> Settings {
    let vars = container(job).env.unwrap().into_iter().map(|var| {
        let value = match var.value {
            Some(value) => value,
            None if var.value_from.as_ref().unwrap().field_ref.is_some() => "infra".into(),
            None => "from-a-secret".into(),
        };
        (var.name, value)
    });
    Settings::from_vars(vars).expect("the binary accepts the one-off's environment")
}

/// No owner (not the CronJob's child: no UnexpectedJob, not in its history), a name generated
/// from the Job's so that every run is a new Job (`kubectl create`), in the Job's namespace, and
/// exactly the one-shot Job's spec: the same pod, image, ServiceAccount and Secrets as the install.
#[test]
fn the_one_off_is_the_jobs_pod_under_a_generated_name_with_no_owner() {
    for dir in ALL {
        let job: Job = rendered(dir).unwrap();
        let one_off = one_off(dir, &[]);
        let meta = &one_off.metadata;
        assert!(meta.owner_references.is_none(), "{dir}");
        assert_eq!(meta.name, None, "{dir}: a fixed name can run only once");
        assert_eq!(
            meta.generate_name,
            Some(format!("{}-run-", job.metadata.name.as_ref().unwrap())),
            "{dir}"
        );
        // The API server appends 5 characters; the Job controller labels the pods with the whole
        // name, and a label value holds at most 63.
        assert!(
            meta.generate_name.as_ref().unwrap().len() + 5 <= 63,
            "{dir}"
        );
        assert_eq!(meta.namespace, job.metadata.namespace, "{dir}");
        assert_eq!(meta.labels, job.metadata.labels, "{dir}");
        assert_eq!(one_off.spec, job.spec, "{dir}");
    }
}

/// The one-off's budget fits a drain of a loaded cluster, where the scheduled run's (55 s, no
/// retry) kills it: each attempt may wait for the Lease, drain a full master and converge within
/// the deadline; it outwaits a scheduled run that holds the Lease; a stopped drain is resumed by
/// a retry; and the cluster gets the one-shot Job's time to agree.
#[test]
fn the_one_off_has_a_budget_fit_for_a_drain_of_a_loaded_cluster() {
    for dir in ALL {
        let one_off = one_off(dir, &[]);
        let spec = one_off.spec.as_ref().unwrap();
        let settings = settings(&one_off);
        let deadline = Duration::from_secs(spec.active_deadline_seconds.unwrap() as u64);
        let attempt = settings.ready_timeout + DRAIN + settings.converge_timeout;
        assert!(deadline >= attempt, "{dir}: {deadline:?} < {attempt:?}");
        assert!(spec.backoff_limit.unwrap() >= 1, "{dir}: no retry");
        assert!(
            settings.converge_timeout >= Duration::from_secs(60),
            "{dir}: a re-mesh at N = 100 converged in 22-26 s"
        );
        outwaits_a_scheduled_run(dir, &settings);
        assert!(
            spec.ttl_seconds_after_finished.unwrap() >= 24 * 3600,
            "{dir}: its log is kept"
        );
    }
}

/// A one-off waits for the Lease longer than a scheduled heal run may hold it.
fn outwaits_a_scheduled_run(dir: &str, settings: &Settings) {
    if let Some(cron) = cron_job(dir, "redis-cluster-heal") {
        let scheduled = cron.spec.unwrap().job_template.spec.unwrap();
        let longest = Duration::from_secs(scheduled.active_deadline_seconds.unwrap() as u64);
        assert!(
            settings.ready_timeout > longest,
            "{dir}: a scheduled run may hold the Lease for {longest:?}"
        );
    }
}

/// `run-once.sh DIR backup|restore` is its CronJob's Job template as a Job of its own: no owner,
/// a generated name from the CronJob's, the CronJob's namespace, the template's labels and
/// exactly its spec (the pod, image, ServiceAccount, user, TLS and storage of the install), its
/// container running the command; the restore's template is never scheduled.
#[test]
fn the_backup_and_the_restore_one_offs_are_their_templates_under_a_generated_name() {
    for (what, name) in [
        ("backup", "redis-cluster-backup"),
        ("restore", "redis-cluster-restore"),
    ] {
        let cron = cron_job(BACKUPS, name).unwrap();
        let template = cron.spec.clone().unwrap().job_template;
        let one_off = one_off(BACKUPS, &[what]);
        let meta = &one_off.metadata;
        assert!(meta.owner_references.is_none(), "{what}");
        assert_eq!(meta.name, None, "{what}");
        assert_eq!(
            meta.generate_name.as_deref(),
            Some(&*format!("{name}-run-"))
        );
        assert!(
            meta.generate_name.as_ref().unwrap().len() + 5 <= 63,
            "{what}"
        );
        assert_eq!(meta.namespace, cron.metadata.namespace, "{what}");
        assert_eq!(meta.namespace.as_deref(), Some("infra"), "{what}");
        assert_eq!(meta.labels, template.metadata.unwrap().labels, "{what}");
        assert_eq!(one_off.spec, template.spec, "{what}");
        let container = container(&one_off);
        assert_eq!(container.name, what);
        assert_eq!(container.args, Some(vec![what.to_string()]));
        assert!(settings(&one_off).backup_url.is_some(), "{what}");
    }
    let restore = cron_job(BACKUPS, "redis-cluster-restore").unwrap();
    assert_eq!(restore.spec.unwrap().suspend, Some(true));
}

/// The backup and the restore one-offs have the time a large cluster takes (100 full production
/// masters at a third of the measured speed) besides the wait for the pods and the Lease, which
/// outwaits a scheduled heal run; a retry (the restore resumes where it stopped); and a log kept.
#[test]
fn the_backup_and_the_restore_one_offs_have_a_budget_fit_for_a_large_cluster() {
    for (what, work) in [("backup", BACKUP), ("restore", RESTORE)] {
        let one_off = one_off(BACKUPS, &[what]);
        let spec = one_off.spec.as_ref().unwrap();
        let settings = settings(&one_off);
        let deadline = Duration::from_secs(spec.active_deadline_seconds.unwrap() as u64);
        let attempt = settings.ready_timeout + work;
        assert!(deadline >= attempt, "{what}: {deadline:?} < {attempt:?}");
        assert!(spec.backoff_limit.unwrap() >= 1, "{what}: no retry");
        outwaits_a_scheduled_run(BACKUPS, &settings);
        assert!(
            spec.ttl_seconds_after_finished.unwrap() >= 24 * 3600,
            "{what}: its log is kept"
        );
    }
}

/// Variables given to the script reach the bootstrap container: a new one is added, one the Job
/// already sets is replaced (not doubled); the binary accepts the result.
#[test]
fn the_variables_given_reach_the_bootstrap_container() {
    let one_off = one_off(
        "overlays/production",
        &["BOOTSTRAP_DRAIN_TO=6", "BOOTSTRAP_CONVERGE_TIMEOUT=5m"],
    );
    let settings = settings(&one_off);
    assert_eq!(settings.drain_to, Some(6));
    assert_eq!(settings.converge_timeout, Duration::from_secs(300));
    let pod = one_off.spec.unwrap().template.spec.unwrap();
    let names: Vec<String> = pod.containers[0]
        .env
        .iter()
        .flatten()
        .map(|v| v.name.clone())
        .collect();
    let converge = names
        .iter()
        .filter(|n| *n == "BOOTSTRAP_CONVERGE_TIMEOUT")
        .count();
    assert_eq!(converge, 1, "{names:?}");
    // The rest of the install is kept: the password from its Secret, TLS, placement.
    assert!(settings.credentials.is_some() && settings.tls_files.is_some());
    assert!(settings.read_nodes);
}

/// A variable given to the restore one-off reaches the restore container, replacing the
/// template's (another backup than the one it names), and the rest of the install is kept: the
/// restore user's password, TLS.
#[test]
fn the_variables_given_reach_the_restore_container() {
    let url = "s3://redis-backups/infra/redis-app/20261207T020000.123Z";
    let restore = one_off(
        BACKUPS,
        &["restore", &format!("BOOTSTRAP_BACKUP_URL={url}")],
    );
    let settings = settings(&restore);
    assert_eq!(settings.backup_url.unwrap().to_string(), url);
    assert!(settings.credentials.is_some() && settings.tls_files.is_some());
    let names: Vec<String> = container(&restore)
        .env
        .iter()
        .flatten()
        .map(|v| v.name.clone())
        .collect();
    let urls = names
        .iter()
        .filter(|n| *n == "BOOTSTRAP_BACKUP_URL")
        .count();
    assert_eq!(urls, 1, "{names:?}");
}

/// A wrong argument is refused with one line naming it, exit 2, and nothing is rendered or
/// created.
#[test]
fn a_bad_argument_is_one_line_and_exit_2() {
    for (args, named) in [
        (vec!["--print", ".", "DRAIN_TO=6"], "DRAIN_TO=6"),
        (vec!["--print", ".", "BOOTSTRAP_drain=6"], "BOOTSTRAP_drain"),
        (vec!["--print", "overlays/nowhere"], "overlays/nowhere"),
        (vec!["--print"], "usage"),
        // Only the bootstrap, backup and restore: the heal CronJob's template is the 55 s run.
        (
            vec!["--print", "overlays/production", "self-healing"],
            "self-healing",
        ),
        (
            vec!["--print", "overlays/production", "restore"],
            "components/backup",
        ),
    ] {
        let output = run_once(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(named), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

/// Every recipe that runs a job by hand uses the one-off run, none makes a child of a CronJob,
/// and every `kubectl wait` on a one-off waits at least as long as that one-off's deadline (the
/// bootstrap's, the backup's or the restore's, by the `run-once.sh` line before it).
#[test]
fn the_recipes_run_the_one_off_and_wait_as_long_as_it_may_take() {
    let repo = kustomize::repo();
    let mut files = vec![repo.join("README.md")];
    for dir in ["docs", "components", "manifests", "overlays"] {
        let mut stack = vec![repo.join(dir)];
        while let Some(path) = stack.pop() {
            if path.is_dir() {
                stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            } else if path.extension().is_some_and(|e| e == "md" || e == "yaml") {
                files.push(path);
            }
        }
    }
    let deadline = |job: Job| job.spec.unwrap().active_deadline_seconds.unwrap() as u64;
    let deadlines = [
        ("bootstrap", deadline(one_off(".", &[]))),
        ("backup", deadline(one_off(BACKUPS, &["backup"]))),
        ("restore", deadline(one_off(BACKUPS, &["restore"]))),
    ];
    let mut recipes = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let name = path.strip_prefix(&repo).unwrap().display().to_string();
        // A command, in a code block or a YAML comment; prose may still say why not.
        let child = text.lines().find(|l| {
            let command = l.trim_start_matches(|c: char| c == '#' || c.is_whitespace());
            command.starts_with("kubectl") && command.contains("--from=cronjob")
        });
        assert!(
            child.is_none(),
            "{name}: {child:?}: a Job created --from=cronjob is the CronJob's child, with its 55 s \
             deadline"
        );
        // The one-off the lines below wait for: the last `run-once.sh` above them.
        let mut made = deadlines[0];
        for line in text.lines() {
            if let Some(args) = line.split("scripts/run-once.sh").nth(1) {
                recipes.push(format!("{name}: {line}"));
                let what = args
                    .split(|c: char| c.is_whitespace() || c == ')' || c == '`')
                    .filter(|w| !w.is_empty() && *w != "--print")
                    .nth(1);
                made = *deadlines
                    .iter()
                    .find(|(w, _)| Some(*w) == what)
                    .unwrap_or(&deadlines[0]);
            }
            if line.contains("kubectl") && line.contains(" wait ") && line.contains("\"$job\"") {
                let timeout = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("--timeout="))
                    .unwrap_or_else(|| panic!("{name}: no --timeout in {line}"));
                let timeout = humantime::parse_duration(timeout).unwrap();
                assert!(
                    timeout.as_secs() >= made.1,
                    "{name}: {line}: waits less than the {} one-off's {} s deadline",
                    made.0,
                    made.1
                );
            }
        }
    }
    for (file, what, args) in [
        ("README.md", "run it now", ""),
        ("docs/day2.md", "run it now", ""),
        ("docs/deploy.md", "a scale-out", ""),
        ("docs/deploy.md", "a drain", "BOOTSTRAP_DRAIN_TO="),
        ("README.md", "a restore", " restore"),
        ("docs/backup.md", "a restore", " restore"),
        (
            "docs/backup.md",
            "another backup restored",
            " restore BOOTSTRAP_BACKUP_URL=",
        ),
        ("docs/backup.md", "a backup now", " backup"),
    ] {
        assert!(
            recipes
                .iter()
                .any(|r| r.starts_with(&format!("{file}: ")) && r.contains(args)),
            "{file} has no recipe for {what} with scripts/run-once.sh ...{args}: {recipes:#?}"
        );
    }
}
