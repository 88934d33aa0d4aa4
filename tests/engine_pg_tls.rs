//! Deterministic Engine tests of TLS negotiation with PostgreSQL clients: the Engine answers
//! an SSLRequest and tells the host to switch; the host terminates TLS.

mod pg_sim;

use muxql::mux::{ClientTls, Listener};
use pg_sim::*;

fn ssl_request() -> BytesMut {
    let mut b = BytesMut::new();
    StartupRequest::SslRequest.encode(&mut b).unwrap();
    b
}

fn with_tls(tls: ClientTls) -> Sim {
    let mut cfg = config(1, PoolMode::Transaction);
    cfg.client_tls = tls;
    Sim::new(cfg)
}

#[test]
fn without_tls_an_ssl_request_is_answered_n() {
    let mut sim = with_tls(ClientTls::Off);
    let a = sim.engine.client_open(Protocol::Postgres, sim.now);
    let out = sim.client_send_raw(a, ssl_request());
    assert_eq!(&bytes_for(&out.to_clients, a)[..], b"N");
    assert!(!out
        .flow
        .iter()
        .any(|f| matches!(f, Action::StartTls { .. })));
}

#[test]
fn an_ssl_request_is_answered_s_and_the_host_told_to_switch() {
    let mut sim = with_tls(ClientTls::Offer);
    let a = sim.engine.client_open(Protocol::Postgres, sim.now);
    let out = sim.client_send_raw(a, ssl_request());
    assert_eq!(&bytes_for(&out.to_clients, a)[..], b"S");
    assert_eq!(
        out.flow,
        vec![Action::StartTls {
            id: a,
            records: Bytes::new()
        }]
    );
    // What follows is the plaintext the host decrypted: the login goes on as usual.
    let out = sim.client_send_raw(a, startup_packet(&[]));
    let u = out.connects[0];
    let out = sim.login_upstream(u, 7);
    assert!(is_ready(&out.client_msgs(a)));
}

/// Bytes sent behind an SSLRequest before the answer would be taken as plaintext once TLS
/// runs (CVE-2021-23214): they are refused, as PostgreSQL refuses them.
#[test]
fn bytes_behind_an_ssl_request_are_refused() {
    let mut sim = with_tls(ClientTls::Offer);
    let a = sim.engine.client_open(Protocol::Postgres, sim.now);
    let mut both = ssl_request();
    both.extend_from_slice(&startup_packet(&[]));
    let out = sim.client_send_raw(a, both);
    assert!(out.flow.is_empty(), "no switch: {:?}", out.flow);
    assert_eq!(out.closed_clients, vec![a]);
    match &out.client_msgs(a)[..] {
        [BackendMessage::ErrorResponse(f)] => {
            assert_eq!(f.code().map(|c| &c[..]), Some(&b"08P01"[..]));
        }
        other => panic!("{other:?}"),
    }
}

/// Over TLS, with the certificate's binding data, SCRAM-SHA-256-PLUS is offered first; without
/// TLS only SCRAM-SHA-256.
#[test]
fn scram_plus_is_offered_over_tls() {
    let mut cfg = config(1, PoolMode::Transaction);
    cfg.client_tls = ClientTls::Offer;
    cfg.client_auth = ClientAuth::ScramSha256;
    cfg.tls_server_end_point = Some(vec![7; 32]);
    let mut sim = Sim::new(cfg);
    let mechanisms = |sim: &mut Sim, tls: bool| {
        let a = sim.engine.client_open(Protocol::Postgres, sim.now);
        if tls {
            sim.client_send_raw(a, ssl_request());
        }
        let out = sim.client_send_raw(a, startup_packet(&[]));
        for u in out.connects.clone() {
            sim.login_upstream(u, 9);
        }
        let msgs = frames(bytes_for(&out.to_clients, a), Direction::Backend);
        msgs.iter()
            .find_map(|f| match BackendMessage::parse(f) {
                Ok(BackendMessage::Authentication(muxql::pg::backend::Authentication::Sasl {
                    mechanisms,
                })) => Some(mechanisms),
                _ => None,
            })
            .expect("AuthenticationSASL")
    };
    assert_eq!(
        mechanisms(&mut sim, true),
        [&b"SCRAM-SHA-256-PLUS"[..], &b"SCRAM-SHA-256"[..]]
    );
    assert_eq!(mechanisms(&mut sim, false), [&b"SCRAM-SHA-256"[..]]);
}

