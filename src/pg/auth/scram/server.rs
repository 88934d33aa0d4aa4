//! The server side of SCRAM: muxql verifying a client against a stored secret.

use subtle::ConstantTimeEq;

use super::{
    attr, b64, check_nonce, hmac, reject_mandatory_extension, sha256, text, unb64, xor, Gs2,
    ScramSecret, KEY_LEN, MAX_SCRAM_NONCE_LEN, SCRAM_SHA_256, SCRAM_SHA_256_PLUS,
    TLS_SERVER_END_POINT,
};
use crate::wire::Error;

/// Where a server exchange stands.
#[derive(Debug)]
enum State {
    /// Waiting for the client-first-message.
    Initial,
    /// server-first-message sent; waiting for the client's proof.
    SentFirst {
        gs2: Gs2,
        client_first_bare: String,
        server_first: String,
        nonce: String,
    },
    /// Client verified.
    Done,
    /// A step failed; the exchange cannot continue.
    Failed,
}

/// SCRAM-SHA-256(-PLUS) server for one client login.
pub struct ScramServer {
    secret: ScramSecret,
    nonce: String,
    cb_data: Option<Vec<u8>>,
    state: State,
}

impl ScramServer {
    /// A server whose nonce part is `server_nonce` base64-encoded. `tls_server_end_point`
    /// (the hash of muxql's certificate) enables SCRAM-SHA-256-PLUS.
    pub fn new(
        secret: ScramSecret,
        server_nonce: [u8; 18],
        tls_server_end_point: Option<Vec<u8>>,
    ) -> Self {
        ScramServer {
            secret,
            nonce: b64(&server_nonce),
            cb_data: tls_server_end_point,
            state: State::Initial,
        }
    }

    /// A server with a textual nonce part (printable ASCII without ','), for
    /// interoperability vectors such as RFC 7677's.
    pub fn with_nonce_text(
        secret: ScramSecret,
        server_nonce: &str,
        tls_server_end_point: Option<Vec<u8>>,
    ) -> Result<Self, Error> {
        check_nonce(server_nonce)?;
        Ok(ScramServer {
            secret,
            nonce: server_nonce.to_owned(),
            cb_data: tls_server_end_point,
            state: State::Initial,
        })
    }

