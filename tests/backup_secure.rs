//! `backup` and `restore` as production runs them: TLS on every link (client port, bus,
//! replication) with client certificates, `default` off, and each job logging in as its own
//! least-privilege ACL user built from `src/commands.rs` (`backup`, `restore`), its password read
//! from a file as production mounts it (the backup's mid-change: the first password not accepted
//! yet, the second in use); and a backup of Redis 7.0 (RDB 10) restored into Valkey 8.0 (RDB 11).
//!
//! Addresses: `127.30.8.0/24` and `127.30.9.0/24` (TLS), `127.30.10.0/24` and `127.30.11.0/24`
//! (Redis into Valkey).

mod common;

use std::path::Path;

use common::*;

/// Keys of every type, written through `redis-cli -c` as the harness's admin.
const TYPED: &[&[&str]] = &[
    &["set", "s:plain", "hello"],
    &["set", "s:ttl", "soon", "ex", "100000"],
    &["hset", "h:1", "a", "1", "b", "2"],
    &["rpush", "l:1", "a", "b", "c"],
    &["sadd", "z:set", "x", "y"],
    &["zadd", "z:sorted", "1.5", "m", "-2", "n"],
    &["xadd", "x:stream", "1-1", "f", "v"],
];

/// How each typed key reads back, with its absolute expiry.
fn read_back(node: &RedisNode) -> Vec<String> {
    let reads: [&[&str]; 7] = [
        &["get", "s:plain"],
        &["get", "s:ttl"],
        &["hgetall", "h:1"],
        &["lrange", "l:1", "0", "-1"],
        &["sort", "z:set", "alpha"],
        &["zrange", "z:sorted", "0", "-1", "withscores"],
        &["xrange", "x:stream", "-", "+"],
    ];
    let mut out: Vec<String> = reads
        .iter()
        .map(|args| node.cli(&[&["-c"], *args].concat()))
        .collect();
    out.push(node.cli(&["-c", "pexpiretime", "s:ttl"]));
    out
}

/// Starts `count` nodes at `127.30.<block>.11`, ...
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

/// The binary on these nodes as `user` (or the nodes' bootstrap user), TLS as the nodes speak it.
fn run_as(nodes: &[RedisNode], args: &[&str], user: Option<(&str, &str)>, url: &str) -> Run {
    run_with(nodes, args, user, None, url)
}

/// As production runs a Job: as `user`, its passwords read from `file` (one per line, the one in
/// use first, as the Secret redis-users is mounted).
fn run_with_file(nodes: &[RedisNode], args: &[&str], user: &str, file: &Path, url: &str) -> Run {
    run_with(nodes, args, Some((user, "")), Some(file), url)
}

