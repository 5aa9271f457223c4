//! `redis-cluster-bootstrap backup`: one consistent backup of the whole cluster under
//! `BOOTSTRAP_BACKUP_URL`, in stages, one file each:
//!
//! 1. *check* (here): the cluster serves and agrees, no slot is moving ([`crate::serving`]), else
//!    exit 3; in Kubernetes mode under the bootstrap's Lease ([`crate::job`]);
//! 2. [`link`]: a replication connection to every master, each answered `+FULLRESYNC` (its
//!    snapshot forked at offset X);
//! 3. [`cut`]: writes paused on every master at once for milliseconds, each one's offset O read;
//! 4. [`copy`]: each master's snapshot, then its stream from X to O, uploaded as they arrive;
//! 5. the [`crate::store::Manifest`], written last: the backup is complete;
//! 6. [`retention`]: the oldest complete backups beyond `BOOTSTRAP_BACKUP_KEEP` deleted.
//!
//! The last line on stdout is the summary, with `backup=<URL of the backup>`.

pub mod copy;
pub mod cut;
pub mod link;
pub mod retention;

use std::time::Instant;

use futures::future::try_join_all;
use tracing::{info, warn};

use crate::client::{self, Client};
use crate::commands::Sender;
use crate::config::{LogFormat, Settings};
use crate::job::{self, Job};
use crate::node::Node;
use crate::shutdown::Shutdown;
use crate::store::manifest::{self, Manifest, Member, Shard};
use crate::store::{self, Store};
use crate::{Error, Result, observe, serving, slots};

use link::Link;

/// Runs `backup` for these settings.
pub async fn run(settings: Settings, shutdown: Shutdown) -> Result<()> {
    let location = settings.backup_url.clone().ok_or_else(|| {
        Error::Config(
            "BOOTSTRAP_BACKUP_URL is not set: set it to where backups live, a directory \
             (/backups) or s3://bucket/prefix"
                .into(),
        )
    })?;
    let store = Store::open(&location)?;
    let format = settings.log_format;
    let line = job::run(&settings, &shutdown, Job::Backup, |nodes| {
        take(nodes, &settings, &store, &shutdown)
    })
    .await?;
    match format {
        LogFormat::Text => println!("{line}"),
        LogFormat::Json => println!("{}", serde_json::json!({ "summary": line })),
    }
    Ok(())
}

/// Takes one backup of the cluster these nodes form; its summary line.
pub async fn take(
    nodes: Vec<Node>,
    settings: &Settings,
    store: &Store,
    shutdown: &Shutdown,
) -> Result<String> {
    let started = Instant::now();
    let tls = settings.tls.clone();
    let credentials = settings.credentials.as_ref();
    let clients: Vec<Client> =
        client::connect_all(&nodes, credentials, tls.as_ref(), settings.ready_timeout)
            .await?
            .into_iter()
            .map(|c| c.sending(Sender::Backup))
            .collect();
    let observations = observe::observe_all(&clients).await?;
    let masters = serving::masters(&nodes, &observations).map_err(|problems| {
        Error::Refused(format!(
            "no backup of a cluster that is not formed and agreed, or has slots moving: {}",
            serving::summarize(&problems)
        ))
    })?;
    info!(
        masters = masters.len(),
        "the cluster serves: backing up {} masters",
        masters.len()
    );
    let topology: Vec<Member> = observations
        .iter()
        .zip(&nodes)
        .map(|(o, node)| {
            let me = o.myself();
            Member {
                id: o.id.clone(),
                name: node.name.clone(),
                addr: node.addr.to_string(),
                master: me
                    .filter(|m| m.flags.replica)
                    .and_then(|m| m.master_id.clone()),
                slots: me.map(|m| slots::format(&m.slots)).unwrap_or_default(),
            }
        })
        .collect();
    drop(observations);

    // Every master forks for its snapshot.
    let mut links = try_join_all(
        masters
            .iter()
            .map(|m| Link::open(&nodes[m.index], credentials, tls.as_ref())),
    )
    .await?;
    let forks: Vec<(String, u64)> = links.iter().map(|l| (l.replid.clone(), l.offset)).collect();
    for (link, m) in links.iter().zip(&masters) {
        info!(
            node = %nodes[m.index],
            offset = link.offset,
            "snapshot of {} forked at offset {}",
            nodes[m.index],
            link.offset
        );
    }
    if let Some(signal) = shutdown.requested() {
        return Err(interrupted(signal, "nothing was written"));
    }

    // The cut, on the masters' own connections.
    let master_clients: Vec<&Client> = masters.iter().map(|m| &clients[m.index]).collect();
    let cuts = cut::cut(&master_clients).await?;
    let cut_at = jiff::Timestamp::now();
    for ((cut, link), m) in cuts.iter().zip(&links).zip(&masters) {
        if cut.offset < link.offset {
            return Err(Error::Refused(format!(
                "{} is at offset {} after its snapshot at {}: its replication history changed \
                 (a failover?) during the backup; run it again",
                nodes[m.index], cut.offset, link.offset
            )));
        }
    }

    let name = store::backup_name(cut_at);
    let copies = links
        .iter_mut()
        .zip(&cuts)
        .enumerate()
        .map(|(shard, (link, cut))| copy::copy(link, store, &name, shard, cut.offset));
    let copied = tokio::select! {
        copied = try_join_all(copies) => copied,
        signal = shutdown.wait() => Err(interrupted(signal, "the backup is incomplete (no manifest)")),
    };
    let copied = match copied {
        Ok(copied) => copied,
        Err(e) => {
            // Best effort: an incomplete backup is never restored, but need not stay.
            drop(links);
            if let Err(cleanup) = store.delete(&name).await {
                warn!("could not remove the incomplete backup {name}: {cleanup}");
            }
            return Err(e);
        }
    };
    drop(links);

    let shards: Vec<Shard> = masters
        .iter()
        .zip(&cuts)
        .zip(forks)
        .zip(copied)
        .map(|(((m, cut), (replid, fork)), files)| Shard {
            master: m.id.clone(),
            slots: slots::format(&m.slots),
            server: cut.server.clone(),
            rdb_version: files.rdb_version,
            replid,
            snapshot_offset: fork,
            cut_offset: cut.offset,
            keys: cut.keys,
            pause_us: cut.pause_us,
            rdb: files.rdb,
            tail: files.tail,
        })
        .collect();
    let manifest = Manifest {
        format: manifest::FORMAT,
        name: name.clone(),
        cut_at: cut_at.to_string(),
        tool: format!("{} {}", env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION")),
        pause_us: cuts.iter().map(|c| c.pause_us).max().unwrap_or(0),
        topology,
        shards,
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
    store
        .objects
        .put(&store.path(&name, store::MANIFEST), json.into())
        .await
        .map_err(|e| store.failed("write the manifest", e))?;
    let url = store.url(&name);
    let bytes: u64 = manifest.files().map(|f| f.size).sum();
    info!(backup = %url, "complete: {} keys in {} shards, {bytes} bytes", manifest.keys(), manifest.shards.len());
    let deleted = retention::apply(store, settings.backup_keep).await?;
    Ok(format!(
        "outcome=backed-up keys={} shards={} bytes={bytes} pause_ms={:.3} took_ms={} deleted={} backup={url}",
        manifest.keys(),
        manifest.shards.len(),
        manifest.pause_us as f64 / 1000.0,
        started.elapsed().as_millis(),
        deleted.len(),
    ))
}

fn interrupted(signal: &'static str, detail: &str) -> Error {
    Error::Interrupted {
        signal,
        phase: "backup",
        detail: detail.into(),
    }
}
