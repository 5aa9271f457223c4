//! What a backup holds, as the JSON file written last (`manifest.json`): when it was taken, by
//! which tool, of which servers, the topology and slot map at the cut, and per shard its
//! replication ID, the offset of its snapshot (the fork, X) and of the cut (O), its key count at
//! the cut, and the size and SHA-256 of its two files: the snapshot (`shard-N.rdb`, the RDB as the
//! master sent it) and the tail (`shard-N.tail`, the replication stream from X to O, whole
//! commands as the master sent them).

use serde::{Deserialize, Serialize};

/// The manifest format this version writes and reads.
pub const FORMAT: u32 = 1;

/// A backup's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// The backup's name (its UTC start time).
    pub name: String,
    /// When the cut was made (RFC 3339, UTC).
    pub cut_at: String,
    /// The tool and its version.
    pub tool: String,
    /// The longest write pause of the cut on any master, in microseconds, by the masters' clocks.
    pub pause_us: u64,
    /// Every node of the source cluster at the cut.
    pub topology: Vec<Member>,
    /// One entry per master.
    pub shards: Vec<Shard>,
}

/// One node of the source cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// Its node ID.
    pub id: String,
    /// Its name (pod, or host:port).
    pub name: String,
    /// Its address.
    pub addr: String,
    /// For a replica, its master's ID.
    pub master: Option<String>,
    /// Its slots, as `CLUSTER NODES` prints them (`0-5460`).
    pub slots: String,
}

/// One master's part of the backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shard {
    /// The master's node ID.
    pub master: String,
    /// Its slots, as `CLUSTER NODES` prints them.
    pub slots: String,
    /// The server (`redis` or `valkey`) and its version (`7.0.15`).
    pub server: String,
    /// The snapshot's RDB version (from its header).
    pub rdb_version: u16,
    /// The master's replication ID (`+FULLRESYNC <replid> <offset>`).
    pub replid: String,
    /// The offset of the snapshot (the fork): X.
    pub snapshot_offset: u64,
    /// The offset at the cut: O. The tail holds the stream from X to O.
    pub cut_offset: u64,
    /// Keys at the cut (`INFO keyspace`, read while writes were paused).
    pub keys: u64,
    /// The write pause on this master, by its own clock, in microseconds.
    pub pause_us: u64,
    /// The snapshot file.
    pub rdb: File,
    /// The tail file.
    pub tail: File,
}

/// One file of the backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// Its name in the backup's folder.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
}

impl Manifest {
    /// The keys at the cut, over every shard.
    pub fn keys(&self) -> u64 {
        self.shards.iter().map(|s| s.keys).sum()
    }

    /// The highest RDB version among the shards.
    pub fn rdb_version(&self) -> u16 {
        self.shards.iter().map(|s| s.rdb_version).max().unwrap_or(0)
    }

    /// Every file, in shard order.
    pub fn files(&self) -> impl Iterator<Item = &File> {
        self.shards.iter().flat_map(|s| [&s.rdb, &s.tail])
    }
}
