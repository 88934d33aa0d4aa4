//! Deterministic Engine tests for MySQL: scripted clients and a scripted fake MariaDB upstream,
//! no sockets. Pool counters are checked after every step.

use bytes::{Bytes, BytesMut};
use muxql::mux::{Action, ClientId, Config, Engine, MysqlAuth, PoolMode, Protocol, Route, User};
use muxql::mux::{UpstreamId, MAX_TIMEOUT_MS};
use muxql::mysql::auth::native;
use muxql::mysql::command::code::{COM_QUERY, COM_QUIT};
use muxql::mysql::handshake::{HandshakeResponse41, HandshakeV10};
use muxql::mysql::packet::write_packet;
use muxql::mysql::response::{ErrPacket, OkPacket, SessionStateChange};
use muxql::mysql::{CapabilityFlags, PacketCodec, StatusFlags};
use muxql::wire::Limits;

const PASSWORD: &str = "pw";

fn config(pool_size: usize) -> Config {
    let mut route = Route::new(Protocol::Mysql, "db", "127.0.0.1:3306", "up");
    route.pool_size = pool_size;
    route.pool_mode = PoolMode::Transaction;
    let mut config = Config::default();
    config.routes = vec![route];
    config.users = vec![User::new("alice", PASSWORD)];
    config.mysql_auth = MysqlAuth::NativePassword;
    config.rng_seed = Some([5; 32]);
    config.pipeline_depth = 0;
    assert!(config.wait_timeout_ms < MAX_TIMEOUT_MS);
    config
}

fn caps() -> CapabilityFlags {
    CapabilityFlags::CLIENT_LONG_PASSWORD
        | CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::CLIENT_SECURE_CONNECTION
        | CapabilityFlags::CLIENT_TRANSACTIONS
        | CapabilityFlags::CLIENT_PLUGIN_AUTH
        | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | CapabilityFlags::CLIENT_MULTI_RESULTS
        | CapabilityFlags::CLIENT_MULTI_STATEMENTS
        | CapabilityFlags::CLIENT_SESSION_TRACK
        | CapabilityFlags::CLIENT_CONNECT_WITH_DB
}

fn frame(payload: &[u8], seq: u8) -> BytesMut {
    let mut out = BytesMut::new();
    let mut seq = seq;
    write_packet(&mut out, &mut seq, payload).unwrap();
    out
}

fn ok(status: StatusFlags, caps: CapabilityFlags) -> Vec<u8> {
    let mut p = BytesMut::new();
    OkPacket::new(status).encode(&mut p, caps).unwrap();
    p.to_vec()
}

fn query(sql: &str) -> BytesMut {
    let mut p = vec![COM_QUERY];
    p.extend_from_slice(sql.as_bytes());
    frame(&p, 0)
}

/// Everything the Engine asked for in one step.
#[derive(Default, Debug)]
struct Out {
    to_clients: Vec<(ClientId, Bytes)>,
    to_upstreams: Vec<(UpstreamId, Bytes)>,
    connects: Vec<UpstreamId>,
    closed_clients: Vec<ClientId>,
    closed_upstreams: Vec<UpstreamId>,
}

impl Out {
    /// The payloads of the packets sent to `id`, in order.
    fn packets_to_client(&self, id: ClientId) -> Vec<Bytes> {
        packets(
            self.to_clients
                .iter()
                .filter(|(c, _)| *c == id)
                .map(|(_, b)| b),
        )
    }

    fn packets_to_upstream(&self, id: UpstreamId) -> Vec<Bytes> {
        packets(
            self.to_upstreams
                .iter()
                .filter(|(u, _)| *u == id)
                .map(|(_, b)| b),
        )
    }
}

/// Cuts joined wire bytes into packet payloads (sequence ids are not checked here).
fn packets<'a>(parts: impl Iterator<Item = &'a Bytes>) -> Vec<Bytes> {
    let mut buf = BytesMut::new();
    for p in parts {
        buf.extend_from_slice(p);
    }
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let seq = buf[3];
        let mut codec = PacketCodec::new(Limits::default(), seq);
        match codec.parse(&mut buf).unwrap() {
            Some(p) => out.push(p.payload),
            None => break,
        }
    }
    assert!(buf.is_empty(), "trailing partial packet");
    out
}

struct Sim {
    engine: Engine,
    now: u64,
}

impl Sim {
    fn new(config: Config) -> Sim {
        Sim {
            engine: Engine::new(config).unwrap(),
            now: 1_000,
        }
    }

    fn drain(&mut self) -> Out {
        let mut out = Out::default();
        while let Some(a) = self.engine.poll_action() {
            match a {
                Action::SendClient { id, bytes } => out.to_clients.push((id, bytes)),
                Action::SendUpstream { id, bytes } => out.to_upstreams.push((id, bytes)),
                Action::ConnectUpstream { id, .. } => out.connects.push(id),
                Action::CloseClient { id } => out.closed_clients.push(id),
                Action::CloseUpstream { id } => out.closed_upstreams.push(id),
                _ => {}
            }
        }
        if let Err(e) = self.engine.check_counters() {
            panic!("pool counters drifted: {e}");
        }
        out
    }

