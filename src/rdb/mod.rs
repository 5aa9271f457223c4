//! Reads RDB files (what `SAVE`, `BGSAVE` and a full resync write) one item at a time, and turns
//! every key into the payload `RESTORE` takes, so a backup can be put back into a cluster of any
//! shape, key by key.
//!
//! # Interface
//!
//! ```no_run
//! # async fn example() -> Result<(), redis_cluster_bootstrap::rdb::Error> {
//! use redis_cluster_bootstrap::rdb::{Item, Reader};
//! use redis_cluster_bootstrap::slots::key_slot;
//!
//! let file = tokio::fs::File::open("dump.rdb").await.expect("open");
//! let mut reader = Reader::new(file).await?; // checks `REDIS00NN`
//! let version = reader.version(); // 10 for Redis 7.0, 11 for Redis 7.2 and Valkey 8.0
//! while let Some(item) = reader.next().await? {
//!     match item {
//!         Item::Key(entry) => {
//!             // RESTORE <entry.key> <entry.expire_at_ms or 0> <entry.payload> ABSTTL
//!             //   [IDLETIME <entry.idle_seconds>] [FREQ <entry.freq>]
//!             // on the master that owns key_slot(&entry.key).
//!             let _slot = key_slot(&entry.key);
//!         }
//!         Item::Function { payload } => { /* FUNCTION RESTORE <payload> */ }
//!         Item::Aux { key, value } => { /* redis-ver, repl-id, repl-offset, ... */ }
//!         Item::ModuleAux { module } => { /* a module's global data: no command restores it */ }
//!     }
//! }
//! // None: the end of the file was reached and its checksum verified.
//! # let _ = version;
//! # Ok(())
//! # }
//! ```
//!
//! - [`Reader`] reads any `tokio::io::AsyncRead + Unpin` (a file, an object-store stream, a
//!   replication socket) through a bounded buffer: only the value being read is held in memory,
//!   never the file. After the last item, [`Reader::into_inner`] gives back the input and the
//!   bytes read past the RDB's end (a replication stream goes on after it).
//! - [`Item::Key`] carries an [`Entry`]: its database, its key (decoded: an integer or LZF key
//!   as its bytes), its absolute expiry in milliseconds (`RESTORE ... ABSTTL`), the LRU idle
//!   time or LFU counter when the file has them (`IDLETIME`, `FREQ`), and its payload: the value
//!   exactly as `DUMP` gives it (type byte, the value's bytes copied, not re-encoded, the file's
//!   2-byte RDB version, the CRC-64).
//! - [`Item::Function`] is one function library as `FUNCTION RESTORE` takes it.
//! - The file's trailing CRC-64 is verified when it is not 0 (`rdbchecksum no` writes 0).
//! - Every failure is an [`Error`] that says where (the byte offset) and what was expected, and
//!   the key when inside one; a truncated or corrupt file never panics.
//! - The key's hash slot is [`crate::slots::key_slot`].
//!
//! # What is read
//!
//! Every value type and encoding Redis 7.0 (RDB 10), Redis 7.2 and Valkey 8.0 (RDB 11) write,
//! and what older servers wrote (Redis 6.2's ziplists, quicklist 1 and first stream format;
//! zipmaps, linked lists, string-encoded scores, second-resolution expiries before that):
//! strings, lists, sets, sorted sets, hashes, streams with their consumer groups, and module
//! values in the self-describing format of Redis 4.0 and later, which are copied like any value
//! (the target needs the module loaded to restore them; [`Entry::module`] names it). Refused
//! with an error naming the key: module values from Redis 4.0's release candidates (they cannot
//! be skipped without the module) and Redis 7.4's hashes with field expirations (RDB 12; no
//! server here writes them). An opcode or type newer than the header's version is corruption.
//!
//! Skipped, because nothing restores them and nothing depends on them: the hints `RESIZEDB`
//! and `SLOT-INFO` (table sizes for the loader).
//!
//! # Layout
//!
//! - `input`: the bounded buffer, the offset of every byte, the running file checksum, and the
//!   capture of a value's bytes.
//! - `header`: the `REDISnnnn` header, the opcodes and the value types.
//! - `length` and `string`: the length prefix and strings (raw, integer, LZF).
//! - `value`: copies each value type; `stream` and `module` for the two with a structure
//!   of their own.
//! - `payload`: the `DUMP` framing (RDB version and CRC-64) and its check.
//! - `checksum`: the CRC-64 of Redis and the check of the file's trailer.
//! - `item`: what the reader yields; `reader`: the loop over opcodes.

mod checksum;
mod error;
mod header;
mod input;
mod item;
mod length;
mod module;
mod payload;
mod reader;
mod stream;
mod string;
mod value;

pub use checksum::crc64;
pub use error::Error;
pub use header::MAX_VERSION;
pub use item::{Entry, Item};
pub use payload::verify_payload;
pub use reader::Reader;

#[cfg(test)]
mod tests;
