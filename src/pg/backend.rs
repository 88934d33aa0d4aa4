//! Typed messages the backend sends (protocol 3.0 and 3.2).
//!
//! Views borrow the frame's [`Bytes`]; nothing is copied. Protocol docs, "Message Formats".

use bytes::{BufMut, Bytes, BytesMut};

use super::frame::{encode_frame, Frame};
use super::reader::Reader;
use super::startup::{MAX_CANCEL_KEY_LEN, MIN_CANCEL_KEY_LEN};
use super::writer::{put_count, put_cstr, put_i16s, put_value};
use crate::wire::Error;

mod data_row;
mod fields;

pub use data_row::{DataRow, DataRowIter, DataRowRef};
pub use fields::{code as field, Fields};

/// Backend message type bytes.
pub mod tag {
    /// Authentication* requests.
    pub const AUTHENTICATION: u8 = b'R';
    /// BackendKeyData.
    pub const BACKEND_KEY_DATA: u8 = b'K';
    /// BindComplete.
    pub const BIND_COMPLETE: u8 = b'2';
    /// CloseComplete.
    pub const CLOSE_COMPLETE: u8 = b'3';
    /// CommandComplete.
    pub const COMMAND_COMPLETE: u8 = b'C';
    /// CopyData.
    pub const COPY_DATA: u8 = b'd';
    /// CopyDone.
    pub const COPY_DONE: u8 = b'c';
    /// CopyInResponse.
    pub const COPY_IN_RESPONSE: u8 = b'G';
    /// CopyOutResponse.
    pub const COPY_OUT_RESPONSE: u8 = b'H';
    /// CopyBothResponse.
    pub const COPY_BOTH_RESPONSE: u8 = b'W';
    /// DataRow.
    pub const DATA_ROW: u8 = b'D';
    /// EmptyQueryResponse.
    pub const EMPTY_QUERY_RESPONSE: u8 = b'I';
    /// ErrorResponse.
    pub const ERROR_RESPONSE: u8 = b'E';
    /// FunctionCallResponse.
    pub const FUNCTION_CALL_RESPONSE: u8 = b'V';
    /// NegotiateProtocolVersion.
    pub const NEGOTIATE_PROTOCOL_VERSION: u8 = b'v';
    /// NoData.
    pub const NO_DATA: u8 = b'n';
    /// NoticeResponse.
    pub const NOTICE_RESPONSE: u8 = b'N';
    /// NotificationResponse.
    pub const NOTIFICATION_RESPONSE: u8 = b'A';
    /// ParameterDescription.
    pub const PARAMETER_DESCRIPTION: u8 = b't';
    /// ParameterStatus.
    pub const PARAMETER_STATUS: u8 = b'S';
    /// ParseComplete.
    pub const PARSE_COMPLETE: u8 = b'1';
    /// PortalSuspended.
    pub const PORTAL_SUSPENDED: u8 = b's';
    /// ReadyForQuery.
    pub const READY_FOR_QUERY: u8 = b'Z';
    /// RowDescription.
    pub const ROW_DESCRIPTION: u8 = b'T';
}

/// Authentication request codes (the Int32 after the 'R' length).
pub mod auth_code {
    /// AuthenticationOk.
    pub const OK: u32 = 0;
    /// AuthenticationKerberosV5.
    pub const KERBEROS_V5: u32 = 2;
    /// AuthenticationCleartextPassword.
    pub const CLEARTEXT_PASSWORD: u32 = 3;
    /// AuthenticationMD5Password.
    pub const MD5_PASSWORD: u32 = 5;
    /// AuthenticationGSS.
    pub const GSS: u32 = 7;
    /// AuthenticationGSSContinue.
    pub const GSS_CONTINUE: u32 = 8;
    /// AuthenticationSSPI.
    pub const SSPI: u32 = 9;
    /// AuthenticationSASL.
    pub const SASL: u32 = 10;
    /// AuthenticationSASLContinue.
    pub const SASL_CONTINUE: u32 = 11;
    /// AuthenticationSASLFinal.
    pub const SASL_FINAL: u32 = 12;
}

/// The transaction status in ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionStatus {
    /// Not in a transaction block ('I').
    Idle,
    /// In a transaction block ('T').
    InTransaction,
    /// In a failed transaction block ('E').
    Failed,
}

impl TransactionStatus {
    /// Parses the status byte.
    pub fn from_byte(b: u8) -> Result<Self, Error> {
        match b {
            b'I' => Ok(TransactionStatus::Idle),
            b'T' => Ok(TransactionStatus::InTransaction),
            b'E' => Ok(TransactionStatus::Failed),
            _ => Err(Error::InvalidValue("ReadyForQuery status")),
        }
    }

