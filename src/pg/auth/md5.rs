//! MD5 password authentication (protocol docs, "AuthenticationMD5Password").
//!
//! The server stores `"md5" + hex(md5(password || user))`; the client answers a 4-byte salt with
//! `"md5" + hex(md5(hex(md5(password || user)) || salt))`.

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// Prefix of an MD5 password hash and of an MD5 response.
pub const MD5_PREFIX: &str = "md5";

fn md5_hex(parts: &[&[u8]]) -> String {
    let mut h = Md5::new();
    parts.iter().for_each(|p| h.update(p));
    let digest = h.finalize();
    let mut out = String::with_capacity(MD5_PREFIX.len() + 2 * digest.len());
    out.push_str(MD5_PREFIX);
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The hash pg_authid stores for `user` and `password`: `"md5" + hex(md5(password || user))`.
pub fn md5_hash(user: &[u8], password: &[u8]) -> String {
    md5_hex(&[password, user])
}

/// The client's answer to AuthenticationMD5Password, computed from the stored hash (with or
/// without its `md5` prefix) and the salt.
pub fn md5_response(stored_hash: &str, salt: [u8; 4]) -> String {
    let hex = stored_hash.strip_prefix(MD5_PREFIX).unwrap_or(stored_hash);
    md5_hex(&[hex.as_bytes(), &salt])
}

/// Whether `response` is the right answer for `stored_hash` and `salt`, compared in constant
/// time (the expected length is public: always 35 bytes).
pub fn verify_md5_response(stored_hash: &str, salt: [u8; 4], response: &[u8]) -> bool {
    md5_response(stored_hash, salt)
        .as_bytes()
        .ct_eq(response)
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_known_values() {
        // md5("pencil" || "user"), as `SELECT md5('penciluser')` prints it.
        assert_eq!(
            md5_hash(b"user", b"pencil"),
            "md520c46e3762c864548e296b33c3406aa9"
        );
        let r = md5_response("md520c46e3762c864548e296b33c3406aa9", *b"\x01\x02\x03\x04");
        assert_eq!(r, "md54376eb6913b38f9aaff38dc7cf19ca76");
        assert!(verify_md5_response(
            "md520c46e3762c864548e296b33c3406aa9",
            *b"\x01\x02\x03\x04",
            r.as_bytes()
        ));
        assert!(!verify_md5_response(
            "md520c46e3762c864548e296b33c3406aa9",
            *b"\x01\x02\x03\x05",
            r.as_bytes()
        ));
        assert!(!verify_md5_response(
            "md520c46e3762c864548e296b33c3406aa9",
            *b"\x01\x02\x03\x04",
            b""
        ));
    }

    #[test]
    fn agrees_with_postgres_protocol() {
        let salt = *b"\xde\xad\xbe\xef";
        assert_eq!(
            md5_hash(b"muxql_md5", b"muxql_pw"),
            postgres_protocol::password::md5(b"muxql_pw", "muxql_md5")
        );
        assert_eq!(
            md5_response(&md5_hash(b"muxql_md5", b"muxql_pw"), salt),
            postgres_protocol::authentication::md5_hash(b"muxql_md5", b"muxql_pw", salt)
        );
    }
}
