//! `watch`, beside Redis for the pod's whole life (a native sidecar): applies changed secrets to
//! the local node without a restart.
//!
//! - Passwords ([`users`]): the files of `BOOTSTRAP_USERS_DIR` (the Secret `redis-users`, one
//!   file per user, one password per line) are the users' password sets; the node's become the
//!   files' within seconds of a change, and `masterauth` follows the first password of the user
//!   replicas log in as.
//! - Certificates ([`certificates`]): when the `BOOTSTRAP_TLS_*` files change (cert-manager
//!   renewed the Secret `redis-tls` and the kubelet swapped the files), the node reloads its TLS
//!   files (established connections stay up) and the watcher's own client uses the new ones for
//!   new connections. A renewal the node refuses leaves it on its certificate, said loudly.
//! - [`metrics`]: what it did, on `BOOTSTRAP_METRICS_ADDRESS`.
//!
//! Files are read every [`POLL`], and a change is acted upon once it held still for one poll
//! ([`files`]): a certificate and its key are read as a pair. The node is also checked every
//! [`RECHECK`] whatever the files did (a node that restarted, a change made by hand). It logs in
//! as the pod-local user (`BOOTSTRAP_USERNAME`, `BOOTSTRAP_PASSWORD_FILE`), never as `bootstrap`:
//! it changes users and configuration, which `bootstrap` must not be able to do.
//!
//! It never stops for a failure (a node that does not answer, a file that cannot be read, a
//! renewal refused): it says so, once ([`said`]), and tries again. Only SIGTERM or SIGINT stop
//! it (exit 0).

pub mod certificates;
pub mod files;
pub mod metrics;
pub mod said;
pub mod users;

use std::collections::BTreeMap;
use std::time::Duration;

use tracing::{error, info};

use crate::client::Client;
use crate::pod::Context;
use crate::shutdown::Shutdown;
use crate::tls::Tls;
use crate::{Error, Result, one_line};
use certificates::CertsWatch;
use metrics::Metrics;
use said::Said;
use users::UsersWatch;

/// How often the files are read (and a change noticed).
pub const POLL: Duration = Duration::from_secs(1);
/// How often the node is checked again when no file changed.
pub const RECHECK: Duration = Duration::from_secs(60);
/// How long certificate files the node refused wait before they are offered again unchanged.
pub const RETRY_REFUSED: Duration = Duration::from_secs(300);

/// Runs until `shutdown` (exit 0).
pub async fn run(ctx: &Context, shutdown: Shutdown) -> Result<()> {
    let metrics = Metrics::new(ctx.settings.users_dir.is_some());
    if let Some(addr) = ctx.settings.metrics_address {
        metrics::serve(addr, metrics.clone()).await;
    }
    let mut watcher = Watcher::new(ctx, metrics);
    info!(node = %ctx.local, "watch: {}", watcher.what());
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // A poll may wait on a node that hangs (up to the command timeout): a signal ends it
        // there. Every change it makes is one command, harmless to cut short and redo.
        tokio::select! {
            () = async { tick.tick().await; watcher.poll().await } => {}
            signal = shutdown.wait() => {
                info!(node = %ctx.local, "watch: {signal}: stopping");
                return Ok(());
            }
        }
    }
}

/// Everything the watcher keeps between polls.
struct Watcher<'a> {
    ctx: &'a Context,
    metrics: Metrics,
    /// The TLS of new connections: the files as last loaded.
    tls: Option<Tls>,
    /// The connection to the local node, once made.
    client: Option<Client>,
    users: Option<UsersWatch>,
    certs: Option<CertsWatch>,
    /// The last thing said about reaching the node, so it is said once.
    said: Said,
}

