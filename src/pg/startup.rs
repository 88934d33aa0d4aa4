//! The startup phase: untyped packets (Int32 length, Int32 code) a client sends first.
//!
//! Protocol docs, "Message Formats": StartupMessage, SSLRequest, GSSENCRequest and
//! CancelRequest share one shape and differ by the code. A client opening with direct TLS
//! (PostgreSQL 17+) sends a TLS ClientHello instead, recognised by its first byte.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::wire::{Error, Limits};

/// Protocol version 3.0 as sent in a StartupMessage.
pub const PROTOCOL_3_0: u32 = 196_608;
/// Protocol version 3.2 (PostgreSQL 18) as sent in a StartupMessage.
pub const PROTOCOL_3_2: u32 = 196_610;
/// SSLRequest code.
pub const SSL_REQUEST_CODE: u32 = 80_877_103;
/// GSSENCRequest code.
pub const GSSENC_REQUEST_CODE: u32 = 80_877_104;
/// CancelRequest code.
pub const CANCEL_REQUEST_CODE: u32 = 80_877_102;
/// First byte of a TLS handshake record: a client starting with direct TLS.
pub const TLS_HANDSHAKE_BYTE: u8 = 0x16;
/// Smallest cancel key (protocol 3.0 keys are exactly this long).
pub const MIN_CANCEL_KEY_LEN: usize = 4;
/// Largest cancel key protocol 3.2 allows.
pub const MAX_CANCEL_KEY_LEN: usize = 256;

/// A protocol version: major in the high 16 bits, minor in the low 16 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProtocolVersion(pub u32);

impl ProtocolVersion {
    /// The major version.
    pub fn major(self) -> u16 {
        (self.0 >> 16) as u16
    }
    /// The minor version.
    pub fn minor(self) -> u16 {
        (self.0 & 0xffff) as u16
    }
}

/// A StartupMessage: the protocol version and the `name=value` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Startup {
    /// The version the client asks for.
    pub version: ProtocolVersion,
    /// Parameters in wire order, without NUL terminators.
    pub params: Vec<(Bytes, Bytes)>,
}

impl Startup {
    /// The value of parameter `name`, if present.
    pub fn param(&self, name: &str) -> Option<&Bytes> {
        self.params
            .iter()
            .find(|(k, _)| k.as_ref() == name.as_bytes())
            .map(|(_, v)| v)
    }

    /// Appends the encoded message to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), Error> {
        encode_packet(dst, |d| {
            d.put_u32(self.version.0);
            for (k, v) in &self.params {
                put_cstr(d, k, "startup parameter name")?;
                put_cstr(d, v, "startup parameter value")?;
            }
            d.put_u8(0);
            Ok(())
        })
    }
}

/// A CancelRequest: the backend process id and the secret key (4 bytes in 3.0, up to 256 in 3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelRequest {
    /// The process id from BackendKeyData.
    pub pid: u32,
    /// The secret key from BackendKeyData.
    pub key: Bytes,
}

impl CancelRequest {
    /// Appends the encoded message to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), Error> {
        if !(MIN_CANCEL_KEY_LEN..=MAX_CANCEL_KEY_LEN).contains(&self.key.len()) {
            return Err(Error::InvalidValue("cancel key length"));
        }
        encode_packet(dst, |d| {
            d.put_u32(CANCEL_REQUEST_CODE);
            d.put_u32(self.pid);
            d.put_slice(&self.key);
            Ok(())
        })
    }
}

/// Any packet of the startup phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupRequest {
    /// StartupMessage.
    Startup(Startup),
    /// SSLRequest: the client asks for TLS.
    SslRequest,
    /// GSSENCRequest: the client asks for GSSAPI encryption.
    GssEncRequest,
    /// CancelRequest.
    Cancel(CancelRequest),
}

