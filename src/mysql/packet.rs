//! Packet framing (Protocol Basics: MySQL Packets): a 3-byte little-endian payload length, a
//! 1-byte sequence id, the payload. A logical payload of 0xFFFFFF bytes or more is split into
//! 0xFFFFFF-byte packets followed by one shorter packet, which is empty when the payload is an
//! exact multiple of 0xFFFFFF.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::wire::{Error, Limits};

/// Largest payload of one physical packet; a packet this long is continued by the next one.
pub const MAX_PACKET_PAYLOAD: usize = 0xFF_FFFF;
/// Size of the packet header.
pub const HEADER_LEN: usize = 4;

/// The header of one physical packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketHeader {
    /// Payload length of this physical packet (0..=0xFFFFFF).
    pub len: usize,
    /// Sequence id.
    pub seq: u8,
}

impl PacketHeader {
    /// Reads a header from the start of `buf`, or `None` when fewer than 4 bytes are there.
    #[inline]
    pub fn peek(buf: &[u8]) -> Option<PacketHeader> {
        match buf {
            [a, b, c, seq, ..] => Some(PacketHeader {
                len: usize::from(*a) | usize::from(*b) << 8 | usize::from(*c) << 16,
                seq: *seq,
            }),
            _ => None,
        }
    }

    /// True when the next physical packet continues this one's logical payload.
    #[inline]
    pub fn is_continued(&self) -> bool {
        self.len == MAX_PACKET_PAYLOAD
    }

    /// Appends this header.
    pub fn write(&self, out: &mut BytesMut) -> Result<(), Error> {
        if self.len > MAX_PACKET_PAYLOAD {
            return Err(Error::EncodeOverflow("packet length"));
        }
        out.put_slice(&(self.len as u32).to_le_bytes()[..3]);
        out.put_u8(self.seq);
        Ok(())
    }
}

/// One logical packet: the joined payload and the sequence id of its first physical packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Sequence id of the first physical packet.
    pub seq: u8,
    /// The logical payload (zero-copy when it fit in one physical packet).
    pub payload: Bytes,
}

/// Where the next logical packet ends, as [`PacketCodec`] found it.
struct FrameScan {
    /// Bytes on the wire, headers included.
    wire_len: usize,
    /// Bytes of payload.
    payload_len: usize,
    /// Physical packets.
    chunks: usize,
    /// The sequence id after its last physical packet.
    next_seq: u8,
}

/// Incremental decoder of logical packets with sequence checking and a payload limit.
#[derive(Debug, Clone)]
pub struct PacketCodec {
    max_payload: usize,
    next_seq: u8,
}

impl PacketCodec {
    /// A decoder whose logical payloads may not exceed `limits.max_message`; the first packet
    /// must carry sequence id `first_seq`.
    pub fn new(limits: Limits, first_seq: u8) -> Self {
        PacketCodec {
            max_payload: limits.max_message,
            next_seq: first_seq,
        }
    }

    /// A decoder for the pre-authentication phase, capped at `limits.max_startup`.
    pub fn pre_auth(limits: Limits) -> Self {
        PacketCodec {
            max_payload: limits.max_startup,
            next_seq: 0,
        }
    }

    /// Changes the payload cap (for example once authentication succeeded).
    pub fn set_max_payload(&mut self, max_payload: usize) {
        self.max_payload = max_payload;
    }

    /// The sequence id the next packet must carry.
    pub fn next_seq(&self) -> u8 {
        self.next_seq
    }

    /// Sets the expected sequence id (0 at the start of each command).
    pub fn set_next_seq(&mut self, seq: u8) {
        self.next_seq = seq;
    }

    /// The wire length of the complete logical packet at the front of `buf` (headers
    /// included), without consuming it; `Ok(None)` when more bytes are needed. The same checks
    /// as [`PacketCodec::parse`] apply.
    pub fn frame_len(&self, buf: &[u8]) -> Result<Option<usize>, Error> {
        Ok(self.scan_frame(buf)?.map(|f| f.wire_len))
    }

