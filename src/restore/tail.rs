//! The recorded writes: each shard's tail (its replication stream from its snapshot to the cut)
//! parsed into commands, routed by the slot of their keys (the target's `COMMAND GETKEYS`), and
//! applied per slot as one transaction with that slot's done-marker, skipped where the marker is
//! already set: a resumed restore applies each slot's writes exactly once.
//!
//! A `FLUSHALL` or `FLUSHDB` in a tail is resolved before anything is sent: that shard's snapshot
//! and the writes before it are dropped, the writes after it kept. Keyless commands that are not
//! data (`SELECT`, `PING`, `REPLCONF`, `PUBLISH`, `MULTI`/`EXEC`: each slot gets its own) are
//! skipped; `FUNCTION` commands go to every master. The tails are small (the writes of the
//! moments between each snapshot and the cut) and are held in memory.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt, stream};
use tokio::io::AsyncReadExt;
use tracing::{info, warn};

use crate::resp::{Command, Commands};
use crate::slots::key_slot;
use crate::store::{Download, Manifest, Store};
use crate::{Error, Result};

use super::progress;
use super::route::Route;

/// Every shard's recorded writes, ready to apply.
#[derive(Debug, Default)]
pub struct Tails {
    /// Per shard: whether a recorded FLUSHALL/FLUSHDB dropped its snapshot.
    pub flushed: Vec<bool>,
    /// The writes of each slot, in order.
    pub by_slot: BTreeMap<u16, Vec<Command>>,
    /// `FUNCTION ...` writes, for every master.
    pub functions: Vec<Command>,
    /// Commands in all.
    pub commands: usize,
}

/// Skipped: not data, or framing the tool redoes per slot.
const SKIPPED: &[&str] = &[
    "select", "ping", "replconf", "multi", "exec", "publish", "spublish",
];

/// Reads and routes every shard's tail.
pub async fn read(store: &Store, name: &str, manifest: &Manifest, route: &Route) -> Result<Tails> {
    let mut tails = Tails::default();
    for shard in &manifest.shards {
        let url = format!("{}/{}", store.url(name), shard.tail.name);
        let download = Download::open(store, &store.file(name, &shard.tail.name))
            .await?
            .ok_or_else(|| Error::Refused(format!("{url} is missing")))?;
        let mut reader = download.into_reader();
        let mut commands = Commands::new();
        let mut list: Vec<Command> = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = reader
                .read(&mut buf)
                .await
                .map_err(|e| Error::Storage(format!("read {url}: {e}")))?;
            if n == 0 {
                break;
            }
            commands.push(&buf[..n]);
            while let Some((command, _)) = commands
                .next_command()
                .map_err(|e| Error::Refused(format!("{url} is not a stream of commands: {e}")))?
            {
                list.push(command);
            }
        }
        let name_of = |c: &Command| String::from_utf8_lossy(&c[0]).to_ascii_lowercase();
        let flush = list
            .iter()
            .rposition(|c| matches!(name_of(c).as_str(), "flushall" | "flushdb"));
        if let Some(at) = flush {
            warn!(
                shard = %shard.master,
                "the backup records a {} on shard {}: its earlier state is dropped, the writes \
                 after it are kept",
                name_of(&list[at]).to_uppercase(),
                shard.slots
            );
            list.drain(..=at);
        }
        tails.flushed.push(flush.is_some());
        let kept: Vec<Command> = list
            .into_iter()
            .filter(|c| !SKIPPED.contains(&name_of(c).as_str()))
            .collect();
        let (functions, keyed): (Vec<Command>, Vec<Command>) =
            kept.into_iter().partition(|c| name_of(c) == "function");
        tails.functions.extend(functions);
        for (command, slot) in slots_of(route, keyed).await? {
            tails.commands += 1;
            tails.by_slot.entry(slot).or_default().push(command);
        }
    }
    tails.commands += tails.functions.len();
    Ok(tails)
}

/// The slot of each command's keys, asked of the target (`COMMAND GETKEYS`, in batches).
async fn slots_of(route: &Route, commands: Vec<Command>) -> Result<Vec<(Command, u16)>> {
    let mut routed = Vec::with_capacity(commands.len());
    let asked = &route.masters[0];
    for chunk in commands.chunks(512) {
        let mut pipe = redis::pipe();
        for command in chunk {
            let cmd = pipe.cmd("COMMAND").arg("GETKEYS");
            for arg in command {
                cmd.arg(arg.as_slice());
            }
        }
        pipe.ignore_errors();
        let keys: Vec<redis::RedisResult<Vec<Vec<u8>>>> =
            asked.pipeline(&pipe, "COMMAND GETKEYS").await?;
        for (command, keys) in chunk.iter().zip(keys) {
            match keys.ok().and_then(|k| k.into_iter().next()) {
                Some(key) => routed.push((command.clone(), key_slot(&key))),
                None => {
                    return Err(Error::Refused(format!(
                        "the backup records `{}` with no key between a snapshot and the cut, which \
                         a restore cannot route: restore an earlier or later backup",
                        String::from_utf8_lossy(&command[0])
                    )));
                }
            }
        }
    }
    Ok(routed)
}

/// Applies the writes: functions on every master, then each slot's writes with its marker in
/// one transaction, unless the marker says they were applied.
pub async fn apply(route: &Route, tails: &Tails) -> Result<(usize, usize)> {
    for function in &tails.functions {
        for master in &route.masters {
            let mut pipe = redis::pipe();
            pipe.add_command(command(function));
            if let Err(e) = master.replay::<redis::Value>(&pipe, "FUNCTION").await {
                warn!("a recorded FUNCTION command failed on {}: {e}", master.node);
            }
        }
    }
    let slots: Vec<(&u16, &Vec<Command>)> = tails.by_slot.iter().collect();
    let results: Vec<bool> = stream::iter(slots)
        .map(|(&slot, commands)| async move {
            let master = &route.masters[route.owner(slot)];
            let marker = progress::marker(slot);
            let done: bool = master
                .query(redis::cmd("EXISTS").arg(&marker), "EXISTS (done-marker)")
                .await?;
            if done {
                return Ok::<_, Error>(false);
            }
            let mut pipe = redis::pipe();
            pipe.atomic();
            for c in commands {
                pipe.add_command(command(c));
            }
            pipe.cmd("SET").arg(&marker).arg(1);
            let _: redis::Value = master.replay(&pipe, "MULTI/recorded writes/EXEC").await?;
            Ok(true)
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
    let applied = results.iter().filter(|a| **a).count();
    info!(
        slots = results.len(),
        applied,
        "recorded writes: {} slot(s), {applied} applied now, {} applied before",
        results.len(),
        results.len() - applied
    );
    Ok((applied, results.len() - applied))
}

/// Deletes the done-markers of every slot the tails touched.
pub async fn clean(route: &Route, tails: &Tails) -> Result<()> {
    let mut by_master: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for &slot in tails.by_slot.keys() {
        by_master
            .entry(route.owner(slot))
            .or_default()
            .push(progress::marker(slot));
    }
    for (master, markers) in by_master {
        for chunk in markers.chunks(512) {
            let mut pipe = redis::pipe();
            for marker in chunk {
                pipe.cmd("DEL").arg(marker);
            }
            let _: redis::Value = route.masters[master]
                .pipeline(&pipe, "DEL (done-markers)")
                .await?;
        }
    }
    Ok(())
}

fn command(c: &Command) -> redis::Cmd {
    let mut cmd = redis::cmd(&String::from_utf8_lossy(&c[0]));
    for arg in &c[1..] {
        cmd.arg(arg.as_slice());
    }
    cmd
}
