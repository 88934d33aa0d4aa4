//! Property test of the Engine against a model, for MySQL: random clients sending autocommit
//! queries, transactions and session variable changes through small pools, with and without
//! cross-client pipelining, served by fake MariaDB upstreams that answer in order, delivered in
//! random byte slices, while upstreams die and clients leave. Every client must get exactly its
//! own answers, in order, computed with its own session's `time_zone`; only a client told why
//! (1927, 1040) may be closed; pool counters must match what exists after every step.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use muxql::mux::{Action, ClientId, Config, Engine, MysqlAuth, PoolMode, Protocol, Route, User};
use muxql::mysql::auth::native;
use muxql::mysql::command::code::*;
use muxql::mysql::handshake::{HandshakeResponse41, HandshakeV10};
use muxql::mysql::packet::write_packet;
use muxql::mysql::response::{ErrPacket, OkPacket, SessionStateChange};
use muxql::mysql::{CapabilityFlags, Expect, PacketCodec, ResponseReader, StatusFlags, Step};
use muxql::wire::Limits;
use proptest::prelude::*;

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

/// What a model client asks for (one request at a time, as MySQL clients do).
#[derive(Debug, Clone, Copy)]
enum Req {
    /// `SELECT <tag>`; the server answers `<tag>@<time_zone>`, or an error when the flag is set.
    Select(bool),
    /// `BEGIN` outside a transaction, `COMMIT` inside one.
    Toggle,
    /// `SET time_zone = '+0k:00'`.
    SetZone(u8),
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Send(usize, Req),
    /// Upstream (index mod count) sends up to this many bytes of its pending answers.
    Deliver(usize, usize),
    Leave(usize),
    Kill(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let req = prop_oneof![
        4 => Just(Req::Select(false)),
        1 => Just(Req::Select(true)),
        2 => Just(Req::Toggle),
        2 => (0u8..4).prop_map(Req::SetZone),
    ];
    prop_oneof![
        6 => (0..8usize, req).prop_map(|(c, r)| Op::Send(c, r)),
        6 => (0..4usize, 1..400usize).prop_map(|(u, n)| Op::Deliver(u, n)),
        1 => (0..8usize).prop_map(Op::Leave),
        1 => (0..4usize).prop_map(Op::Kill),
    ]
}

fn frame(out: &mut BytesMut, payload: &[u8], seq: u8) {
    let mut seq = seq;
    write_packet(out, &mut seq, payload).unwrap();
}

/// A fake MariaDB connection: answers complete commands in order.
#[derive(Default)]
struct FakeServer {
    inbox: BytesMut,
    outbox: BytesMut,
    logged_in: bool,
    in_tx: bool,
    zone: Option<Bytes>,
}

impl FakeServer {
    fn status(&self) -> StatusFlags {
        let mut s = StatusFlags::SERVER_STATUS_AUTOCOMMIT;
        if self.in_tx {
            s |= StatusFlags::SERVER_STATUS_IN_TRANS;
        }
        s
    }

    fn ok(&mut self, zone_changed: bool) {
        let mut ok = OkPacket::new(self.status());
        if zone_changed {
            let mut state = BytesMut::new();
            SessionStateChange::SystemVariable {
                name: Bytes::from_static(b"time_zone"),
                value: self.zone.clone().unwrap_or(Bytes::from_static(b"SYSTEM")),
            }
            .encode(&mut state);
            ok.status |= StatusFlags::SERVER_SESSION_STATE_CHANGED;
            ok.session_state = state.freeze();
        }
        let mut p = BytesMut::new();
        ok.encode(&mut p, caps()).unwrap();
        frame(&mut self.outbox, &p, 1);
    }

    fn eof(&self, out: &mut BytesMut, seq: u8) {
        let s = self.status().bits().to_le_bytes();
        frame(out, &[0xFE, 0, 0, s[0], s[1]], seq);
    }

