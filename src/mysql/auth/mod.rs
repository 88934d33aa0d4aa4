//! Authentication plugins in both roles. muxql is a server to its clients
//! (mysql_native_password, caching_sha2_password) and a client to its upstreams
//! (mysql_native_password, caching_sha2_password, client_ed25519).
//!
//! Randomness is an input: scrambles and RSA seeds are passed in by the caller (the
//! deterministic engine brings its own RNG); `*_random` conveniences use the OS.

pub mod caching_sha2;
pub mod ed25519;
pub mod native;

use bytes::Bytes;
use rsa::rand_core::{CryptoRng, RngCore};
use rsa::RsaPublicKey;
use sha2::{Digest, Sha256};

use super::flags::CapabilityFlags;
use super::handshake::{
    AuthMoreData, AuthSwitchRequest, AUTH_MORE_DATA_HEADER, AUTH_SWITCH_HEADER,
};
use super::response::{ErrPacket, OkPacket, ERR_HEADER, OK_HEADER};
use crate::wire::Error;

/// The plugins muxql implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthPlugin {
    /// `mysql_native_password`.
    MysqlNativePassword,
    /// `caching_sha2_password`.
    CachingSha2Password,
    /// MariaDB `client_ed25519` (client role only).
    ClientEd25519,
}

impl AuthPlugin {
    /// The plugin's wire name.
    pub fn name(self) -> &'static [u8] {
        match self {
            AuthPlugin::MysqlNativePassword => native::NAME,
            AuthPlugin::CachingSha2Password => caching_sha2::NAME,
            AuthPlugin::ClientEd25519 => ed25519::NAME,
        }
    }

    /// Looks a plugin up by wire name.
    pub fn from_name(name: &[u8]) -> Option<Self> {
        [
            AuthPlugin::MysqlNativePassword,
            AuthPlugin::CachingSha2Password,
            AuthPlugin::ClientEd25519,
        ]
        .into_iter()
        .find(|p| p.name() == name)
    }

    /// Length of the nonce the plugin signs or hashes.
    pub fn nonce_len(self) -> usize {
        match self {
            AuthPlugin::ClientEd25519 => ed25519::NONCE_LEN,
            _ => 20,
        }
    }
}

/// Turns 20 random bytes into a scramble as MySQL servers send it: 7-bit, no NUL, no '$'.
pub fn scramble_from_random(random: [u8; 20]) -> [u8; 20] {
    random.map(|b| match b & 0x7F {
        0 => 1,
        b'$' => b'$' + 1,
        b => b,
    })
}

/// A fresh per-connection scramble from the OS random source.
pub fn random_scramble() -> Result<[u8; 20], Error> {
    let mut r = [0u8; 20];
    getrandom::getrandom(&mut r).map_err(|_| Error::Auth("no system randomness"))?;
    Ok(scramble_from_random(r))
}

/// 32 random bytes from the OS, for the `seed` arguments.
pub fn random_seed() -> Result<[u8; 32], Error> {
    let mut r = [0u8; 32];
    getrandom::getrandom(&mut r).map_err(|_| Error::Auth("no system randomness"))?;
    Ok(r)
}

/// A deterministic SHA-256 counter-mode generator expanding a caller-provided seed; used for
/// RSA-OAEP padding and blinding so that randomness stays an input.
pub(crate) struct SeedRng {
    seed: [u8; 32],
    counter: u64,
    buf: [u8; 32],
    used: usize,
}

impl SeedRng {
    pub(crate) fn new(seed: [u8; 32]) -> Self {
        SeedRng {
            seed,
            counter: 0,
            buf: [0; 32],
            used: 32,
        }
    }
}

impl RngCore for SeedRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for d in dest {
            if self.used == self.buf.len() {
                self.buf = Sha256::new()
                    .chain_update(self.seed)
                    .chain_update(self.counter.to_le_bytes())
                    .finalize()
                    .into();
                self.counter = self.counter.wrapping_add(1);
                self.used = 0;
            }
            *d = self.buf.get(self.used).copied().unwrap_or_default();
            self.used += 1;
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for SeedRng {}

/// What the server role answers after a client auth packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerAuthStep {
    /// Send AuthMoreData with this data and wait for the client's next packet.
    MoreData(Bytes),
    /// Ask the client to switch plugin; its next packet is the new plugin's response.
    Switch(AuthSwitchRequest),
    /// Authenticated: send `more_data` as AuthMoreData when present, then OK.
    Accept {
        /// Data to send before the OK (caching_sha2 fast-auth success).
        more_data: Option<Bytes>,
    },
    /// Wrong credentials: send ERR (ER_ACCESS_DENIED_ERROR) and close.
    Reject,
}