    /// The wire byte.
    pub fn byte(self) -> u8 {
        match self {
            TransactionStatus::Idle => b'I',
            TransactionStatus::InTransaction => b'T',
            TransactionStatus::Failed => b'E',
        }
    }
}

/// An authentication request ('R').
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication {
    /// AuthenticationOk.
    Ok,
    /// AuthenticationKerberosV5 (no longer supported by servers).
    KerberosV5,
    /// AuthenticationCleartextPassword.
    CleartextPassword,
    /// AuthenticationMD5Password.
    Md5Password {
        /// The salt to hash with.
        salt: [u8; 4],
    },
    /// AuthenticationGSS.
    Gss,
    /// AuthenticationGSSContinue with GSSAPI or SSPI data.
    GssContinue(Bytes),
    /// AuthenticationSSPI.
    Sspi,
    /// AuthenticationSASL with the mechanisms the server accepts, preferred first.
    Sasl {
        /// Mechanism names.
        mechanisms: Vec<Bytes>,
    },
    /// AuthenticationSASLContinue with a server challenge.
    SaslContinue(Bytes),
    /// AuthenticationSASLFinal with the outcome data.
    SaslFinal(Bytes),
}

/// One column of a RowDescription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDescription {
    /// Column name.
    pub name: Bytes,
    /// OID of the source table, or 0.
    pub table_oid: u32,
    /// Attribute number in the source table, or 0.
    pub column: i16,
    /// OID of the data type.
    pub type_oid: u32,
    /// Data type size (negative for variable width).
    pub type_size: i16,
    /// Type modifier.
    pub type_modifier: i32,
    /// Format code: 0 text, 1 binary.
    pub format: i16,
}

/// CopyInResponse, CopyOutResponse or CopyBothResponse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyResponse {
    /// Overall format: 0 text, 1 binary.
    pub format: i8,
    /// Per-column format codes.
    pub column_formats: Vec<i16>,
}

/// Any typed backend message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendMessage {
    /// An authentication request.
    Authentication(Authentication),
    /// BackendKeyData: cancellation key.
    BackendKeyData {
        /// Backend process id.
        pid: u32,
        /// Secret key: 4 bytes in protocol 3.0, up to 256 in 3.2.
        key: Bytes,
    },
    /// BindComplete.
    BindComplete,
    /// CloseComplete.
    CloseComplete,
    /// CommandComplete with its command tag.
    CommandComplete(Bytes),
    /// CopyData.
    CopyData(Bytes),
    /// CopyDone.
    CopyDone,
    /// CopyInResponse.
    CopyInResponse(CopyResponse),
    /// CopyOutResponse.
    CopyOutResponse(CopyResponse),
    /// CopyBothResponse.
    CopyBothResponse(CopyResponse),
    /// DataRow.
    DataRow(DataRow),
    /// EmptyQueryResponse.
    EmptyQueryResponse,
    /// ErrorResponse.
    ErrorResponse(Fields),
    /// FunctionCallResponse; `None` is NULL.
    FunctionCallResponse(Option<Bytes>),
    /// NegotiateProtocolVersion.
    NegotiateProtocolVersion {
        /// Newest protocol version the server supports for the requested major. The docs say
        /// "minor version", but PostgreSQL sends the whole version code (`major << 16 |
        /// minor`, 196608 for 3.0): read it with [`ProtocolVersion`](super::startup::ProtocolVersion).
        newest_minor: u32,
        /// Protocol options (`_pq_.*`) the server did not recognise.
        unsupported: Vec<Bytes>,
    },
    /// NoData.
    NoData,
    /// NoticeResponse.
    NoticeResponse(Fields),
    /// NotificationResponse.
    NotificationResponse {
        /// Process id of the notifying backend.
        pid: u32,
        /// Channel name.
        channel: Bytes,
        /// Payload.
        payload: Bytes,
    },
    /// ParameterDescription: parameter type OIDs.
    ParameterDescription(Vec<u32>),
    /// ParameterStatus.
    ParameterStatus {
        /// Parameter name.
        name: Bytes,
        /// Current value.
        value: Bytes,
    },
    /// ParseComplete.
    ParseComplete,
    /// PortalSuspended.
    PortalSuspended,
    /// ReadyForQuery.
    ReadyForQuery(TransactionStatus),
    /// RowDescription.
    RowDescription(Vec<FieldDescription>),
}

impl BackendMessage {
    /// Parses a frame read in the backend direction.
    pub fn parse(frame: &Frame) -> Result<Self, Error> {
        Self::parse_body(frame.tag(), frame.body())
    }

