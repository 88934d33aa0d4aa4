//! Connection phase packets (Connection Phase Packets): HandshakeV10 (MySQL and MariaDB),
//! SSLRequest, HandshakeResponse41, AuthSwitchRequest and AuthMoreData.

use bytes::{BufMut, Bytes, BytesMut};

use super::cursor::Cursor;
use super::flags::{CapabilityFlags, StatusFlags};
use super::lenenc;
use crate::wire::Error;

/// Protocol version byte of HandshakeV10.
pub const PROTOCOL_VERSION_10: u8 = 10;
/// Version prefix MariaDB servers send so that old clients accept them.
pub const MARIADB_VERSION_PREFIX: &[u8] = b"5.5.5-";
/// Header of an AuthSwitchRequest.
pub const AUTH_SWITCH_HEADER: u8 = 0xFE;
/// Header of an AuthMoreData packet.
pub const AUTH_MORE_DATA_HEADER: u8 = 0x01;
/// Payload length of an SSLRequest.
pub const SSL_REQUEST_LEN: usize = 32;

/// The initial server greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeV10 {
    /// Server version as sent (MariaDB: with its "5.5.5-" prefix).
    pub server_version: Bytes,
    /// Connection (thread) id.
    pub connection_id: u32,
    /// The scramble (auth-plugin-data parts 1 and 2, trailing NUL removed).
    pub auth_plugin_data: Bytes,
    /// Server capabilities, with MariaDB extended bits when `CLIENT_MYSQL` is unset.
    pub capabilities: CapabilityFlags,
    /// Default collation id.
    pub character_set: u8,
    /// Server status.
    pub status: StatusFlags,
    /// Default authentication plugin (with `CLIENT_PLUGIN_AUTH`).
    pub auth_plugin_name: Option<Bytes>,
}

impl HandshakeV10 {
    /// Parses a server greeting.
    pub fn parse(payload: &Bytes) -> Result<Self, Error> {
        let mut c = Cursor::new(payload, "HandshakeV10");
        if c.u8()? != PROTOCOL_VERSION_10 {
            return Err(Error::InvalidValue("handshake protocol version"));
        }
        let server_version = c.null_str()?;
        let connection_id = c.u32()?;
        let part1 = c.bytes(8)?;
        c.skip(1)?;
        let lower = u32::from(c.u16()?);
        if c.is_empty() {
            return Ok(HandshakeV10 {
                server_version,
                connection_id,
                auth_plugin_data: part1,
                capabilities: CapabilityFlags::from_halves(lower, 0),
                character_set: 0,
                status: StatusFlags::empty(),
                auth_plugin_name: None,
            });
        }
        let character_set = c.u8()?;
        let status = StatusFlags::from_bits_retain(c.u16()?);
        let lower = lower | u32::from(c.u16()?) << 16;
        let data_len = usize::from(c.u8()?);
        c.skip(6)?;
        let ext = c.u32()?;
        let mut caps = CapabilityFlags::from_halves(lower, 0);
        if caps.has_mariadb_extended() {
            caps = CapabilityFlags::from_halves(lower, ext);
        }
        let mut scramble = BytesMut::from(&part1[..]);
        if caps.contains(CapabilityFlags::CLIENT_SECURE_CONNECTION) {
            let part2 = c.bytes(data_len.saturating_sub(8).max(13))?;
            let part2 = match part2.last() {
                Some(0) => part2.slice(..part2.len() - 1),
                _ => part2,
            };
            scramble.put_slice(&part2);
        }
        let auth_plugin_name = if caps.contains(CapabilityFlags::CLIENT_PLUGIN_AUTH) {
            Some(c.null_str_or_rest())
        } else {
            None
        };
        Ok(HandshakeV10 {
            server_version,
            connection_id,
            auth_plugin_data: scramble.freeze(),
            capabilities: caps,
            character_set,
            status,
            auth_plugin_name,
        })
    }

