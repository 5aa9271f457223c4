//! TLS to the nodes (`BOOTSTRAP_TLS_*`): the rustls client configuration, built once at startup
//! from the files, and the handshake of each connection.
//!
//! The client connects to the resolved IP but verifies the certificate against the CA bundle and
//! the name it expects for the node ([`Node::tls_name`]): the pod's DNS name in Kubernetes mode,
//! the host as written in `BOOTSTRAP_NODES` in static mode (an IP written as an IP is checked
//! against the certificate's IP SANs). rustls with ring, no OpenSSL: the image stays distroless.

use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::Error;
use crate::node::Node;

/// The TLS settings of a run: the CA to trust and, when set, the client certificate. Cheap to
/// clone.
#[derive(Clone)]
pub struct Tls {
    config: Arc<ClientConfig>,
    client_cert: bool,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("client_cert", &self.client_cert)
            .finish()
    }
}

/// The files named by `BOOTSTRAP_TLS_*`, paired as they must be (a CA, and a client certificate
/// with its key or neither), not read yet: [`TlsFiles::load`] reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// `BOOTSTRAP_TLS_CA_FILE`.
    pub ca: String,
    /// `BOOTSTRAP_TLS_CERT_FILE` and `BOOTSTRAP_TLS_KEY_FILE`.
    pub client: Option<(String, String)>,
}

impl TlsFiles {
    /// The files as the variables name them: `None` when none is set; an [`Error::Config`]
    /// naming the variable when they do not pair up.
    pub fn from_vars(
        ca: Option<&str>,
        cert: Option<&str>,
        key: Option<&str>,
    ) -> Result<Option<TlsFiles>, Error> {
        let client = match (cert, key) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(Error::Config(
                    "BOOTSTRAP_TLS_CERT_FILE is set but BOOTSTRAP_TLS_KEY_FILE is not: expected both \
                     (a client certificate and its key) or neither"
                        .into(),
                ));
            }
            (None, Some(_)) => {
                return Err(Error::Config(
                    "BOOTSTRAP_TLS_KEY_FILE is set but BOOTSTRAP_TLS_CERT_FILE is not: expected both \
                     (a client certificate and its key) or neither"
                        .into(),
                ));
            }
            (Some(cert), Some(key)) => Some((cert.to_string(), key.to_string())),
        };
        match (ca, client) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(without_ca("BOOTSTRAP_TLS_CERT_FILE")),
            (Some(ca), client) => Ok(Some(TlsFiles {
                ca: ca.to_string(),
                client,
            })),
        }
    }

    /// Reads and checks the files (at startup: [`crate::config::Settings::from_env`]). Every
    /// problem is an [`Error::Config`] naming the variable.
    pub fn load(&self) -> Result<Tls, Error> {
        let ca = self.ca.as_str();
        let mut roots = rustls::RootCertStore::empty();
        for cert in certificates("BOOTSTRAP_TLS_CA_FILE", ca)? {
            roots.add(cert).map_err(|e| {
                Error::Config(format!(
                    "BOOTSTRAP_TLS_CA_FILE={ca:?}: a certificate in it is not a usable CA: {e}"
                ))
            })?;
        }
        let builder =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| Error::Internal(format!("rustls has no TLS version for ring: {e}")))?
                .with_root_certificates(roots);
        let config = match &self.client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = certificates("BOOTSTRAP_TLS_CERT_FILE", cert)?;
                let key_der = PrivateKeyDer::from_pem_slice(&read("BOOTSTRAP_TLS_KEY_FILE", key)?)
                    .map_err(|e| {
                        Error::Config(format!(
                            "BOOTSTRAP_TLS_KEY_FILE={key:?} holds no usable private key ({e}): \
                             expected a PEM key (PKCS#8, PKCS#1 or SEC1)"
                        ))
                    })?;
                builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                    Error::Config(format!(
                        "BOOTSTRAP_TLS_KEY_FILE={key:?} does not go with \
                         BOOTSTRAP_TLS_CERT_FILE={cert:?}: {e}"
                    ))
                })?
            }
        };
        Ok(Tls {
            config: Arc::new(config),
            client_cert: self.client.is_some(),
        })
    }
}

impl Tls {
    /// [`TlsFiles::from_vars`], then [`TlsFiles::load`].
    pub fn from_files(
        ca: Option<&str>,
        cert: Option<&str>,
        key: Option<&str>,
    ) -> Result<Option<Tls>, Error> {
        TlsFiles::from_vars(ca, cert, key)?
            .map(|files| files.load())
            .transpose()
    }

