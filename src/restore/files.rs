//! Before anything is written: every file the manifest names is there and has its size and
//! SHA-256 (else exit 3, nothing written).

use futures::future::try_join_all;
use tracing::info;

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
