//! `redis-cluster-bootstrap restore`: a backup into a formed, empty cluster of any shape, in
//! stages, one file each:
//!
//! 1. the backup: the one `BOOTSTRAP_BACKUP_URL` names, else the newest complete one under it;
//!    its manifest (here);
//! 2. the target (here): it serves and agrees, no slot is moving ([`crate::serving`]), it holds no
//!    key unless it is this restore's own, interrupted ([`progress`]), and its servers load the
//!    backup's RDB version ([`crate::server`]); else exit 3, nothing written;
//! 3. [`files`]: every file there with its size and SHA-256, else exit 3, nothing written;
//! 4. [`tail`]: the recorded writes read and routed (a FLUSHALL resolved offline);
//! 5. [`keys`]: every snapshot key to the master owning its slot ([`route`]), `RESTORE ... ABSTTL`;
//! 6. [`tail`]: the recorded writes applied, once per slot;
//! 7. [`verify`]: key counts against the manifest, one line.

pub mod files;
pub mod keys;
pub mod progress;
pub mod route;
pub mod tail;
pub mod verify;

use std::time::Instant;

use tracing::info;

use crate::client::{self, Client};
use crate::commands::Sender;
use crate::config::{LogFormat, Settings};
use crate::job::{self, Job};
use crate::node::Node;
use crate::server::Server;
use crate::shutdown::Shutdown;
use crate::store::{self, Manifest, Store};
use crate::{Error, Result, observation, observe, serving};

use progress::Phase;
use route::Route;

/// Runs `restore` for these settings.
pub async fn run(settings: Settings, shutdown: Shutdown) -> Result<()> {
    let location = settings.backup_url.clone().ok_or_else(|| {
        Error::Config(
            "BOOTSTRAP_BACKUP_URL is not set: set it to a backup (as `backup` printed it) or to \
             where backups live (the newest is restored)"
                .into(),
        )
    })?;
    let store = Store::open(&location)?;
    let name = if store.is_backup().await? {
        String::new()
    } else {
        store.backups().await?.pop().ok_or_else(|| {
            Error::Refused(format!(
                "BOOTSTRAP_BACKUP_URL={location} holds no complete backup (a folder with a {})",
                store::MANIFEST
            ))
        })?
    };
    let manifest = store.manifest(&name).await?;
    if manifest.format != store::manifest::FORMAT {
        return Err(Error::Refused(format!(
            "{} is in format {}, which this version does not read",
            store.url(&name),
            manifest.format
        )));
    }
    info!(
        backup = %store.url(&name),
        keys = manifest.keys(),
        shards = manifest.shards.len(),
        "restoring {} (cut at {}, {} keys in {} shards)",
        store.url(&name),
        manifest.cut_at,
        manifest.keys(),
        manifest.shards.len()
    );
    let format = settings.log_format;
    let line = job::run(&settings, &shutdown, Job::Restore, |nodes| {
        restore_into(nodes, &settings, &store, &name, &manifest, &shutdown)
    })
    .await?;
    match format {
        LogFormat::Text => println!("{line}"),
        LogFormat::Json => println!("{}", serde_json::json!({ "summary": line })),
    }
    Ok(())
}

