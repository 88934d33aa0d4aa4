//! Deterministic Engine tests for MySQL: scripted clients and a scripted fake MariaDB upstream,
//! no sockets. Pool counters are checked after every step.

mod mysql_sim;

use muxql::mysql::command::code::{COM_QUIT, COM_RESET_CONNECTION};
use muxql::mysql::response::SessionStateChange;
use mysql_sim::*;

#[test]
fn the_greeting_waits_for_the_first_upstream_and_wrong_passwords_fail() {
    let mut sim = Sim::new(config(1));
    let id = sim.engine.client_open(Protocol::Mysql, sim.now);
    let out = sim.drain();
    assert_eq!(out.connects.len(), 1);
    assert!(
        out.to_clients.is_empty(),
        "no greeting before the server is known"
    );
    let out = sim.login_upstream(out.connects[0], 7);
    let greeting = out.packets_to_client(id);
    let hello = HandshakeV10::parse(&greeting[0]).unwrap();
    assert_eq!(&hello.server_version[..], b"5.5.5-10.11.0-MariaDB");
    assert!(!hello
        .capabilities
        .contains(CapabilityFlags::CLIENT_DEPRECATE_EOF));
    let (bad, out) = sim.open_client("nope");
    let err = ErrPacket::parse(&out.packets_to_client(bad)[0], caps()).unwrap();
    assert_eq!(err.code, 1045);
    assert_eq!(out.closed_clients, vec![bad]);
    sim.ready_client();
}

#[test]
fn a_transaction_keeps_its_upstream_and_waiters_follow_in_order() {
    let mut sim = Sim::new(config(1));
    let a = sim.ready_client();
    let b = sim.ready_client();
    let out = sim.client_send(a, query("BEGIN"));
    let (u, _) = *out
        .to_upstreams
        .first()
        .unwrap_or_else(|| panic!("{out:?}"));
    sim.upstream_send(u, frame(&ok(in_trans(), caps()), 1));
    let out = sim.client_send(b, query("SELECT 2"));
    assert!(
        out.to_upstreams.is_empty(),
        "b waits while a's transaction runs"
    );
    assert_eq!(sim.engine.stats().routes[0].clients_waiting, 1);
    sim.client_send(a, query("COMMIT"));
    let out = sim.upstream_send(
        u,
        frame(&ok(StatusFlags::SERVER_STATUS_AUTOCOMMIT, caps()), 1),
    );
    assert_eq!(out.packets_to_client(a).len(), 1);
    assert_eq!(&out.packets_to_upstream(u)[0][..], b"\x03SELECT 2");
    let out = sim.upstream_send(
        u,
        frame(&ok(StatusFlags::SERVER_STATUS_AUTOCOMMIT, caps()), 1),
    );
    assert_eq!(out.packets_to_client(b).len(), 1);
    assert!(
        out.packets_to_client(a).is_empty(),
        "nothing of b reaches a"
    );
    assert_eq!(sim.engine.stats().routes[0].upstreams_idle, 1);
}

/// An upstream dying under an autocommit command costs its client an ERR for that command
/// (1317, as after KILL QUERY), not its connection; the next command runs on a new upstream
/// with the session's variables. With `close_on_upstream_loss` the client is closed (1927).
#[test]
fn an_upstream_dying_mid_query_fails_only_that_command() {
    let mut sim = Sim::new(config(2));
    let a = sim.ready_client();
    let b = sim.ready_client();
    let out = sim.client_send(a, query("SELECT SLEEP(10)"));
    let (u, _) = out.to_upstreams[0];
    sim.engine.upstream_closed(u, sim.now);
    let out = sim.drain();
    let err = ErrPacket::parse(&out.packets_to_client(a)[0], caps()).unwrap();
    assert_eq!(err.code, 1317);
    assert!(out.closed_clients.is_empty());
    assert!(
        out.closed_upstreams.is_empty(),
        "no CloseUpstream for a dead id"
    );
    let out = sim.client_send(a, query("SELECT 2"));
    assert!(out.closed_clients.is_empty());
    let v = out
        .connects
        .first()
        .copied()
        .or(out.to_upstreams.first().map(|(u, _)| *u));
    assert!(v.is_some(), "served again: {out:?}");
    let out = sim.client_send(b, query("SELECT 1"));
    assert!(out.closed_clients.is_empty());

    let mut cfg = config(1);
    cfg.close_on_upstream_loss = true;
    let mut sim = Sim::new(cfg);
    let a = sim.ready_client();
    let out = sim.client_send(a, query("SELECT 1"));
    let (u, _) = out.to_upstreams[0];
    sim.engine.upstream_closed(u, sim.now);
    assert_eq!(sim.drain().closed_clients, vec![a]);
}

