//! TLS for PostgreSQL connections: rustls with the *ring* crypto provider, behind the
//! default-on cargo feature `tls`. Without it, `disable` and `prefer` connect in plain TCP
//! (as a libpq built without SSL does) and the modes that demand TLS are `InvalidInput`.
//!
//! Why rustls: it needs neither OpenSSL headers nor a system library at build or run time
//! (identical behaviour on every machine), and tokio-postgres-rustls 0.14 resolves against
//! tokio-postgres 0.7.18 with rustls 0.23. *ring* rather than aws-lc-rs: both need a C
//! compiler, but *ring* needs nothing more, where AWS-LC needs CMake on some targets and NASM
//! on Windows x86. Roots for `verify-full`/`verify-ca` come from
//! `sslrootcert` when given (like libpq), else from the Mozilla set in `webpki-roots`.
//!
//! `sslmode` follows libpq: `disable` (plain TCP), `prefer` (TLS when the server offers it,
//! certificate not verified), `require` (TLS mandatory, certificate not verified — encryption
//! against passive eavesdroppers only), `verify-ca` (chain verified, host name not), and
//! `verify-full` (chain and host name verified: what managed services should use).

use s3o_core::{Result, StoreError};

/// The `sslmode` of a connection URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the server offers it; the certificate is not verified.
    Prefer,
    /// TLS required; the certificate is not verified.
    Require,
    /// TLS required; the certificate chain is verified, the host name is not.
    VerifyCa,
    /// TLS required; chain and host name are verified.
    VerifyFull,
}

impl SslMode {
    /// The accepted spellings, for error messages.
    pub const ACCEPTED: &'static str = "disable, prefer, require, verify-ca, verify-full";

    /// Parses a libpq `sslmode` value.
    pub fn parse(s: &str) -> Result<SslMode> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" | "allow" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(StoreError::invalid(
                    "sslmode",
                    format!("`{other}` is not one of {}", Self::ACCEPTED),
                ));
            }
        })
    }

    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// What tokio-postgres is told: it only negotiates; verification is the connector's job.
    pub(crate) fn driver_mode(self) -> tokio_postgres::config::SslMode {
        match self {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        }
    }
}

#[cfg(feature = "tls")]
pub(crate) use with_rustls::{Connector, connector};

/// The rustls connector (feature `tls`).
#[cfg(feature = "tls")]
mod with_rustls {
    use std::sync::Arc;

    use super::SslMode;

    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
    use s3o_core::{Result, StoreError};
    use tokio_postgres_rustls::MakeRustlsConnect;

    /// What a TLS connection is made with.
    pub(crate) type Connector = MakeRustlsConnect;

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn tls_err(why: impl std::fmt::Display) -> StoreError {
        StoreError::invalid("TLS configuration", why.to_string())
    }

    fn roots(root_cert: Option<&str>) -> Result<RootCertStore> {
        let mut store = RootCertStore::empty();
        match root_cert {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| tls_err(format!("cannot read sslrootcert {path}: {e}")))?;
                for cert in certs {
                    let cert =
                        cert.map_err(|e| tls_err(format!("bad certificate in {path}: {e}")))?;
                    store
                        .add(cert)
                        .map_err(|e| tls_err(format!("bad certificate in {path}: {e}")))?;
                }
                if store.is_empty() {
                    return Err(tls_err(format!("sslrootcert {path} holds no certificate")));
                }
            }
            None => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        Ok(store)
    }

    /// Builds the rustls connector for a TLS mode (`None` for `disable`).
    pub(crate) fn connector(
        mode: SslMode,
        root_cert: Option<&str>,
    ) -> Result<Option<MakeRustlsConnect>> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?;
        let config = match mode {
            SslMode::Disable => return Ok(None),
            SslMode::Prefer | SslMode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(EncryptOnly { provider }))
                .with_no_client_auth(),
            SslMode::VerifyCa => {
                let inner = WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots(root_cert)?),
                    Arc::clone(&provider),
                )
                .build()
                .map_err(tls_err)?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnly { inner }))
                    .with_no_client_auth()
            }
            SslMode::VerifyFull => builder
                .with_root_certificates(roots(root_cert)?)
                .with_no_client_auth(),
        };
        Ok(Some(MakeRustlsConnect::new(config)))
    }

    /// `require`/`prefer`: any certificate is accepted, but the handshake signatures are still
    /// checked, so the session is encrypted with the key of whoever presented the certificate.
    #[derive(Debug)]
    struct EncryptOnly {
        provider: Arc<CryptoProvider>,
    }

    impl ServerCertVerifier for EncryptOnly {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> std::result::Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(
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
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(
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

    /// `verify-ca`: the WebPKI verifier, minus the host-name check.
    #[derive(Debug)]
    struct ChainOnly {
        inner: Arc<WebPkiServerVerifier>,
    }

    impl ServerCertVerifier for ChainOnly {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp_response: &[u8],
            now: UnixTime,
        ) -> std::result::Result<ServerCertVerified, rustls::Error> {
            match self.inner.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. },
                )) => Ok(ServerCertVerified::assertion()),
                other => other,
            }
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
            self.inner.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.inner.supported_verify_schemes()
        }
    }
}

/// Without the `tls` feature nothing encrypts: the connector type is the driver's `NoTls`,
/// and no mode ever yields one.
#[cfg(not(feature = "tls"))]
pub(crate) type Connector = tokio_postgres::NoTls;

/// Plain TCP for `disable` and `prefer`; the modes that demand TLS name the missing feature.
#[cfg(not(feature = "tls"))]
pub(crate) fn connector(mode: SslMode, _root_cert: Option<&str>) -> Result<Option<Connector>> {
    match mode {
        SslMode::Disable | SslMode::Prefer => Ok(None),
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Err(StoreError::invalid(
            "sslmode",
            format!(
                "`{}` needs TLS, but s3o-pg was built without its `tls` cargo feature",
                mode.as_str()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "tls")]
    #[test]
    fn every_mode_builds_a_connector() {
        assert!(connector(SslMode::Disable, None).unwrap().is_none());
        for m in [
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyCa,
            SslMode::VerifyFull,
        ] {
            assert!(connector(m, None).unwrap().is_some(), "{m:?}");
        }
    }

    #[cfg(feature = "tls")]
    #[test]
    fn missing_root_cert_file_is_invalid_input() {
        let Err(e) = connector(SslMode::VerifyFull, Some("/nonexistent/root.crt")) else {
            panic!("a missing root file must fail");
        };
        assert!(matches!(e, StoreError::InvalidInput { .. }), "{e:?}");
        assert!(e.to_string().contains("sslrootcert"), "{e}");
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn without_tls_only_plain_modes_connect() {
        for m in [SslMode::Disable, SslMode::Prefer] {
            assert!(connector(m, None).unwrap().is_none(), "{m:?}");
        }
        for m in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
            let Err(e) = connector(m, None) else {
                panic!("{m:?} must demand the tls feature");
            };
            assert!(matches!(e, StoreError::InvalidInput { .. }), "{e:?}");
            assert!(e.to_string().contains("`tls` cargo feature"), "{e}");
        }
    }

    #[test]
    fn modes_parse_and_print() {
        for s in ["disable", "prefer", "require", "verify-ca", "verify-full"] {
            assert_eq!(SslMode::parse(s).unwrap().as_str(), s);
        }
        let e = SslMode::parse("verify_full").unwrap_err();
        assert!(e.to_string().contains("verify-full"), "{e}");
    }
}