    /// Parses a frame read in the backend direction, consuming it (the cheapest path).
    pub fn from_frame(frame: Frame) -> Result<Self, Error> {
        let tag = frame.tag();
        Self::parse_body(tag, frame.into_body())
    }

    /// Parses the body of a message of type `tag`.
    pub fn parse_body(tag: u8, body: Bytes) -> Result<Self, Error> {
        match tag {
            tag::AUTHENTICATION => parse_authentication(body).map(BackendMessage::Authentication),
            tag::BACKEND_KEY_DATA => parse_backend_key_data(body),
            tag::BIND_COMPLETE => empty(body, "BindComplete", BackendMessage::BindComplete),
            tag::CLOSE_COMPLETE => empty(body, "CloseComplete", BackendMessage::CloseComplete),
            tag::COMMAND_COMPLETE => {
                single_cstr(body, "CommandComplete").map(BackendMessage::CommandComplete)
            }
            tag::COPY_DATA => Ok(BackendMessage::CopyData(body)),
            tag::COPY_DONE => empty(body, "CopyDone", BackendMessage::CopyDone),
            tag::COPY_IN_RESPONSE => {
                parse_copy_response(body, "CopyInResponse").map(BackendMessage::CopyInResponse)
            }
            tag::COPY_OUT_RESPONSE => {
                parse_copy_response(body, "CopyOutResponse").map(BackendMessage::CopyOutResponse)
            }
            tag::COPY_BOTH_RESPONSE => {
                parse_copy_response(body, "CopyBothResponse").map(BackendMessage::CopyBothResponse)
            }
            tag::DATA_ROW => DataRow::parse(body).map(BackendMessage::DataRow),
            tag::EMPTY_QUERY_RESPONSE => empty(
                body,
                "EmptyQueryResponse",
                BackendMessage::EmptyQueryResponse,
            ),
            tag::ERROR_RESPONSE => {
                Fields::parse(body, "ErrorResponse").map(BackendMessage::ErrorResponse)
            }
            tag::FUNCTION_CALL_RESPONSE => parse_function_call_response(body),
            tag::NEGOTIATE_PROTOCOL_VERSION => parse_negotiate_protocol_version(body),
            tag::NO_DATA => empty(body, "NoData", BackendMessage::NoData),
            tag::NOTICE_RESPONSE => {
                Fields::parse(body, "NoticeResponse").map(BackendMessage::NoticeResponse)
            }
            tag::NOTIFICATION_RESPONSE => parse_notification(body),
            tag::PARAMETER_DESCRIPTION => parse_parameter_description(body),
            tag::PARAMETER_STATUS => parse_parameter_status(body),
            tag::PARSE_COMPLETE => empty(body, "ParseComplete", BackendMessage::ParseComplete),
            tag::PORTAL_SUSPENDED => {
                empty(body, "PortalSuspended", BackendMessage::PortalSuspended)
            }
            tag::READY_FOR_QUERY => parse_ready_for_query(body).map(BackendMessage::ReadyForQuery),
            tag::ROW_DESCRIPTION => parse_row_description(body),
            other => Err(Error::UnknownMessageType(other)),
        }
    }

