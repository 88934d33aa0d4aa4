//! DataRow: validated once, then read lazily from the frame's bytes.

use bytes::{BufMut, Bytes, BytesMut};

use crate::pg::frame::encode_frame;
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
        let len = validate(&body)?;
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
            body: &self.body,
            columns: Columns::new(&self.body, self.len),
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

/// Walks a DataRow body without slicing it (the hot path: no reference-count traffic).
fn validate(body: &[u8]) -> Result<u16, Error> {
    const MSG: &str = "DataRow";
    let (count, mut rest) = body
        .split_first_chunk::<COUNT_LEN>()
        .ok_or(Error::Truncated(MSG))?;
    let n = u16::from_be_bytes(*count);
    for _ in 0..n {
        let (len, tail) = rest.split_first_chunk::<4>().ok_or(Error::Truncated(MSG))?;
        rest = match i32::from_be_bytes(*len) {
            -1 => tail,
            len => {
                let len = usize::try_from(len).map_err(|_| Error::InvalidValue("value length"))?;
                tail.get(len..).ok_or(Error::Truncated(MSG))?
            }
        };
    }
    if !rest.is_empty() {
        return Err(Error::TrailingBytes(MSG));
    }
    Ok(n)
}

/// Walks the columns of a validated body: yields each column's byte range, `None` for NULL.
#[derive(Debug, Clone)]
struct Columns<'a> {
    body: &'a [u8],
    pos: usize,
    left: u16,
}

impl<'a> Columns<'a> {
    fn new(body: &'a [u8], len: u16) -> Self {
        Columns {
            body,
            pos: COUNT_LEN,
            left: len,
        }
    }
}

impl Iterator for Columns<'_> {
    type Item = Option<std::ops::Range<usize>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.left = self.left.checked_sub(1)?;
        let (len, _) = self.body.get(self.pos..)?.split_first_chunk::<4>()?;
        self.pos += 4;
        let Ok(len) = usize::try_from(i32::from_be_bytes(*len)) else {
            return Some(None);
        };
        let start = self.pos;
        self.pos = start.checked_add(len).filter(|&e| e <= self.body.len())?;
        Some(Some(start..self.pos))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left.into()))
    }
}

/// Iterator over the columns of a [`DataRow`], as slices of its body.
#[derive(Debug, Clone)]
pub struct DataRowIter<'a> {
    body: &'a Bytes,
    columns: Columns<'a>,
}

impl Iterator for DataRowIter<'_> {
    type Item = Option<Bytes>;

    fn next(&mut self) -> Option<Self::Item> {
        let col = self.columns.next()?;
        Some(col.map(|r| self.body.slice(r)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.columns.size_hint()
    }
}

/// A DataRow borrowed from a read buffer (see [`FrameRun::iter`](crate::pg::frame::FrameRun::iter)):
/// validated like [`DataRow`], with no reference-count traffic at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataRowRef<'a> {
    body: &'a [u8],
    len: u16,
}

impl<'a> DataRowRef<'a> {
    /// Validates a DataRow body as [`DataRow::parse`] does.
    pub fn parse(body: &'a [u8]) -> Result<Self, Error> {
        let len = validate(body)?;
        Ok(DataRowRef { body, len })
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.len.into()
    }

    /// Whether the row has no column.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The columns in order; `None` is NULL.
    pub fn iter(&self) -> impl Iterator<Item = Option<&'a [u8]>> + 'a {
        let body = self.body;
        Columns::new(body, self.len).map(move |c| c.and_then(|r| body.get(r)))
    }
}
