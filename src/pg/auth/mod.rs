//! Authentication in both roles: muxql verifying a client, and muxql logging in upstream.
//!
//! SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677, protocol docs "SASL
//! Authentication"), MD5 and cleartext passwords. Every secret comparison is constant-time.
//! Nonces and salts are inputs: the Engine is deterministic and supplies its own randomness.

pub mod md5;
pub mod scram;

pub use md5::{md5_hash, md5_response, verify_md5_response};
pub use scram::{
    ScramClient, ScramSecret, ScramServer, MAX_SCRAM_ITERATIONS, MAX_SCRAM_MESSAGE_LEN,
    MAX_SCRAM_NONCE_LEN, MAX_SCRAM_SALT_LEN, SCRAM_SHA_256, SCRAM_SHA_256_PLUS,
};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Whether a cleartext password `got` equals `expected`, in time independent of where they
/// differ and of their lengths (both are hashed to 32 bytes before the comparison).
pub fn verify_cleartext(expected: &[u8], got: &[u8]) -> bool {
    Sha256::digest(expected).ct_eq(&Sha256::digest(got)).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleartext_is_exact() {
        assert!(verify_cleartext(b"muxql_pw", b"muxql_pw"));
        assert!(!verify_cleartext(b"muxql_pw", b"muxql_p"));
        assert!(!verify_cleartext(b"muxql_pw", b"muxql_pw\0"));
        assert!(!verify_cleartext(b"", b"x"));
        assert!(verify_cleartext(b"", b""));
    }
}
