//! `backup` and `restore` on real nodes: one source cluster (3 masters, 3 replicas) holding every
//! data type, with and without TTLs, large values, functions, and a client writing a numbered
//! sequence across every slot range while the backup runs; its backup restored into clusters of
//! 3, 2, 4 and 6 masters (one from a real S3 server, SeaweedFS), each compared key by key; a
//! restore SIGKILLed mid-way and run again; every refusal (a target with keys, a target with a
//! slot moving, a source not formed, a missing and a corrupt file) clear and writing nothing;
//! the write pause as the masters measured it. In Kubernetes mode (the fake API server and DNS of
//! `tests/fake_api` and `tests/dns`, real HTTP and a real kubeconfig): the backup waits while
//! another run holds the bootstrap's Lease and starts once it is released, and the backup and the
//! restore each record their Event on the StatefulSet, a refusal its Warning.
//! `tests/backup_secure.rs` does the same over TLS with the ACL users, and from Redis 7.0 into
//! Valkey 8.
//!
//! Addresses: `127.30.1.0/24` (the S3 server on .1), the source on `127.30.2.0/24` (its API server
//! and DNS on .1), the targets on `127.30.3-7.0/24` (the API server and DNS of the 4-master one on
//! `127.30.5.1`).

mod common;
mod dns;
mod fake_api;
mod s3;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use dns::FakeDns;
use fake_api::{FakeApi, Stage};

/// Plain keys spread over every slot (enough for a restore to be SIGKILLed in the middle).
const FILL: usize = 60_000;