/// Restores backup `name` into the cluster these nodes form; the summary line.
pub async fn restore_into(
    nodes: Vec<Node>,
    settings: &Settings,
    store: &Store,
    name: &str,
    manifest: &Manifest,
    shutdown: &Shutdown,
) -> Result<String> {
    let started = Instant::now();
    let url = store.url(name);
    // The manifest's name, not the folder's: the same backup however it is named.
    let backup = manifest.name.as_str();
    let clients: Vec<Client> = client::connect_all(
        &nodes,
        settings.credentials.as_ref(),
        settings.tls.as_ref(),
        settings.ready_timeout,
    )
    .await?
    .into_iter()
    .map(|c| c.sending(Sender::Restore))
    .collect();
    let observations = observe::observe_all(&clients).await?;
    let masters = serving::masters(&nodes, &observations).map_err(|problems| {
        Error::Refused(format!(
            "no restore into a cluster that is not formed and agreed, or has slots moving: {}; \
             nothing was written",
            serving::summarize(&problems)
        ))
    })?;
    let held: u64 = masters.iter().map(|m| m.keys).sum();
    drop(observations);
    let route = Route::new(&masters, &clients);
    check_versions(&route, manifest).await?;

    let keeper = &route.masters[route.owner_of(progress::KEY.as_bytes())];
    let progress: Option<String> = keeper
        .query(redis::cmd("GET").arg(progress::KEY), "GET (progress)")
        .await?;
    let phase = match progress.as_deref().map(Phase::parse) {
        None if held > 0 => {
            return Err(Error::Refused(format!(
                "the target holds {held} keys: a restore writes only into an empty cluster (and \
                 never overwrites a key); nothing was written"
            )));
        }
        None => None,
        Some(Some((other, _))) if other != backup => {
            return Err(Error::Refused(format!(
                "the target is being restored from backup {other}, not {backup}: finish that one \
                 (run it again with its URL) or restore into an empty cluster; nothing was written"
            )));
        }
        Some(Some((_, phase))) => {
            info!(
                "resuming the interrupted restore of {backup} at its {} phase",
                phase.name()
            );
            Some(phase)
        }
        Some(None) => {
            return Err(Error::Refused(format!(
                "the target's key {} holds {progress:?}, which is not a restore's progress: nothing \
                 was written",
                progress::KEY
            )));
        }
    };

    files::check(store, name, manifest).await?;
    let tails = tail::read(store, name, manifest, &route).await?;
    let mut loaded = keys::Loaded::default();
    if phase.is_none() {
        set_phase(keeper, backup, Phase::Keys, true).await?;
    }
    if phase.unwrap_or(Phase::Keys) <= Phase::Keys {
        loaded = keys::load(store, name, manifest, &route, &tails.flushed, shutdown).await?;
        set_phase(keeper, backup, Phase::Tails, false).await?;
    }
    if phase.unwrap_or(Phase::Keys) <= Phase::Tails {
        tail::apply(&route, &tails).await?;
        set_phase(keeper, backup, Phase::Cleanup, false).await?;
    }
    tail::clean(&route, &tails).await?;
    let found = verify::count(&route).await?.saturating_sub(1);
    // A resumed restore did not read the snapshots: any key may have expired since the cut.
    let may_expire = if phase.is_some_and(|p| p > Phase::Keys) {
        manifest.keys()
    } else {
        loaded.with_ttl - loaded.expired
    };
    let verdict = verify::verdict(found, manifest.keys(), loaded.expired, may_expire)?;
    keeper
        .query::<()>(redis::cmd("DEL").arg(progress::KEY), "DEL (progress)")
        .await?;
    info!("{verdict}");
    Ok(format!(
        "outcome=restored keys={found} restored={} present={} expired={} recorded_writes={} \
         masters={} took_ms={} {verdict}; backup={url}",
        loaded.restored,
        loaded.present,
        loaded.expired,
        tails.commands,
        route.masters.len(),
        started.elapsed().as_millis(),
    ))
}

/// Refuses a target whose servers cannot load the backup's RDB version ([`crate::server`]'s
/// table); a release newer than the table is let through, and its `RESTORE` answers for it.
async fn check_versions(route: &Route, manifest: &Manifest) -> Result<()> {
    let needed = manifest.rdb_version();
    for master in &route.masters {
        let info: String = master
            .query(redis::cmd("INFO").arg("server"), "INFO server")
            .await?;
        let Some(server) = Server::from_info(&observation::fields(&info)) else {
            continue;
        };
        if server.reads(needed) == Some(false) {
            return Err(Error::Refused(format!(
                "{} runs {server}, which does not load RDB version {needed} (the backup, of {}): \
                 restore into a server at least as new as the source; nothing was written",
                master.node,
                manifest.shards.first().map_or("?", |s| s.server.as_str())
            )));
        }
    }
    Ok(())
}

/// Writes the progress key; `first`: only if it does not exist (two restores at once).
async fn set_phase(keeper: &Client, backup: &str, phase: Phase, first: bool) -> Result<()> {
    let mut cmd = redis::cmd("SET");
    cmd.arg(progress::KEY).arg(phase.value(backup));
    if first {
        cmd.arg("NX");
    }
    let set: Option<String> = keeper.query(&cmd, "SET (progress)").await?;
    if set.is_none() {
        return Err(Error::Refused(
            "another restore started on the target at the same moment: nothing was written".into(),
        ));
    }
    Ok(())
}
