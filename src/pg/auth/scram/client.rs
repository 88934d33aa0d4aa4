//! The client side of SCRAM: muxql logging in to an upstream server.

use bytes::Bytes;
use subtle::ConstantTimeEq;

use super::{
    attr, b64, check_nonce, derive_keys, hmac, reject_mandatory_extension, salted_password, text,
    unb64, xor, Gs2, KEY_LEN, MAX_SCRAM_ITERATIONS, MAX_SCRAM_SALT_LEN, SCRAM_SHA_256,
    SCRAM_SHA_256_PLUS,
};
use crate::wire::Error;

/// Where a client exchange stands.
#[derive(Debug)]
enum State {
    /// client-first-message not yet answered.
    Initial,
    /// client-final-message sent; the server's signature is expected.
    SentFinal { server_signature: [u8; KEY_LEN] },
    /// Server verified.
    Done,
    /// A step failed; the exchange cannot continue.
    Failed,
}

/// SCRAM-SHA-256(-PLUS) client for one login.
pub struct ScramClient {
    password: String,
    username: String,
    nonce: String,
    cb_data: Option<Vec<u8>>,
    gs2: Gs2,
    state: State,
}

impl ScramClient {
    /// A client whose nonce is `client_nonce` base64-encoded. With `tls_server_end_point`
    /// (the hash of the server certificate) it uses SCRAM-SHA-256-PLUS unless
    /// [`select_mechanism`](Self::select_mechanism) finds the server does not offer it.
    pub fn new(
        password: &str,
        client_nonce: [u8; 18],
        tls_server_end_point: Option<Vec<u8>>,
    ) -> Self {
        Self::build(password, b64(&client_nonce), tls_server_end_point)
    }

    /// A client with a textual nonce (printable ASCII without ','), for interoperability
    /// vectors such as RFC 7677's.
    pub fn with_nonce_text(
        password: &str,
        client_nonce: &str,
        tls_server_end_point: Option<Vec<u8>>,
    ) -> Result<Self, Error> {
        check_nonce(client_nonce)?;
        Ok(Self::build(
            password,
            client_nonce.to_owned(),
            tls_server_end_point,
        ))
    }

    fn build(password: &str, nonce: String, cb_data: Option<Vec<u8>>) -> Self {
        let gs2 = if cb_data.is_some() {
            Gs2::Bound
        } else {
            Gs2::NotSupported
        };
        ScramClient {
            password: password.to_owned(),
            username: String::new(),
            nonce,
            cb_data,
            gs2,
            state: State::Initial,
        }
    }

    /// Sends `username` in the client-first-message. PostgreSQL ignores it (libpq sends an
    /// empty name), so this only matters for other SCRAM servers and test vectors.
    pub fn with_username(mut self, username: &str) -> Self {
        self.username = username.replace('=', "=3D").replace(',', "=2C");
        self
    }

