//! DataRow: validated once, then read lazily from the frame's bytes.

use bytes::{BufMut, Bytes, BytesMut};

use crate::pg::frame::encode_frame;
use crate::pg::reader::Reader;
use crate::pg::writer::{put_count, put_value};
use crate::wire::Error;

use super::tag;

/// Bytes of the column count at the start of a DataRow body.
const COUNT_LEN: usize = 2;

/// A zero-copy DataRow: keeps the body and yields columns on demand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRow {
    body: Bytes,
    len: u16,
}

impl DataRow {
    /// Validates a DataRow body: the column count, then each Int32 length (-1 for NULL) and
    /// value, with no byte left over. No allocation.
    pub fn parse(body: Bytes) -> Result<Self, Error> {
        let mut r = Reader::new(body.clone(), "DataRow");
        let n = r.count()?;
        for _ in 0..n {
            r.value()?;
        }
        r.finish()?;
        let len = u16::try_from(n).map_err(|_| Error::InvalidValue("DataRow column count"))?;
        Ok(DataRow { body, len })
    }

    /// Builds a row from column values; `None` is NULL.
    pub fn from_values<'a>(
        values: impl IntoIterator<Item = Option<&'a [u8]>>,
    ) -> Result<Self, Error> {
        let mut body = BytesMut::new();
        body.put_u16(0);
        let mut n = 0usize;
        for v in values {
            put_value(&mut body, v)?;
            n += 1;
        }
        let mut count = BytesMut::new();
        put_count(&mut count, n, "DataRow column count")?;
        body[..COUNT_LEN].copy_from_slice(&count);
        let len = u16::try_from(n).map_err(|_| Error::EncodeOverflow("DataRow column count"))?;
        Ok(DataRow {
            body: body.freeze(),
            len,
        })
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.len.into()
    }

    /// Whether the row has no column.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The raw body (column count and columns).
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The columns in order; `None` is NULL.
    pub fn iter(&self) -> DataRowIter<'_> {
        DataRowIter {
            row: self,
            pos: COUNT_LEN,
            left: self.len,
        }
    }

    /// Appends the encoded frame to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), Error> {
        encode_frame(dst, tag::DATA_ROW, |w| {
            w.put_slice(&self.body);
            Ok(())
        })
    }
}

/// Iterator over the columns of a [`DataRow`].
#[derive(Debug, Clone)]
pub struct DataRowIter<'a> {
    row: &'a DataRow,
    pos: usize,
    left: u16,
}

impl Iterator for DataRowIter<'_> {
    type Item = Option<Bytes>;

    fn next(&mut self) -> Option<Self::Item> {
        self.left = self.left.checked_sub(1)?;
        let body = &self.row.body;
        let len_bytes = body.get(self.pos..self.pos + 4)?;
        let len = i32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        self.pos += 4;
        let Ok(len) = usize::try_from(len) else {
            return Some(None);
        };
        let end = self.pos.checked_add(len).filter(|&e| e <= body.len())?;
        let value = body.slice(self.pos..end);
        self.pos = end;
        Some(Some(value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left.into()))
    }
}
