//! A scripted PostgreSQL world for deterministic Engine tests: clients and a fake PostgreSQL
//! upstream driven step by step, no sockets. Pool counters are checked after every step.
// Each test file uses its own part of it.
#![allow(dead_code, unused_imports)]

pub use bytes::{Bytes, BytesMut};
pub use muxql::mux::{
    Action, ClientAuth, ClientId, Config, Engine, Peer, PinPolicy, PoolMode, Protocol, Route,
    UpstreamId, User,
};
pub use muxql::pg::backend::{BackendMessage, Fields, TransactionStatus};
pub use muxql::pg::frame::{split_frame, Direction, Frame};
pub use muxql::pg::frontend::{Bind, Close, Describe, Execute, FrontendMessage, Parse, TargetKind};
pub use muxql::pg::startup::{
    CancelRequest, ProtocolVersion, Startup, StartupRequest, PROTOCOL_3_0,
};
pub use muxql::wire::Limits;

/// The StartupMessage of user alice asking for database db, with more `params`.
pub fn startup_packet(params: &[(&str, &str)]) -> BytesMut {
    let mut p = vec![
        (Bytes::from_static(b"user"), Bytes::from_static(b"alice")),
        (Bytes::from_static(b"database"), Bytes::from_static(b"db")),
    ];
    for (k, v) in params {
        p.push((
            Bytes::copy_from_slice(k.as_bytes()),
            Bytes::copy_from_slice(v.as_bytes()),
        ));
    }
    let mut buf = BytesMut::new();
    StartupRequest::Startup(Startup {
        version: ProtocolVersion(PROTOCOL_3_0),
        params: p,
    })
    .encode(&mut buf)
    .unwrap();
    buf
}

/// Everything the Engine asked for, split by connection.
#[derive(Default, Debug)]
pub struct Out {
    pub to_clients: Vec<(ClientId, Bytes)>,
    pub to_upstreams: Vec<(UpstreamId, Bytes)>,
    pub connects: Vec<UpstreamId>,
    pub closed_clients: Vec<ClientId>,
    pub closed_upstreams: Vec<UpstreamId>,
    pub cancels: Vec<Bytes>,
    pub flow: Vec<Action>,
}

impl Out {
    pub fn client_msgs(&self, id: ClientId) -> Vec<BackendMessage> {
        frames(bytes_for(&self.to_clients, id), Direction::Backend)
            .iter()
            .map(|f| BackendMessage::parse(f).expect("valid backend message"))
            .collect()
    }

    pub fn upstream_msgs(&self, id: UpstreamId) -> Vec<FrontendMessage> {
        frames(bytes_for(&self.to_upstreams, id), Direction::Frontend)
            .iter()
            .map(|f| FrontendMessage::parse(f).expect("valid frontend message"))
            .collect()
    }
}

/// Everything sent to connection `id`, joined.
pub fn bytes_for<I: PartialEq>(sent: &[(I, Bytes)], id: I) -> BytesMut {
    let mut buf = BytesMut::new();
    for (to, b) in sent {
        if *to == id {
            buf.extend_from_slice(b);
        }
    }
    buf
}

pub fn frames(mut buf: BytesMut, dir: Direction) -> Vec<Frame> {
    let mut out = Vec::new();
    while let Some(f) = split_frame(&mut buf, dir, &Limits::default()).expect("valid frames") {
        out.push(f);
    }
    assert!(buf.is_empty(), "trailing partial frame");
    out
}

pub struct Sim {
    pub engine: Engine,
    pub now: u64,
}

pub fn config(pool_size: usize, mode: PoolMode) -> Config {
    let mut route = Route::new(Protocol::Postgres, "db", "127.0.0.1:5432", "up");
    route.pool_size = pool_size;
    route.pool_mode = mode;
    let mut config = Config::default();
    config.routes = vec![route];
    config.users = vec![User::new("alice", "pw")];
    config.client_auth = ClientAuth::Trust;
    config.rng_seed = Some([7; 32]);
    config.scram_iterations = 16;
    config
}

pub fn enc_front(msgs: &[FrontendMessage]) -> BytesMut {
    let mut b = BytesMut::new();
    for m in msgs {
        m.encode(&mut b).unwrap();
    }
    b
}

pub fn enc_back(msgs: &[BackendMessage]) -> BytesMut {
    let mut b = BytesMut::new();
    for m in msgs {
        m.encode(&mut b).unwrap();
    }
    b
}

pub fn q(sql: &str) -> FrontendMessage {
    FrontendMessage::Query(Bytes::copy_from_slice(sql.as_bytes()))
}

pub fn rfq(s: TransactionStatus) -> BackendMessage {
    BackendMessage::ReadyForQuery(s)
}

pub fn complete(tag: &str) -> BackendMessage {
    BackendMessage::CommandComplete(Bytes::copy_from_slice(tag.as_bytes()))
}

