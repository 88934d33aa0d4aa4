//! Allocation-free looks into message bodies for the relay's hot path.
//!
//! Only what routing needs is read (names, kinds, statuses); a malformed body that routing
//! does not depend on is passed on for the server to reject.

/// Splits a NUL-terminated string off the front of `body`: `(string, rest)`.
pub(crate) fn cstr(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let nul = body.iter().position(|&b| b == 0)?;
    Some((&body[..nul], &body[nul + 1..]))
}

/// The first string of a body (statement name of Parse, portal of Bind, SQL of Query).
pub(crate) fn first_cstr(body: &[u8]) -> Option<&[u8]> {
    cstr(body).map(|(s, _)| s)
}

/// The statement name of a Bind body (its second string).
pub(crate) fn bind_statement(body: &[u8]) -> Option<&[u8]> {
    let (_, rest) = cstr(body)?;
    first_cstr(rest)
}

/// The kind byte and name of a Describe or Close body.
pub(crate) fn target(body: &[u8]) -> Option<(u8, &[u8])> {
    let (&kind, rest) = body.split_first()?;
    Some((kind, first_cstr(rest)?))
}

/// The value of field `code` in an ErrorResponse or NoticeResponse body.
pub(crate) fn error_field(body: &[u8], code: u8) -> Option<&[u8]> {
    let mut rest = body;
    while let Some((&c, tail)) = rest.split_first() {
        if c == 0 {
            return None;
        }
        let (value, next) = cstr(tail)?;
        if c == code {
            return Some(value);
        }
        rest = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names() {
        assert_eq!(first_cstr(b"s1\0select\0"), Some(&b"s1"[..]));
        assert_eq!(bind_statement(b"p\0s1\0\0\0"), Some(&b"s1"[..]));
        assert_eq!(target(b"Sname\0"), Some((b'S', &b"name"[..])));
        assert_eq!(first_cstr(b"no nul"), None);
        assert_eq!(bind_statement(b"p\0"), None);
        assert_eq!(target(b""), None);
    }

    #[test]
    fn reads_error_fields() {
        let body = b"SERROR\0C0A000\0Mcached plan must not change result type\0\0";
        assert_eq!(error_field(body, b'C'), Some(&b"0A000"[..]));
        assert_eq!(error_field(body, b'D'), None);
        assert_eq!(error_field(b"Cx", b'C'), None);
    }
}
