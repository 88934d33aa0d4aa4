//! Typed messages the frontend sends after the startup phase (protocol 3.0 and 3.2).
//!
//! Views borrow the frame's [`Bytes`]; nothing is copied. Protocol docs, "Message Formats".
//! The four 'p' messages (PasswordMessage, SASLInitialResponse, SASLResponse, GSSResponse)
//! share one type byte and are told apart only by the authentication state, so
//! [`FrontendMessage::parse`] returns the raw body and the sub-format parsers below take it.

use bytes::{BufMut, Bytes, BytesMut};

use super::frame::{encode_frame, Frame};
use super::reader::Reader;
use super::writer::{put_count, put_cstr, put_i16s, put_value};
use crate::wire::Error;

/// Frontend message type bytes.
pub mod tag {
    /// Bind.
    pub const BIND: u8 = b'B';
    /// Close.
    pub const CLOSE: u8 = b'C';
    /// CopyData.
    pub const COPY_DATA: u8 = b'd';
    /// CopyDone.
    pub const COPY_DONE: u8 = b'c';
    /// CopyFail.
    pub const COPY_FAIL: u8 = b'f';
    /// Describe.
    pub const DESCRIBE: u8 = b'D';
    /// Execute.
    pub const EXECUTE: u8 = b'E';
    /// Flush.
    pub const FLUSH: u8 = b'H';
    /// FunctionCall.
    pub const FUNCTION_CALL: u8 = b'F';
    /// Parse.
    pub const PARSE: u8 = b'P';
    /// PasswordMessage, SASLInitialResponse, SASLResponse and GSSResponse.
    pub const PASSWORD: u8 = b'p';
    /// Query.
    pub const QUERY: u8 = b'Q';
    /// Sync.
    pub const SYNC: u8 = b'S';
    /// Terminate.
    pub const TERMINATE: u8 = b'X';
}

/// What a Describe or Close names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// A prepared statement ('S').
    Statement,
    /// A portal ('P').
    Portal,
}

impl TargetKind {
    fn parse(b: u8, msg: &'static str) -> Result<Self, Error> {
        match b {
            b'S' => Ok(TargetKind::Statement),
            b'P' => Ok(TargetKind::Portal),
            _ => Err(Error::InvalidValue(msg)),
        }
    }

    /// The wire byte.
    pub fn byte(self) -> u8 {
        match self {
            TargetKind::Statement => b'S',
            TargetKind::Portal => b'P',
        }
    }
}

/// Parse: create a prepared statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parse {
    /// Statement name; empty for the unnamed statement.
    pub name: Bytes,
    /// The SQL text, without its NUL.
    pub query: Bytes,
    /// Parameter type OIDs; 0 leaves a type unspecified.
    pub param_types: Vec<u32>,
}

/// Bind: create a portal from a prepared statement and parameter values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// Destination portal; empty for the unnamed portal.
    pub portal: Bytes,
    /// Source statement; empty for the unnamed statement.
    pub statement: Bytes,
    /// Parameter format codes: none (all text), one (for all) or one per parameter.
    pub param_formats: Vec<i16>,
    /// Parameter values; `None` is NULL.
    pub params: Vec<Option<Bytes>>,
    /// Result column format codes.
    pub result_formats: Vec<i16>,
}

/// Describe a statement or portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Describe {
    /// Statement or portal.
    pub kind: TargetKind,
    /// Its name; empty for the unnamed one.
    pub name: Bytes,
}

/// Close a statement or portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// Statement or portal.
    pub kind: TargetKind,
    /// Its name; empty for the unnamed one.
    pub name: Bytes,
}

/// Execute a portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execute {
    /// Portal name; empty for the unnamed portal.
    pub portal: Bytes,
    /// Row limit; 0 means no limit.
    pub max_rows: u32,
}

/// FunctionCall (legacy fast-path interface).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionCall {
    /// OID of the function.
    pub oid: u32,
    /// Argument format codes: none, one or one per argument.
    pub arg_formats: Vec<i16>,
    /// Arguments; `None` is NULL.
    pub args: Vec<Option<Bytes>>,
    /// Result format code.
    pub result_format: i16,
}

