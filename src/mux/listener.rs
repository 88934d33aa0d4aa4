//! What the host tells the Engine about the listener a client came through: its protocol,
//! whether the host already encrypts the connection, and the login settings that listener
//! overrides (so that, say, cleartext passwords are accepted over `wss` only).

use super::config::{ClientAuth, ClientTls, Config, MysqlAuth, Protocol};

/// A listener's settings for [`Engine::client_open_on`](super::Engine::client_open_on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Listener {
    /// The protocol its clients speak.
    pub protocol: Protocol,
    /// The host encrypts the connection itself (TLS from the first byte, WebSocket over
    /// TLS): it counts as TLS for [`Listener::client_tls`] and SCRAM channel binding, and no
    /// TLS is negotiated in the protocol on top of it.
    pub secure: bool,
    /// PostgreSQL client authentication here (`None`: [`Config::client_auth`]).
    pub client_auth: Option<ClientAuth>,
    /// MySQL client authentication here (`None`: [`Config::mysql_auth`]).
    pub mysql_auth: Option<MysqlAuth>,
    /// TLS negotiated in the protocol here (`None`: [`Config::client_tls`]).
    pub client_tls: Option<ClientTls>,
}

impl Listener {
    /// A plaintext listener of `protocol` with the Config's login settings.
    pub fn new(protocol: Protocol) -> Self {
        Listener {
            protocol,
            secure: false,
            client_auth: None,
            mysql_auth: None,
            client_tls: None,
        }
    }

    /// The settings a client of this listener logs in with.
    pub(crate) fn resolve(&self, config: &Config) -> LoginSettings {
        LoginSettings {
            auth: self.client_auth.unwrap_or(config.client_auth),
            mysql_auth: self.mysql_auth.unwrap_or(config.mysql_auth),
            tls: self.client_tls.unwrap_or(config.client_tls),
            secure: self.secure,
        }
    }
}

/// The login settings of one client, resolved from its listener and the Config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LoginSettings {
    /// PostgreSQL authentication.
    pub(crate) auth: ClientAuth,
    /// MySQL authentication.
    pub(crate) mysql_auth: MysqlAuth,
    /// TLS in the protocol: offered, required or not.
    pub(crate) tls: ClientTls,
    /// The host encrypts the connection.
    pub(crate) secure: bool,
}

impl LoginSettings {
    /// Whether TLS is offered in the protocol (never on a connection the host encrypts).
    pub(crate) fn offers_tls(&self) -> bool {
        self.tls != ClientTls::Off && !self.secure
    }
}
