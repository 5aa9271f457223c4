//! Unit tests of the reader on real files (`testdata/`, made by `testdata/make.sh` with Redis 6.2,
//! 7.0 and Valkey 8.0) and on files built here for what those servers no longer write; every
//! truncation and many flipped bytes of the real files, each an error and never a panic.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

use super::header::kind;
use super::input::Input;
use super::length::{self, Length};
use super::*;

/// `SAVE` of Redis 6.2 (RDB 9): ziplists, quicklist 1, the first stream format, no functions.
const REDIS_6_2: &[u8] = include_bytes!("testdata/redis-6.2.rdb");
/// `SAVE` of Redis 7.0 (RDB 10): every type in both encodings, LFU counters (see make.sh).
const REDIS: &[u8] = include_bytes!("testdata/redis-7.0.rdb");
/// `SAVE` of Valkey 8.0 (RDB 11): the same data, LRU idle times.
const VALKEY: &[u8] = include_bytes!("testdata/valkey-8.0.rdb");

/// Reads a whole RDB: its version and its items.
async fn read_all<R: AsyncRead + Unpin>(input: R) -> Result<(u16, Vec<Item>), Error> {
    let mut reader = Reader::new(input).await?;
    let mut items = Vec::new();
    while let Some(item) = reader.next().await? {
        items.push(item);
    }
    Ok((reader.version(), items))
}

fn keys(items: &[Item]) -> Vec<&Entry> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Key(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn entry<'a>(items: &'a [Item], key: &[u8]) -> &'a Entry {
    keys(items)
        .into_iter()
        .find(|e| e.key == key)
        .unwrap_or_else(|| panic!("no key {}", key.escape_ascii()))
}

