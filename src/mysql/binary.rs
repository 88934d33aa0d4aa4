//! Binary protocol values (Binary Protocol Value), column types and NULL bitmaps. A result row's
//! NULL bitmap has a 2-bit offset; the COM_STMT_EXECUTE one has none.

use bytes::{BufMut, Bytes, BytesMut};

use super::cursor::Cursor;
use super::lenenc;
use crate::wire::Error;

/// Column/parameter types (`enum_field_types`).
#[allow(missing_docs)]
pub mod column_type {
    pub const MYSQL_TYPE_DECIMAL: u8 = 0;
    pub const MYSQL_TYPE_TINY: u8 = 1;
    pub const MYSQL_TYPE_SHORT: u8 = 2;
    pub const MYSQL_TYPE_LONG: u8 = 3;
    pub const MYSQL_TYPE_FLOAT: u8 = 4;
    pub const MYSQL_TYPE_DOUBLE: u8 = 5;
    pub const MYSQL_TYPE_NULL: u8 = 6;
    pub const MYSQL_TYPE_TIMESTAMP: u8 = 7;
    pub const MYSQL_TYPE_LONGLONG: u8 = 8;
    pub const MYSQL_TYPE_INT24: u8 = 9;
    pub const MYSQL_TYPE_DATE: u8 = 10;
    pub const MYSQL_TYPE_TIME: u8 = 11;
    pub const MYSQL_TYPE_DATETIME: u8 = 12;
    pub const MYSQL_TYPE_YEAR: u8 = 13;
    pub const MYSQL_TYPE_NEWDATE: u8 = 14;
    pub const MYSQL_TYPE_VARCHAR: u8 = 15;
    pub const MYSQL_TYPE_BIT: u8 = 16;
    pub const MYSQL_TYPE_TIMESTAMP2: u8 = 17;
    pub const MYSQL_TYPE_DATETIME2: u8 = 18;
    pub const MYSQL_TYPE_TIME2: u8 = 19;
    pub const MYSQL_TYPE_VECTOR: u8 = 242;
    pub const MYSQL_TYPE_JSON: u8 = 245;
    pub const MYSQL_TYPE_NEWDECIMAL: u8 = 246;
    pub const MYSQL_TYPE_ENUM: u8 = 247;
    pub const MYSQL_TYPE_SET: u8 = 248;
    pub const MYSQL_TYPE_TINY_BLOB: u8 = 249;
    pub const MYSQL_TYPE_MEDIUM_BLOB: u8 = 250;
    pub const MYSQL_TYPE_LONG_BLOB: u8 = 251;
    pub const MYSQL_TYPE_BLOB: u8 = 252;
    pub const MYSQL_TYPE_VAR_STRING: u8 = 253;
    pub const MYSQL_TYPE_STRING: u8 = 254;
    pub const MYSQL_TYPE_GEOMETRY: u8 = 255;
}

use column_type::*;

/// Bit offset of the NULL bitmap in binary result rows.
pub const RESULT_ROW_NULL_OFFSET: usize = 2;
/// Bit offset of the NULL bitmap in COM_STMT_EXECUTE.
pub const EXECUTE_NULL_OFFSET: usize = 0;

/// Bytes of a NULL bitmap for `n` values at bit `offset`.
pub fn null_bitmap_len(n: usize, offset: usize) -> usize {
    n.saturating_add(offset).saturating_add(7) / 8
}

/// True when value `i` is NULL in `bitmap` (bits beyond the bitmap read as not NULL).
pub fn is_null(bitmap: &[u8], i: usize, offset: usize) -> bool {
    let bit = i.saturating_add(offset);
    bitmap
        .get(bit / 8)
        .is_some_and(|b| b & (1 << (bit % 8)) != 0)
}

/// Builds a NULL bitmap for `nulls` at bit `offset`.
pub fn put_null_bitmap(out: &mut BytesMut, nulls: &[bool], offset: usize) {
    let mut bitmap = vec![0u8; null_bitmap_len(nulls.len(), offset)];
    for (i, _) in nulls.iter().enumerate().filter(|(_, n)| **n) {
        let bit = i + offset;
        if let Some(b) = bitmap.get_mut(bit / 8) {
            *b |= 1 << (bit % 8);
        }
    }
    out.put_slice(&bitmap);
}

