//! The PostgreSQL codec against a real server: a minimal client built only on `muxql::pg`
//! logs in with trust, md5 and SCRAM, runs simple and extended queries, COPY in and out,
//! LISTEN/NOTIFY and a function call, and parses every byte the server sends.
//!
//! The server comes from the shared harness (`tests/common`, `scripts/dbs`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use muxql::pg::auth::{md5_hash, md5_response, ScramClient};
use muxql::pg::backend::{Authentication, BackendMessage, TransactionStatus};
use muxql::pg::frame::{split_frame, Direction};
use muxql::pg::frontend::{
    bind_names, encode_bind_with_statement, encode_sasl_response, Bind, Close, Describe, Execute,
    FrontendMessage, FunctionCall, Parse, SaslInitialResponse, TargetKind,
};
use muxql::pg::startup::{ProtocolVersion, Startup, StartupRequest, PROTOCOL_3_0, PROTOCOL_3_2};
use muxql::wire::Limits;

mod common;

use common::{pg, PgEnv};

/// How a login was authenticated.
#[derive(Debug, PartialEq, Eq)]
enum Method {
    Trust,
    Md5,
    Scram,
}

struct Conn {
    sock: TcpStream,
    buf: BytesMut,
    pid: u32,
    method: Method,
}

impl Conn {
    fn open(env: &PgEnv) -> Conn {
        let sock = TcpStream::connect(env.addr()).expect("connect");
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Conn {
            sock,
            buf: BytesMut::new(),
            pid: 0,
            method: Method::Trust,
        }
    }

    fn startup(&mut self, user: &str, db: &str, version: u32, extra: &[(&str, &str)]) {
        let mut params = vec![
            (
                Bytes::from_static(b"user"),
                Bytes::copy_from_slice(user.as_bytes()),
            ),
            (
                Bytes::from_static(b"database"),
                Bytes::copy_from_slice(db.as_bytes()),
            ),
            (
                Bytes::from_static(b"application_name"),
                Bytes::from_static(b"muxql-codec-test"),
            ),
        ];
        for (k, v) in extra {
            params.push((
                Bytes::copy_from_slice(k.as_bytes()),
                Bytes::copy_from_slice(v.as_bytes()),
            ));
        }
        let mut out = BytesMut::new();
        StartupRequest::Startup(Startup {
            version: ProtocolVersion(version),
            params,
        })
        .encode(&mut out)
        .unwrap();
        self.write(&out);
    }

    fn connect(env: &PgEnv, user: &str) -> Conn {
        Self::connect_with(env, user, PROTOCOL_3_0, &[]).0
    }

