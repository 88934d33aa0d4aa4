//! TLS from muxql to its databases: one rustls client configuration per route, built from the
//! route's mode (libpq's `sslmode` semantics) and PEM files, and the name the server's
//! certificate must carry.
//!
//! - `prefer` and `require` without a CA file encrypt but do not check the certificate (an
//!   active attacker can still impersonate the server, as with libpq);
//! - `require` with a CA file, and `verify-ca`: the chain must end at the CA;
//! - `verify-full`: also the target's host name (or IP address) must be in the certificate.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::mux::{Route, UpstreamTls};

/// How the connections of one route run TLS.
#[derive(Clone)]
pub(crate) struct RouteTls {
    /// The rustls configuration.
    pub(crate) config: Arc<rustls::ClientConfig>,
    /// The name sent (SNI) and, for verify-full, checked.
    pub(crate) name: ServerName<'static>,
}

/// The TLS configuration of `route`, `None` when it connects in plaintext.
pub(crate) fn route_tls(route: &Route) -> Result<Option<RouteTls>, String> {
    if !route.upstream_tls.requested() {
        return Ok(None);
    }
    let what = |e: String| format!("route {:?}: upstream TLS: {e}", route.database);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match &route.upstream_tls_ca {
        Some(path) => Some(Arc::new(roots(path).map_err(what)?)),
        None => None,
    };
    let verifier: Arc<dyn ServerCertVerifier> = match (route.upstream_tls, roots) {
        (UpstreamTls::VerifyFull, Some(roots)) => {
            WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| what(e.to_string()))?
        }
        (UpstreamTls::Prefer, _) | (_, None) => Arc::new(Lenient {
            provider: provider.clone(),
            chain: None,
        }),
        (_, Some(roots)) => Arc::new(Lenient {
            provider: provider.clone(),
            chain: Some(
                WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| what(e.to_string()))?,
            ),
        }),
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| what(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&route.upstream_tls_cert, &route.upstream_tls_key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| what(format!("client certificate {cert}: {e}")))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| what(format!("client key {key}: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| what(format!("client certificate and key: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Some(RouteTls {
        config: Arc::new(config),
        name: server_name(&route.target),
    }))
}

/// The CA certificates of a PEM file.
fn roots(path: &str) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("CA file {path}: {e}"))?;
    for cert in certs {
        store
            .add(cert)
            .map_err(|e| format!("CA file {path}: {e}"))?;
    }
    if store.is_empty() {
        return Err(format!("CA file {path}: no certificate"));
    }
    Ok(store)
}

/// The host of a `host:port` or `[v6]:port` target as a TLS server name (`localhost` for a
/// Unix socket path).
fn server_name(target: &str) -> ServerName<'static> {
    let host = match target.rsplit_once(':') {
        Some((host, _)) if !target.starts_with('/') => host,
        _ => "localhost",
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .unwrap_or_else(|_| ServerName::try_from("localhost").expect("a valid DNS name"))
}

/// Checks less than verify-full: the chain only (`verify-ca`, `require` with a CA file), or
/// nothing at all (`prefer`, `require` without one). The handshake signatures are checked
/// either way, so the session is bound to the certificate's key.
#[derive(Debug)]
struct Lenient {
    provider: Arc<CryptoProvider>,
    /// The chain check, when there is a CA file.
    chain: Option<Arc<WebPkiServerVerifier>>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_come_from_the_target() {
        let name = |t: &str| server_name(t).to_str().into_owned();
        assert_eq!(name("db.example.com:5432"), "db.example.com");
        assert_eq!(name("127.0.0.1:5432"), "127.0.0.1");
        assert_eq!(name("[::1]:5432"), "::1");
        assert_eq!(name("/run/postgresql/.s.PGSQL.5432"), "localhost");
    }

    #[test]
    fn plaintext_routes_have_no_tls_and_missing_files_are_named() {
        let mut route = Route::new(crate::mux::Protocol::Postgres, "d", "h:1", "u");
        assert!(route_tls(&route).expect("plaintext").is_none());
        route.upstream_tls = UpstreamTls::Require;
        assert!(route_tls(&route).expect("require").is_some());
        route.upstream_tls_ca = Some("/nonexistent/ca.pem".into());
        let err = route_tls(&route).err().expect("missing CA file");
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