/// A DATE/DATETIME/TIMESTAMP value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DateTime {
    /// Year.
    pub year: u16,
    /// Month.
    pub month: u8,
    /// Day.
    pub day: u8,
    /// Hour.
    pub hour: u8,
    /// Minute.
    pub minute: u8,
    /// Second.
    pub second: u8,
    /// Microseconds.
    pub micros: u32,
}

/// A TIME value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Time {
    /// Negative interval.
    pub negative: bool,
    /// Days.
    pub days: u32,
    /// Hours.
    pub hours: u8,
    /// Minutes.
    pub minutes: u8,
    /// Seconds.
    pub seconds: u8,
    /// Microseconds.
    pub micros: u32,
}

/// A binary protocol value. Integers keep their raw bits; signedness is the column's flag.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL (from the bitmap, or MYSQL_TYPE_NULL).
    Null,
    /// MYSQL_TYPE_TINY.
    Tiny(u8),
    /// MYSQL_TYPE_SHORT, MYSQL_TYPE_YEAR.
    Short(u16),
    /// MYSQL_TYPE_LONG, MYSQL_TYPE_INT24.
    Long(u32),
    /// MYSQL_TYPE_LONGLONG.
    LongLong(u64),
    /// MYSQL_TYPE_FLOAT.
    Float(f32),
    /// MYSQL_TYPE_DOUBLE.
    Double(f64),
    /// MYSQL_TYPE_DATE, MYSQL_TYPE_DATETIME, MYSQL_TYPE_TIMESTAMP.
    DateTime(DateTime),
    /// MYSQL_TYPE_TIME.
    Time(Time),
    /// Every length-encoded type (strings, blobs, decimals, JSON...).
    Bytes(Bytes),
}

impl Value {
    /// Reads one non-NULL value of `column_type`.
    pub(crate) fn read(c: &mut Cursor<'_>, column_type: u8) -> Result<Value, Error> {
        Ok(match column_type {
            MYSQL_TYPE_NULL => Value::Null,
            MYSQL_TYPE_TINY => Value::Tiny(c.u8()?),
            MYSQL_TYPE_SHORT | MYSQL_TYPE_YEAR => Value::Short(c.u16()?),
            MYSQL_TYPE_LONG | MYSQL_TYPE_INT24 => Value::Long(c.u32()?),
            MYSQL_TYPE_LONGLONG => Value::LongLong(c.u64()?),
            MYSQL_TYPE_FLOAT => Value::Float(f32::from_le_bytes(c.array()?)),
            MYSQL_TYPE_DOUBLE => Value::Double(f64::from_le_bytes(c.array()?)),
            MYSQL_TYPE_DATE | MYSQL_TYPE_DATETIME | MYSQL_TYPE_TIMESTAMP => {
                let n = c.u8()?;
                let mut d = DateTime::default();
                if !matches!(n, 0 | 4 | 7 | 11) {
                    return Err(Error::InvalidValue("binary DATETIME length"));
                }
                if n >= 4 {
                    d.year = c.u16()?;
                    d.month = c.u8()?;
                    d.day = c.u8()?;
                }
                if n >= 7 {
                    d.hour = c.u8()?;
                    d.minute = c.u8()?;
                    d.second = c.u8()?;
                }
                if n == 11 {
                    d.micros = c.u32()?;
                }
                Value::DateTime(d)
            }
            MYSQL_TYPE_TIME => {
                let n = c.u8()?;
                let mut t = Time::default();
                if !matches!(n, 0 | 8 | 12) {
                    return Err(Error::InvalidValue("binary TIME length"));
                }
                if n >= 8 {
                    t.negative = match c.u8()? {
                        0 => false,
                        1 => true,
                        _ => return Err(Error::InvalidValue("binary TIME sign")),
                    };
                    t.days = c.u32()?;
                    t.hours = c.u8()?;
                    t.minutes = c.u8()?;
                    t.seconds = c.u8()?;
                }
                if n == 12 {
                    t.micros = c.u32()?;
                }
                Value::Time(t)
            }
            _ => Value::Bytes(c.lenenc_bytes()?),
        })
    }

