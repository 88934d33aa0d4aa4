//! The fields of ErrorResponse and NoticeResponse.
//!
//! Protocol docs, "Error and Notice Message Fields": every field is optional, including the
//! SQLSTATE, and unknown field codes must be ignored, so nothing here assumes a field exists.

use bytes::{BufMut, Bytes, BytesMut};

use crate::pg::frame::encode_frame;
use crate::pg::reader::Reader;
use crate::pg::writer::put_cstr;
use crate::wire::Error;

/// Field type codes.
pub mod code {
    /// Severity, possibly localized.
    pub const SEVERITY: u8 = b'S';
    /// Severity, never localized (9.6+).
    pub const SEVERITY_NONLOCALIZED: u8 = b'V';
    /// SQLSTATE code.
    pub const SQLSTATE: u8 = b'C';
    /// Primary message.
    pub const MESSAGE: u8 = b'M';
    /// Detail.
    pub const DETAIL: u8 = b'D';
    /// Hint.
    pub const HINT: u8 = b'H';
    /// Cursor position in the query string.
    pub const POSITION: u8 = b'P';
}

/// Zero-copy `(code, value)` list of an ErrorResponse or NoticeResponse, in wire order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    fields: Vec<(u8, Bytes)>,
}

/// The S, V, C and M fields muxql sends in its own errors.
pub(crate) fn standard<'a>(
    severity: &'a str,
    sqlstate: &'a str,
    message: &'a str,
) -> [(u8, &'a str); 4] {
    [
        (code::SEVERITY, severity),
        (code::SEVERITY_NONLOCALIZED, severity),
        (code::SQLSTATE, sqlstate),
        (code::MESSAGE, message),
    ]
}

impl Fields {
    /// Fields with severity (S and V), SQLSTATE (C) and message (M).
    pub fn new(severity: &str, sqlstate: &str, message: &str) -> Fields {
        let fields = standard(severity, sqlstate, message)
            .into_iter()
            .map(|(c, v)| (c, Bytes::copy_from_slice(v.as_bytes())))
            .collect();
        Fields { fields }
    }

    /// Appends a field; a code of 0 or a value containing NUL fails at encode time.
    pub fn push(&mut self, code: u8, value: Bytes) {
        self.fields.push((code, value));
    }

    /// The first field with `code`.
    pub fn get(&self, code: u8) -> Option<&Bytes> {
        self.fields.iter().find(|(c, _)| *c == code).map(|(_, v)| v)
    }

    /// Non-localized severity (V) when present, else S.
    pub fn severity(&self) -> Option<&Bytes> {
        self.get(code::SEVERITY_NONLOCALIZED)
            .or_else(|| self.get(code::SEVERITY))
    }

    /// The SQLSTATE (C), which a malicious or old server may omit.
    pub fn code(&self) -> Option<&Bytes> {
        self.get(code::SQLSTATE)
    }

    /// The primary message (M).
    pub fn message(&self) -> Option<&Bytes> {
        self.get(code::MESSAGE)
    }

    /// All fields in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &Bytes)> {
        self.fields.iter().map(|(c, v)| (*c, v))
    }

    /// Parses the body of an ErrorResponse or NoticeResponse named `msg`.
    pub(crate) fn parse(body: Bytes, msg: &'static str) -> Result<Self, Error> {
        let mut r = Reader::new(body, msg);
        let mut fields = Vec::new();
        loop {
            match r.u8()? {
                0 => break,
                c => fields.push((c, r.cstr()?)),
            }
        }
        r.finish()?;
        Ok(Fields { fields })
    }

    /// Appends the fields as a frame of type `tag`.
    pub(crate) fn encode(&self, dst: &mut BytesMut, tag: u8) -> Result<(), Error> {
        encode_frame(dst, tag, |w| {
            for (c, v) in &self.fields {
                if *c == 0 {
                    return Err(Error::InvalidValue("error field code"));
                }
                w.put_u8(*c);
                put_cstr(w, v, "error field")?;
            }
            w.put_u8(0);
            Ok(())
        })
    }
}
