//! The least-privilege `bootstrap` user on real nodes started with production's ACL: the
//! application user and its rules as `overlays/production` defines them, `bootstrap` and the
//! replication user as `src/commands.rs` builds them (a manifest test checks production grants the
//! same), `default` off, replicas authenticating as the replication user (`masteruser`). The
//! harness itself logs in as a test-only `admin` user.
//!
//! The bootstrap user forms the cluster, re-runs it as a no-op, re-meshes it after a full restart
//! on new addresses (sending nothing outside the list) and replaces a wiped replica; it moves a slot with `MIGRATE ... AUTH2` as
//! itself (what the grow and shrink code will do); it cannot `GET`, `SET`, `KEYS` or `FLUSHALL`.

mod common;

use std::time::Duration;

use common::*;
use redis_cluster_bootstrap::ExitCode;
use redis_cluster_bootstrap::client::Client;
use redis_cluster_bootstrap::commands;
use redis_cluster_bootstrap::credentials::Credentials;
use redis_cluster_bootstrap::node::Node;

const KEYS: usize = 500;

/// `redis-cli` on `node` as `user`.
fn cli_as(node: &RedisNode, (user, password): (&str, &str), args: &[&str]) -> String {
    let args = [&["--user", user], args].concat();
    redis_cli(node.addr, Some(password), &args)
}

/// Every replica's link to its master is up: replication authenticates as the replication user.
fn assert_replication_links_up(nodes: &[RedisNode]) {
    let replicas = nodes
        .iter()
        .filter(|n| n.cli(&["role"]).starts_with("slave"))
        .inspect(|n| {
            let info = n.cli(&["info", "replication"]);
            assert!(info.contains("master_link_status:up"), "{}: {info}", n.addr);
        })
        .count();
    assert_eq!(replicas, 3);
}

/// Since the nodes started, nothing reached them but what `src/commands.rs` lists (and AUTH, and
/// what replicas and masters send each other): `INFO commandstats` is only counted after it ran,
/// so this first call after a run sees that run alone.
fn assert_only_listed_commands(nodes: &[RedisNode]) {
    let listed: Vec<&str> = commands::SENT
        .iter()
        .chain(commands::RUN_BY_MIGRATE)
        .chain(commands::REPLICATION)
        .map(|(name, _)| *name)
        // AUTH; the harness's own `CONFIG RESETSTAT` (as admin) when it cleared the counts; and
        // what a MIGRATE does, as its source's replicas receive it over replication (DEL).
        .chain(["auth", "config|resetstat", "del"])
        .collect();
    let mut meets = 0;
    for node in nodes {
        let stats = node.cli(&["info", "commandstats"]);
        for line in stats.lines().filter_map(|l| l.strip_prefix("cmdstat_")) {
            let (name, counts) = line.split_once(':').unwrap();
            assert!(listed.contains(&name), "{} got {name}: {line}", node.addr);
            // A replica's handshake sends PING before AUTH, and takes the NOAUTH as an answer.
            if name != "ping" {
                assert!(counts.contains("rejected_calls=0"), "{}: {line}", node.addr);
            }
            if name == "cluster|meet" {
                meets += 1;
            }
        }
    }
    assert!(meets > 0, "the run sent no CLUSTER MEET");
}

/// Keys written and read through a cluster client as the application user.
async fn app_round_trip(nodes: &[RedisNode]) {
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| format!("redis://{}:{}@{}/", APP.0, APP.1, n.addr))
        .collect();
    let mut conn = redis::cluster::ClusterClient::new(urls)
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("app:key")
        .arg("v")
        .query_async(&mut conn)
        .await
        .unwrap();
    let v: String = redis::cmd("GET")
        .arg("app:key")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(v, "v");
}