    /// Appends the payload. The scramble must be 8 to 20 bytes (servers use 20).
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), Error> {
        let data = &self.auth_plugin_data[..];
        let (part1, part2) = match (data.get(..8), data.get(8..)) {
            (Some(a), Some(b)) if b.len() <= 12 => (a, b),
            _ => return Err(Error::InvalidValue("handshake scramble length")),
        };
        out.put_u8(PROTOCOL_VERSION_10);
        lenenc::put_null_str(out, &self.server_version, "server version")?;
        out.put_u32_le(self.connection_id);
        out.put_slice(part1);
        out.put_u8(0);
        let caps = self.capabilities;
        out.put_u16_le((caps.lower() & 0xFFFF) as u16);
        out.put_u8(self.character_set);
        out.put_u16_le(self.status.bits());
        out.put_u16_le((caps.lower() >> 16) as u16);
        let secure = caps.contains(CapabilityFlags::CLIENT_SECURE_CONNECTION);
        let plugin = caps.contains(CapabilityFlags::CLIENT_PLUGIN_AUTH);
        out.put_u8(if plugin {
            lenenc::narrow(data.len() + 1, "scramble")?
        } else {
            0
        });
        out.put_slice(&[0; 6]);
        out.put_u32_le(if caps.has_mariadb_extended() {
            caps.upper()
        } else {
            0
        });
        if secure {
            out.put_slice(part2);
            out.put_bytes(0, 13 - part2.len());
        }
        if plugin {
            let name = self.auth_plugin_name.as_deref().unwrap_or_default();
            lenenc::put_null_str(out, name, "auth plugin name")?;
        }
        Ok(())
    }

    /// True for a MariaDB server (version "5.5.5-..." or mentioning MariaDB).
    pub fn is_mariadb(&self) -> bool {
        self.server_version.starts_with(MARIADB_VERSION_PREFIX)
            || self
                .server_version
                .windows(7)
                .any(|w| w.eq_ignore_ascii_case(b"mariadb"))
    }

    /// The version without MariaDB's "5.5.5-" compatibility prefix.
    pub fn version(&self) -> &[u8] {
        self.server_version
            .strip_prefix(MARIADB_VERSION_PREFIX)
            .unwrap_or(&self.server_version)
    }
}

/// Reads the shared 32-byte prefix of SSLRequest and HandshakeResponse41.
fn parse_client_prefix(c: &mut Cursor<'_>) -> Result<(CapabilityFlags, u32, u8), Error> {
    let lower = c.u32()?;
    if lower & CapabilityFlags::CLIENT_PROTOCOL_41.lower() == 0 {
        return Err(Error::Unexpected("HandshakeResponse320"));
    }
    let max_packet = c.u32()?;
    let charset = c.u8()?;
    c.skip(19)?;
    let ext = c.u32()?;
    let mut caps = CapabilityFlags::from_halves(lower, 0);
    if caps.has_mariadb_extended() {
        caps = CapabilityFlags::from_halves(lower, ext);
    }
    Ok((caps, max_packet, charset))
}

fn put_client_prefix(out: &mut BytesMut, caps: CapabilityFlags, max_packet: u32, charset: u8) {
    out.put_u32_le(caps.lower());
    out.put_u32_le(max_packet);
    out.put_u8(charset);
    out.put_bytes(0, 19);
    out.put_u32_le(if caps.has_mariadb_extended() {
        caps.upper()
    } else {
        0
    });
}

/// The client's request to switch to TLS (a truncated HandshakeResponse41).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SslRequest {
    /// Client capabilities (includes `CLIENT_SSL`).
    pub capabilities: CapabilityFlags,
    /// Max packet size the client accepts.
    pub max_packet_size: u32,
    /// Client collation id.
    pub character_set: u8,
}

impl SslRequest {
    /// Appends the payload.
    pub fn encode(&self, out: &mut BytesMut) {
        put_client_prefix(
            out,
            self.capabilities,
            self.max_packet_size,
            self.character_set,
        );
    }
}

