//! The RDB reader (`src/rdb/`) on what real servers write: every type in its small and large
//! encodings, values over 1 MB, expiries, three databases, integer and LZF keys, a stream with
//! consumer groups and pending entries, a function library; `SAVE`, the `dump.rdb` read with the
//! reader, every payload put back with `RESTORE ... ABSTTL` into a fresh server, and the values
//! compared one by one (type, content, expiry, stream groups, LFU counters).
//!
//! On Redis (7.0): into Redis, and into Valkey 8.0 (an RDB-10 payload restores there). On Valkey
//! (8.0, `BOOTSTRAP_TEST_SERVER=valkey`): into Valkey, and Redis 7.0 refusing every RDB-11
//! payload, which the reader's version lets a restore see before sending any.
//!
//! The files Redis 6.2 (RDB 9: ziplists, quicklist 1, the first stream format), Redis 7.0 and
//! Valkey 8.0 saved for the unit tests (`src/rdb/testdata/`), restored into the server under test
//! wherever it takes their version, equal to what the server loads from the file itself.
//!
//! A node in cluster mode saves too (`rdbchecksum no` there, so its file ends with a zero
//! checksum), and every key's slot as the reader's caller computes it is the node's own.
//!
//! Blocks: 127.30.200.0/24 (into the same server), 127.30.201.0/24 (across servers),
//! 127.30.202.0/24 (cluster mode), 127.30.203.0/24 (the saved files).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{Options, RedisNode, Server, value_of};
use redis::aio::MultiplexedConnection;
use redis::{Cmd, Value};
use redis_cluster_bootstrap::rdb::{Entry, Item, Reader, verify_payload};
use redis_cluster_bootstrap::slots::key_slot;

/// The databases the source writes to (a standalone server, as a backup of one might be).
const DBS: [u32; 3] = [0, 1, 5];

/// The library the source loads.
const LIBRARY: &str = "#!lua name=backuplib\n\
    redis.register_function('echo1', function(keys, args) return args[1] end)";

/// A standalone node of `server`, evicting by `policy` (so the RDB carries LFU counters or LRU
/// idle times), with `DEBUG` for the quicklist's plain-node threshold.
fn start(server: Server, ip: &str, policy: &str) -> RedisNode {
    RedisNode::start(ip, &start_options(server, policy))
}

/// The options of [`start`].
fn start_options(server: Server, policy: &str) -> Options {
    let extra = [
        "--maxmemory-policy",
        policy,
        "--enable-debug-command",
        "local",
        "--save",
        "",
        // dump.rdb is what a restart loads (the AOF would replay SELECTs a cluster refuses).
        "--appendonly",
        "no",
    ];
    Options {
        standalone: true,
        server: Some(server),
        extra: extra.iter().map(|s| s.to_string()).collect(),
        ..Options::default()
    }
}

/// The other server: Valkey when Redis is under test, and the other way round.
fn other(server: Server) -> Server {
    match server {
        Server::Redis => Server::Valkey,
        Server::Valkey => Server::Redis,
    }
}

/// The RDB version each server writes and takes.
fn version_of(server: Server) -> u16 {
    match server {
        Server::Redis => 10,
        Server::Valkey => 11,
    }
}

/// A connection to database `db` of `node`. `SAVE` of megabytes of values blocks the node for
/// longer than redis-rs's default 500 ms response timeout on a loaded machine: wait for it.
async fn connect(node: &RedisNode, db: u32) -> MultiplexedConnection {
    let config = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(std::time::Duration::from_secs(60)));
    redis::Client::open(format!("redis://{}/{db}", node.addr))
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap()
}

/// Runs a command that must succeed.
async fn q(con: &mut MultiplexedConnection, cmd: &Cmd) -> Value {
    cmd.query_async(con)
        .await
        .unwrap_or_else(|e| panic!("{:?}: {e}", cmd.args_iter().next()))
}

/// `n` bytes that LZF cannot compress (a linear congruential generator).
fn noise(n: usize) -> Vec<u8> {
    let mut x: u32 = 12345;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect()
}