impl Sim {
    pub fn new(config: Config) -> Self {
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
                Action::SendCancel { bytes, .. } => out.cancels.push(bytes),
                other => out.flow.push(other),
            }
        }
        if let Err(e) = self.engine.check_counters() {
            panic!("pool counters drifted: {e}");
        }
        out
    }

    pub fn client_send(&mut self, id: ClientId, msgs: &[FrontendMessage]) -> Out {
        self.engine.client_data(id, enc_front(msgs), self.now);
        self.drain()
    }

    pub fn client_send_raw(&mut self, id: ClientId, bytes: BytesMut) -> Out {
        self.engine.client_data(id, bytes, self.now);
        self.drain()
    }

    pub fn upstream_send(&mut self, id: UpstreamId, msgs: &[BackendMessage]) -> Out {
        self.engine.upstream_data(id, enc_back(msgs), self.now);
        self.drain()
    }

    /// Completes a fake upstream login (trust) with a fixed backend key.
    pub fn login_upstream(&mut self, id: UpstreamId, pid: u32) -> Out {
        self.engine.upstream_connected(id, self.now);
        let out = self.drain();
        assert_eq!(out.to_upstreams.len(), 1, "startup packet sent");
        let param = |n: &str, v: &str| BackendMessage::ParameterStatus {
            name: Bytes::copy_from_slice(n.as_bytes()),
            value: Bytes::copy_from_slice(v.as_bytes()),
        };
        self.upstream_send(
            id,
            &[
                BackendMessage::Authentication(muxql::pg::backend::Authentication::Ok),
                param("application_name", ""),
                param("server_version", "15.0"),
                param("TimeZone", "UTC"),
                param("client_encoding", "UTF8"),
                BackendMessage::BackendKeyData {
                    pid,
                    key: Bytes::from_static(b"KEY!"),
                },
                rfq(TransactionStatus::Idle),
            ],
        )
    }

    /// Opens a client and completes its startup; returns the client and what happened.
    pub fn open_client(&mut self, params: &[(&str, &str)]) -> (ClientId, Out) {
        let id = self.engine.client_open(Protocol::Postgres, self.now);
        let buf = startup_packet(params);
        self.engine.client_data(id, buf, self.now);
        (id, self.drain())
    }

    /// Sends a CancelRequest on a new connection; returns the cancels forwarded upstream.
    pub fn cancel(&mut self, pid: u32, key: Bytes) -> Vec<Bytes> {
        let id = self.engine.client_open(Protocol::Postgres, self.now);
        let mut buf = BytesMut::new();
        StartupRequest::Cancel(CancelRequest { pid, key })
            .encode(&mut buf)
            .unwrap();
        self.engine.client_data(id, buf, self.now);
        let out = self.drain();
        assert_eq!(out.closed_clients, vec![id]);
        out.cancels
    }

    /// A ready client and (when the pool had none) its route's first upstream, logged in.
    pub fn ready_client(&mut self) -> ClientId {
        let (id, out) = self.open_client(&[]);
        for u in out.connects {
            self.login_upstream(u, 42);
        }
        id
    }
}

/// The cancel key muxql gave client `id` in its welcome.
pub fn cancel_key(welcome: &Out, id: ClientId) -> (u32, Bytes) {
    welcome
        .client_msgs(id)
        .into_iter()
        .find_map(|m| match m {
            BackendMessage::BackendKeyData { pid, key } => Some((pid, key)),
            _ => None,
        })
        .expect("BackendKeyData")
}

pub fn is_ready(msgs: &[BackendMessage]) -> bool {
    matches!(msgs.last(), Some(BackendMessage::ReadyForQuery(_)))
}

pub fn parse_msg(name: &str, sql: &str) -> FrontendMessage {
    FrontendMessage::Parse(Parse {
        name: Bytes::copy_from_slice(name.as_bytes()),
        query: Bytes::copy_from_slice(sql.as_bytes()),
        param_types: vec![],
    })
}

pub fn bind_msg(stmt: &str) -> FrontendMessage {
    FrontendMessage::Bind(Bind {
        portal: Bytes::new(),
        statement: Bytes::copy_from_slice(stmt.as_bytes()),
        param_formats: vec![],
        params: vec![],
        result_formats: vec![],
    })
}

pub fn execute_msg() -> FrontendMessage {
    FrontendMessage::Execute(Execute {
        portal: Bytes::new(),
        max_rows: 0,
    })
}

pub fn error(code: &str, message: &str) -> BackendMessage {
    BackendMessage::ErrorResponse(Fields::new("ERROR", code, message))
}

pub fn select_answer(n: &str) -> Vec<BackendMessage> {
    vec![
        complete(&format!("SELECT {n}")),
        rfq(TransactionStatus::Idle),
    ]
}

/// `n` ready clients on a pool of one; the first one's `SELECT 1` is running. Returns the
/// clients and the upstream.
pub fn one_busy_upstream(n: usize) -> (Sim, Vec<ClientId>, UpstreamId) {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let clients: Vec<ClientId> = (0..n).map(|_| sim.ready_client()).collect();
    let out = sim.client_send(clients[0], &[q("SELECT 1")]);
    let (u, _) = out.to_upstreams[0];
    (sim, clients, u)
}
