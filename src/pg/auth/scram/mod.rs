//! SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677) as PostgreSQL uses them.
//!
//! Protocol docs, "SCRAM-SHA-256 Authentication": the server ignores the user name in the
//! client-first-message (it has the one from the StartupMessage, and libpq sends `n=`), the
//! password is SASLprep'ed but used raw when that fails, and the only channel binding type is
//! `tls-server-end-point`, whose data (the hash of the server certificate) callers pass in.

mod client;
mod secret;
mod server;

pub use client::ScramClient;
pub use secret::ScramSecret;
pub use server::ScramServer;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::wire::Error;

/// SASL mechanism name of SCRAM-SHA-256.
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
/// SASL mechanism name of SCRAM-SHA-256 with channel binding.
pub const SCRAM_SHA_256_PLUS: &str = "SCRAM-SHA-256-PLUS";
/// The only channel binding type PostgreSQL supports.
pub const TLS_SERVER_END_POINT: &str = "tls-server-end-point";

/// Largest iteration count accepted from a server. PostgreSQL defaults to 4096 and OWASP
/// recommends 600,000 for PBKDF2-HMAC-SHA256, so legitimate settings fit. Each iteration is one
/// HMAC (two SHA-256 compressions, under a microsecond), so this caps what a hostile server can
/// make the single-threaded Engine spend at under a second of CPU per login (the
/// unbounded-count class of PgBouncer CVE-2026-6665).
pub const MAX_SCRAM_ITERATIONS: u32 = 1_000_000;
/// Longest nonce accepted (the combined client and server nonce, as text). PostgreSQL's is
/// 48 characters.
pub const MAX_SCRAM_NONCE_LEN: usize = 1024;
/// Longest salt accepted, in bytes after base64 decoding. PostgreSQL's is 16.
pub const MAX_SCRAM_SALT_LEN: usize = 1024;
/// Longest SCRAM message accepted from a peer, in either role.
pub const MAX_SCRAM_MESSAGE_LEN: usize = 8192;

/// Length of SHA-256 keys, proofs and signatures.
const KEY_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

fn keyed(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; this cannot fail on any input.
    HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length")
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; KEY_LEN] {
    let mut m = keyed(key);
    m.update(data);
    m.finalize().into_bytes().into()
}

fn sha256(data: &[u8]) -> [u8; KEY_LEN] {
    Sha256::digest(data).into()
}

fn xor(a: &[u8; KEY_LEN], b: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

/// SASLprep per RFC 4013, falling back to the raw password as PostgreSQL does.
fn normalize(password: &str) -> Vec<u8> {
    match stringprep::saslprep(password) {
        Ok(p) => p.into_owned().into_bytes(),
        Err(_) => password.as_bytes().to_vec(),
    }
}

/// Fuzzing builds (cargo-fuzz sets `cfg(fuzzing)`; never a normal build) cap Hi()'s iteration
/// count, so that a fuzzer-chosen count up to [`MAX_SCRAM_ITERATIONS`] cannot stall a run. Both
/// roles derive their keys here, so proofs and signatures still verify end to end.
#[cfg(fuzzing)]
const FUZZING_MAX_ITERATIONS: u32 = 8;

/// Hi() of RFC 5802: PBKDF2-HMAC-SHA256 with one output block. The keyed state is built once
/// and cloned per iteration.
fn salted_password(password: &str, salt: &[u8], iterations: u32) -> [u8; KEY_LEN] {
    #[cfg(fuzzing)]
    let iterations = iterations.min(FUZZING_MAX_ITERATIONS);
    let base = keyed(&normalize(password));
    let mut m = base.clone();
    m.update(salt);
    m.update(&1u32.to_be_bytes());
    let mut u: [u8; KEY_LEN] = m.finalize().into_bytes().into();
    let mut out = u;
    for _ in 1..iterations {
        let mut m = base.clone();
        m.update(&u);
        u = m.finalize().into_bytes().into();
        out = xor(&out, &u);
    }
    out
}

/// The keys derived from a salted password: (ClientKey, StoredKey, ServerKey).
fn derive_keys(salted: &[u8; KEY_LEN]) -> ([u8; KEY_LEN], [u8; KEY_LEN], [u8; KEY_LEN]) {
    let client_key = hmac(salted, b"Client Key");
    (client_key, sha256(&client_key), hmac(salted, b"Server Key"))
}

fn b64(data: &[u8]) -> String {
    BASE64.encode(data)
}

fn unb64(s: &str, what: &'static str) -> Result<Vec<u8>, Error> {
    BASE64.decode(s).map_err(|_| Error::Auth(what))
}

/// A peer message as text, bounded by [`MAX_SCRAM_MESSAGE_LEN`].
fn text(data: &[u8]) -> Result<&str, Error> {
    if data.len() > MAX_SCRAM_MESSAGE_LEN {
        return Err(Error::TooLarge {
            len: data.len() as u64,
            limit: MAX_SCRAM_MESSAGE_LEN as u64,
        });
    }
    std::str::from_utf8(data).map_err(|_| Error::InvalidUtf8("SCRAM message"))
}

/// The value of attribute `name` (`name=value`) in `part`.
fn attr<'a>(part: Option<&'a str>, name: char, what: &'static str) -> Result<&'a str, Error> {
    part.and_then(|p| p.strip_prefix(name))
        .and_then(|p| p.strip_prefix('='))
        .ok_or(Error::Auth(what))
}

/// Checks a nonce: printable ASCII except ',' (RFC 5802 "printable"), bounded in length.
fn check_nonce(nonce: &str) -> Result<(), Error> {
    if nonce.is_empty() || nonce.len() > MAX_SCRAM_NONCE_LEN {
        return Err(Error::Auth("SCRAM nonce length"));
    }
    if !nonce
        .bytes()
        .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
    {
        return Err(Error::Auth("SCRAM nonce characters"));
    }
    Ok(())
}

/// Fails on the reserved mandatory-extension attribute `m=`, which no one implements.
fn reject_mandatory_extension(part: Option<&str>) -> Result<(), Error> {
    match part {
        Some(p) if p.starts_with("m=") => Err(Error::Auth("SCRAM mandatory extension")),
        _ => Ok(()),
    }
}

/// The gs2 header a client sends, which also fixes the channel binding data.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Gs2 {
    /// `n,,`: the client does not support channel binding.
    NotSupported,
    /// `y,,`: the client supports it but believes the server does not.
    ClientOnly,
    /// `p=tls-server-end-point,,`: channel binding in use.
    Bound,
}

impl Gs2 {
    fn header(&self) -> &'static str {
        match self {
            Gs2::NotSupported => "n,,",
            Gs2::ClientOnly => "y,,",
            Gs2::Bound => "p=tls-server-end-point,,",
        }
    }

    /// The base64 `c=` value: the gs2 header followed by the binding data when bound.
    fn channel_binding(&self, cb_data: &[u8]) -> String {
        let mut input = self.header().as_bytes().to_vec();
        if *self == Gs2::Bound {
            input.extend_from_slice(cb_data);
        }
        b64(&input)
    }
}

#[cfg(test)]
mod tests;
