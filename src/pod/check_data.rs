//! `check-data DIR SERVER`: run by the server container's startup before the server itself.
//! Refuses (exit 3, one line saying why and what to do) when the data in `DIR` was written by a
//! server newer than `SERVER` can read, so the pod stops with its data intact rather than
//! starting on it.
//!
//! The server would refuse too (Redis 7.0 on Valkey 8.0's files: `Can't handle RDB format
//! version 11`), but its last line then is `Unrecoverable error reading the append only file`,
//! and the usual advice for that, `redis-check-aof --fix`, truncates the file at the first item
//! it cannot parse. This line names the files, both versions and the way out: roll forward again.
//!
//! Which file: what the server loads at start with `appendonly yes` (every kustomization here):
//! the base named in `appendonlydir/appendonly.aof.manifest` when it begins with an RDB header
//! (an AOF with an RDB preamble, the default), else `dump.rdb` when there is no AOF. Its header
//! says the RDB version (`REDIS0011`, or Valkey 9's `VALKEY080`); [`Server::reads`] says whether
//! the server takes it. Anything it cannot judge (no data yet, a server or file it does not
//! know) is logged and let through: the server decides.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::server::Server;
use crate::{Error, Result};

/// The AOF's directory and manifest, as Redis 7 and Valkey name them by default.
const AOF_MANIFEST: &str = "appendonlydir/appendonly.aof.manifest";

/// The RDB file the server loads without an AOF.
const RDB_FILE: &str = "dump.rdb";

/// Checks that `server` (a program on the PATH, `redis-server` or `valkey-server`) can load the
/// data in `dir`. `Ok` with what it found; [`Error::Refused`] when it cannot.
pub fn check(dir: &Path, server: &str) -> Result<String> {
    let Some(file) = data_file(dir)? else {
        return Ok(format!(
            "no data in {} yet: nothing to check",
            dir.display()
        ));
    };
    let Some(rdb) = rdb_version(&file)? else {
        return Ok(format!(
            "{} has no RDB header: nothing to check",
            file.display()
        ));
    };
    let Some(running) = version_of(server)? else {
        return Ok(format!(
            "{} is RDB {rdb}, and `{server} --version` names no server this check knows: \
             starting it",
            file.display()
        ));
    };
    match running.reads(rdb) {
        Some(true) => Ok(format!(
            "{} is RDB {rdb}, which {running} reads",
            file.display()
        )),
        None => Ok(format!(
            "{} is RDB {rdb}; {running} is newer than this check knows: starting it",
            file.display()
        )),
        Some(false) => Err(Error::Refused(format!(
            "{} is RDB version {rdb} ({}), which {running} ({server}) cannot load: going back to \
             an older server is not supported. Roll this pod forward again to the server that \
             wrote the data (or a newer one); the data is intact: keep the volume, and do not run \
             redis-check-aof --fix on it",
            file.display(),
            writers(rdb)
        ))),
    }
}

/// Which servers write RDB version `rdb`, for the refusal.
fn writers(rdb: u16) -> &'static str {
    match rdb {
        11 => "written by Redis 7.2 or Valkey 7.2 to 8.1",
        12 => "written by Redis 7.4 or later",
        crate::server::VALKEY_9_RDB => "written by Valkey 9",
        v if v > 12 => "written by a Redis newer than 7.4",
        _ => "written by an older server",
    }
}

/// The file the server would load from `dir`, if any.
fn data_file(dir: &Path) -> Result<Option<PathBuf>> {
    let manifest = dir.join(AOF_MANIFEST);
    match std::fs::read_to_string(&manifest) {
        // A manifest without a base (only increments) has no RDB to judge.
        Ok(text) => {
            let parent = manifest.parent().expect("the manifest is in appendonlydir");
            Ok(base_file(&text).map(|base| parent.join(base)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let rdb = dir.join(RDB_FILE);
            Ok(rdb.is_file().then_some(rdb))
        }
        Err(e) => Err(Error::Config(format!("read {}: {e}", manifest.display()))),
    }
}

/// The base file's name in an AOF manifest: the line `file <name> seq <n> type b`.
fn base_file(manifest: &str) -> Option<String> {
    manifest.lines().find_map(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        let field = |key: &str| {
            words
                .chunks(2)
                .find(|pair| pair[0] == key)
                .and_then(|pair| pair.get(1).copied())
        };
        (field("type") == Some("b"))
            .then(|| field("file").map(|f| f.trim_matches('"').to_string()))
            .flatten()
    })
}

/// The RDB version in a file's header (`REDIS0011` → 11, `VALKEY080` → 80); `None` when the
/// file does not start with one (a plain AOF base).
fn rdb_version(path: &Path) -> Result<Option<u16>> {
    let mut header = Vec::with_capacity(9);
    std::fs::File::open(path)
        .and_then(|f| f.take(9).read_to_end(&mut header))
        .map_err(|e| Error::Config(format!("read {}: {e}", path.display())))?;
    Ok(parse_header(&header))
}

/// See [`rdb_version`].
fn parse_header(header: &[u8]) -> Option<u16> {
    let digits = header
        .strip_prefix(b"REDIS")
        .or_else(|| header.strip_prefix(b"VALKEY"))?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// What `server --version` says it is; `None` when it names no server [`Server`] knows.
fn version_of(server: &str) -> Result<Option<Server>> {
    let out = Command::new(server)
        .arg("--version")
        .output()
        .map_err(|e| {
            Error::Config(format!(
                "run `{server} --version`: {e}: SERVER_BINARY must name the server program"
            ))
        })?;
    Ok(Server::from_version_output(&String::from_utf8_lossy(
        &out.stdout,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_give_the_rdb_version() {
        assert_eq!(parse_header(b"REDIS0010"), Some(10));
        assert_eq!(parse_header(b"REDIS0011"), Some(11));
        assert_eq!(parse_header(b"VALKEY080"), Some(80));
        assert_eq!(parse_header(b"*2\r\n$6\r\nSE"), None);
        assert_eq!(parse_header(b"REDIS"), None);
        assert_eq!(parse_header(b""), None);
    }

    #[test]
    fn the_manifest_names_the_base() {
        let manifest = "file appendonly.aof.2.base.rdb seq 2 type b\n\
                        file appendonly.aof.2.incr.aof seq 2 type i\n";
        assert_eq!(
            base_file(manifest).as_deref(),
            Some("appendonly.aof.2.base.rdb")
        );
        let quoted = "file \"appendonly.aof.1.base.aof\" seq 1 type b\n";
        assert_eq!(
            base_file(quoted).as_deref(),
            Some("appendonly.aof.1.base.aof")
        );
        assert_eq!(base_file("file x.incr.aof seq 1 type i\n"), None);
    }

    #[test]
    fn a_new_volume_or_a_plain_aof_has_nothing_to_check() {
        let dir = tempfile::tempdir().unwrap();
        let said = check(dir.path(), "true").unwrap();
        assert!(said.contains("no data"), "{said}");
        std::fs::create_dir(dir.path().join("appendonlydir")).unwrap();
        std::fs::write(
            dir.path().join(AOF_MANIFEST),
            "file appendonly.aof.1.base.aof seq 1 type b\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("appendonlydir/appendonly.aof.1.base.aof"),
            "*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n",
        )
        .unwrap();
        let said = check(dir.path(), "true").unwrap();
        assert!(said.contains("no RDB header"), "{said}");
    }

    #[test]
    fn a_server_that_is_not_there_is_a_configuration_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(RDB_FILE), "REDIS0011").unwrap();
        let err = check(dir.path(), "/nonexistent/redis-server").unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err}");
    }
}