    /// Answers every complete command in the inbox.
    fn serve(&mut self) {
        loop {
            let mut codec = PacketCodec::new(Limits::default(), if self.logged_in { 0 } else { 1 });
            let Some(p) = codec.parse(&mut self.inbox).unwrap() else {
                return;
            };
            if !self.logged_in {
                self.logged_in = true;
                let mut ok = BytesMut::new();
                OkPacket::new(self.status())
                    .encode(&mut ok, caps())
                    .unwrap();
                frame(&mut self.outbox, &ok, 2);
                continue;
            }
            let text = String::from_utf8_lossy(&p.payload[1..]).into_owned();
            match p.payload[0] {
                COM_QUERY if text.starts_with("SELECT FAIL") => {
                    let mut e = BytesMut::new();
                    ErrPacket {
                        code: 1064,
                        sql_state: Some(*b"42000"),
                        message: Bytes::from_static(b"fail"),
                    }
                    .encode(&mut e, caps());
                    frame(&mut self.outbox, &e, 1);
                }
                COM_QUERY if text.starts_with("SELECT t") => {
                    let zone = self.zone.clone().unwrap_or(Bytes::from_static(b"SYSTEM"));
                    let value = format!("{}@{}", &text[7..], String::from_utf8_lossy(&zone));
                    let mut out = BytesMut::new();
                    frame(&mut out, &[1], 1);
                    frame(&mut out, b"\x03def\x00\x00\x00\x01v\x00\x0c\x21\x00\xff\x00\x00\x00\xfd\x00\x00\x00\x00\x00", 2);
                    self.eof(&mut out, 3);
                    let mut row = vec![value.len() as u8];
                    row.extend_from_slice(value.as_bytes());
                    frame(&mut out, &row, 4);
                    self.eof(&mut out, 5);
                    self.outbox.extend_from_slice(&out);
                }
                COM_QUERY if text == "BEGIN" => {
                    self.in_tx = true;
                    self.ok(false);
                }
                COM_QUERY if text == "COMMIT" || text == "ROLLBACK" => {
                    self.in_tx = false;
                    self.ok(false);
                }
                COM_QUERY if text.contains("time_zone = DEFAULT") => {
                    self.zone = None;
                    self.ok(true);
                }
                COM_QUERY if text.contains("time_zone = '") => {
                    let start = text.find("time_zone = '").unwrap() + 13;
                    let end = start + text[start..].find('\'').unwrap();
                    self.zone = Some(Bytes::copy_from_slice(&text.as_bytes()[start..end]));
                    self.ok(true);
                }
                COM_RESET_CONNECTION => {
                    self.in_tx = false;
                    self.zone = None;
                    self.ok(false);
                }
                COM_SET_OPTION => {
                    let mut out = BytesMut::new();
                    self.eof(&mut out, 1);
                    self.outbox.extend_from_slice(&out);
                }
                COM_QUIT | COM_STMT_CLOSE => {}
                _ => self.ok(false),
            }
        }
    }
}

#[derive(Default, Debug)]
struct ModelClient {
    received: BytesMut,
    /// The answer the outstanding request must get: `Some(text)` for a row, `None` for OK/ERR.
    waiting: Option<Option<String>>,
    in_tx: bool,
    zone: Option<String>,
    /// The zone before the outstanding `SET time_zone`, back in force if it fails.
    zone_before: Option<Option<String>>,
    tags: u32,
    left: bool,
}

struct World {
    engine: Engine,
    clients: Vec<(ClientId, ModelClient)>,
    servers: HashMap<u64, FakeServer>,
    order: Vec<u64>,
}

impl World {
    fn new(pool: usize, depth: usize, clients: usize) -> World {
        let mut route = Route::new(Protocol::Mysql, "db", "fake", "up");
        route.pool_size = pool;
        route.pool_mode = PoolMode::Transaction;
        let mut config = Config::default();
        config.routes = vec![route];
        config.users = vec![User::new("u", "pw")];
        config.mysql_auth = MysqlAuth::NativePassword;
        config.rng_seed = Some([9; 32]);
        config.pipeline_depth = depth;
        let mut w = World {
            engine: Engine::new(config).unwrap(),
            clients: Vec::new(),
            servers: HashMap::new(),
            order: Vec::new(),
        };
        for _ in 0..clients {
            let id = w.engine.client_open(Protocol::Mysql, 0);
            w.clients.push((id, ModelClient::default()));
            w.route();
            w.settle();
            let c = w.client_mut(id);
            let mut buf = std::mem::take(&mut c.received);
            let greeting = PacketCodec::new(Limits::default(), 0)
                .parse(&mut buf)
                .unwrap()
                .expect("greeting");
            let hello = HandshakeV10::parse(&greeting.payload).unwrap();
            let response = HandshakeResponse41 {
                capabilities: caps(),
                max_packet_size: 1 << 24,
                character_set: 45,
                username: Bytes::from_static(b"u"),
                auth_response: Bytes::from(native::scramble_password(
                    &hello.auth_plugin_data,
                    b"pw",
                )),
                database: Some(Bytes::from_static(b"db")),
                auth_plugin_name: Some(Bytes::from_static(native::NAME)),
                connect_attrs: vec![],
                zstd_compression_level: None,
            };
            let mut p = BytesMut::new();
            response.encode(&mut p).unwrap();
            let mut wire = BytesMut::new();
            frame(&mut wire, &p, 1);
            w.engine.client_data(id, wire, 0);
            w.route();
            let c = w.client_mut(id);
            assert_eq!(c.received.get(4), Some(&0x00), "logged in");
            c.received.clear();
        }
        w
    }

