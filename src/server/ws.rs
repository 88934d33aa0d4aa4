//! WebSocket (RFC 6455) for clients that cannot open raw TCP (serverless and edge runtimes):
//! the HTTP upgrade, then binary messages carrying the raw wire bytes of the listener's
//! protocol, whose boundaries mean nothing (as `@neondatabase/serverless` uses it). Sans-I/O:
//! bytes in, plaintext for the engine and bytes to send back out.
//!
//! Any path is accepted and query strings are ignored (a client never picks its upstream;
//! routing is by database and user as for TCP). Compression (permessage-deflate) is declined.
//! Text frames are refused with close code 1003, frames over `max_message` with 1009, protocol
//! errors (unmasked, reserved bits, bad fragmentation) with 1002. Pings are answered at once,
//! and a close is answered with a close, after which the connection ends.

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use sha1::{Digest, Sha1};

/// Largest HTTP upgrade request accepted.
const MAX_REQUEST: usize = 8 * 1024;
/// The GUID of RFC 6455 section 1.3, appended to the client's key.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Close codes (RFC 6455 section 7.4.1).
const NORMAL: u16 = 1000;
const PROTOCOL_ERROR: u16 = 1002;
const UNSUPPORTED_DATA: u16 = 1003;
const TOO_BIG: u16 = 1009;

/// Opcodes.
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// What decoding some input produced.
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    /// Wire bytes of the listener's protocol, for the engine.
    pub(crate) data: BytesMut,
    /// Bytes to send back as they are (the upgrade response, pongs, a close frame).
    pub(crate) reply: BytesMut,
    /// The connection ends once `reply` is sent.
    pub(crate) close: bool,
}

/// The frame being read.
#[derive(Debug)]
struct Frame {
    opcode: u8,
    fin: bool,
    mask: [u8; 4],
    /// Payload bytes read so far.
    read: u64,
    len: u64,
}

/// One WebSocket connection, server side.
#[derive(Debug)]
pub(crate) struct WebSocket {
    /// Bytes of the upgrade request, until it is complete; `None` once upgraded.
    request: Option<BytesMut>,
    /// Bytes of a frame header not complete yet.
    head: BytesMut,
    frame: Option<Frame>,
    /// Payload of the control frame being read.
    control: BytesMut,
    /// A fragmented binary message is being read.
    in_message: bool,
    /// What the engine sent before the upgrade was answered.
    early: BytesMut,
    closed: bool,
    max_message: usize,
}

impl WebSocket {
    /// A connection that has sent nothing yet; messages over `max_message` bytes are refused.
    pub(crate) fn new(max_message: usize) -> Self {
        WebSocket {
            request: Some(BytesMut::new()),
            head: BytesMut::new(),
            frame: None,
            control: BytesMut::new(),
            in_message: false,
            early: BytesMut::new(),
            closed: false,
            max_message,
        }
    }

    /// Frames engine output as one binary message (held until the upgrade is answered).
    pub(crate) fn encode(&mut self, data: &[u8]) -> Option<Bytes> {
        if self.closed || data.is_empty() {
            return None;
        }
        if self.request.is_some() {
            self.early.extend_from_slice(data);
            return None;
        }
        let mut out = BytesMut::with_capacity(data.len() + 10);
        put_frame(&mut out, BINARY, data);
        Some(out.freeze())
    }

