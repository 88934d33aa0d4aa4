//! Framing of typed messages: a one-byte type, an Int32 length that counts itself, a body.
//!
//! Protocol docs, "Message Formats": the length includes the four length bytes but not the type
//! byte, so every valid length is at least 4. Headers are validated (type byte first, then
//! length against [`Limits`]) before any byte of a body is buffered.

use bytes::{Buf, Bytes, BytesMut};

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

    /// The body, consuming the frame (no reference-count traffic).
    pub fn into_body(self) -> Bytes {
        let mut bytes = self.bytes;
        bytes.advance(HEADER_LEN);
        bytes
    }
}

/// A run of complete frames cut from a read buffer as one [`Bytes`]: forward it whole with
/// [`as_bytes`](Self::as_bytes), or iterate its frames.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameRun {
    bytes: Bytes,
    pos: usize,
}

impl FrameRun {
    /// The frames not yet iterated, as they were on the wire.
    pub fn as_bytes(&self) -> Bytes {
        self.bytes.slice(self.pos..)
    }

    /// Whether no frame is left.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// Borrowed views of the frames not yet iterated, with no reference-count traffic.
    pub fn iter(&self) -> FrameRefs<'_> {
        FrameRefs {
            rest: self.bytes.get(self.pos..).unwrap_or_default(),
            offset: self.pos,
        }
    }

    /// The owned frame behind a borrowed one taken from this run's [`iter`](Self::iter);
    /// `None` for a view of another buffer.
    pub fn to_frame(&self, frame: &FrameRef<'_>) -> Option<Frame> {
        let end = frame.offset.checked_add(frame.bytes.len())?;
        let same = self.bytes.get(frame.offset..end)?;
        std::ptr::eq(same.as_ptr(), frame.bytes.as_ptr())
            .then(|| Frame::from_validated(self.bytes.slice(frame.offset..end)))
    }
}

/// A frame borrowed from a [`FrameRun`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRef<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> FrameRef<'a> {
    /// The message type byte.
    pub fn tag(&self) -> u8 {
        self.bytes.first().copied().unwrap_or_default()
    }

    /// The body after the length field.
    pub fn body(&self) -> &'a [u8] {
        self.bytes.get(HEADER_LEN..).unwrap_or_default()
    }

    /// The whole frame as it was on the wire.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

/// Iterator over the frames of a [`FrameRun`], borrowed.
#[derive(Debug, Clone)]
pub struct FrameRefs<'a> {
    rest: &'a [u8],
    offset: usize,
}

impl<'a> Iterator for FrameRefs<'a> {
    type Item = FrameRef<'a>;

    fn next(&mut self) -> Option<FrameRef<'a>> {
        let (_, after_tag) = self.rest.split_first()?;
        let (len, _) = after_tag.split_first_chunk::<4>()?;
        let frame_len = usize::try_from(u32::from_be_bytes(*len))
            .ok()?
            .checked_add(1)?;
        if frame_len > self.rest.len() {
            return None;
        }
        let (bytes, rest) = self.rest.split_at(frame_len);
        let frame = FrameRef {
            bytes,
            offset: self.offset,
        };
        self.rest = rest;
        self.offset += frame_len;
        Some(frame)
    }
}

impl Iterator for FrameRun {
    type Item = Frame;

    fn next(&mut self) -> Option<Frame> {
        let len = self.bytes.get(self.pos + 1..self.pos + HEADER_LEN)?;
        let declared = u32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        let end = usize::try_from(declared)
            .ok()?
            .checked_add(self.pos + 1)
            .filter(|&e| e <= self.bytes.len())?;
        let frame = Frame::from_validated(self.bytes.slice(self.pos..end));
        self.pos = end;
        Some(frame)
    }
}