#[test]
fn backup_is_one_cut_and_restores_into_any_shape() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s3_dir = tempfile::tempdir().unwrap();
    let (s3, (source, targets)) = std::thread::scope(|s| {
        let s3 = s.spawn(|| s3::Server::start("127.30.1.1", s3_dir.path()));
        let clusters = s.spawn(|| {
            let source = start_at(2, 6, &Options::default());
            let targets: Vec<Vec<RedisNode>> = [(3, 3), (4, 2), (5, 4), (6, 6), (7, 3)]
                .iter()
                .map(|&(block, n)| start_at(block, n, &Options::default()))
                .collect();
            (source, targets)
        });
        (s3.join().unwrap(), clusters.join().unwrap())
    });
    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().display().to_string();
    // The source's pods in namespace infra, the 4-master target's in namespace restored.
    let source_pods = Pods::start(2, "infra", &source);
    let four_pods = Pods::start(5, "restored", &targets[2]);

    // A source that is not formed yet: refused, nothing written, a Warning on the StatefulSet.
    let refused = source_pods.run("backup", &dir, "redis-cluster-backup-29170-f4k2q");
    assert_eq!(refused.code, 3, "{refused:?}");
    assert!(
        refused.stderr.contains("not formed and agreed"),
        "{refused:?}"
    );
    assert_eq!(std::fs::read_dir(backups.path()).unwrap().count(), 0);
    let events = source_pods.api.events();
    assert_eq!(events.len(), 1, "{events:#?}");
    let note = source_pods.assert_event(&events[0], "Warning", "Refused", "Backup");
    assert!(
        note.starts_with("refused:") && note.contains("not formed"),
        "{note}"
    );
    assert_eq!(source_pods.api.lease_holders().last(), Some(&None));

    let formed = run_static(&source);
    assert_eq!(formed.code, 0, "{formed:?}");
    fill(&source, FILL);
    rt.block_on(write_every_type(&source));
    wait_replicated(&source);

    // The backup, while a client writes seq:0, seq:1, ... one after the other.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let writer = rt.spawn(sequence(
        source.iter().map(|n| n.addr).collect(),
        stop.clone(),
        written.clone(),
    ));
    wait_until("the writer to start", Duration::from_secs(20), || {
        written.load(Ordering::Relaxed) >= 200
    });
    // In Kubernetes mode, while a scheduled bootstrap run holds the Lease: the backup waits,
    // sending nothing to the nodes, and starts once the Lease is released.
    let lease = "redis-app-bootstrap";
    source_pods
        .api
        .hold_lease(lease, "redis-cluster-heal-29170-x7k2p_0a1b2c3d");
    let psyncs = calls(&source, "psync");
    let mut child = source_pods
        .command("backup", &dir, "redis-cluster-backup-29170-b8m4t")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
    let mut stderr = Vec::new();
    for line in log.by_ref() {
        let line = line.unwrap();
        let waiting = line.contains("another run holds the lease; waiting for it");
        stderr.push(line);
        if waiting {
            break;
        }
    }
    assert_eq!(calls(&source, "psync"), psyncs, "{stderr:#?}");
    assert_eq!(std::fs::read_dir(backups.path()).unwrap().count(), 0);
    source_pods.api.release_lease(lease);
    stderr.extend(log.map(Result::unwrap));
    let output = child.wait_with_output().unwrap();
    let backup = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: stderr.join("\n"),
    };
    stop.store(true, Ordering::Relaxed);
    rt.block_on(writer).unwrap();
    assert_eq!(backup.code, 0, "{backup:?}");
    assert!(backup.stderr.contains("holding the lease"), "{backup:?}");
    assert!(backup.stderr.contains("released the lease"), "{backup:?}");
    // One replication connection to each of the 3 masters.
    assert_eq!(calls(&source, "psync"), psyncs + 3);
    let holders = source_pods.api.lease_holders();
    let (held, released) = (&holders[holders.len() - 2], &holders[holders.len() - 1]);
    assert!(
        held.as_deref()
            .unwrap()
            .starts_with("redis-cluster-backup-29170-b8m4t_"),
        "{holders:?}"
    );
    assert_eq!(released, &None, "{holders:?}");
    let url = backup_url(&backup);
    let events = source_pods.api.events();
    assert_eq!(events.len(), 2, "{events:#?}");
    let note = source_pods.assert_event(&events[1], "Normal", "BackedUp", "Backup");
    assert!(
        note.starts_with("outcome=backed-up keys=") && note.ends_with(&format!("backup={url}")),
        "{note}"
    );
    let manifest = manifest(Path::new(&url));
    let pause_us = manifest["pause_us"].as_u64().unwrap();
    println!("write pause measured on the masters: {pause_us} µs");
    // The tool bounds it: a cut whose pause reached its 1000 ms timeout is made again.
    assert!(pause_us < 1_000_000, "{manifest}");
    assert_eq!(manifest["shards"].as_array().unwrap().len(), 3);

    // The same data to S3.
    let on_s3 = run(&source, "backup", "s3://backups/redis/source", &s3.env());
    assert_eq!(on_s3.code, 0, "{on_s3:?}");
    let s3_url = backup_url(&on_s3);
    assert!(
        s3_url.starts_with("s3://backups/redis/source/"),
        "{on_s3:?}"
    );

    // Retention: keeping 1, the next backup deletes the one before it, once it is complete.
    let mut keep_one = s3.env();
    keep_one.push(("BOOTSTRAP_BACKUP_KEEP".into(), "1".into()));
    let newer = run(&source, "backup", "s3://backups/redis/retention", &s3.env());
    assert_eq!(newer.code, 0, "{newer:?}");
    let newest = run(&source, "backup", "s3://backups/redis/retention", &keep_one);
    assert_eq!(newest.code, 0, "{newest:?}");
    assert!(newest.stdout.contains(" deleted=1 "), "{newest:?}");

    let [three, two, four, six, spare]: [Vec<RedisNode>; 5] = targets.try_into().ok().unwrap();
    std::thread::scope(|s| {
        for nodes in [&three, &four, &six, &spare] {
            s.spawn(move || form_masters(nodes));
        }
        s.spawn(|| form_two(&two));
    });

    // Refusals, each writing nothing.
    let broken = tempfile::tempdir().unwrap();
    let copy = copy_backup(Path::new(&url), broken.path(), "missing");
    std::fs::remove_file(copy.join("shard-1.tail")).unwrap();
    let missing = run(&two, "restore", &copy.display().to_string(), &[]);
    assert_eq!(missing.code, 3, "{missing:?}");
    assert!(
        missing.stderr.contains("shard-1.tail is missing"),
        "{missing:?}"
    );
    let copy = copy_backup(Path::new(&url), broken.path(), "corrupt");
    let rdb = copy.join("shard-0.rdb");
    let mut bytes = std::fs::read(&rdb).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&rdb, bytes).unwrap();
    let corrupt = run(&two, "restore", &copy.display().to_string(), &[]);
    assert_eq!(corrupt.code, 3, "{corrupt:?}");
    assert!(
        corrupt.stderr.contains("shard-0.rdb is corrupt"),
        "{corrupt:?}"
    );
    assert_eq!(keys(&two), 0);
    let other = four[1].id();
    four[0].cli(&["cluster", "setslot", "0", "migrating", &other]);
    let moving = run(&four, "restore", &url, &[]);
    assert_eq!(moving.code, 3, "{moving:?}");
    assert!(moving.stderr.contains("moving"), "{moving:?}");
    four[0].cli(&["cluster", "setslot", "0", "stable"]);
    assert_eq!(keys(&four), 0);

    // 3 -> 3 (from S3), 3 -> 2, 3 -> 4 (in Kubernetes mode), 3 -> 6: every key as it was at the
    // cut.
    let expected = rt.block_on(snapshot_of_types(&source));
    let mut cut: Option<usize> = None;
    for (target, from, env) in [
        (&three, s3_url.as_str(), s3.env()),
        (&two, url.as_str(), vec![]),
        (&four, url.as_str(), vec![]),
        (&six, dir.as_str(), vec![]),
    ] {
        let restored = if std::ptr::eq(target, &four) {
            four_pods.run("restore", from, "redis-cluster-restore-run-q9w3e")
        } else {
            run(target, "restore", from, &env)
        };
        assert_eq!(restored.code, 0, "{restored:?}");
        assert!(restored.stdout.contains("verified:"), "{restored:?}");
        assert_eq!(rt.block_on(snapshot_of_types(target)), expected);
        let prefix = rt.block_on(prefix_of_sequence(target, &written));
        if from == s3_url {
            // Taken once the writer had stopped: every acknowledged write.
            assert_eq!(prefix, written.load(Ordering::Relaxed));
        } else {
            // Every restore of the same cut holds the same prefix of the sequence.
            assert_eq!(*cut.get_or_insert(prefix), prefix);
        }
    }

    // The restore's Event on the target's StatefulSet, its Lease released.
    let events = four_pods.api.events();
    assert_eq!(events.len(), 1, "{events:#?}");
    let note = four_pods.assert_event(&events[0], "Normal", "Restored", "Restore");
    assert!(
        note.starts_with("outcome=restored keys=") && note.contains("verified:"),
        "{note}"
    );
    let holders = four_pods.api.lease_holders();
    assert_eq!(holders.len(), 2, "{holders:?}");
    assert_eq!(holders[1], None, "{holders:?}");

    // A target that holds keys: refused, nothing written, a Warning.
    let held = keys(&four);
    let again = four_pods.run("restore", &url, "redis-cluster-restore-run-z2x8v");
    assert_eq!(again.code, 3, "{again:?}");
    assert!(
        again.stderr.contains("holds") && again.stderr.contains("keys"),
        "{again:?}"
    );
    assert_eq!(keys(&four), held);
    let events = four_pods.api.events();
    assert_eq!(events.len(), 2, "{events:#?}");
    let note = four_pods.assert_event(&events[1], "Warning", "Refused", "Restore");
    assert!(
        note.starts_with("refused:") && note.contains(&format!("holds {held} keys")),
        "{note}"
    );

    // SIGKILL mid-way (a master frozen so the kill lands inside the key phase), then run again.
    let total = keys(&four);
    let mut child = restore_command(&spare, &url).spawn().unwrap();
    wait_until(
        "the restore to start writing",
        Duration::from_secs(60),
        || keys(&spare) > 0,
    );
    spare[1].pause();
    child.kill().unwrap();
    child.wait().unwrap();
    spare[1].resume();
    let partial = keys(&spare);
    assert!(partial > 0 && partial < total, "{partial} of {total}");
    let resumed = run(&spare, "restore", &url, &[]);
    assert_eq!(resumed.code, 0, "{resumed:?}");
    assert!(resumed.stdout.contains("verified:"), "{resumed:?}");
    assert!(resumed.stdout.contains("present="), "{resumed:?}");
    assert_eq!(keys(&spare), total);
    assert_eq!(rt.block_on(snapshot_of_types(&spare)), expected);
    drop(s3);
}