    fn client_send(&mut self, id: ClientId, bytes: BytesMut) -> Out {
        self.engine.client_data(id, bytes, self.now);
        self.drain()
    }

    fn upstream_send(&mut self, id: UpstreamId, bytes: BytesMut) -> Out {
        self.engine.upstream_data(id, bytes, self.now);
        self.drain()
    }

    /// Logs a fake MariaDB upstream in: greeting, OK for the login, OK for the trackers.
    fn login_upstream(&mut self, id: UpstreamId, thread: u32) -> Out {
        self.engine.upstream_connected(id, self.now);
        assert!(
            self.drain().to_upstreams.is_empty(),
            "the server speaks first"
        );
        let greeting = HandshakeV10 {
            server_version: Bytes::from_static(b"5.5.5-10.11.0-MariaDB"),
            connection_id: thread,
            auth_plugin_data: Bytes::from_static(b"abcdefgh12345678ijkl"),
            capabilities: caps(),
            character_set: 45,
            status: StatusFlags::SERVER_STATUS_AUTOCOMMIT,
            auth_plugin_name: Some(Bytes::from_static(native::NAME)),
        };
        let mut p = BytesMut::new();
        greeting.encode(&mut p).unwrap();
        let out = self.upstream_send(id, frame(&p, 0));
        assert_eq!(
            out.packets_to_upstream(id).len(),
            1,
            "login response: {out:?}"
        );
        let out = self.upstream_send(
            id,
            frame(&ok(StatusFlags::SERVER_STATUS_AUTOCOMMIT, caps()), 2),
        );
        let setup = out.packets_to_upstream(id);
        assert!(
            setup[0].starts_with(b"\x03SET @@SESSION.session_track"),
            "{setup:?}"
        );
        self.upstream_send(
            id,
            frame(&ok(StatusFlags::SERVER_STATUS_AUTOCOMMIT, caps()), 1),
        )
    }

    /// Opens a client and answers the greeting it gets (once the pool knows its server).
    fn open_client(&mut self, password: &str) -> (ClientId, Out) {
        let id = self.engine.client_open(Protocol::Mysql, self.now);
        let mut out = self.drain();
        for u in out.connects.clone() {
            out = self.login_upstream(u, 100 + u.0 as u32);
        }
        let greeting = out.packets_to_client(id);
        let hello = HandshakeV10::parse(&greeting[0]).expect("greeting");
        let response = HandshakeResponse41 {
            capabilities: caps(),
            max_packet_size: 1 << 24,
            character_set: 45,
            username: Bytes::from_static(b"alice"),
            auth_response: Bytes::from(native::scramble_password(
                &hello.auth_plugin_data,
                password.as_bytes(),
            )),
            database: Some(Bytes::from_static(b"db")),
            auth_plugin_name: Some(Bytes::from_static(native::NAME)),
            connect_attrs: vec![],
            zstd_compression_level: None,
        };
        let mut p = BytesMut::new();
        response.encode(&mut p).unwrap();
        let out = self.client_send(id, frame(&p, 1));
        (id, out)
    }

    fn ready_client(&mut self) -> ClientId {
        let (id, out) = self.open_client(PASSWORD);
        let answer = out.packets_to_client(id);
        assert_eq!(answer.last().map(|p| p[0]), Some(0x00), "OK: {answer:?}");
        id
    }
}

fn in_trans() -> StatusFlags {
    StatusFlags::SERVER_STATUS_AUTOCOMMIT | StatusFlags::SERVER_STATUS_IN_TRANS
}

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

#[test]
fn an_upstream_dying_mid_query_fails_only_its_client() {
    let mut sim = Sim::new(config(2));
    let a = sim.ready_client();
    let b = sim.ready_client();
    let out = sim.client_send(a, query("SELECT SLEEP(10)"));
    let (u, _) = out.to_upstreams[0];
    sim.engine.upstream_closed(u, sim.now);
    let out = sim.drain();
    let err = ErrPacket::parse(&out.packets_to_client(a)[0], caps()).unwrap();
    assert_eq!(err.code, 1927);
    assert_eq!(out.closed_clients, vec![a]);
    let out = sim.client_send(b, query("SELECT 1"));
    assert!(out.closed_clients.is_empty());
    assert!(!out.connects.is_empty() || !out.to_upstreams.is_empty());
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

/// An OK reporting that system variable `name` is now `value`.
fn ok_with_var(name: &str, value: &str) -> Vec<u8> {
    let mut state = BytesMut::new();
    SessionStateChange::SystemVariable {
        name: Bytes::copy_from_slice(name.as_bytes()),
        value: Bytes::copy_from_slice(value.as_bytes()),
    }
    .encode(&mut state);
    let mut ok = OkPacket::new(
        StatusFlags::SERVER_STATUS_AUTOCOMMIT | StatusFlags::SERVER_SESSION_STATE_CHANGED,
    );
    ok.session_state = state.freeze();
    let mut p = BytesMut::new();
    ok.encode(&mut p, caps()).unwrap();
    p.to_vec()
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
