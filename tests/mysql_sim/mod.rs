//! A scripted MySQL world for deterministic Engine tests: clients and a fake MariaDB upstream
//! driven step by step, no sockets. Pool counters are checked after every step.
// Each test file uses its own part of it.
#![allow(dead_code, unused_imports)]

pub use bytes::{Bytes, BytesMut};
pub use muxql::mux::{
    Action, ClientId, Config, Engine, MysqlAuth, PoolMode, Protocol, Route, User,
};
pub use muxql::mux::{Peer, UpstreamId, MAX_TIMEOUT_MS};
pub use muxql::mysql::auth::native;
pub use muxql::mysql::command::code::COM_QUERY;
pub use muxql::mysql::handshake::{HandshakeResponse41, HandshakeV10};
pub use muxql::mysql::packet::write_packet;
pub use muxql::mysql::response::{ErrPacket, OkPacket};
pub use muxql::mysql::{CapabilityFlags, PacketCodec, StatusFlags};
pub use muxql::wire::Limits;

pub const PASSWORD: &str = "pw";

pub fn config(pool_size: usize) -> Config {
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

pub fn caps() -> CapabilityFlags {
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

pub fn frame(payload: &[u8], seq: u8) -> BytesMut {
    let mut out = BytesMut::new();
    let mut seq = seq;
    write_packet(&mut out, &mut seq, payload).unwrap();
    out
}

pub fn ok(status: StatusFlags, caps: CapabilityFlags) -> Vec<u8> {
    let mut p = BytesMut::new();
    OkPacket::new(status).encode(&mut p, caps).unwrap();
    p.to_vec()
}

pub fn query(sql: &str) -> BytesMut {
    let mut p = vec![COM_QUERY];
    p.extend_from_slice(sql.as_bytes());
    frame(&p, 0)
}

/// Everything the Engine asked for in one step.
#[derive(Default, Debug)]
pub struct Out {
    pub to_clients: Vec<(ClientId, Bytes)>,
    pub to_upstreams: Vec<(UpstreamId, Bytes)>,
    pub connects: Vec<UpstreamId>,
    pub closed_clients: Vec<ClientId>,
    pub closed_upstreams: Vec<UpstreamId>,
    pub paused: Vec<Peer>,
    pub start_tls: Vec<(ClientId, Bytes)>,
}

impl Out {
    /// The payloads of the packets sent to `id`, in order.
    pub fn packets_to_client(&self, id: ClientId) -> Vec<Bytes> {
        packets(
            self.to_clients
                .iter()
                .filter(|(c, _)| *c == id)
                .map(|(_, b)| b),
        )
    }

    pub fn packets_to_upstream(&self, id: UpstreamId) -> Vec<Bytes> {
        packets(
            self.to_upstreams
                .iter()
                .filter(|(u, _)| *u == id)
                .map(|(_, b)| b),
        )
    }
}

/// Cuts joined wire bytes into packet payloads (sequence ids are not checked here).
pub fn packets<'a>(parts: impl Iterator<Item = &'a Bytes>) -> Vec<Bytes> {
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

pub struct Sim {
    pub engine: Engine,
    pub now: u64,
}

impl Sim {
    pub fn new(config: Config) -> Sim {
        Sim {
            engine: Engine::new(config).unwrap(),
            now: 1_000,
        }
    }

    pub fn drain(&mut self) -> Out {
        let mut out = Out::default();
        while let Some(a) = self.engine.poll_action() {
            match a {
                Action::SendClient { id, bytes } => out.to_clients.push((id, bytes)),
                Action::SendUpstream { id, bytes } => out.to_upstreams.push((id, bytes)),
                Action::ConnectUpstream { id, .. } => out.connects.push(id),
                Action::CloseClient { id } => out.closed_clients.push(id),
                Action::CloseUpstream { id } => out.closed_upstreams.push(id),
                Action::PauseReading { peer } => out.paused.push(peer),
                Action::StartTls { id, records } => out.start_tls.push((id, records)),
                _ => {}
            }
        }
        if let Err(e) = self.engine.check_counters() {
            panic!("pool counters drifted: {e}");
        }
        out
    }

    pub fn client_send(&mut self, id: ClientId, bytes: BytesMut) -> Out {
        self.engine.client_data(id, bytes, self.now);
        self.drain()
    }

    pub fn upstream_send(&mut self, id: UpstreamId, bytes: BytesMut) -> Out {
        self.engine.upstream_data(id, bytes, self.now);
        self.drain()
    }

    /// Logs a fake MariaDB upstream in: greeting, OK for the login, OK for the trackers.
    pub fn login_upstream(&mut self, id: UpstreamId, thread: u32) -> Out {
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
    pub fn open_client(&mut self, password: &str) -> (ClientId, Out) {
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

    pub fn ready_client(&mut self) -> ClientId {
        let (id, out) = self.open_client(PASSWORD);
        let answer = out.packets_to_client(id);
        assert_eq!(answer.last().map(|p| p[0]), Some(0x00), "OK: {answer:?}");
        id
    }
}

pub fn in_trans() -> StatusFlags {
    StatusFlags::SERVER_STATUS_AUTOCOMMIT | StatusFlags::SERVER_STATUS_IN_TRANS
}