    fn client_mut(&mut self, id: ClientId) -> &mut ModelClient {
        &mut self.clients.iter_mut().find(|(c, _)| *c == id).unwrap().1
    }

    /// Carries out the Engine's actions and checks the counters.
    fn route(&mut self) {
        while let Some(action) = self.engine.poll_action() {
            match action {
                Action::SendClient { id, bytes } => {
                    let c = self.client_mut(id);
                    assert!(!c.left, "bytes for a client that left");
                    c.received.extend_from_slice(&bytes);
                }
                Action::SendUpstream { id, bytes } => {
                    if let Some(s) = self.servers.get_mut(&id.0) {
                        s.inbox.extend_from_slice(&bytes);
                        s.serve();
                    }
                }
                Action::ConnectUpstream { id, .. } => {
                    let mut s = FakeServer::default();
                    let mut p = BytesMut::new();
                    HandshakeV10 {
                        server_version: Bytes::from_static(b"5.5.5-10.11.0-MariaDB"),
                        connection_id: id.0 as u32,
                        auth_plugin_data: Bytes::from_static(b"abcdefgh12345678ijkl"),
                        capabilities: caps(),
                        character_set: 45,
                        status: StatusFlags::SERVER_STATUS_AUTOCOMMIT,
                        auth_plugin_name: Some(Bytes::from_static(native::NAME)),
                    }
                    .encode(&mut p)
                    .unwrap();
                    frame(&mut s.outbox, &p, 0);
                    self.servers.insert(id.0, s);
                    self.order.push(id.0);
                    self.engine.upstream_connected(id, 0);
                }
                Action::CloseUpstream { id } => {
                    self.servers.remove(&id.0);
                    self.order.retain(|&s| s != id.0);
                }
                Action::CloseClient { id } => {
                    let c = self.client_mut(id);
                    if !c.left {
                        let told = [&b"#70100"[..], b"#08004"]
                            .iter()
                            .any(|code| c.received.windows(6).any(|w| w == *code));
                        assert!(told, "the engine closed a healthy client");
                        c.left = true;
                        c.received.clear();
                    }
                }
                Action::PauseReading { .. } | Action::ResumeReading { .. } => {}
                other => panic!("unexpected action {other:?}"),
            }
        }
        if let Err(e) = self.engine.check_counters() {
            panic!("pool counters drifted: {e}");
        }
        self.check_answers();
    }

    /// Consumes complete answers the clients received and checks them.
    fn check_answers(&mut self) {
        for (_, c) in &mut self.clients {
            let Some(expected) = c.waiting.clone() else {
                continue;
            };
            let mut reader = ResponseReader::new(Expect::Query, caps(), Limits::default());
            let Ok(scan) = reader.scan(&c.received) else {
                panic!("malformed answer {:?}", c.received)
            };
            let Step::Complete(end) = scan.step else {
                continue;
            };
            let answer = c.received.split_to(scan.consumed);
            // The upstream running the command died: the command failed, the session goes on
            // without whatever it was about to change.
            let lost = end.error
                && [
                    &b"#70100server connection lost"[..],
                    b"#40001server connection lost",
                ]
                .iter()
                .any(|m| answer.windows(m.len()).any(|w| w == *m));
            let zone_before = c.zone_before.take();
            if lost {
                if let Some(zone) = zone_before {
                    c.zone = zone;
                }
                // Inside a transaction (40001) the server rolled it back.
                c.in_tx = false;
                c.waiting = None;
                assert!(c.received.is_empty(), "more than one answer");
                continue;
            }
            match expected {
                Some(text) => {
                    let found = answer.windows(text.len()).any(|w| w == text.as_bytes());
                    let failed = end.error && text.starts_with("FAIL");
                    assert!(found || failed, "expected {text:?}, got {answer:?}");
                }
                None => assert!(!end.error, "unexpected error {answer:?}"),
            }
            if let Some(st) = end.status {
                c.in_tx = st.contains(StatusFlags::SERVER_STATUS_IN_TRANS);
            }
            c.waiting = None;
            assert!(c.received.is_empty(), "more than one answer");
        }
    }

