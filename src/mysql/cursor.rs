//! A bounds-checked reader over one logical payload, handing out zero-copy [`Bytes`] slices.

use bytes::Bytes;

use crate::wire::Error;

/// Reads fields front to back; every read checks the remaining length first.
pub(crate) struct Cursor<'a> {
    buf: &'a Bytes,
    pos: usize,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `buf`; `what` names the message in errors.
    pub(crate) fn new(buf: &'a Bytes, what: &'static str) -> Self {
        Cursor { buf, pos: 0, what }
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// True when every byte was read.
    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next byte without consuming it.
    pub(crate) fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn take_slice(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n).ok_or(Error::Truncated(self.what))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or(Error::Truncated(self.what))?;
        self.pos = end;
        Ok(s)
    }

    /// `n` bytes as a zero-copy slice.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<Bytes, Error> {
        let start = self.pos;
        self.take_slice(n)?;
        Ok(self.buf.slice(start..self.pos))
    }

    /// A fixed-size array.
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let s = self.take_slice(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// Everything left, zero-copy.
    pub(crate) fn rest(&mut self) -> Bytes {
        let start = self.pos.min(self.buf.len());
        self.pos = self.buf.len();
        self.buf.slice(start..)
    }

    /// Skips `n` bytes.
    pub(crate) fn skip(&mut self, n: usize) -> Result<(), Error> {
        self.take_slice(n).map(|_| ())
    }

    /// `int<1>`.
    pub(crate) fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.array::<1>()?[0])
    }

    /// `int<2>`, little-endian.
    pub(crate) fn u16(&mut self) -> Result<u16, Error> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    /// `int<3>`, little-endian.
    pub(crate) fn u24(&mut self) -> Result<u32, Error> {
        let [a, b, c] = self.array()?;
        Ok(u32::from_le_bytes([a, b, c, 0]))
    }

    /// `int<4>`, little-endian.
    pub(crate) fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// `int<8>`, little-endian.
    pub(crate) fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// `int<lenenc>`; NULL (0xFB) and 0xFF are invalid here.
    pub(crate) fn lenenc(&mut self) -> Result<u64, Error> {
        let first = self.u8()?;
        match first {
            0..=0xFA => Ok(u64::from(first)),
            0xFC => Ok(u64::from(self.u16()?)),
            0xFD => Ok(u64::from(self.u24()?)),
            0xFE => self.u64(),
            _ => Err(Error::InvalidValue(self.what)),
        }
    }

    /// `int<lenenc>` as a length that must fit in the rest of the payload.
    pub(crate) fn lenenc_len(&mut self) -> Result<usize, Error> {
        let n = self.lenenc()?;
        match usize::try_from(n) {
            Ok(n) if n <= self.remaining() => Ok(n),
            _ => Err(Error::Truncated(self.what)),
        }
    }

    /// `string<lenenc>`, zero-copy.
    pub(crate) fn lenenc_bytes(&mut self) -> Result<Bytes, Error> {
        let n = self.lenenc_len()?;
        self.bytes(n)
    }

    /// `string<NUL>` without its terminator, zero-copy.
    pub(crate) fn null_str(&mut self) -> Result<Bytes, Error> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let n = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(Error::MissingNul(self.what))?;
        let s = self.bytes(n)?;
        self.skip(1)?;
        Ok(s)
    }

    /// `string<NUL>`, or the rest of the payload when the terminator is missing (servers
    /// that omit the final NUL of a plugin name, as the spec notes).
    pub(crate) fn null_str_or_rest(&mut self) -> Bytes {
        match self.null_str() {
            Ok(s) => s,
            Err(_) => self.rest(),
        }
    }

    /// Errors when bytes remain.
    pub(crate) fn finish(&self) -> Result<(), Error> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Error::TrailingBytes(self.what))
        }
    }
}