    /// Appends the encoded frame to `dst`; on error `dst` is left as it was.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), Error> {
        match self {
            BackendMessage::Authentication(a) => encode_authentication(dst, a),
            BackendMessage::BackendKeyData { pid, key } => {
                if !(MIN_CANCEL_KEY_LEN..=MAX_CANCEL_KEY_LEN).contains(&key.len()) {
                    return Err(Error::InvalidValue("cancel key length"));
                }
                encode_frame(dst, tag::BACKEND_KEY_DATA, |w| {
                    w.put_u32(*pid);
                    w.put_slice(key);
                    Ok(())
                })
            }
            BackendMessage::BindComplete => encode_empty(dst, tag::BIND_COMPLETE),
            BackendMessage::CloseComplete => encode_empty(dst, tag::CLOSE_COMPLETE),
            BackendMessage::CommandComplete(t) => encode_frame(dst, tag::COMMAND_COMPLETE, |w| {
                put_cstr(w, t, "command tag")
            }),
            BackendMessage::CopyData(d) => encode_frame(dst, tag::COPY_DATA, |w| {
                w.put_slice(d);
                Ok(())
            }),
            BackendMessage::CopyDone => encode_empty(dst, tag::COPY_DONE),
            BackendMessage::CopyInResponse(c) => {
                encode_copy_response(dst, tag::COPY_IN_RESPONSE, c)
            }
            BackendMessage::CopyOutResponse(c) => {
                encode_copy_response(dst, tag::COPY_OUT_RESPONSE, c)
            }
            BackendMessage::CopyBothResponse(c) => {
                encode_copy_response(dst, tag::COPY_BOTH_RESPONSE, c)
            }
            BackendMessage::DataRow(r) => r.encode(dst),
            BackendMessage::EmptyQueryResponse => encode_empty(dst, tag::EMPTY_QUERY_RESPONSE),
            BackendMessage::ErrorResponse(f) => f.encode(dst, tag::ERROR_RESPONSE),
            BackendMessage::FunctionCallResponse(v) => {
                encode_frame(dst, tag::FUNCTION_CALL_RESPONSE, |w| {
                    put_value(w, v.as_deref())
                })
            }
            BackendMessage::NegotiateProtocolVersion {
                newest_minor,
                unsupported,
            } => encode_frame(dst, tag::NEGOTIATE_PROTOCOL_VERSION, |w| {
                w.put_u32(*newest_minor);
                w.put_i32(
                    i32::try_from(unsupported.len())
                        .map_err(|_| Error::EncodeOverflow("unsupported option count"))?,
                );
                unsupported
                    .iter()
                    .try_for_each(|o| put_cstr(w, o, "protocol option name"))
            }),
            BackendMessage::NoData => encode_empty(dst, tag::NO_DATA),
            BackendMessage::NoticeResponse(f) => f.encode(dst, tag::NOTICE_RESPONSE),
            BackendMessage::NotificationResponse {
                pid,
                channel,
                payload,
            } => encode_frame(dst, tag::NOTIFICATION_RESPONSE, |w| {
                w.put_u32(*pid);
                put_cstr(w, channel, "channel name")?;
                put_cstr(w, payload, "notification payload")
            }),
            BackendMessage::ParameterDescription(types) => {
                encode_frame(dst, tag::PARAMETER_DESCRIPTION, |w| {
                    put_count(w, types.len(), "parameter count")?;
                    types.iter().for_each(|&t| w.put_u32(t));
                    Ok(())
                })
            }
            BackendMessage::ParameterStatus { name, value } => {
                encode_frame(dst, tag::PARAMETER_STATUS, |w| {
                    put_cstr(w, name, "parameter name")?;
                    put_cstr(w, value, "parameter value")
                })
            }
            BackendMessage::ParseComplete => encode_empty(dst, tag::PARSE_COMPLETE),
            BackendMessage::PortalSuspended => encode_empty(dst, tag::PORTAL_SUSPENDED),
            BackendMessage::ReadyForQuery(s) => encode_frame(dst, tag::READY_FOR_QUERY, |w| {
                w.put_u8(s.byte());
                Ok(())
            }),
            BackendMessage::RowDescription(fields) => encode_row_description(dst, fields),
        }
    }
}

/// The transaction status of a ReadyForQuery frame, without building a message.
pub fn ready_for_query_status(frame: &Frame) -> Result<TransactionStatus, Error> {
    if frame.tag() != tag::READY_FOR_QUERY {
        return Err(Error::Unexpected("non-ReadyForQuery"));
    }
    match frame.as_bytes().get(super::frame::HEADER_LEN..) {
        Some(&[status]) => TransactionStatus::from_byte(status),
        Some([]) => Err(Error::Truncated("ReadyForQuery")),
        _ => Err(Error::TrailingBytes("ReadyForQuery")),
    }
}

/// Appends an ErrorResponse with severity (S and V), SQLSTATE (C) and message (M) fields,
/// without building [`Fields`].
pub fn encode_error_response(
    dst: &mut BytesMut,
    severity: &str,
    sqlstate: &str,
    message: &str,
) -> Result<(), Error> {
    encode_frame(dst, tag::ERROR_RESPONSE, |w| {
        for (code, value) in fields::standard(severity, sqlstate, message) {
            w.put_u8(code);
            put_cstr(w, value.as_bytes(), "error field")?;
        }
        w.put_u8(0);
        Ok(())
    })
}

fn empty(body: Bytes, msg: &'static str, value: BackendMessage) -> Result<BackendMessage, Error> {
    Reader::new(body, msg).finish().map(|()| value)
}

fn encode_empty(dst: &mut BytesMut, tag: u8) -> Result<(), Error> {
    encode_frame(dst, tag, |_| Ok(()))
}

fn single_cstr(body: Bytes, msg: &'static str) -> Result<Bytes, Error> {
    let mut r = Reader::new(body, msg);
    let s = r.cstr()?;
    r.finish()?;
    Ok(s)
}

