//! The cut: the one moment every shard of the backup is taken at.
//!
//! Once every master has forked for its snapshot (each at its own offset X), the tool sends
//! `CLIENT PAUSE <ms> WRITE` to every master at once, reads each one's `master_repl_offset` (O)
//! and key count while it is paused, and only when every master has answered sends `CLIENT
//! UNPAUSE` everywhere. A master's backup is its snapshot plus its stream from X to O.
//!
//! Why that is one point in time across the cluster: let W2 be a write in the backup (on master
//! B, so it ran before B's pause began) and W1 a write acknowledged before W2 was sent. If W1 ran
//! on its master A after A's pause began, it waited for the unpause, which comes only after every
//! pause began, B's included; so W1 was acknowledged after B's pause began, W2 was sent after
//! that, and W2 ran after B's pause: not in the backup. So W1 ran before A's pause: it is in the
//! backup. Writes pause for two round trips, never for the copy.
//!
//! Each master measures its own pause: `TIME` right after `CLIENT PAUSE` and right after `CLIENT
//! UNPAUSE`, in one pipeline each. A pause that reached its timeout may have ended on its own
//! before the offsets were read: that cut is not used, and the cut is made again (the snapshots
//! are unaffected; the tails grow by the writes in between).

use std::time::Duration;

use futures::future::join_all;
use tracing::{info, warn};

use crate::client::Client;
use crate::observation::{self, fields};
use crate::{Error, Result};

/// The pause's timeout on the nodes: writes resume by themselves after it, even if the tool dies
/// between the pause and the unpause.
pub const PAUSE: Duration = Duration::from_millis(1000);

/// How many times a cut is made before the backup gives up (exit 1).
const ATTEMPTS: usize = 5;

/// One master at the cut.
#[derive(Debug, Clone)]
pub struct Cut {
    /// `master_repl_offset` while paused: O.
    pub offset: u64,
    /// Keys while paused.
    pub keys: u64,
    /// The pause on this master by its own clock, in microseconds.
    pub pause_us: u64,
    /// `redis 7.0.15`, `valkey 8.0.1`.
    pub server: String,
}

/// Makes the cut on these masters (every master of the cluster).
pub async fn cut(masters: &[&Client]) -> Result<Vec<Cut>> {
    for attempt in 1..=ATTEMPTS {
        let cuts = once(masters).await?;
        let longest = cuts.iter().map(|c| c.pause_us).max().unwrap_or(0);
        // A margin of 10%: a pause this close to its timeout may have ended by itself.
        if longest < PAUSE.as_micros() as u64 * 9 / 10 {
            info!(
                pause_us = longest,
                "cut: writes paused on {} masters for at most {:.3} ms",
                cuts.len(),
                longest as f64 / 1000.0
            );
            return Ok(cuts);
        }
        warn!(
            attempt,
            pause_us = longest,
            "cut: a pause came too close to its {} ms timeout; cutting again",
            PAUSE.as_millis()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(Error::Timeout {
        phase: "the cut",
        after: PAUSE,
        detail: format!(
            "{ATTEMPTS} times a master took longer than its pause's timeout to answer: the nodes \
             are too busy; run the backup again"
        ),
    })
}

async fn once(masters: &[&Client]) -> Result<Vec<Cut>> {
    let ms = PAUSE.as_millis().to_string();
    let pauses = masters.iter().map(|client| {
        let mut pipe = redis::pipe();
        pipe.cmd("CLIENT").arg("PAUSE").arg(&ms).arg("WRITE");
        pipe.cmd("TIME");
        pipe.cmd("INFO")
            .arg("replication")
            .arg("keyspace")
            .arg("server");
        async move {
            client
                .pipeline::<((), (u64, u64), String)>(&pipe, "CLIENT PAUSE/TIME/INFO")
                .await
        }
    });
    let paused = join_all(pauses).await;
    // Every master that was paused is unpaused, whatever happened to the others.
    let unpauses = masters.iter().zip(&paused).map(|(client, paused)| {
        let mut pipe = redis::pipe();
        pipe.cmd("CLIENT").arg("UNPAUSE");
        pipe.cmd("TIME");
        async move {
            match paused {
                Ok(_) => Some(
                    client
                        .pipeline::<((), (u64, u64))>(&pipe, "CLIENT UNPAUSE/TIME")
                        .await,
                ),
                Err(_) => None,
            }
        }
    });
    let unpaused = join_all(unpauses).await;
    let mut cuts = Vec::with_capacity(masters.len());
    for (paused, unpaused) in paused.into_iter().zip(unpaused) {
        let (_, (s0, us0), info) = paused?;
        let (_, (s1, us1)) = unpaused.expect("paused, so unpaused")?;
        let fields = fields(&info);
        let offset = fields
            .get("master_repl_offset")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let server = match fields.get("server_name") {
            Some(name) => format!(
                "{name} {}",
                fields
                    .get(format!("{name}_version").as_str())
                    .copied()
                    .unwrap_or("?")
            ),
            None => format!(
                "redis {}",
                fields.get("redis_version").copied().unwrap_or("?")
            ),
        };
        cuts.push(Cut {
            offset,
            keys: observation::keys(&info),
            pause_us: (s1 * 1_000_000 + us1).saturating_sub(s0 * 1_000_000 + us0),
            server,
        });
    }
    Ok(cuts)
}