    /// Picks the mechanism from those an AuthenticationSASL offered: the -PLUS variant when
    /// channel binding data is available and offered; otherwise SCRAM-SHA-256, telling the
    /// server (with the `y` flag) when binding was possible but not offered.
    pub fn select_mechanism(&mut self, offered: &[Bytes]) -> Result<&'static str, Error> {
        let has = |m: &str| offered.iter().any(|o| o.as_ref() == m.as_bytes());
        self.gs2 = match (&self.cb_data, has(SCRAM_SHA_256_PLUS), has(SCRAM_SHA_256)) {
            (Some(_), true, _) => Gs2::Bound,
            (Some(_), false, true) => Gs2::ClientOnly,
            (None, _, true) => Gs2::NotSupported,
            _ => return Err(Error::Auth("no supported SASL mechanism offered")),
        };
        Ok(self.mechanism())
    }

    /// The SASL mechanism name to send in SASLInitialResponse.
    pub fn mechanism(&self) -> &'static str {
        match self.gs2 {
            Gs2::Bound => SCRAM_SHA_256_PLUS,
            Gs2::NotSupported | Gs2::ClientOnly => SCRAM_SHA_256,
        }
    }

    fn client_first_bare(&self) -> String {
        format!("n={},r={}", self.username, self.nonce)
    }

    /// The client-first-message: the initial response of SASLInitialResponse.
    pub fn client_first(&self) -> Vec<u8> {
        format!("{}{}", self.gs2.header(), self.client_first_bare()).into_bytes()
    }

    /// Answers the server-first-message (AuthenticationSASLContinue) with the
    /// client-final-message, after bounding everything a hostile server controls.
    pub fn handle_server_first(&mut self, data: &[u8]) -> Result<Vec<u8>, Error> {
        if !matches!(self.state, State::Initial) {
            return Err(Error::Unexpected("SCRAM server-first-message"));
        }
        self.state = State::Failed;
        let server_first = text(data)?;
        let mut parts = server_first.split(',');
        let first = parts.next();
        reject_mandatory_extension(first)?;
        let nonce = attr(first, 'r', "SCRAM server-first-message nonce")?;
        let salt = attr(parts.next(), 's', "SCRAM server-first-message salt")?;
        let iterations = attr(parts.next(), 'i', "SCRAM server-first-message iterations")?;

        check_nonce(nonce)?;
        if nonce.len() <= self.nonce.len() || !nonce.starts_with(&self.nonce) {
            return Err(Error::Auth(
                "SCRAM server nonce does not extend the client nonce",
            ));
        }
        let salt = unb64(salt, "SCRAM salt encoding")?;
        if salt.is_empty() || salt.len() > MAX_SCRAM_SALT_LEN {
            return Err(Error::Auth("SCRAM salt length"));
        }
        let iterations = parse_iterations(iterations)?;

        let (client_key, stored_key, server_key) =
            derive_keys(&salted_password(&self.password, &salt, iterations));
        let cb = self.cb_data.as_deref().unwrap_or_default();
        let without_proof = format!("c={},r={}", self.gs2.channel_binding(cb), nonce);
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare(),
            server_first,
            without_proof
        );
        let proof = xor(&client_key, &hmac(&stored_key, auth_message.as_bytes()));
        self.state = State::SentFinal {
            server_signature: hmac(&server_key, auth_message.as_bytes()),
        };
        Ok(format!("{without_proof},p={}", b64(&proof)).into_bytes())
    }

    /// Checks the server-final-message (AuthenticationSASLFinal): the server's signature, or
    /// the error it reports with `e=`.
    pub fn handle_server_final(&mut self, data: &[u8]) -> Result<(), Error> {
        let State::SentFinal { server_signature } =
            std::mem::replace(&mut self.state, State::Failed)
        else {
            return Err(Error::Unexpected("SCRAM server-final-message"));
        };
        let msg = text(data)?;
        let first = msg.split(',').next();
        if let Ok(e) = attr(first, 'e', "") {
            return Err(Error::Auth(server_error(e)));
        }
        let verifier = unb64(
            attr(first, 'v', "SCRAM server-final-message")?,
            "SCRAM verifier encoding",
        )?;
        if !bool::from(verifier.as_slice().ct_eq(&server_signature)) {
            return Err(Error::Auth("SCRAM server signature mismatch"));
        }
        self.state = State::Done;
        Ok(())
    }
}

impl ScramClient {
    /// Whether the server proved it knows the password ([`handle_server_final`] succeeded).
    /// An AuthenticationOk that arrives while this is false skipped the server's proof and
    /// must be refused, as libpq does.
    ///
    /// [`handle_server_final`]: Self::handle_server_final
    pub fn is_verified(&self) -> bool {
        matches!(self.state, State::Done)
    }
}

impl std::fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramClient")
            .field("mechanism", &self.mechanism())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// An iteration count: decimal digits, 1 to [`MAX_SCRAM_ITERATIONS`].
fn parse_iterations(s: &str) -> Result<u32, Error> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::Auth("SCRAM iteration count"));
    }
    match s.parse::<u32>() {
        Ok(i) if (1..=MAX_SCRAM_ITERATIONS).contains(&i) => Ok(i),
        _ => Err(Error::Auth("SCRAM iteration count out of range")),
    }
}

/// The server-error-value names of RFC 5802, as static text.
fn server_error(e: &str) -> &'static str {
    match e {
        "invalid-encoding" => "SCRAM server error: invalid-encoding",
        "extensions-not-supported" => "SCRAM server error: extensions-not-supported",
        "invalid-proof" => "SCRAM server error: invalid-proof",
        "channel-bindings-dont-match" => "SCRAM server error: channel-bindings-dont-match",
        "server-does-support-channel-binding" => {
            "SCRAM server error: server-does-support-channel-binding"
        }
        "channel-binding-not-supported" => "SCRAM server error: channel-binding-not-supported",
        "unsupported-channel-binding-type" => {
            "SCRAM server error: unsupported-channel-binding-type"
        }
        "unknown-user" => "SCRAM server error: unknown-user",
        "invalid-username-encoding" => "SCRAM server error: invalid-username-encoding",
        "no-resources" => "SCRAM server error: no-resources",
        _ => "SCRAM server error: other-error",
    }
}
