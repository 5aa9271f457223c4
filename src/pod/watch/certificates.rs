//! Renewed certificates, picked up by the local node and by the watcher's own client.
//!
//! Redis and Valkey read their TLS files at start and again on `CONFIG SET tls-cert-file ...`,
//! even to the same path (measured on Redis 7.0 and Valkey 8.0): the new context serves new
//! connections, and established ones (clients, replication, the cluster bus) keep theirs. When a
//! new pair does not load (a key that does not match), the node says so, restores its previous
//! settings and keeps serving the old certificate: [`reload`] fails, and the watcher says so
//! loudly (an error line and a metric).
//!
//! What a node serves is read from a TLS handshake, not assumed: [`Identity`] (serial, notAfter,
//! fingerprint) of the certificate it presents, against the one in its `tls-cert-file`.

use std::path::Path;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use std::path::PathBuf;
use std::time::Instant;

use tracing::{debug, error, info, warn};

use super::files::{Digest, Settled};
use super::metrics::Metrics;
use super::{RECHECK, RETRY_REFUSED, config_get};
use crate::client::{CONNECT_TIMEOUT, Client};
use crate::node::Node;
use crate::tls::{Tls, TlsFiles};
use crate::{Error, Result, one_line};

/// The file settings a node reads its TLS context from, set again (to the values they have) to
/// make it reload. Ones that are empty are left out.
pub const FILE_SETTINGS: [&str; 7] = [
    "tls-cert-file",
    "tls-key-file",
    "tls-ca-cert-file",
    "tls-ca-cert-dir",
    "tls-client-cert-file",
    "tls-client-key-file",
    "tls-dh-params-file",
];

/// A certificate as people and metrics tell it apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The serial number, in uppercase hex without separators (as `openssl x509 -serial`).
    pub serial: String,
    /// When it expires, in seconds since the Unix epoch.
    pub not_after: i64,
    /// The SHA-256 of its DER: two certificates are the same when this is.
    pub fingerprint: Vec<u8>,
}

impl Identity {
    /// The identity of a DER certificate.
    pub fn of(der: &[u8]) -> Result<Identity> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| Error::Config(format!("not an X.509 certificate: {e}")))?;
        let raw = cert.tbs_certificate.raw_serial();
        let significant = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
        let mut serial: String = raw[significant..]
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        if serial.is_empty() {
            serial.push('0');
        }
        Ok(Identity {
            serial,
            not_after: cert.validity().not_after.timestamp(),
            fingerprint: ring::digest::digest(&ring::digest::SHA256, der)
                .as_ref()
                .to_vec(),
        })
    }

    /// The first certificate of a PEM file (the leaf).
    pub fn of_file(path: &Path) -> Result<Identity> {
        let pem = std::fs::read(path)
            .map_err(|e| Error::Config(format!("{} cannot be read: {e}", path.display())))?;
        let leaf = CertificateDer::pem_slice_iter(&pem)
            .next()
            .ok_or_else(|| Error::Config(format!("{} holds no PEM certificate", path.display())))?
            .map_err(|e| Error::Config(format!("{} is not valid PEM: {e}", path.display())))?;
        Identity::of(&leaf)
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let not_after =
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.not_after.max(0) as u64);
        write!(
            f,
            "serial {}, not after {}",
            self.serial,
            humantime::format_rfc3339_seconds(not_after)
        )
    }
}

/// The certificate the node presents now, from a TLS handshake that verifies it.
pub async fn serving(tls: &Tls, node: &Node) -> Result<Identity> {
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect(node.addr).await?;
        tls.handshake(node, tcp).await
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, handshake)
        .await
        .map_err(|_| {
            Error::Config(format!(
                "{node}: no TLS handshake within {}s",
                CONNECT_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| Error::Config(format!("{node}: TLS handshake failed: {e}")))?;
    let leaf = stream
        .peer_certificate()
        .ok_or_else(|| Error::Config(format!("{node}: presented no certificate")))?;
    Identity::of(&leaf)
}

/// The node's TLS file settings that are set, as `CONFIG GET` gives them.
pub async fn node_files(client: &Client) -> Result<Vec<(String, String)>> {
    let settings = config_get(client, &FILE_SETTINGS).await?;
    Ok(FILE_SETTINGS
        .iter()
        .filter_map(|name| {
            let value = settings.get(*name)?;
            (!value.is_empty()).then(|| (name.to_string(), value.clone()))
        })
        .collect())
}

/// Makes the node read its TLS files again: one `CONFIG SET` of every file setting to the value it
/// has. The node applies all of them or none.
pub async fn reload(client: &Client, files: &[(String, String)]) -> Result<()> {
    let mut cmd = redis::cmd("CONFIG");
    cmd.arg("SET");
    for (name, value) in files {
        cmd.arg(name).arg(value);
    }
    client
        .query::<()>(&cmd, "CONFIG SET tls-cert-file ... (reload the TLS files)")
        .await
}

/// The TLS files: the watcher's own client, and the node's certificate.
pub struct CertsWatch {
    files: TlsFiles,
    /// The files watched: `BOOTSTRAP_TLS_*`.
    pub paths: Vec<PathBuf>,
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
    pub fn new(files: TlsFiles) -> CertsWatch {
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

    pub fn recheck(&mut self) {
        self.last_check = None;
    }

    /// Reads the files; once a change held still, loads them for new connections and marks them
    /// for the node.
    pub fn poll_files(&mut self, tls: &mut Option<Tls>) {
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
    pub async fn poll_node(
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
        let node_files = node_files(client).await?;
        let cert_file = node_files
            .iter()
            .find(|(name, _)| name == "tls-cert-file")
            .map(|(_, path)| PathBuf::from(path));
        let wanted = cert_file.as_deref().map(Identity::of_file).transpose();
        let before = serving(tls, node).await;
        let matches =
            matches!((&wanted, &before), (Ok(Some(w)), Ok(s)) if w.fingerprint == s.fingerprint);
        self.record(metrics, &before, matches);
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
        let reloaded = reload(client, &node_files).await;
        if !matches!(reloaded, Err(Error::Unreachable { .. })) {
            self.pending = None;
        }
        match reloaded {
            Ok(()) => {
                let after = serving(tls, node).await;
                let matches = matches!((&wanted, &after), (Ok(Some(w)), Ok(s)) if w.fingerprint == s.fingerprint);
                self.record(metrics, &after, matches);
                metrics.tls_reloads.inc();
                self.refused = None;
                match after {
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
                let kept = match &before {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_is_told_by_its_serial_and_expiry() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["redis-app-0".to_string()]).unwrap();
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x00, 0x1a, 0x2b]));
        params.not_after = rcgen::date_time_ymd(2031, 1, 2);
        let cert = params.self_signed(&key).unwrap();
        let id = Identity::of(cert.der()).unwrap();
        assert_eq!(id.serial, "1A2B");
        assert_eq!(id.not_after, 1_925_078_400);
        assert!(
            id.to_string()
                .starts_with("serial 1A2B, not after 2031-01-02T")
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tls.crt");
        std::fs::write(&file, cert.pem()).unwrap();
        assert_eq!(Identity::of_file(&file).unwrap(), id);
        std::fs::write(&file, "no certificate").unwrap();
        let err = Identity::of_file(&file).unwrap_err().to_string();
        assert!(err.contains("holds no PEM certificate"), "{err}");
    }
}
