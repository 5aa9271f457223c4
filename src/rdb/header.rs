//! The RDB's header (`REDIS` and a 4-digit version), and the byte that starts every item: an
//! opcode (`AUX`, `SELECTDB`, an expiry, `EOF`, ...) or the type of a key's value.
//!
//! The numbers are Redis's `rdb.h` (Valkey keeps them): opcodes count down from 255, value
//! types up from 0.

use super::Error;
use super::error::escape;

/// The newest RDB version this reader knows: 12 (Redis 7.4). Redis 7.0 writes 10; Redis 7.2
/// and Valkey 8.0 write 11.
pub const MAX_VERSION: u16 = 12;

/// The header's length: `REDIS0011`.
pub(super) const LEN: usize = 9;

/// Parses the header into the file's RDB version.
pub(super) fn parse(header: &[u8; LEN]) -> Result<u16, Error> {
    let (magic, digits) = header.split_at(5);
    if magic != b"REDIS" || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Error::NotRdb {
            found: format!("\"{}\"", escape(header)),
        });
    }
    let version = digits
        .iter()
        .fold(0u16, |v, d| v * 10 + u16::from(d - b'0'));
    if !(1..=MAX_VERSION).contains(&version) {
        return Err(Error::Version { version });
    }
    Ok(version)
}

/// The first RDB version that has this opcode or value type (as early as the servers' history
/// allows, so no real file is refused): a newer one in an older file means a damaged header,
/// which a file before RDB 5 has no checksum to reveal.
pub(super) fn since(byte: u8) -> u16 {
    match byte {
        opcode::AUX | opcode::RESIZEDB | kind::LIST_QUICKLIST => 7,
        kind::ZSET_2 | kind::MODULE_PRE_GA | kind::MODULE_2 => 8,
        opcode::IDLE | opcode::FREQ | opcode::MODULE_AUX | kind::STREAM_LISTPACKS => 9,
        opcode::FUNCTION2 | opcode::FUNCTION_PRE_GA => 10,
        kind::HASH_LISTPACK..=kind::STREAM_LISTPACKS_2 => 10,
        kind::SET_LISTPACK | kind::STREAM_LISTPACKS_3 => 11,
        opcode::SLOT_INFO | kind::HASH_METADATA_FIRST..=kind::HASH_METADATA_LAST => 12,
        _ => 1,
    }
}

/// Opcodes: the items that are not a key.
pub(super) mod opcode {
    /// Redis 7.4: the number of keys of a cluster slot (a hint for the loader).
    pub const SLOT_INFO: u8 = 244;
    /// A function library (Redis 7.0 and later).
    pub const FUNCTION2: u8 = 245;
    /// A function library as Redis 7.0's release candidates wrote it.
    pub const FUNCTION_PRE_GA: u8 = 246;
    /// A module's global data.
    pub const MODULE_AUX: u8 = 247;
    /// The next key's LRU idle time, in seconds.
    pub const IDLE: u8 = 248;
    /// The next key's LFU counter.
    pub const FREQ: u8 = 249;
    /// A string field about the file (`redis-ver`, `repl-id`, ...).
    pub const AUX: u8 = 250;
    /// The sizes of the next database's tables (a hint for the loader).
    pub const RESIZEDB: u8 = 251;
    /// The next key's expiry, in milliseconds since the epoch.
    pub const EXPIRETIME_MS: u8 = 252;
    /// The next key's expiry, in seconds since the epoch (files before Redis 2.6).
    pub const EXPIRETIME: u8 = 253;
    /// The database the following keys belong to.
    pub const SELECTDB: u8 = 254;
    /// The end of the file (the checksum follows).
    pub const EOF: u8 = 255;
}