#[test]
fn malformed_input_closes_only_that_client() {
    let mut sim = Sim::new(config(1));
    let a = sim.ready_client();
    let b = sim.ready_client();
    // A command packet whose sequence id is not 0.
    let out = sim.client_send(a, frame(b"\x03SELECT 1", 5));
    assert_eq!(out.closed_clients, vec![a]);
    let out = sim.client_send(b, query("SELECT 1"));
    assert_eq!(out.to_upstreams.len(), 1);
}

#[test]
fn a_user_variable_pins_until_reset_and_quit_cleans_the_upstream() {
    let mut sim = Sim::new(config(1));
    let a = sim.ready_client();
    let out = sim.client_send(a, query("SET @x = 1"));
    let (u, _) = out.to_upstreams[0];
    sim.upstream_send(
        u,
        frame(&ok(StatusFlags::SERVER_STATUS_AUTOCOMMIT, caps()), 1),
    );
    let stats = sim.engine.stats().routes[0];
    assert_eq!((stats.clients_pinned, stats.upstreams_active), (1, 1));
    let out = sim.client_send(a, frame(&[COM_QUIT], 0));
    assert_eq!(out.closed_clients, vec![a]);
    let sent = out.packets_to_upstream(u);
    assert_eq!(
        sent[0][0], 0x1F,
        "COM_RESET_CONNECTION after a pinned client"
    );
    let stats = sim.engine.stats().routes[0];
    assert_eq!((stats.clients_pinned, stats.clients), (0, 0));
}

#[test]
fn a_ping_is_answered_without_an_upstream() {
    let mut sim = Sim::new(config(1));
    let a = sim.ready_client();
    let out = sim.client_send(a, frame(&[0x0E], 0));
    assert!(out.to_upstreams.is_empty());
    assert_eq!(out.packets_to_client(a)[0][0], 0x00);
}

/// An OK in autocommit mode reporting `change` through the session trackers.
fn ok_with_change(change: SessionStateChange) -> Vec<u8> {
    let mut state = BytesMut::new();
    change.encode(&mut state);
    let mut ok = OkPacket::new(
        StatusFlags::SERVER_STATUS_AUTOCOMMIT | StatusFlags::SERVER_SESSION_STATE_CHANGED,
    );
    ok.session_state = state.freeze();
    let mut p = BytesMut::new();
    ok.encode(&mut p, caps()).unwrap();
    p.to_vec()
}

/// An OK reporting that system variable `name` is now `value`.
fn ok_with_var(name: &str, value: &str) -> Vec<u8> {
    ok_with_change(SessionStateChange::SystemVariable {
        name: Bytes::copy_from_slice(name.as_bytes()),
        value: Bytes::copy_from_slice(value.as_bytes()),
    })
}

