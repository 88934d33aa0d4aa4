//! Deterministic Engine tests of TLS to the servers: the Engine negotiates it (PostgreSQL's
//! SSLRequest, MySQL's CLIENT_SSL) and tells the host when to switch; the modes decide what a
//! server without TLS gets; bytes a server sends before the handshake are never trusted.

mod mysql_sim;
mod pg_sim;

use muxql::mux::UpstreamTls;
use muxql::mysql::handshake::HandshakeV10;
use muxql::mysql::packet::write_packet;
use muxql::mysql::{auth::native, CapabilityFlags, StatusFlags};
use pg_sim::*;

/// Every action in order: the switch must come after the request and before the login.
fn actions(engine: &mut Engine) -> Vec<Action> {
    std::iter::from_fn(|| engine.poll_action()).collect()
}

/// The verify modes need a CA file (the host reads it; the Engine only checks it is named).
fn ca_for(tls: UpstreamTls) -> Option<String> {
    matches!(tls, UpstreamTls::VerifyCa | UpstreamTls::VerifyFull).then(|| "ca.pem".into())
}

fn pg_engine(tls: UpstreamTls) -> (Engine, UpstreamId) {
    let mut cfg = config(1, PoolMode::Transaction);
    cfg.routes[0].upstream_tls = tls;
    cfg.routes[0].upstream_tls_ca = ca_for(tls);
    let mut engine = Engine::new(cfg).unwrap();
    let client = engine.client_open(Protocol::Postgres, 1);
    engine.client_data(client, startup_packet(&[]), 1);
    let up = actions(&mut engine)
        .into_iter()
        .find_map(|a| match a {
            Action::ConnectUpstream { id, .. } => Some(id),
            _ => None,
        })
        .expect("an upstream is opened");
    engine.upstream_connected(up, 2);
    (engine, up)
}

fn ssl_request() -> Bytes {
    let mut b = BytesMut::new();
    StartupRequest::SslRequest.encode(&mut b).unwrap();
    b.freeze()
}

fn is_startup(a: &Action, up: UpstreamId) -> bool {
    matches!(a, Action::SendUpstream { id, bytes } if *id == up && bytes.len() > 8 && bytes[4..8] == [0, 3, 0, 0])
}

#[test]
fn pg_disable_sends_the_startup_packet_at_once() {
    let (mut engine, up) = pg_engine(UpstreamTls::Disable);
    let out = actions(&mut engine);
    assert_eq!(out.len(), 1);
    assert!(is_startup(&out[0], up), "{out:?}");
}

#[test]
fn pg_require_asks_for_tls_then_switches_before_the_startup_packet() {
    let (mut engine, up) = pg_engine(UpstreamTls::Require);
    assert_eq!(
        actions(&mut engine),
        vec![Action::SendUpstream {
            id: up,
            bytes: ssl_request()
        }]
    );
    engine.upstream_data(up, BytesMut::from(&b"S"[..]), 3);
    let out = actions(&mut engine);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0], Action::StartUpstreamTls { id: up, route: 0 });
    assert!(is_startup(&out[1], up), "{out:?}");
    assert!(engine.has_upstream(up));
}

/// CVE-2021-23222: bytes behind the `S` were sent in plaintext before the handshake, by the
/// server or by anyone on the path; they must never be read as the server's.
#[test]
fn pg_bytes_behind_the_s_drop_the_connection() {
    let (mut engine, up) = pg_engine(UpstreamTls::VerifyFull);
    actions(&mut engine);
    let mut answer = BytesMut::from(&b"S"[..]);
    answer.extend_from_slice(&enc_back(&[BackendMessage::Authentication(
        muxql::pg::backend::Authentication::Ok,
    )]));
    engine.upstream_data(up, answer, 3);
    let out = actions(&mut engine);
    assert!(out.contains(&Action::CloseUpstream { id: up }), "{out:?}");
    assert!(!out
        .iter()
        .any(|a| matches!(a, Action::StartUpstreamTls { .. })));
    assert!(!engine.has_upstream(up));
}