/// Any typed frontend message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrontendMessage {
    /// Bind.
    Bind(Bind),
    /// Close.
    Close(Close),
    /// CopyData.
    CopyData(Bytes),
    /// CopyDone.
    CopyDone,
    /// CopyFail with its error message.
    CopyFail(Bytes),
    /// Describe.
    Describe(Describe),
    /// Execute.
    Execute(Execute),
    /// Flush.
    Flush,
    /// FunctionCall.
    FunctionCall(FunctionCall),
    /// Parse.
    Parse(Parse),
    /// The raw body of any 'p' message; its meaning depends on the authentication state.
    Password(Bytes),
    /// Query: SQL text without its NUL.
    Query(Bytes),
    /// Sync.
    Sync,
    /// Terminate.
    Terminate,
}

impl FrontendMessage {
    /// Parses a frame read in the frontend direction.
    pub fn parse(frame: &Frame) -> Result<Self, Error> {
        Self::parse_body(frame.tag(), frame.body())
    }

    /// Parses a frame read in the frontend direction, consuming it (the cheapest path).
    pub fn from_frame(frame: Frame) -> Result<Self, Error> {
        let tag = frame.tag();
        Self::parse_body(tag, frame.into_body())
    }

    /// Parses the body of a message of type `tag`.
    pub fn parse_body(tag: u8, body: Bytes) -> Result<Self, Error> {
        match tag {
            tag::BIND => parse_bind(body).map(FrontendMessage::Bind),
            tag::CLOSE => parse_target(body, "Close")
                .map(|(kind, name)| FrontendMessage::Close(Close { kind, name })),
            tag::COPY_DATA => Ok(FrontendMessage::CopyData(body)),
            tag::COPY_DONE => empty(body, "CopyDone", FrontendMessage::CopyDone),
            tag::COPY_FAIL => single_cstr(body, "CopyFail").map(FrontendMessage::CopyFail),
            tag::DESCRIBE => parse_target(body, "Describe")
                .map(|(kind, name)| FrontendMessage::Describe(Describe { kind, name })),
            tag::EXECUTE => parse_execute(body).map(FrontendMessage::Execute),
            tag::FLUSH => empty(body, "Flush", FrontendMessage::Flush),
            tag::FUNCTION_CALL => parse_function_call(body).map(FrontendMessage::FunctionCall),
            tag::PARSE => parse_parse(body).map(FrontendMessage::Parse),
            tag::PASSWORD => Ok(FrontendMessage::Password(body)),
            tag::QUERY => single_cstr(body, "Query").map(FrontendMessage::Query),
            tag::SYNC => empty(body, "Sync", FrontendMessage::Sync),
            tag::TERMINATE => empty(body, "Terminate", FrontendMessage::Terminate),
            other => Err(Error::UnknownMessageType(other)),
        }
    }

    /// Appends the encoded frame to `dst`; on error `dst` is left as it was.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), Error> {
        match self {
            FrontendMessage::Bind(b) => encode_bind(dst, b),
            FrontendMessage::Close(c) => encode_target(dst, tag::CLOSE, c.kind, &c.name),
            FrontendMessage::CopyData(d) => encode_frame(dst, tag::COPY_DATA, |w| {
                w.put_slice(d);
                Ok(())
            }),
            FrontendMessage::CopyDone => encode_frame(dst, tag::COPY_DONE, |_| Ok(())),
            FrontendMessage::CopyFail(m) => {
                encode_frame(dst, tag::COPY_FAIL, |w| put_cstr(w, m, "CopyFail message"))
            }
            FrontendMessage::Describe(d) => encode_target(dst, tag::DESCRIBE, d.kind, &d.name),
            FrontendMessage::Execute(e) => encode_frame(dst, tag::EXECUTE, |w| {
                put_cstr(w, &e.portal, "portal name")?;
                w.put_u32(e.max_rows);
                Ok(())
            }),
            FrontendMessage::Flush => encode_frame(dst, tag::FLUSH, |_| Ok(())),
            FrontendMessage::FunctionCall(f) => encode_function_call(dst, f),
            FrontendMessage::Parse(p) => encode_parse(dst, p),
            FrontendMessage::Password(body) => encode_frame(dst, tag::PASSWORD, |w| {
                w.put_slice(body);
                Ok(())
            }),
            FrontendMessage::Query(q) => {
                encode_frame(dst, tag::QUERY, |w| put_cstr(w, q, "query text"))
            }
            FrontendMessage::Sync => encode_frame(dst, tag::SYNC, |_| Ok(())),
            FrontendMessage::Terminate => encode_frame(dst, tag::TERMINATE, |_| Ok(())),
        }
    }
}