/// Value types: the byte before a key, and the first byte of its `DUMP` payload.
pub(super) mod kind {
    /// A string.
    pub const STRING: u8 = 0;
    /// A list as a linked list of strings (before Redis 3.2).
    pub const LIST: u8 = 1;
    /// A set as a hash table.
    pub const SET: u8 = 2;
    /// A sorted set with scores as strings (before Redis 4.0).
    pub const ZSET: u8 = 3;
    /// A hash as a hash table.
    pub const HASH: u8 = 4;
    /// A sorted set as a skip list, scores as binary doubles.
    pub const ZSET_2: u8 = 5;
    /// A module value as Redis 4.0's release candidates wrote it.
    pub const MODULE_PRE_GA: u8 = 6;
    /// A module value with opcodes that describe its layout.
    pub const MODULE_2: u8 = 7;
    /// A hash as a zipmap (before Redis 2.6).
    pub const HASH_ZIPMAP: u8 = 9;
    /// A list as a ziplist (before Redis 3.2).
    pub const LIST_ZIPLIST: u8 = 10;
    /// A set of integers.
    pub const SET_INTSET: u8 = 11;
    /// A sorted set as a ziplist (before Redis 7.0).
    pub const ZSET_ZIPLIST: u8 = 12;
    /// A hash as a ziplist (before Redis 7.0).
    pub const HASH_ZIPLIST: u8 = 13;
    /// A list as a quicklist of ziplists (Redis 3.2 to 6.2).
    pub const LIST_QUICKLIST: u8 = 14;
    /// A stream (Redis 5.0 to 6.2).
    pub const STREAM_LISTPACKS: u8 = 15;
    /// A hash as a listpack.
    pub const HASH_LISTPACK: u8 = 16;
    /// A sorted set as a listpack.
    pub const ZSET_LISTPACK: u8 = 17;
    /// A list as a quicklist of listpacks and plain nodes.
    pub const LIST_QUICKLIST_2: u8 = 18;
    /// A stream with first id, max deleted id, entries added and group offsets (Redis 7.0).
    pub const STREAM_LISTPACKS_2: u8 = 19;
    /// A set as a listpack (Redis 7.2, Valkey 8.0).
    pub const SET_LISTPACK: u8 = 20;
    /// A stream whose consumers have an active time (Redis 7.2, Valkey 8.0).
    pub const STREAM_LISTPACKS_3: u8 = 21;
    /// The first of Redis 7.4's hashes with field expirations (22 to 25).
    pub const HASH_METADATA_FIRST: u8 = 22;
    /// The last of them.
    pub const HASH_METADATA_LAST: u8 = 25;

    /// The name `TYPE` gives a value of this type, if it is one.
    pub fn name(kind: u8) -> Option<&'static str> {
        Some(match kind {
            STRING => "string",
            LIST | LIST_ZIPLIST | LIST_QUICKLIST | LIST_QUICKLIST_2 => "list",
            SET | SET_INTSET | SET_LISTPACK => "set",
            ZSET | ZSET_2 | ZSET_ZIPLIST | ZSET_LISTPACK => "zset",
            HASH | HASH_ZIPMAP | HASH_ZIPLIST | HASH_LISTPACK => "hash",
            HASH_METADATA_FIRST..=HASH_METADATA_LAST => "hash",
            STREAM_LISTPACKS | STREAM_LISTPACKS_2 | STREAM_LISTPACKS_3 => "stream",
            MODULE_PRE_GA | MODULE_2 => "module",
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_gives_the_version() {
        assert_eq!(parse(b"REDIS0010").unwrap(), 10);
        assert_eq!(parse(b"REDIS0011").unwrap(), 11);
        assert_eq!(parse(b"REDIS0001").unwrap(), 1);
    }

    #[test]
    fn anything_else_is_refused_saying_what_it_starts_with() {
        let e = parse(b"PK\x03\x04abcde").unwrap_err();
        assert_eq!(
            e.to_string(),
            "not an RDB file: it starts with \"PK\\x03\\x04abcde\", where `REDIS` and a 4-digit \
             version belong"
        );
        assert!(matches!(parse(b"REDIS00a1"), Err(Error::NotRdb { .. })));
        assert!(matches!(
            parse(b"REDIS0013"),
            Err(Error::Version { version: 13 })
        ));
        assert!(matches!(
            parse(b"REDIS0000"),
            Err(Error::Version { version: 0 })
        ));
    }
}
