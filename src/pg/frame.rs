//! Framing of typed messages: a one-byte type, an Int32 length that counts itself, a body.
//!
//! Protocol docs, "Message Formats": the length includes the four length bytes but not the type
//! byte, so every valid length is at least 4. Headers are validated (type byte first, then
//! length against [`Limits`]) before any byte of a body is buffered.

use bytes::{Bytes, BytesMut};

use crate::wire::limits::MAX_SMALL_MESSAGE;
use crate::wire::{Error, Limits};

/// Bytes in a typed message header: type byte plus Int32 length.
pub const HEADER_LEN: usize = 5;

/// Which peer sends the stream being framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server.
    Frontend,
    /// Server to client.
    Backend,
}

/// A validated message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The message type byte.
    pub tag: u8,
    /// Length of the whole frame in bytes, type byte included.
    pub frame_len: usize,
}

/// One complete typed message: type byte, length and body, sharing the read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    bytes: Bytes,
}

impl Frame {
    /// Wraps bytes already validated as exactly one frame (by [`peek_header`]).
    pub(crate) fn from_validated(bytes: Bytes) -> Self {
        Frame { bytes }
    }

    /// Builds a frame of type `tag` around a copy of `body`, for messages muxql synthesizes.
    /// The tag is not checked against a direction.
    pub fn from_parts(tag: u8, body: &[u8]) -> Result<Self, Error> {
        let mut dst = BytesMut::with_capacity(HEADER_LEN + body.len());
        encode_frame(&mut dst, tag, |d| {
            d.extend_from_slice(body);
            Ok(())
        })?;
        Ok(Frame::from_validated(dst.freeze()))
    }

    /// The message type byte.
    pub fn tag(&self) -> u8 {
        self.bytes[0]
    }

    /// The body after the length field (zero-copy).
    pub fn body(&self) -> Bytes {
        self.bytes.slice(HEADER_LEN..)
    }

    /// The whole frame as it was on the wire.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The whole frame, consuming it.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }
}

/// Whether `tag` is a message type the frontend may send (protocol 3.0 and 3.2).
pub fn is_frontend_tag(tag: u8) -> bool {
    matches!(
        tag,
        b'B' | b'C'
            | b'd'
            | b'c'
            | b'f'
            | b'D'
            | b'E'
            | b'H'
            | b'F'
            | b'P'
            | b'p'
            | b'Q'
            | b'S'
            | b'X'
    )
}

/// Whether `tag` is a message type the backend may send (protocol 3.0 and 3.2).
pub fn is_backend_tag(tag: u8) -> bool {
    matches!(
        tag,
        b'R' | b'K'
            | b'2'
            | b'3'
            | b'C'
            | b'd'
            | b'c'
            | b'G'
            | b'H'
            | b'W'
            | b'D'
            | b'I'
            | b'E'
            | b'V'
            | b'v'
            | b'n'
            | b'N'
            | b'A'
            | b't'
            | b'S'
            | b'1'
            | b's'
            | b'Z'
            | b'T'
    )
}

/// Whether a frontend message of type `tag` is one PostgreSQL caps at [`MAX_SMALL_MESSAGE`].
fn is_small_frontend_tag(tag: u8) -> bool {
    matches!(tag, b'S' | b'H' | b'C' | b'D' | b'E' | b'X' | b'c' | b'f')
}

/// Reads and validates the header at the start of `buf`.
///
/// Returns `Ok(None)` when fewer than [`HEADER_LEN`] bytes are present. The type byte is
/// checked before the length is trusted.
pub fn peek_header(buf: &[u8], dir: Direction, limits: &Limits) -> Result<Option<Header>, Error> {
    let Some(&tag) = buf.first() else {
        return Ok(None);
    };
    let valid_tag = match dir {
        Direction::Frontend => is_frontend_tag(tag),
        Direction::Backend => is_backend_tag(tag),
    };
    if !valid_tag {
        return Err(Error::UnknownMessageType(tag));
    }
    let Some(len_bytes) = buf.get(1..HEADER_LEN) else {
        return Ok(None);
    };
    let declared = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
    if declared < 4 {
        return Err(Error::InvalidLength(declared.into()));
    }
    let body = declared as usize - 4;
    let limit = match dir {
        Direction::Frontend if is_small_frontend_tag(tag) => MAX_SMALL_MESSAGE,
        _ => limits.max_message,
    };
    if body > limit {
        return Err(Error::TooLarge {
            len: body as u64,
            limit: limit as u64,
        });
    }
    Ok(Some(Header {
        tag,
        frame_len: body + HEADER_LEN,
    }))
}