/// An empty-bodied message, or [`Error::TrailingBytes`].
fn empty(body: Bytes, msg: &'static str, value: FrontendMessage) -> Result<FrontendMessage, Error> {
    Reader::new(body, msg).finish().map(|()| value)
}

/// A body holding exactly one String.
fn single_cstr(body: Bytes, msg: &'static str) -> Result<Bytes, Error> {
    let mut r = Reader::new(body, msg);
    let s = r.cstr()?;
    r.finish()?;
    Ok(s)
}

/// Reads a format-code list: a count then that many Int16.
fn read_formats(r: &mut Reader) -> Result<Vec<i16>, Error> {
    let n = r.count()?;
    let mut v = Vec::with_capacity(r.capacity(n, 2));
    for _ in 0..n {
        v.push(r.i16()?);
    }
    Ok(v)
}

/// Reads a value list: a count then that many Int32-length-prefixed values.
fn read_values(r: &mut Reader) -> Result<Vec<Option<Bytes>>, Error> {
    let n = r.count()?;
    let mut v = Vec::with_capacity(r.capacity(n, 4));
    for _ in 0..n {
        v.push(r.value()?);
    }
    Ok(v)
}

/// Format codes must number none, one, or one per value ("Bind" in Message Formats).
fn check_formats(formats: usize, values: usize, what: &'static str) -> Result<(), Error> {
    if formats > 1 && formats != values {
        return Err(Error::InvalidValue(what));
    }
    Ok(())
}

fn parse_bind(body: Bytes) -> Result<Bind, Error> {
    let mut r = Reader::new(body, "Bind");
    let portal = r.cstr()?;
    let statement = r.cstr()?;
    let param_formats = read_formats(&mut r)?;
    let params = read_values(&mut r)?;
    check_formats(
        param_formats.len(),
        params.len(),
        "Bind parameter format count",
    )?;
    let result_formats = read_formats(&mut r)?;
    r.finish()?;
    Ok(Bind {
        portal,
        statement,
        param_formats,
        params,
        result_formats,
    })
}

fn encode_bind(dst: &mut BytesMut, b: &Bind) -> Result<(), Error> {
    check_formats(
        b.param_formats.len(),
        b.params.len(),
        "Bind parameter format count",
    )?;
    encode_frame(dst, tag::BIND, |w| {
        put_cstr(w, &b.portal, "portal name")?;
        put_cstr(w, &b.statement, "statement name")?;
        put_i16s(w, &b.param_formats, "Bind parameter format count")?;
        put_count(w, b.params.len(), "Bind parameter count")?;
        for p in &b.params {
            put_value(w, p.as_deref())?;
        }
        put_i16s(w, &b.result_formats, "Bind result format count")
    })
}

fn parse_target(body: Bytes, msg: &'static str) -> Result<(TargetKind, Bytes), Error> {
    let mut r = Reader::new(body, msg);
    let kind = TargetKind::parse(r.u8()?, msg)?;
    let name = r.cstr()?;
    r.finish()?;
    Ok((kind, name))
}

fn encode_target(dst: &mut BytesMut, tag: u8, kind: TargetKind, name: &[u8]) -> Result<(), Error> {
    encode_frame(dst, tag, |w| {
        w.put_u8(kind.byte());
        put_cstr(w, name, "statement or portal name")
    })
}

fn parse_execute(body: Bytes) -> Result<Execute, Error> {
    let mut r = Reader::new(body, "Execute");
    let portal = r.cstr()?;
    let max_rows = r.u32()?;
    r.finish()?;
    Ok(Execute { portal, max_rows })
}