fn parse_authentication(body: Bytes) -> Result<Authentication, Error> {
    let mut r = Reader::new(body, "Authentication");
    let auth = match r.u32()? {
        auth_code::OK => Authentication::Ok,
        auth_code::KERBEROS_V5 => Authentication::KerberosV5,
        auth_code::CLEARTEXT_PASSWORD => Authentication::CleartextPassword,
        auth_code::MD5_PASSWORD => {
            let mut salt = [0; 4];
            salt.copy_from_slice(&r.bytes(4)?);
            Authentication::Md5Password { salt }
        }
        auth_code::GSS => Authentication::Gss,
        auth_code::GSS_CONTINUE => Authentication::GssContinue(r.rest()),
        auth_code::SSPI => Authentication::Sspi,
        auth_code::SASL => {
            // "AuthenticationSASL": a list of mechanism names ended by an empty string.
            let mut mechanisms = Vec::new();
            loop {
                let m = r.cstr()?;
                if m.is_empty() {
                    break;
                }
                mechanisms.push(m);
            }
            Authentication::Sasl { mechanisms }
        }
        auth_code::SASL_CONTINUE => Authentication::SaslContinue(r.rest()),
        auth_code::SASL_FINAL => Authentication::SaslFinal(r.rest()),
        _ => return Err(Error::InvalidValue("authentication request code")),
    };
    r.finish()?;
    Ok(auth)
}

fn encode_authentication(dst: &mut BytesMut, a: &Authentication) -> Result<(), Error> {
    encode_frame(dst, tag::AUTHENTICATION, |w| {
        match a {
            Authentication::Ok => w.put_u32(auth_code::OK),
            Authentication::KerberosV5 => w.put_u32(auth_code::KERBEROS_V5),
            Authentication::CleartextPassword => w.put_u32(auth_code::CLEARTEXT_PASSWORD),
            Authentication::Md5Password { salt } => {
                w.put_u32(auth_code::MD5_PASSWORD);
                w.put_slice(salt);
            }
            Authentication::Gss => w.put_u32(auth_code::GSS),
            Authentication::GssContinue(d) => {
                w.put_u32(auth_code::GSS_CONTINUE);
                w.put_slice(d);
            }
            Authentication::Sspi => w.put_u32(auth_code::SSPI),
            Authentication::Sasl { mechanisms } => {
                w.put_u32(auth_code::SASL);
                for m in mechanisms {
                    if m.is_empty() {
                        return Err(Error::InvalidValue("SASL mechanism"));
                    }
                    put_cstr(w, m, "SASL mechanism")?;
                }
                w.put_u8(0);
            }
            Authentication::SaslContinue(d) => {
                w.put_u32(auth_code::SASL_CONTINUE);
                w.put_slice(d);
            }
            Authentication::SaslFinal(d) => {
                w.put_u32(auth_code::SASL_FINAL);
                w.put_slice(d);
            }
        }
        Ok(())
    })
}

fn parse_backend_key_data(body: Bytes) -> Result<BackendMessage, Error> {
    let mut r = Reader::new(body, "BackendKeyData");
    let pid = r.u32()?;
    // Protocol 3.2 made the key variable-length (4..=256 bytes); 3.0 keys are 4 bytes.
    let key = r.rest();
    if key.len() < MIN_CANCEL_KEY_LEN {
        return Err(Error::Truncated("BackendKeyData"));
    }
    if key.len() > MAX_CANCEL_KEY_LEN {
        return Err(Error::InvalidValue("cancel key length"));
    }
    Ok(BackendMessage::BackendKeyData { pid, key })
}

fn parse_copy_response(body: Bytes, msg: &'static str) -> Result<CopyResponse, Error> {
    let mut r = Reader::new(body, msg);
    let format = r.i8()?;
    let n = r.count()?;
    let mut column_formats = Vec::with_capacity(r.capacity(n, 2));
    for _ in 0..n {
        column_formats.push(r.i16()?);
    }
    r.finish()?;
    Ok(CopyResponse {
        format,
        column_formats,
    })
}

fn encode_copy_response(dst: &mut BytesMut, tag: u8, c: &CopyResponse) -> Result<(), Error> {
    encode_frame(dst, tag, |w| {
        w.put_i8(c.format);
        put_i16s(w, &c.column_formats, "copy column count")
    })
}

fn parse_function_call_response(body: Bytes) -> Result<BackendMessage, Error> {
    let mut r = Reader::new(body, "FunctionCallResponse");
    let v = r.value()?;
    r.finish()?;
    Ok(BackendMessage::FunctionCallResponse(v))
}