    /// The TLS handshake over `tcp` (already connected to `node.addr`), checking the certificate
    /// against the CA and [`Node::tls_name`]. The error is rustls's, inside the `io::Error`; see
    /// [`Tls::handshake_failure`].
    pub async fn handshake(&self, node: &Node, tcp: TcpStream) -> std::io::Result<Watched> {
        let name = ServerName::try_from(node.tls_name.clone()).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{:?} is not a DNS name or an IP: {e}", node.tls_name),
            )
        })?;
        // Without a client certificate, each connection notes whether the node asked for one.
        let asked = Arc::new(AskedForNone::default());
        let config = if self.client_cert {
            self.config.clone()
        } else {
            let mut config = (*self.config).clone();
            config.client_auth_cert_resolver = asked.clone();
            Arc::new(config)
        };
        let inner = TlsConnector::from(config).connect(name, tcp).await?;
        Ok(Watched {
            inner,
            seen: Arc::default(),
            asked_for_a_certificate: asked.0.load(Ordering::Relaxed),
        })
    }

    /// The configuration error for a handshake that failed for a reason retrying cannot fix;
    /// `None` for any other failure (the node is not up yet, or not speaking TLS yet).
    pub fn handshake_failure(&self, node: &Node, e: &std::io::Error) -> Option<Error> {
        self.refusal(node, e.get_ref()?.downcast_ref::<rustls::Error>()?)
    }

    /// The configuration error for a connection that failed right after a handshake in which the
    /// node asked for a client certificate and got none: with TLS 1.3 its refusal may be lost in
    /// a reset connection, before the alert that says so is read. A node with
    /// `tls-auth-clients optional` asks too, but then the connection does not fail.
    pub fn refused_for_want_of_a_certificate(&self, node: &Node, asked: bool) -> Option<Error> {
        (!self.client_cert && asked).then(|| {
            self.refusal(
                node,
                &rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired),
            )
            .expect("CertificateRequired is a refusal")
        })
    }

    /// The configuration error for a TLS error retrying cannot fix: the node's certificate does not
    /// verify (unknown CA, expired, another name), or the node refuses ours (it wants one, or does
    /// not trust it). With TLS 1.3 the node says so only after the handshake, on the first read:
    /// see [`Watched::seen`].
    pub fn refusal(&self, node: &Node, e: &rustls::Error) -> Option<Error> {
        use rustls::AlertDescription as A;
        match e {
            rustls::Error::InvalidCertificate(reason) => Some(Error::Config(format!(
                "node {node}: its TLS certificate does not verify as {:?} against \
                 BOOTSTRAP_TLS_CA_FILE: {}",
                node.tls_name,
                readable(reason)
            ))),
            rustls::Error::AlertReceived(
                alert @ (A::CertificateRequired
                | A::BadCertificate
                | A::UnsupportedCertificate
                | A::CertificateRevoked
                | A::CertificateExpired
                | A::CertificateUnknown
                | A::UnknownCA
                | A::AccessDenied),
            ) => Some(Error::Config(if self.client_cert {
                format!(
                    "node {node} refuses the client certificate of BOOTSTRAP_TLS_CERT_FILE \
                     ({alert:?}): expected one signed by the CA of the nodes' tls-ca-cert-file, \
                     and valid now"
                )
            } else {
                format!(
                    "node {node} asks for a client certificate ({alert:?}, tls-auth-clients): \
                     set BOOTSTRAP_TLS_CERT_FILE and BOOTSTRAP_TLS_KEY_FILE to one signed by the \
                     nodes' CA"
                )
            })),
            _ => None,
        }
    }
}

/// A TLS stream that keeps the first TLS error seen after the handshake, for the connect error
/// to explain: the redis crate keeps only the text of an I/O error, not rustls's error inside it.
pub struct Watched {
    inner: TlsStream<TcpStream>,
    seen: Arc<Mutex<Option<rustls::Error>>>,
    asked_for_a_certificate: bool,
}

/// The client-certificate resolver when there is none: it notes that the node asked.
#[derive(Debug, Default)]
struct AskedForNone(AtomicBool);

impl rustls::client::ResolvesClientCert for AskedForNone {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.0.store(true, Ordering::Relaxed);
        None
    }

    fn has_certs(&self) -> bool {
        false
    }
}

impl Watched {
    /// Whether the node asked for a client certificate when the tool has none.
    pub fn asked_for_a_certificate(&self) -> bool {
        self.asked_for_a_certificate
    }

    /// The certificate the node presented (its leaf), which the handshake verified.
    pub fn peer_certificate(&self) -> Option<CertificateDer<'static>> {
        let (_, connection) = self.inner.get_ref();
        connection
            .peer_certificates()?
            .first()
            .map(|der| der.clone().into_owned())
    }

    /// Where the first TLS error will be, once the stream is handed to the redis crate.
    pub fn seen(&self) -> Arc<Mutex<Option<rustls::Error>>> {
        self.seen.clone()
    }

    fn keep<T>(&self, poll: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        if let Poll::Ready(Err(e)) = &poll
            && let Some(tls) = e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>())
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.get_or_insert_with(|| tls.clone());
        }
        poll
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.keep(poll)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.keep(poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.keep(poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.keep(poll)
    }
}

