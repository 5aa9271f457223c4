//! The one-off run (`scripts/run-once.sh`): the bootstrap run now, by hand, for "run it now", a
//! scale-out or a drain, as a Job of its own rather than a child of the CronJob.
//!
//! The script's `--print` output, for every kustomization a user can apply, parsed into
//! k8s-openapi's Job: no owner, a generated name, the one-shot Job's pod (image, ServiceAccount,
//! Secrets), a budget that fits a drain of a loaded cluster, and the variables given. The README's
//! and docs' recipes use it and never `kubectl create job --from=cronjob`. Strict schema validation
//! of the same output is in tests/manifest_schemas.rs.
//!
//! Needs `kubectl` (kustomize is built in), as the script does.

mod kustomize;

use std::process::{Command, Output};
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use redis_cluster_bootstrap::config::Settings;
use serde::de::DeserializeOwned;

/// Every kustomization a user can deploy.
const ALL: [&str; 5] = [
    ".",
    "manifests",
    "overlays/dev",
    "overlays/production",
    "overlays/valkey",
];

/// How long the keys of one drained master may take to move on a loaded cluster. docs/benchmark.md
/// moved 250,057 keys from three masters at once in 2.4 s (16 B values) and 3.6 s (1 KB): per
/// source about 35,000 keys/s or 24 MB/s, and a drained master's slots leave one group at a time.
/// A full production master (maxmemory 1536 MB) is then about 1 min of 1 KB values, or about
/// 10 min of ~20 million 16 B keys; three times slower for a real network and a busy cluster.
const DRAIN: Duration = Duration::from_secs(30 * 60);

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

/// The one object of type `K` that `kubectl kustomize DIR` renders, if any.
fn rendered<K: k8s_openapi::Resource + DeserializeOwned>(dir: &str) -> Option<K> {
    let mut found = kustomize::render(dir)
        .into_iter()
        .filter(|doc| doc["kind"] == K::KIND)
        .map(|doc| serde_json::from_value::<K>(doc).unwrap());
    let one = found.next();
    assert!(found.next().is_none(), "{dir}: more than one {}", K::KIND);
    one
}

/// The bootstrap container's environment as the binary reads it (a Secret's value stands in).
fn settings(job: &Job) -> Settings {
    let pod = job.spec.clone().unwrap().template.spec.unwrap();
    let bootstrap = pod
        .containers
        .iter()
        .find(|c| c.name == "bootstrap")
        .unwrap();
    let vars = bootstrap.env.clone().unwrap().into_iter().map(|var| {
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
        if let Some(cron) = rendered::<CronJob>(dir) {
            let scheduled = cron.spec.unwrap().job_template.spec.unwrap();
            let longest = Duration::from_secs(scheduled.active_deadline_seconds.unwrap() as u64);
            assert!(
                settings.ready_timeout > longest,
                "{dir}: a scheduled run may hold the Lease for {longest:?}"
            );
        }
        assert!(
            spec.ttl_seconds_after_finished.unwrap() >= 24 * 3600,
            "{dir}: its log is kept"
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

/// A wrong argument is refused with one line naming it, exit 2, and nothing is rendered or
/// created.
#[test]
fn a_bad_argument_is_one_line_and_exit_2() {
    for (args, named) in [
        (vec!["--print", ".", "DRAIN_TO=6"], "DRAIN_TO=6"),
        (vec!["--print", ".", "BOOTSTRAP_drain=6"], "BOOTSTRAP_drain"),
        (vec!["--print", "overlays/nowhere"], "overlays/nowhere"),
        (vec!["--print"], "usage"),
    ] {
        let output = run_once(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(named), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

/// Every recipe that runs the bootstrap by hand uses the one-off run, none makes a child of the
/// CronJob, and every `kubectl wait` on a one-off waits at least as long as its deadline.
#[test]
fn the_recipes_run_the_one_off_and_wait_as_long_as_it_may_take() {
    let repo = kustomize::repo();
    let mut files = vec![repo.join("README.md")];
    for dir in ["docs", "components/self-healing", "manifests", "overlays"] {
        let mut stack = vec![repo.join(dir)];
        while let Some(path) = stack.pop() {
            if path.is_dir() {
                stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            } else if path.extension().is_some_and(|e| e == "md" || e == "yaml") {
                files.push(path);
            }
        }
    }
    let deadline = one_off(".", &[])
        .spec
        .unwrap()
        .active_deadline_seconds
        .unwrap() as u64;
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
        for line in text.lines().filter(|l| l.contains("scripts/run-once.sh")) {
            recipes.push(format!("{name}: {line}"));
        }
        for line in text
            .lines()
            .filter(|l| l.contains("kubectl") && l.contains(" wait ") && l.contains("\"$job\""))
        {
            let timeout = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("--timeout="))
                .unwrap_or_else(|| panic!("{name}: no --timeout in {line}"));
            let timeout = humantime::parse_duration(timeout).unwrap();
            assert!(
                timeout.as_secs() >= deadline,
                "{name}: {line}: waits less than the one-off's {deadline} s deadline"
            );
        }
    }
    for (file, what) in [
        ("README.md", "run it now"),
        ("docs/day2.md", "run it now"),
        ("docs/deploy.md", "a scale-out"),
        ("docs/deploy.md", "a drain"),
    ] {
        assert!(
            recipes.iter().any(|r| r.starts_with(&format!("{file}: "))),
            "{file} has no recipe for {what} with scripts/run-once.sh: {recipes:#?}"
        );
    }
    assert!(
        recipes
            .iter()
            .any(|r| r.starts_with("docs/deploy.md: ") && r.contains("BOOTSTRAP_DRAIN_TO=")),
        "the drain recipe passes its target to the one-off: {recipes:#?}"
    );
}
