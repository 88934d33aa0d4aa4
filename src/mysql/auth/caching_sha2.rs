//! caching_sha2_password (both roles): fast authentication with
//! `XOR(SHA256(password), SHA256(SHA256(SHA256(password)) || nonce))`, and full authentication
//! with the cleartext password over TLS or RSA-OAEP(SHA-1) of `(password || NUL) XOR nonce`
//! under the server's public key.

use bytes::Bytes;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};
use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{SeedRng, ServerAuthStep};
use crate::wire::Error;

/// Plugin name.
pub const NAME: &[u8] = b"caching_sha2_password";
/// Client request for the server's RSA public key.
pub const REQUEST_PUBLIC_KEY: u8 = 0x02;
/// AuthMoreData status: fast authentication succeeded, OK follows.
pub const FAST_AUTH_SUCCESS: u8 = 0x03;
/// AuthMoreData status: the server needs full authentication.
pub const PERFORM_FULL_AUTHENTICATION: u8 = 0x04;
/// Largest password accepted in full authentication.
const MAX_PASSWORD: usize = 1024;

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// The client's fast-auth response; empty for an empty password.
pub fn scramble_password(nonce: &[u8], password: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let stage1 = sha256(&[password]);
    let stage2 = sha256(&[&stage1]);
    let salt = nonce.get(..20).unwrap_or(nonce);
    let mask = sha256(&[&stage2, salt]);
    stage1.iter().zip(mask).map(|(a, b)| a ^ b).collect()
}

/// The stored form of a password for this plugin's server role: `SHA256(SHA256(password))`.
pub fn password_hash(password: &[u8]) -> [u8; 32] {
    sha256(&[&sha256(&[password])])
}

/// Verifies a fast-auth response in constant time.
pub fn verify_scramble(nonce: &[u8], response: &[u8], stored: &[u8; 32]) -> bool {
    let Ok(response) = <[u8; 32]>::try_from(response) else {
        return false;
    };
    let salt = nonce.get(..20).unwrap_or(nonce);
    let mask = sha256(&[stored, salt]);
    let mut stage1 = [0u8; 32];
    for ((o, r), m) in stage1.iter_mut().zip(response).zip(mask) {
        *o = r ^ m;
    }
    bool::from(sha256(&[&stage1]).ct_eq(stored))
}

fn xor_with_nonce(data: &mut [u8], nonce: &[u8]) {
    let salt = nonce.get(..20).unwrap_or(nonce);
    if salt.is_empty() {
        return;
    }
    for (b, n) in data.iter_mut().zip(salt.iter().cycle()) {
        *b ^= n;
    }
}

/// Parses a server public key (PEM, SubjectPublicKeyInfo or PKCS#1).
pub fn parse_public_key(pem: &[u8]) -> Result<RsaPublicKey, Error> {
    let text = std::str::from_utf8(pem).map_err(|_| Error::InvalidUtf8("RSA public key"))?;
    let text = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    RsaPublicKey::from_public_key_pem(text)
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(text))
        .map_err(|_| Error::Auth("invalid RSA public key"))
}

/// Encrypts `(password || NUL) XOR nonce` with RSA-OAEP(SHA-1); `seed` feeds the padding.
pub fn encrypt_password(
    key: &RsaPublicKey,
    password: &[u8],
    nonce: &[u8],
    seed: [u8; 32],
) -> Result<Vec<u8>, Error> {
    let mut plain = Vec::with_capacity(password.len() + 1);
    plain.extend_from_slice(password);
    plain.push(0);
    xor_with_nonce(&mut plain, nonce);
    key.encrypt(&mut SeedRng::new(seed), Oaep::new::<Sha1>(), &plain)
        .map_err(|_| Error::Auth("RSA encryption failed (password too long for the key)"))
}

/// Decrypts a full-auth RSA payload into the cleartext password (without its NUL).
pub fn decrypt_password(
    key: &RsaPrivateKey,
    ciphertext: &[u8],
    nonce: &[u8],
    seed: [u8; 32],
) -> Result<Vec<u8>, Error> {
    let mut plain = key
        .decrypt_blinded(&mut SeedRng::new(seed), Oaep::new::<Sha1>(), ciphertext)
        .map_err(|_| Error::Auth("RSA decryption failed"))?;
    xor_with_nonce(&mut plain, nonce);
    match plain.split_last() {
        Some((0, pw)) => Ok(pw.to_vec()),
        _ => Err(Error::Auth("RSA payload lacks its NUL terminator")),
    }
}