/// The client's login packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeResponse41 {
    /// Client capabilities.
    pub capabilities: CapabilityFlags,
    /// Max packet size the client accepts.
    pub max_packet_size: u32,
    /// Client collation id.
    pub character_set: u8,
    /// User name.
    pub username: Bytes,
    /// Plugin-specific auth response.
    pub auth_response: Bytes,
    /// Initial schema (with `CLIENT_CONNECT_WITH_DB`).
    pub database: Option<Bytes>,
    /// Auth plugin the response was made with (with `CLIENT_PLUGIN_AUTH`).
    pub auth_plugin_name: Option<Bytes>,
    /// Connection attributes as key/value pairs (with `CLIENT_CONNECT_ATTRS`).
    pub connect_attrs: Vec<(Bytes, Bytes)>,
    /// zstd compression level (with `CLIENT_ZSTD_COMPRESSION_ALGORITHM`).
    pub zstd_compression_level: Option<u8>,
}

/// What a client sends after the greeting: an SSLRequest or its login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientHello {
    /// Switch to TLS, then a HandshakeResponse41 follows.
    Ssl(SslRequest),
    /// The login packet.
    Response(HandshakeResponse41),
}

impl ClientHello {
    /// Parses the client's first packet; a 32-byte payload is an SSLRequest.
    pub fn parse(payload: &Bytes) -> Result<Self, Error> {
        let mut c = Cursor::new(payload, "HandshakeResponse41");
        let (capabilities, max_packet_size, character_set) = parse_client_prefix(&mut c)?;
        if c.is_empty() {
            if !capabilities.contains(CapabilityFlags::CLIENT_SSL) {
                return Err(Error::Truncated("HandshakeResponse41"));
            }
            return Ok(ClientHello::Ssl(SslRequest {
                capabilities,
                max_packet_size,
                character_set,
            }));
        }
        let username = c.null_str()?;
        let auth_response =
            if capabilities.contains(CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) {
                c.lenenc_bytes()?
            } else if capabilities.contains(CapabilityFlags::CLIENT_SECURE_CONNECTION) {
                let n = usize::from(c.u8()?);
                c.bytes(n)?
            } else {
                c.null_str()?
            };
        let database = if capabilities.contains(CapabilityFlags::CLIENT_CONNECT_WITH_DB) {
            Some(c.null_str_or_rest())
        } else {
            None
        };
        let auth_plugin_name = if capabilities.contains(CapabilityFlags::CLIENT_PLUGIN_AUTH) {
            Some(c.null_str_or_rest())
        } else {
            None
        };
        let mut connect_attrs = Vec::new();
        if capabilities.contains(CapabilityFlags::CLIENT_CONNECT_ATTRS) && !c.is_empty() {
            let attrs = c.lenenc_bytes()?;
            let mut a = Cursor::new(&attrs, "connection attributes");
            while !a.is_empty() {
                connect_attrs.push((a.lenenc_bytes()?, a.lenenc_bytes()?));
            }
        }
        let zstd_compression_level =
            if capabilities.contains(CapabilityFlags::CLIENT_ZSTD_COMPRESSION_ALGORITHM) {
                Some(c.u8()?)
            } else {
                None
            };
        c.finish()?;
        Ok(ClientHello::Response(HandshakeResponse41 {
            capabilities,
            max_packet_size,
            character_set,
            username,
            auth_response,
            database,
            auth_plugin_name,
            connect_attrs,
            zstd_compression_level,
        }))
    }
}