#[test]
fn the_bootstrap_user_forms_re_runs_and_re_meshes_after_a_full_restart() {
    let acl = tempfile::tempdir().unwrap();
    let options = acl_options(acl.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut nodes = start_nodes_with(225, 6, &options);
    let formed = run_static(&nodes);
    assert_eq!(formed.code, 0, "{formed:?}");
    assert!(formed.stdout.contains("decision=fresh"), "{formed:?}");
    assert_only_listed_commands(&nodes);
    rt.block_on(write_keys(&nodes, KEYS));
    wait_replicated(&nodes);
    assert_replication_links_up(&nodes);
    rt.block_on(app_round_trip(&nodes));
    assert_next_run_is_a_no_op(&nodes);

    // Every pod restarts on a new address with its volume.
    for n in nodes.iter_mut() {
        n.kill();
    }
    for (i, n) in nodes.iter_mut().enumerate() {
        n.restart_on(&ip(226, i), &options);
    }
    let repair = run_static(&nodes);
    assert_eq!(repair.code, 0, "{repair:?}");
    assert!(repair.stdout.contains("decision=reconnect"), "{repair:?}");
    assert_only_listed_commands(&nodes);
    let (ok, text) = cluster_check(&nodes[0]);
    assert!(ok, "{text}");
    assert_eq!(rt.block_on(read_keys(&nodes, KEYS)), KEYS);
    wait_until("every replica link", Duration::from_secs(20), || {
        nodes
            .iter()
            .filter(|n| n.cli(&["role"]).starts_with("slave"))
            .all(|n| {
                n.cli(&["info", "replication"])
                    .contains("master_link_status:up")
            })
    });
    assert_next_run_is_a_no_op(&nodes);
}

#[test]
fn the_bootstrap_user_replaces_a_wiped_replica() {
    let acl = tempfile::tempdir().unwrap();
    let options = acl_options(acl.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut nodes = formed_with_keys_with(227, KEYS, &rt, &options);
    let replica = (3..6)
        .find(|&i| nodes[i].cli(&["role"]).starts_with("slave"))
        .expect("a replica among pods 3-5");
    let lost = nodes[replica].id();
    wipe(&mut nodes[replica]);
    let others: Vec<&RedisNode> = (0..6)
        .filter(|&i| i != replica)
        .map(|i| &nodes[i])
        .collect();
    wait_failed(&others, &lost);
    nodes[replica].restart_on(&ip(227, replica), &options);
    let run = run_static(&nodes);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("decision=replace"), "{run:?}");
    for n in &nodes {
        assert!(!n.cli(&["cluster", "nodes"]).contains(&lost), "{}", n.addr);
    }
    wait_replicated(&nodes);
    assert_replication_links_up(&nodes);
    assert_eq!(rt.block_on(read_keys(&nodes, KEYS)), KEYS);
    assert_next_run_is_a_no_op(&nodes);
}

/// What slot migration will do, by hand as the bootstrap user: IMPORTING on the target, MIGRATING
/// on the source, the slot's keys moved with `MIGRATE ... AUTH2 bootstrap` (the source runs
/// SELECT and RESTORE-ASKING on the target as that user), NODE on both. And what the user cannot
/// do: read, write, list or flush keys, nor the commands Safety forbids.
#[test]
fn the_bootstrap_user_moves_keys_with_migrate_but_cannot_read_or_write_them() {
    let acl = tempfile::tempdir().unwrap();
    let options = acl_options(acl.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let nodes = formed_with_keys_with(228, KEYS, &rt, &options);

    let nopermission = |node: &RedisNode, args: &[&str]| {
        let reply = cli_as(node, BOOTSTRAP, args);
        assert!(reply.starts_with("NOPERM"), "{args:?}: {reply}");
    };
    for node in &nodes {
        for args in [
            &["get", "key:1"][..],
            &["set", "key:1", "x"],
            &["keys", "*"],
            &["flushall"],
            &["del", "key:1"],
            &["dump", "key:1"],
            &["config", "set", "maxmemory", "1"],
            &["cluster", "reset"],
            // `CLUSTER FAILOVER` is granted for the placement repair: an ACL cannot tell its
            // options apart, so the client refuses FORCE and TAKEOVER itself (src/commands.rs).
            &["cluster", "delslots", "1"],
            &["acl", "list"],
            &["shutdown"],
        ] {
            nopermission(node, args);
        }
    }
    // The client refuses what is not in the list before sending it, even where the node would
    // accept it: here, as the all-powerful `admin`.
    let admin = Credentials::new(Some(ADMIN.0.into()), ADMIN.1.into());
    let node = Node::new("node-0", nodes[0].addr);
    let flushall = || {
        let stats = nodes[0].cli(&["info", "commandstats"]);
        stats
            .lines()
            .find(|l| l.starts_with("cmdstat_flushall:"))
            .map(str::to_string)
    };
    // The NOPERM checks above already tried FLUSHALL (rejected); the client adds nothing to that.
    let before = flushall();
    let refused = rt.block_on(async {
        let client = Client::connect(&node, Some(&admin), None).await.unwrap();
        client
            .query::<String>(&redis::cmd("FLUSHALL"), "FLUSHALL")
            .await
    });
    let err = refused.unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::Refused, "{err}");
    assert!(err.to_string().contains("`flushall`"), "{err}");
    assert_eq!(flushall(), before);
    assert_ne!(nodes[0].cli(&["dbsize"]), "0");

    // `default` is off: without a user, nothing but AUTH.
    let anonymous = redis_cli(nodes[0].addr, None, &["get", "key:1"]);
    assert!(anonymous.starts_with("NOAUTH"), "{anonymous}");

    // Move the slot of `{moved}` from its master to another master.
    let slot = nodes[0].cli(&["cluster", "keyslot", "{moved}"]);
    let owner = |slot: &str| {
        let slot: u16 = slot.parse().unwrap();
        nodes
            .iter()
            .position(|n| {
                let id = n.id();
                topology(n).iter().any(|(row_id, role, _, slots)| {
                    *row_id == id
                        && role == "master"
                        && slots.split(' ').any(|range| {
                            let (a, b) = range.split_once('-').unwrap_or((range, range));
                            (a.parse().unwrap_or(u16::MAX)..=b.parse().unwrap_or(0)).contains(&slot)
                        })
                })
            })
            .unwrap()
    };
    let source = owner(&slot);
    let target = (0..6)
        .find(|&i| i != source && nodes[i].cli(&["role"]).starts_with("master"))
        .unwrap();
    for i in 0..3 {
        nodes[source].cli(&["set", &format!("{{moved}}:{i}"), &i.to_string()]);
    }
    let (src, dst) = (&nodes[source], &nodes[target]);
    let (src_id, dst_id) = (src.id(), dst.id());
    let ok = |reply: String| assert_eq!(reply, "OK");
    ok(cli_as(
        dst,
        BOOTSTRAP,
        &["cluster", "setslot", &slot, "importing", &src_id],
    ));
    ok(cli_as(
        src,
        BOOTSTRAP,
        &["cluster", "setslot", &slot, "migrating", &dst_id],
    ));
    assert_eq!(
        cli_as(src, BOOTSTRAP, &["cluster", "countkeysinslot", &slot]),
        "3"
    );
    let keys = cli_as(src, BOOTSTRAP, &["cluster", "getkeysinslot", &slot, "10"]);
    let keys: Vec<&str> = keys.lines().collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    let (host, port) = (dst.addr.ip().to_string(), dst.addr.port().to_string());
    let mut migrate = vec![
        "migrate",
        &host,
        &port,
        "",
        "0",
        "5000",
        "AUTH2",
        BOOTSTRAP.0,
        BOOTSTRAP.1,
        "KEYS",
    ];
    migrate.extend(&keys);
    ok(cli_as(src, BOOTSTRAP, &migrate));
    for node in [dst, src] {
        ok(cli_as(
            node,
            BOOTSTRAP,
            &["cluster", "setslot", &slot, "node", &dst_id],
        ));
    }
    assert_eq!(
        cli_as(dst, BOOTSTRAP, &["cluster", "countkeysinslot", &slot]),
        "3"
    );
    assert_eq!(dst.cli(&["get", "{moved}:2"]), "2");
    wait_until(
        "every node to agree on the slot's owner",
        Duration::from_secs(20),
        || owner(&slot) == target,
    );
    assert_eq!(rt.block_on(read_keys(&nodes, KEYS)), KEYS);
}

/// A bootstrap user missing a command, or a wrong password, is bad configuration (exit 2) with
/// one line naming the variables; nothing is changed.
#[test]
fn a_user_without_the_rules_or_with_a_wrong_password_is_exit_2() {
    let acl = tempfile::tempdir().unwrap();
    let options = acl_options(acl.path());
    let nodes = start_nodes_with(229, 3, &options);
    for node in &nodes {
        node.cli(&["acl", "setuser", BOOTSTRAP.0, "-cluster|myid"]);
    }
    let list = node_list(&nodes);
    let env = |password: &'static str| {
        bootstrap(&[
            ("BOOTSTRAP_NODES", list.as_str()),
            ("BOOTSTRAP_REPLICAS_PER_MASTER", "0"),
            ("BOOTSTRAP_READY_TIMEOUT", "5s"),
            ("BOOTSTRAP_USERNAME", BOOTSTRAP.0),
            ("BOOTSTRAP_PASSWORD", password),
        ])
    };
    let denied = env(BOOTSTRAP.1);
    assert_eq!(denied.code, 2, "{denied:?}");
    let line = denied
        .stderr
        .lines()
        .find(|l| l.contains("ERROR"))
        .unwrap_or_default();
    assert!(
        line.contains("BOOTSTRAP_USERNAME") && line.contains("--print-acl"),
        "{denied:?}"
    );
    let wrong = env("wrong");
    assert_eq!(wrong.code, 2, "{wrong:?}");
    assert!(
        wrong
            .stderr
            .contains("BOOTSTRAP_USERNAME/BOOTSTRAP_PASSWORD are rejected"),
        "{wrong:?}"
    );
    assert!(!wrong.stderr.contains(BOOTSTRAP.1), "{wrong:?}");
    for node in &nodes {
        assert!(
            node.cli(&["cluster", "info"])
                .contains("cluster_known_nodes:1")
        );
    }
}

