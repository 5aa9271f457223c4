//! One shard's files: its snapshot streamed from the replication connection into `shard-N.rdb`,
//! then its stream from the snapshot's offset to the cut into `shard-N.tail`, each uploaded as it
//! arrives.

use crate::Result;
use crate::store::manifest::File;
use crate::store::{Store, Upload};

use super::link::Link;

/// What was copied of one shard.
pub struct Copied {
    /// The snapshot file.
    pub rdb: File,
    /// Its RDB version, from its header (`REDIS0011`).
    pub rdb_version: u16,
    /// The tail file.
    pub tail: File,
}

/// Copies shard `shard`'s snapshot and its stream up to `cut` into backup `backup`.
pub async fn copy(
    link: &mut Link,
    store: &Store,
    backup: &str,
    shard: usize,
    cut: u64,
) -> Result<Copied> {
    let mut rdb = Upload::new(store, backup, &format!("shard-{shard}.rdb"));
    let mut header: Vec<u8> = Vec::with_capacity(9);
    let copied = link
        .snapshot(async |bytes: &[u8]| {
            let want = 9usize.saturating_sub(header.len()).min(bytes.len());
            header.extend_from_slice(&bytes[..want]);
            rdb.write(bytes).await
        })
        .await;
    if let Err(e) = copied {
        rdb.abort().await;
        return Err(e);
    }
    let rdb = rdb.finish().await?;
    let rdb_version = std::str::from_utf8(&header)
        .ok()
        .and_then(|h| h.strip_prefix("REDIS"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut tail = Upload::new(store, backup, &format!("shard-{shard}.tail"));
    if let Err(e) = link
        .stream_to(cut, async |bytes: &[u8]| tail.write(bytes).await)
        .await
    {
        tail.abort().await;
        return Err(e);
    }
    Ok(Copied {
        rdb,
        rdb_version,
        tail: tail.finish().await?,
    })
}