fn parse_function_call(body: Bytes) -> Result<FunctionCall, Error> {
    let mut r = Reader::new(body, "FunctionCall");
    let oid = r.u32()?;
    let arg_formats = read_formats(&mut r)?;
    let args = read_values(&mut r)?;
    check_formats(arg_formats.len(), args.len(), "FunctionCall format count")?;
    let result_format = r.i16()?;
    r.finish()?;
    Ok(FunctionCall {
        oid,
        arg_formats,
        args,
        result_format,
    })
}

fn encode_function_call(dst: &mut BytesMut, f: &FunctionCall) -> Result<(), Error> {
    check_formats(
        f.arg_formats.len(),
        f.args.len(),
        "FunctionCall format count",
    )?;
    encode_frame(dst, tag::FUNCTION_CALL, |w| {
        w.put_u32(f.oid);
        put_i16s(w, &f.arg_formats, "FunctionCall format count")?;
        put_count(w, f.args.len(), "FunctionCall argument count")?;
        for a in &f.args {
            put_value(w, a.as_deref())?;
        }
        w.put_i16(f.result_format);
        Ok(())
    })
}

fn parse_parse(body: Bytes) -> Result<Parse, Error> {
    let mut r = Reader::new(body, "Parse");
    let name = r.cstr()?;
    let query = r.cstr()?;
    let n = r.count()?;
    let mut param_types = Vec::with_capacity(r.capacity(n, 4));
    for _ in 0..n {
        param_types.push(r.u32()?);
    }
    r.finish()?;
    Ok(Parse {
        name,
        query,
        param_types,
    })
}

fn encode_parse(dst: &mut BytesMut, p: &Parse) -> Result<(), Error> {
    encode_frame(dst, tag::PARSE, |w| {
        put_cstr(w, &p.name, "statement name")?;
        put_cstr(w, &p.query, "query text")?;
        put_count(w, p.param_types.len(), "Parse parameter type count")?;
        p.param_types.iter().for_each(|&t| w.put_u32(t));
        Ok(())
    })
}

/// SASLInitialResponse: the mechanism the client chose and its initial response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslInitialResponse {
    /// Mechanism name, e.g. `SCRAM-SHA-256`.
    pub mechanism: Bytes,
    /// Initial client response; `None` when the length field is -1.
    pub data: Option<Bytes>,
}

impl SaslInitialResponse {
    /// Parses the raw body of a 'p' message sent in answer to AuthenticationSASL.
    pub fn parse(body: Bytes) -> Result<Self, Error> {
        let mut r = Reader::new(body, "SASLInitialResponse");
        let mechanism = r.cstr()?;
        let data = r.value()?;
        r.finish()?;
        Ok(SaslInitialResponse { mechanism, data })
    }

    /// Appends the encoded 'p' frame to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), Error> {
        encode_frame(dst, tag::PASSWORD, |w| {
            put_cstr(w, &self.mechanism, "SASL mechanism")?;
            put_value(w, self.data.as_deref())
        })
    }
}

/// Parses a PasswordMessage body (cleartext or `md5...` string), returned without its NUL.
pub fn parse_password_message(body: Bytes) -> Result<Bytes, Error> {
    single_cstr(body, "PasswordMessage")
}

/// Appends a PasswordMessage carrying `password` (cleartext or an MD5 response).
pub fn encode_password_message(dst: &mut BytesMut, password: &[u8]) -> Result<(), Error> {
    encode_frame(dst, tag::PASSWORD, |w| put_cstr(w, password, "password"))
}

/// Appends a SASLResponse: the whole body is mechanism data.
pub fn encode_sasl_response(dst: &mut BytesMut, data: &[u8]) -> Result<(), Error> {
    encode_frame(dst, tag::PASSWORD, |w| {
        w.put_slice(data);
        Ok(())
    })
}

/// Splits a Bind body into portal, statement and the rest after the statement's NUL, without
/// allocating: the hot path for rewriting statement names.
pub fn bind_names(body: &Bytes) -> Result<(Bytes, Bytes, Bytes), Error> {
    let mut r = Reader::new(body.clone(), "Bind");
    let portal = r.cstr()?;
    let statement = r.cstr()?;
    Ok((portal, statement, r.rest()))
}