/// A client account's credentials in the forms the server role needs. Built from a cleartext
/// password, or from the stored hashes when the host only has those.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerCredential {
    /// `SHA1(SHA1(password))`, for mysql_native_password.
    pub native: Option<[u8; 20]>,
    /// `SHA256(SHA256(password))`, for caching_sha2_password.
    pub sha2: Option<[u8; 32]>,
    /// The account has an empty password.
    pub empty: bool,
}

impl std::fmt::Debug for ServerCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCredential")
            .field("empty", &self.empty)
            .finish_non_exhaustive()
    }
}

impl ServerCredential {
    /// Both stored forms from a cleartext password.
    pub fn from_password(password: &[u8]) -> Self {
        ServerCredential {
            native: Some(native::password_hash(password)),
            sha2: Some(caching_sha2::password_hash(password)),
            empty: password.is_empty(),
        }
    }
}

#[derive(Debug, Clone)]
enum ServerPhase {
    Start,
    Native,
    Sha2(caching_sha2::CachingSha2Server),
    Done,
}

/// Server role: authenticates one client with the plugin muxql chose for the listener,
/// switching the client over when its HandshakeResponse used another plugin.
#[derive(Debug, Clone)]
pub struct ServerAuth {
    plugin: AuthPlugin,
    scramble: [u8; 20],
    credential: ServerCredential,
    fast_auth: bool,
    phase: ServerPhase,
}

impl ServerAuth {
    /// `plugin` must be a server-role plugin (native or caching_sha2); `scramble` is the one
    /// sent in HandshakeV10. With `fast_auth` false, caching_sha2 always does full auth.
    pub fn new(
        plugin: AuthPlugin,
        scramble: [u8; 20],
        credential: ServerCredential,
        fast_auth: bool,
    ) -> Result<Self, Error> {
        if plugin == AuthPlugin::ClientEd25519 {
            return Err(Error::Auth("client_ed25519 has no server role here"));
        }
        Ok(ServerAuth {
            plugin,
            scramble,
            credential,
            fast_auth,
            phase: ServerPhase::Start,
        })
    }

    /// Handles the HandshakeResponse41 auth data and plugin name.
    pub fn start(
        &mut self,
        client_plugin: Option<&[u8]>,
        auth_response: &[u8],
        secure: bool,
        rsa: Option<&caching_sha2::ServerRsaKey>,
        seed: [u8; 32],
    ) -> Result<ServerAuthStep, Error> {
        if !matches!(self.phase, ServerPhase::Start) {
            return Err(Error::Unexpected("second HandshakeResponse"));
        }
        let client_plugin = client_plugin.unwrap_or(native::NAME);
        if client_plugin != self.plugin.name() {
            self.phase = self.plugin_phase();
            let mut data = self.scramble.to_vec();
            data.push(0);
            return Ok(ServerAuthStep::Switch(AuthSwitchRequest {
                plugin_name: Bytes::from_static(self.plugin.name()),
                plugin_data: Bytes::from(data),
            }));
        }
        self.phase = self.plugin_phase();
        self.step(auth_response, secure, rsa, seed)
    }

    fn plugin_phase(&self) -> ServerPhase {
        match self.plugin {
            AuthPlugin::CachingSha2Password => {
                ServerPhase::Sha2(caching_sha2::CachingSha2Server::new(
                    self.scramble,
                    self.credential.sha2.unwrap_or([0; 32]),
                    self.credential.empty,
                    self.fast_auth,
                ))
            }
            _ => ServerPhase::Native,
        }
    }

