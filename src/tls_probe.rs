//! Tells whether a node that will not talk plaintext speaks TLS: a node with `port 0` and a
//! `tls-port` drops a plaintext connection without a Redis reply, which looks like a node that
//! is not up yet, and the run would retry it until `BOOTSTRAP_READY_TIMEOUT` before exiting 1.
//! Offering it a TLS handshake settles it: a node that presents a certificate speaks TLS, and
//! the missing `BOOTSTRAP_TLS_CA_FILE` is bad configuration (exit 2) at once.
//!
//! The probe trusts nothing: its verifier stops the handshake at the server's certificate, and
//! nothing is ever sent over it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;

/// How long the probe may take; a TLS server presents its certificate in one round trip.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the node at `addr` answers a TLS handshake with a certificate.
pub async fn speaks_tls(addr: SocketAddr) -> bool {
    let presented = Arc::new(AtomicBool::new(false));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let Ok(builder) =
        ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()
    else {
        return false;
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Witness {
            presented: presented.clone(),
            provider,
        }))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let probe = async {
        let tcp = TcpStream::connect(addr).await.ok()?;
        let name = ServerName::IpAddress(addr.ip().into());
        // Always fails: the witness refuses every certificate it sees.
        connector.connect(name, tcp).await.ok()
    };
    let _ = tokio::time::timeout(PROBE_TIMEOUT, probe).await;
    presented.load(Ordering::SeqCst)
}

/// A verifier that notes that a certificate was presented and refuses it.
#[derive(Debug)]
struct Witness {
    presented: Arc<AtomicBool>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Witness {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.presented.store(true, Ordering::SeqCst);
        Err(rustls::Error::General(
            "a probe only: no certificate is trusted".into(),
        ))
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        probe_only()
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        probe_only()
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The probe never gets as far as a signature: the certificate is refused first.
fn probe_only() -> Result<HandshakeSignatureValid, rustls::Error> {
    Err(rustls::Error::General("a probe only".into()))
}