fn parse_negotiate_protocol_version(body: Bytes) -> Result<BackendMessage, Error> {
    let mut r = Reader::new(body, "NegotiateProtocolVersion");
    let newest_minor = r.u32()?;
    let n =
        usize::try_from(r.i32()?).map_err(|_| Error::InvalidValue("unsupported option count"))?;
    let mut unsupported = Vec::with_capacity(r.capacity(n, 1));
    for _ in 0..n {
        unsupported.push(r.cstr()?);
    }
    r.finish()?;
    Ok(BackendMessage::NegotiateProtocolVersion {
        newest_minor,
        unsupported,
    })
}

fn parse_notification(body: Bytes) -> Result<BackendMessage, Error> {
    let mut r = Reader::new(body, "NotificationResponse");
    let pid = r.u32()?;
    let channel = r.cstr()?;
    let payload = r.cstr()?;
    r.finish()?;
    Ok(BackendMessage::NotificationResponse {
        pid,
        channel,
        payload,
    })
}

fn parse_parameter_description(body: Bytes) -> Result<BackendMessage, Error> {
    let mut r = Reader::new(body, "ParameterDescription");
    let n = r.count()?;
    let mut types = Vec::with_capacity(r.capacity(n, 4));
    for _ in 0..n {
        types.push(r.u32()?);
    }
    r.finish()?;
    Ok(BackendMessage::ParameterDescription(types))
}

fn parse_parameter_status(body: Bytes) -> Result<BackendMessage, Error> {
    let mut r = Reader::new(body, "ParameterStatus");
    let name = r.cstr()?;
    let value = r.cstr()?;
    r.finish()?;
    Ok(BackendMessage::ParameterStatus { name, value })
}

fn parse_ready_for_query(body: Bytes) -> Result<TransactionStatus, Error> {
    let mut r = Reader::new(body, "ReadyForQuery");
    let status = TransactionStatus::from_byte(r.u8()?)?;
    r.finish()?;
    Ok(status)
}

/// Smallest encoded RowDescription field: an empty name's NUL plus 18 fixed bytes.
const MIN_FIELD_DESCRIPTION_LEN: usize = 19;

fn parse_row_description(body: Bytes) -> Result<BackendMessage, Error> {
    let mut r = Reader::new(body, "RowDescription");
    let n = r.count()?;
    let mut fields = Vec::with_capacity(r.capacity(n, MIN_FIELD_DESCRIPTION_LEN));
    for _ in 0..n {
        fields.push(FieldDescription {
            name: r.cstr()?,
            table_oid: r.u32()?,
            column: r.i16()?,
            type_oid: r.u32()?,
            type_size: r.i16()?,
            type_modifier: r.i32()?,
            format: r.i16()?,
        });
    }
    r.finish()?;
    Ok(BackendMessage::RowDescription(fields))
}