impl<'a> Watcher<'a> {
    fn new(ctx: &'a Context, metrics: Metrics) -> Watcher<'a> {
        let certs = ctx.settings.tls_files.clone().map(CertsWatch::new);
        // `main` leaves the files to the watcher: files that do not load now (a broken renewal
        // on disk when the sidecar restarts) must not keep it from starting.
        let tls = match (&ctx.settings.tls, &ctx.settings.tls_files) {
            (Some(tls), _) => Some(tls.clone()),
            (None, Some(files)) => match files.load() {
                Ok(tls) => Some(tls),
                Err(e) => {
                    error!("watch: {}; read again when the files change", one_line(&e));
                    None
                }
            },
            (None, None) => None,
        };
        Watcher {
            ctx,
            users: ctx.settings.users_dir.clone().map(UsersWatch::new),
            certs,
            metrics,
            tls,
            client: None,
            said: Said::default(),
        }
    }

    /// What is watched, for the first log line.
    fn what(&self) -> String {
        let mut parts = Vec::new();
        if let Some(users) = &self.users {
            parts.push(format!("the users' passwords in {}", users.dir.display()));
        }
        if let Some(certs) = &self.certs {
            parts.push(format!(
                "the TLS files {}",
                certs
                    .paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if parts.is_empty() {
            "nothing to watch (neither BOOTSTRAP_USERS_DIR nor BOOTSTRAP_TLS_CA_FILE is set): \
             idle until stopped"
                .into()
        } else {
            format!("watching {} every {}s", parts.join(" and "), POLL.as_secs())
        }
    }

    async fn poll(&mut self) {
        if self.users.is_none() && self.certs.is_none() {
            return;
        }
        // The files first: the watcher's own TLS must follow them even while the node cannot
        // be reached (with files that did not load, it cannot reach a TLS-only node at all).
        if let Some(certs) = &mut self.certs {
            certs.poll_files(&mut self.tls);
        }
        let Some(client) = self.connected().await else {
            return;
        };
        let mut result = Ok(());
        if let Some(users) = &mut self.users {
            result = users.poll(&client, &self.metrics).await;
        }
        if let (Ok(()), Some(certs), Some(tls)) = (&result, &mut self.certs, &self.tls) {
            result = certs
                .poll_node(&client, tls, &self.ctx.local, &self.metrics)
                .await;
        }
        match result {
            Ok(()) => {}
            // Gone (restarted, stopped): connect again at the next poll, and look at everything
            // again then (a restarted node read its files anew, but may have missed a change).
            Err(e @ Error::Unreachable { .. }) => {
                self.said.warn(format!(
                    "watch: lost the connection to {}: {}",
                    self.ctx.local,
                    one_line(&e)
                ));
                self.client = None;
            }
            Err(e) => self.said.error(format!("watch: {}", one_line(&e))),
        }
    }

    /// The connection to the local node, made again when needed; `None` while it does not answer
    /// (said once).
    async fn connected(&mut self) -> Option<Client> {
        if let Some(client) = &self.client {
            return Some(client.clone());
        }
        let ctx = self.ctx;
        match Client::connect(
            &ctx.local,
            ctx.settings.credentials.as_ref(),
            self.tls.as_ref(),
        )
        .await
        {
            Ok(client) => {
                info!(node = %ctx.local, "watch: connected to {}", ctx.local);
                self.said.clear();
                let client = client.for_watch();
                self.client = Some(client.clone());
                if let Some(users) = &mut self.users {
                    users.recheck();
                }
                if let Some(certs) = &mut self.certs {
                    certs.recheck();
                }
                Some(client)
            }
            Err(e) => {
                self.said.warn(format!(
                    "watch: {} does not answer yet: {}",
                    ctx.local,
                    one_line(&e)
                ));
                None
            }
        }
    }
}

/// `CONFIG GET` of several parameters, as a map (absent ones left out).
pub async fn config_get(client: &Client, names: &[&str]) -> Result<BTreeMap<String, String>> {
    let mut cmd = redis::cmd("CONFIG");
    cmd.arg("GET").arg(names);
    let reply: redis::Value = client.query(&cmd, "CONFIG GET").await?;
    let flat: Vec<String> = match reply {
        redis::Value::Map(pairs) => pairs
            .into_iter()
            .flat_map(|(k, v)| [k, v])
            .map(|v| redis::from_redis_value(v).unwrap_or_default())
            .collect(),
        other => redis::from_redis_value(other)
            .map_err(|e| Error::Internal(format!("CONFIG GET: unexpected reply: {e}")))?,
    };
    Ok(flat
        .chunks(2)
        .filter_map(|pair| match pair {
            [name, value] => Some((name.clone(), value.clone())),
            _ => None,
        })
        .collect())
}