fn run_with(
    nodes: &[RedisNode],
    args: &[&str],
    user: Option<(&str, &str)>,
    file: Option<&Path>,
    url: &str,
) -> Run {
    let list = node_list(nodes);
    let mut env: Vec<(&str, String)> = access_env(&nodes[0])
        .into_iter()
        .filter(|(k, _)| !k.starts_with("BOOTSTRAP_USERNAME") && *k != "BOOTSTRAP_PASSWORD")
        .collect();
    let (name, password) = user.unwrap_or_else(|| {
        nodes[0]
            .bootstrap_user
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
            .unwrap_or(("", ""))
    });
    if !name.is_empty() {
        env.push(("BOOTSTRAP_USERNAME", name.into()));
        match file {
            Some(file) => env.push(("BOOTSTRAP_PASSWORD_FILE", file.display().to_string())),
            None => env.push(("BOOTSTRAP_PASSWORD", password.into())),
        }
    }
    env.extend([
        ("BOOTSTRAP_NODES", list),
        ("BOOTSTRAP_BACKUP_URL", url.into()),
        ("BOOTSTRAP_REPLICAS_PER_MASTER", "0".into()),
        ("BOOTSTRAP_READY_TIMEOUT", "10s".into()),
        ("BOOTSTRAP_CONVERGE_TIMEOUT", "60s".into()),
    ]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_binary(args, &env)
}

/// `backup=<URL>` from the last line.
fn backup_url(run: &Run) -> String {
    run.stdout
        .lines()
        .last()
        .and_then(|l| l.split(' ').find_map(|f| f.strip_prefix("backup=")))
        .unwrap_or_else(|| panic!("no backup= line: {run:?}"))
        .to_string()
}

#[test]
fn backup_and_restore_over_tls_as_their_own_acl_users() {
    let files = tempfile::tempdir().unwrap();
    let ips: Vec<String> = [8, 9]
        .iter()
        .flat_map(|b| (0..3).map(move |i| format!("127.30.{b}.{}", 11 + i)))
        .collect();
    let tls = tls_for_ips(files.path(), &ips);
    let options = Options {
        tls: Some(tls),
        ..acl_options(files.path())
    };
    let (source, target) = std::thread::scope(|s| {
        let source = s.spawn(|| start_at(8, 3, &options));
        let target = s.spawn(|| start_at(9, 3, &options));
        (source.join().unwrap(), target.join().unwrap())
    });
    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().display().to_string();
    for nodes in [&source, &target] {
        let formed = run_as(nodes, &[], None, &dir);
        assert_eq!(formed.code, 0, "{formed:?}");
    }
    for args in TYPED {
        source[0].cli(&[&["-c"], *args].concat());
    }

    // The bootstrap user may not read the replication stream: its ACL says so, exit 2.
    let denied = run_as(&source, &["backup"], None, &dir);
    assert_eq!(denied.code, 2, "{denied:?}");
    assert!(denied.stderr.contains("--print-acl"), "{denied:?}");

    // As production mounts its key of redis-users: mid-change, a new password first that the
    // nodes do not accept yet (WRONGPASS), the one in use second; the replication connections
    // try them in order like every connection.
    let backup_file = files.path().join("backup-password");
    std::fs::write(&backup_file, format!("not-applied-yet\n{}\n", BACKUP.1)).unwrap();
    let backup = run_with_file(&source, &["backup"], BACKUP.0, &backup_file, &dir);
    assert_eq!(backup.code, 0, "{backup:?}");
    let url = backup_url(&backup);
    // The backup user reads no key itself.
    let get = redis_cli(
        source[0].addr,
        Some(BACKUP.1),
        &[
            &["--user", BACKUP.0],
            &source[0]
                .tls
                .as_ref()
                .unwrap()
                .cli_args()
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()[..],
            &["get", "s:plain"],
        ]
        .concat(),
    );
    assert!(get.contains("NOPERM"), "{get}");

    let restore_file = files.path().join("restore-password");
    std::fs::write(&restore_file, format!("{}\n", RESTORE.1)).unwrap();
    let restored = run_with_file(&target, &["restore"], RESTORE.0, &restore_file, &url);
    assert_eq!(restored.code, 0, "{restored:?}");
    assert!(restored.stdout.contains("verified:"), "{restored:?}");
    assert_eq!(read_back(&target[0]), read_back(&source[0]));
}

#[test]
fn a_backup_of_redis_7_0_restores_into_valkey_8() {
    if Server::under_test() != Server::Redis {
        // The Valkey run: tests/backup.rs covers Valkey into Valkey.
        return;
    }
    let valkey = Options {
        server: Some(Server::Valkey),
        ..Options::default()
    };
    let (source, target) = std::thread::scope(|s| {
        let source = s.spawn(|| start_at(10, 3, &Options::default()));
        let target = s.spawn(|| start_at(11, 3, &valkey));
        (source.join().unwrap(), target.join().unwrap())
    });
    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().display().to_string();
    for nodes in [&source, &target] {
        let formed = run_as(nodes, &[], None, &dir);
        assert_eq!(formed.code, 0, "{formed:?}");
    }
    for args in TYPED {
        source[0].cli(&[&["-c"], *args].concat());
    }
    let backup = run_as(&source, &["backup"], None, &dir);
    assert_eq!(backup.code, 0, "{backup:?}");
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(std::path::Path::new(&backup_url(&backup)).join("manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["shards"][0]["rdb_version"], 10, "{manifest}");
    assert!(
        manifest["shards"][0]["server"]
            .as_str()
            .unwrap()
            .starts_with("redis 7.0"),
        "{manifest}"
    );
    let restored = run_as(&target, &["restore"], None, &dir);
    assert_eq!(restored.code, 0, "{restored:?}");
    assert!(restored.stdout.contains("verified:"), "{restored:?}");
    assert!(
        target[0]
            .cli(&["info", "server"])
            .contains("valkey_version:8")
    );
    // Valkey's redis-cli reads Redis's values the same way; compare with the source's answers.
    assert_eq!(read_back(&target[0]), read_back(&source[0]));
}