#[test]
fn required_tls_refuses_a_plaintext_login_and_a_second_ssl_request() {
    let mut sim = with_tls(ClientTls::Require);
    let a = sim.engine.client_open(Protocol::Postgres, sim.now);
    let out = sim.client_send_raw(a, startup_packet(&[]));
    assert_eq!(out.closed_clients, vec![a]);
    match &out.client_msgs(a)[..] {
        [BackendMessage::ErrorResponse(f)] => {
            assert_eq!(f.code().map(|c| &c[..]), Some(&b"28000"[..]));
        }
        other => panic!("{other:?}"),
    }
    let b = sim.engine.client_open(Protocol::Postgres, sim.now);
    sim.client_send_raw(b, ssl_request());
    let out = sim.client_send_raw(b, ssl_request());
    assert_eq!(out.closed_clients, vec![b], "an SSLRequest over TLS");
}

/// PostgreSQL 17's direct TLS: a client that opens with a TLS handshake instead of an
/// SSLRequest gets the switch at once, its first bytes handed to TLS.
#[test]
fn direct_tls_hands_the_first_bytes_to_tls() {
    let mut sim = with_tls(ClientTls::Require);
    let a = sim.engine.client_open(Protocol::Postgres, sim.now);
    let hello = Bytes::from_static(b"\x16\x03\x01\x02\x00 ClientHello");
    let out = sim.client_send_raw(a, BytesMut::from(&hello[..]));
    assert!(out.to_clients.is_empty());
    assert_eq!(
        out.flow,
        vec![Action::StartTls {
            id: a,
            records: hello
        }]
    );
    let out = sim.client_send_raw(a, startup_packet(&[]));
    assert_eq!(out.connects.len(), 1, "logged in over TLS: {out:?}");
}

fn listener(secure: bool, auth: Option<ClientAuth>) -> Listener {
    let mut l = Listener::new(Protocol::Postgres);
    l.secure = secure;
    l.client_auth = auth;
    l
}

/// A client of a listener the host encrypts itself (wss, TLS from the first byte) meets a TLS
/// requirement without an SSLRequest; before listeners were told apart, every such client was
/// refused with 28000 when `client_tls = require`.
#[test]
fn a_client_the_host_encrypts_meets_the_tls_requirement() {
    let mut sim = with_tls(ClientTls::Require);
    let a = sim.engine.client_open_on(&listener(true, None), sim.now);
    let out = sim.client_send_raw(a, startup_packet(&[]));
    assert!(out.closed_clients.is_empty(), "{out:?}");
    assert_eq!(out.connects.len(), 1);
    // No TLS inside TLS: an SSLRequest there is answered N.
    let b = sim.engine.client_open_on(&listener(true, None), sim.now);
    let out = sim.client_send_raw(b, ssl_request());
    assert_eq!(&bytes_for(&out.to_clients, b)[..], b"N");
    assert!(out.flow.is_empty());
}

/// Each listener may authenticate its own way: cleartext (for pipelined logins) on one, SCRAM
/// on the others.
#[test]
fn a_listener_overrides_the_authentication_method() {
    let mut cfg = config(1, PoolMode::Transaction);
    cfg.client_auth = ClientAuth::ScramSha256;
    let mut sim = Sim::new(cfg);
    let first_request = |sim: &mut Sim, l: Listener| {
        let a = sim.engine.client_open_on(&l, sim.now);
        let out = sim.client_send_raw(a, startup_packet(&[]));
        for u in out.connects.clone() {
            sim.login_upstream(u, 9);
        }
        frames(bytes_for(&out.to_clients, a), Direction::Backend)
            .iter()
            .find_map(|f| match BackendMessage::parse(f) {
                Ok(BackendMessage::Authentication(a)) => Some(a),
                _ => None,
            })
            .expect("an authentication request")
    };
    assert!(matches!(
        first_request(&mut sim, listener(true, Some(ClientAuth::Cleartext))),
        muxql::pg::backend::Authentication::CleartextPassword
    ));
    assert!(matches!(
        first_request(&mut sim, listener(false, None)),
        muxql::pg::backend::Authentication::Sasl { .. }
    ));
}
