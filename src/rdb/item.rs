//! What the reader yields: the items of an RDB that a restore puts back or looks at.

use std::fmt;

use super::error::escape;
use super::header::kind;

/// One item of an RDB, in file order.
#[derive(Clone, PartialEq, Eq)]
pub enum Item {
    /// A field about the file: `redis-ver` (or `valkey-ver`), `redis-bits`, `ctime`,
    /// `used-mem`, `repl-id`, `repl-offset`, `aof-base`, ... (integers as their decimal digits).
    Aux {
        /// The field's name.
        key: Vec<u8>,
        /// Its value.
        value: Vec<u8>,
    },
    /// A key and its value.
    Key(Entry),
    /// A function library, as `FUNCTION RESTORE` takes it (one library a payload).
    Function {
        /// The payload.
        payload: Vec<u8>,
    },
    /// A module's global data (its configuration, an index definition, ...): no command restores
    /// it, so the reader only names the module; whoever restores decides whether to go on.
    ModuleAux {
        /// The module's type name.
        module: String,
    },
}

/// A key, its value as `DUMP` gives it, and what `RESTORE` takes with it.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    /// The database (always 0 in a cluster).
    pub db: u32,
    /// The key's bytes (a key saved as an integer or LZF-compressed, decoded).
    pub key: Vec<u8>,
    /// When the key expires, in milliseconds since the epoch (`RESTORE ... ABSTTL`); it may be
    /// in the past (the key expired after the save), and `RESTORE` then does not create it.
    pub expire_at_ms: Option<i64>,
    /// Seconds since the key was last used, when the server evicts by LRU (`IDLETIME`).
    pub idle_seconds: Option<u64>,
    /// The key's access frequency counter, when the server evicts by LFU (`FREQ`).
    pub freq: Option<u8>,
    /// The value exactly as `DUMP` gives it: its type byte, its bytes as the server wrote them,
    /// the file's RDB version (2 bytes) and the CRC-64 (8 bytes). `RESTORE` takes it as it is.
    pub payload: Vec<u8>,
    /// For a module value: the module's type name (the target needs that module loaded).
    pub module: Option<String>,
}

impl Entry {
    /// The RDB type of the value (the payload's first byte): it says the encoding too. (255, no
    /// type, for an entry made with an empty payload: the reader never makes one.)
    pub fn rdb_type(&self) -> u8 {
        self.payload.first().copied().unwrap_or(u8::MAX)
    }

    /// The value's type as `TYPE` names it: `string`, `list`, `set`, `zset`, `hash`, `stream`
    /// or `module`.
    pub fn type_name(&self) -> &'static str {
        kind::name(self.rdb_type()).unwrap_or("unknown")
    }
}

impl fmt::Debug for Entry {
    /// Keys escaped and payloads by size: a failing test prints one line, not a megabyte.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("db", &self.db)
            .field("key", &escape(&self.key))
            .field("expire_at_ms", &self.expire_at_ms)
            .field("idle_seconds", &self.idle_seconds)
            .field("freq", &self.freq)
            .field("type", &self.type_name())
            .field("payload", &format_args!("{} bytes", self.payload.len()))
            .field("module", &self.module)
            .finish()
    }
}

impl fmt::Debug for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Aux { key, value } => f
                .debug_struct("Aux")
                .field("key", &escape(key))
                .field("value", &escape(value))
                .finish(),
            Item::Key(entry) => entry.fmt(f),
            Item::Function { payload } => f
                .debug_struct("Function")
                .field("payload", &format_args!("{} bytes", payload.len()))
                .finish(),
            Item::ModuleAux { module } => {
                f.debug_struct("ModuleAux").field("module", module).finish()
            }
        }
    }
}
