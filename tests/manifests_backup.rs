//! `components/backup` as `overlays/backup` renders it (production plus backups): the nightly
//! backup and the restore template are restricted pods of the bootstrap's image and
//! ServiceAccount, never two at once, failing at once on exit 2 and 3; each logs in as its own
//! ACL user over TLS; the restore never runs by itself; the binary accepts their environment.

mod kustomize;

use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::Container;
use kustomize::render;
use redis_cluster_bootstrap::config::Settings;

fn cron_job(name: &str) -> CronJob {
    let docs = render("overlays/backup");
    let doc = docs
        .into_iter()
        .find(|d| d["kind"] == "CronJob" && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no CronJob {name}"));
    serde_json::from_value(doc).unwrap()
}

fn container(cron: &CronJob) -> Container {
    let pod = cron
        .spec
        .as_ref()
        .unwrap()
        .job_template
        .spec
        .as_ref()
        .unwrap();
    pod.template.spec.as_ref().unwrap().containers[0].clone()
}

fn value(c: &Container, name: &str) -> Option<String> {
    c.env
        .as_ref()?
        .iter()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
}

fn secret_key(c: &Container, name: &str) -> Option<(String, String)> {
    let var = c.env.as_ref()?.iter().find(|e| e.name == name)?;
    let key = var.value_from.as_ref()?.secret_key_ref.as_ref()?;
    Some((key.name.clone(), key.key.clone()))
}

#[test]
fn the_backup_and_the_restore_run_as_their_own_users_and_fail_fast_on_2_and_3() {
    for (name, suspended) in [
        ("redis-cluster-backup", false),
        ("redis-cluster-restore", true),
    ] {
        let cron = cron_job(name);
        let spec = cron.spec.as_ref().unwrap();
        assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"), "{name}");
        assert_eq!(spec.suspend.unwrap_or(false), suspended, "{name}");
        let job = spec.job_template.spec.as_ref().unwrap();
        let rules = &job.pod_failure_policy.as_ref().unwrap().rules;
        let fail = rules.iter().find(|r| r.action == "FailJob").unwrap();
        assert_eq!(
            fail.on_exit_codes.as_ref().unwrap().values,
            vec![2, 3],
            "{name}"
        );
        let pod = job.template.spec.as_ref().unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(
            pod.service_account_name.as_deref(),
            Some("redis-cluster-bootstrap")
        );
        let security = pod.security_context.as_ref().unwrap();
        assert_eq!(security.run_as_non_root, Some(true), "{name}");
        let c = container(&cron);
        let own = c.security_context.as_ref().unwrap();
        assert_eq!(own.read_only_root_filesystem, Some(true), "{name}");
        assert_eq!(own.allow_privilege_escalation, Some(false), "{name}");
        // The job: `backup` or `restore`, as its own ACL user, its password the Secret's key of
        // that name read as a file (only that key mounted), no variable set from a Secret.
        let user = name.trim_start_matches("redis-cluster-");
        assert_eq!(c.args.clone().unwrap(), vec![user.to_string()]);
        assert_eq!(value(&c, "BOOTSTRAP_USERNAME").as_deref(), Some(user));
        let file = value(&c, "BOOTSTRAP_PASSWORD_FILE").unwrap();
        assert_eq!(file, format!("/etc/redis-users/{user}"));
        assert!(
            c.env
                .iter()
                .flatten()
                .all(|v| { secret_key(&c, &v.name).is_none() && !v.name.ends_with("_PASSWORD") }),
            "{name}"
        );
        let mount = c
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| file.starts_with(&format!("{}/", m.mount_path)))
            .unwrap();
        assert_eq!(mount.read_only, Some(true), "{name}");
        let volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == mount.name)
            .unwrap();
        let secret = volume.secret.as_ref().unwrap();
        assert_eq!(secret.secret_name.as_deref(), Some("redis-users"));
        assert_eq!(secret.default_mode, Some(0o440), "{name}");
        let items = secret.items.clone().unwrap();
        assert_eq!(items.len(), 1, "{name}: only its own key");
        assert_eq!(
            (items[0].key.as_str(), items[0].path.as_str()),
            (user, user)
        );
        // Readable by the container's group (the pod's fsGroup), mode 0440.
        assert_eq!(security.fs_group, Some(65532), "{name}");
        assert_eq!(
            value(&c, "BOOTSTRAP_TLS_CA_FILE").as_deref(),
            Some("/etc/redis-tls/ca.crt")
        );
        assert!(
            value(&c, "BOOTSTRAP_BACKUP_URL")
                .unwrap()
                .starts_with("s3://"),
            "{name}"
        );
        // The binary takes this environment as it is (the TLS files are read at startup only).
        let vars: Vec<(String, String)> = c
            .env
            .clone()
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.value.unwrap_or_else(|| "infra".into())))
            .collect();
        let settings = Settings::from_vars(vars).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(settings.statefulset, "redis-app");
        assert_eq!(settings.service, "redis-service");
        // The storage's credentials come from their own Secret, never from the repository.
        let from = c.env_from.clone().unwrap();
        assert_eq!(
            from[0].secret_ref.as_ref().unwrap().name,
            "redis-backup-storage"
        );
    }
    let nightly = cron_job("redis-cluster-backup");
    assert_eq!(nightly.spec.unwrap().schedule, "0 2 * * *");
    assert_eq!(
        value(
            &container(&cron_job("redis-cluster-backup")),
            "BOOTSTRAP_BACKUP_KEEP"
        )
        .as_deref(),
        Some("7")
    );
}