/// A restore SIGKILLed while it applies the recorded writes (the writes between each master's
/// snapshot and the cut), then run again: every slot's writes are applied once (a list pushed to
/// and a counter incremented hold each push and increment once), the resumed run applies only the
/// slots that were not done, and verification passes. The backup's tails are made for it, on real
/// nodes: the third master's fork waits (`repl-diskless-sync-delay`) until the first two, forked
/// already, have taken the writes, so every write lands between a snapshot and the cut; one of
/// them is a `FLUSHALL`, which the restore resolves offline (that master's snapshot and its writes
/// before the flush dropped, the writes after it kept). The kill lands in the recorded-writes
/// phase by construction: the target's master of one slot that only recorded writes touch is
/// paused for writes (`CLIENT PAUSE WRITE`) from the start, so the restore cannot pass that slot,
/// and the kill comes once the other slots' writes are visible.
///
/// Addresses: the source on `127.30.12.0/24`, the target on `127.30.13.0/24`.
#[test]
fn a_restore_killed_while_applying_the_recorded_writes_applies_each_once() {
    let (source, target) = std::thread::scope(|s| {
        let source = s.spawn(|| {
            let nodes = start_at(12, 3, &Options::default());
            form_masters(&nodes);
            nodes
        });
        let target = s.spawn(|| start_at(13, 3, &Options::default()));
        (source.join().unwrap(), target.join().unwrap())
    });
    let [a, b, c] = [&source[0], &source[1], &source[2]];
    // Hash tags: {a} and {s} on master a (0-5460), {b} on b (5461-10922), {c} on c; none in the
    // slot of the restore's progress key.
    let progress = key_slot("redis-cluster-bootstrap:restore");
    let tag_a = tag(0..=5460, &[progress]);
    let tag_s = tag(0..=5460, &[progress, key_slot(&tag_a)]);
    let tag_b = tag(5461..=10922, &[progress]);
    let tag_c = tag(10923..=16383, &[progress]);
    let slot_s = key_slot(&tag_s);
    // The target: one master owns slot s alone.
    form_by_hand(
        &target,
        &[(0, slot_s - 1), (slot_s + 1, 16383), (slot_s, slot_s)],
    );

    // The snapshots: 100 keys on each master, none in slot s.
    for (node, tag) in [(a, &tag_a), (b, &tag_b), (c, &tag_c)] {
        let sets: Vec<Vec<String>> = (0..100)
            .map(|i| vec!["SET".into(), format!("k:{{{tag}}}:{i}"), i.to_string()])
            .collect();
        pipe(node, &encode(&sets));
    }

    // The backup, master c's fork held back until the writes are in.
    assert_eq!(c.cli(&["config", "set", "repl-diskless-sync", "yes"]), "OK");
    assert_eq!(
        c.cli(&["config", "set", "repl-diskless-sync-delay", "3600"]),
        "OK"
    );
    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().display().to_string();
    let list = node_list(&source);
    let backup = bootstrap_command(&[
        ("BOOTSTRAP_NODES", list.as_str()),
        ("BOOTSTRAP_BACKUP_URL", dir.as_str()),
        ("BOOTSTRAP_READY_TIMEOUT", "10s"),
    ])
    .arg("backup")
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // a and b fork as the backup connects (their delay is 0): its replication connection is
    // listed once the fork has happened. FLUSHALL would kill a snapshot still being written.
    wait_until("masters a and b to fork", Duration::from_secs(60), || {
        [a, b].iter().all(|n| {
            let info = n.cli(&["info", "replication"]);
            info.contains("connected_slaves:1")
        }) && b
            .cli(&["info", "persistence"])
            .contains("rdb_bgsave_in_progress:0")
    });
    let mut on_a: Vec<Vec<String>> = Vec::new();
    for i in 1..=20 {
        on_a.push(vec![
            "RPUSH".into(),
            format!("log:{{{tag_a}}}"),
            i.to_string(),
        ]);
        on_a.push(vec!["INCR".into(), format!("n:{{{tag_a}}}")]);
    }
    for i in 1..=10 {
        on_a.push(vec![
            "RPUSH".into(),
            format!("log:{{{tag_s}}}"),
            i.to_string(),
        ]);
    }
    pipe(a, &encode(&on_a));
    let mut on_b: Vec<Vec<String>> = vec![
        vec![
            "SET".into(),
            format!("before:{{{tag_b}}}"),
            "flushed".into(),
        ],
        vec!["FLUSHALL".into()],
    ];
    for i in 1..=5 {
        on_b.push(vec![
            "RPUSH".into(),
            format!("after:{{{tag_b}}}"),
            i.to_string(),
        ]);
    }
    pipe(b, &encode(&on_b));
    assert_eq!(
        c.cli(&["config", "set", "repl-diskless-sync-delay", "0"]),
        "OK"
    );
    let backup = backup.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&backup.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&backup.stderr).into_owned();
    assert!(backup.status.success(), "{stdout}\n{stderr}");
    let url = stdout
        .lines()
        .last()
        .and_then(|l| l.split(' ').find_map(|f| f.strip_prefix("backup=")))
        .unwrap()
        .to_string();
    let name = Path::new(&url)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let manifest = manifest(Path::new(&url));
    let tails: Vec<u64> = manifest["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["cut_offset"].as_u64().unwrap() - s["snapshot_offset"].as_u64().unwrap())
        .collect();
    assert!(tails[0] > 0 && tails[1] > 0, "{manifest}");

    // The restore, killed in its recorded-writes phase: slot s's master takes no write.
    let owner_s = &target[2];
    assert_eq!(owner_s.cli(&["client", "pause", "600000", "write"]), "OK");
    let target_list = node_list(&target);
    let mut restore = bootstrap_command(&[
        ("BOOTSTRAP_NODES", target_list.as_str()),
        ("BOOTSTRAP_BACKUP_URL", url.as_str()),
        ("BOOTSTRAP_READY_TIMEOUT", "10s"),
    ]);
    let mut child = restore
        .arg("restore")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let log_a = format!("log:{{{tag_a}}}");
    let after_b = format!("after:{{{tag_b}}}");
    // Watched on one connection, so the kill follows within milliseconds: the restore gives the
    // blocked transaction its 5 s command timeout before it would give up by itself.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = cluster_connection(&target).await;
        let started = std::time::Instant::now();
        loop {
            let phase: Option<String> = redis::cmd("GET")
                .arg("redis-cluster-bootstrap:restore")
                .query_async(&mut c)
                .await
                .unwrap();
            let logged: usize = redis::cmd("LLEN")
                .arg(&log_a)
                .query_async(&mut c)
                .await
                .unwrap();
            let after: usize = redis::cmd("LLEN")
                .arg(&after_b)
                .query_async(&mut c)
                .await
                .unwrap();
            if phase == Some(format!("{name} tails")) && logged == 20 && after == 5 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the restore did not apply the writes of every slot but s: {phase:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    child.kill().unwrap();
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "it ended by itself: {status:?}");
    let read = |args: &[&str]| target[0].cli(&[&["-c"], args].concat());
    let log_s = format!("log:{{{tag_s}}}");
    assert_eq!(read(&["exists", &log_s]), "0");
    assert_eq!(owner_s.cli(&["client", "unpause"]), "OK");

    let resumed = run(&target, "restore", &url, &[]);
    assert_eq!(resumed.code, 0, "{resumed:?}");
    assert!(resumed.stdout.contains("verified:"), "{resumed:?}");
    assert!(
        resumed.stderr.contains("resuming the interrupted restore")
            && resumed
                .stderr
                .contains("recorded writes: 3 slot(s), 1 applied now, 2 applied before"),
        "{resumed:?}"
    );
    // Each write once; master b as the FLUSHALL left it; the progress key and markers gone.
    let numbers = |n: usize| {
        (1..=n)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(read(&["lrange", &log_a, "0", "-1"]), numbers(20));
    assert_eq!(read(&["get", &format!("n:{{{tag_a}}}")]), "20");
    assert_eq!(read(&["lrange", &log_s, "0", "-1"]), numbers(10));
    assert_eq!(read(&["lrange", &after_b, "0", "-1"]), numbers(5));
    assert_eq!(read(&["exists", &format!("before:{{{tag_b}}}")]), "0");
    assert_eq!(read(&["exists", &format!("k:{{{tag_b}}}:0")]), "0");
    assert_eq!(read(&["get", &format!("k:{{{tag_a}}}:99")]), "99");
    assert_eq!(read(&["get", &format!("k:{{{tag_c}}}:99")]), "99");
    assert_eq!(keys(&target), 100 + 3 + 1 + 100);
}

/// The smallest number whose slot, as a hash tag, is in `range` and not in `avoid`.
fn tag(range: std::ops::RangeInclusive<u16>, avoid: &[u16]) -> String {
    (0u32..)
        .map(|n| n.to_string())
        .find(|t| range.contains(&key_slot(t)) && !avoid.contains(&key_slot(t)))
        .unwrap()
}

/// The slot of `key`.
fn key_slot(key: &str) -> u16 {
    redis_cluster_bootstrap::slots::key_slot(key.as_bytes())
}

/// A StatefulSet `redis-app` whose pods are these nodes, as the binary sees it in Kubernetes mode:
/// an API server holding it Ready, and DNS answering its pods' names, both on `127.30.<block>.1`.
struct Pods {
    api: FakeApi,
    dns: FakeDns,
    namespace: &'static str,
    /// Masters only (the restore targets), or one replica each (the source).
    replicas_per_master: &'static str,
}

impl Pods {
    /// The StatefulSet of `nodes` (at `127.30.<block>.11`, ...) in `namespace`, Ready.
    fn start(block: u8, namespace: &'static str, nodes: &[RedisNode]) -> Pods {
        let network = format!("127.30.{block}");
        let api = FakeApi::start_in(&network, namespace, Duration::ZERO);
        let dns = FakeDns::start_in(&network);
        for (i, node) in nodes.iter().enumerate() {
            let host = format!("redis-app-{i}.redis-service.{namespace}.svc.cluster.local");
            dns.add(&host, node.addr.ip());
        }
        api.show(&Stage::ready(nodes.len() as i32, nodes.len()));
        let replicas_per_master = if nodes.len() == 6 { "1" } else { "0" };
        Pods {
            api,
            dns,
            namespace,
            replicas_per_master,
        }
    }

    /// `backup` or `restore` in Kubernetes mode (no BOOTSTRAP_NODES), as the pod `pod`.
    fn command(&self, command: &str, url: &str, pod: &str) -> std::process::Command {
        let kubeconfig = self.api.kubeconfig(self.namespace);
        let dns = self.dns.addr.to_string();
        let mut cmd = bootstrap_command(&[
            ("KUBECONFIG", kubeconfig.as_str()),
            ("BOOTSTRAP_DNS_SERVER", dns.as_str()),
            ("BOOTSTRAP_BACKUP_URL", url),
            ("BOOTSTRAP_REPLICAS_PER_MASTER", self.replicas_per_master),
            ("BOOTSTRAP_READY_TIMEOUT", "60s"),
            ("HOSTNAME", pod),
        ]);
        cmd.arg(command);
        cmd
    }

    /// [`Pods::command`], run to its end.
    fn run(&self, command: &str, url: &str, pod: &str) -> Run {
        let out = self.command(command, url, pod).output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Checks an Event as the API server stored it (type, reason, action, from this tool, by the
    /// pod that ran, regarding the StatefulSet by its UID); its note.
    fn assert_event(
        &self,
        event: &k8s_openapi::api::events::v1::Event,
        kind: &str,
        reason: &str,
        action: &str,
    ) -> String {
        assert_eq!(event.type_.as_deref(), Some(kind), "{event:#?}");
        assert_eq!(event.reason.as_deref(), Some(reason), "{event:#?}");
        assert_eq!(event.action.as_deref(), Some(action), "{event:#?}");
        assert_eq!(
            event.reporting_controller.as_deref(),
            Some("redis-cluster-bootstrap")
        );
        let instance = event.reporting_instance.as_deref().unwrap();
        assert!(instance.starts_with("redis-cluster-"), "{event:#?}");
        assert_eq!(event.metadata.namespace.as_deref(), Some(self.namespace));
        let regarding = event.regarding.as_ref().unwrap();
        assert_eq!(regarding.kind.as_deref(), Some("StatefulSet"));
        assert_eq!(regarding.name.as_deref(), Some("redis-app"));
        assert_eq!(regarding.namespace.as_deref(), Some(self.namespace));
        assert_eq!(regarding.uid.as_deref(), Some("0000-redis-app"));
        event.note.clone().unwrap()
    }
}

/// Calls of `command` summed over the nodes' `INFO commandstats`.
fn calls(nodes: &[RedisNode], command: &str) -> u64 {
    let prefix = format!("cmdstat_{command}:calls=");
    nodes
        .iter()
        .map(|n| {
            n.cli(&["info", "commandstats"])
                .lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .and_then(|rest| rest.split(',').next())
                .map_or(0, |n| n.parse::<u64>().unwrap())
        })
        .sum()
}

/// Starts `count` empty nodes at `127.30.<block>.11`, `.12`, ...
fn start_at(block: u8, count: usize, options: &Options) -> Vec<RedisNode> {
    std::thread::scope(|s| {
        let started: Vec<_> = (0..count)
            .map(|i| {
                s.spawn(move || RedisNode::start(&format!("127.30.{block}.{}", 11 + i), options))
            })
            .collect();
        started.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Forms these nodes as masters only (R = 0) with the tool.
fn form_masters(nodes: &[RedisNode]) {
    let list = node_list(nodes);
    let mut env = vec![
        ("BOOTSTRAP_NODES", list.as_str()),
        ("BOOTSTRAP_REPLICAS_PER_MASTER", "0"),
        ("BOOTSTRAP_READY_TIMEOUT", "10s"),
        ("BOOTSTRAP_CONVERGE_TIMEOUT", "60s"),
    ];
    let access = access_env(&nodes[0]);
    env.extend(access.iter().map(|(k, v)| (*k, v.as_str())));
    let formed = bootstrap(&env);
    assert_eq!(formed.code, 0, "{formed:?}");
}

/// Forms two masters by hand (the tool forms at least 3; a restore takes any shape).
fn form_two(nodes: &[RedisNode]) {
    form_by_hand(nodes, &[(0, 8191), (8192, 16383)]);
}

/// Forms masters by hand, node i owning `ranges[i]`.
fn form_by_hand(nodes: &[RedisNode], ranges: &[(u16, u16)]) {
    for (node, (from, to)) in nodes.iter().zip(ranges) {
        let (from, to) = (from.to_string(), to.to_string());
        assert_eq!(node.cli(&["cluster", "addslotsrange", &from, &to]), "OK");
    }
    for other in &nodes[1..] {
        let (ip, port) = (other.addr.ip().to_string(), other.addr.port().to_string());
        assert_eq!(nodes[0].cli(&["cluster", "meet", &ip, &port]), "OK");
    }
    wait_until("the masters to agree", Duration::from_secs(30), || {
        nodes.iter().all(|n| {
            n.cli(&["cluster", "info"]).contains("cluster_state:ok")
                && n.cli(&["cluster", "nodes"])
                    .lines()
                    .all(|l| l.contains(" connected"))
        })
    });
}

/// Runs `backup` or `restore` on these nodes with `BOOTSTRAP_BACKUP_URL=url`.
fn run(nodes: &[RedisNode], command: &str, url: &str, extra: &[(String, String)]) -> Run {
    let list = node_list(nodes);
    let access = access_env(&nodes[0]);
    let mut env = vec![
        ("BOOTSTRAP_NODES", list.as_str()),
        ("BOOTSTRAP_BACKUP_URL", url),
        ("BOOTSTRAP_READY_TIMEOUT", "10s"),
    ];
    env.extend(access.iter().map(|(k, v)| (*k, v.as_str())));
    env.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    run_binary(&[command], &env)
}

/// The restore as a child to kill.
fn restore_command(nodes: &[RedisNode], url: &str) -> std::process::Command {
    let list = node_list(nodes);
    let mut cmd = bootstrap_command(&[
        ("BOOTSTRAP_NODES", list.as_str()),
        ("BOOTSTRAP_BACKUP_URL", url),
        ("BOOTSTRAP_READY_TIMEOUT", "10s"),
    ]);
    cmd.arg("restore")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd
}

/// `backup=<URL>` from the last line of a backup's stdout.
fn backup_url(run: &Run) -> String {
    let last = run.stdout.lines().last().unwrap_or_default();
    last.split(' ')
        .find_map(|f| f.strip_prefix("backup="))
        .unwrap_or_else(|| panic!("no backup= in the last line: {run:?}"))
        .to_string()
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

/// A copy of a backup's folder, to damage.
fn copy_backup(from: &Path, into: &Path, name: &str) -> std::path::PathBuf {
    let to = into.join(name);
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    to
}

/// The keys of every master of these nodes.
fn keys(nodes: &[RedisNode]) -> u64 {
    nodes
        .iter()
        .filter(|n| n.cli(&["role"]).starts_with("master"))
        .map(|n| n.cli(&["dbsize"]).parse::<u64>().unwrap_or(0))
        .sum()
}

/// Writes `fill:0..count` (each holding its number) straight to the master owning each key,
/// pipelined with `redis-cli --pipe`.
fn fill(nodes: &[RedisNode], count: usize) {
    let mut by_master: Vec<(&RedisNode, Vec<u8>)> = Vec::new();
    let masters: Vec<(&RedisNode, Vec<(u16, u16)>)> = nodes
        .iter()
        .filter_map(|n| {
            let me = n.cli(&["cluster", "nodes"]);
            let line = me.lines().find(|l| l.contains("myself"))?.to_string();
            let fields: Vec<&str> = line.split(' ').collect();
            if !fields[2].contains("master") {
                return None;
            }
            let ranges = fields[8..]
                .iter()
                .map(|r| match r.split_once('-') {
                    Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
                    None => (r.parse().unwrap(), r.parse().unwrap()),
                })
                .collect();
            Some((n, ranges))
        })
        .collect();
    for (n, _) in &masters {
        by_master.push((n, Vec::new()));
    }
    for i in 0..count {
        let key = format!("fill:{i}");
        let slot = redis_cluster_bootstrap::slots::key_slot(key.as_bytes());
        let owner = masters
            .iter()
            .position(|(_, ranges)| ranges.iter().any(|(a, b)| (*a..=*b).contains(&slot)))
            .unwrap();
        let value = i.to_string();
        by_master[owner]
            .1
            .extend(redis_cluster_bootstrap::resp::encode(&[
                b"SET",
                key.as_bytes(),
                value.as_bytes(),
            ]));
    }
    for (node, bytes) in by_master {
        pipe(node, &bytes);
    }
}

/// Sends RESP-encoded commands to `node`, in order, through one `redis-cli --pipe`.
fn pipe(node: &RedisNode, bytes: &[u8]) {
    let mut cmd = std::process::Command::new(which(Server::under_test().cli_binary()));
    cmd.args(["-h", &node.addr.ip().to_string(), "-p", "6379", "--pipe"]);
    if let Some((user, password)) = &node.cli_user {
        cmd.args(["--user", user]).env("REDISCLI_AUTH", password);
    }
    if let Some(tls) = &node.tls {
        cmd.args(tls.cli_args());
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    assert!(child.wait().unwrap().success());
}

/// The commands, RESP-encoded.
fn encode(commands: &[Vec<String>]) -> Vec<u8> {
    commands
        .iter()
        .flat_map(|c| {
            let args: Vec<&[u8]> = c.iter().map(|a| a.as_bytes()).collect();
            redis_cluster_bootstrap::resp::encode(&args)
        })
        .collect()
}

/// Every data type, with and without TTLs, large values, and a function library.
async fn write_every_type(nodes: &[RedisNode]) {
    let mut c = cluster_connection(nodes).await;
    let big = "x".repeat(3 << 20);
    let q = |cmd: &mut redis::Cmd| cmd.clone();
    let commands = vec![
        q(redis::cmd("SET").arg("t:string").arg("hello")),
        q(redis::cmd("SET")
            .arg("t:string:ttl")
            .arg("soon")
            .arg("EX")
            .arg(100_000)),
        q(redis::cmd("SET").arg("t:large").arg(&big)),
        q(redis::cmd("HSET")
            .arg("t:hash")
            .arg("a")
            .arg("1")
            .arg("b")
            .arg("2")),
        q(redis::cmd("RPUSH").arg("t:list").arg("a").arg("b").arg("c")),
        q(redis::cmd("SADD")
            .arg("t:set")
            .arg("x")
            .arg("y")
            .arg(1)
            .arg(2)),
        q(redis::cmd("ZADD")
            .arg("t:zset")
            .arg(1.5)
            .arg("m")
            .arg(-2)
            .arg("n")),
        q(redis::cmd("XADD")
            .arg("t:stream")
            .arg("1-1")
            .arg("f")
            .arg("v")),
        q(redis::cmd("XADD")
            .arg("t:stream")
            .arg("2-1")
            .arg("g")
            .arg("w")),
        q(redis::cmd("XGROUP")
            .arg("CREATE")
            .arg("t:stream")
            .arg("readers")
            .arg("0")),
        q(redis::cmd("EXPIRE").arg("t:hash").arg(50_000)),
    ];
    for cmd in commands {
        let _: redis::Value = cmd.query_async(&mut c).await.unwrap();
    }
    // A large hash and set (not listpack-encoded) and a long list.
    for chunk in 0..10 {
        let mut hset = redis::cmd("HSET");
        hset.arg("t:bighash");
        let mut sadd = redis::cmd("SADD");
        sadd.arg("t:bigset");
        let mut rpush = redis::cmd("RPUSH");
        rpush.arg("t:biglist");
        for i in 0..500 {
            let n = chunk * 500 + i;
            hset.arg(format!("f{n}")).arg(n);
            sadd.arg(format!("m{n}"));
            rpush.arg(n);
        }
        for cmd in [hset, sadd, rpush] {
            let _: redis::Value = cmd.query_async(&mut c).await.unwrap();
        }
    }
    let _: () = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("readers")
        .arg("r1")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg("t:stream")
        .arg(">")
        .query_async::<redis::Value>(&mut c)
        .await
        .map(drop)
        .unwrap();
}

/// What a user would compare: each typed key's type, content and absolute expiry.
async fn snapshot_of_types(nodes: &[RedisNode]) -> Vec<(String, String)> {
    let mut c = cluster_connection(nodes).await;
    let keys = [
        "t:string",
        "t:string:ttl",
        "t:large",
        "t:hash",
        "t:list",
        "t:set",
        "t:zset",
        "t:stream",
        "t:bighash",
        "t:bigset",
        "t:biglist",
    ];
    let mut out = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(key)
            .query_async(&mut c)
            .await
            .unwrap();
        let content: String = match kind.as_str() {
            "hash" => {
                let all: std::collections::BTreeMap<String, String> = redis::cmd("HGETALL")
                    .arg(key)
                    .query_async(&mut c)
                    .await
                    .unwrap();
                format!("{all:?}")
            }
            _ => {
                let value: redis::Value = match kind.as_str() {
                    "string" => redis::cmd("GET").arg(key).query_async(&mut c).await,
                    "list" => {
                        redis::cmd("LRANGE")
                            .arg(key)
                            .arg(0)
                            .arg(-1)
                            .query_async(&mut c)
                            .await
                    }
                    "set" => {
                        redis::cmd("SORT")
                            .arg(key)
                            .arg("ALPHA")
                            .query_async(&mut c)
                            .await
                    }
                    "zset" => {
                        redis::cmd("ZRANGE")
                            .arg(key)
                            .arg(0)
                            .arg(-1)
                            .arg("WITHSCORES")
                            .query_async(&mut c)
                            .await
                    }
                    "stream" => {
                        redis::cmd("XINFO")
                            .arg("STREAM")
                            .arg(key)
                            .arg("FULL")
                            .query_async(&mut c)
                            .await
                    }
                    other => panic!("{key} is a {other}"),
                }
                .unwrap();
                format!("{value:?}")
            }
        };
        let expiry: i64 = redis::cmd("PEXPIRETIME")
            .arg(key)
            .query_async(&mut c)
            .await
            .unwrap();
        let digest = if content.len() > 200 {
            format!("{} bytes, {}", content.len(), &content[..100])
        } else {
            content
        };
        out.push((key.to_string(), format!("{kind} {digest} expires {expiry}")));
    }
    out
}

/// Writes `seq:0`, `seq:1`, ... one after the other through a cluster client until `stop`;
/// `written` counts the writes acknowledged.
async fn sequence(
    nodes: Vec<std::net::SocketAddr>,
    stop: Arc<AtomicBool>,
    written: Arc<AtomicUsize>,
) {
    let urls: Vec<String> = nodes.iter().map(|a| format!("redis://{a}/")).collect();
    let mut conn = redis::cluster::ClusterClient::new(urls)
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let set: redis::RedisResult<()> = redis::cmd("SET")
            .arg(format!("seq:{i}"))
            .arg(i)
            .query_async(&mut conn)
            .await;
        if set.is_ok() {
            i += 1;
            written.store(i, Ordering::Relaxed);
        }
    }
}

/// How many of `seq:0..` the target holds, checked to be a prefix of the sequence: each of
/// `seq:0..n` holds its number, and no `seq:` key lies beyond `n`.
async fn count_sequence(nodes: &[RedisNode]) -> usize {
    let mut c = cluster_connection(nodes).await;
    let mut n = 0;
    loop {
        let v: Option<usize> = redis::cmd("GET")
            .arg(format!("seq:{n}"))
            .query_async(&mut c)
            .await
            .unwrap();
        match v {
            Some(v) => {
                assert_eq!(v, n, "seq:{n} holds {v}");
                n += 1;
            }
            None => break,
        }
    }
    // Nothing after the first gap: the total number of seq: keys is n.
    let mut total = 0;
    for node in nodes
        .iter()
        .filter(|n| n.cli(&["role"]).starts_with("master"))
    {
        let listed = node.cli(&["--scan", "--pattern", "seq:*"]);
        total += listed.lines().filter(|l| !l.is_empty()).count();
    }
    assert_eq!(total, n, "seq: keys beyond the prefix of {n}");
    n
}

/// [`count_sequence`], and the prefix is not empty and not past what was written.
async fn prefix_of_sequence(nodes: &[RedisNode], written: &AtomicUsize) -> usize {
    let n = count_sequence(nodes).await;
    assert!(n >= 200 && n <= written.load(Ordering::Relaxed), "{n}");
    n
}