#[test]
fn pg_a_server_without_tls_is_refused_unless_the_mode_prefers() {
    for tls in [
        UpstreamTls::Require,
        UpstreamTls::VerifyCa,
        UpstreamTls::VerifyFull,
    ] {
        let (mut engine, up) = pg_engine(tls);
        actions(&mut engine);
        engine.upstream_data(up, BytesMut::from(&b"N"[..]), 3);
        let out = actions(&mut engine);
        assert!(
            out.contains(&Action::CloseUpstream { id: up }),
            "{tls:?}: {out:?}"
        );
        assert!(
            !out.iter().any(|a| is_startup(a, up)),
            "{tls:?}: no downgrade"
        );
    }
    let (mut engine, up) = pg_engine(UpstreamTls::Prefer);
    actions(&mut engine);
    engine.upstream_data(up, BytesMut::from(&b"N"[..]), 3);
    let out = actions(&mut engine);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(is_startup(&out[0], up), "plaintext login: {out:?}");
}

#[test]
fn pg_an_answer_other_than_s_or_n_drops_the_connection() {
    let (mut engine, up) = pg_engine(UpstreamTls::Prefer);
    actions(&mut engine);
    engine.upstream_data(up, BytesMut::from(&b"E"[..]), 3);
    assert!(actions(&mut engine).contains(&Action::CloseUpstream { id: up }));
}

#[test]
fn pg_after_the_switch_the_login_goes_on_over_tls() {
    let (mut engine, up) = pg_engine(UpstreamTls::Require);
    actions(&mut engine);
    engine.upstream_data(up, BytesMut::from(&b"S"[..]), 3);
    actions(&mut engine);
    // The host decrypts what follows: plaintext PostgreSQL messages again.
    engine.upstream_data(
        up,
        enc_back(&[
            BackendMessage::Authentication(muxql::pg::backend::Authentication::Ok),
            BackendMessage::BackendKeyData {
                pid: 9,
                key: Bytes::from_static(b"KEY!"),
            },
            rfq(TransactionStatus::Idle),
        ]),
        4,
    );
    let out = actions(&mut engine);
    assert!(
        out.iter().any(
            |a| matches!(a, Action::SendClient { bytes, .. } if bytes.ends_with(b"Z\0\0\0\x05I"))
        ),
        "the client is welcomed: {out:?}"
    );
    assert!(engine.check_counters().is_ok());
}

/// A MySQL engine whose pool opened an upstream, and the greeting bytes of a server that
/// offers TLS or not.
fn my_engine(tls: UpstreamTls) -> (Engine, UpstreamId) {
    let mut route = Route::new(Protocol::Mysql, "db", "127.0.0.1:3306", "up");
    route.upstream_tls = tls;
    route.upstream_tls_ca = ca_for(tls);
    let mut cfg = Config::default();
    cfg.routes = vec![route];
    cfg.users = vec![User::new("alice", "pw")];
    cfg.rng_seed = Some([5; 32]);
    let mut engine = Engine::new(cfg).unwrap();
    engine.client_open(Protocol::Mysql, 1);
    let up = actions(&mut engine)
        .into_iter()
        .find_map(|a| match a {
            Action::ConnectUpstream { id, .. } => Some(id),
            _ => None,
        })
        .expect("the first MySQL client makes the pool learn its server");
    engine.upstream_connected(up, 2);
    assert!(actions(&mut engine).is_empty(), "the server speaks first");
    (engine, up)
}

fn greeting(offers_tls: bool) -> BytesMut {
    let mut caps = mysql_sim::caps();
    if offers_tls {
        caps |= CapabilityFlags::CLIENT_SSL;
    }
    let hello = HandshakeV10 {
        server_version: Bytes::from_static(b"5.5.5-10.11.0-MariaDB"),
        connection_id: 7,
        auth_plugin_data: Bytes::from_static(b"abcdefgh12345678ijkl"),
        capabilities: caps,
        character_set: 45,
        status: StatusFlags::SERVER_STATUS_AUTOCOMMIT,
        auth_plugin_name: Some(Bytes::from_static(native::NAME)),
    };
    let mut p = BytesMut::new();
    hello.encode(&mut p).unwrap();
    let mut out = BytesMut::new();
    write_packet(&mut out, &mut 0, &p).unwrap();
    out
}