impl StartupRequest {
    /// Appends the encoded packet to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), Error> {
        match self {
            StartupRequest::Startup(s) => s.encode(dst),
            StartupRequest::SslRequest => encode_code_only(dst, SSL_REQUEST_CODE),
            StartupRequest::GssEncRequest => encode_code_only(dst, GSSENC_REQUEST_CODE),
            StartupRequest::Cancel(c) => c.encode(dst),
        }
    }
}

/// Cuts one startup-phase packet off `buf`, or `Ok(None)` when more bytes are needed.
///
/// The length is checked against `limits.max_startup` before the body is buffered.
pub fn split_startup(buf: &mut BytesMut, limits: &Limits) -> Result<Option<StartupRequest>, Error> {
    let Some(len_bytes) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
    if len < 8 {
        return Err(Error::InvalidLength(len.into()));
    }
    if len as usize > limits.max_startup {
        return Err(Error::TooLarge {
            len: len.into(),
            limit: limits.max_startup as u64,
        });
    }
    if buf.len() < len as usize {
        return Ok(None);
    }
    let mut packet = buf.split_to(len as usize).freeze();
    packet.advance(4);
    let code = packet.get_u32();
    parse_startup_body(code, packet).map(Some)
}

/// Parses the body of a startup packet after its length and code.
fn parse_startup_body(code: u32, mut body: Bytes) -> Result<StartupRequest, Error> {
    match code {
        SSL_REQUEST_CODE | GSSENC_REQUEST_CODE if !body.is_empty() => {
            Err(Error::TrailingBytes("SSLRequest"))
        }
        SSL_REQUEST_CODE => Ok(StartupRequest::SslRequest),
        GSSENC_REQUEST_CODE => Ok(StartupRequest::GssEncRequest),
        CANCEL_REQUEST_CODE => {
            if body.len() < 4 + MIN_CANCEL_KEY_LEN {
                return Err(Error::Truncated("CancelRequest"));
            }
            let pid = body.get_u32();
            if body.len() > MAX_CANCEL_KEY_LEN {
                return Err(Error::InvalidValue("cancel key length"));
            }
            Ok(StartupRequest::Cancel(CancelRequest { pid, key: body }))
        }
        code if code >> 16 == 3 => parse_params(ProtocolVersion(code), body),
        code => Err(Error::UnknownStartupCode(code)),
    }
}

/// Parses the NUL-terminated `name`, `value` pairs of a StartupMessage.
fn parse_params(version: ProtocolVersion, mut body: Bytes) -> Result<StartupRequest, Error> {
    let mut params = Vec::new();
    loop {
        let name = take_cstr(&mut body, "StartupMessage")?;
        if name.is_empty() {
            break;
        }
        let value = take_cstr(&mut body, "StartupMessage")?;
        params.push((name, value));
    }
    if !body.is_empty() {
        return Err(Error::TrailingBytes("StartupMessage"));
    }
    Ok(StartupRequest::Startup(Startup { version, params }))
}

/// Splits a NUL-terminated string off the front of `body`, without the NUL.
fn take_cstr(body: &mut Bytes, what: &'static str) -> Result<Bytes, Error> {
    let nul = body
        .iter()
        .position(|&b| b == 0)
        .ok_or(Error::MissingNul(what))?;
    let s = body.split_to(nul);
    body.advance(1);
    Ok(s)
}

/// Appends `s` and a NUL; a string containing NUL cannot be encoded.
fn put_cstr(dst: &mut BytesMut, s: &[u8], what: &'static str) -> Result<(), Error> {
    if s.contains(&0) {
        return Err(Error::InvalidValue(what));
    }
    dst.put_slice(s);
    dst.put_u8(0);
    Ok(())
}