    fn send(&mut self, i: usize, req: Req) {
        let i = i % self.clients.len();
        let (id, c) = &mut self.clients[i];
        if c.left || c.waiting.is_some() {
            return;
        }
        c.tags += 1;
        let zone = c.zone.clone().unwrap_or("SYSTEM".into());
        let (sql, expect) = match req {
            Req::Select(true) => ("SELECT FAIL".to_string(), Some("FAIL".to_string())),
            Req::Select(false) => {
                let tag = format!("t{}_{}", id.0, c.tags);
                (format!("SELECT {tag}"), Some(format!("{tag}@{zone}")))
            }
            Req::Toggle if c.in_tx => ("COMMIT".into(), None),
            Req::Toggle => ("BEGIN".into(), None),
            Req::SetZone(k) => {
                c.zone_before = Some(c.zone.clone());
                c.zone = Some(format!("+0{k}:00"));
                (format!("SET time_zone = '+0{k}:00'"), None)
            }
        };
        c.waiting = Some(expect);
        let mut p = vec![COM_QUERY];
        p.extend_from_slice(sql.as_bytes());
        let mut wire = BytesMut::new();
        frame(&mut wire, &p, 0);
        let id = *id;
        self.engine.client_data(id, wire, 0);
        self.route();
    }

    fn deliver(&mut self, u: usize, n: usize) {
        if self.order.is_empty() {
            return;
        }
        let sid = self.order[u % self.order.len()];
        let Some(s) = self.servers.get_mut(&sid) else {
            return;
        };
        let n = n.min(s.outbox.len());
        if n == 0 {
            return;
        }
        let bytes = s.outbox.split_to(n);
        self.engine
            .upstream_data(muxql::mux::UpstreamId(sid), bytes, 0);
        self.route();
    }

    fn leave(&mut self, i: usize) {
        let i = i % self.clients.len();
        let (id, c) = &mut self.clients[i];
        if c.left {
            return;
        }
        c.left = true;
        c.received.clear();
        let id = *id;
        self.engine.client_closed(id, 0);
        self.route();
    }

    fn kill(&mut self, u: usize) {
        if self.order.is_empty() {
            return;
        }
        let sid = self.order[u % self.order.len()];
        self.servers.remove(&sid);
        self.order.retain(|&s| s != sid);
        self.engine.upstream_closed(muxql::mux::UpstreamId(sid), 0);
        self.route();
    }

    /// Delivers everything pending until nothing moves.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            let Some((&sid, _)) = self.servers.iter().find(|(_, s)| !s.outbox.is_empty()) else {
                return;
            };
            let bytes = self.servers.get_mut(&sid).unwrap().outbox.split();
            self.engine
                .upstream_data(muxql::mux::UpstreamId(sid), bytes, 0);
            self.route();
        }
        panic!("the servers never went quiet");
    }

    /// Commits the open transactions (they keep their upstream, as they should) and delivers
    /// everything, until every client got its answers.
    fn finish(&mut self) {
        for _ in 0..100 {
            self.settle();
            let open: Vec<usize> = (0..self.clients.len())
                .filter(|&i| {
                    let c = &self.clients[i].1;
                    !c.left && c.in_tx && c.waiting.is_none()
                })
                .collect();
            if open.is_empty() {
                break;
            }
            for i in open {
                self.send(i, Req::Toggle);
            }
        }
        for (_, c) in &self.clients {
            assert!(c.left || c.waiting.is_none(), "an answer never came: {c:?}");
            assert!(c.received.is_empty(), "bytes nobody asked for: {c:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn every_mysql_client_gets_its_own_answers(
        pool in 1..4usize,
        depth in 0..5usize,
        clients in 2..7usize,
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let mut w = World::new(pool, depth, clients);
        for op in ops {
            match op {
                Op::Send(c, r) => w.send(c, r),
                Op::Deliver(u, n) => w.deliver(u, n),
                Op::Leave(c) => w.leave(c),
                Op::Kill(u) => w.kill(u),
            }
        }
        w.finish();
    }
}

#[test]
fn zones_follow_clients_through_one_pipelined_upstream() {
    let mut w = World::new(1, 4, 3);
    w.send(0, Req::SetZone(1));
    w.send(1, Req::Select(false));
    w.send(2, Req::Select(false));
    w.settle();
    w.send(0, Req::Select(false));
    w.send(1, Req::SetZone(2));
    w.settle();
    w.send(1, Req::Select(false));
    w.send(2, Req::Select(false));
    w.finish();
}