    /// Walks the physical packets of the next logical one, checking sequence ids and the size
    /// limit on each header.
    fn scan_frame(&self, buf: &[u8]) -> Result<Option<FrameScan>, Error> {
        let mut offset = 0usize;
        let mut total = 0usize;
        let mut chunks = 0usize;
        let mut seq = self.next_seq;
        loop {
            let Some(h) = buf.get(offset..).and_then(PacketHeader::peek) else {
                return Ok(None);
            };
            if h.seq != seq {
                return Err(Error::BadSequence {
                    got: h.seq,
                    expected: seq,
                });
            }
            total = total.saturating_add(h.len);
            if total > self.max_payload {
                return Err(Error::TooLarge {
                    len: total as u64,
                    limit: self.max_payload as u64,
                });
            }
            let end = offset + HEADER_LEN + h.len;
            if buf.len() < end {
                return Ok(None);
            }
            chunks += 1;
            offset = end;
            seq = seq.wrapping_add(1);
            if !h.is_continued() {
                return Ok(Some(FrameScan {
                    wire_len: offset,
                    payload_len: total,
                    chunks,
                    next_seq: seq,
                }));
            }
        }
    }

    /// Cuts the next complete logical packet off `buf`. `Ok(None)` means more bytes are needed
    /// (nothing is consumed). Lengths and sequence ids are checked on each header as soon as it
    /// arrives, before the body is buffered.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, Error> {
        // Fast path: one complete, in-sequence, uncontinued packet within the limit.
        if let Some(h) = PacketHeader::peek(buf) {
            if h.seq == self.next_seq
                && h.len < MAX_PACKET_PAYLOAD
                && h.len <= self.max_payload
                && buf.len() >= HEADER_LEN + h.len
            {
                buf.advance(HEADER_LEN);
                let seq = self.next_seq;
                self.next_seq = seq.wrapping_add(1);
                return Ok(Some(Packet {
                    seq,
                    payload: buf.split_to(h.len).freeze(),
                }));
            }
        }
        let Some(FrameScan {
            wire_len: offset,
            payload_len: total,
            chunks,
            next_seq,
        }) = self.scan_frame(buf)?
        else {
            return Ok(None);
        };
        let first_seq = self.next_seq;
        self.next_seq = next_seq;
        let payload = if chunks == 1 {
            buf.advance(HEADER_LEN);
            buf.split_to(total).freeze()
        } else {
            let mut joined = BytesMut::with_capacity(total);
            let mut frames = buf.split_to(offset);
            while let Some(h) = PacketHeader::peek(&frames) {
                frames.advance(HEADER_LEN);
                joined.put_slice(frames.get(..h.len).unwrap_or_default());
                frames.advance(h.len.min(frames.len()));
            }
            joined.freeze()
        };
        Ok(Some(Packet {
            seq: first_seq,
            payload,
        }))
    }
}