/// Appends a Bind frame made of `portal`, `statement` and a `rest` taken from [`bind_names`].
pub fn encode_bind_with_statement(
    dst: &mut BytesMut,
    portal: &[u8],
    statement: &[u8],
    rest: &[u8],
) -> Result<(), Error> {
    encode_frame(dst, tag::BIND, |w| {
        put_cstr(w, portal, "portal name")?;
        put_cstr(w, statement, "statement name")?;
        w.put_slice(rest);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::arbitrary;
    use crate::pg::frame::{split_frame, Direction};
    use crate::wire::Limits;
    use proptest::prelude::*;

    fn frame(tag: u8, body: &[u8]) -> Frame {
        let mut buf = BytesMut::new();
        encode_frame(&mut buf, tag, |w| {
            w.put_slice(body);
            Ok(())
        })
        .unwrap();
        split_frame(&mut buf, Direction::Frontend, &Limits::default())
            .unwrap()
            .unwrap()
    }

    fn parse(tag: u8, body: &[u8]) -> Result<FrontendMessage, Error> {
        FrontendMessage::parse(&frame(tag, body))
    }

    #[test]
    fn parses_a_bind_from_the_spec_layout() {
        let body = b"p1\0s1\0\0\x01\0\x01\0\x02\0\0\0\x0242\xff\xff\xff\xff\0\x01\0\x01";
        let want = FrontendMessage::Bind(Bind {
            portal: Bytes::from_static(b"p1"),
            statement: Bytes::from_static(b"s1"),
            param_formats: vec![1],
            params: vec![Some(Bytes::from_static(b"42")), None],
            result_formats: vec![1],
        });
        assert_eq!(parse(b'B', body), Ok(want.clone()));
        let mut enc = BytesMut::new();
        want.encode(&mut enc).unwrap();
        assert_eq!(&enc[5..], &body[..]);
    }

    #[test]
    fn bind_names_is_zero_copy_and_re_encodes() {
        let f = frame(b'B', b"\0stmt\0\0\0\0\0\0\0");
        let body = f.body();
        let (portal, statement, rest) = bind_names(&body).unwrap();
        assert!(portal.is_empty());
        assert_eq!(&statement[..], b"stmt");
        assert_eq!(statement.as_ptr(), body[1..].as_ptr());
        let mut out = BytesMut::new();
        encode_bind_with_statement(&mut out, &portal, b"muxql_7", &rest).unwrap();
        let FrontendMessage::Bind(b) = parse(b'B', &out[5..]).unwrap() else {
            panic!("not a Bind")
        };
        assert_eq!(&b.statement[..], b"muxql_7");
        assert!(b.params.is_empty());
    }

    #[test]
    fn password_sub_formats() {
        let mut d = BytesMut::new();
        encode_password_message(&mut d, b"md5abc").unwrap();
        assert_eq!(&d[..], b"p\0\0\0\x0bmd5abc\0");
        let Ok(FrontendMessage::Password(body)) = parse(b'p', &d[5..]) else {
            panic!("not a password")
        };
        assert_eq!(&parse_password_message(body).unwrap()[..], b"md5abc");

        let sasl = SaslInitialResponse {
            mechanism: Bytes::from_static(b"SCRAM-SHA-256"),
            data: Some(Bytes::from_static(b"n,,n=,r=abc")),
        };
        let mut d = BytesMut::new();
        sasl.encode(&mut d).unwrap();
        assert_eq!(
            SaslInitialResponse::parse(Bytes::copy_from_slice(&d[5..])),
            Ok(sasl)
        );
        let none = SaslInitialResponse::parse(Bytes::from_static(b"X\0\xff\xff\xff\xff"));
        assert_eq!(none.map(|s| s.data), Ok(None));

        let mut d = BytesMut::new();
        encode_sasl_response(&mut d, b"c=biws").unwrap();
        assert_eq!(&d[..], b"p\0\0\0\x0ac=biws");
    }

    #[test]
    fn malformed_messages_are_typed_errors() {
        let cases: &[(u8, &[u8], Error)] = &[
            (b'S', b"x", Error::TrailingBytes("Sync")),
            (b'H', b"x", Error::TrailingBytes("Flush")),
            (b'X', b"x", Error::TrailingBytes("Terminate")),
            (b'c', b"x", Error::TrailingBytes("CopyDone")),
            (b'Q', b"select 1", Error::MissingNul("Query")),
            (b'Q', b"select 1\0x", Error::TrailingBytes("Query")),
            (b'f', b"oops", Error::MissingNul("CopyFail")),
            (b'D', b"Xname\0", Error::InvalidValue("Describe")),
            (b'D', b"", Error::Truncated("Describe")),
            (b'C', b"Sname", Error::MissingNul("Close")),
            (b'E', b"\0\0\0", Error::Truncated("Execute")),
            (b'E', b"\0\0\0\0\0x", Error::TrailingBytes("Execute")),
            (b'P', b"s\0q\0\0\x02\0\0\0\x17", Error::Truncated("Parse")),
            (
                b'B',
                b"\0s\0\0\0\0\x01\xff\xff\xff\xfe\0\0",
                Error::InvalidValue("value length"),
            ),
            (
                b'B',
                b"\0s\0\0\0\0\x01\0\0\0\x09ab\0\0",
                Error::Truncated("Bind"),
            ),
            (
                b'B',
                b"\0s\0\0\x02\0\0\0\0\0\x01\0\0\0\0\0\0",
                Error::InvalidValue("Bind parameter format count"),
            ),
            (b'B', b"\0s\0\0\0\0\0\0\0x", Error::TrailingBytes("Bind")),
            (
                b'F',
                b"\0\0\0\x01\0\0\0\0",
                Error::Truncated("FunctionCall"),
            ),
            (b'Z', b"", Error::UnknownMessageType(b'Z')),
        ];
        for (tag, body, want) in cases {
            let got = Frame::from_parts(*tag, body).and_then(|f| FrontendMessage::parse(&f));
            assert_eq!(got.as_ref(), Err(want), "{} {body:?}", *tag as char);
        }
        assert_eq!(
            SaslInitialResponse::parse(Bytes::from_static(b"SCRAM\0\0\0\0\x05ab")),
            Err(Error::Truncated("SASLInitialResponse"))
        );
        assert_eq!(
            parse_password_message(Bytes::from_static(b"pw")),
            Err(Error::MissingNul("PasswordMessage"))
        );
    }

    #[test]
    fn encoders_refuse_instead_of_truncating() {
        let mut d = BytesMut::from(&b"keep"[..]);
        let bad = FrontendMessage::Query(Bytes::from_static(b"a\0b"));
        assert_eq!(bad.encode(&mut d), Err(Error::InvalidValue("query text")));
        let many = FrontendMessage::Parse(Parse {
            name: Bytes::new(),
            query: Bytes::new(),
            param_types: vec![0; 65_536],
        });
        assert_eq!(
            many.encode(&mut d),
            Err(Error::EncodeOverflow("Parse parameter type count"))
        );
        let mismatched = FrontendMessage::Bind(Bind {
            portal: Bytes::new(),
            statement: Bytes::new(),
            param_formats: vec![0, 1],
            params: vec![None],
            result_formats: vec![],
        });
        assert!(mismatched.encode(&mut d).is_err());
        assert_eq!(&d[..], b"keep");
    }

    #[test]
    fn sixty_five_thousand_parameters_are_legal() {
        let p = FrontendMessage::Parse(Parse {
            name: Bytes::new(),
            query: Bytes::from_static(b"q"),
            param_types: vec![23; 65_535],
        });
        let mut d = BytesMut::new();
        p.encode(&mut d).unwrap();
        let f = split_frame(&mut d, Direction::Frontend, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(FrontendMessage::parse(&f), Ok(p));
    }

    proptest! {
        #[test]
        fn round_trips(msg in arbitrary::frontend()) {
            let mut d = BytesMut::new();
            msg.encode(&mut d).unwrap();
            let f = split_frame(&mut d, Direction::Frontend, &Limits::default()).unwrap().unwrap();
            prop_assert!(d.is_empty());
            prop_assert_eq!(FrontendMessage::parse(&f), Ok(msg));
        }

        #[test]
        fn never_panics(tag in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(f) = Frame::from_parts(tag, &body) {
                let _ = FrontendMessage::parse(&f);
            }
            let b = Bytes::from(body);
            let _ = SaslInitialResponse::parse(b.clone());
            let _ = parse_password_message(b.clone());
            let _ = bind_names(&b);
        }
    }
}