/// rustls's reason, with dates instead of UNIX seconds and words for the bare variant names.
fn readable(reason: &rustls::CertificateError) -> String {
    use rustls::CertificateError as E;
    let date = |t: &rustls::pki_types::UnixTime| {
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.as_secs()),
        )
    };
    match reason {
        E::UnknownIssuer => {
            "UnknownIssuer: it is not signed by a CA of the bundle (another CA?)".to_string()
        }
        E::ExpiredContext { time, not_after } => format!(
            "certificate expired: not valid after {} (now {})",
            date(not_after),
            date(time)
        ),
        E::NotValidYetContext { time, not_before } => format!(
            "certificate not valid yet: not valid before {} (now {})",
            date(not_before),
            date(time)
        ),
        other => other.to_string(),
    }
}

fn without_ca(var: &str) -> Error {
    Error::Config(format!(
        "{var} is set but BOOTSTRAP_TLS_CA_FILE is not: a client certificate needs TLS, which \
         BOOTSTRAP_TLS_CA_FILE turns on (the CA that signed the nodes' certificates)"
    ))
}

fn read(var: &str, path: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(Path::new(path))
        .map_err(|e| Error::Config(format!("{var}={path:?} cannot be read: {e}")))
}

/// Every certificate in a PEM file; at least one.
fn certificates(var: &str, path: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = read(var, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Config(format!("{var}={path:?} is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "{var}={path:?} holds no certificate: expected PEM (-----BEGIN CERTIFICATE-----)"
        )));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Files {
            let dir = tempfile::tempdir().unwrap();
            let ca_key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let ca = params.self_signed(&ca_key).unwrap();
            let issuer = rcgen::Issuer::new(params, ca_key);
            let client_key = rcgen::KeyPair::generate().unwrap();
            let client = rcgen::CertificateParams::new(vec!["bootstrap".to_string()])
                .unwrap()
                .signed_by(&client_key, &issuer)
                .unwrap();
            let other_key = rcgen::KeyPair::generate().unwrap();
            let files = Files { dir };
            files.write("ca.crt", &ca.pem());
            files.write("client.crt", &client.pem());
            files.write("client.key", &client_key.serialize_pem());
            files.write("other.key", &other_key.serialize_pem());
            files.write("garbage", "not a certificate\n");
            files
        }

        fn write(&self, name: &str, text: &str) {
            std::fs::write(self.dir.path().join(name), text).unwrap();
        }

        fn path(&self, name: &str) -> String {
            self.dir.path().join(name).display().to_string()
        }
    }

    fn error(ca: Option<&str>, cert: Option<&str>, key: Option<&str>) -> String {
        match Tls::from_files(ca, cert, key) {
            Ok(_) => panic!("accepted {ca:?} {cert:?} {key:?}"),
            Err(e) => {
                assert!(matches!(e, Error::Config(_)), "{e}");
                e.to_string()
            }
        }
    }

    #[test]
    fn good_files_load_with_and_without_a_client_certificate() {
        let f = Files::new();
        assert!(Tls::from_files(None, None, None).unwrap().is_none());
        let ca = f.path("ca.crt");
        assert!(Tls::from_files(Some(&ca), None, None).unwrap().is_some());
        let with_cert = Tls::from_files(
            Some(&ca),
            Some(&f.path("client.crt")),
            Some(&f.path("client.key")),
        )
        .unwrap()
        .unwrap();
        assert!(with_cert.client_cert);
    }

    #[test]
    fn bad_files_name_the_variable_and_why() {
        let f = Files::new();
        let ca = f.path("ca.crt");
        let (cert, key) = (f.path("client.crt"), f.path("client.key"));
        let missing = f.path("missing.crt");
        let garbage = f.path("garbage");
        let cases: [(String, &str); 8] = [
            (
                error(Some(&missing), None, None),
                "BOOTSTRAP_TLS_CA_FILE=\"",
            ),
            (error(Some(&garbage), None, None), "holds no certificate"),
            (error(Some(&key), None, None), "BOOTSTRAP_TLS_CA_FILE="),
            (
                error(Some(&ca), Some(&cert), None),
                "BOOTSTRAP_TLS_KEY_FILE is not",
            ),
            (
                error(Some(&ca), None, Some(&key)),
                "BOOTSTRAP_TLS_CERT_FILE is not",
            ),
            (
                error(None, Some(&cert), Some(&key)),
                "BOOTSTRAP_TLS_CA_FILE is not",
            ),
            (
                error(Some(&ca), Some(&cert), Some(&garbage)),
                "BOOTSTRAP_TLS_KEY_FILE=",
            ),
            (
                error(Some(&ca), Some(&cert), Some(&f.path("other.key"))),
                "does not go with BOOTSTRAP_TLS_CERT_FILE",
            ),
        ];
        for (message, expected) in cases {
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
            assert!(!message.contains('\n'), "{message:?}");
        }
        assert!(error(Some(&missing), None, None).contains("cannot be read"));
    }
}