    /// Appends this value (nothing for NULL: the bitmap carries it).
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Value::Null => {}
            Value::Tiny(v) => out.put_u8(*v),
            Value::Short(v) => out.put_u16_le(*v),
            Value::Long(v) => out.put_u32_le(*v),
            Value::LongLong(v) => out.put_u64_le(*v),
            Value::Float(v) => out.put_f32_le(*v),
            Value::Double(v) => out.put_f64_le(*v),
            Value::DateTime(d) => {
                let n: u8 = if d.micros != 0 {
                    11
                } else if d.hour != 0 || d.minute != 0 || d.second != 0 {
                    7
                } else if d.year != 0 || d.month != 0 || d.day != 0 {
                    4
                } else {
                    0
                };
                out.put_u8(n);
                if n >= 4 {
                    out.put_u16_le(d.year);
                    out.put_u8(d.month);
                    out.put_u8(d.day);
                }
                if n >= 7 {
                    out.put_slice(&[d.hour, d.minute, d.second]);
                }
                if n == 11 {
                    out.put_u32_le(d.micros);
                }
            }
            Value::Time(t) => {
                let n: u8 = if t.micros != 0 {
                    12
                } else if *t != Time::default() {
                    8
                } else {
                    0
                };
                out.put_u8(n);
                if n >= 8 {
                    out.put_u8(u8::from(t.negative));
                    out.put_u32_le(t.days);
                    out.put_slice(&[t.hours, t.minutes, t.seconds]);
                }
                if n == 12 {
                    out.put_u32_le(t.micros);
                }
            }
            Value::Bytes(b) => lenenc::put_bytes(out, b),
        }
    }

    /// The column type this value encodes as.
    pub fn column_type(&self) -> u8 {
        match self {
            Value::Null => MYSQL_TYPE_NULL,
            Value::Tiny(_) => MYSQL_TYPE_TINY,
            Value::Short(_) => MYSQL_TYPE_SHORT,
            Value::Long(_) => MYSQL_TYPE_LONG,
            Value::LongLong(_) => MYSQL_TYPE_LONGLONG,
            Value::Float(_) => MYSQL_TYPE_FLOAT,
            Value::Double(_) => MYSQL_TYPE_DOUBLE,
            Value::DateTime(_) => MYSQL_TYPE_DATETIME,
            Value::Time(_) => MYSQL_TYPE_TIME,
            Value::Bytes(_) => MYSQL_TYPE_VAR_STRING,
        }
    }
}

/// Header byte of a binary result row.
pub const BINARY_ROW_HEADER: u8 = 0x00;

/// Parses a binary result row given its columns' types.
pub fn parse_binary_row(payload: &Bytes, column_types: &[u8]) -> Result<Vec<Value>, Error> {
    let mut c = Cursor::new(payload, "binary row");
    if c.u8()? != BINARY_ROW_HEADER {
        return Err(Error::Unexpected("non-row packet"));
    }
    let bitmap = c.bytes(null_bitmap_len(column_types.len(), RESULT_ROW_NULL_OFFSET))?;
    let mut values = Vec::with_capacity(column_types.len());
    for (i, &t) in column_types.iter().enumerate() {
        if is_null(&bitmap, i, RESULT_ROW_NULL_OFFSET) {
            values.push(Value::Null);
        } else {
            values.push(Value::read(&mut c, t)?);
        }
    }
    c.finish()?;
    Ok(values)
}

/// Appends a binary result row; each value is written as its own [`Value::column_type`].
pub fn encode_binary_row(out: &mut BytesMut, values: &[Value]) {
    out.put_u8(BINARY_ROW_HEADER);
    let nulls: Vec<bool> = values.iter().map(|v| *v == Value::Null).collect();
    put_null_bitmap(out, &nulls, RESULT_ROW_NULL_OFFSET);
    for v in values {
        v.encode(out);
    }
}