/// Cuts every complete frame at the front of `buf` as one run, in one split.
///
/// Headers are validated as in [`split_frame`]. A bad header after at least one good frame
/// ends the run; it is reported by the next call, when it is first in `buf`.
pub fn split_frames(
    buf: &mut BytesMut,
    dir: Direction,
    limits: &Limits,
) -> Result<FrameRun, Error> {
    let mut end = 0;
    while let Some(rest) = buf.get(end..) {
        match peek_header(rest, dir, limits) {
            Ok(Some(h)) if rest.len() >= h.frame_len => end += h.frame_len,
            Ok(_) => break,
            Err(e) if end == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(FrameRun {
        bytes: buf.split_to(end).freeze(),
        pos: 0,
    })
}

/// Message types the frontend may send (protocol 3.0 and 3.2).
const FRONTEND_TAGS: &[u8] = b"BCdcfDEHFPpQSX";
/// Message types the backend may send (protocol 3.0 and 3.2).
const BACKEND_TAGS: &[u8] = b"RK23CdcGHWDIEVvnNAtS1sZT";
/// Frontend messages PostgreSQL caps at [`MAX_SMALL_MESSAGE`].
const SMALL_FRONTEND_TAGS: &[u8] = b"SHCDEXcf";

/// A 256-entry membership table, so a header check is one load.
const fn table(tags: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < tags.len() {
        t[tags[i] as usize] = true;
        i += 1;
    }
    t
}

static FRONTEND: [bool; 256] = table(FRONTEND_TAGS);
static BACKEND: [bool; 256] = table(BACKEND_TAGS);
static SMALL_FRONTEND: [bool; 256] = table(SMALL_FRONTEND_TAGS);

/// Whether `tag` is a message type the frontend may send (protocol 3.0 and 3.2).
pub fn is_frontend_tag(tag: u8) -> bool {
    FRONTEND[usize::from(tag)]
}

/// Whether `tag` is a message type the backend may send (protocol 3.0 and 3.2).
pub fn is_backend_tag(tag: u8) -> bool {
    BACKEND[usize::from(tag)]
}

/// Whether a frontend message of type `tag` is one PostgreSQL caps at [`MAX_SMALL_MESSAGE`].
fn is_small_frontend_tag(tag: u8) -> bool {
    SMALL_FRONTEND[usize::from(tag)]
}

/// Reads and validates the header at the start of `buf`.
///
/// Returns `Ok(None)` when fewer than [`HEADER_LEN`] bytes are present. The type byte is
/// checked before the length is trusted.
#[inline]
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
    fn split_frames_cuts_complete_frames_in_one_run() {
        let mut buf = BytesMut::from(&b"S\0\0\0\x04Q\0\0\0\x05xH\0\0\0\x04Q\0\0"[..]);
        let run = split_frames(&mut buf, Direction::Frontend, &limits()).unwrap();
        assert_eq!(&run.as_bytes()[..], b"S\0\0\0\x04Q\0\0\0\x05xH\0\0\0\x04");
        let borrowed: Vec<_> = run.iter().map(|f| (f.tag(), f.body())).collect();
        assert_eq!(
            borrowed,
            vec![(b'S', &b""[..]), (b'Q', &b"x"[..]), (b'H', &b""[..])]
        );
        let q = run.iter().nth(1).unwrap();
        assert_eq!(
            run.to_frame(&q).map(|f| f.into_body()),
            Some(Bytes::from_static(b"x"))
        );
        let other = BytesMut::from(&run.as_bytes()[..]);
        let foreign = FrameRefs {
            rest: &other,
            offset: 0,
        }
        .next()
        .unwrap();
        assert_eq!(run.to_frame(&foreign), None);
        let tags: Vec<_> = run.map(|f| (f.tag(), f.into_body())).collect();
        assert_eq!(
            tags,
            vec![
                (b'S', Bytes::new()),
                (b'Q', Bytes::from_static(b"x")),
                (b'H', Bytes::new())
            ]
        );
        assert_eq!(&buf[..], b"Q\0\0");
        // A bad header ends the run and is reported once it comes first.
        let mut buf = BytesMut::from(&b"S\0\0\0\x04Z\0\0\0\x04"[..]);
        assert_eq!(
            split_frames(&mut buf, Direction::Frontend, &limits())
                .unwrap()
                .count(),
            1
        );
        assert_eq!(
            split_frames(&mut buf, Direction::Frontend, &limits()),
            Err(Error::UnknownMessageType(b'Z'))
        );
    }

    #[test]
    fn tag_tables_match_the_tag_lists() {
        for b in 0..=255u8 {
            assert_eq!(is_frontend_tag(b), FRONTEND_TAGS.contains(&b), "{b}");
            assert_eq!(is_backend_tag(b), BACKEND_TAGS.contains(&b), "{b}");
            assert_eq!(
                is_small_frontend_tag(b),
                SMALL_FRONTEND_TAGS.contains(&b),
                "{b}"
            );
        }
        assert_eq!((FRONTEND_TAGS.len(), BACKEND_TAGS.len()), (14, 24));
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
