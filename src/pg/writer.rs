//! Encoding helpers: every length and count is range-checked, never wrapped.

use bytes::{BufMut, BytesMut};

use crate::wire::Error;

/// Appends `s` and a NUL; a string containing NUL cannot be encoded.
pub(crate) fn put_cstr(dst: &mut BytesMut, s: &[u8], what: &'static str) -> Result<(), Error> {
    if s.contains(&0) {
        return Err(Error::InvalidValue(what));
    }
    dst.put_slice(s);
    dst.put_u8(0);
    Ok(())
}

/// Appends an Int16 count (PostgreSQL reads counts as unsigned 16-bit).
pub(crate) fn put_count(dst: &mut BytesMut, n: usize, what: &'static str) -> Result<(), Error> {
    dst.put_u16(u16::try_from(n).map_err(|_| Error::EncodeOverflow(what))?);
    Ok(())
}

/// Appends an Int32 length and the bytes, or length -1 for NULL.
pub(crate) fn put_value(dst: &mut BytesMut, value: Option<&[u8]>) -> Result<(), Error> {
    match value {
        None => dst.put_i32(-1),
        Some(v) => {
            dst.put_i32(i32::try_from(v.len()).map_err(|_| Error::EncodeOverflow("value length"))?);
            dst.put_slice(v);
        }
    }
    Ok(())
}

/// Appends a count then each Int16.
pub(crate) fn put_i16s(dst: &mut BytesMut, v: &[i16], what: &'static str) -> Result<(), Error> {
    put_count(dst, v.len(), what)?;
    v.iter().for_each(|&x| dst.put_i16(x));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_does_not_fit() {
        let mut d = BytesMut::new();
        assert_eq!(
            put_cstr(&mut d, b"a\0b", "x"),
            Err(Error::InvalidValue("x"))
        );
        assert_eq!(
            put_count(&mut d, 65_536, "x"),
            Err(Error::EncodeOverflow("x"))
        );
        put_count(&mut d, 65_535, "x").unwrap();
        put_value(&mut d, None).unwrap();
        assert_eq!(&d[..], b"\xff\xff\xff\xff\xff\xff");
    }
}