/// What a fixture holds beyond what they all hold.
struct Fixture {
    bytes: &'static [u8],
    version: u16,
    /// The aux field that names the server, and its value.
    server: (&'static str, &'static str),
    /// Keys whose RDB type differs between servers, and their types here.
    types: [(&'static str, u8); 9],
    /// Redis 7.0 and later save function libraries.
    functions: usize,
    /// LFU counters (Redis) or LRU idle times (Valkey).
    lfu: bool,
}

const FIXTURES: [Fixture; 3] = [
    Fixture {
        bytes: REDIS_6_2,
        version: 9,
        server: ("redis-ver", "6.2.14"),
        types: [
            ("list-small", kind::LIST_QUICKLIST),
            ("list-big", kind::LIST_QUICKLIST),
            ("set-small", kind::SET),
            ("set-big", kind::SET),
            ("zset-small", kind::ZSET_ZIPLIST),
            ("hash-small", kind::HASH_ZIPLIST),
            ("stream", kind::STREAM_LISTPACKS),
            ("empty-stream", kind::STREAM_LISTPACKS),
            ("zset-big", kind::ZSET_2),
        ],
        functions: 0,
        lfu: true,
    },
    Fixture {
        bytes: REDIS,
        version: 10,
        server: ("redis-ver", "7.0.15"),
        types: [
            ("list-small", kind::LIST_QUICKLIST_2),
            ("list-big", kind::LIST_QUICKLIST_2),
            ("set-small", kind::SET),
            ("set-big", kind::SET),
            ("zset-small", kind::ZSET_LISTPACK),
            ("hash-small", kind::HASH_LISTPACK),
            ("stream", kind::STREAM_LISTPACKS_2),
            ("empty-stream", kind::STREAM_LISTPACKS_2),
            ("zset-big", kind::ZSET_2),
        ],
        functions: 1,
        lfu: true,
    },
    Fixture {
        bytes: VALKEY,
        version: 11,
        server: ("valkey-ver", "8.0.1"),
        types: [
            ("list-small", kind::LIST_QUICKLIST_2),
            ("list-big", kind::LIST_QUICKLIST_2),
            ("set-small", kind::SET_LISTPACK),
            ("set-big", kind::SET),
            ("zset-small", kind::ZSET_LISTPACK),
            ("hash-small", kind::HASH_LISTPACK),
            ("stream", kind::STREAM_LISTPACKS_3),
            ("empty-stream", kind::STREAM_LISTPACKS_3),
            ("zset-big", kind::ZSET_2),
        ],
        functions: 1,
        lfu: false,
    },
];

#[tokio::test]
async fn reads_every_type_redis_6_2_to_valkey_8_0_write() {
    for f in FIXTURES {
        let (version, items) = read_all(f.bytes).await.unwrap();
        assert_eq!(version, f.version);
        let (name, value) = f.server;
        assert!(items.contains(&Item::Aux {
            key: name.into(),
            value: value.into()
        }));
        // An integer-encoded aux value comes as its digits.
        assert!(items.contains(&Item::Aux {
            key: b"redis-bits".to_vec(),
            value: b"64".to_vec()
        }));
        let all = keys(&items);
        let in_db = |db| all.iter().filter(|e| e.db == db).count();
        assert_eq!((in_db(0), in_db(1), in_db(9), all.len()), (19, 1, 1, 21));
        assert_eq!(entry(&items, b"in-db-9").db, 9);
        for e in &all {
            assert_eq!(verify_payload(&e.payload), Some(version), "{e:?}");
            assert_eq!(e.module, None);
            assert_eq!(e.freq.is_some(), f.lfu, "{e:?}");
            assert_eq!(e.idle_seconds.is_some(), !f.lfu, "{e:?}");
        }
        // Keys saved as integers and LZF come back as their bytes.
        assert_eq!(entry(&items, b"12345").type_name(), "string");
        assert_eq!(entry(&items, b"-7").type_name(), "string");
        entry(&items, &[b'k'; 60]);
        assert_eq!(entry(&items, b"ttl").expire_at_ms, Some(4_102_444_800_000));
        assert_eq!(entry(&items, b"str").expire_at_ms, None);
        // The string value as DUMP has it: type 0, length 5, "hello", version, CRC.
        assert_eq!(&entry(&items, b"str").payload[..7], b"\x00\x05hello");
        let same_everywhere = [
            ("int", kind::STRING),
            ("set-int", kind::SET_INTSET),
            ("hash-big", kind::HASH),
        ];
        for (key, rdb_type) in same_everywhere.into_iter().chain(f.types) {
            let e = entry(&items, key.as_bytes());
            assert_eq!(e.rdb_type(), rdb_type, "{key} in RDB {version}");
        }
        let functions: Vec<_> = items
            .iter()
            .filter_map(|i| match i {
                Item::Function { payload } => Some(payload),
                _ => None,
            })
            .collect();
        assert_eq!(functions.len(), f.functions);
        for payload in functions {
            assert_eq!(payload[0], 245, "FUNCTION RESTORE's opcode first");
            assert_eq!(verify_payload(payload), Some(version));
        }
    }
}

/// An input that hands out 1 to 7 bytes a read, so every field crosses buffer boundaries.
struct Trickle<'a> {
    bytes: &'a [u8],
    reads: usize,
}

impl AsyncRead for Trickle<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.reads += 1;
        let n = (self.reads % 7 + 1)
            .min(self.bytes.len())
            .min(buf.remaining());
        buf.put_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn reading_in_small_pieces_gives_the_same_items() {
    for file in [REDIS_6_2, REDIS, VALKEY] {
        let whole = read_all(file).await.unwrap();
        let pieces = read_all(Trickle {
            bytes: file,
            reads: 0,
        })
        .await
        .unwrap();
        assert_eq!(whole, pieces);
    }
}

#[tokio::test]
async fn every_truncation_is_an_error_that_says_where() {
    for file in [REDIS_6_2, REDIS, VALKEY] {
        for len in 0..file.len() {
            let e = read_all(&file[..len]).await.unwrap_err();
            assert!(
                matches!(e, Error::Truncated { offset, .. } if offset == len as u64),
                "cut at {len}: {e}"
            );
        }
    }
    let e = read_all(&REDIS[..400]).await.unwrap_err().to_string();
    assert!(e.starts_with("the RDB ends at byte 400 inside "), "{e}");
    assert!(e.ends_with(": the file is truncated"), "{e}");
}

#[tokio::test]
async fn every_flipped_byte_is_an_error() {
    for file in [REDIS_6_2, REDIS, VALKEY] {
        for at in 0..file.len() {
            for mask in [0x01, 0x10, 0x80, 0xff] {
                let mut bad = file.to_vec();
                bad[at] ^= mask;
                let result = read_all(bad.as_slice()).await;
                assert!(result.is_err(), "byte {at} ^ {mask:#x} read as valid");
            }
        }
    }
}

#[tokio::test]
async fn a_changed_value_fails_the_file_checksum_and_a_zero_one_is_not_checked() {
    let mut changed = VALKEY.to_vec();
    let at = VALKEY.windows(5).position(|w| w == b"8.0.1").unwrap();
    changed[at + 4] = b'2';
    let e = read_all(changed.as_slice()).await.unwrap_err();
    assert!(matches!(e, Error::Checksum { .. }), "{e}");
    assert!(e.to_string().contains("the file is corrupt"), "{e}");

    // `rdbchecksum no`: the trailer is 0 and the file is read as it is.
    let len = changed.len();
    changed[len - 8..].fill(0);
    read_all(changed.as_slice()).await.unwrap();
}

#[tokio::test]
async fn what_follows_the_rdb_is_left_for_the_caller() {
    let stream = [REDIS, b"*1\r\n$4\r\nPING\r\n"].concat();
    let mut reader = Reader::new(stream.as_slice()).await.unwrap();
    while reader.next().await.unwrap().is_some() {}
    assert_eq!(reader.offset(), REDIS.len() as u64);
    assert_eq!(reader.next().await.unwrap(), None, "None again");
    let (rest_of_input, buffered) = reader.into_inner();
    assert_eq!(
        [buffered.as_slice(), rest_of_input].concat(),
        b"*1\r\n$4\r\nPING\r\n"
    );
}

#[tokio::test]
async fn a_file_that_is_not_an_rdb_is_refused() {
    let e = read_all(&b"*2\r\n$4\r\nPING\r\n"[..]).await.unwrap_err();
    assert!(matches!(e, Error::NotRdb { .. }), "{e}");
    let e = read_all(&b"REDIS0013\xff"[..]).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "RDB version 13 is not supported: this reader knows versions 1 to 12"
    );
}

