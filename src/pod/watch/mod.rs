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
//! renewal refused): it says so and tries again. Only SIGTERM or SIGINT stop it (exit 0).

pub mod certificates;
pub mod files;
pub mod metrics;
pub mod users;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tracing::{debug, error, info, warn};

use crate::client::Client;
use crate::passwords;
use crate::pod::Context;
use crate::shutdown::Shutdown;
use crate::tls::{Tls, TlsFiles};
use crate::{Error, Result, one_line};
use certificates::Identity;
use files::{Digest, Settled};
use metrics::Metrics;
use users::{Masterauth, Standing};

/// How often the files are read (and a change noticed).
pub const POLL: Duration = Duration::from_secs(1);
/// How often the node is checked again when no file changed.
pub const RECHECK: Duration = Duration::from_secs(60);
/// How long certificate files the node refused wait before they are offered again unchanged.
pub const RETRY_REFUSED: Duration = Duration::from_secs(300);

/// Runs until `shutdown` (exit 0).
pub async fn run(ctx: &Context, shutdown: Shutdown) -> Result<()> {
    let metrics = Metrics::new();
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

/// The users' passwords: the directory's files against the node.
struct UsersWatch {
    dir: PathBuf,
    settled: Settled,
    last_check: Option<Instant>,
    /// Said once until the files change: users the node does not define, empty files.
    said: Said,
    /// Whether the first check passed (said once, with the users' names).
    checked_once: bool,
}

impl UsersWatch {
    fn new(dir: PathBuf) -> UsersWatch {
        UsersWatch {
            dir,
            settled: Settled::default(),
            last_check: None,
            said: Said::default(),
            checked_once: false,
        }
    }

    fn recheck(&mut self) {
        self.last_check = None;
    }

    async fn poll(&mut self, client: &Client, metrics: &Metrics) -> Result<()> {
        let users = match passwords::read_dir(&self.dir, "BOOTSTRAP_USERS_DIR") {
            Ok(users) => users,
            Err(e) => {
                self.said.error(format!("watch: {}", one_line(&e)));
                return Ok(());
            }
        };
        let digest = Digest::of_text(&listing(&users));
        let changed = self.settled.changed(&digest);
        let due = self.last_check.is_none_or(|at| at.elapsed() >= RECHECK);
        if !changed && !due {
            return Ok(());
        }
        self.last_check = Some(Instant::now());
        if changed {
            self.said.clear();
        }
        let mut applied = 0;
        for (user, standing) in users::standings(client, &users).await? {
            match standing {
                Standing::InSync(..) => metrics.user_in_sync(&user, true),
                Standing::Differs(change) => {
                    users::apply(client, &user, &change).await?;
                    applied += 1;
                    info!(
                        user,
                        added = change.add.len(),
                        removed = change.remove.len(),
                        "watch: user {user}: the node now accepts the {} password(s) of {} \
                         ({} added, {} removed)",
                        users[&user].len(),
                        self.dir.join(&user).display(),
                        change.add.len(),
                        change.remove.len()
                    );
                    metrics.user_in_sync(&user, true);
                }
                standing @ (Standing::Undefined | Standing::Empty) => {
                    metrics.user_in_sync(&user, false);
                    self.said
                        .warn(users::describe(&user, &standing, &self.dir).to_string());
                }
            }
        }
        match users::masterauth(client, &users).await? {
            Masterauth::Differs(user, first) => {
                users::set_masterauth(client, &first).await?;
                applied += 1;
                info!(
                    "watch: masterauth is now the first password of {} (replicas log in with it \
                     from their next connection to their master)",
                    self.dir.join(&user).display()
                );
            }
            Masterauth::InSync(_) | Masterauth::NotOurs => {}
        }
        metrics.masterauth_in_sync.set(1);
        self.settled.applied(digest);
        if !self.checked_once && applied == 0 {
            info!(
                "watch: the node accepts exactly the passwords of {} ({})",
                self.dir.display(),
                users.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        self.checked_once = true;
        Ok(())
    }
}

/// What a directory of passwords says, as one text (for its digest; never logged).
fn listing(users: &BTreeMap<String, Vec<String>>) -> String {
    users
        .iter()
        .map(|(user, listed)| format!("{user}\0{}\n", listed.join("\0")))
        .collect()
}

/// The TLS files: the watcher's own client, and the node's certificate.
struct CertsWatch {
    files: TlsFiles,
    paths: Vec<PathBuf>,
    settled: Settled,
    /// Files that changed and held still, not offered to the node yet.
    pending: Option<Digest>,
    last_check: Option<Instant>,
    /// Files the node refused, and when.
    refused: Option<(Digest, Instant)>,
    /// Whether the files settled once (the ones the watcher started with).
    started: bool,
}

impl CertsWatch {
    fn new(files: TlsFiles) -> CertsWatch {
        let mut paths = vec![PathBuf::from(&files.ca)];
        if let Some((cert, key)) = &files.client {
            paths.extend([PathBuf::from(cert), PathBuf::from(key)]);
        }
        CertsWatch {
            files,
            paths,
            settled: Settled::default(),
            pending: None,
            last_check: None,
            refused: None,
            started: false,
        }
    }

    fn recheck(&mut self) {
        self.last_check = None;
    }

    /// Reads the files; once a change held still, loads them for new connections and marks them
    /// for the node.
    fn poll_files(&mut self, tls: &mut Option<Tls>) {
        let digest = Digest::of_files(&self.paths);
        if !self.settled.changed(&digest) {
            return;
        }
        let first = !self.started;
        self.started = true;
        self.settled.applied(digest.clone());
        // The files the watcher started with were loaded at its start (or said not to load), and
        // its first check of the node compares what it serves with them: nothing more to do.
        if first && tls.is_some() {
            return;
        }
        self.pending = Some(digest);
        match self.files.load() {
            Ok(new) => *tls = Some(new),
            // The node's own refusal, if it refuses them too, is what the metric counts.
            Err(e) => {
                error!(
                    "watch: the renewed TLS files do not load: {}; new connections keep the \
                     previous ones",
                    one_line(&e)
                );
            }
        }
    }

    /// Makes the node serve its files' certificate: after a change, or when the periodic check
    /// finds it serving another one.
    async fn poll_node(
        &mut self,
        client: &Client,
        tls: &Tls,
        node: &crate::node::Node,
        metrics: &Metrics,
    ) -> Result<()> {
        let due = self.last_check.is_none_or(|at| at.elapsed() >= RECHECK);
        let Some(digest) = self.pending.clone().or_else(|| due.then(|| self.digest())) else {
            return Ok(());
        };
        // Kept until the node took the files: a connection lost meanwhile offers them again.
        let changed = self.pending.is_some();
        self.last_check = Some(Instant::now());
        let node_files = certificates::node_files(client).await?;
        let cert_file = node_files
            .iter()
            .find(|(name, _)| name == "tls-cert-file")
            .map(|(_, path)| PathBuf::from(path));
        let wanted = cert_file.as_deref().map(Identity::of_file).transpose();
        let serving = certificates::serving(tls, node).await;
        let matches =
            matches!((&wanted, &serving), (Ok(Some(w)), Ok(s)) if w.fingerprint == s.fingerprint);
        self.record(metrics, &serving, matches);
        let refused_lately = self
            .refused
            .as_ref()
            .is_some_and(|(d, at)| *d == digest && at.elapsed() < RETRY_REFUSED);
        if !changed && (matches || refused_lately) {
            return Ok(());
        }
        if node_files.is_empty() {
            debug!("watch: the node has no TLS files: nothing to reload");
            self.pending = None;
            return Ok(());
        }
        let reloaded = certificates::reload(client, &node_files).await;
        if !matches!(reloaded, Err(Error::Unreachable { .. })) {
            self.pending = None;
        }
        match reloaded {
            Ok(()) => {
                let serving = certificates::serving(tls, node).await;
                let matches = matches!((&wanted, &serving), (Ok(Some(w)), Ok(s)) if w.fingerprint == s.fingerprint);
                self.record(metrics, &serving, matches);
                metrics.tls_reloads.inc();
                self.refused = None;
                match serving {
                    Ok(identity) => info!(
                        serial = identity.serial,
                        "watch: the node reloaded its TLS files and serves {identity}"
                    ),
                    Err(e) => warn!(
                        "watch: the node reloaded its TLS files, but its certificate cannot be \
                         read back: {}",
                        one_line(&e)
                    ),
                }
                Ok(())
            }
            Err(e @ Error::Command { .. }) => {
                metrics.tls_reload_failures.inc();
                self.refused = Some((digest, Instant::now()));
                let kept = match &serving {
                    Ok(identity) => identity.to_string(),
                    Err(_) => "its previous certificate".into(),
                };
                let files = node_files
                    .iter()
                    .map(|(name, path)| format!("{name} {path}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                error!(
                    "watch: the node refused its renewed TLS files ({files}): {}; it keeps \
                     serving {kept}. Fix the Secret redis-tls (a key that does not match its \
                     certificate?); the files are offered again when they change",
                    one_line(&e)
                );
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn digest(&self) -> Digest {
        Digest::of_files(&self.paths)
    }

    fn record(&self, metrics: &Metrics, serving: &Result<Identity>, matches: bool) {
        if let Ok(identity) = serving {
            metrics.tls_serving_not_after.set(identity.not_after);
        }
        metrics.tls_serving_matches_files.set(i64::from(matches));
    }
}

/// What was said about one matter: a failure that repeats every poll is logged once, until the
/// matter clears (the node answers again, the files change).
#[derive(Default)]
struct Said(std::collections::BTreeSet<String>);

impl Said {
    fn warn(&mut self, text: String) {
        if !self.0.contains(&text) {
            warn!("{text}");
            self.0.insert(text);
        }
    }

    fn error(&mut self, text: String) {
        if !self.0.contains(&text) {
            error!("{text}");
            self.0.insert(text);
        }
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}