/// The server's RSA key pair for full authentication over insecure transports.
#[derive(Debug, Clone)]
pub struct ServerRsaKey {
    private: RsaPrivateKey,
    public_pem: Bytes,
}

impl ServerRsaKey {
    /// Wraps a private key and precomputes the public key PEM sent to clients.
    pub fn new(private: RsaPrivateKey) -> Result<Self, Error> {
        let public_pem = RsaPublicKey::from(&private)
            .to_public_key_pem(LineEnding::LF)
            .map_err(|_| Error::Auth("cannot encode RSA public key"))?;
        Ok(ServerRsaKey {
            private,
            public_pem: Bytes::from(public_pem.into_bytes()),
        })
    }

    /// Loads a PKCS#8 PEM private key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, Error> {
        let key = RsaPrivateKey::from_pkcs8_pem(pem)
            .map_err(|_| Error::Auth("invalid RSA private key"))?;
        ServerRsaKey::new(key)
    }

    /// The public key PEM sent in AuthMoreData.
    pub fn public_pem(&self) -> &Bytes {
        &self.public_pem
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    Scramble,
    FullAuth,
    Encrypted,
    Finished,
}

/// Server role of caching_sha2_password, driven one client packet at a time.
#[derive(Debug, Clone)]
pub struct CachingSha2Server {
    nonce: [u8; 20],
    stored: [u8; 32],
    empty_password: bool,
    fast_auth: bool,
    state: ServerState,
}

impl CachingSha2Server {
    /// Starts an exchange for the scramble `nonce` sent to the client, checking against
    /// `stored` = [`password_hash`]. `empty_password` says the account has no password. With
    /// `fast_auth` false every login goes through full authentication.
    pub fn new(nonce: [u8; 20], stored: [u8; 32], empty_password: bool, fast_auth: bool) -> Self {
        CachingSha2Server {
            nonce,
            stored,
            empty_password,
            fast_auth,
            state: ServerState::Scramble,
        }
    }

    /// Feeds the client's next auth packet. `secure` says the transport is TLS (or a Unix
    /// socket); `rsa` is the key for the public-key exchange, if configured; `seed` feeds RSA
    /// blinding.
    pub fn step(
        &mut self,
        data: &[u8],
        secure: bool,
        rsa: Option<&ServerRsaKey>,
        seed: [u8; 32],
    ) -> Result<ServerAuthStep, Error> {
        match self.state {
            ServerState::Scramble => {
                if data.is_empty() {
                    self.state = ServerState::Finished;
                    return Ok(accept_if(self.empty_password, None));
                }
                if self.fast_auth {
                    self.state = ServerState::Finished;
                    let ok = verify_scramble(&self.nonce, data, &self.stored);
                    return Ok(accept_if(
                        ok,
                        Some(Bytes::from_static(&[FAST_AUTH_SUCCESS])),
                    ));
                }
                self.state = ServerState::FullAuth;
                Ok(ServerAuthStep::MoreData(Bytes::from_static(&[
                    PERFORM_FULL_AUTHENTICATION,
                ])))
            }
            ServerState::FullAuth => {
                if secure {
                    self.state = ServerState::Finished;
                    let pw = match data.split_last() {
                        Some((0, pw)) => pw,
                        _ => data,
                    };
                    return Ok(self.check_cleartext(pw));
                }
                match (data, rsa) {
                    ([REQUEST_PUBLIC_KEY], Some(key)) => {
                        self.state = ServerState::Encrypted;
                        Ok(ServerAuthStep::MoreData(key.public_pem.clone()))
                    }
                    _ => {
                        self.state = ServerState::Finished;
                        Ok(ServerAuthStep::Reject)
                    }
                }
            }
            ServerState::Encrypted => {
                self.state = ServerState::Finished;
                let Some(key) = rsa else {
                    return Ok(ServerAuthStep::Reject);
                };
                match decrypt_password(&key.private, data, &self.nonce, seed) {
                    Ok(pw) => Ok(self.check_cleartext(&pw)),
                    Err(_) => Ok(ServerAuthStep::Reject),
                }
            }
            ServerState::Finished => Err(Error::Unexpected("auth data after the auth decision")),
        }
    }