/// Writes every type in its small and its large encoding, and the rest the reader must carry.
async fn write_every_type(node: &RedisNode) {
    let mut c = connect(node, 0).await;
    let c = &mut c;
    // Elements over 1000 bytes get a quicklist node of their own ("plain"); 1 GB by default.
    q(
        c,
        redis::cmd("DEBUG")
            .arg("QUICKLIST-PACKED-THRESHOLD")
            .arg(1000),
    )
    .await;
    let set = |k: &[u8], v: &[u8]| redis::cmd("SET").arg(k).arg(v).clone();
    for (key, value) in [
        (&b"str"[..], &b"hello"[..]),
        (b"int", b"424242"),
        (b"12345", b"a key saved as an integer"),
        (b"-7", b"a negative integer key"),
        (b"4294967296", b"too large for an integer key"),
        (&[b'k'; 200], b"an LZF-compressed key"),
        (b"\x00\xffbin\r\n", b"\x00binary\xfe"),
        (b"{user1}.name", b"a hash tag"),
    ] {
        q(c, &set(key, value)).await;
    }
    q(c, &set(b"big-noise", &noise(1_500_000))).await;
    q(c, &set(b"big-text", &b"abcdefgh".repeat(150_000))).await;
    q(
        c,
        redis::cmd("SET")
            .arg("ttl-abs")
            .arg("v")
            .arg("PXAT")
            .arg(4_102_444_800_123i64),
    )
    .await;
    q(
        c,
        redis::cmd("SET")
            .arg("ttl-rel")
            .arg("v")
            .arg("EX")
            .arg(86_400),
    )
    .await;

    q(
        c,
        redis::cmd("RPUSH").arg("list-small").arg(&["a", "b", "c"]),
    )
    .await;
    let many: Vec<String> = (0..10_000).map(|i| format!("element-{i}")).collect();
    q(c, redis::cmd("RPUSH").arg("list-many").arg(&many)).await;
    q(
        c,
        redis::cmd("RPUSH")
            .arg("list-plain")
            .arg("a")
            .arg("p".repeat(2000))
            .arg("b"),
    )
    .await;
    q(
        c,
        redis::cmd("RPUSH")
            .arg("list-huge")
            .arg("x")
            .arg(noise(1_200_000)),
    )
    .await;
    q(c, redis::cmd("EXPIRE").arg("list-many").arg(100_000)).await;

    q(c, redis::cmd("SADD").arg("set-int").arg(&[1, 2, 3])).await;
    q(
        c,
        redis::cmd("SADD")
            .arg("set-int-big")
            .arg((0..1000).collect::<Vec<_>>()),
    )
    .await;
    q(c, redis::cmd("SADD").arg("set-small").arg(&["a", "b", "c"])).await;
    let members: Vec<String> = (0..200).map(|i| format!("member-{i}")).collect();
    q(c, redis::cmd("SADD").arg("set-big").arg(&members)).await;

    q(
        c,
        redis::cmd("ZADD")
            .arg("zset-small")
            .arg(&["1", "a", "2.5", "b"]),
    )
    .await;
    let mut zadd = redis::cmd("ZADD");
    zadd.arg("zset-big")
        .arg("+inf")
        .arg("top")
        .arg("-inf")
        .arg("bottom");
    for (i, m) in members.iter().enumerate() {
        zadd.arg(i as f64 * 0.5 - 7.25).arg(m);
    }
    q(c, &zadd).await;

    q(
        c,
        redis::cmd("HSET")
            .arg("hash-small")
            .arg(&["f1", "v1", "f2", "v2"]),
    )
    .await;
    let fields: Vec<String> = (0..200)
        .flat_map(|i| [format!("f{i}"), format!("v{i}")])
        .collect();
    q(c, redis::cmd("HSET").arg("hash-big").arg(&fields)).await;
    q(
        c,
        redis::cmd("HSET")
            .arg("hash-long")
            .arg("f")
            .arg("l".repeat(100)),
    )
    .await;
    q(c, redis::cmd("PEXPIRE").arg("hash-long").arg(100_000_000)).await;

    for i in 1..=500 {
        let add = redis::cmd("XADD")
            .arg("stream")
            .arg(format!("1000-{i}"))
            .arg("n")
            .arg(i)
            .arg("text")
            .arg(format!("entry {i}"))
            .clone();
        q(c, &add).await;
    }
    q(
        c,
        redis::cmd("XDEL")
            .arg("stream")
            .arg(&["1000-2", "1000-300"]),
    )
    .await;
    q(
        c,
        redis::cmd("XGROUP").arg(&["CREATE", "stream", "g1", "0"]),
    )
    .await;
    q(
        c,
        redis::cmd("XGROUP").arg(&["CREATE", "stream", "g2", "$"]),
    )
    .await;
    for (consumer, count) in [("alice", 10), ("bob", 5)] {
        let read = redis::cmd("XREADGROUP")
            .arg(&["GROUP", "g1", consumer, "COUNT"])
            .arg(count)
            .arg(&["STREAMS", "stream", ">"])
            .clone();
        q(c, &read).await;
    }
    q(
        c,
        redis::cmd("XACK").arg(&["stream", "g1", "1000-1", "1000-3"]),
    )
    .await;
    q(
        c,
        redis::cmd("XCLAIM").arg(&["stream", "g1", "bob", "0", "1000-4"]),
    )
    .await;
    let empty = ["CREATE", "stream-empty", "g", "$", "MKSTREAM"];
    q(c, redis::cmd("XGROUP").arg(&empty)).await;

    q(c, redis::cmd("FUNCTION").arg("LOAD").arg(LIBRARY)).await;
    q(&mut connect(node, 1).await, &set(b"in-db-1", b"one")).await;
    let push = redis::cmd("RPUSH").arg("in-db-5").arg(&["a", "b"]).clone();
    q(&mut connect(node, 5).await, &push).await;
}

