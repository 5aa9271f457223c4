//! Retention: keep the last N complete backups (`BOOTSTRAP_BACKUP_KEEP`). Run only after a new
//! backup is complete, so a failed run never deletes anything; incomplete backups (no manifest)
//! are neither counted nor deleted: a person looks at them.

use tracing::info;

use crate::Result;
use crate::store::Store;

/// Deletes the oldest complete backups beyond the newest `keep`; returns their names.
pub async fn apply(store: &Store, keep: usize) -> Result<Vec<String>> {
    let backups = store.backups().await?;
    let excess = backups.len().saturating_sub(keep);
    let old: Vec<String> = backups.into_iter().take(excess).collect();
    for name in &old {
        store.delete(name).await?;
        info!(backup = %store.url(name), "retention: deleted {name} (keeping the last {keep})");
    }
    Ok(old)
}