impl HandshakeResponse41 {
    /// Appends the payload; optional fields must agree with the capability flags.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), Error> {
        let caps = self.capabilities;
        if !caps.contains(CapabilityFlags::CLIENT_PROTOCOL_41) {
            return Err(Error::InvalidValue(
                "HandshakeResponse41 without CLIENT_PROTOCOL_41",
            ));
        }
        let has = |f| caps.contains(f);
        if self.database.is_some() != has(CapabilityFlags::CLIENT_CONNECT_WITH_DB)
            || self.auth_plugin_name.is_some() != has(CapabilityFlags::CLIENT_PLUGIN_AUTH)
            || self.zstd_compression_level.is_some()
                != has(CapabilityFlags::CLIENT_ZSTD_COMPRESSION_ALGORITHM)
            || (!self.connect_attrs.is_empty() && !has(CapabilityFlags::CLIENT_CONNECT_ATTRS))
        {
            return Err(Error::InvalidValue(
                "HandshakeResponse41 fields vs capabilities",
            ));
        }
        put_client_prefix(out, caps, self.max_packet_size, self.character_set);
        lenenc::put_null_str(out, &self.username, "user name")?;
        if has(CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) {
            lenenc::put_bytes(out, &self.auth_response);
        } else if has(CapabilityFlags::CLIENT_SECURE_CONNECTION) {
            out.put_u8(lenenc::narrow(self.auth_response.len(), "auth response")?);
            out.put_slice(&self.auth_response);
        } else {
            lenenc::put_null_str(out, &self.auth_response, "auth response")?;
        }
        if let Some(db) = &self.database {
            lenenc::put_null_str(out, db, "database")?;
        }
        if let Some(p) = &self.auth_plugin_name {
            lenenc::put_null_str(out, p, "auth plugin name")?;
        }
        // An empty attribute block is omitted unless a later field needs it in place.
        if has(CapabilityFlags::CLIENT_CONNECT_ATTRS)
            && (!self.connect_attrs.is_empty() || self.zstd_compression_level.is_some())
        {
            let mut attrs = BytesMut::new();
            for (k, v) in &self.connect_attrs {
                lenenc::put_bytes(&mut attrs, k);
                lenenc::put_bytes(&mut attrs, v);
            }
            lenenc::put_bytes(out, &attrs);
        }
        if let Some(level) = self.zstd_compression_level {
            out.put_u8(level);
        }
        Ok(())
    }
}

/// The server's request to continue with another authentication plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSwitchRequest {
    /// Plugin to switch to.
    pub plugin_name: Bytes,
    /// Plugin data (for the built-in plugins: a scramble followed by a NUL).
    pub plugin_data: Bytes,
}

impl AuthSwitchRequest {
    /// Parses the request (0xFE, plugin name, data).
    pub fn parse(payload: &Bytes) -> Result<Self, Error> {
        let mut c = Cursor::new(payload, "AuthSwitchRequest");
        if c.u8()? != AUTH_SWITCH_HEADER {
            return Err(Error::Unexpected("non-AuthSwitchRequest packet"));
        }
        if c.is_empty() {
            // The pre-4.1 "old auth switch" (mysql_old_password) is not supported.
            return Err(Error::Auth("old auth switch request"));
        }
        Ok(AuthSwitchRequest {
            plugin_name: c.null_str()?,
            plugin_data: c.rest(),
        })
    }

    /// The scramble: plugin data without its trailing NUL.
    pub fn scramble(&self) -> Bytes {
        match self.plugin_data.last() {
            Some(0) => self.plugin_data.slice(..self.plugin_data.len() - 1),
            _ => self.plugin_data.clone(),
        }
    }

    /// Appends the payload.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), Error> {
        out.put_u8(AUTH_SWITCH_HEADER);
        lenenc::put_null_str(out, &self.plugin_name, "auth plugin name")?;
        out.put_slice(&self.plugin_data);
        Ok(())
    }
}

/// Extra authentication data from the server (0x01 + data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthMoreData {
    /// Plugin-specific data.
    pub data: Bytes,
}

impl AuthMoreData {
    /// Parses the packet.
    pub fn parse(payload: &Bytes) -> Result<Self, Error> {
        let mut c = Cursor::new(payload, "AuthMoreData");
        if c.u8()? != AUTH_MORE_DATA_HEADER {
            return Err(Error::Unexpected("non-AuthMoreData packet"));
        }
        Ok(AuthMoreData { data: c.rest() })
    }