    /// Logs in; returns the connection and every message before the first ReadyForQuery.
    fn connect_with(
        env: &PgEnv,
        user: &str,
        version: u32,
        extra: &[(&str, &str)],
    ) -> (Conn, Vec<BackendMessage>) {
        let mut c = Conn::open(env);
        c.startup(user, &env.db, version, extra);
        let mut scram: Option<ScramClient> = None;
        let mut seen = Vec::new();
        loop {
            let m = c.recv();
            match &m {
                BackendMessage::Authentication(Authentication::CleartextPassword) => {
                    c.send(&[FrontendMessage::Password(Bytes::from(
                        [env.password.as_bytes(), b"\0"].concat(),
                    ))]);
                }
                BackendMessage::Authentication(Authentication::Md5Password { salt }) => {
                    c.method = Method::Md5;
                    let stored = md5_hash(user.as_bytes(), env.password.as_bytes());
                    let mut out = BytesMut::new();
                    muxql::pg::frontend::encode_password_message(
                        &mut out,
                        md5_response(&stored, *salt).as_bytes(),
                    )
                    .unwrap();
                    c.write(&out);
                }
                BackendMessage::Authentication(Authentication::Sasl { mechanisms }) => {
                    c.method = Method::Scram;
                    let mut nonce = [0u8; 18];
                    getrandom::getrandom(&mut nonce).unwrap();
                    let mut client = ScramClient::new(&env.password, nonce, None);
                    let mech = client.select_mechanism(mechanisms).unwrap();
                    let mut out = BytesMut::new();
                    SaslInitialResponse {
                        mechanism: Bytes::from_static(mech.as_bytes()),
                        data: Some(Bytes::from(client.client_first())),
                    }
                    .encode(&mut out)
                    .unwrap();
                    c.write(&out);
                    scram = Some(client);
                }
                BackendMessage::Authentication(Authentication::SaslContinue(data)) => {
                    let client = scram.as_mut().expect("SASLContinue before SASL");
                    let fin = client.handle_server_first(data).unwrap();
                    let mut out = BytesMut::new();
                    encode_sasl_response(&mut out, &fin).unwrap();
                    c.write(&out);
                }
                BackendMessage::Authentication(Authentication::SaslFinal(data)) => {
                    let client = scram.as_mut().expect("SASLFinal before SASL");
                    client.handle_server_final(data).unwrap();
                }
                BackendMessage::BackendKeyData { pid, key } => {
                    assert!(key.len() >= 4);
                    c.pid = *pid;
                }
                BackendMessage::ErrorResponse(f) => panic!("login failed: {f:?}"),
                BackendMessage::ReadyForQuery(s) => {
                    assert_eq!(*s, TransactionStatus::Idle);
                    seen.push(m);
                    return (c, seen);
                }
                _ => {}
            }
            seen.push(m);
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        self.sock.write_all(bytes).expect("write");
    }

    fn send(&mut self, msgs: &[FrontendMessage]) {
        let mut out = BytesMut::new();
        msgs.iter().for_each(|m| m.encode(&mut out).unwrap());
        self.write(&out);
    }

    /// The next backend message; every frame must parse.
    fn recv(&mut self) -> BackendMessage {
        loop {
            match split_frame(&mut self.buf, Direction::Backend, &Limits::default()) {
                Ok(Some(frame)) => {
                    return BackendMessage::parse(&frame)
                        .unwrap_or_else(|e| panic!("unparsable {frame:?}: {e}"))
                }
                Ok(None) => {}
                Err(e) => panic!("bad frame header: {e}"),
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.sock.read(&mut chunk).expect("read");
            assert!(n > 0, "server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Messages up to and including the next ReadyForQuery.
    fn until_ready(&mut self) -> Vec<BackendMessage> {
        let mut out = Vec::new();
        loop {
            let m = self.recv();
            let done = matches!(m, BackendMessage::ReadyForQuery(_));
            out.push(m);
            if done {
                return out;
            }
        }
    }

    fn query(&mut self, sql: &str) -> Vec<BackendMessage> {
        self.send(&[FrontendMessage::Query(Bytes::copy_from_slice(
            sql.as_bytes(),
        ))]);
        self.until_ready()
    }
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn rows(msgs: &[BackendMessage]) -> Vec<Vec<Option<Bytes>>> {
    msgs.iter()
        .filter_map(|m| match m {
            BackendMessage::DataRow(r) => Some(r.iter().collect()),
            _ => None,
        })
        .collect()
}

fn last_status(msgs: &[BackendMessage]) -> TransactionStatus {
    match msgs.last() {
        Some(BackendMessage::ReadyForQuery(s)) => *s,
        other => panic!("no ReadyForQuery at the end: {other:?}"),
    }
}

#[test]
fn logs_in_with_trust_md5_and_scram() {
    let env = pg();
    for (user, method) in [
        (&env.trust_user, Method::Trust),
        (&env.md5_user, Method::Md5),
        (&env.scram_user, Method::Scram),
    ] {
        let (mut c, startup) = Conn::connect_with(env, user, PROTOCOL_3_0, &[]);
        assert_eq!(c.method, method, "{user}");
        assert!(startup.iter().any(|m| matches!(
            m,
            BackendMessage::ParameterStatus { name, .. } if &name[..] == b"server_version"
        )));
        let r = c.query("SELECT current_user");
        assert_eq!(rows(&r), vec![vec![Some(b(user))]]);
        c.send(&[FrontendMessage::Terminate]);
    }
}

#[test]
fn wrong_password_is_an_error_response_with_a_code() {
    let env = pg();
    let bad = PgEnv {
        password: "not-the-password".into(),
        ..env.clone()
    };
    for user in [&env.md5_user, &env.scram_user] {
        let mut c = Conn::open(&bad);
        c.startup(user, &bad.db, PROTOCOL_3_0, &[]);
        let mut scram: Option<ScramClient> = None;
        let err = loop {
            match c.recv() {
                BackendMessage::Authentication(Authentication::Md5Password { salt }) => {
                    let stored = md5_hash(user.as_bytes(), bad.password.as_bytes());
                    let mut out = BytesMut::new();
                    muxql::pg::frontend::encode_password_message(
                        &mut out,
                        md5_response(&stored, salt).as_bytes(),
                    )
                    .unwrap();
                    c.write(&out);
                }
                BackendMessage::Authentication(Authentication::Sasl { mechanisms }) => {
                    let mut client = ScramClient::new(&bad.password, [1; 18], None);
                    let mech = client.select_mechanism(&mechanisms).unwrap();
                    let mut out = BytesMut::new();
                    SaslInitialResponse {
                        mechanism: Bytes::from_static(mech.as_bytes()),
                        data: Some(Bytes::from(client.client_first())),
                    }
                    .encode(&mut out)
                    .unwrap();
                    c.write(&out);
                    scram = Some(client);
                }
                BackendMessage::Authentication(Authentication::SaslContinue(d)) => {
                    let fin = scram.as_mut().unwrap().handle_server_first(&d).unwrap();
                    let mut out = BytesMut::new();
                    encode_sasl_response(&mut out, &fin).unwrap();
                    c.write(&out);
                }
                BackendMessage::ErrorResponse(f) => break f,
                other => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(err.code().map(|c| &c[..]), Some(&b"28P01"[..]), "{user}");
    }
}

#[test]
fn simple_queries_transactions_errors_and_notices() {
    let env = pg();
    let mut c = Conn::connect(env, &env.scram_user);
    let r = c.query("SELECT 1 AS a, NULL::text AS b, ''::text AS c; SELECT 2");
    let BackendMessage::RowDescription(fields) = &r[0] else {
        panic!("{r:?}")
    };
    let names: Vec<_> = fields.iter().map(|f| f.name.clone()).collect();
    assert_eq!(names, vec![b("a"), b("b"), b("c")]);
    assert_eq!(fields[0].type_oid, 23);
    assert_eq!(
        rows(&r),
        vec![
            vec![Some(b("1")), None, Some(Bytes::new())],
            vec![Some(b("2"))]
        ]
    );
    assert!(r.contains(&BackendMessage::CommandComplete(b("SELECT 1"))));

    assert_eq!(
        last_status(&c.query("BEGIN")),
        TransactionStatus::InTransaction
    );
    let r = c.query("SELEC oops");
    let Some(BackendMessage::ErrorResponse(f)) = r.first() else {
        panic!("{r:?}")
    };
    assert_eq!(f.code().map(|c| &c[..]), Some(&b"42601"[..]));
    assert_eq!(f.severity().map(|s| &s[..]), Some(&b"ERROR"[..]));
    assert_eq!(last_status(&r), TransactionStatus::Failed);
    assert_eq!(last_status(&c.query("ROLLBACK")), TransactionStatus::Idle);

    assert_eq!(c.query("")[0], BackendMessage::EmptyQueryResponse);
    let r = c.query("DO $$ BEGIN RAISE NOTICE 'hello %', 42; END $$");
    let Some(BackendMessage::NoticeResponse(n)) = r.first() else {
        panic!("{r:?}")
    };
    assert_eq!(n.message().map(|m| &m[..]), Some(&b"hello 42"[..]));
    let r = c.query("SET application_name = 'renamed'");
    assert!(r.contains(&BackendMessage::ParameterStatus {
        name: b("application_name"),
        value: b("renamed")
    }));
}

#[test]
fn extended_protocol_with_a_renamed_statement() {
    let env = pg();
    let mut c = Conn::connect(env, &env.md5_user);
    c.send(&[
        FrontendMessage::Parse(Parse {
            name: b("muxql_1"),
            query: b("SELECT $1::int4 + 1 AS n, $2::text AS t"),
            param_types: vec![23, 0],
        }),
        FrontendMessage::Describe(Describe {
            kind: TargetKind::Statement,
            name: b("muxql_1"),
        }),
        FrontendMessage::Sync,
    ]);
    let r = c.until_ready();
    assert_eq!(r[0], BackendMessage::ParseComplete);
    assert_eq!(r[1], BackendMessage::ParameterDescription(vec![23, 25]));
    assert!(matches!(&r[2], BackendMessage::RowDescription(f) if f.len() == 2));

    // The client bound "s1"; the proxy rewrites it to the server-side name, zero-copy.
    let mut client_bind = BytesMut::new();
    FrontendMessage::Bind(Bind {
        portal: Bytes::new(),
        statement: b("s1"),
        param_formats: vec![1, 0],
        params: vec![Some(Bytes::copy_from_slice(&41i32.to_be_bytes())), None],
        result_formats: vec![1, 0],
    })
    .encode(&mut client_bind)
    .unwrap();
    let frame = split_frame(&mut client_bind, Direction::Frontend, &Limits::default())
        .unwrap()
        .unwrap();
    let (portal, statement, rest) = bind_names(&frame.body()).unwrap();
    assert_eq!(&statement[..], b"s1");
    let mut out = BytesMut::new();
    encode_bind_with_statement(&mut out, &portal, b"muxql_1", &rest).unwrap();
    FrontendMessage::Execute(Execute {
        portal: Bytes::new(),
        max_rows: 0,
    })
    .encode(&mut out)
    .unwrap();
    FrontendMessage::Sync.encode(&mut out).unwrap();
    c.write(&out);
    let r = c.until_ready();
    assert_eq!(r[0], BackendMessage::BindComplete);
    assert_eq!(
        rows(&r),
        vec![vec![
            Some(Bytes::copy_from_slice(&42i32.to_be_bytes())),
            None
        ]]
    );
    assert!(r.contains(&BackendMessage::CommandComplete(b("SELECT 1"))));

    // Row limits suspend the portal; Close and a no-result Describe.
    c.send(&[
        FrontendMessage::Parse(Parse {
            name: Bytes::new(),
            query: b("SELECT generate_series(1, 3)"),
            param_types: vec![],
        }),
        FrontendMessage::Bind(Bind {
            portal: b("p"),
            statement: Bytes::new(),
            param_formats: vec![],
            params: vec![],
            result_formats: vec![],
        }),
        FrontendMessage::Execute(Execute {
            portal: b("p"),
            max_rows: 2,
        }),
        FrontendMessage::Parse(Parse {
            name: b("ddl"),
            query: b("SET search_path = public"),
            param_types: vec![],
        }),
        FrontendMessage::Describe(Describe {
            kind: TargetKind::Statement,
            name: b("ddl"),
        }),
        FrontendMessage::Close(Close {
            kind: TargetKind::Statement,
            name: b("muxql_1"),
        }),
        FrontendMessage::Flush,
        FrontendMessage::Sync,
    ]);
    let r = c.until_ready();
    assert_eq!(rows(&r).len(), 2);
    assert!(r.contains(&BackendMessage::PortalSuspended));
    assert!(r.contains(&BackendMessage::NoData));
    assert!(r.contains(&BackendMessage::CloseComplete));
    assert_eq!(last_status(&r), TransactionStatus::Idle);
}

#[test]
fn copy_in_and_out() {
    let env = pg();
    let mut c = Conn::connect(env, &env.trust_user);
    c.query("CREATE TEMP TABLE t (a int, b text)");
    c.send(&[FrontendMessage::Query(b("COPY t FROM STDIN"))]);
    assert!(matches!(c.recv(), BackendMessage::CopyInResponse(r) if r.column_formats.len() == 2));
    c.send(&[
        FrontendMessage::CopyData(b("1\tone\n")),
        FrontendMessage::CopyData(b("2\t\\N\n")),
        FrontendMessage::CopyDone,
    ]);
    let r = c.until_ready();
    assert_eq!(r[0], BackendMessage::CommandComplete(b("COPY 2")));

    c.send(&[FrontendMessage::Query(b("COPY t FROM STDIN"))]);
    assert!(matches!(c.recv(), BackendMessage::CopyInResponse(_)));
    c.send(&[FrontendMessage::CopyFail(b("client gave up"))]);
    let r = c.until_ready();
    assert!(matches!(&r[0], BackendMessage::ErrorResponse(f) if f.code().is_some()));

    let r = c.query("COPY t TO STDOUT");
    assert!(matches!(&r[0], BackendMessage::CopyOutResponse(o) if o.format == 0));
    assert_eq!(r[1], BackendMessage::CopyData(b("1\tone\n")));
    assert_eq!(r[2], BackendMessage::CopyData(b("2\t\\N\n")));
    assert_eq!(r[3], BackendMessage::CopyDone);
    assert_eq!(r[4], BackendMessage::CommandComplete(b("COPY 2")));
}

#[test]
fn listen_notify_delivers_a_notification() {
    let env = pg();
    let mut listener = Conn::connect(env, &env.scram_user);
    let mut notifier = Conn::connect(env, &env.md5_user);
    listener.query("LISTEN muxql_chan");
    notifier.query("NOTIFY muxql_chan, 'hello'");
    let m = listener.recv();
    assert_eq!(
        m,
        BackendMessage::NotificationResponse {
            pid: notifier.pid,
            channel: b("muxql_chan"),
            payload: b("hello"),
        }
    );
}

#[test]
fn function_call_fast_path() {
    let env = pg();
    let mut c = Conn::connect(env, &env.trust_user);
    let r = c.query("SELECT 'int4pl'::regproc::oid");
    let oid: u32 = std::str::from_utf8(rows(&r)[0][0].as_ref().unwrap())
        .unwrap()
        .parse()
        .unwrap();
    c.send(&[FrontendMessage::FunctionCall(FunctionCall {
        oid,
        arg_formats: vec![1],
        args: vec![
            Some(Bytes::copy_from_slice(&40i32.to_be_bytes())),
            Some(Bytes::copy_from_slice(&2i32.to_be_bytes())),
        ],
        result_format: 1,
    })]);
    let r = c.until_ready();
    assert_eq!(
        r[0],
        BackendMessage::FunctionCallResponse(Some(Bytes::copy_from_slice(&42i32.to_be_bytes())))
    );
}

#[test]
fn protocol_negotiation_is_parsed() {
    let env = pg();
    // A 3.2 request with an unknown protocol option: servers before 18 answer with
    // NegotiateProtocolVersion, PostgreSQL 18 at least lists the unknown option.
    let (_, startup) = Conn::connect_with(
        env,
        &env.trust_user,
        PROTOCOL_3_2,
        &[("_pq_.muxql_test", "1")],
    );
    let negotiated = startup.iter().find_map(|m| match m {
        BackendMessage::NegotiateProtocolVersion {
            newest_minor,
            unsupported,
        } => Some((*newest_minor, unsupported.clone())),
        _ => None,
    });
    let (minor, unsupported) = negotiated.expect("NegotiateProtocolVersion");
    // The field carries the whole version code, as PostgreSQL sends it.
    let newest = ProtocolVersion(minor);
    assert_eq!(newest.major(), 3);
    assert!(newest.minor() <= 2, "{newest:?}");
    assert_eq!(unsupported, vec![b("_pq_.muxql_test")]);
}