    fn check_cleartext(&self, pw: &[u8]) -> ServerAuthStep {
        if pw.len() > MAX_PASSWORD {
            return ServerAuthStep::Reject;
        }
        let ok = if pw.is_empty() {
            self.empty_password
        } else {
            !self.empty_password && bool::from(password_hash(pw).ct_eq(&self.stored))
        };
        accept_if(ok, None)
    }
}

fn accept_if(ok: bool, more_data: Option<Bytes>) -> ServerAuthStep {
    if ok {
        ServerAuthStep::Accept { more_data }
    } else {
        ServerAuthStep::Reject
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A 1024-bit test key (test fixture only; never used outside tests).
    pub(crate) const TEST_KEY: &str = include_str!("test_rsa_key.pem");

    #[test]
    fn fast_auth_verifies() {
        let nonce = *b"abcdefghijklmnopqrst";
        let r = scramble_password(&nonce, b"pw");
        assert_eq!(
            r,
            mysql_common::scramble::scramble_sha256(&nonce, b"pw")
                .unwrap()
                .to_vec()
        );
        let mut s = CachingSha2Server::new(nonce, password_hash(b"pw"), false, true);
        assert_eq!(
            s.step(&r, false, None, [0; 32]).unwrap(),
            ServerAuthStep::Accept {
                more_data: Some(Bytes::from_static(&[FAST_AUTH_SUCCESS]))
            }
        );
        assert!(s.step(&r, false, None, [0; 32]).is_err());
        let mut s = CachingSha2Server::new(nonce, password_hash(b"other"), false, true);
        assert_eq!(
            s.step(&r, false, None, [0; 32]).unwrap(),
            ServerAuthStep::Reject
        );
    }

    #[test]
    fn full_auth_over_tls_and_rsa() {
        let nonce = *b"abcdefghijklmnopqrst";
        let stored = password_hash(b"pw");
        let r = scramble_password(&nonce, b"pw");
        let mut s = CachingSha2Server::new(nonce, stored, false, false);
        let full = ServerAuthStep::MoreData(Bytes::from_static(&[PERFORM_FULL_AUTHENTICATION]));
        assert_eq!(s.step(&r, true, None, [0; 32]).unwrap(), full);
        assert_eq!(
            s.step(b"pw\0", true, None, [0; 32]).unwrap(),
            ServerAuthStep::Accept { more_data: None }
        );

        let key = ServerRsaKey::from_pkcs8_pem(TEST_KEY).unwrap();
        let mut s = CachingSha2Server::new(nonce, stored, false, false);
        assert_eq!(s.step(&r, false, Some(&key), [0; 32]).unwrap(), full);
        let ServerAuthStep::MoreData(pem) = s
            .step(&[REQUEST_PUBLIC_KEY], false, Some(&key), [0; 32])
            .unwrap()
        else {
            panic!("expected the public key")
        };
        let public = parse_public_key(&pem).unwrap();
        let ct = encrypt_password(&public, b"pw", &nonce, [9; 32]).unwrap();
        assert_eq!(
            s.step(&ct, false, Some(&key), [1; 32]).unwrap(),
            ServerAuthStep::Accept { more_data: None }
        );
        let ct = encrypt_password(&public, b"wrong", &nonce, [9; 32]).unwrap();
        let mut s = CachingSha2Server::new(nonce, stored, false, false);
        s.step(&r, false, Some(&key), [0; 32]).unwrap();
        s.step(&[REQUEST_PUBLIC_KEY], false, Some(&key), [0; 32])
            .unwrap();
        assert_eq!(
            s.step(&ct, false, Some(&key), [1; 32]).unwrap(),
            ServerAuthStep::Reject
        );
    }

    #[test]
    fn cleartext_is_refused_on_insecure_transport() {
        let nonce = *b"abcdefghijklmnopqrst";
        let mut s = CachingSha2Server::new(nonce, password_hash(b"pw"), false, false);
        s.step(b"x", false, None, [0; 32]).unwrap();
        assert_eq!(
            s.step(b"pw\0", false, None, [0; 32]).unwrap(),
            ServerAuthStep::Reject
        );
    }
}