/// Builds RDB files by hand, for what the servers here do not write.
struct Rdb {
    version: u16,
    bytes: Vec<u8>,
}

impl Rdb {
    fn new(version: u16) -> Rdb {
        Rdb {
            version,
            bytes: format!("REDIS{version:04}").into_bytes(),
        }
    }

    fn raw(mut self, bytes: &[u8]) -> Rdb {
        self.bytes.extend_from_slice(bytes);
        self
    }

    /// `EOF` and, from RDB 5, the checksum.
    fn finish(mut self) -> Vec<u8> {
        self.bytes.push(0xff);
        if self.version >= 5 {
            let crc = crc64(&self.bytes);
            self.bytes.extend_from_slice(&crc.to_le_bytes());
        }
        self.bytes
    }
}

/// A raw string with its length prefix.
fn s(bytes: &[u8]) -> Vec<u8> {
    assert!(bytes.len() < 64);
    [&[bytes.len() as u8], bytes].concat()
}

#[tokio::test]
async fn old_formats_are_copied_as_they_are() {
    // RDB 4 (Redis 2.4): no checksum, expiries in seconds, a linked list, a sorted set with
    // scores as strings (digits, then NaN, +inf, -inf as 253, 254, 255).
    let list = [&[2u8][..], &s(b"a"), &s(b"b")].concat();
    let zset = [
        &[4u8][..],
        &s(b"m1"),
        b"\x031.5",
        &s(b"m2"),
        b"\xfd",
        &s(b"m3"),
        b"\xfe",
    ]
    .concat();
    let zset = [zset.as_slice(), &s(b"m4"), b"\xff"].concat();
    let file = Rdb::new(4)
        .raw(b"\xfe\x00")
        .raw(b"\xfd\x80\x00\x00\x00")
        .raw(&[&[kind::LIST][..], &s(b"l"), &list].concat())
        .raw(&[&[kind::ZSET][..], &s(b"z"), &zset].concat())
        .finish();
    let (version, items) = read_all(file.as_slice()).await.unwrap();
    assert_eq!(version, 4);
    let l = entry(&items, b"l");
    assert_eq!(l.expire_at_ms, Some(128_000), "seconds become milliseconds");
    assert_eq!(
        l.payload[..l.payload.len() - 10],
        [&[kind::LIST][..], &list].concat()
    );
    assert_eq!(verify_payload(&l.payload), Some(4));
    let z = entry(&items, b"z");
    assert_eq!(z.type_name(), "zset");
    assert_eq!(
        z.payload[..z.payload.len() - 10],
        [&[kind::ZSET][..], &zset].concat()
    );
}