#[test]
fn tracked_variables_follow_their_client_and_replays_are_swallowed() {
    let mut sim = Sim::new(config(1));
    let a = sim.ready_client();
    let b = sim.ready_client();
    let out = sim.client_send(a, query("SET time_zone = '+02:00'"));
    let (u, _) = out.to_upstreams[0];
    let out = sim.upstream_send(u, frame(&ok_with_var("time_zone", "+02:00"), 1));
    assert_eq!(
        out.packets_to_client(a).len(),
        1,
        "a's OK, with its tracker data"
    );
    let out = sim.client_send(b, query("SELECT @@time_zone"));
    let sent = out.packets_to_upstream(u);
    assert_eq!(&sent[0][..], b"\x03SET @@SESSION.time_zone = DEFAULT");
    assert_eq!(&sent[1][..], b"\x03SELECT @@time_zone");
    let ok_plain = ok(StatusFlags::SERVER_STATUS_AUTOCOMMIT, caps());
    let mut answers = frame(&ok_with_var("time_zone", "SYSTEM"), 1);
    answers.extend_from_slice(&frame(&ok_plain, 1));
    let out = sim.upstream_send(u, answers);
    assert_eq!(
        out.packets_to_client(b),
        vec![Bytes::from(ok_plain.clone())]
    );
    let out = sim.client_send(a, query("SELECT 1"));
    let sent = out.packets_to_upstream(u);
    assert_eq!(&sent[0][..], b"\x03SET @@SESSION.time_zone = '+02:00'");
}

#[test]
fn autocommit_queries_of_waiting_clients_run_behind_a_busy_upstream() {
    let mut cfg = config(1);
    cfg.pipeline_depth = 4;
    let mut sim = Sim::new(cfg);
    let a = sim.ready_client();
    let b = sim.ready_client();
    let c = sim.ready_client();
    let out = sim.client_send(a, query("SELECT 1"));
    let (u, _) = out.to_upstreams[0];
    let out = sim.client_send(b, query("SELECT 2"));
    assert_eq!(
        &out.packets_to_upstream(u)[0][..],
        b"\x03SELECT 2",
        "pipelined"
    );
    let out = sim.client_send(c, query("BEGIN"));
    assert!(
        out.to_upstreams.is_empty(),
        "a transaction never queues behind others"
    );
    assert_eq!(sim.engine.stats().routes[0].pipelined, 1);
    let one = ok(StatusFlags::SERVER_STATUS_AUTOCOMMIT, caps());
    let mut answers = frame(&one, 1);
    answers.extend_from_slice(&frame(&one, 1));
    let out = sim.upstream_send(u, answers);
    assert_eq!(out.packets_to_client(a).len(), 1);
    assert_eq!(
        out.packets_to_client(b).len(),
        1,
        "each client gets its own answer"
    );
    assert_eq!(
        &out.packets_to_upstream(u)[0][..],
        b"\x03BEGIN",
        "then the waiter"
    );
}

/// A client that stops reading its answer: nobody queues behind its upstream any more.
#[test]
fn nobody_queues_behind_a_client_that_stopped_reading() {
    let mut cfg = config(1);
    cfg.pipeline_depth = 4;
    let mut sim = Sim::new(cfg);
    let a = sim.ready_client();
    let b = sim.ready_client();
    let out = sim.client_send(a, query("SELECT 1"));
    let (u, _) = out.to_upstreams[0];
    sim.engine.send_blocked(Peer::Client(a), sim.now);
    sim.drain();
    let out = sim.client_send(b, query("SELECT 2"));
    assert!(out.to_upstreams.is_empty(), "not behind the unread answer");
    sim.engine.send_drained(Peer::Client(a), sim.now);
    sim.drain();
    let one = ok(StatusFlags::SERVER_STATUS_AUTOCOMMIT, caps());
    let out = sim.upstream_send(u, frame(&one, 1));
    assert_eq!(out.packets_to_client(a).len(), 1);
    assert_eq!(&out.packets_to_upstream(u)[0][..], b"\x03SELECT 2");
}