    /// Takes bytes read from the client.
    pub(crate) fn decode(&mut self, mut input: &[u8], out: &mut Decoded) {
        if let Some(request) = self.request.as_mut() {
            request.extend_from_slice(input);
            let Some(end) = find(request, b"\r\n\r\n") else {
                if request.len() > MAX_REQUEST {
                    refuse(out, "431 Request Header Fields Too Large", "");
                    self.closed = true;
                }
                return;
            };
            let head = request.split_to(end + 4);
            let rest = request.split();
            match upgrade(&head) {
                Ok(accept) => {
                    out.reply.extend_from_slice(
                        format!(
                            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                             Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                        )
                        .as_bytes(),
                    );
                    self.request = None;
                    if !self.early.is_empty() {
                        let early = self.early.split();
                        put_frame(&mut out.reply, BINARY, &early);
                    }
                    self.decode(&rest, out);
                }
                Err((status, extra)) => {
                    refuse(out, status, extra);
                    self.closed = true;
                }
            }
            return;
        }
        while !input.is_empty() && !self.closed {
            let Some(frame) = self.frame.as_mut() else {
                let take = input.len().min(14 - self.head.len());
                self.head.extend_from_slice(&input[..take]);
                match parse_head(&self.head) {
                    Head::Incomplete => input = &[],
                    Head::Bad(code, why) => return self.fail(out, code, why),
                    Head::Frame(frame, used) => {
                        // Bytes of the header buffer past the header belong to the payload.
                        let extra = self.head.len() - used;
                        input = &input[take - extra..];
                        self.head.clear();
                        if let Err((code, why)) = self.start(&frame) {
                            return self.fail(out, code, why);
                        }
                        if frame.len == 0 {
                            // Nothing to read: complete now (a close or ping without payload).
                            self.finish(&frame, out);
                        } else {
                            self.frame = Some(frame);
                        }
                    }
                }
                continue;
            };
            let want = usize::try_from(frame.len - frame.read).unwrap_or(usize::MAX);
            let n = want.min(input.len());
            let offset = frame.read;
            frame.read += n as u64;
            let sink = if frame.opcode >= CLOSE {
                &mut self.control
            } else {
                &mut out.data
            };
            let start = sink.len();
            sink.extend_from_slice(&input[..n]);
            for (i, b) in sink[start..].iter_mut().enumerate() {
                *b ^= frame.mask[((offset + i as u64) % 4) as usize];
            }
            input = &input[n..];
            if frame.read == frame.len {
                let done = self.frame.take();
                if let Some(done) = done {
                    self.finish(&done, out);
                }
            }
        }
    }

    /// Checks a new frame against the message state.
    fn start(&mut self, frame: &Frame) -> Result<(), (u16, &'static str)> {
        match frame.opcode {
            TEXT => Err((UNSUPPORTED_DATA, "text frames are not accepted")),
            BINARY if self.in_message => Err((PROTOCOL_ERROR, "a message inside a message")),
            CONTINUATION if !self.in_message => Err((PROTOCOL_ERROR, "a continuation of nothing")),
            BINARY | CONTINUATION if frame.len > self.max_message as u64 => {
                Err((TOO_BIG, "message too big"))
            }
            BINARY | CONTINUATION => {
                self.in_message = !frame.fin;
                Ok(())
            }
            CLOSE | PING | PONG if !frame.fin || frame.len > 125 => {
                Err((PROTOCOL_ERROR, "bad control frame"))
            }
            CLOSE | PING | PONG => Ok(()),
            _ => Err((PROTOCOL_ERROR, "unknown opcode")),
        }
    }

    /// A frame is complete: answers a control frame.
    fn finish(&mut self, frame: &Frame, out: &mut Decoded) {
        let payload = self.control.split();
        match frame.opcode {
            PING => put_frame(&mut out.reply, PONG, &payload),
            CLOSE => {
                // Answer with the code received (none: none), then end the connection.
                let code = payload.get(..2).unwrap_or_default();
                put_frame(&mut out.reply, CLOSE, code);
                out.close = true;
                self.closed = true;
            }
            _ => {}
        }
    }

    /// Closes the connection with `code`.
    fn fail(&mut self, out: &mut Decoded, code: u16, why: &str) {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(why.as_bytes());
        put_frame(&mut out.reply, CLOSE, &payload);
        out.close = true;
        self.closed = true;
    }

    /// A close frame to send when the server ends the connection (`None` once closed or before
    /// the upgrade).
    pub(crate) fn goodbye(&mut self) -> Option<Bytes> {
        if self.closed || self.request.is_some() {
            return None;
        }
        self.closed = true;
        let mut out = BytesMut::new();
        put_frame(&mut out, CLOSE, &NORMAL.to_be_bytes());
        Some(out.freeze())
    }
}

