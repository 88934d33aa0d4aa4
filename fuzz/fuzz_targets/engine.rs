//! The Engine, structure-aware: sequences of host events across many clients and upstreams of
//! both protocols. Clients open, log in with valid credentials (or not), send well-formed
//! queries or arbitrary bytes, and close; upstreams connect and answer from a small scripted
//! server model (login, results, transaction states, errors) or with arbitrary bytes, or die;
//! time passes; write queues block and drain. After every event the pool counters must match
//! what exists, and no byte is addressed to a client that is closed.
#![no_main]

use std::collections::{HashMap, HashSet};

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use muxql::mux::{
    Action, ClientAuth, ClientId, Config, Engine, MysqlAuth, Peer, Protocol, Route, UpstreamId,
    User,
};
use muxql::mysql::auth::native;
use muxql::mysql::handshake::{HandshakeResponse41, HandshakeV10};
use muxql::mysql::packet::write_packet;
use muxql::mysql::response::OkPacket;
use muxql::mysql::{CapabilityFlags, StatusFlags};
use muxql::pg::backend::{Authentication, BackendMessage, TransactionStatus};
use muxql::pg::frontend::FrontendMessage;
use muxql::pg::startup::{ProtocolVersion, Startup, PROTOCOL_3_0};

const PASSWORD: &str = "pw";

/// Statements clients send: plain, transactional, pinning, session-changing.
const SQL: &[&str] = &[
    "SELECT 1",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SET search_path = x",
    "SET @v = 1",
    "SELECT @v",
    "SELECT LAST_INSERT_ID()",
    "SHOW WARNINGS",
    "SHOW ERRORS",
    "SELECT ROW_COUNT(), @@warning_count",
    "LOCK TABLES t WRITE",
    "UNLOCK TABLES",
    "PREPARE s FROM 'SELECT 1'",
    "KILL QUERY 1",
    "",
];

/// One host event.
#[derive(Arbitrary, Debug)]
enum Op {
    Open { mysql: bool },
    Login { client: u8, right_password: bool },
    Query { client: u8, sql: u8 },
    ClientBytes { client: u8, data: Vec<u8> },
    ClientClose { client: u8 },
    UpstreamConnected { upstream: u8 },
    ServerLogin { upstream: u8 },
    ServerResult { upstream: u8, state: u8, seq: u8 },
    UpstreamBytes { upstream: u8, data: Vec<u8> },
    UpstreamClose { upstream: u8 },
    Tick { ms: u16 },
    Blocked { client: u8 },
    Drained { client: u8 },
}