#[test]
fn nobody_queues_behind_a_statement_that_changes_the_session() {
    let mut cfg = config(1);
    cfg.pipeline_depth = 4;
    let mut sim = Sim::new(cfg);
    let a = sim.ready_client();
    let b = sim.ready_client();
    let c = sim.ready_client();
    let out = sim.client_send(a, query("SET time_zone = '+01:00'"));
    let (u, _) = out.to_upstreams[0];
    sim.upstream_send(u, frame(&ok_with_var("time_zone", "+01:00"), 1));
    // a's autocommit SELECT lets others queue behind it...
    sim.client_send(a, query("SELECT 1"));
    let one = ok(StatusFlags::SERVER_STATUS_AUTOCOMMIT, caps());
    sim.upstream_send(u, frame(&one, 1));
    // ...but b's SET, sent on that upstream after b's state was put back, must not.
    let out = sim.client_send(b, query("SET time_zone = '+02:00'"));
    assert_eq!(out.packets_to_upstream(u).len(), 2, "replay, then b's SET");
    let out = sim.client_send(c, query("SELECT @@time_zone"));
    assert!(
        out.to_upstreams.is_empty(),
        "c would run with b's time zone: {out:?}"
    );
}

#[test]
fn an_empty_command_packet_closes_only_that_client() {
    let mut sim = Sim::new(config(1));
    let a = sim.ready_client();
    let b = sim.ready_client();
    let mut bytes = frame(&[], 0);
    bytes.extend_from_slice(&query("SELECT 1"));
    let out = sim.client_send(a, bytes);
    assert_eq!(out.closed_clients, vec![a]);
    assert!(out.to_upstreams.is_empty(), "nothing of it went upstream");
    let out = sim.client_send(b, query("SELECT 1"));
    assert_eq!(out.to_upstreams.len(), 1);
}

/// An OK reporting a session state change no tracker explains (a user variable set inside a
/// stored function, say).
fn ok_untracked() -> Vec<u8> {
    ok_with_change(SessionStateChange::StateChange(true))
}

#[test]
fn a_statement_that_pins_with_others_queued_behind_does_not_lose_its_state_silently() {
    let mut cfg = config(1);
    cfg.pipeline_depth = 4;
    let mut sim = Sim::new(cfg);
    let a = sim.ready_client();
    let b = sim.ready_client();
    let out = sim.client_send(a, query("SELECT f()"));
    let (u, _) = out.to_upstreams[0];
    let out = sim.client_send(b, query("SELECT 2"));
    assert_eq!(out.packets_to_upstream(u).len(), 1, "b queued behind a");
    let mut answers = frame(&ok_untracked(), 1);
    answers.extend_from_slice(&frame(
        &ok(StatusFlags::SERVER_STATUS_AUTOCOMMIT, caps()),
        1,
    ));
    let out = sim.upstream_send(u, answers);
    assert_eq!(out.packets_to_client(b).len(), 1, "b has its answer");
    // a's state lives on a connection b now holds: a cannot go on without it.
    assert!(out.closed_clients.contains(&a), "{out:?}");
    let err = out.packets_to_client(a);
    assert_eq!(
        ErrPacket::parse(err.last().unwrap(), caps()).unwrap().code,
        1927
    );
    // Nobody else gets the connection with a's variable on it.
    assert!(out.closed_upstreams.contains(&u), "{out:?}");
    let c = sim.ready_client();
    let out = sim.client_send(c, query("SELECT 3"));
    assert!(!out.connects.is_empty(), "a fresh connection: {out:?}");
}

#[test]
fn an_error_after_part_of_a_result_carries_the_next_sequence_id() {
    let mut sim = Sim::new(config(1));
    let a = sim.ready_client();
    let out = sim.client_send(a, query("SELECT 1"));
    let (u, _) = out.to_upstreams[0];
    // Column count (seq 1) and its first column definition (seq 2) arrive, then nothing.
    let mut part = frame(&[1], 1);
    part.extend_from_slice(&frame(
        b"\x03def\x00\x00\x00\x011\x00\x0c\x3f\x00\x01\x00\x00\x00\x08\x81\x00\x00\x00\x00",
        2,
    ));
    let out = sim.upstream_send(u, part);
    assert_eq!(out.packets_to_client(a).len(), 2, "{out:?}");
    sim.engine.upstream_closed(u, sim.now);
    let out = sim.drain();
    let err = &out.to_clients[0].1;
    assert_eq!((err[3], err[4]), (3, 0xff), "ERR numbered after what a got");
    assert_eq!(out.closed_clients, vec![a]);
}