/// Appends a length-prefixed startup packet whose code and body `body` writes.
fn encode_packet(
    dst: &mut BytesMut,
    body: impl FnOnce(&mut BytesMut) -> Result<(), Error>,
) -> Result<(), Error> {
    let start = dst.len();
    dst.put_u32(0);
    if let Err(e) = body(dst) {
        dst.truncate(start);
        return Err(e);
    }
    let len =
        u32::try_from(dst.len() - start).map_err(|_| Error::EncodeOverflow("startup packet"))?;
    dst[start..start + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Appends an 8-byte packet carrying only a request code.
fn encode_code_only(dst: &mut BytesMut, code: u32) -> Result<(), Error> {
    encode_packet(dst, |d| {
        d.put_u32(code);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split(bytes: &[u8]) -> Result<Option<StartupRequest>, Error> {
        split_startup(&mut BytesMut::from(bytes), &Limits::default())
    }

    #[test]
    fn parses_the_spec_ssl_request() {
        assert_eq!(
            split(b"\0\0\0\x08\x04\xd2\x16\x2f"),
            Ok(Some(StartupRequest::SslRequest))
        );
        assert_eq!(
            split(b"\0\0\0\x08\x04\xd2\x16\x30"),
            Ok(Some(StartupRequest::GssEncRequest))
        );
    }

    #[test]
    fn parses_a_startup_message() {
        let got = split(b"\0\0\0\x20\0\x03\0\0user\0alice\0database\0db\0\0")
            .unwrap()
            .unwrap();
        let StartupRequest::Startup(s) = got else {
            panic!("not a startup: {got:?}")
        };
        assert_eq!(s.version, ProtocolVersion(PROTOCOL_3_0));
        assert_eq!(s.param("user").map(|v| &v[..]), Some(&b"alice"[..]));
        assert_eq!(s.param("database").map(|v| &v[..]), Some(&b"db"[..]));
    }

    #[test]
    fn parses_cancel_with_both_key_lengths() {
        let short = split(b"\0\0\0\x10\x04\xd2\x16\x2e\0\0\0\x07abcd")
            .unwrap()
            .unwrap();
        assert_eq!(
            short,
            StartupRequest::Cancel(CancelRequest {
                pid: 7,
                key: Bytes::from_static(b"abcd")
            })
        );
        let mut long = BytesMut::new();
        let req = CancelRequest {
            pid: 9,
            key: Bytes::from(vec![0xab; 32]),
        };
        req.encode(&mut long).unwrap();
        assert_eq!(split(&long), Ok(Some(StartupRequest::Cancel(req))));
    }

    #[test]
    fn malformed_packets_are_typed_errors() {
        let cases: &[(&[u8], Error)] = &[
            (b"\0\0\0\x04\0\0", Error::InvalidLength(4)),
            (
                b"\x7f\xff\xff\xff",
                Error::TooLarge {
                    len: 0x7fff_ffff,
                    limit: 10_000,
                },
            ),
            (b"\0\0\0\x08\0\x02\0\0", Error::UnknownStartupCode(0x20000)),
            (
                b"\0\0\0\x0d\0\x03\0\0user\0",
                Error::MissingNul("StartupMessage"),
            ),
            (
                b"\0\0\0\x0a\0\x03\0\0\0x",
                Error::TrailingBytes("StartupMessage"),
            ),
            (
                b"\0\0\0\x09\x04\xd2\x16\x2fx",
                Error::TrailingBytes("SSLRequest"),
            ),
            (
                b"\0\0\0\x0e\x04\xd2\x16\x2e\0\0\0\x07ab",
                Error::Truncated("CancelRequest"),
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(split(bytes).as_ref(), Err(want), "{bytes:?}");
        }
    }

    #[test]
    fn partial_packet_needs_more() {
        assert_eq!(split(b"\0\0\0\x1d\0\x03"), Ok(None));
        assert_eq!(split(b"\0\0"), Ok(None));
    }

    fn cstr() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(1u8..=255, 1..20).prop_map(Bytes::from)
    }

    proptest! {
        #[test]
        fn startup_round_trips(params in proptest::collection::vec((cstr(), cstr()), 0..8),
                               minor in 0u32..3) {
            let msg = StartupRequest::Startup(Startup { version: ProtocolVersion(PROTOCOL_3_0 + minor), params });
            let mut buf = BytesMut::new();
            msg.encode(&mut buf).unwrap();
            prop_assert_eq!(split(&buf), Ok(Some(msg)));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = split(&bytes);
        }
    }
}
