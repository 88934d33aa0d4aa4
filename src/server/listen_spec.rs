//! Listeners with settings of their own: the config file's `[[listeners]]` entries, each an
//! address with its protocol, transport, and the login settings that differ there (so that,
//! say, cleartext passwords for pipelined logins are accepted over `wss` only).

use serde::Deserialize;

use super::config::{parse_auth, parse_mysql_auth, ConfigError, ListenAddr};
use crate::mux::{self, ClientTls, Protocol};

/// A `[[listeners]]` entry, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileListener {
    /// `host:port`, `[v6]:port`, `unix:/path` or `/path`.
    pub listen: String,
    /// What its clients speak: postgres (default) or mysql.
    pub protocol: Option<String>,
    /// `off` (default: the protocol's bytes as they are), `ws` or `wss` (WebSocket binary
    /// messages, over TLS from the first byte for `wss`).
    pub websocket: Option<String>,
    /// PostgreSQL client authentication here (default: the top-level `auth`).
    pub auth: Option<String>,
    /// MySQL client authentication here (default: the top-level `mysql_auth`).
    pub mysql_auth: Option<String>,
    /// TLS negotiated in the protocol here: off, offer, require (default: `client_tls`).
    pub client_tls: Option<String>,
}

/// A listener with its own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSpec {
    /// Where it listens.
    pub addr: ListenAddr,
    /// WebSocket framing: `None` for none, `Some(true)` over TLS (`wss`).
    pub websocket: Option<bool>,
    /// What the Engine is told about its clients (protocol, login settings; `secure` for
    /// `wss`).
    pub settings: mux::Listener,
}

impl ListenerSpec {
    /// Checks and converts entry `index` of `[[listeners]]`.
    pub fn from_file(index: usize, f: &FileListener) -> Result<ListenerSpec, ConfigError> {
        let err = |reason: String| ConfigError::Listener { index, reason };
        let protocol = match f.protocol.as_deref() {
            None | Some("postgres") | Some("postgresql") => Protocol::Postgres,
            Some("mysql") | Some("mariadb") => Protocol::Mysql,
            Some(other) => {
                return Err(err(format!(
                    "protocol {other:?}: expected postgres or mysql"
                )))
            }
        };
        let websocket = match f.websocket.as_deref() {
            None | Some("off") => None,
            Some("ws") => Some(false),
            Some("wss") => Some(true),
            Some(other) => {
                return Err(err(format!("websocket {other:?}: expected off, ws or wss")))
            }
        };
        let mut settings = mux::Listener::new(protocol);
        settings.secure = websocket == Some(true);
        settings.client_auth = f.auth.as_deref().map(parse_auth).transpose()?;
        settings.mysql_auth = f.mysql_auth.as_deref().map(parse_mysql_auth).transpose()?;
        settings.client_tls = match f.client_tls.as_deref() {
            None => None,
            Some(t) => Some(ClientTls::from_name(t).ok_or_else(|| {
                err(format!(
                    "client_tls {t:?}: expected one of {}",
                    ClientTls::NAMES
                ))
            })?),
        };
        Ok(ListenerSpec {
            addr: ListenAddr::parse(&f.listen)?,
            websocket,
            settings,
        })
    }

    /// Whether its clients need the server's certificate (`wss`, or TLS offered in the
    /// protocol).
    pub fn needs_certificate(&self) -> bool {
        self.websocket == Some(true)
            || self
                .settings
                .client_tls
                .is_some_and(|t| t != ClientTls::Off)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(toml_text: &str) -> Result<ListenerSpec, ConfigError> {
        let f: FileListener = toml::from_str(toml_text).expect("TOML");
        ListenerSpec::from_file(0, &f)
    }

    #[test]
    fn a_wss_listener_with_cleartext_logins() {
        let l = entry("listen = \"127.0.0.1:8443\"\nwebsocket = \"wss\"\nauth = \"cleartext\"")
            .expect("valid");
        assert_eq!(l.websocket, Some(true));
        assert!(l.settings.secure);
        assert_eq!(l.settings.client_auth, Some(mux::ClientAuth::Cleartext));
        assert!(l.needs_certificate());
        let l = entry("listen = \"/run/muxql.sock\"\nprotocol = \"mysql\"").expect("valid");
        assert_eq!(l.settings.protocol, Protocol::Mysql);
        assert!(!l.settings.secure && !l.needs_certificate());
    }

    #[test]
    fn errors_name_the_entry_and_the_field() {
        for (text, want) in [
            ("listen = \"h:1\"\nwebsocket = \"yes\"", "websocket \"yes\""),
            (
                "listen = \"h:1\"\nprotocol = \"oracle\"",
                "protocol \"oracle\"",
            ),
            (
                "listen = \"h:1\"\nclient_tls = \"maybe\"",
                "client_tls \"maybe\"",
            ),
            ("listen = \"h:1\"\nauth = \"kerberos\"", "kerberos"),
        ] {
            let msg = entry(text).unwrap_err().to_string();
            assert!(msg.contains(want), "{text}: {msg}");
        }
    }
}