/// A module ID: the 9-char name in 6-bit codes, then a 10-bit encoding version.
fn module_id(name: &str, version: u64) -> Vec<u8> {
    const CHARSET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let id = name.bytes().fold(0u64, |id, c| {
        id << 6 | CHARSET.iter().position(|&x| x == c).unwrap() as u64
    });
    [&[0x81u8][..], &(id << 10 | version).to_be_bytes()].concat()
}

#[tokio::test]
async fn a_module_value_is_copied_and_names_its_module() {
    // UINT 5, STRING "abc", DOUBLE, FLOAT, SINT 7, EOF.
    let data = [
        &[2u8, 5][..],
        &[5],
        &s(b"abc"),
        &[4],
        &1.5f64.to_le_bytes(),
        &[3],
        &2.5f32.to_le_bytes(),
        &[1, 7, 0],
    ]
    .concat();
    let value = [module_id("ReJSON-RL", 3), data].concat();
    let file = Rdb::new(11)
        .raw(&[&[kind::MODULE_2][..], &s(b"doc"), &value].concat())
        .raw(
            &[
                &[247u8][..],
                &module_id("MBbloom--", 2),
                &[2, 2],
                &[1, 9, 0],
            ]
            .concat(),
        )
        .finish();
    let (_, items) = read_all(file.as_slice()).await.unwrap();
    let doc = entry(&items, b"doc");
    assert_eq!(doc.module.as_deref(), Some("ReJSON-RL"));
    assert_eq!(doc.type_name(), "module");
    assert_eq!(doc.payload[1..doc.payload.len() - 10], value);
    assert_eq!(
        items[1],
        Item::ModuleAux {
            module: "MBbloom--".into()
        }
    );
}

#[tokio::test]
async fn what_cannot_be_restored_is_refused_naming_the_key() {
    let pre_ga = [
        &[kind::MODULE_PRE_GA][..],
        &s(b"old"),
        &module_id("graphdata", 1),
    ]
    .concat();
    let e = read_all(Rdb::new(8).raw(&pre_ga).finish().as_slice())
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "the RDB holds, at byte 14 in key \"old\", a value of module `graphdata` in the format of \
         Redis 4.0's release candidates, which only that module can read"
    );
    let field_ttl = [&[24u8][..], &s(b"h"), &[0; 20]].concat();
    let e = read_all(Rdb::new(12).raw(&field_ttl).finish().as_slice())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("in key \"h\", a hash with field expirations"),
        "{e}"
    );
    let e = read_all(Rdb::new(10).raw(b"\x08").finish().as_slice())
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the RDB is corrupt at byte 9: 8 is neither an opcode nor a value type"
    );
    assert!(matches!(
        read_all(Rdb::new(10).raw(b"\xf6").finish().as_slice()).await,
        Err(Error::Unsupported { offset: 9, .. })
    ));
}

#[tokio::test]
async fn a_failed_reader_stays_failed() {
    let mut reader = Reader::new(&REDIS[..300]).await.unwrap();
    let first = loop {
        if let Err(e) = reader.next().await {
            break e;
        }
    };
    assert!(matches!(first, Error::Truncated { .. }));
    let again = reader.next().await.unwrap_err().to_string();
    assert!(
        again.contains("reading stopped at an earlier error"),
        "{again}"
    );
}