/// Everything the reader gave.
struct Read {
    version: u16,
    entries: Vec<Entry>,
    functions: Vec<Vec<u8>>,
    aux: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// `SAVE`, then the node's dump.rdb through the reader.
async fn save_and_read(node: &RedisNode) -> Read {
    q(&mut connect(node, 0).await, &redis::cmd("SAVE")).await;
    read(&node.dir.join("dump.rdb")).await
}

async fn read(path: &Path) -> Read {
    let file = tokio::fs::File::open(path).await.unwrap();
    let mut reader = Reader::new(file).await.unwrap();
    let mut read = Read {
        version: reader.version(),
        entries: Vec::new(),
        functions: Vec::new(),
        aux: BTreeMap::new(),
    };
    while let Some(item) = reader.next().await.unwrap() {
        match item {
            Item::Key(entry) => read.entries.push(entry),
            Item::Function { payload } => read.functions.push(payload),
            Item::Aux { key, value } => {
                read.aux.insert(key, value);
            }
            Item::ModuleAux { module } => panic!("no module is loaded, yet {module}"),
        }
    }
    assert_eq!(reader.offset(), std::fs::metadata(path).unwrap().len());
    read
}

/// `RESTORE key <expiry> payload ABSTTL [FREQ f] [IDLETIME s]` for every entry, into its
/// database, and `FUNCTION RESTORE` for every library; the first error is returned.
async fn restore(node: &RedisNode, read: &Read) -> Result<(), redis::RedisError> {
    let mut cons = BTreeMap::new();
    for e in &read.entries {
        if let std::collections::btree_map::Entry::Vacant(slot) = cons.entry(e.db) {
            slot.insert(connect(node, e.db).await);
        }
        let mut cmd = redis::cmd("RESTORE");
        cmd.arg(&e.key)
            .arg(e.expire_at_ms.unwrap_or(0))
            .arg(&e.payload)
            .arg("ABSTTL");
        if let Some(freq) = e.freq {
            cmd.arg("FREQ").arg(freq);
        }
        if let Some(idle) = e.idle_seconds {
            cmd.arg("IDLETIME").arg(idle);
        }
        let _: () = cmd.query_async(cons.get_mut(&e.db).unwrap()).await?;
    }
    let mut c = connect(node, 0).await;
    for payload in &read.functions {
        let _: () = redis::cmd("FUNCTION")
            .arg("RESTORE")
            .arg(payload)
            .query_async(&mut c)
            .await?;
    }
    Ok(())
}

/// Every key of every database of `source` is on `target` with the same type, value and
/// absolute expiry, and nothing else is; the function libraries are the same.
async fn assert_same_data(source: &RedisNode, target: &RedisNode, read: &Read) {
    let mut dbs: Vec<u32> = read.entries.iter().map(|e| e.db).collect();
    dbs.sort();
    dbs.dedup();
    let mut checked = 0;
    for db in dbs {
        let (mut s, mut t) = (connect(source, db).await, connect(target, db).await);
        let mut keys: Vec<Vec<u8>> = redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut s)
            .await
            .unwrap();
        let mut restored: Vec<Vec<u8>> = redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut t)
            .await
            .unwrap();
        keys.sort();
        restored.sort();
        assert_eq!(keys, restored, "the keys of db {db}");
        for key in &keys {
            let shown = key.escape_ascii().to_string();
            let (kind, value) = value_of(&mut s, key).await;
            let (restored_kind, restored_value) = value_of(&mut t, key).await;
            assert_eq!(kind, restored_kind, "the type of {shown}");
            assert!(
                value == restored_value,
                "the {kind} {shown} differs after the restore"
            );
            let expiry = redis::cmd("PEXPIRETIME").arg(key).clone();
            assert_eq!(
                q(&mut s, &expiry).await,
                q(&mut t, &expiry).await,
                "{shown}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, read.entries.len(), "every key read was compared");
    let libraries = redis::cmd("FUNCTION").arg("LIST").arg("WITHCODE").clone();
    let (mut s, mut t) = (connect(source, 0).await, connect(target, 0).await);
    assert_eq!(q(&mut s, &libraries).await, q(&mut t, &libraries).await);
}

/// What every read must show, whichever server wrote it.
fn check_read(read: &Read, server: Server) {
    assert_eq!(read.version, version_of(server));
    let version_field: &[u8] = match server {
        Server::Redis => b"redis-ver",
        Server::Valkey => b"valkey-ver",
    };
    assert!(
        read.aux.contains_key(version_field),
        "{:?}",
        read.aux.keys()
    );
    assert_eq!(read.entries.len(), 29);
    assert_eq!(read.functions.len(), 1);
    let find = |key: &[u8]| read.entries.iter().find(|e| e.key == key).unwrap();
    assert_eq!(find(b"ttl-abs").expire_at_ms, Some(4_102_444_800_123));
    assert_eq!(find(&[b'k'; 200]).type_name(), "string");
    assert_eq!(find(b"in-db-5").db, 5);
    assert!(find(b"big-noise").payload.len() > 1_500_000);
    for e in &read.entries {
        assert_eq!(verify_payload(&e.payload), Some(read.version), "{e:?}");
    }
    // Both encodings of each type were written (the RDB type says which).
    let mut types: Vec<u8> = read.entries.iter().map(Entry::rdb_type).collect();
    types.sort();
    types.dedup();
    let expected: &[u8] = match server {
        // string, set, zset_2, hash, intset, hash/zset listpack, quicklist 2, stream 2
        Server::Redis => &[0, 2, 4, 5, 11, 16, 17, 18, 19],
        // ... and listpack sets, stream 3
        Server::Valkey => &[0, 2, 4, 5, 11, 16, 17, 18, 20, 21],
    };
    assert_eq!(types, expected);
}

#[tokio::test]
async fn a_save_restores_into_a_fresh_server_value_by_value() {
    let server = Server::under_test();
    let source = start(server, "127.30.200.11", "allkeys-lfu");
    write_every_type(&source).await;
    let read = save_and_read(&source).await;
    check_read(&read, server);

    // Each payload is exactly what DUMP gives (read after the LFU counters, which DUMP bumps).
    let mut cons = BTreeMap::new();
    for db in DBS {
        cons.insert(db, connect(&source, db).await);
    }
    for e in &read.entries {
        let c = cons.get_mut(&e.db).unwrap();
        let freq: u8 = redis::cmd("OBJECT")
            .arg("FREQ")
            .arg(&e.key)
            .query_async(c)
            .await
            .unwrap();
        assert_eq!(e.freq, Some(freq), "{e:?}");
        let dump: Vec<u8> = redis::cmd("DUMP").arg(&e.key).query_async(c).await.unwrap();
        assert!(dump == e.payload, "the payload of {e:?} is not DUMP's");
    }
    let dump: Vec<u8> = redis::cmd("FUNCTION")
        .arg("DUMP")
        .query_async(cons.get_mut(&0).unwrap())
        .await
        .unwrap();
    assert_eq!(read.functions, [dump]);

    let target = start(server, "127.30.200.12", "allkeys-lfu");
    restore(&target, &read).await.unwrap();
    // The LFU counters came along (checked before the comparison reads the keys).
    for e in &read.entries {
        let mut c = connect(&target, e.db).await;
        let freq: u8 = redis::cmd("OBJECT")
            .arg("FREQ")
            .arg(&e.key)
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(Some(freq), e.freq, "{e:?}");
    }
    assert_same_data(&source, &target, &read).await;
}

#[tokio::test]
async fn across_servers_a_payload_restores_only_where_its_version_is_known() {
    let server = Server::under_test();
    let source = start(server, "127.30.201.11", "allkeys-lru");
    write_every_type(&source).await;
    let read = save_and_read(&source).await;
    check_read(&read, server);
    assert!(read.entries.iter().all(|e| e.idle_seconds.is_some()));

    let target = start(other(server), "127.30.201.12", "allkeys-lru");
    let mut c = connect(&target, 0).await;
    // The RDB version the target takes: that of its own DUMP.
    q(&mut c, redis::cmd("SET").arg("probe").arg("x")).await;
    let probe: Vec<u8> = redis::cmd("DUMP")
        .arg("probe")
        .query_async(&mut c)
        .await
        .unwrap();
    q(&mut c, redis::cmd("DEL").arg("probe")).await;
    let target_version = verify_payload(&probe).unwrap();
    assert_eq!(target_version, version_of(other(server)));
    match server {
        // Redis 7.0 (RDB 10) into Valkey 8.0 (RDB 11): everything comes back.
        Server::Redis => {
            assert!(read.version <= target_version);
            restore(&target, &read).await.unwrap();
            for e in &read.entries {
                let mut c = connect(&target, e.db).await;
                let idle: u64 = redis::cmd("OBJECT")
                    .arg("IDLETIME")
                    .arg(&e.key)
                    .query_async(&mut c)
                    .await
                    .unwrap();
                assert!(idle >= e.idle_seconds.unwrap(), "{e:?}: idle {idle}");
            }
            assert_same_data(&source, &target, &read).await;
        }
        // Valkey 8.0 (RDB 11) into Redis 7.0 (RDB 10): the version says so before anything is
        // sent, and the server refuses every payload.
        Server::Valkey => {
            assert!(read.version > target_version);
            for e in read.entries.iter().take(5) {
                let one = Read {
                    version: read.version,
                    entries: vec![e.clone()],
                    functions: Vec::new(),
                    aux: BTreeMap::new(),
                };
                let refused = restore(&target, &one).await.unwrap_err();
                assert!(
                    refused
                        .to_string()
                        .contains("DUMP payload version or checksum are wrong"),
                    "{refused}"
                );
            }
            let functions = Read {
                entries: Vec::new(),
                ..read
            };
            assert!(restore(&target, &functions).await.is_err());
            let keys: usize = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
            assert_eq!(keys, 0);
        }
    }
}

#[tokio::test]
async fn a_cluster_node_save_is_read_and_every_key_routed_to_its_slot() {
    let server = Server::under_test();
    // Written standalone, then loaded in cluster mode (the node takes the slots of its keys), so
    // the file is a cluster node's without waiting for a cluster to form.
    let ip = "127.30.202.11";
    let mut node = start(server, ip, "noeviction");
    write_every_type(&node).await;
    let mut c = connect(&node, 0).await;
    for db in [1, 5] {
        q(&mut connect(&node, db).await, &redis::cmd("FLUSHDB")).await;
    }
    q(&mut c, &redis::cmd("SAVE")).await;
    node.restart_on(
        ip,
        &Options {
            server: Some(server),
            extra: ["--rdbchecksum", "no", "--appendonly", "no"]
                .map(String::from)
                .to_vec(),
            ..Options::default()
        },
    );
    let mut c = connect(&node, 0).await;
    let info: String = redis::cmd("INFO")
        .arg("cluster")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(info.contains("cluster_enabled:1"), "{info}");
    let read = save_and_read(&node).await;
    let file = std::fs::read(node.dir.join("dump.rdb")).unwrap();
    assert_eq!(file[file.len() - 8..], [0; 8], "rdbchecksum no writes 0");
    assert_eq!(read.entries.len(), 27);
    for e in &read.entries {
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&e.key)
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(key_slot(&e.key), slot, "{e:?}");
    }
}

#[tokio::test]
async fn saved_files_restore_as_the_server_itself_loads_them() {
    let server = Server::under_test();
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/rdb/testdata");
    let mut files = vec![("redis-6.2.rdb", 9), ("redis-7.0.rdb", 10)];
    if server == Server::Valkey {
        files.push(("valkey-8.0.rdb", 11));
    }
    for (i, (file, version)) in files.into_iter().enumerate() {
        let read = read(&testdata.join(file)).await;
        assert_eq!(read.version, version);
        // The server loads the file itself at startup...
        let loaded_dir = tempfile::tempdir().unwrap();
        std::fs::copy(testdata.join(file), loaded_dir.path().join("dump.rdb")).unwrap();
        let ip = |n: usize| format!("127.30.203.{}", 11 + 2 * i + n);
        let loaded = RedisNode::start_in(
            &ip(0),
            loaded_dir.path(),
            &start_options(server, "allkeys-lfu"),
        );
        // ... and gets the same from the reader's payloads.
        let restored = start(server, &ip(1), "allkeys-lfu");
        restore(&restored, &read).await.unwrap();
        assert_same_data(&loaded, &restored, &read).await;
    }
}
