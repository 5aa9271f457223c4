//! The snapshots' keys: each shard's RDB streamed through [`crate::rdb::Reader`] (one value in
//! memory at a time), every key sent to the master that owns its slot in the target as
//! `RESTORE key ttl payload ABSTTL`, never with `REPLACE`: a key already there (a resumed restore)
//! answers `BUSYKEY` and is left as it is. Batches are pipelined, every shard read at once, and
//! each batch goes to all masters at once.

use std::time::{SystemTime, UNIX_EPOCH};

use futures::future::{join_all, try_join_all};
use tracing::{info, warn};

use crate::rdb::{Item, Reader};
use crate::shutdown::Shutdown;
use crate::store::{Download, Manifest, Store};
use crate::{Error, Result};

use super::route::Route;

/// Commands sent to one master in one round trip.
const BATCH: usize = 512;
/// Bytes of payloads held per shard before they are sent.
const BATCH_BYTES: usize = 4 << 20;

/// What the snapshots gave.
#[derive(Debug, Default, Clone, Copy)]
pub struct Loaded {
    /// Keys written.
    pub restored: u64,
    /// Keys already there (a resumed restore).
    pub present: u64,
    /// Keys whose TTL had passed: not written.
    pub expired: u64,
    /// Keys with a TTL (written or not).
    pub with_ttl: u64,
}

impl Loaded {
    fn add(&mut self, other: Loaded) {
        self.restored += other.restored;
        self.present += other.present;
        self.expired += other.expired;
        self.with_ttl += other.with_ttl;
    }
}

/// Restores the keys of every shard but those in `skip` (a recorded FLUSHALL dropped them).
pub async fn load(
    store: &Store,
    name: &str,
    manifest: &Manifest,
    route: &Route,
    skip: &[bool],
    shutdown: &Shutdown,
) -> Result<Loaded> {
    let shards = manifest
        .shards
        .iter()
        .enumerate()
        .filter(|(i, _)| !skip[*i])
        .map(|(i, shard)| async move {
            let loaded = shard_keys(store, name, &shard.rdb.name, route, shutdown).await?;
            info!(
                shard = i,
                restored = loaded.restored,
                present = loaded.present,
                expired = loaded.expired,
                "shard {i}: {} keys restored, {} already there, {} expired since the cut",
                loaded.restored,
                loaded.present,
                loaded.expired
            );
            Ok::<_, Error>(loaded)
        });
    let mut total = Loaded::default();
    for loaded in try_join_all(shards).await? {
        total.add(loaded);
    }
    Ok(total)
}

async fn shard_keys(
    store: &Store,
    name: &str,
    file: &str,
    route: &Route,
    shutdown: &Shutdown,
) -> Result<Loaded> {
    let url = format!("{}/{file}", store.url(name));
    let download = Download::open(store, &store.file(name, file))
        .await?
        .ok_or_else(|| Error::Refused(format!("{url} is missing")))?;
    let unreadable =
        |e: crate::rdb::Error| Error::Refused(format!("{url} cannot be read as an RDB: {e}"));
    let mut reader = Reader::new(download.into_reader())
        .await
        .map_err(unreadable)?;
    let mut loaded = Loaded::default();
    let mut batches: Vec<Vec<redis::Cmd>> = vec![Vec::new(); route.masters.len()];
    let mut held = 0usize;
    while let Some(item) = reader.next().await.map_err(unreadable)? {
        match item {
            Item::Key(entry) => {
                if entry.db != 0 {
                    warn!(
                        db = entry.db,
                        "a key of database {} is skipped: a cluster has only database 0", entry.db
                    );
                    continue;
                }
                let mut cmd = redis::cmd("RESTORE");
                cmd.arg(&entry.key);
                if let Some(at) = entry.expire_at_ms {
                    loaded.with_ttl += 1;
                    if at <= now_ms() {
                        loaded.expired += 1;
                        continue;
                    }
                    cmd.arg(at).arg(&entry.payload).arg("ABSTTL");
                } else {
                    cmd.arg(0).arg(&entry.payload);
                }
                held += entry.payload.len() + entry.key.len();
                let owner = route.owner_of(&entry.key);
                batches[owner].push(cmd);
                if held >= BATCH_BYTES || batches[owner].len() >= BATCH {
                    send(route, &mut batches, &mut loaded).await?;
                    held = 0;
                    if let Some(signal) = shutdown.requested() {
                        return Err(Error::Interrupted {
                            signal,
                            phase: "restore keys",
                            detail: "some keys are restored; a re-run finishes without writing any twice".into(),
                        });
                    }
                }
            }
            Item::Function { payload } => {
                for master in &route.masters {
                    let cmd = redis::cmd("FUNCTION").arg("RESTORE").arg(&payload).clone();
                    match master.query::<()>(&cmd, "FUNCTION RESTORE").await {
                        Ok(()) => {}
                        Err(Error::Command { source, .. })
                            if source.to_string().contains("already exists") => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Item::ModuleAux { module } => warn!(
                module,
                "the snapshot holds global data of module {module}, which no command restores: skipped"
            ),
            Item::Aux { .. } => {}
        }
    }
    send(route, &mut batches, &mut loaded).await?;
    Ok(loaded)
}

/// Sends every master its batch, all at once.
async fn send(route: &Route, batches: &mut [Vec<redis::Cmd>], loaded: &mut Loaded) -> Result<()> {
    let sends = batches
        .iter_mut()
        .zip(&route.masters)
        .filter(|(batch, _)| !batch.is_empty())
        .map(|(batch, master)| {
            let cmds: Vec<(redis::Cmd, &str)> = std::mem::take(batch)
                .into_iter()
                .map(|c| (c, "RESTORE"))
                .collect();
            master.each(cmds)
        });
    for results in join_all(sends).await {
        for result in results? {
            match result {
                Ok(()) => loaded.restored += 1,
                Err(Error::Command { source, .. }) if source.code() == Some("BUSYKEY") => {
                    loaded.present += 1
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