fn config() -> Config {
    let mut config = Config::default();
    let mut pg = Route::new(Protocol::Postgres, "app", "127.0.0.1:5432", "app");
    pg.pool_size = 2;
    let mut my = Route::new(Protocol::Mysql, "app", "127.0.0.1:3306", "app");
    my.pool_size = 2;
    config.routes = vec![pg, my];
    config.users = vec![User::new("app", PASSWORD)];
    config.client_auth = ClientAuth::Trust;
    config.mysql_auth = MysqlAuth::NativePassword;
    config.rng_seed = Some([7; 32]);
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

fn my_packet(payload: &[u8], seq: u8) -> BytesMut {
    let mut out = BytesMut::new();
    let mut seq = seq;
    write_packet(&mut out, &mut seq, payload).expect("packet");
    out
}

fn pg(messages: &[BackendMessage]) -> BytesMut {
    let mut out = BytesMut::new();
    for m in messages {
        m.encode(&mut out).expect("backend message");
    }
    out
}

/// The harness: the Engine and what the host knows about its connections.
struct Host {
    engine: Engine,
    now: u64,
    clients: Vec<(ClientId, Protocol)>,
    open: HashSet<ClientId>,
    /// The scramble of each MySQL client's greeting.
    scrambles: HashMap<ClientId, Bytes>,
    upstreams: Vec<(UpstreamId, Protocol)>,
}

impl Host {
    fn client(&self, i: u8) -> Option<(ClientId, Protocol)> {
        let n = self.clients.len();
        (n > 0).then(|| self.clients[usize::from(i) % n])
    }

    fn upstream(&self, i: u8) -> Option<(UpstreamId, Protocol)> {
        let n = self.upstreams.len();
        (n > 0).then(|| self.upstreams[usize::from(i) % n])
    }

    fn apply(&mut self, op: Op) {
        let now = self.now;
        match op {
            Op::Open { mysql } => {
                let protocol = if mysql {
                    Protocol::Mysql
                } else {
                    Protocol::Postgres
                };
                let id = self.engine.client_open(protocol, now);
                self.clients.push((id, protocol));
                self.open.insert(id);
            }
            Op::Login {
                client,
                right_password,
            } => {
                let Some((id, protocol)) = self.client(client) else {
                    return;
                };
                let bytes = match protocol {
                    Protocol::Postgres => login_pg(),
                    _ => {
                        let Some(scramble) = self.scrambles.get(&id) else {
                            return;
                        };
                        let password = if right_password { PASSWORD } else { "nope" };
                        login_mysql(scramble, password)
                    }
                };
                self.engine.client_data(id, bytes, now);
            }
            Op::Query { client, sql } => {
                let Some((id, protocol)) = self.client(client) else {
                    return;
                };
                let sql = SQL[usize::from(sql) % SQL.len()];
                let bytes = match protocol {
                    Protocol::Postgres => {
                        let mut out = BytesMut::new();
                        FrontendMessage::Query(Bytes::from_static(sql.as_bytes()))
                            .encode(&mut out)
                            .expect("query");
                        out
                    }
                    _ => {
                        let mut p = vec![0x03];
                        p.extend_from_slice(sql.as_bytes());
                        my_packet(&p, 0)
                    }
                };
                self.engine.client_data(id, bytes, now);
            }
            Op::ClientBytes { client, data } => {
                if let Some((id, _)) = self.client(client) {
                    self.engine.client_data(id, BytesMut::from(&data[..]), now);
                }
            }
            Op::ClientClose { client } => {
                if let Some((id, _)) = self.client(client) {
                    self.engine.client_closed(id, now);
                    self.open.remove(&id);
                }
            }
            Op::UpstreamConnected { upstream } => {
                if let Some((id, _)) = self.upstream(upstream) {
                    self.engine.upstream_connected(id, now);
                }
            }
            Op::ServerLogin { upstream } => {
                if let Some((id, protocol)) = self.upstream(upstream) {
                    self.engine.upstream_data(id, server_login(protocol), now);
                }
            }
            Op::ServerResult {
                upstream,
                state,
                seq,
            } => {
                if let Some((id, protocol)) = self.upstream(upstream) {
                    self.engine
                        .upstream_data(id, server_result(protocol, state, seq), now);
                }
            }
            Op::UpstreamBytes { upstream, data } => {
                if let Some((id, _)) = self.upstream(upstream) {
                    self.engine
                        .upstream_data(id, BytesMut::from(&data[..]), now);
                }
            }
            Op::UpstreamClose { upstream } => {
                if let Some((id, _)) = self.upstream(upstream) {
                    self.engine.upstream_closed(id, now);
                }
            }
            Op::Tick { ms } => {
                self.now += u64::from(ms) * 16;
                self.engine.handle_timeout(self.now);
            }
            Op::Blocked { client } => {
                if let Some((id, _)) = self.client(client) {
                    self.engine.send_blocked(Peer::Client(id), now);
                }
            }
            Op::Drained { client } => {
                if let Some((id, _)) = self.client(client) {
                    self.engine.send_drained(Peer::Client(id), now);
                }
            }
        }
    }

    /// Takes every action, checking that each is addressed to a live connection.
    fn drain(&mut self) {
        while let Some(action) = self.engine.poll_action() {
            match action {
                Action::SendClient { id, bytes } => {
                    assert!(self.open.contains(&id), "bytes for a closed client {id:?}");
                    let greeting = bytes
                        .get(4..)
                        .and_then(|p| HandshakeV10::parse(&Bytes::copy_from_slice(p)).ok());
                    if let Some(hello) = greeting {
                        self.scrambles.insert(id, hello.auth_plugin_data);
                    }
                }
                Action::CloseClient { id } => {
                    self.open.remove(&id);
                }
                Action::ConnectUpstream { id, route } => {
                    let protocol = if route == 0 {
                        Protocol::Postgres
                    } else {
                        Protocol::Mysql
                    };
                    self.upstreams.push((id, protocol));
                }
                _ => {}
            }
        }
        if let Err(e) = self.engine.check_counters() {
            panic!("pool counters drifted: {e}");
        }
    }
}

fn login_pg() -> BytesMut {
    let mut out = BytesMut::new();
    Startup {
        version: ProtocolVersion(PROTOCOL_3_0),
        params: vec![
            (Bytes::from_static(b"user"), Bytes::from_static(b"app")),
            (Bytes::from_static(b"database"), Bytes::from_static(b"app")),
        ],
    }
    .encode(&mut out)
    .expect("startup");
    out
}

fn login_mysql(scramble: &[u8], password: &str) -> BytesMut {
    let response = HandshakeResponse41 {
        capabilities: caps(),
        max_packet_size: 1 << 24,
        character_set: 45,
        username: Bytes::from_static(b"app"),
        auth_response: Bytes::from(native::scramble_password(scramble, password.as_bytes())),
        database: Some(Bytes::from_static(b"app")),
        auth_plugin_name: Some(Bytes::from_static(native::NAME)),
        connect_attrs: vec![],
        zstd_compression_level: None,
    };
    let mut p = BytesMut::new();
    response.encode(&mut p).expect("login");
    my_packet(&p, 1)
}

fn server_login(protocol: Protocol) -> BytesMut {
    match protocol {
        Protocol::Postgres => pg(&[
            BackendMessage::Authentication(Authentication::Ok),
            BackendMessage::ParameterStatus {
                name: Bytes::from_static(b"server_version"),
                value: Bytes::from_static(b"17.0"),
            },
            BackendMessage::BackendKeyData {
                pid: 42,
                key: Bytes::from_static(&[1, 2, 3, 4]),
            },
            BackendMessage::ReadyForQuery(TransactionStatus::Idle),
        ]),
        _ => {
            let greeting = HandshakeV10 {
                server_version: Bytes::from_static(b"5.5.5-10.11.0-MariaDB"),
                connection_id: 9,
                auth_plugin_data: Bytes::from_static(b"abcdefgh12345678ijkl"),
                capabilities: caps(),
                character_set: 45,
                status: StatusFlags::SERVER_STATUS_AUTOCOMMIT,
                auth_plugin_name: Some(Bytes::from_static(native::NAME)),
            };
            let mut p = BytesMut::new();
            greeting.encode(&mut p).expect("greeting");
            my_packet(&p, 0)
        }
    }
}

fn server_result(protocol: Protocol, state: u8, seq: u8) -> BytesMut {
    match protocol {
        Protocol::Postgres => {
            let status = match state % 3 {
                0 => TransactionStatus::Idle,
                1 => TransactionStatus::InTransaction,
                _ => TransactionStatus::Failed,
            };
            pg(&[
                BackendMessage::CommandComplete(Bytes::from_static(b"SELECT 1")),
                BackendMessage::ReadyForQuery(status),
            ])
        }
        _ => {
            let mut status = StatusFlags::SERVER_STATUS_AUTOCOMMIT;
            if state & 1 != 0 {
                status |= StatusFlags::SERVER_STATUS_IN_TRANS;
            }
            let mut p = BytesMut::new();
            OkPacket::new(status).encode(&mut p, caps()).expect("ok");
            my_packet(&p, seq % 4)
        }
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let Ok(engine) = Engine::new(config()) else {
        return;
    };
    let mut host = Host {
        engine,
        now: 1_000,
        clients: Vec::new(),
        open: HashSet::new(),
        scrambles: HashMap::new(),
        upstreams: Vec::new(),
    };
    for op in ops.into_iter().take(256) {
        host.apply(op);
        host.drain();
    }
});