    /// Appends the payload.
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u8(AUTH_MORE_DATA_HEADER);
        out.put_slice(&self.data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spec_example_handshake_v10() {
        // HandshakeV10 example from the MySQL docs (5.5.2-m2, mysql_native_password).
        let p = Bytes::from_static(
            b"\x0a5.5.2-m2\x00\x0b\x00\x00\x00\x64\x76\x48\x40\x49\x2d\x43\x4a\x00\xff\xf7\x08\x02\x00\
              \x0f\x80\x15\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x2a\x34\x64\x7c\x63\x5a\x77\x6b\x34\x5e\x5d\
              \x3a\x00",
        );
        let h = HandshakeV10::parse(&p).unwrap();
        assert_eq!(&h.server_version[..], b"5.5.2-m2");
        assert_eq!(h.connection_id, 11);
        assert_eq!(h.auth_plugin_data.len(), 20);
        assert!(h.capabilities.contains(CapabilityFlags::CLIENT_PROTOCOL_41));
        assert_eq!(h.status, StatusFlags::SERVER_STATUS_AUTOCOMMIT);
        assert!(!h.is_mariadb());
    }

    #[test]
    fn spec_example_handshake_response() {
        // Modelled on the docs' HandshakeResponse41 example (user "pam", schema "test",
        // mysql_native_password), with CLIENT_CONNECT_WITH_DB set and no attributes.
        let p = Bytes::from_static(
            b"\x8d\xa6\x2f\x00\x00\x00\x00\x01\x21\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\
              \x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x70\x61\x6d\x00\x14\xab\x09\xee\xf6\xbc\xb1\x32\
              \x3e\x61\x14\x38\x65\xc0\x99\x1d\x95\x7d\x75\xd4\x47\x74\x65\x73\x74\x00\x6d\x79\x73\x71\x6c\x5f\
              \x6e\x61\x74\x69\x76\x65\x5f\x70\x61\x73\x73\x77\x6f\x72\x64\x00",
        );
        let ClientHello::Response(r) = ClientHello::parse(&p).unwrap() else {
            panic!("not a response")
        };
        assert_eq!(&r.username[..], b"pam");
        assert_eq!(r.auth_response.len(), 20);
        assert_eq!(r.database.as_deref(), Some(&b"test"[..]));
        assert_eq!(
            r.auth_plugin_name.as_deref(),
            Some(&b"mysql_native_password"[..])
        );
        let mut out = BytesMut::new();
        r.encode(&mut out).unwrap();
        assert_eq!(&out[..], &p[..]);
    }

    #[test]
    fn mariadb_handshake_extended_caps() {
        let h = HandshakeV10 {
            server_version: Bytes::from_static(b"5.5.5-10.11.6-MariaDB"),
            connection_id: 3,
            auth_plugin_data: Bytes::from_static(b"abcdefgh123456789012"),
            capabilities: (CapabilityFlags::CLIENT_PROTOCOL_41
                | CapabilityFlags::CLIENT_SECURE_CONNECTION
                | CapabilityFlags::CLIENT_PLUGIN_AUTH
                | CapabilityFlags::MARIADB_CLIENT_STMT_BULK_OPERATIONS)
                .difference(CapabilityFlags::CLIENT_MYSQL),
            character_set: 45,
            status: StatusFlags::SERVER_STATUS_AUTOCOMMIT,
            auth_plugin_name: Some(Bytes::from_static(b"mysql_native_password")),
        };
        let mut out = BytesMut::new();
        h.encode(&mut out).unwrap();
        let back = HandshakeV10::parse(&out.freeze()).unwrap();
        assert_eq!(back, h);
        assert!(back.is_mariadb());
        assert_eq!(back.version(), b"10.11.6-MariaDB");
    }

    #[test]
    fn ssl_request_is_recognised() {
        let req = SslRequest {
            capabilities: CapabilityFlags::CLIENT_PROTOCOL_41 | CapabilityFlags::CLIENT_SSL,
            max_packet_size: 1 << 24,
            character_set: 33,
        };
        let mut out = BytesMut::new();
        req.encode(&mut out);
        assert_eq!(out.len(), SSL_REQUEST_LEN);
        assert_eq!(
            ClientHello::parse(&out.freeze()).unwrap(),
            ClientHello::Ssl(req)
        );
    }

    fn bytes_no_nul(max: usize) -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(1u8.., 0..max).prop_map(Bytes::from)
    }

