//! MySQL connection-phase packets: the server greeting (HandshakeV10), the client's
//! HandshakeResponse41 (or SSLRequest) and AuthSwitchRequest. Whatever parses encodes, and the
//! encoding is stable: encode(parse(encode(m))) == encode(m) (a pre-4.1 greeting, say, is
//! written in the 4.1 layout once, then stays as it is).
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use muxql::mysql::handshake::{AuthSwitchRequest, ClientHello, HandshakeV10};

/// Asserts that a value re-encodes to the same bytes after one trip through the parser.
macro_rules! stable {
    ($value:expr, $parse:expr, $encode:expr) => {{
        let mut first = BytesMut::new();
        if $encode(&$value, &mut first) {
            let again = $parse(&first.clone().freeze()).expect("an encoding parses");
            let mut second = BytesMut::new();
            assert!($encode(&again, &mut second), "a reparsed value encodes");
            assert_eq!(first, second);
        }
    }};
}

fuzz_target!(|data: &[u8]| {
    let payload = Bytes::copy_from_slice(data);
    if let Ok(hello) = HandshakeV10::parse(&payload) {
        stable!(
            hello,
            HandshakeV10::parse,
            |h: &HandshakeV10, out: &mut BytesMut| h.encode(out).is_ok()
        );
    }
    if let Ok(ClientHello::Response(response)) = ClientHello::parse(&payload) {
        let hello = ClientHello::Response(response);
        stable!(
            hello,
            ClientHello::parse,
            |h: &ClientHello, out: &mut BytesMut| match h {
                ClientHello::Response(r) => r.encode(out).is_ok(),
                ClientHello::Ssl(s) => {
                    s.encode(out);
                    true
                }
            }
        );
    }
    if let Ok(switch) = AuthSwitchRequest::parse(&payload) {
        stable!(
            switch,
            AuthSwitchRequest::parse,
            |s: &AuthSwitchRequest, out: &mut BytesMut| s.encode(out).is_ok()
        );
    }
});