/// What a frame header holds, if it is complete.
enum Head {
    Incomplete,
    Bad(u16, &'static str),
    /// The frame and the header's length.
    Frame(Frame, usize),
}

fn parse_head(h: &[u8]) -> Head {
    let (Some(&b0), Some(&b1)) = (h.first(), h.get(1)) else {
        return Head::Incomplete;
    };
    if b0 & 0x70 != 0 {
        return Head::Bad(
            PROTOCOL_ERROR,
            "reserved bits set (no extension was agreed)",
        );
    }
    if b1 & 0x80 == 0 {
        return Head::Bad(PROTOCOL_ERROR, "client frames must be masked");
    }
    let (len, at) = match b1 & 0x7f {
        126 => match h.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Head::Incomplete,
        },
        127 => match h.get(2..10) {
            Some(b) => (u64::from_be_bytes(b.try_into().unwrap_or_default()), 10),
            None => return Head::Incomplete,
        },
        n => (u64::from(n), 2),
    };
    let Some(mask) = h.get(at..at + 4) else {
        return Head::Incomplete;
    };
    Head::Frame(
        Frame {
            opcode: b0 & 0x0f,
            fin: b0 & 0x80 != 0,
            mask: [mask[0], mask[1], mask[2], mask[3]],
            read: 0,
            len,
        },
        at + 4,
    )
}

/// Appends a server frame (unmasked, FIN set).
fn put_frame(out: &mut BytesMut, opcode: u8, payload: &[u8]) {
    out.put_u8(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.put_u8(n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.put_u8(126);
            out.put_u16(n as u16);
        }
        n => {
            out.put_u8(127);
            out.put_u64(n as u64);
        }
    }
    out.put_slice(payload);
}

/// An HTTP error answer to a request that is not a usable upgrade.
fn refuse(out: &mut Decoded, status: &str, extra: &str) {
    out.reply.extend_from_slice(
        format!("HTTP/1.1 {status}\r\n{extra}Connection: close\r\nContent-Length: 0\r\n\r\n")
            .as_bytes(),
    );
    out.close = true;
}