    fn bytes_any(max: usize) -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
    }

    proptest! {
        #[test]
        fn handshake_round_trip(version in bytes_no_nul(30), id in any::<u32>(), scramble in proptest::collection::vec(1u8.., 20),
                                caps in any::<u64>(), charset in any::<u8>(), status in any::<u16>(), plugin in bytes_no_nul(30)) {
            let mut caps = CapabilityFlags::from_bits_retain(caps) | CapabilityFlags::CLIENT_SECURE_CONNECTION;
            if !caps.has_mariadb_extended() { caps = CapabilityFlags::from_halves(caps.lower(), 0); }
            let h = HandshakeV10 {
                server_version: version, connection_id: id, auth_plugin_data: Bytes::from(scramble),
                capabilities: caps, character_set: charset, status: StatusFlags::from_bits_retain(status),
                auth_plugin_name: caps.contains(CapabilityFlags::CLIENT_PLUGIN_AUTH).then_some(plugin),
            };
            let mut out = BytesMut::new();
            h.encode(&mut out).unwrap();
            prop_assert_eq!(HandshakeV10::parse(&out.freeze()).unwrap(), h);
        }

        #[test]
        fn response_round_trip(caps in any::<u64>(), max in any::<u32>(), charset in any::<u8>(), user in bytes_no_nul(20),
                               auth in bytes_any(40), db in bytes_no_nul(20), plugin in bytes_no_nul(20),
                               attrs in proptest::collection::vec((bytes_any(10), bytes_any(10)), 0..4), level in any::<u8>()) {
            let mut caps = CapabilityFlags::from_bits_retain(caps) | CapabilityFlags::CLIENT_PROTOCOL_41;
            if !caps.has_mariadb_extended() { caps = CapabilityFlags::from_halves(caps.lower(), 0); }
            let has = |f| caps.contains(f);
            let auth = if has(CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) || has(CapabilityFlags::CLIENT_SECURE_CONNECTION) {
                auth
            } else {
                Bytes::from(auth.iter().copied().filter(|&b| b != 0).collect::<Vec<u8>>())
            };
            let r = HandshakeResponse41 {
                capabilities: caps, max_packet_size: max, character_set: charset, username: user, auth_response: auth,
                database: has(CapabilityFlags::CLIENT_CONNECT_WITH_DB).then_some(db),
                auth_plugin_name: has(CapabilityFlags::CLIENT_PLUGIN_AUTH).then_some(plugin),
                connect_attrs: if has(CapabilityFlags::CLIENT_CONNECT_ATTRS) { attrs } else { Vec::new() },
                zstd_compression_level: has(CapabilityFlags::CLIENT_ZSTD_COMPRESSION_ALGORITHM).then_some(level),
            };
            let mut out = BytesMut::new();
            r.encode(&mut out).unwrap();
            prop_assert_eq!(ClientHello::parse(&out.freeze()).unwrap(), ClientHello::Response(r));
        }

        #[test]
        fn ssl_request_round_trip(caps in any::<u64>(), max in any::<u32>(), charset in any::<u8>()) {
            let mut caps = CapabilityFlags::from_bits_retain(caps) | CapabilityFlags::CLIENT_PROTOCOL_41 | CapabilityFlags::CLIENT_SSL;
            if !caps.has_mariadb_extended() { caps = CapabilityFlags::from_halves(caps.lower(), 0); }
            let r = SslRequest { capabilities: caps, max_packet_size: max, character_set: charset };
            let mut out = BytesMut::new();
            r.encode(&mut out);
            prop_assert_eq!(ClientHello::parse(&out.freeze()).unwrap(), ClientHello::Ssl(r));
        }

        #[test]
        fn auth_switch_round_trip(name in bytes_no_nul(30), data in bytes_any(30)) {
            let r = AuthSwitchRequest { plugin_name: name, plugin_data: data };
            let mut out = BytesMut::new();
            r.encode(&mut out).unwrap();
            prop_assert_eq!(AuthSwitchRequest::parse(&out.freeze()).unwrap(), r);
        }

        #[test]
        fn auth_more_data_round_trip(data in bytes_any(30)) {
            let r = AuthMoreData { data };
            let mut out = BytesMut::new();
            r.encode(&mut out);
            prop_assert_eq!(AuthMoreData::parse(&out.freeze()).unwrap(), r);
        }
    }
}