/// Cuts one complete frame off the front of `buf`, or returns `Ok(None)` when more bytes are
/// needed. The frame shares `buf`'s allocation; nothing is copied.
pub fn split_frame(
    buf: &mut BytesMut,
    dir: Direction,
    limits: &Limits,
) -> Result<Option<Frame>, Error> {
    match peek_header(buf, dir, limits)? {
        Some(h) if buf.len() >= h.frame_len => Ok(Some(Frame::from_validated(
            buf.split_to(h.frame_len).freeze(),
        ))),
        _ => Ok(None),
    }
}

/// Appends a frame with type `tag` whose body is written by `body`, filling in the length.
/// On error `dst` is left as it was.
pub fn encode_frame(
    dst: &mut BytesMut,
    tag: u8,
    body: impl FnOnce(&mut BytesMut) -> Result<(), Error>,
) -> Result<(), Error> {
    let start = dst.len();
    dst.extend_from_slice(&[tag, 0, 0, 0, 0]);
    let len = body(dst).and_then(|()| {
        u32::try_from(dst.len() - start - 1).map_err(|_| Error::EncodeOverflow("message length"))
    });
    match len {
        Ok(len) => {
            dst[start + 1..start + HEADER_LEN].copy_from_slice(&len.to_be_bytes());
            Ok(())
        }
        Err(e) => {
            dst.truncate(start);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn splits_a_sync_and_keeps_the_rest() {
        let mut buf = BytesMut::from(&b"S\0\0\0\x04Q\0\0"[..]);
        let f = split_frame(&mut buf, Direction::Frontend, &limits())
            .unwrap()
            .unwrap();
        assert_eq!(f.tag(), b'S');
        assert!(f.body().is_empty());
        assert_eq!(&buf[..], b"Q\0\0");
        assert_eq!(
            split_frame(&mut buf, Direction::Frontend, &limits()),
            Ok(None)
        );
    }

    #[test]
    fn rejects_bad_headers_before_buffering() {
        let cases: &[(&[u8], Direction, Error)] = &[
            (
                b"Z\0\0\0\x05I",
                Direction::Frontend,
                Error::UnknownMessageType(b'Z'),
            ),
            (b"Q\0\0\0\x03", Direction::Frontend, Error::InvalidLength(3)),
            (b"Q\0\0\0\0", Direction::Frontend, Error::InvalidLength(0)),
            (
                b"S\0\0\x27\x15",
                Direction::Frontend,
                Error::TooLarge {
                    len: 10_001,
                    limit: 10_000,
                },
            ),
            (
                b"D\x7f\xff\xff\xff",
                Direction::Backend,
                Error::TooLarge {
                    len: 0x7fff_fffb,
                    limit: 64 << 20,
                },
            ),
            (
                b"Q\0\0\0\x04",
                Direction::Backend,
                Error::UnknownMessageType(b'Q'),
            ),
        ];
        for (bytes, dir, want) in cases {
            let mut buf = BytesMut::from(*bytes);
            assert_eq!(
                split_frame(&mut buf, *dir, &limits()).as_ref(),
                Err(want),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn partial_header_needs_more() {
        let mut buf = BytesMut::from(&b"Q\0\0"[..]);
        assert_eq!(
            split_frame(&mut buf, Direction::Frontend, &limits()),
            Ok(None)
        );
    }

    #[test]
    fn encode_fills_the_length() {
        let mut dst = BytesMut::new();
        encode_frame(&mut dst, b'Q', |d| {
            d.extend_from_slice(b"select 1\0");
            Ok(())
        })
        .unwrap();
        assert_eq!(&dst[..], b"Q\0\0\0\x0dselect 1\0");
    }

    proptest::proptest! {
        #[test]
        fn encode_then_split_round_trips(tag in proptest::sample::select(b"BdDPQF".to_vec()),
                                         body in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let mut dst = BytesMut::new();
            encode_frame(&mut dst, tag, |d| { d.extend_from_slice(&body); Ok(()) }).unwrap();
            let f = split_frame(&mut dst, Direction::Frontend, &limits()).unwrap().unwrap();
            proptest::prop_assert_eq!(f.tag(), tag);
            proptest::prop_assert_eq!(&f.body()[..], &body[..]);
            proptest::prop_assert!(dst.is_empty());
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let mut buf = BytesMut::from(&bytes[..]);
            let _ = split_frame(&mut buf, Direction::Backend, &limits());
            let _ = split_frame(&mut buf, Direction::Frontend, &limits());
        }
    }
}
