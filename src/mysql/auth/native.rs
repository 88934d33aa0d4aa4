//! mysql_native_password: `SHA1(password) XOR SHA1(scramble || SHA1(SHA1(password)))`.

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// Plugin name.
pub const NAME: &[u8] = b"mysql_native_password";

fn sha1(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// The client's response to `scramble` (its first 20 bytes); empty for an empty password.
pub fn scramble_password(scramble: &[u8], password: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = sha1(&[password]);
    let stage2 = sha1(&[&stage1]);
    let salt = scramble.get(..20).unwrap_or(scramble);
    let mask = sha1(&[salt, &stage2]);
    stage1.iter().zip(mask).map(|(a, b)| a ^ b).collect()
}

/// The stored form of a password, `SHA1(SHA1(password))` (what `mysql.user` keeps).
pub fn password_hash(password: &[u8]) -> [u8; 20] {
    sha1(&[&sha1(&[password])])
}

/// Verifies a client response against a stored hash in constant time; `None` stands for an
/// empty password, which only an empty response matches.
pub fn verify(scramble: &[u8], response: &[u8], stored: Option<&[u8; 20]>) -> bool {
    let Some(stored) = stored else {
        return response.is_empty();
    };
    let Ok(response) = <[u8; 20]>::try_from(response) else {
        return false;
    };
    let salt = scramble.get(..20).unwrap_or(scramble);
    let mask = sha1(&[salt, stored]);
    let mut stage1 = [0u8; 20];
    for ((o, r), m) in stage1.iter_mut().zip(response).zip(mask) {
        *o = r ^ m;
    }
    bool::from(sha1(&[&stage1]).ct_eq(stored))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_verifies() {
        let scramble = b"01234567890123456789";
        let r = scramble_password(scramble, b"secret");
        assert!(verify(scramble, &r, Some(&password_hash(b"secret"))));
        assert!(!verify(scramble, &r, Some(&password_hash(b"other"))));
        assert!(!verify(scramble, &r[..19], Some(&password_hash(b"secret"))));
        assert!(verify(scramble, b"", None));
        assert!(!verify(scramble, &r, None));
        assert!(scramble_password(scramble, b"").is_empty());
    }

    #[test]
    fn matches_mysql_common() {
        let scramble = b"abcdefghijklmnopqrst";
        let ours = scramble_password(scramble, b"muxql_pw");
        let theirs = mysql_common::scramble::scramble_native(scramble, b"muxql_pw").unwrap();
        assert_eq!(ours, theirs.to_vec());
    }
}