/// TLS for MySQL clients: the greeting offers CLIENT_SSL; an SSLRequest switches the
/// connection, and the bytes behind it (the client's TLS handshake, sent without waiting) go to
/// the host's TLS, never read as plaintext; under `require` a login without TLS is refused.
#[test]
fn mysql_clients_switch_to_tls_and_bytes_behind_the_request_stay_tls() {
    use muxql::mux::ClientTls;
    use muxql::mysql::handshake::SslRequest;
    let mut cfg = config(1);
    cfg.client_tls = ClientTls::Require;
    let mut sim = Sim::new(cfg);
    let a = sim.engine.client_open(Protocol::Mysql, sim.now);
    let mut out = sim.drain();
    for u in out.connects.clone() {
        out = sim.login_upstream(u, 100);
    }
    let greeting = HandshakeV10::parse(&out.packets_to_client(a)[0]).expect("greeting");
    assert!(greeting.capabilities.contains(CapabilityFlags::CLIENT_SSL));
    let mut p = BytesMut::new();
    SslRequest {
        capabilities: caps() | CapabilityFlags::CLIENT_SSL,
        max_packet_size: 1 << 24,
        character_set: 45,
    }
    .encode(&mut p);
    let mut bytes = frame(&p, 1);
    bytes.extend_from_slice(b"\x16\x03\x01 a ClientHello");
    let out = sim.client_send(a, bytes);
    assert!(out.to_clients.is_empty(), "nothing in plaintext: {out:?}");
    assert_eq!(
        out.start_tls,
        vec![(a, Bytes::from_static(b"\x16\x03\x01 a ClientHello"))]
    );
    // Without TLS the login is refused.
    let (b, out) = sim.open_client(PASSWORD);
    let err = ErrPacket::parse(&out.packets_to_client(b)[0], caps()).unwrap();
    assert_eq!(err.code, 3159);
    assert_eq!(out.closed_clients, vec![b]);
}

/// A client of a listener the host encrypts itself (wss) is not offered TLS again and meets
/// a TLS requirement; the listener may pick its own authentication plugin.
#[test]
fn mysql_clients_the_host_encrypts_meet_the_tls_requirement() {
    use muxql::mux::{ClientTls, Listener};
    let mut cfg = config(1);
    cfg.client_tls = ClientTls::Require;
    let mut sim = Sim::new(cfg);
    let mut listener = Listener::new(Protocol::Mysql);
    listener.secure = true;
    listener.mysql_auth = Some(MysqlAuth::NativePassword);
    let a = sim.engine.client_open_on(&listener, sim.now);
    let mut out = sim.drain();
    for u in out.connects.clone() {
        out = sim.login_upstream(u, 100);
    }
    let greeting = HandshakeV10::parse(&out.packets_to_client(a)[0]).expect("greeting");
    assert!(!greeting.capabilities.contains(CapabilityFlags::CLIENT_SSL));
    let response = HandshakeResponse41 {
        capabilities: caps(),
        max_packet_size: 1 << 24,
        character_set: 45,
        username: Bytes::from_static(b"alice"),
        auth_response: Bytes::from(native::scramble_password(
            &greeting.auth_plugin_data,
            PASSWORD.as_bytes(),
        )),
        database: Some(Bytes::from_static(b"db")),
        auth_plugin_name: Some(Bytes::from_static(native::NAME)),
        connect_attrs: vec![],
        zstd_compression_level: None,
    };
    let mut p = BytesMut::new();
    response.encode(&mut p).unwrap();
    let out = sim.client_send(a, frame(&p, 1));
    assert!(out.closed_clients.is_empty(), "{out:?}");
    let ok = &out.packets_to_client(a)[0];
    assert_eq!(ok[0], 0x00, "logged in: {ok:?}");
}