/// Appends `payload` as one logical packet starting at sequence id `*seq`, split per spec;
/// `*seq` is advanced past the last physical packet written.
pub fn write_packet(out: &mut BytesMut, seq: &mut u8, payload: &[u8]) -> Result<(), Error> {
    let mut rest = payload;
    loop {
        let n = rest.len().min(MAX_PACKET_PAYLOAD);
        let (chunk, tail) = rest.split_at(n);
        out.reserve(HEADER_LEN + n);
        PacketHeader { len: n, seq: *seq }.write(out)?;
        out.put_slice(chunk);
        *seq = seq.wrapping_add(1);
        rest = tail;
        if n < MAX_PACKET_PAYLOAD {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn codec() -> PacketCodec {
        PacketCodec::new(Limits::default(), 0)
    }

    #[test]
    fn spec_example_com_quit() {
        // Protocol Basics example: COM_QUIT is `01 00 00 00 01`.
        let mut buf = BytesMut::from(&[0x01, 0x00, 0x00, 0x00, 0x01][..]);
        let p = codec().parse(&mut buf).unwrap().unwrap();
        assert_eq!(p.seq, 0);
        assert_eq!(&p.payload[..], &[0x01]);
        assert!(buf.is_empty());
    }

    #[test]
    fn exact_multiple_ends_with_empty_packet() {
        let payload = vec![7u8; MAX_PACKET_PAYLOAD];
        let mut out = BytesMut::new();
        let mut seq = 0;
        write_packet(&mut out, &mut seq, &payload).unwrap();
        assert_eq!(seq, 2);
        assert_eq!(out.len(), 2 * HEADER_LEN + MAX_PACKET_PAYLOAD);
        assert_eq!(&out[out.len() - 4..], &[0, 0, 0, 1]);
        let p = codec().parse(&mut out).unwrap().unwrap();
        assert_eq!(p.payload.len(), MAX_PACKET_PAYLOAD);
        assert!(out.is_empty());
    }

    #[test]
    fn split_and_join_large_payload() {
        let payload: Vec<u8> = (0..2 * MAX_PACKET_PAYLOAD + 10).map(|i| i as u8).collect();
        let mut out = BytesMut::new();
        let mut seq = 255;
        write_packet(&mut out, &mut seq, &payload).unwrap();
        assert_eq!(seq, 2);
        let mut c = PacketCodec::new(Limits::default(), 255);
        let mut partial = out.split_to(out.len() - 1);
        assert_eq!(c.parse(&mut partial).unwrap(), None);
        partial.unsplit(out);
        let p = c.parse(&mut partial).unwrap().unwrap();
        assert_eq!(p.seq, 255);
        assert_eq!(&p.payload[..], &payload[..]);
        assert_eq!(c.next_seq(), 2);
    }

    #[test]
    fn limit_is_checked_on_the_header() {
        let mut c = PacketCodec::new(Limits::with_max_message(100), 0);
        let mut buf = BytesMut::from(&[101, 0, 0, 0][..]);
        assert!(matches!(
            c.parse(&mut buf),
            Err(Error::TooLarge { len: 101, .. })
        ));
        let mut c = PacketCodec::new(Limits::with_max_message(MAX_PACKET_PAYLOAD), 0);
        let mut buf = BytesMut::from(&[0xFF, 0xFF, 0xFF, 0][..]);
        buf.extend_from_slice(&vec![0; MAX_PACKET_PAYLOAD]);
        buf.extend_from_slice(&[1, 0, 0, 1]);
        assert!(matches!(c.parse(&mut buf), Err(Error::TooLarge { .. })));
    }

    #[test]
    fn bad_sequence_is_an_error() {
        let mut buf = BytesMut::from(&[1, 0, 0, 3, 0x0e][..]);
        assert_eq!(
            codec().parse(&mut buf),
            Err(Error::BadSequence {
                got: 3,
                expected: 0
            })
        );
        let mut c = codec();
        let mut buf = BytesMut::from(&[0xFF, 0xFF, 0xFF, 0][..]);
        buf.extend_from_slice(&vec![0; MAX_PACKET_PAYLOAD]);
        buf.extend_from_slice(&[0, 0, 0, 5]);
        assert_eq!(
            c.parse(&mut buf),
            Err(Error::BadSequence {
                got: 5,
                expected: 1
            })
        );
    }

    proptest! {
        #[test]
        fn round_trip(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..8), first in any::<u8>(), cut in any::<prop::sample::Index>()) {
            let mut out = BytesMut::new();
            let mut seq = first;
            for p in &payloads {
                write_packet(&mut out, &mut seq, p).unwrap();
            }
            let all = out.clone();
            let mut c = PacketCodec::new(Limits::default(), first);
            // Feed in two pieces at an arbitrary point: nothing is lost or duplicated.
            let at = cut.index(all.len() + 1);
            let mut buf = BytesMut::from(&all[..at]);
            let mut got = Vec::new();
            while let Some(p) = c.parse(&mut buf).unwrap() { got.push(p.payload.to_vec()); }
            buf.extend_from_slice(&all[at..]);
            while let Some(p) = c.parse(&mut buf).unwrap() { got.push(p.payload.to_vec()); }
            prop_assert_eq!(got, payloads);
            prop_assert!(buf.is_empty());
        }
    }
}
