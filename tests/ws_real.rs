//! Clients over WebSocket to the `muxql` binary (`--listen-ws`, `--listen-wss`): each binary
//! message carries raw wire bytes of the listener's protocol and message boundaries mean
//! nothing, as `@neondatabase/serverless` uses it. Real PostgreSQL and MariaDB behind.

mod common;
mod proc;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use muxql::mysql::auth::native;
use muxql::mysql::handshake::{HandshakeResponse41, HandshakeV10};
use muxql::mysql::packet::write_packet;
use muxql::mysql::{CapabilityFlags, PacketCodec};
use muxql::pg::backend::BackendMessage;
use muxql::pg::frame::{split_frame, Direction};
use muxql::pg::frontend::FrontendMessage;
use muxql::pg::startup::{ProtocolVersion, Startup, StartupRequest, PROTOCOL_3_0};
use muxql::wire::Limits;
use proc::{free_port, Muxql};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

/// Reads binary messages into `buf` until `done` says the bytes so far are enough.
fn read_until<S: Read + Write>(
    ws: &mut WebSocket<S>,
    buf: &mut BytesMut,
    mut done: impl FnMut(&BytesMut) -> bool,
) {
    while !done(buf) {
        match ws.read().expect("read a message") {
            Message::Binary(b) => buf.extend_from_slice(&b),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// The backend messages in `buf` up to the first ReadyForQuery, which must be there.
fn pg_until_ready(buf: &mut BytesMut) -> Option<Vec<BackendMessage>> {
    let mut copy = buf.clone();
    let mut msgs = Vec::new();
    while let Some(f) = split_frame(&mut copy, Direction::Backend, &Limits::default()).ok()? {
        let m = BackendMessage::parse(&f).ok()?;
        let ready = matches!(m, BackendMessage::ReadyForQuery(_));
        msgs.push(m);
        if ready {
            *buf = copy;
            return Some(msgs);
        }
    }
    None
}

/// The StartupMessage of the test's SCRAM user for its database.
fn pg_startup() -> BytesMut {
    let pg = common::pg();
    let mut startup = BytesMut::new();
    StartupRequest::Startup(Startup {
        version: ProtocolVersion(PROTOCOL_3_0),
        params: vec![
            (
                Bytes::from_static(b"user"),
                Bytes::from(pg.scram_user.clone()),
            ),
            (Bytes::from_static(b"database"), Bytes::from(pg.db.clone())),
        ],
    })
    .encode(&mut startup)
    .expect("startup");
    startup
}

fn pg_login_and_query<S: Read + Write>(ws: &mut WebSocket<S>, one_byte_frames: bool) -> String {
    let startup = pg_startup();
    if one_byte_frames {
        for b in startup.iter() {
            ws.send(Message::binary(vec![*b])).expect("send a byte");
        }
    } else {
        ws.send(Message::binary(startup.to_vec())).expect("send");
    }
    let mut buf = BytesMut::new();
    let mut welcome = None;
    read_until(ws, &mut buf, |b| {
        let mut b = b.clone();
        welcome = pg_until_ready(&mut b);
        welcome.is_some()
    });
    let mut query = BytesMut::new();
    FrontendMessage::Query(Bytes::from_static(b"SELECT 40 + 2"))
        .encode(&mut query)
        .expect("query");
    ws.send(Message::binary(query.to_vec()))
        .expect("send query");
    let mut buf = BytesMut::new();
    let mut answer = None;
    read_until(ws, &mut buf, |b| {
        let mut b = b.clone();
        answer = pg_until_ready(&mut b);
        answer.is_some()
    });
    answer
        .unwrap_or_default()
        .iter()
        .find_map(|m| match m {
            BackendMessage::DataRow(r) => r
                .iter()
                .next()
                .flatten()
                .map(|v| String::from_utf8_lossy(&v).into_owned()),
            _ => None,
        })
        .expect("a row")
}

fn start_pg(extra: &[&str]) -> Muxql {
    let pg = common::pg();
    let upstream = pg.url(&pg.scram_user);
    let mut args = vec![
        "--upstream",
        upstream.as_str(),
        "--auth",
        "trust",
        "--log-level",
        "warn",
    ];
    args.extend_from_slice(extra);
    Muxql::start(&args)
}

#[test]
fn postgres_over_websocket_with_one_byte_frames_pings_and_closes() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let m = start_pg(&["--listen-ws", &listen]);
    // Any path; the query string means nothing.
    let url = format!("ws://127.0.0.1:{port}/v2?address=elsewhere:5432");
    let (mut ws, response) = tungstenite::connect(&url).expect("upgrade");
    assert_eq!(response.status(), 101);
    assert_eq!(pg_login_and_query(&mut ws, true), "42");
    ws.send(Message::Ping(Bytes::from_static(b"hi").into()))
        .expect("ping");
    match ws.read().expect("pong") {
        Message::Pong(p) => assert_eq!(&p[..], b"hi"),
        other => panic!("{other:?}"),
    }
    ws.close(None).expect("close");
    loop {
        match ws.read() {
            Ok(Message::Close(_)) => {}
            Ok(other) => panic!("{other:?}"),
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("{e}"),
        }
    }
    // A text frame is refused with 1003.
    let (mut ws, _) = tungstenite::connect(&url).expect("upgrade");
    assert_eq!(
        m.metric("muxql_client_connections_total{listener=\"ws\"}"),
        Some(2.0)
    );
    ws.send(Message::text("SELECT 1")).expect("send text");
    match ws.read() {
        Ok(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Unsupported),
        other => panic!("{other:?}"),
    }
}

/// A MySQL client speaking raw packets in binary messages: greeting, native-password login,
/// a query.
#[test]
fn mysql_over_websocket() {
    let my = common::mariadb();
    let port = free_port();
    let listen = format!("mysql@127.0.0.1:{port}");
    let _m = Muxql::start(&[
        "--listen-ws",
        &listen,
        "--upstream",
        &my.url(&my.user),
        "--mysql-auth",
        "mysql_native_password",
        "--log-level",
        "warn",
    ]);
    let (mut ws, _) = tungstenite::connect(format!("ws://127.0.0.1:{port}/")).expect("upgrade");
    let mut buf = BytesMut::new();
    let packet = |ws: &mut WebSocket<_>, buf: &mut BytesMut| -> Bytes {
        read_until(ws, buf, |b| {
            b.len() >= 4 && b.len() >= 4 + usize::from(b[0]) + (usize::from(b[1]) << 8)
        });
        let mut codec = PacketCodec::new(Limits::default(), buf[3]);
        codec.parse(buf).expect("packet").expect("complete").payload
    };
    let greeting = HandshakeV10::parse(&packet(&mut ws, &mut buf)).expect("greeting");
    let caps = CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::CLIENT_SECURE_CONNECTION
        | CapabilityFlags::CLIENT_PLUGIN_AUTH
        | CapabilityFlags::CLIENT_CONNECT_WITH_DB
        | CapabilityFlags::CLIENT_TRANSACTIONS;
    let login = HandshakeResponse41 {
        capabilities: caps,
        max_packet_size: 1 << 24,
        character_set: 45,
        username: Bytes::from(my.user.clone()),
        auth_response: Bytes::from(native::scramble_password(
            &greeting.auth_plugin_data,
            my.password_for(&my.user).as_bytes(),
        )),
        database: Some(Bytes::from(my.db.clone())),
        auth_plugin_name: Some(Bytes::from_static(native::NAME)),
        connect_attrs: vec![],
        zstd_compression_level: None,
    };
    let mut payload = BytesMut::new();
    login.encode(&mut payload).expect("login");
    let mut out = BytesMut::new();
    write_packet(&mut out, &mut 1, &payload).expect("packet");
    ws.send(Message::binary(out.to_vec())).expect("send login");
    assert_eq!(packet(&mut ws, &mut buf)[0], 0x00, "OK");
    let mut out = BytesMut::new();
    write_packet(&mut out, &mut 0, b"\x03SELECT 40 + 2").expect("packet");
    ws.send(Message::binary(out.to_vec())).expect("send query");
    // Column count, column, EOF, row, EOF.
    assert_eq!(&packet(&mut ws, &mut buf)[..], &[1]);
    packet(&mut ws, &mut buf);
    packet(&mut ws, &mut buf);
    assert_eq!(&packet(&mut ws, &mut buf)[..], b"\x0242");
}

/// The same PostgreSQL client over `wss`: TLS from the first byte, verified against the CA.
#[test]
fn postgres_over_websocket_with_tls() {
    let (dir, ca, cert_path, key_path) = certificates();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    // `--client-tls require` is met by wss itself: before listeners told the Engine that the
    // host encrypts them, every wss client was refused with 28000.
    let _m = start_pg(&[
        "--listen-wss",
        &listen,
        "--tls-cert",
        cert_path.to_str().expect("path"),
        "--tls-key",
        key_path.to_str().expect("path"),
        "--client-tls",
        "require",
    ]);
    let mut ws = wss_client(port, &ca);
    assert_eq!(pg_login_and_query(&mut ws, false), "42");
    std::fs::remove_dir_all(&dir).ok();
}

/// A scratch dir with a CA and a server certificate for localhost it signed: (dir, CA,
/// certificate file, key file).
fn certificates() -> (
    std::path::PathBuf,
    rcgen::Certificate,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let dir = std::env::temp_dir().join(common::unique_name("muxql_wss"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .signed_by(&key, &ca, &ca_key)
        .expect("cert");
    let (cert_path, key_path) = (dir.join("server.pem"), dir.join("server.key"));
    std::fs::write(&cert_path, cert.pem()).expect("write");
    std::fs::write(&key_path, key.serialize_pem()).expect("write");
    (dir, ca, cert_path, key_path)
}

/// A `[[listeners]]` entry with its own authentication: cleartext passwords, sent ahead in
/// the same message as the startup packet (a pipelined login, as @neondatabase/serverless
/// sends it), are accepted over `wss` only, while the top-level `auth` stays SCRAM.
#[test]
fn a_wss_listener_takes_pipelined_cleartext_logins_while_tcp_keeps_scram() {
    let (dir, ca, cert_path, key_path) = certificates();
    let pg = common::pg();
    let port = free_port();
    let config = dir.join("muxql.toml");
    std::fs::write(
        &config,
        format!(
            "upstreams = [{upstream:?}]\nauth = \"scram\"\ntls_cert = {cert:?}\ntls_key = {key:?}\n\n\
             [[listeners]]\nlisten = \"127.0.0.1:{port}\"\nwebsocket = \"wss\"\nauth = \"cleartext\"\n",
            upstream = pg.url(&pg.scram_user),
            cert = cert_path.display().to_string(),
            key = key_path.display().to_string(),
        ),
    )
    .expect("write config");
    let m = Muxql::start(&[
        "--config",
        config.to_str().expect("path"),
        "--log-level",
        "warn",
    ]);
    let mut ws = wss_client(port, &ca);
    let mut first = pg_startup();
    muxql::pg::frontend::encode_password_message(&mut first, pg.password.as_bytes())
        .expect("password");
    FrontendMessage::Query(Bytes::from_static(b"SELECT 40 + 2"))
        .encode(&mut first)
        .expect("query");
    ws.send(Message::binary(first.to_vec())).expect("send");
    let mut buf = BytesMut::new();
    read_until(&mut ws, &mut buf, |b| {
        pg_until_ready(&mut b.clone()).is_some()
    });
    let welcome = pg_until_ready(&mut buf).expect("welcome");
    assert!(
        welcome
            .iter()
            .all(|m| !matches!(m, BackendMessage::ErrorResponse(_))),
        "{welcome:?}"
    );
    read_until(&mut ws, &mut buf, |b| {
        pg_until_ready(&mut b.clone()).is_some()
    });
    let answer = pg_until_ready(&mut buf).expect("answer");
    assert!(
        answer
            .iter()
            .any(|m| matches!(m, BackendMessage::DataRow(_))),
        "{answer:?}"
    );
    // The plain TCP listener still asks for SCRAM (AuthenticationSASL, code 10).
    let mut tcp = TcpStream::connect(("127.0.0.1", m.port)).expect("connect");
    let startup = pg_startup();
    tcp.write_all(&startup).expect("send");
    let mut head = [0u8; 9];
    tcp.read_exact(&mut head)
        .expect("an authentication request");
    assert_eq!((head[0], &head[5..9]), (b'R', &10u32.to_be_bytes()[..]));
    std::fs::remove_dir_all(&dir).ok();
}

/// A TLS client of `wss://localhost:port/` trusting `ca`.
fn wss_client(
    port: u16,
    ca: &rcgen::Certificate,
) -> WebSocket<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).expect("root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = "localhost".try_into().expect("name");
    let tls = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let stream = rustls::StreamOwned::new(tls, tcp);
    let (ws, _) = tungstenite::client(format!("wss://localhost:{port}/"), stream).expect("upgrade");
    ws
}
