//! Which server a node runs (Redis or Valkey, and its version) and which data files it can load:
//! the RDB version each release writes and the versions it reads.
//!
//! A newer server loads an older one's files (Redis 7.0's RDB 10 in Valkey 8.0), never the other
//! way round: Redis 7.0 refuses Valkey 8.0's RDB 11, Valkey refuses Redis 7.4's RDB 12 and up
//! (the range 12-79 is "foreign" to it), and only Valkey 9 reads its own RDB 80. So a roll forward
//! (a newer server) is safe, and a roll backwards may meet files the older server cannot load:
//! `check-data` ([`crate::pod::check_data`]) stops such a pod before its server starts, and the
//! planner refuses a replica that cannot load its master's full sync.
//!
//! The numbers come from the servers' `rdb.h` (`RDB_VERSION`) at each release. A release newer
//! than this table knows is not judged ([`Server::reads`] returns `None`): it may read more.

use std::collections::HashMap;
use std::fmt;

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Redis.
    Redis,
    /// Valkey (a fork of Redis 7.2.4, which it still reports as `redis_version`).
    Valkey,
}

/// A server and its release, e.g. Valkey 8.0.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Server {
    /// Redis or Valkey.
    pub kind: Kind,
    /// Major, minor, patch.
    pub version: (u32, u32, u32),
}

/// The first release of each RDB version a Redis writes, newest first. 6.0 and 6.2 kept 9; 7.4
/// through 8.4 write 12.
const REDIS_RDB: [((u32, u32), u16); 8] = [
    ((7, 4), 12),
    ((7, 2), 11),
    ((7, 0), 10),
    ((5, 0), 9),
    ((4, 0), 8),
    ((3, 2), 7),
    ((2, 6), 6),
    ((0, 0), 5),
];

/// The newest Redis release whose RDB version this table is sure of.
const REDIS_KNOWN: (u32, u32) = (8, 4);

/// The newest Valkey release whose RDB versions this table is sure of.
const VALKEY_KNOWN: (u32, u32) = (9, 1);

/// Valkey 9's own RDB version (`VALKEY080` in the header); Valkey 7.2 to 8.1 write 11.
pub const VALKEY_9_RDB: u16 = 80;

impl Server {
    /// Parses the first line of `redis-server --version` or `valkey-server --version`:
    /// `Redis server v=7.0.15 sha=...`, `Valkey server v=8.0.1 sha=...`.
    pub fn from_version_output(text: &str) -> Option<Server> {
        let line = text.lines().next()?;
        let mut words = line.split_whitespace();
        let kind = match words.next()? {
            "Redis" => Kind::Redis,
            "Valkey" => Kind::Valkey,
            _ => return None,
        };
        let version = words.find_map(|w| w.strip_prefix("v="))?;
        Some(Server {
            kind,
            version: parse_version(version)?,
        })
    }

    /// Reads the `server` section of a node's `INFO`: Valkey says `server_name:valkey` and
    /// `valkey_version:8.0.1` (its `redis_version` stays 7.2.4); Redis says `redis_version`.
    pub fn from_info(fields: &HashMap<&str, &str>) -> Option<Server> {
        let (kind, version) = match fields.get("valkey_version") {
            Some(v) => (Kind::Valkey, v),
            None => (Kind::Redis, fields.get("redis_version")?),
        };
        Some(Server {
            kind,
            version: parse_version(version)?,
        })
    }

    /// The RDB version of the files it writes (its AOF's base, `dump.rdb`); `None` for a
    /// release newer than this table knows.
    pub fn writes(&self) -> Option<u16> {
        let (major, minor, _) = self.version;
        match self.kind {
            Kind::Redis if (major, minor) <= REDIS_KNOWN => REDIS_RDB
                .iter()
                .find(|(since, _)| (major, minor) >= *since)
                .map(|(_, rdb)| *rdb),
            Kind::Valkey if (major, minor) > VALKEY_KNOWN => None,
            Kind::Valkey if major >= 9 => Some(VALKEY_9_RDB),
            Kind::Valkey => Some(11),
            Kind::Redis => None,
        }
    }

    /// The RDB version it sends a replica running `replica` in a full sync: Valkey 9 sends its
    /// own 80 only to replicas of Valkey 9 or later, RDB 11 to the others (they say their version
    /// when they connect); every other server sends what it writes.
    pub fn writes_for(&self, replica: &Server) -> Option<u16> {
        let writes = self.writes()?;
        let replica_reads_80 = replica.kind == Kind::Valkey && replica.version.0 >= 9;
        Some(if writes == VALKEY_9_RDB && !replica_reads_80 {
            11
        } else {
            writes
        })
    }