    /// Handles a later client auth packet (AuthSwitchResponse or caching_sha2 data).
    pub fn step(
        &mut self,
        data: &[u8],
        secure: bool,
        rsa: Option<&caching_sha2::ServerRsaKey>,
        seed: [u8; 32],
    ) -> Result<ServerAuthStep, Error> {
        match &mut self.phase {
            ServerPhase::Native => {
                self.phase = ServerPhase::Done;
                let stored = if self.credential.empty {
                    None
                } else {
                    match &self.credential.native {
                        Some(h) => Some(h),
                        None => return Ok(ServerAuthStep::Reject),
                    }
                };
                Ok(if native::verify(&self.scramble, data, stored) {
                    ServerAuthStep::Accept { more_data: None }
                } else {
                    ServerAuthStep::Reject
                })
            }
            ServerPhase::Sha2(s) => {
                if self.credential.sha2.is_none() && !self.credential.empty {
                    self.phase = ServerPhase::Done;
                    return Ok(ServerAuthStep::Reject);
                }
                let step = s.step(data, secure, rsa, seed)?;
                if !matches!(step, ServerAuthStep::MoreData(_)) {
                    self.phase = ServerPhase::Done;
                }
                Ok(step)
            }
            ServerPhase::Start | ServerPhase::Done => Err(Error::Unexpected("auth data")),
        }
    }
}

/// What the client role does after a server packet during authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuthStep {
    /// Send this payload (next sequence id) and wait.
    Send(Vec<u8>),
    /// Nothing to send; wait for the server's next packet.
    Wait,
    /// Logged in.
    Done(OkPacket),
    /// The server refused.
    Failed(ErrPacket),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientPhase {
    Initial,
    AwaitFast,
    AwaitKey,
    Sent,
}

/// Client role: logs in to an upstream with a password, following auth switches and the
/// caching_sha2 exchanges. The password is held only for the duration of the login.
#[derive(Clone)]
pub struct ClientAuth {
    plugin: AuthPlugin,
    nonce: Vec<u8>,
    password: Vec<u8>,
    secure: bool,
    server_key: Option<RsaPublicKey>,
    allow_key_request: bool,
    seed: [u8; 32],
    phase: ClientPhase,
    switched: bool,
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAuth")
            .field("plugin", &self.plugin)
            .field("secure", &self.secure)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

impl ClientAuth {
    /// Starts a login for the plugin and scramble of the server's HandshakeV10 (no plugin name
    /// means mysql_native_password). `secure` says the transport is TLS: only then is a
    /// cleartext password ever sent. `seed` feeds RSA-OAEP padding.
    pub fn new(
        plugin_name: Option<&[u8]>,
        plugin_data: &[u8],
        password: &[u8],
        secure: bool,
        seed: [u8; 32],
    ) -> Result<Self, Error> {
        let plugin = AuthPlugin::from_name(plugin_name.unwrap_or(native::NAME))
            .ok_or(Error::Auth("unsupported auth plugin"))?;
        let mut a = ClientAuth {
            plugin,
            nonce: Vec::new(),
            password: password.to_vec(),
            secure,
            server_key: None,
            allow_key_request: false,
            seed,
            phase: ClientPhase::Initial,
            switched: false,
        };
        a.set_nonce(plugin_data)?;
        Ok(a)
    }

    /// Pins the server's RSA public key (PEM) for caching_sha2 full auth without TLS.
    pub fn with_server_public_key(mut self, pem: &[u8]) -> Result<Self, Error> {
        self.server_key = Some(caching_sha2::parse_public_key(pem)?);
        Ok(self)
    }

    /// Allows asking the server for its public key when none is pinned (trusts the network,
    /// like `--get-server-public-key`).
    pub fn allow_public_key_request(mut self, allow: bool) -> Self {
        self.allow_key_request = allow;
        self
    }

    /// The plugin in use (after any switch).
    pub fn plugin(&self) -> AuthPlugin {
        self.plugin
    }

    fn set_nonce(&mut self, data: &[u8]) -> Result<(), Error> {
        let n = self.plugin.nonce_len();
        let nonce = data.get(..n).ok_or(Error::Auth("scramble too short"))?;
        self.nonce = nonce.to_vec();
        Ok(())
    }

    /// The auth response for the HandshakeResponse41 (or an AuthSwitchResponse).
    pub fn initial_response(&self) -> Vec<u8> {
        match self.plugin {
            AuthPlugin::MysqlNativePassword => {
                native::scramble_password(&self.nonce, &self.password)
            }
            AuthPlugin::CachingSha2Password => {
                caching_sha2::scramble_password(&self.nonce, &self.password)
            }
            AuthPlugin::ClientEd25519 => ed25519::sign_nonce(&self.nonce, &self.password).to_vec(),
        }
    }