/// A grow as the bootstrap user: MEET, REPLICATE, `FUNCTION LIST/DUMP/RESTORE`, `SETSLOT` and
/// `MIGRATE ... AUTH2` as that same user are all it takes, and nothing outside `src/commands.rs`
/// reaches a node.
#[test]
fn the_bootstrap_user_grows_the_cluster() {
    let acl = tempfile::tempdir().unwrap();
    let options = acl_options(acl.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut nodes = formed_with_keys_with(231, KEYS, &rt, &options);
    let library = "#!lua name=grown\nredis.register_function('hello', function() return 'hi' end)";
    for n in &nodes[..3] {
        assert_eq!(n.cli(&["function", "load", library]), "grown");
    }
    for i in 6..8 {
        nodes.push(RedisNode::start(&ip(231, i), &options));
    }
    reset_stats(&nodes);
    let grown = run_static(&nodes);
    assert_eq!(grown.code, 0, "{grown:?}");
    assert!(grown.stdout.contains("decision=grow"), "{grown:?}");
    assert_only_listed_commands(&nodes);
    let (ok, text) = cluster_check(&nodes[0]);
    assert!(ok, "{text}");
    assert!(nodes[6].cli(&["function", "list"]).contains("grown"));
    assert_eq!(rt.block_on(read_keys(&nodes, KEYS)), KEYS);
    assert_next_run_is_a_no_op(&nodes);
}