/// (sequence id, payload) of one packet sent upstream.
fn packet(a: &Action, up: UpstreamId) -> Option<(u8, Bytes)> {
    match a {
        Action::SendUpstream { id, bytes } if *id == up && bytes.len() >= 4 => {
            Some((bytes[3], bytes.slice(4..)))
        }
        _ => None,
    }
}

#[test]
fn mysql_require_sends_the_ssl_request_switches_then_logs_in() {
    let (mut engine, up) = my_engine(UpstreamTls::Require);
    engine.upstream_data(up, greeting(true), 3);
    let out = actions(&mut engine);
    assert_eq!(out.len(), 3, "{out:?}");
    let (seq, request) = packet(&out[0], up).expect("SSLRequest");
    assert_eq!(
        (seq, request.len()),
        (1, 32),
        "a 32-byte SSLRequest, sequence id 1"
    );
    let flags = u32::from_le_bytes(request[..4].try_into().unwrap());
    assert_ne!(u64::from(flags) & CapabilityFlags::CLIENT_SSL.bits(), 0);
    assert_eq!(out[1], Action::StartUpstreamTls { id: up, route: 0 });
    let (seq, login) = packet(&out[2], up).expect("login");
    assert_eq!(seq, 2, "the login follows the SSLRequest");
    assert_eq!(&login[..4], &request[..4], "same capabilities in both");
    assert!(login.len() > 32);
}

#[test]
fn mysql_a_server_without_tls_is_refused_unless_the_mode_prefers() {
    let (mut engine, up) = my_engine(UpstreamTls::VerifyFull);
    engine.upstream_data(up, greeting(false), 3);
    let out = actions(&mut engine);
    assert!(out.contains(&Action::CloseUpstream { id: up }), "{out:?}");
    assert!(
        out.iter().all(|a| packet(a, up).is_none()),
        "no login: {out:?}"
    );

    let (mut engine, up) = my_engine(UpstreamTls::Prefer);
    engine.upstream_data(up, greeting(false), 3);
    let out = actions(&mut engine);
    assert_eq!(out.len(), 1, "{out:?}");
    let (seq, login) = packet(&out[0], up).expect("plaintext login");
    assert_eq!(seq, 1);
    let flags = u32::from_le_bytes(login[..4].try_into().unwrap());
    assert_eq!(u64::from(flags) & CapabilityFlags::CLIENT_SSL.bits(), 0);
}

#[test]
fn mysql_bytes_behind_the_greeting_drop_the_connection_when_tls_follows() {
    let (mut engine, up) = my_engine(UpstreamTls::Require);
    let mut bytes = greeting(true);
    bytes.extend_from_slice(b"\x01\x00\x00\x01\x00");
    engine.upstream_data(up, bytes, 3);
    let out = actions(&mut engine);
    assert!(out.contains(&Action::CloseUpstream { id: up }), "{out:?}");
    assert!(!out
        .iter()
        .any(|a| matches!(a, Action::StartUpstreamTls { .. })));
}

#[test]
fn verify_modes_need_a_ca_and_certificates_need_keys() {
    let mut cfg = config(1, PoolMode::Transaction);
    cfg.routes[0].upstream_tls = UpstreamTls::VerifyCa;
    let err = Engine::new(cfg.clone()).unwrap_err().to_string();
    assert!(err.contains("need a CA file"), "{err}");
    cfg.routes[0].upstream_tls_ca = Some("ca.pem".into());
    cfg.routes[0].upstream_tls_cert = Some("client.pem".into());
    let err = Engine::new(cfg.clone()).unwrap_err().to_string();
    assert!(err.contains("needs its key"), "{err}");
    cfg.routes[0].upstream_tls_key = Some("client.key".into());
    assert!(Engine::new(cfg.clone()).is_ok());
    cfg.routes[0].upstream_tls = UpstreamTls::Disable;
    let err = Engine::new(cfg).unwrap_err().to_string();
    assert!(err.contains("upstream TLS is disabled"), "{err}");
}