/// Checks an upgrade request (RFC 6455 section 4.2.1); returns the Sec-WebSocket-Accept value,
/// or the status line and headers of the refusal.
fn upgrade(head: &[u8]) -> Result<String, (&'static str, &'static str)> {
    let bad = ("400 Bad Request", "");
    let text = std::str::from_utf8(head).map_err(|_| bad)?;
    let mut lines = text.split("\r\n");
    let request = lines.next().ok_or(bad)?;
    let mut parts = request.split(' ');
    if parts.next() != Some("GET") || !parts.next().is_some_and(|p| p.starts_with('/')) {
        return Err(bad);
    }
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(bad);
    }
    let (mut upgrade, mut connection, mut version, mut key) = (false, false, None, None);
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(bad)?;
        let value = value.trim();
        let has = |token: &str| {
            value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "upgrade" => upgrade |= has("websocket"),
            "connection" => connection |= has("upgrade"),
            "sec-websocket-version" => version = Some(value),
            "sec-websocket-key" => key = Some(value),
            _ => {}
        }
    }
    if !upgrade || !connection {
        return Err(("426 Upgrade Required", "Upgrade: websocket\r\n"));
    }
    if version != Some("13") {
        return Err(("426 Upgrade Required", "Sec-WebSocket-Version: 13\r\n"));
    }
    let key = key.ok_or(bad)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(key)
        .map_err(|_| bad)?;
    if decoded.len() != 16 {
        return Err(bad);
    }
    let mut hash = Sha1::new();
    hash.update(key.as_bytes());
    hash.update(GUID);
    Ok(base64::engine::general_purpose::STANDARD.encode(hash.finalize()))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: &[u8] = b"GET /v2?address=whatever HTTP/1.1\r\nHost: example\r\n\
        Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n";

    /// A masked client frame.
    fn client_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mask = [1, 2, 3, 4];
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    fn upgraded() -> WebSocket {
        let mut ws = WebSocket::new(1 << 20);
        let mut out = Decoded::default();
        ws.decode(REQUEST, &mut out);
        assert!(out
            .reply
            .starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
        ws
    }

    /// The example of RFC 6455 section 1.3; compression is not agreed to.
    #[test]
    fn the_upgrade_is_answered_with_the_rfc_example_key() {
        let mut ws = WebSocket::new(1 << 20);
        let mut out = Decoded::default();
        ws.decode(REQUEST, &mut out);
        let reply = String::from_utf8(out.reply.to_vec()).unwrap();
        assert!(
            reply.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
            "{reply}"
        );
        assert!(!reply.contains("Extensions"), "{reply}");
        assert!(!out.close);
    }

    #[test]
    fn engine_output_before_the_upgrade_follows_the_answer() {
        let mut ws = WebSocket::new(1 << 20);
        assert_eq!(ws.encode(b"greeting"), None);
        let mut out = Decoded::default();
        ws.decode(REQUEST, &mut out);
        assert!(out.reply.ends_with(b"\x82\x08greeting"));
        assert_eq!(ws.encode(b"more").as_deref(), Some(&b"\x82\x04more"[..]));
    }

    #[test]
    fn binary_fragments_arrive_byte_by_byte_as_one_stream() {
        let mut ws = upgraded();
        let mut wire = client_frame(BINARY, false, b"hello ");
        wire.extend(client_frame(PING, true, b"p"));
        wire.extend(client_frame(CONTINUATION, true, b"world"));
        let mut out = Decoded::default();
        for b in wire {
            ws.decode(&[b], &mut out);
        }
        assert_eq!(&out.data[..], b"hello world");
        assert_eq!(&out.reply[..], b"\x8a\x01p", "the ping is answered");
        assert!(!out.close);
    }

    #[test]
    fn a_close_is_answered_and_ends_the_connection() {
        let mut ws = upgraded();
        let mut out = Decoded::default();
        ws.decode(&client_frame(CLOSE, true, &1000u16.to_be_bytes()), &mut out);
        assert_eq!(&out.reply[..], b"\x88\x02\x03\xe8");
        assert!(out.close);
        // Also without a payload (no status code).
        let mut ws = upgraded();
        let mut out = Decoded::default();
        ws.decode(&client_frame(CLOSE, true, b""), &mut out);
        assert_eq!(&out.reply[..], b"\x88\x00");
        assert!(out.close);
    }

    #[test]
    fn text_unmasked_and_oversized_frames_are_refused_with_their_codes() {
        let code = |wire: &[u8], max: usize| {
            let mut ws = WebSocket::new(max);
            let mut out = Decoded::default();
            ws.decode(REQUEST, &mut out);
            let mut out = Decoded::default();
            ws.decode(wire, &mut out);
            assert!(out.close);
            u16::from_be_bytes([out.reply[2], out.reply[3]])
        };
        assert_eq!(code(&client_frame(TEXT, true, b"SELECT 1"), 1 << 20), 1003);
        assert_eq!(code(&[0x82, 0x01, b'x'], 1 << 20), 1002, "unmasked");
        assert_eq!(code(&client_frame(BINARY, true, &[0; 300]), 200), 1009);
        assert_eq!(code(&client_frame(CONTINUATION, true, b"x"), 1 << 20), 1002);
    }

    #[test]
    fn requests_that_are_not_upgrades_are_refused() {
        for (request, status) in [
            (&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], "426"),
            (&b"POST / HTTP/1.1\r\n\r\n"[..], "400"),
            (
                &b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
                    [..],
                "426",
            ),
        ] {
            let mut ws = WebSocket::new(1 << 20);
            let mut out = Decoded::default();
            ws.decode(request, &mut out);
            assert!(out.close);
            let reply = String::from_utf8(out.reply.to_vec()).unwrap();
            assert!(reply.starts_with(&format!("HTTP/1.1 {status}")), "{reply}");
        }
    }
}
