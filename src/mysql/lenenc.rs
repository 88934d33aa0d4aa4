//! Length-encoded integers and strings (Basic Data Types: `int<lenenc>`, `string<lenenc>`), and
//! the small checked writers every encoder uses.

use bytes::{BufMut, BytesMut};

use crate::wire::Error;

/// First byte of a lenenc value meaning SQL NULL in a text row (and LOCAL INFILE as the first
/// byte of a COM_QUERY response).
pub const LENENC_NULL: u8 = 0xFB;

/// Decodes an `int<lenenc>` at the start of `buf`: `Ok(Some((value, bytes used)))`,
/// `Ok(None)` when `buf` is too short, `Err` for the NULL marker 0xFB and the invalid 0xFF.
pub fn decode_int(buf: &[u8]) -> Result<Option<(u64, usize)>, Error> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let width = match first {
        0..=0xFA => return Ok(Some((u64::from(first), 1))),
        0xFC => 2,
        0xFD => 3,
        0xFE => 8,
        _ => return Err(Error::InvalidValue("length-encoded integer")),
    };
    let Some(body) = buf.get(1..=width) else {
        return Ok(None);
    };
    let mut le = [0u8; 8];
    le.get_mut(..width)
        .ok_or(Error::InvalidValue("length-encoded integer"))?
        .copy_from_slice(body);
    Ok(Some((u64::from_le_bytes(le), width + 1)))
}

/// Number of bytes `put_int` writes for `v`.
pub fn int_len(v: u64) -> usize {
    match v {
        0..=0xFA => 1,
        0xFB..=0xFFFF => 3,
        0x1_0000..=0xFF_FFFF => 4,
        _ => 9,
    }
}

/// Appends `v` as an `int<lenenc>` (shortest form).
pub fn put_int(out: &mut BytesMut, v: u64) {
    match v {
        0..=0xFA => out.put_u8(v as u8),
        0xFB..=0xFFFF => {
            out.put_u8(0xFC);
            out.put_u16_le(v as u16);
        }
        0x1_0000..=0xFF_FFFF => {
            out.put_u8(0xFD);
            out.put_slice(&v.to_le_bytes()[..3]);
        }
        _ => {
            out.put_u8(0xFE);
            out.put_u64_le(v);
        }
    }
}

/// Appends a `string<lenenc>`.
pub fn put_bytes(out: &mut BytesMut, s: &[u8]) {
    put_int(out, s.len() as u64);
    out.put_slice(s);
}

/// Appends a `string<NUL>`; a NUL inside `s` cannot be encoded.
pub fn put_null_str(out: &mut BytesMut, s: &[u8], what: &'static str) -> Result<(), Error> {
    if s.contains(&0) {
        return Err(Error::InvalidValue(what));
    }
    out.put_slice(s);
    out.put_u8(0);
    Ok(())
}

/// Converts a length to a narrower wire field, failing instead of truncating.
pub fn narrow<T: TryFrom<usize>>(n: usize, what: &'static str) -> Result<T, Error> {
    T::try_from(n).map_err(|_| Error::EncodeOverflow(what))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spec_examples() {
        assert_eq!(decode_int(&[0xFA]).unwrap(), Some((250, 1)));
        assert_eq!(decode_int(&[0xFC, 0xFB, 0x00]).unwrap(), Some((251, 3)));
        assert_eq!(decode_int(&[0xFD, 1, 2, 3]).unwrap(), Some((0x030201, 4)));
        assert_eq!(
            decode_int(&[0xFE, 1, 0, 0, 0, 0, 0, 0, 0]).unwrap(),
            Some((1, 9))
        );
        assert_eq!(decode_int(&[0xFE, 1, 0]).unwrap(), None);
        assert_eq!(decode_int(&[]).unwrap(), None);
        assert!(decode_int(&[0xFB]).is_err());
        assert!(decode_int(&[0xFF]).is_err());
    }

    proptest! {
        #[test]
        fn int_round_trip(v in any::<u64>()) {
            let mut out = BytesMut::new();
            put_int(&mut out, v);
            prop_assert_eq!(out.len(), int_len(v));
            prop_assert_eq!(decode_int(&out).unwrap(), Some((v, out.len())));
            for cut in 0..out.len() {
                prop_assert_eq!(decode_int(&out[..cut]).unwrap(), None);
            }
        }
    }
}