/// An input over bytes, for the parts below the reader.
fn input(bytes: &[u8]) -> Input<&[u8]> {
    Input::new(bytes)
}

#[tokio::test]
async fn lengths_of_every_width() {
    for (bytes, expected) in [
        (&b"\x00"[..], Length::Plain(0)),
        (b"\x3f", Length::Plain(63)),
        (b"\x40\x40", Length::Plain(64)),
        (b"\x7f\xff", Length::Plain(16383)),
        (b"\x80\x00\x00\x40\x00", Length::Plain(16384)),
        (
            b"\x81\x00\x00\x00\x01\x00\x00\x00\x00",
            Length::Plain(1 << 32),
        ),
        (b"\xc0", Length::Special(0)),
        (b"\xc3", Length::Special(3)),
    ] {
        let mut i = input(bytes);
        assert_eq!(
            length::read_prefix(&mut i, "a length").await.unwrap(),
            expected
        );
        assert_eq!(i.offset(), bytes.len() as u64);
    }
    let e = length::read_prefix(&mut input(b"\x82"), "a length")
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the RDB is corrupt at byte 0: 0x82 does not start a length (a length)"
    );
    let e = length::read(&mut input(b"\xc0\x01"), "a count")
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("a string encoding (0) where a count belongs"),
        "{e}"
    );
}

#[tokio::test]
async fn strings_raw_integer_and_lzf() {
    let int32 = [&[0xc2u8][..], &(-100_000i32).to_le_bytes()].concat();
    for (bytes, expected) in [
        (&b"\x03abc"[..], &b"abc"[..]),
        (b"\xc0\xff", b"-1"),
        (b"\xc0\x7f", b"127"),
        (b"\xc1\x34\x12", b"4660"),
        (&int32, b"-100000"),
    ] {
        let mut i = input(bytes);
        assert_eq!(string::read(&mut i, "a string").await.unwrap(), expected);
        assert_eq!(i.offset(), bytes.len() as u64);
    }

    let text = b"user:profile:".repeat(20);
    let mut compressed = vec![0; text.len() * 2];
    let n = lzf_rust::compress(&text, &mut compressed).unwrap();
    compressed.truncate(n);
    let lzf = |claimed: usize| {
        [
            &[
                0xc3u8,
                0x40 | (n >> 8) as u8,
                n as u8,
                0x40 | (claimed >> 8) as u8,
                claimed as u8,
            ][..],
            &compressed,
        ]
        .concat()
    };
    assert_eq!(
        string::read(&mut input(&lzf(text.len())), "a key")
            .await
            .unwrap(),
        text
    );
    // Skipping consumes it whole without decoding.
    let whole = lzf(text.len());
    let mut i = input(&whole);
    string::skip(&mut i, "a value").await.unwrap();
    assert_eq!(i.offset(), whole.len() as u64);

    let e = string::read(&mut input(&lzf(text.len() - 1)), "a key")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("does not decompress"), "{e}");
    let e = string::read(&mut input(&lzf(text.len() + 1)), "a key")
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("gave {} bytes where it said", text.len())),
        "{e}"
    );
    // A claimed length LZF cannot reach is refused before anything is allocated.
    let e = string::read(
        &mut input(b"\xc3\x01\x81\x00\x00\x00\x01\x00\x00\x00\x00\x00"),
        "a key",
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("an LZF string of 1 bytes cannot hold"),
        "{e}"
    );
    let e = string::read(&mut input(b"\xc4"), "a key")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("unknown string encoding 4"), "{e}");
}

/// The reader and its futures can move between threads, so a restore can read every shard's
/// file on a task of its own (`tokio::spawn`).
#[test]
fn a_reader_can_run_on_any_task() {
    fn send<T: Send>(_: &T) {}
    async fn read_one(file: tokio::fs::File) -> Result<Option<Item>, Error> {
        Reader::new(file).await?.next().await
    }
    let future = async {
        let file = tokio::fs::File::open("dump.rdb").await.unwrap();
        read_one(file).await
    };
    send(&future);
}