#[test]
fn a_client_beyond_max_clients_gets_err_1040_instead_of_the_greeting() {
    let mut cfg = config(1);
    cfg.max_clients = 1;
    let mut sim = Sim::new(cfg);
    let a = sim.ready_client();
    let refused = sim.engine.client_open(Protocol::Mysql, sim.now);
    let out = sim.drain();
    assert_eq!(out.closed_clients, vec![refused]);
    let sent = bytes_of(&out, refused);
    assert_eq!(sent[3], 0, "sequence id 0: in place of the greeting");
    let err = ErrPacket::parse(&sent.slice(4..), caps()).expect("ERR");
    assert_eq!(err.code, 1040);
    assert!(sim.engine.has_client(a));
}

/// Everything sent to client `id`, joined.
fn bytes_of(out: &Out, id: ClientId) -> Bytes {
    let mut all = BytesMut::new();
    for (_, b) in out.to_clients.iter().filter(|(c, _)| *c == id) {
        all.extend_from_slice(b);
    }
    all.freeze()
}

/// Inside a transaction, which the server rolled back, the command fails as after a deadlock
/// (1213, 40001: restart the transaction) and the session goes on outside it; a client idle in
/// its transaction gets that error for its next statement, which reaches no server.
#[test]
fn a_transaction_lost_with_its_upstream_fails_as_after_a_deadlock() {
    let mut sim = Sim::new(config(1));
    let a = sim.ready_client();
    let out = sim.client_send(a, query("BEGIN"));
    let (u, _) = out.to_upstreams[0];
    sim.upstream_send(u, frame(&ok(in_trans(), caps()), 1));
    sim.client_send(a, query("SELECT 1"));
    sim.engine.upstream_closed(u, sim.now);
    let out = sim.drain();
    assert!(out.closed_clients.is_empty());
    let err = ErrPacket::parse(&out.packets_to_client(a)[0], caps()).unwrap();
    assert_eq!((err.code, err.sql_state), (1213, Some(*b"40001")));
    let out = sim.client_send(a, query("SELECT 2"));
    assert_eq!(
        out.connects.len(),
        1,
        "the next statement runs anew: {out:?}"
    );

    let mut sim = Sim::new(config(1));
    let a = sim.ready_client();
    let out = sim.client_send(a, query("BEGIN"));
    let (u, _) = out.to_upstreams[0];
    sim.upstream_send(u, frame(&ok(in_trans(), caps()), 1));
    sim.engine.upstream_closed(u, sim.now);
    let out = sim.drain();
    assert!(out.closed_clients.is_empty() && out.packets_to_client(a).is_empty());
    let out = sim.client_send(a, query("COMMIT"));
    let answer = out.packets_to_client(a);
    let err = ErrPacket::parse(&answer[0], caps()).unwrap();
    assert_eq!(err.code, 1213, "the COMMIT fails: nothing was committed");
    assert!(out.connects.is_empty() && out.to_upstreams.is_empty());
    let out = sim.client_send(a, query("SELECT 3"));
    assert_eq!(out.connects.len(), 1, "then the session goes on");
}

/// COM_RESET_CONNECTION ends the transaction anyway: a loss not told yet is not told after it.
#[test]
fn a_reset_after_a_lost_idle_transaction_starts_clean() {
    let mut sim = Sim::new(config(1));
    let a = sim.ready_client();
    let out = sim.client_send(a, query("BEGIN"));
    let (u, _) = out.to_upstreams[0];
    sim.upstream_send(u, frame(&ok(in_trans(), caps()), 1));
    sim.engine.upstream_closed(u, sim.now);
    sim.drain();
    let out = sim.client_send(a, frame(&[COM_RESET_CONNECTION], 0));
    let answer = out.packets_to_client(a);
    assert_eq!(answer.first().map(|p| p[0]), Some(0x00), "OK: {answer:?}");
    let out = sim.client_send(a, query("SELECT 2"));
    assert!(
        out.packets_to_client(a).is_empty(),
        "no ERR 1213 after the reset: {:?}",
        out.packets_to_client(a)
    );
    assert_eq!(out.connects.len(), 1, "the statement goes to a server");
}