/// Parses a text result row: each column a `string<lenenc>` or 0xFB for NULL.
pub fn parse_text_row(payload: &Bytes, columns: usize) -> Result<Vec<Option<Bytes>>, Error> {
    let mut c = Cursor::new(payload, "text row");
    let mut values = Vec::with_capacity(columns.min(payload.len()));
    for _ in 0..columns {
        if c.peek() == Some(lenenc::LENENC_NULL) {
            c.skip(1)?;
            values.push(None);
        } else {
            values.push(Some(c.lenenc_bytes()?));
        }
    }
    c.finish()?;
    Ok(values)
}

/// Appends a text result row.
pub fn encode_text_row(out: &mut BytesMut, values: &[Option<Bytes>]) {
    for v in values {
        match v {
            Some(b) => lenenc::put_bytes(out, b),
            None => out.put_u8(lenenc::LENENC_NULL),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn any_value() -> impl Strategy<Value = Value> {
        let dt = (
            any::<u16>(),
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            any::<u32>(),
        )
            .prop_map(|(year, month, day, hour, minute, second, micros)| {
                Value::DateTime(DateTime {
                    year,
                    month,
                    day,
                    hour,
                    minute,
                    second,
                    micros,
                })
            });
        let t = (
            any::<bool>(),
            any::<u32>(),
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            any::<u32>(),
        )
            .prop_map(|(negative, days, hours, minutes, seconds, micros)| {
                Value::Time(Time {
                    negative,
                    days,
                    hours,
                    minutes,
                    seconds,
                    micros,
                })
            });
        prop_oneof![
            Just(Value::Null),
            any::<u8>().prop_map(Value::Tiny),
            any::<u16>().prop_map(Value::Short),
            any::<u32>().prop_map(Value::Long),
            any::<u64>().prop_map(Value::LongLong),
            (-1e30f32..1e30).prop_map(Value::Float),
            (-1e300f64..1e300).prop_map(Value::Double),
            dt,
            t,
            proptest::collection::vec(any::<u8>(), 0..300)
                .prop_map(|v| Value::Bytes(Bytes::from(v))),
        ]
    }

    #[test]
    fn spec_example_binary_row() {
        // Binary Protocol Resultset Row example: 00 00 06 66 6f 62 61 72 (one string "foobar").
        let row = Bytes::from_static(b"\x00\x00\x06foobar");
        assert_eq!(
            parse_binary_row(&row, &[MYSQL_TYPE_VAR_STRING]).unwrap(),
            vec![Value::Bytes(Bytes::from_static(b"foobar"))]
        );
        // NULL in the third column: bit 2 + 2 = 4 of the bitmap.
        let row = Bytes::from_static(b"\x00\x10\x01\x02");
        assert_eq!(
            parse_binary_row(&row, &[MYSQL_TYPE_TINY, MYSQL_TYPE_TINY, MYSQL_TYPE_TINY]).unwrap(),
            vec![Value::Tiny(1), Value::Tiny(2), Value::Null]
        );
    }

    proptest! {
        #[test]
        fn binary_row_round_trip(values in proptest::collection::vec(any_value(), 0..20)) {
            let mut out = BytesMut::new();
            encode_binary_row(&mut out, &values);
            let types: Vec<u8> = values.iter().map(Value::column_type).collect();
            prop_assert_eq!(parse_binary_row(&out.freeze(), &types).unwrap(), values);
        }

        #[test]
        fn text_row_round_trip(values in proptest::collection::vec(proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from)), 0..20)) {
            let mut out = BytesMut::new();
            encode_text_row(&mut out, &values);
            prop_assert_eq!(parse_text_row(&out.freeze(), values.len()).unwrap(), values);
        }

        #[test]
        fn bitmap_round_trip(nulls in proptest::collection::vec(any::<bool>(), 0..70), offset in 0usize..3) {
            let mut out = BytesMut::new();
            put_null_bitmap(&mut out, &nulls, offset);
            prop_assert_eq!(out.len(), null_bitmap_len(nulls.len(), offset));
            for (i, n) in nulls.iter().enumerate() {
                prop_assert_eq!(is_null(&out, i, offset), *n);
            }
        }
    }
}
