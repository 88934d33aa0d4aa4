//! A PostgreSQL client of the fuzzed Engine: its requests (each carrying the client's tag) and
//! what it does with the Engine's answers during login (SCRAM, MD5, cleartext).

use bytes::{Bytes, BytesMut};
use muxql::pg::auth::{md5_hash, md5_response, ScramClient};
use muxql::pg::backend::{Authentication, BackendMessage};
use muxql::pg::frame::Frame;
use muxql::pg::frontend::{
    encode_password_message, encode_sasl_response, Bind, Close, Describe, Execute, FrontendMessage,
    Parse, SaslInitialResponse, TargetKind,
};
use muxql::pg::startup::{ProtocolVersion, Startup, PROTOCOL_3_0};

use crate::host::{Auth, USER};

/// Number of requests [`request`] knows.
pub const REQUESTS: u8 = 24;

/// The StartupMessage for `database`.
pub fn startup(database: &'static str) -> BytesMut {
    let mut out = BytesMut::new();
    Startup {
        version: ProtocolVersion(PROTOCOL_3_0),
        params: vec![
            (
                Bytes::from_static(b"user"),
                Bytes::from_static(USER.as_bytes()),
            ),
            (Bytes::from_static(b"database"), Bytes::from(database)),
            (
                Bytes::from_static(b"application_name"),
                Bytes::from_static(b"fuzz"),
            ),
        ],
    }
    .encode(&mut out)
    .expect("startup encodes");
    out
}

fn query(out: &mut BytesMut, sql: &str) {
    FrontendMessage::Query(Bytes::copy_from_slice(sql.as_bytes()))
        .encode(out)
        .expect("query encodes");
}

fn msg(out: &mut BytesMut, m: FrontendMessage) {
    m.encode(out).expect("message encodes");
}

fn parse(out: &mut BytesMut, name: &'static [u8], sql: &str) {
    msg(
        out,
        FrontendMessage::Parse(Parse {
            name: Bytes::from_static(name),
            query: Bytes::copy_from_slice(sql.as_bytes()),
            param_types: vec![],
        }),
    );
}

fn bind_execute(out: &mut BytesMut, statement: &'static [u8], tag: &str) {
    msg(
        out,
        FrontendMessage::Bind(Bind {
            portal: Bytes::new(),
            statement: Bytes::from_static(statement),
            param_formats: vec![],
            params: vec![Some(Bytes::copy_from_slice(tag.as_bytes()))],
            result_formats: vec![],
        }),
    );
    msg(
        out,
        FrontendMessage::Describe(Describe {
            kind: TargetKind::Portal,
            name: Bytes::new(),
        }),
    );
    msg(
        out,
        FrontendMessage::Execute(Execute {
            portal: Bytes::new(),
            max_rows: 0,
        }),
    );
}

/// Request number `n % REQUESTS` from the client tagged `tag`.
pub fn request(n: u8, tag: &str) -> BytesMut {
    let mut out = BytesMut::new();
    let o = &mut out;
    match n % REQUESTS {
        0 => query(o, &format!("SELECT '{tag}'")),
        1 => query(o, "BEGIN"),
        2 => query(o, "COMMIT"),
        3 => query(o, "ROLLBACK"),
        4 => query(o, "SET search_path = x"),
        5 => query(o, "SELECT error"),
        6 => {
            parse(o, b"", "SELECT $1::text");
            bind_execute(o, b"", tag);
            msg(o, FrontendMessage::Sync);
        }
        7 => {
            parse(o, b"s1", "SELECT $1::text");
            msg(o, FrontendMessage::Sync);
        }
        8 => {
            bind_execute(o, b"s1", tag);
            msg(o, FrontendMessage::Sync);
        }
        9 => {
            // The first round trip of a describe-then-execute driver.
            parse(o, b"", "SELECT $1::text AS v");
            msg(
                o,
                FrontendMessage::Describe(Describe {
                    kind: TargetKind::Statement,
                    name: Bytes::new(),
                }),
            );
            msg(o, FrontendMessage::Sync);
        }
        10 => {
            bind_execute(o, b"", tag);
            msg(o, FrontendMessage::Sync);
        }
        11 => query(o, "LISTEN channel"),
        12 => query(o, "PREPARE p AS SELECT 1"),
        13 => query(o, "DEALLOCATE ALL"),
        14 => query(o, "DISCARD ALL"),
        15 => {
            msg(
                o,
                FrontendMessage::Close(Close {
                    kind: TargetKind::Statement,
                    name: Bytes::from_static(b"s1"),
                }),
            );
            msg(o, FrontendMessage::Sync);
        }
        16 => query(o, &format!("SELECT '{tag}'; SELECT '{tag}'")),
        17 => query(o, ""),
        18 => msg(o, FrontendMessage::Terminate),
        19 => {
            parse(o, b"", "SELECT error");
            bind_execute(o, b"", tag);
            msg(o, FrontendMessage::Sync);
        }
        20 => query(o, "SELECT pg_advisory_lock(1)"),
        21 => {
            query(o, "BEGIN");
            query(o, &format!("SELECT '{tag}'"));
        }
        22 => {
            parse(o, b"", "SELECT $1::text");
            bind_execute(o, b"", tag);
            msg(o, FrontendMessage::Flush);
        }
        _ => query(o, "CREATE TEMP TABLE t (a int)"),
    }
    out
}

/// A client's side of the login.
pub struct PgLogin {
    password: &'static str,
    scram: Option<ScramClient>,
}

impl PgLogin {
    /// A login with `password`; `nonce` seeds the SCRAM client nonce.
    pub fn new(password: &'static str, nonce: [u8; 18]) -> PgLogin {
        PgLogin {
            password,
            scram: Some(ScramClient::new(password, nonce, None)),
        }
    }

    /// Handles one message the Engine sent during login: what to send back, and what it says
    /// about the login. A SCRAM server signature that does not verify after the right password
    /// was sent is an invariant failure.
    pub fn handle(&mut self, frame: &Frame, right: bool, out: &mut BytesMut) -> Option<Auth> {
        let Ok(message) = BackendMessage::parse(frame) else {
            return None;
        };
        match message {
            BackendMessage::Authentication(a) => match a {
                Authentication::Ok => Some(Auth::Authenticated),
                Authentication::CleartextPassword => {
                    encode_password_message(out, self.password.as_bytes()).ok()?;
                    None
                }
                Authentication::Md5Password { salt } => {
                    let hash = md5_hash(USER.as_bytes(), self.password.as_bytes());
                    encode_password_message(out, md5_response(&hash, salt).as_bytes()).ok()?;
                    None
                }
                Authentication::Sasl { mechanisms } => {
                    let scram = self.scram.as_mut()?;
                    let mechanism = scram.select_mechanism(&mechanisms).ok()?;
                    SaslInitialResponse {
                        mechanism: Bytes::from_static(mechanism.as_bytes()),
                        data: Some(Bytes::from(scram.client_first())),
                    }
                    .encode(out)
                    .ok()?;
                    None
                }
                Authentication::SaslContinue(data) => {
                    let last = self.scram.as_mut()?.handle_server_first(&data).ok()?;
                    encode_sasl_response(out, &last).ok()?;
                    None
                }
                Authentication::SaslFinal(data) => {
                    let verified = self.scram.as_mut()?.handle_server_final(&data);
                    assert!(
                        !right || verified.is_ok(),
                        "muxql's SCRAM server signature does not verify: {verified:?}"
                    );
                    None
                }
                _ => None,
            },
            BackendMessage::ErrorResponse(_) => Some(Auth::Refused),
            _ => None,
        }
    }
}