fn encode_row_description(dst: &mut BytesMut, fields: &[FieldDescription]) -> Result<(), Error> {
    encode_frame(dst, tag::ROW_DESCRIPTION, |w| {
        put_count(w, fields.len(), "RowDescription field count")?;
        for f in fields {
            put_cstr(w, &f.name, "column name")?;
            w.put_u32(f.table_oid);
            w.put_i16(f.column);
            w.put_u32(f.type_oid);
            w.put_i16(f.type_size);
            w.put_i32(f.type_modifier);
            w.put_i16(f.format);
        }
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

    fn parse(tag: u8, body: &[u8]) -> Result<BackendMessage, Error> {
        Frame::from_parts(tag, body).and_then(|f| BackendMessage::parse(&f))
    }

    #[test]
    fn parses_spec_examples() {
        assert_eq!(
            parse(b'R', b"\0\0\0\x05salt"),
            Ok(BackendMessage::Authentication(
                Authentication::Md5Password { salt: *b"salt" }
            ))
        );
        assert_eq!(
            parse(b'R', b"\0\0\0\x0aSCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"),
            Ok(BackendMessage::Authentication(Authentication::Sasl {
                mechanisms: vec![
                    Bytes::from_static(b"SCRAM-SHA-256-PLUS"),
                    Bytes::from_static(b"SCRAM-SHA-256")
                ]
            }))
        );
        assert_eq!(
            parse(b'Z', b"T"),
            Ok(BackendMessage::ReadyForQuery(
                TransactionStatus::InTransaction
            ))
        );
        assert_eq!(
            parse(b'v', b"\0\0\0\x02\0\0\0\x01_pq_.x\0"),
            Ok(BackendMessage::NegotiateProtocolVersion {
                newest_minor: 2,
                unsupported: vec![Bytes::from_static(b"_pq_.x")]
            })
        );
    }

    #[test]
    fn backend_key_data_takes_both_key_lengths() {
        for key_len in [4usize, 32, 256] {
            let mut body = vec![0, 0, 0, 9];
            body.resize(4 + key_len, 0xab);
            let Ok(BackendMessage::BackendKeyData { pid, key }) = parse(b'K', &body) else {
                panic!("not BackendKeyData")
            };
            assert_eq!((pid, key.len()), (9, key_len));
        }
    }

    #[test]
    fn data_row_is_lazy_and_zero_copy() {
        let f = Frame::from_parts(b'D', b"\0\x03\0\0\0\x01a\xff\xff\xff\xff\0\0\0\0").unwrap();
        let Ok(BackendMessage::DataRow(row)) = BackendMessage::parse(&f) else {
            panic!("not a DataRow")
        };
        assert_eq!(row.len(), 3);
        let cols: Vec<_> = row.iter().collect();
        assert_eq!(
            cols,
            vec![Some(Bytes::from_static(b"a")), None, Some(Bytes::new())]
        );
        assert_eq!(
            cols[0].as_ref().map(|c| c.as_ptr()),
            Some(f.as_bytes()[11..].as_ptr())
        );
    }

    #[test]
    fn fields_never_assume_a_field_exists() {
        let Ok(BackendMessage::ErrorResponse(f)) = parse(b'E', b"Mboom\0\0") else {
            panic!("not an ErrorResponse")
        };
        assert_eq!(f.code(), None);
        assert_eq!(f.severity(), None);
        assert_eq!(f.message().map(|m| &m[..]), Some(&b"boom"[..]));
        let f = Fields::new("FATAL", "08P01", "bad");
        assert_eq!(f.severity().map(|m| &m[..]), Some(&b"FATAL"[..]));
        assert_eq!(f.code().map(|m| &m[..]), Some(&b"08P01"[..]));
    }

    #[test]
    fn error_response_helper_matches_fields() {
        let mut a = BytesMut::new();
        encode_error_response(&mut a, "ERROR", "08P01", "protocol violation").unwrap();
        let mut b = BytesMut::new();
        BackendMessage::ErrorResponse(Fields::new("ERROR", "08P01", "protocol violation"))
            .encode(&mut b)
            .unwrap();
        assert_eq!(a, b);
        assert!(encode_error_response(&mut a, "ERROR", "08P01", "a\0b").is_err());
    }

    #[test]
    fn ready_for_query_fast_path() {
        let f = |b: &[u8]| Frame::from_parts(b'Z', b).unwrap();
        assert_eq!(
            ready_for_query_status(&f(b"I")),
            Ok(TransactionStatus::Idle)
        );
        assert_eq!(
            ready_for_query_status(&f(b"E")),
            Ok(TransactionStatus::Failed)
        );
        assert_eq!(
            ready_for_query_status(&f(b"X")),
            Err(Error::InvalidValue("ReadyForQuery status"))
        );
        assert_eq!(
            ready_for_query_status(&f(b"")),
            Err(Error::Truncated("ReadyForQuery"))
        );
        assert_eq!(
            ready_for_query_status(&f(b"II")),
            Err(Error::TrailingBytes("ReadyForQuery"))
        );
        assert_eq!(
            ready_for_query_status(&Frame::from_parts(b'C', b"I").unwrap()),
            Err(Error::Unexpected("non-ReadyForQuery"))
        );
    }

    #[test]
    fn malformed_messages_are_typed_errors() {
        let cases: &[(u8, &[u8], Error)] = &[
            (b'R', b"\0\0", Error::Truncated("Authentication")),
            (b'R', b"\0\0\0\0x", Error::TrailingBytes("Authentication")),
            (
                b'R',
                b"\0\0\0\x06",
                Error::InvalidValue("authentication request code"),
            ),
            (b'R', b"\0\0\0\x05ab", Error::Truncated("Authentication")),
            (
                b'R',
                b"\0\0\0\x0aSCRAM-SHA-256\0",
                Error::MissingNul("Authentication"),
            ),
            (b'K', b"\0\0\0\x01abc", Error::Truncated("BackendKeyData")),
            (
                b'K',
                &[0; 4 + 257],
                Error::InvalidValue("cancel key length"),
            ),
            (b'2', b"x", Error::TrailingBytes("BindComplete")),
            (b'3', b"x", Error::TrailingBytes("CloseComplete")),
            (b'C', b"SELECT 1", Error::MissingNul("CommandComplete")),
            (b'c', b"x", Error::TrailingBytes("CopyDone")),
            (b'G', b"\0\0\x02\0\0", Error::Truncated("CopyInResponse")),
            (b'H', b"\0\0\0x", Error::TrailingBytes("CopyOutResponse")),
            (b'W', b"", Error::Truncated("CopyBothResponse")),
            (
                b'D',
                b"\0\x01\xff\xff\xff\xfe",
                Error::InvalidValue("value length"),
            ),
            (b'D', b"\0\x02\0\0\0\x01a", Error::Truncated("DataRow")),
            (b'D', b"\0\0x", Error::TrailingBytes("DataRow")),
            (b'D', b"\x80\0", Error::Truncated("DataRow")),
            (b'I', b"x", Error::TrailingBytes("EmptyQueryResponse")),
            (b'E', b"Mboom\0", Error::Truncated("ErrorResponse")),
            (b'E', b"Mboom", Error::MissingNul("ErrorResponse")),
            (b'E', b"\0x", Error::TrailingBytes("ErrorResponse")),
            (b'N', b"", Error::Truncated("NoticeResponse")),
            (
                b'V',
                b"\xff\xff\xff\xfd",
                Error::InvalidValue("value length"),
            ),
            (
                b'v',
                b"\0\0\0\x02\xff\xff\xff\xff",
                Error::InvalidValue("unsupported option count"),
            ),
            (
                b'v',
                b"\0\0\0\x02\x7f\xff\xff\xff",
                Error::MissingNul("NegotiateProtocolVersion"),
            ),
            (b'n', b"x", Error::TrailingBytes("NoData")),
            (
                b'A',
                b"\0\0\0\x01chan\0",
                Error::MissingNul("NotificationResponse"),
            ),
            (
                b't',
                b"\0\x02\0\0\0\x17",
                Error::Truncated("ParameterDescription"),
            ),
            (b'S', b"name\0", Error::MissingNul("ParameterStatus")),
            (b'1', b"x", Error::TrailingBytes("ParseComplete")),
            (b's', b"x", Error::TrailingBytes("PortalSuspended")),
            (b'Z', b"", Error::Truncated("ReadyForQuery")),
            (b'Z', b"Q", Error::InvalidValue("ReadyForQuery status")),
            (b'T', b"\0\x01a\0\0\0", Error::Truncated("RowDescription")),
            (b'T', b"\xff\xff", Error::MissingNul("RowDescription")),
            (b'Q', b"", Error::UnknownMessageType(b'Q')),
        ];
        for (tag, body, want) in cases {
            assert_eq!(
                parse(*tag, body).as_ref(),
                Err(want),
                "{} {body:?}",
                *tag as char
            );
        }
    }

    #[test]
    fn encoders_refuse_instead_of_truncating() {
        let mut d = BytesMut::from(&b"keep"[..]);
        let cases = [
            BackendMessage::BackendKeyData {
                pid: 1,
                key: Bytes::from_static(b"abc"),
            },
            BackendMessage::CommandComplete(Bytes::from_static(b"a\0")),
            BackendMessage::ParameterDescription(vec![0; 65_536]),
            BackendMessage::Authentication(Authentication::Sasl {
                mechanisms: vec![Bytes::new()],
            }),
        ];
        for m in cases {
            assert!(m.encode(&mut d).is_err(), "{m:?}");
        }
        let mut f = Fields::default();
        f.push(0, Bytes::from_static(b"x"));
        assert!(BackendMessage::NoticeResponse(f).encode(&mut d).is_err());
        assert_eq!(&d[..], b"keep");
    }

    proptest! {
        #[test]
        fn round_trips(msg in arbitrary::backend()) {
            let mut d = BytesMut::new();
            msg.encode(&mut d).unwrap();
            let f = split_frame(&mut d, Direction::Backend, &Limits::default()).unwrap().unwrap();
            prop_assert!(d.is_empty());
            prop_assert_eq!(BackendMessage::parse(&f), Ok(msg));
        }

        #[test]
        fn data_row_iter_matches_values(cols in proptest::collection::vec(
            proptest::option::of(arbitrary::bytes()), 0..10)) {
            let row = DataRow::from_values(cols.iter().map(|c| c.as_deref())).unwrap();
            prop_assert_eq!(row.len(), cols.len());
            prop_assert_eq!(row.iter().collect::<Vec<_>>(), cols.clone());
            let borrowed = DataRowRef::parse(row.body()).unwrap();
            prop_assert_eq!(borrowed.len(), cols.len());
            let want: Vec<Option<&[u8]>> = cols.iter().map(|c| c.as_deref()).collect();
            prop_assert_eq!(borrowed.iter().collect::<Vec<_>>(), want);
        }

        #[test]
        fn never_panics(tag in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(f) = Frame::from_parts(tag, &body) {
                if let Ok(BackendMessage::DataRow(row)) = BackendMessage::parse(&f) {
                    row.iter().for_each(drop);
                }
                if let Ok(row) = DataRowRef::parse(&body) {
                    row.iter().for_each(drop);
                }
                let _ = ready_for_query_status(&f);
            }
        }
    }
}