    /// Feeds one server packet of the authentication phase.
    pub fn handle(
        &mut self,
        payload: &Bytes,
        caps: CapabilityFlags,
    ) -> Result<ClientAuthStep, Error> {
        match payload.first().copied() {
            Some(OK_HEADER) => {
                self.password.clear();
                Ok(ClientAuthStep::Done(OkPacket::parse(payload, caps)?))
            }
            Some(ERR_HEADER) => {
                self.password.clear();
                Ok(ClientAuthStep::Failed(ErrPacket::parse(payload, caps)?))
            }
            Some(AUTH_SWITCH_HEADER) => {
                if self.switched || self.phase != ClientPhase::Initial {
                    return Err(Error::Auth("repeated or late auth switch"));
                }
                let req = AuthSwitchRequest::parse(payload)?;
                self.plugin = AuthPlugin::from_name(&req.plugin_name)
                    .ok_or(Error::Auth("unsupported auth plugin"))?;
                self.set_nonce(&req.plugin_data)?;
                self.switched = true;
                Ok(ClientAuthStep::Send(self.initial_response()))
            }
            Some(AUTH_MORE_DATA_HEADER) => {
                let more = AuthMoreData::parse(payload)?;
                self.more_data(&more.data)
            }
            _ => Err(Error::Unexpected("packet during authentication")),
        }
    }

