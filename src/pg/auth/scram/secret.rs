//! The SCRAM verifier a server stores instead of the password.

use std::fmt;

use super::{b64, derive_keys, salted_password, BASE64, KEY_LEN, SCRAM_SHA_256};
use crate::wire::Error;
use base64::Engine as _;

/// A SCRAM-SHA-256 secret as stored in `pg_authid.rolpassword`.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramSecret {
    /// Iteration count of Hi().
    pub iterations: u32,
    /// The salt, raw bytes.
    pub salt: Vec<u8>,
    /// H(ClientKey).
    pub stored_key: [u8; 32],
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: [u8; 32],
}

impl ScramSecret {
    /// Derives the secret of `password` (SASLprep'ed, or raw when that fails).
    pub fn from_password(password: &str, salt: &[u8], iterations: u32) -> Self {
        let (_, stored_key, server_key) = derive_keys(&salted_password(password, salt, iterations));
        ScramSecret {
            iterations,
            salt: salt.to_vec(),
            stored_key,
            server_key,
        }
    }

    /// Parses `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64 fields).
    pub fn parse(pg_authid_format: &str) -> Result<Self, Error> {
        let bad = || Error::InvalidValue("SCRAM secret");
        let rest = pg_authid_format
            .strip_prefix(SCRAM_SHA_256)
            .and_then(|r| r.strip_prefix('$'))
            .ok_or_else(bad)?;
        let (params, keys) = rest.split_once('$').ok_or_else(bad)?;
        let (iterations, salt) = params.split_once(':').ok_or_else(bad)?;
        let (stored, server) = keys.split_once(':').ok_or_else(bad)?;
        let iterations: u32 = iterations.parse().map_err(|_| bad())?;
        let salt = BASE64.decode(salt).map_err(|_| bad())?;
        if iterations == 0 || salt.is_empty() {
            return Err(bad());
        }
        let key = |s: &str| -> Result<[u8; KEY_LEN], Error> {
            BASE64
                .decode(s)
                .ok()
                .and_then(|k| k.try_into().ok())
                .ok_or_else(bad)
        };
        Ok(ScramSecret {
            iterations,
            salt,
            stored_key: key(stored)?,
            server_key: key(server)?,
        })
    }
}

impl fmt::Display for ScramSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SCRAM_SHA_256}${}:{}${}:{}",
            self.iterations,
            b64(&self.salt),
            b64(&self.stored_key),
            b64(&self.server_key)
        )
    }
}

impl fmt::Debug for ScramSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramSecret")
            .field("iterations", &self.iterations)
            .field("salt", &b64(&self.salt))
            .finish_non_exhaustive()
    }
}