    /// Whether it loads a file of RDB version `rdb`; `None` when this table cannot tell (a
    /// release newer than it knows).
    pub fn reads(&self, rdb: u16) -> Option<bool> {
        let own = self.writes()?;
        Some(match self.kind {
            // Valkey reads what Redis 7.2 wrote and its own 80, never Redis 7.4's 12-79.
            Kind::Valkey => rdb <= 11 || rdb == own,
            Kind::Redis => rdb <= own,
        })
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (major, minor, patch) = self.version;
        let name = match self.kind {
            Kind::Redis => "Redis",
            Kind::Valkey => "Valkey",
        };
        write!(f, "{name} {major}.{minor}.{patch}")
    }
}

/// `7.0.15` → (7, 0, 15); a missing patch is 0.
fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let mut parts = text.trim().split('.').map(|p| p.parse::<u32>().ok());
    let major = parts.next()??;
    let minor = parts.next()??;
    let patch = parts.next().unwrap_or(Some(0))?;
    Some((major, minor, patch))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis(major: u32, minor: u32) -> Server {
        Server {
            kind: Kind::Redis,
            version: (major, minor, 0),
        }
    }

    fn valkey(major: u32, minor: u32) -> Server {
        Server {
            kind: Kind::Valkey,
            version: (major, minor, 0),
        }
    }

    #[test]
    fn the_version_line_names_the_server() {
        let r = "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=ae4d";
        assert_eq!(
            Server::from_version_output(r),
            Some(Server {
                kind: Kind::Redis,
                version: (7, 0, 15)
            })
        );
        let v = "Valkey server v=8.0.1 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=39f7";
        let valkey = Server::from_version_output(v).unwrap();
        assert_eq!(valkey.to_string(), "Valkey 8.0.1");
        assert_eq!(Server::from_version_output("KeyDB server v=6.3.4"), None);
        assert_eq!(Server::from_version_output(""), None);
    }

    #[test]
    fn info_tells_valkey_from_the_redis_version_it_reports() {
        let info = "redis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.0.1\r\n";
        let fields = crate::observation::fields(info);
        assert_eq!(
            Server::from_info(&fields).unwrap().to_string(),
            "Valkey 8.0.1"
        );
        let fields = crate::observation::fields("redis_version:7.0.15\r\n");
        assert_eq!(
            Server::from_info(&fields).unwrap().to_string(),
            "Redis 7.0.15"
        );
        assert_eq!(Server::from_info(&HashMap::new()), None);
    }

    #[test]
    fn each_release_writes_its_rdb_version() {
        let cases = [
            (redis(6, 2), Some(9)),
            (redis(7, 0), Some(10)),
            (redis(7, 2), Some(11)),
            (redis(7, 4), Some(12)),
            (redis(8, 4), Some(12)),
            (redis(8, 6), None),
            (valkey(7, 2), Some(11)),
            (valkey(8, 0), Some(11)),
            (valkey(8, 1), Some(11)),
            (valkey(9, 0), Some(80)),
            (valkey(10, 0), None),
        ];
        for (server, rdb) in cases {
            assert_eq!(server.writes(), rdb, "{server}");
        }
    }

    #[test]
    fn forward_reads_backward_does_not() {
        // Redis 7.0 -> Valkey 8.0 and back.
        assert_eq!(valkey(8, 0).reads(10), Some(true));
        assert_eq!(redis(7, 0).reads(11), Some(false));
        // Redis 7.2 <-> Valkey 8.0: both RDB 11.
        assert_eq!(redis(7, 2).reads(11), Some(true));
        assert_eq!(valkey(8, 0).reads(11), Some(true));
        // Redis 7.4 and later write what no Valkey reads.
        assert_eq!(valkey(8, 0).reads(12), Some(false));
        assert_eq!(valkey(9, 0).reads(12), Some(false));
        // Valkey 9's own files: only Valkey 9 reads them.
        assert_eq!(valkey(9, 0).reads(80), Some(true));
        assert_eq!(valkey(8, 1).reads(80), Some(false));
        assert_eq!(redis(8, 0).reads(80), Some(false));
        // A release newer than the table is not judged.
        assert_eq!(redis(9, 0).reads(13), None);
    }

    #[test]
    fn valkey_9_sends_older_replicas_rdb_11() {
        assert_eq!(valkey(9, 0).writes_for(&valkey(8, 0)), Some(11));
        assert_eq!(valkey(9, 0).writes_for(&redis(7, 0)), Some(11));
        assert_eq!(valkey(9, 0).writes_for(&valkey(9, 1)), Some(80));
        assert_eq!(valkey(8, 0).writes_for(&redis(7, 0)), Some(11));
        assert_eq!(redis(7, 0).writes_for(&valkey(8, 0)), Some(10));
    }
}
