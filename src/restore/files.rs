//! Before anything is written: every file the manifest names is there and has its size and
//! SHA-256 (else exit 3, nothing written), and the target's servers can load the backup's RDB
//! version.

use futures::future::try_join_all;
use tracing::info;

use crate::observation::fields;
use crate::store::{Download, Manifest, Store};
use crate::{Error, Result};

/// Checks every file of backup `name` against `manifest`.
pub async fn check(store: &Store, name: &str, manifest: &Manifest) -> Result<()> {
    let checks = manifest.files().map(|file| async move {
        let path = store.file(name, &file.name);
        let url = format!("{}/{}", store.url(name), file.name);
        let download = Download::open(store, &path).await?.ok_or_else(|| {
            Error::Refused(format!(
                "{url} is missing: the backup is damaged; nothing was written (restore another backup)"
            ))
        })?;
        let (size, sha256) = download
            .checksum()
            .await
            .map_err(|e| Error::Storage(format!("read {url}: {e}")))?;
        if size != file.size || sha256 != file.sha256 {
            return Err(Error::Refused(format!(
                "{url} is corrupt: {size} bytes with SHA-256 {sha256}, where the manifest says {} \
                 bytes with {}; nothing was written (restore another backup)",
                file.size, file.sha256
            )));
        }
        Ok(())
    });
    try_join_all(checks).await?;
    info!(
        files = manifest.files().count(),
        "every file of the backup has its size and SHA-256"
    );
    Ok(())
}

/// The newest RDB version a server loads, from its `INFO server`: Redis 7.0 writes 10, 7.2 and
/// Valkey 7.2 and 8 write 11, Redis 7.4 writes 12.
pub fn rdb_version_loaded(info: &str) -> u16 {
    let fields = fields(info);
    if fields.get("server_name") == Some(&"valkey") {
        return 11;
    }
    let version = fields.get("redis_version").copied().unwrap_or("0");
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    match (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) {
        (major, _) if major >= 8 => 12,
        (7, minor) if minor >= 4 => 12,
        (7, minor) if minor >= 2 => 11,
        (7, _) => 10,
        _ => 9,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_load_the_rdb_versions_they_write() {
        assert_eq!(rdb_version_loaded("redis_version:7.0.15\r\n"), 10);
        assert_eq!(rdb_version_loaded("redis_version:7.2.4\r\n"), 11);
        assert_eq!(
            rdb_version_loaded(
                "redis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.0.1\r\n"
            ),
            11
        );
        assert_eq!(rdb_version_loaded("redis_version:7.4.1\r\n"), 12);
    }
}
