//! How the client checks the node's certificate: against a CA file (PVE's own
//! `/etc/pve/pve-root-ca.pem` by default), by the SHA-256 fingerprint of the leaf certificate, or
//! not at all when the admin explicitly asked for `insecure` (logged as a warning).

use crate::PveError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;

/// Certificate checking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// Trust this CA file (PEM).
    CaFile(PathBuf),
    /// Trust exactly the certificate with this SHA-256 fingerprint.
    Fingerprint([u8; 32]),
    /// Trust anything (for labs; warned about at every start).
    Insecure,
}

#[derive(Debug)]
struct Pinned {
    fingerprint: [u8; 32],
    provider: Arc<rustls::crypto::CryptoProvider>,
    insecure: bool,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.insecure {
            return Ok(ServerCertVerified::assertion());
        }
        let seen: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if seen == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "certificate fingerprint {} does not match the pinned one",
                seen.iter()
                    .map(|b| format!("{b:02X}"))
                    .collect::<Vec<_>>()
                    .join(":")
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The rustls client configuration for a mode.
pub(crate) fn client_config(mode: &TlsMode) -> Result<rustls::ClientConfig, PveError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| PveError::Setup(e.to_string()))?;
    let config = match mode {
        TlsMode::CaFile(path) => {
            use rustls::pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| {
                PveError::Setup(format!("cannot read the CA file {}: {e}", path.display()))
            })?;
            for cert in certs {
                let cert = cert.map_err(|e| {
                    PveError::Setup(format!("bad certificate in {}: {e}", path.display()))
                })?;
                roots.add(cert).map_err(|e| {
                    PveError::Setup(format!("bad certificate in {}: {e}", path.display()))
                })?;
            }
            if roots.is_empty() {
                return Err(PveError::Setup(format!(
                    "{} holds no certificate",
                    path.display()
                )));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TlsMode::Fingerprint(fp) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                fingerprint: *fp,
                provider,
                insecure: false,
            }))
            .with_no_client_auth(),
        TlsMode::Insecure => {
            tracing::warn!("TLS verification of the PVE API is off (insecure); pin the certificate's fingerprint instead");
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Pinned {
                    fingerprint: [0; 32],
                    provider,
                    insecure: true,
                }))
                .with_no_client_auth()
        }
    };
    Ok(config)
}
