//! TLS for the server's PostgreSQL clients: the certificate chain and key from PEM files, one
//! rustls configuration shared by every connection (ring as the crypto provider), and the
//! certificate's channel-binding data for SCRAM-SHA-256-PLUS.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// TLS as the server uses it.
pub(crate) struct ServerTls {
    /// For PostgreSQL clients: ALPN `postgresql`, which PostgreSQL 17's direct TLS requires.
    pub(crate) postgres: Arc<rustls::ServerConfig>,
    /// For MySQL clients: no ALPN.
    pub(crate) mysql: Arc<rustls::ServerConfig>,
    /// RFC 5929 `tls-server-end-point` of the leaf certificate, when its signature algorithm
    /// names a hash (for SCRAM-SHA-256-PLUS).
    pub(crate) end_point: Option<Vec<u8>>,
}

/// A server configuration from a PEM certificate chain (leaf first) and its private key.
pub(crate) fn server_tls(cert: &Path, key: &Path) -> Result<ServerTls, String> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("TLS certificate {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "TLS certificate {}: no certificate",
            cert.display()
        ));
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("TLS key {}: {e}", key.display()))?;
    let end_point = end_point(&certs[0]);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS certificate and key: {e}"))?;
    let mut postgres = config.clone();
    postgres.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(ServerTls {
        postgres: Arc::new(postgres),
        mysql: Arc::new(config),
        end_point,
    })
}

/// `tls-server-end-point` (RFC 5929 section 4.1): the certificate's DER hashed with the hash
/// of its signature algorithm, SHA-256 when that is MD5 or SHA-1; `None` when the algorithm
/// names no hash (Ed25519), as PostgreSQL then offers no channel binding either.
fn end_point(cert: &[u8]) -> Option<Vec<u8>> {
    use sha2::Digest;
    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm AlgorithmIdentifier, .. }
    let (_, body) = der_element(cert, 0x30)?;
    let (rest, _tbs) = der_any(body)?;
    let (_, algorithm) = der_element(rest, 0x30)?;
    let (_, oid) = der_element(algorithm, 0x06)?;
    const SHA384: [&[u8]; 2] = [
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c],
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],
    ];
    const SHA512: [&[u8]; 2] = [
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d],
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],
    ];
    const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
    if SHA384.contains(&oid) {
        Some(sha2::Sha384::digest(cert).to_vec())
    } else if SHA512.contains(&oid) {
        Some(sha2::Sha512::digest(cert).to_vec())
    } else if oid == ED25519 {
        None
    } else {
        Some(sha2::Sha256::digest(cert).to_vec())
    }
}

/// The element with tag `tag` at the start of `der`: (what follows it, its contents).
fn der_element(der: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *der.first()? != tag {
        return None;
    }
    der_any(der)
}

/// Any element at the start of `der` (short or long definite length): (what follows it, its
/// contents).
fn der_any(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let first = *der.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len = der
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    Some((der.get(end..)?, der.get(header..end)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate signed with ECDSA-SHA256 binds with SHA-256 of its DER.
    #[test]
    fn end_point_hashes_with_the_signature_hash() {
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        use sha2::Digest;
        assert_eq!(
            end_point(cert.der()),
            Some(sha2::Sha256::digest(cert.der()).to_vec())
        );
        assert_eq!(end_point(b"not DER"), None);
    }
}
