//! MariaDB client_ed25519 (client role). The password is not a standard Ed25519 seed: the
//! expanded secret is `SHA-512(password)` (first half clamped into the scalar, second half the
//! nonce prefix), and the 32-byte server nonce is signed with it.

use ed25519_dalek::hazmat::{raw_sign, ExpandedSecretKey};
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha512};

/// Plugin name.
pub const NAME: &[u8] = b"client_ed25519";
/// Length of the server's nonce.
pub const NONCE_LEN: usize = 32;

fn expanded(password: &[u8]) -> ExpandedSecretKey {
    let hash: [u8; 64] = Sha512::digest(password).into();
    ExpandedSecretKey::from_bytes(&hash)
}

/// The public key MariaDB stores for `password` (`ed25519_password()` is its base64).
pub fn public_key(password: &[u8]) -> [u8; 32] {
    VerifyingKey::from(&expanded(password)).to_bytes()
}

/// The 64-byte signature of `nonce` the client sends.
pub fn sign_nonce(nonce: &[u8], password: &[u8]) -> [u8; 64] {
    let esk = expanded(password);
    let vk = VerifyingKey::from(&esk);
    raw_sign::<Sha512>(&esk, nonce, &vk).to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn public_key_matches_mariadb_test_vector() {
        // The authentication_string MariaDB 10.11 stores for
        // `CREATE USER ... IDENTIFIED VIA ed25519 USING PASSWORD('foo')`.
        let b64 = base64::engine::general_purpose::STANDARD_NO_PAD.encode(public_key(b"foo"));
        assert_eq!(b64, "vubFBzIrapbfHct1/J72dnUryz5VS7lA6XHH8sIx4TI");
    }

    #[test]
    fn signature_verifies_and_matches_mysql_common() {
        let nonce = [7u8; NONCE_LEN];
        let sig = sign_nonce(&nonce, b"muxql_pw");
        let vk = VerifyingKey::from_bytes(&public_key(b"muxql_pw")).unwrap();
        vk.verify_strict(&nonce, &ed25519_dalek::Signature::from_bytes(&sig))
            .unwrap();
        assert_eq!(
            sig,
            mysql_common::scramble::create_response_for_ed25519(b"muxql_pw", &nonce)
        );
    }
}
