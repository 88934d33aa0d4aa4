//! A zero-copy reader over one message body.
//!
//! Fixed-width fields are parsed with nom; strings and byte runs are returned as slices of the
//! body's [`Bytes`], so a typed view shares the read buffer instead of copying it. Every error
//! names the message being read.

use bytes::Bytes;
use nom::bytes::complete::take_until;
use nom::number::complete::{be_i16, be_i32, be_i8, be_u16, be_u32, be_u8};
use nom::IResult;

use crate::wire::Error;

/// Cursor over a message body.
pub(crate) struct Reader {
    buf: Bytes,
    pos: usize,
    msg: &'static str,
}

impl Reader {
    /// A reader over `buf`, the body of a message named `msg` in errors.
    pub(crate) fn new(buf: Bytes, msg: &'static str) -> Self {
        Reader { buf, pos: 0, msg }
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// A capacity for `count` elements of at least `min_size` bytes each, bounded by the bytes
    /// actually present so that no allocation follows a declared count.
    pub(crate) fn capacity(&self, count: usize, min_size: usize) -> usize {
        count.min(self.remaining() / min_size.max(1))
    }

    fn unread(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    fn fixed<T, P>(&mut self, parser: P) -> Result<T, Error>
    where
        P: Fn(&[u8]) -> IResult<&[u8], T>,
    {
        let (rest, value) = parser(self.unread()).map_err(|_| Error::Truncated(self.msg))?;
        self.pos = self.buf.len() - rest.len();
        Ok(value)
    }

    /// Reads a Byte1.
    pub(crate) fn u8(&mut self) -> Result<u8, Error> {
        self.fixed(|i| be_u8(i))
    }

    /// Reads a signed Int8.
    pub(crate) fn i8(&mut self) -> Result<i8, Error> {
        self.fixed(|i| be_i8(i))
    }

    /// Reads an Int16 as signed (format codes, column numbers, type sizes).
    pub(crate) fn i16(&mut self) -> Result<i16, Error> {
        self.fixed(|i| be_i16(i))
    }

    /// Reads an Int16 count. PostgreSQL reads counts as unsigned (`pq_getmsgint(.., 2)`), so up
    /// to 65535 parameters are legal.
    pub(crate) fn count(&mut self) -> Result<usize, Error> {
        self.fixed(|i| be_u16(i)).map(usize::from)
    }

    /// Reads an Int32 as signed.
    pub(crate) fn i32(&mut self) -> Result<i32, Error> {
        self.fixed(|i| be_i32(i))
    }

    /// Reads an Int32 as unsigned (OIDs, process ids, codes).
    pub(crate) fn u32(&mut self) -> Result<u32, Error> {
        self.fixed(|i| be_u32(i))
    }

    /// Reads a NUL-terminated String, returned without its NUL.
    pub(crate) fn cstr(&mut self) -> Result<Bytes, Error> {
        let (_, s) = take_until::<_, _, nom::error::Error<&[u8]>>(&b"\0"[..])(self.unread())
            .map_err(|_| Error::MissingNul(self.msg))?;
        let start = self.pos;
        let end = start + s.len();
        self.pos = end + 1;
        Ok(self.buf.slice(start..end))
    }

    /// Reads `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<Bytes, Error> {
        if self.remaining() < n {
            return Err(Error::Truncated(self.msg));
        }
        let start = self.pos;
        self.pos += n;
        Ok(self.buf.slice(start..self.pos))
    }

    /// Reads an Int32 length and that many bytes; length -1 is NULL, other negatives are errors.
    pub(crate) fn value(&mut self) -> Result<Option<Bytes>, Error> {
        match self.i32()? {
            -1 => Ok(None),
            len => {
                let n = usize::try_from(len).map_err(|_| Error::InvalidValue("value length"))?;
                self.bytes(n).map(Some)
            }
        }
    }

    /// Reads everything left.
    pub(crate) fn rest(&mut self) -> Bytes {
        let start = self.pos;
        self.pos = self.buf.len();
        self.buf.slice(start..)
    }

    /// Fails with [`Error::TrailingBytes`] unless the whole body was read.
    pub(crate) fn finish(self) -> Result<(), Error> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(Error::TrailingBytes(self.msg))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_zero_copy() {
        let body = Bytes::from_static(b"ab\0\0\x01\xff\xff\xff\xff\0\0\0\x02hix");
        let mut r = Reader::new(body.clone(), "Test");
        let s = r.cstr().unwrap();
        assert_eq!(&s[..], b"ab");
        assert_eq!(s.as_ptr(), body.as_ptr());
        assert_eq!(r.count(), Ok(1));
        assert_eq!(r.value(), Ok(None));
        assert_eq!(r.value(), Ok(Some(Bytes::from_static(b"hi"))));
        assert_eq!(r.remaining(), 1);
        assert_eq!(r.finish(), Err(Error::TrailingBytes("Test")));
    }

    #[test]
    fn typed_errors() {
        let mut r = Reader::new(Bytes::from_static(b"ab"), "Test");
        assert_eq!(r.cstr(), Err(Error::MissingNul("Test")));
        assert_eq!(r.u32(), Err(Error::Truncated("Test")));
        let mut r = Reader::new(Bytes::from_static(b"\xff\xff\xff\xfe"), "Test");
        assert_eq!(r.value(), Err(Error::InvalidValue("value length")));
        let mut r = Reader::new(Bytes::from_static(b"\0\0\0\x05ab"), "Test");
        assert_eq!(r.value(), Err(Error::Truncated("Test")));
    }

    #[test]
    fn capacity_is_bounded_by_the_bytes_present() {
        let r = Reader::new(Bytes::from_static(b"12345678"), "Test");
        assert_eq!(r.capacity(65_535, 4), 2);
        assert_eq!(r.capacity(1, 4), 1);
    }
}
