//! The HTTPS listener's certificate: read from PEM files at start and on every reload, so a
//! renewed certificate is picked up by new connections without a restart.

use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsConfig;

/// A server configuration built from `c`'s files. Errors name the file, never its contents.
pub(crate) fn load(c: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs = CertificateDer::pem_file_iter(&c.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read the certificate {}: {e}", c.cert.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", c.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&c.key)
        .map_err(|e| format!("cannot read the private key {}: {e}", c.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            format!(
                "certificate {} and key {}: {e}",
                c.cert.display(),
                c.key.display()
            )
        })?;
    // hyper-util serves both; clients that offer h2 get it.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The configuration new TLS connections use; replaced whole on reload, so a connection
/// mid-handshake keeps the one it started with.
pub(crate) struct TlsState {
    current: RwLock<Arc<rustls::ServerConfig>>,
}

impl TlsState {
    /// Holds `config`.
    pub(crate) fn new(config: Arc<rustls::ServerConfig>) -> Self {
        TlsState {
            current: RwLock::new(config),
        }
    }

    /// The configuration for the next handshake.
    pub(crate) fn current(&self) -> Arc<rustls::ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Makes `fresh` (from [`load`]) the configuration of the next handshakes.
    pub(crate) fn replace(&self, fresh: Arc<rustls::ServerConfig>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
    }
}