    fn more_data(&mut self, data: &[u8]) -> Result<ClientAuthStep, Error> {
        if self.plugin != AuthPlugin::CachingSha2Password {
            return Err(Error::Unexpected("AuthMoreData"));
        }
        match (self.phase, data) {
            (ClientPhase::Initial, [caching_sha2::FAST_AUTH_SUCCESS]) => {
                self.phase = ClientPhase::AwaitFast;
                Ok(ClientAuthStep::Wait)
            }
            (ClientPhase::Initial, [caching_sha2::PERFORM_FULL_AUTHENTICATION]) => {
                if self.secure {
                    self.phase = ClientPhase::Sent;
                    let mut pw = self.password.clone();
                    pw.push(0);
                    Ok(ClientAuthStep::Send(pw))
                } else if let Some(key) = &self.server_key {
                    self.phase = ClientPhase::Sent;
                    let ct = caching_sha2::encrypt_password(
                        key,
                        &self.password,
                        &self.nonce,
                        self.seed,
                    )?;
                    Ok(ClientAuthStep::Send(ct))
                } else if self.allow_key_request {
                    self.phase = ClientPhase::AwaitKey;
                    Ok(ClientAuthStep::Send(vec![caching_sha2::REQUEST_PUBLIC_KEY]))
                } else {
                    Err(Error::Auth(
                        "full authentication needs TLS or a server public key",
                    ))
                }
            }
            (ClientPhase::AwaitKey, pem) => {
                self.phase = ClientPhase::Sent;
                let key = caching_sha2::parse_public_key(pem)?;
                let ct =
                    caching_sha2::encrypt_password(&key, &self.password, &self.nonce, self.seed)?;
                Ok(ClientAuthStep::Send(ct))
            }
            _ => Err(Error::Unexpected("AuthMoreData")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::caching_sha2::{ServerRsaKey, FAST_AUTH_SUCCESS};
    use super::*;
    use bytes::{BufMut, BytesMut};

    fn caps() -> CapabilityFlags {
        CapabilityFlags::CLIENT_PROTOCOL_41
    }

    fn more(data: &[u8]) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(AUTH_MORE_DATA_HEADER);
        b.put_slice(data);
        b.freeze()
    }

    fn ok() -> Bytes {
        Bytes::from_static(&[0, 0, 0, 2, 0, 0, 0])
    }

    /// Runs our client role against our server role; returns whether the login succeeded.
    fn login(
        server_plugin: AuthPlugin,
        client_plugin: AuthPlugin,
        client_pw: &[u8],
        server_pw: &[u8],
        secure: bool,
        fast: bool,
    ) -> bool {
        let scramble = scramble_from_random([0x55; 20]);
        let key = ServerRsaKey::from_pkcs8_pem(caching_sha2::tests::TEST_KEY).unwrap();
        let mut server = ServerAuth::new(
            server_plugin,
            scramble,
            ServerCredential::from_password(server_pw),
            fast,
        )
        .unwrap();
        let mut client = ClientAuth::new(
            Some(client_plugin.name()),
            &scramble,
            client_pw,
            secure,
            [3; 32],
        )
        .unwrap()
        .allow_public_key_request(true);
        let mut step = server
            .start(
                Some(client_plugin.name()),
                &client.initial_response(),
                secure,
                Some(&key),
                [4; 32],
            )
            .unwrap();
        for _ in 0..5 {
            let to_client = match step {
                ServerAuthStep::Reject => return false,
                ServerAuthStep::Accept { more_data } => {
                    if let Some(m) = more_data {
                        assert_eq!(
                            client.handle(&more(&m), caps()).unwrap(),
                            ClientAuthStep::Wait
                        );
                    }
                    return matches!(
                        client.handle(&ok(), caps()).unwrap(),
                        ClientAuthStep::Done(_)
                    );
                }
                ServerAuthStep::MoreData(m) => more(&m),
                ServerAuthStep::Switch(req) => {
                    let mut b = BytesMut::new();
                    req.encode(&mut b).unwrap();
                    b.freeze()
                }
            };
            let ClientAuthStep::Send(data) = client.handle(&to_client, caps()).unwrap() else {
                panic!("client did not answer")
            };
            step = server.step(&data, secure, Some(&key), [5; 32]).unwrap();
        }
        panic!("exchange did not finish")
    }

    #[test]
    fn client_and_server_roles_agree() {
        use AuthPlugin::*;
        for (sp, cp) in [
            (MysqlNativePassword, MysqlNativePassword),
            (CachingSha2Password, CachingSha2Password),
            (CachingSha2Password, MysqlNativePassword),
            (MysqlNativePassword, CachingSha2Password),
        ] {
            for secure in [false, true] {
                for fast in [false, true] {
                    assert!(
                        login(sp, cp, b"pw", b"pw", secure, fast),
                        "{sp:?} {cp:?} {secure} {fast}"
                    );
                    assert!(
                        !login(sp, cp, b"bad", b"pw", secure, fast),
                        "{sp:?} {cp:?} {secure} {fast}"
                    );
                    assert!(!login(sp, cp, b"", b"pw", secure, fast));
                    assert!(login(sp, cp, b"", b"", secure, fast));
                }
            }
        }
    }

    #[test]
    fn client_refuses_cleartext_without_tls_or_key() {
        let mut c =
            ClientAuth::new(Some(caching_sha2::NAME), &[1; 20], b"pw", false, [0; 32]).unwrap();
        assert!(c
            .handle(&more(&[caching_sha2::PERFORM_FULL_AUTHENTICATION]), caps())
            .is_err());
        let mut c =
            ClientAuth::new(Some(caching_sha2::NAME), &[1; 20], b"pw", false, [0; 32]).unwrap();
        assert_eq!(
            c.handle(&more(&[FAST_AUTH_SUCCESS]), caps()).unwrap(),
            ClientAuthStep::Wait
        );
        assert!(c.handle(&more(&[FAST_AUTH_SUCCESS]), caps()).is_err());
    }

    #[test]
    fn client_rejects_unknown_plugins_and_double_switch() {
        assert!(ClientAuth::new(
            Some(b"mysql_clear_password"),
            &[1; 20],
            b"pw",
            true,
            [0; 32]
        )
        .is_err());
        let mut c = ClientAuth::new(None, &[1; 20], b"pw", false, [0; 32]).unwrap();
        let mut sw = BytesMut::new();
        AuthSwitchRequest {
            plugin_name: Bytes::from_static(ed25519::NAME),
            plugin_data: Bytes::from(vec![9u8; 32]),
        }
        .encode(&mut sw)
        .unwrap();
        let sw = sw.freeze();
        let ClientAuthStep::Send(sig) = c.handle(&sw, caps()).unwrap() else {
            panic!()
        };
        assert_eq!(sig, ed25519::sign_nonce(&[9; 32], b"pw").to_vec());
        assert!(c.handle(&sw, caps()).is_err());
    }

    #[test]
    fn scrambles_are_seven_bit_without_nul_or_dollar() {
        let s = scramble_from_random(core::array::from_fn(|i| (i * 37) as u8 | 0x80));
        assert!(s.iter().all(|&b| b != 0 && b != b'$' && b < 0x80));
        assert_ne!(random_scramble().unwrap(), random_scramble().unwrap());
    }
}