    /// The mechanisms to offer in AuthenticationSASL, preferred first.
    pub fn mechanisms(&self) -> &'static [&'static str] {
        if self.cb_data.is_some() {
            &[SCRAM_SHA_256_PLUS, SCRAM_SHA_256]
        } else {
            &[SCRAM_SHA_256]
        }
    }

    /// Handles SASLInitialResponse (mechanism and client-first-message) and returns the
    /// server-first-message for AuthenticationSASLContinue.
    pub fn handle_client_first(&mut self, mechanism: &[u8], data: &[u8]) -> Result<Vec<u8>, Error> {
        if !matches!(self.state, State::Initial) {
            return Err(Error::Unexpected("SCRAM client-first-message"));
        }
        self.state = State::Failed;
        let plus = if mechanism == SCRAM_SHA_256_PLUS.as_bytes() && self.cb_data.is_some() {
            true
        } else if mechanism == SCRAM_SHA_256.as_bytes() {
            false
        } else {
            return Err(Error::Auth("unsupported SASL mechanism"));
        };
        let msg = text(data)?;
        let (gs2, bare) = self.parse_gs2(msg, plus)?;
        let mut parts = bare.split(',');
        let first = parts.next();
        reject_mandatory_extension(first)?;
        // The name is ignored: PostgreSQL uses the one from the StartupMessage.
        attr(first, 'n', "SCRAM client-first-message user")?;
        let client_nonce = attr(parts.next(), 'r', "SCRAM client-first-message nonce")?;
        check_nonce(client_nonce)?;
        let nonce = format!("{client_nonce}{}", self.nonce);
        if nonce.len() > MAX_SCRAM_NONCE_LEN {
            return Err(Error::Auth("SCRAM nonce length"));
        }
        let server_first = format!(
            "r={nonce},s={},i={}",
            b64(&self.secret.salt),
            self.secret.iterations
        );
        self.state = State::SentFirst {
            gs2,
            client_first_bare: bare.to_owned(),
            server_first: server_first.clone(),
            nonce,
        };
        Ok(server_first.into_bytes())
    }

    /// Splits the gs2 header off a client-first-message and checks it against the mechanism
    /// (protocol docs, "SCRAM-SHA-256 Authentication"; RFC 5802 section 6 on downgrades).
    fn parse_gs2<'a>(&self, msg: &'a str, plus: bool) -> Result<(Gs2, &'a str), Error> {
        let (flag, rest) = msg.split_once(',').ok_or(Error::Auth("SCRAM gs2 header"))?;
        let (authzid, bare) = rest
            .split_once(',')
            .ok_or(Error::Auth("SCRAM gs2 header"))?;
        if !authzid.is_empty() {
            return Err(Error::Auth("SCRAM authorization identity is not supported"));
        }
        let gs2 = match flag {
            "n" => Gs2::NotSupported,
            "y" => Gs2::ClientOnly,
            f if f.strip_prefix("p=") == Some(TLS_SERVER_END_POINT) => Gs2::Bound,
            f if f.starts_with("p=") => {
                return Err(Error::Auth("unsupported SCRAM channel binding type"))
            }
            _ => return Err(Error::Auth("SCRAM gs2 header")),
        };
        match (&gs2, plus) {
            (Gs2::Bound, true) | (Gs2::NotSupported, false) => Ok((gs2, bare)),
            (Gs2::ClientOnly, false) if self.cb_data.is_none() => Ok((gs2, bare)),
            (Gs2::ClientOnly, false) => Err(Error::Auth("SCRAM channel binding downgrade")),
            _ => Err(Error::Auth(
                "SCRAM channel binding does not match the mechanism",
            )),
        }
    }

    /// Verifies the client-final-message (SASLResponse) and returns the server-final-message
    /// for AuthenticationSASLFinal. A wrong proof is `Err(Error::Auth(..))`.
    pub fn handle_client_final(&mut self, data: &[u8]) -> Result<Vec<u8>, Error> {
        let State::SentFirst {
            gs2,
            client_first_bare,
            server_first,
            nonce,
        } = std::mem::replace(&mut self.state, State::Failed)
        else {
            return Err(Error::Unexpected("SCRAM client-final-message"));
        };
        let msg = text(data)?;
        let (without_proof, proof) = msg
            .rsplit_once(",p=")
            .ok_or(Error::Auth("SCRAM client-final-message proof"))?;
        let mut parts = without_proof.split(',');
        let cb = unb64(
            attr(
                parts.next(),
                'c',
                "SCRAM client-final-message channel binding",
            )?,
            "SCRAM channel binding encoding",
        )?;
        let mut expected_cb = gs2.header().as_bytes().to_vec();
        if gs2 == Gs2::Bound {
            expected_cb.extend_from_slice(self.cb_data.as_deref().unwrap_or_default());
        }
        if cb != expected_cb {
            return Err(Error::Auth("SCRAM channel binding mismatch"));
        }
        if attr(parts.next(), 'r', "SCRAM client-final-message nonce")? != nonce {
            return Err(Error::Auth("SCRAM nonce mismatch"));
        }
        let proof: [u8; KEY_LEN] = unb64(proof, "SCRAM proof encoding")?
            .try_into()
            .map_err(|_| Error::Auth("SCRAM proof length"))?;
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_key = xor(
            &proof,
            &hmac(&self.secret.stored_key, auth_message.as_bytes()),
        );
        if !bool::from(sha256(&client_key).ct_eq(&self.secret.stored_key)) {
            return Err(Error::Auth("SCRAM proof mismatch"));
        }
        self.state = State::Done;
        let signature = hmac(&self.secret.server_key, auth_message.as_bytes());
        Ok(format!("v={}", b64(&signature)).into_bytes())
    }
}

impl std::fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramServer")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}
