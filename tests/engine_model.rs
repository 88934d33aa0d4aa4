//! Property test of the Engine against a model: random clients sending autocommit queries,
//! transactions and extended-protocol units (some failing) through small pools, with and
//! without cross-client pipelining, served by fake upstreams that answer in order, delivered in
//! random byte slices, while upstreams die and time passes (wait and idle timeouts, lifetimes).
//! Clients also prepare, execute and close named statements (one text shared by all clients)
//! through a statement cache of two per upstream, so statements are evicted and prepared again.
//! Every client must get exactly its own answers, in order, with the transaction status and
//! `application_name` of its own session; only a client told why (08006, 53300) may be closed;
//! and the pools must end idle.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use bytes::{Buf, Bytes, BytesMut};
use muxql::mux::{
    Action, ClientAuth, ClientId, Config, Engine, PoolMode, Protocol, Route, UpstreamId, User,
};
use muxql::pg::backend::{Authentication, BackendMessage, Fields, TransactionStatus};
use muxql::pg::frame::{split_frame, Direction};
use muxql::pg::frontend::{Bind, Close, Execute, FrontendMessage, Parse, TargetKind};
use muxql::pg::startup::{ProtocolVersion, Startup, StartupRequest, PROTOCOL_3_0};
use muxql::wire::Limits;
use proptest::prelude::*;

/// What a model client asks for.
#[derive(Debug, Clone, Copy)]
enum Req {
    /// `SELECT n` as a simple Query, failing when the flag is set.
    Select(bool),
    /// Parse/Bind/Execute/Sync of `SELECT n`, failing at Parse when the flag is set.
    Extended(bool),
    /// `BEGIN` (only sent outside a transaction) or `COMMIT` (only inside one).
    Toggle,
    /// `SELECT n APP`: the fake server answers with the session's `application_name`.
    ShowApp,
    /// Parse of the client's named statement `s<k>` (when not prepared), Bind/Execute of it
    /// (when prepared), or Close of it (when prepared).
    Named(NamedOp, usize),
}

#[derive(Debug, Clone, Copy)]
enum NamedOp {
    Prepare,
    Execute,
    Close,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Send(usize, Req),
    /// Upstream (index mod count) receives up to this many bytes of its pending answers.
    Deliver(usize, usize),
    Leave(usize),
    /// Upstream (index mod count) dies.
    Kill(usize),
    /// Time passes (milliseconds).
    Tick(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let fails = || prop::bool::weighted(0.2);
    let req = prop_oneof![
        4 => fails().prop_map(Req::Select),
        3 => fails().prop_map(Req::Extended),
        1 => Just(Req::Toggle),
        2 => Just(Req::ShowApp),
        4 => (
            prop_oneof![Just(NamedOp::Prepare), Just(NamedOp::Execute), Just(NamedOp::Close)],
            0..NAMED,
        )
            .prop_map(|(o, k)| Req::Named(o, k)),
    ];
    prop_oneof![
        6 => (0..6usize, req).prop_map(|(c, r)| Op::Send(c, r)),
        6 => (0..4usize, 1..400usize).prop_map(|(u, n)| Op::Deliver(u, n)),
        1 => (0..6usize).prop_map(Op::Leave),
        1 => (0..4usize).prop_map(Op::Kill),
        1 => (1..40u64).prop_map(Op::Tick),
    ]
}

/// Named statements each client may prepare; statement 0's SQL is the same for every client.
const NAMED: usize = 3;

/// The SQL of client `client`'s statement `k` (also the CommandComplete tag it gets).
fn named_sql(client: usize, k: usize) -> String {
    match k {
        0 => "SELECT shared0".to_string(),
        k => format!("SELECT c{client}_k{k}"),
    }
}

fn query(sql: String) -> FrontendMessage {
    FrontendMessage::Query(Bytes::from(sql))
}

fn bind(statement: &str) -> FrontendMessage {
    FrontendMessage::Bind(Bind {
        portal: Bytes::new(),
        statement: Bytes::copy_from_slice(statement.as_bytes()),
        param_formats: Vec::new(),
        params: Vec::new(),
        result_formats: Vec::new(),
    })
}

fn execute() -> FrontendMessage {
    FrontendMessage::Execute(Execute {
        portal: Bytes::new(),
        max_rows: 0,
    })
}

/// A fake PostgreSQL backend: answers complete requests in order.
#[derive(Default)]
struct FakeServer {
    inbox: BytesMut,
    outbox: BytesMut,
    logged_in: bool,
    in_tx: bool,
    failed_tx: bool,
    /// Discarding extended messages until Sync after an error.
    skipping: bool,
    unnamed: String,
    /// Named prepared statements: name → SQL.
    statements: HashMap<Bytes, String>,
    /// The SQL the unnamed portal runs.
    portal: String,
    /// The session's `application_name`.
    app: String,
}

impl FakeServer {
    fn status(&self) -> TransactionStatus {
        match (self.in_tx, self.failed_tx) {
            (false, _) => TransactionStatus::Idle,
            (true, false) => TransactionStatus::InTransaction,
            (true, true) => TransactionStatus::Failed,
        }
    }

    fn answer(&mut self, msg: BackendMessage) {
        msg.encode(&mut self.outbox).unwrap();
    }

    fn fail(&mut self) {
        self.fail_with("22012");
    }

    fn fail_with(&mut self, code: &str) {
        self.answer(BackendMessage::ErrorResponse(Fields::new(
            "ERROR", code, "fails",
        )));
        self.failed_tx |= self.in_tx;
    }

    /// Runs `sql` as a statement: its CommandComplete or error.
    fn run(&mut self, sql: &str) {
        if sql.ends_with("FAIL") {
            return self.fail();
        }
        let tag = match sql {
            "BEGIN" => {
                self.in_tx = true;
                "BEGIN".to_string()
            }
            "COMMIT" | "ROLLBACK" | "DISCARD ALL" => {
                self.in_tx = false;
                self.failed_tx = false;
                sql.to_string()
            }
            "RESET application_name" => {
                self.app.clear();
                "RESET".to_string()
            }
            s if s.starts_with("SELECT pg_catalog.set_config('application_name','") => {
                let value = s.split('\'').nth(3).unwrap_or_default();
                self.app = value.to_string();
                "SELECT 1".to_string()
            }
            s if s.ends_with(" APP") => format!("{} app={}", &s[..s.len() - 4], self.app),
            s if s.starts_with("SELECT ") => s.to_string(),
            _ => "SET".to_string(),
        };
        self.answer(BackendMessage::CommandComplete(Bytes::from(tag)));
    }

    fn process(&mut self) {
        if !self.logged_in {
            if self.inbox.len() < 4 {
                return;
            }
            let len = u32::from_be_bytes(self.inbox[..4].try_into().unwrap()) as usize;
            if self.inbox.len() < len {
                return;
            }
            self.inbox.advance(len);
            self.logged_in = true;
            self.answer(BackendMessage::Authentication(Authentication::Ok));
            for (k, v) in [("server_version", "15.0"), ("client_encoding", "UTF8")] {
                self.answer(BackendMessage::ParameterStatus {
                    name: Bytes::from_static(k.as_bytes()),
                    value: Bytes::from_static(v.as_bytes()),
                });
            }
            self.answer(BackendMessage::BackendKeyData {
                pid: 1,
                key: Bytes::from_static(b"KEY!"),
            });
            self.answer(BackendMessage::ReadyForQuery(TransactionStatus::Idle));
        }
        while let Some(frame) =
            split_frame(&mut self.inbox, Direction::Frontend, &Limits::default()).unwrap()
        {
            let msg = FrontendMessage::parse(&frame).unwrap();
            if self.skipping && !matches!(msg, FrontendMessage::Sync) {
                continue;
            }
            match msg {
                FrontendMessage::Query(sql) => {
                    let sql = String::from_utf8(sql.to_vec()).unwrap();
                    for stmt in sql.split(';').filter(|s| !s.is_empty()) {
                        self.run(stmt.trim());
                    }
                    self.answer(BackendMessage::ReadyForQuery(self.status()));
                }
                FrontendMessage::Parse(p) => {
                    let sql = String::from_utf8(p.query.to_vec()).unwrap();
                    if sql.ends_with("FAIL") {
                        self.fail();
                        self.skipping = true;
                    } else if p.name.is_empty() {
                        self.unnamed = sql;
                        self.answer(BackendMessage::ParseComplete);
                    } else if let Entry::Vacant(slot) = self.statements.entry(p.name) {
                        slot.insert(sql);
                        self.answer(BackendMessage::ParseComplete);
                    } else {
                        self.fail_with("42P05");
                        self.skipping = true;
                    }
                }
                FrontendMessage::Bind(b) => {
                    let sql = match b.statement.is_empty() {
                        true => Some(self.unnamed.clone()).filter(|s| !s.is_empty()),
                        false => self.statements.get(&b.statement).cloned(),
                    };
                    match sql {
                        Some(sql) => {
                            self.portal = sql;
                            self.answer(BackendMessage::BindComplete);
                        }
                        None => {
                            self.fail_with("26000");
                            self.skipping = true;
                        }
                    }
                }
                FrontendMessage::Execute(_) => {
                    let sql = self.portal.clone();
                    self.run(&sql);
                }
                FrontendMessage::Close(c) => {
                    match c.name.is_empty() {
                        true => self.unnamed.clear(),
                        false => {
                            self.statements.remove(&c.name);
                        }
                    }
                    self.answer(BackendMessage::CloseComplete);
                }
                FrontendMessage::Sync => {
                    self.skipping = false;
                    self.answer(BackendMessage::ReadyForQuery(self.status()));
                }
                FrontendMessage::Terminate => {}
                other => panic!("fake server got {other:?}"),
            }
        }
    }
}

/// Whether `msgs` close a statement (answered even in an aborted transaction block).
fn closes(msgs: &[FrontendMessage]) -> bool {
    matches!(msgs.first(), Some(FrontendMessage::Close(_)))
}

/// What a model client expects next.
#[derive(Debug, Clone)]
struct Expected {
    /// The CommandComplete tag it must get, if any.
    want: Option<String>,
    fails: bool,
    /// `BEGIN`/`COMMIT`: the request changes the client's transaction state.
    toggle: Option<&'static str>,
}

#[derive(Default)]
struct ModelClient {
    /// The `application_name` it logged in with.
    app: &'static str,
    /// Which of its named statements are prepared.
    prepared: [bool; NAMED],
    in_tx: bool,
    left: bool,
    /// Its request got the error of a lost upstream (08006); its ReadyForQuery comes next.
    lost: bool,
    /// Its transaction was lost with its upstream: until it ends it, every command fails
    /// (25P02) and its COMMIT answers ROLLBACK, as in an aborted transaction block.
    aborted: bool,
    outstanding: Option<Expected>,
    received: BytesMut,
}

struct World {
    engine: Engine,
    clients: Vec<(ClientId, ModelClient)>,
    servers: HashMap<u64, FakeServer>,
    server_order: Vec<u64>,
    next_n: u64,
    /// Clients are welcomed: from now on everything they receive is checked.
    checking: bool,
    now: u64,
}

impl World {
    /// `clients` clients; with `mixed_params`, odd and even ones ask for different
    /// `application_name`s, which the Engine must replay as they move between upstreams.
    fn new(pool_size: usize, depth: usize, clients: usize, mixed_params: bool) -> World {
        let mut route = Route::new(Protocol::Postgres, "db", "fake", "up");
        route.pool_size = pool_size;
        route.pool_mode = PoolMode::Transaction;
        let mut config = Config::default();
        config.routes = vec![route];
        config.users = vec![User::new("u", "")];
        config.client_auth = ClientAuth::Trust;
        config.rng_seed = Some([3; 32]);
        config.pipeline_depth = depth;
        config.statement_cache_size = 2;
        config.wait_timeout_ms = 100;
        config.idle_timeout_ms = 30;
        config.server_lifetime_ms = 200;
        let mut w = World {
            engine: Engine::new(config).unwrap(),
            clients: Vec::new(),
            servers: HashMap::new(),
            server_order: Vec::new(),
            next_n: 1,
            checking: false,
            now: 0,
        };
        for i in 0..clients {
            let id = w.engine.client_open(Protocol::Postgres, 0);
            let mut buf = BytesMut::new();
            let mut params = vec![
                (Bytes::from_static(b"user"), Bytes::from_static(b"u")),
                (Bytes::from_static(b"database"), Bytes::from_static(b"db")),
            ];
            let app = match (mixed_params, i % 2) {
                (false, _) => "",
                (true, 0) => "even",
                (true, _) => "odd",
            };
            if !app.is_empty() {
                params.push((
                    Bytes::from_static(b"application_name"),
                    Bytes::from_static(app.as_bytes()),
                ));
            }
            StartupRequest::Startup(Startup {
                version: ProtocolVersion(PROTOCOL_3_0),
                params,
            })
            .encode(&mut buf)
            .unwrap();
            w.clients.push((
                id,
                ModelClient {
                    app,
                    ..ModelClient::default()
                },
            ));
            w.engine.client_data(id, buf, 0);
            w.route();
        }
        w.settle();
        for (_, c) in &mut w.clients {
            let welcome = std::mem::take(&mut c.received);
            assert!(welcome.ends_with(b"Z\0\0\0\x05I"), "client welcomed");
        }
        w.checking = true;
        w
    }

    /// Carries out the Engine's actions.
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
                    }
                }
                Action::ConnectUpstream { id, .. } => {
                    self.servers.insert(id.0, FakeServer::default());
                    self.server_order.push(id.0);
                    self.engine.upstream_connected(id, self.now);
                }
                Action::CloseUpstream { id } => {
                    self.servers.remove(&id.0);
                    self.server_order.retain(|&s| s != id.0);
                }
                Action::CloseClient { id } => {
                    let c = self.client_mut(id);
                    if !c.left {
                        // Only a client whose upstream died or whose wait timed out may be
                        // closed, and it was told so.
                        let told = [b"08006", b"53300"]
                            .iter()
                            .any(|code| c.received.windows(5).any(|w| w == &code[..]));
                        assert!(told, "the engine closed a healthy client");
                        c.left = true;
                        c.received.clear();
                    }
                }
                Action::SendCancel { .. } => panic!("nobody cancels here"),
                // The model's host feeds only what clients send, never too much.
                Action::PauseReading { .. } | Action::ResumeReading { .. } => {}
                other => panic!("unexpected action {other:?}"),
            }
        }
        if let Err(e) = self.engine.check_counters() {
            panic!("pool counters drifted: {e}");
        }
    }

    fn client_mut(&mut self, id: ClientId) -> &mut ModelClient {
        &mut self
            .clients
            .iter_mut()
            .find(|(c, _)| *c == id)
            .expect("known client")
            .1
    }

    /// Delivers up to `max` bytes of upstream `index`'s answers.
    fn deliver(&mut self, index: usize, max: usize) {
        if self.server_order.is_empty() {
            return;
        }
        let key = self.server_order[index % self.server_order.len()];
        self.deliver_to(key, max);
    }

    /// Delivers up to `max` bytes of upstream `key`'s answers.
    fn deliver_to(&mut self, key: u64, max: usize) {
        let Some(s) = self.servers.get_mut(&key) else {
            return;
        };
        s.process();
        let n = max.min(s.outbox.len());
        if n == 0 {
            return;
        }
        let chunk = s.outbox.split_to(n);
        self.engine.upstream_data(UpstreamId(key), chunk, self.now);
        self.route();
        self.check_clients();
    }

    /// Delivers everything until nothing moves.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            let before: usize = self.servers.values().map(|s| s.inbox.len()).sum();
            let mut moved = false;
            for key in self.server_order.clone() {
                let pending = self.servers.get_mut(&key).map_or(0, |s| {
                    s.process();
                    s.outbox.len()
                });
                if pending > 0 {
                    self.deliver_to(key, usize::MAX);
                    moved = true;
                }
            }
            let after: usize = self.servers.values().map(|s| s.inbox.len()).sum();
            if !moved && before == after {
                return;
            }
        }
        panic!("the system never settled");
    }

    fn send(&mut self, index: usize, req: Req) {
        let n = self.next_n;
        let len = self.clients.len();
        let client = index % len;
        let (id, c) = &mut self.clients[client];
        if c.left || c.outstanding.is_some() {
            return;
        }
        let plain = |sql: String| {
            vec![
                FrontendMessage::Parse(Parse {
                    name: Bytes::new(),
                    query: Bytes::from(sql),
                    param_types: Vec::new(),
                }),
                bind(""),
                execute(),
                FrontendMessage::Sync,
            ]
        };
        let tagged = |fails: bool| format!("SELECT {n}{}", if fails { " FAIL" } else { "" });
        let (msgs, expected) = match req {
            Req::ShowApp => (
                vec![query(format!("SELECT {n} APP"))],
                Expected {
                    want: Some(format!("SELECT {n} app={}", c.app)),
                    fails: false,
                    toggle: None,
                },
            ),
            Req::Select(fails) => (
                vec![query(tagged(fails))],
                Expected {
                    want: (!fails).then(|| format!("SELECT {n}")),
                    fails,
                    toggle: None,
                },
            ),
            Req::Extended(fails) => (
                plain(tagged(fails)),
                Expected {
                    want: (!fails).then(|| format!("SELECT {n}")),
                    fails,
                    toggle: None,
                },
            ),
            Req::Toggle => {
                let sql = if c.in_tx { "COMMIT" } else { "BEGIN" };
                let tag = if c.aborted { "ROLLBACK" } else { sql };
                (
                    vec![query(sql.to_string())],
                    Expected {
                        want: Some(tag.to_string()),
                        fails: false,
                        toggle: Some(sql),
                    },
                )
            }
            Req::Named(op, k) => {
                let name = Bytes::from(format!("s{k}"));
                let msgs = match (op, c.prepared[k]) {
                    (NamedOp::Prepare, false) => vec![
                        FrontendMessage::Parse(Parse {
                            name,
                            query: Bytes::from(named_sql(client, k)),
                            param_types: Vec::new(),
                        }),
                        FrontendMessage::Sync,
                    ],
                    (NamedOp::Execute, true) => {
                        vec![bind(&format!("s{k}")), execute(), FrontendMessage::Sync]
                    }
                    (NamedOp::Close, true) => vec![
                        FrontendMessage::Close(Close {
                            kind: TargetKind::Statement,
                            name,
                        }),
                        FrontendMessage::Sync,
                    ],
                    _ => return,
                };
                match op {
                    NamedOp::Prepare => c.prepared[k] = !c.aborted,
                    NamedOp::Close => c.prepared[k] = false,
                    NamedOp::Execute => {}
                }
                let want = matches!(op, NamedOp::Execute).then(|| named_sql(client, k));
                (
                    msgs,
                    Expected {
                        want,
                        fails: false,
                        toggle: None,
                    },
                )
            }
        };
        self.next_n += 1;
        let expected = match expected {
            // In a lost transaction everything but its end (and Close) fails.
            e if c.aborted && e.toggle.is_none() && !closes(&msgs) => Expected {
                want: None,
                fails: true,
                toggle: None,
            },
            e => e,
        };
        c.outstanding = Some(expected);
        let mut buf = BytesMut::new();
        for m in &msgs {
            m.encode(&mut buf).unwrap();
        }
        let id = *id;
        self.engine.client_data(id, buf, self.now);
        self.route();
        // Some answers come from muxql itself (a lost transaction's), without any server.
        self.check_clients();
    }

    /// Time passes; whatever is due expires.
    fn tick(&mut self, ms: u64) {
        self.now += ms;
        self.engine.handle_timeout(self.now);
        self.route();
        self.check_clients();
    }

    /// Upstream `index` (mod count) dies: its clients must be told (an error for their request,
    /// or an error and the end of their session when it lived on that server).
    fn kill(&mut self, index: usize) {
        if self.server_order.is_empty() {
            return;
        }
        let key = self.server_order.remove(index % self.server_order.len());
        self.servers.remove(&key);
        self.engine.upstream_closed(UpstreamId(key), self.now);
        self.route();
        self.check_clients();
    }

    fn leave(&mut self, index: usize) {
        let len = self.clients.len();
        let (id, c) = &mut self.clients[index % len];
        if c.left {
            return;
        }
        c.left = true;
        let id = *id;
        self.engine.client_closed(id, self.now);
        self.route();
    }

    /// Checks what each client received against what it asked for.
    fn check_clients(&mut self) {
        if !self.checking {
            return;
        }
        for (_, c) in &mut self.clients {
            while let Some(frame) =
                split_frame(&mut c.received, Direction::Backend, &Limits::default()).unwrap()
            {
                let msg = BackendMessage::parse(&frame).unwrap();
                let exp = c
                    .outstanding
                    .clone()
                    .unwrap_or_else(|| panic!("an answer nobody asked for: {msg:?}"));
                match msg {
                    BackendMessage::CommandComplete(tag) => {
                        let want = exp.want.as_deref().expect("no result expected");
                        assert_eq!(&tag[..], want.as_bytes(), "someone else's answer");
                    }
                    // The upstream running the request died: the request fails, the session
                    // goes on, and whatever it was about to start did not happen.
                    BackendMessage::ErrorResponse(f)
                        if f.code().map(|c| &c[..]) == Some(&b"08006"[..]) =>
                    {
                        c.lost = true;
                    }
                    BackendMessage::ErrorResponse(_) => assert!(exp.fails, "unexpected error"),
                    BackendMessage::ParseComplete
                    | BackendMessage::BindComplete
                    | BackendMessage::CloseComplete => {}
                    BackendMessage::ReadyForQuery(status) => {
                        match exp.toggle {
                            // Lost inside a transaction: it is aborted until the client ends it.
                            _ if std::mem::take(&mut c.lost) => {
                                c.aborted = status == TransactionStatus::Failed;
                                c.in_tx = c.aborted;
                            }
                            Some("BEGIN") => c.in_tx = true,
                            Some(_) => (c.in_tx, c.aborted) = (false, false),
                            None => {}
                        }
                        let want = if c.in_tx {
                            TransactionStatus::InTransaction
                        } else {
                            TransactionStatus::Idle
                        };
                        let status = match status {
                            TransactionStatus::Failed => TransactionStatus::InTransaction,
                            s => s,
                        };
                        assert_eq!(status, want, "another session's transaction status");
                        c.outstanding = None;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    }

    /// Ends every open transaction, delivers everything, and checks the pools are idle.
    fn finish(&mut self) {
        self.settle();
        // A transaction may start only once another ends: commit until none is open.
        for _ in 0..=self.clients.len() {
            for i in 0..self.clients.len() {
                if self.clients[i].1.in_tx && !self.clients[i].1.left {
                    self.send(i, Req::Toggle);
                }
            }
            self.settle();
        }
        for (_, c) in &self.clients {
            assert!(
                c.left || c.outstanding.is_none(),
                "a request was never answered"
            );
        }
        let stats = self.engine.stats().routes[0];
        assert_eq!(stats.clients_active, 0, "{stats:?}");
        assert_eq!(stats.upstreams_active, 0, "{stats:?}");
        assert_eq!(stats.clients_waiting, 0, "{stats:?}");
        assert!(self.engine.is_idle());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn every_client_gets_its_own_answers(
        pool in 1..4usize,
        depth in 0..5usize,
        clients in 2..7usize,
        mixed_params in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let mut w = World::new(pool, depth, clients, mixed_params);
        for op in ops {
            match op {
                Op::Send(c, r) => w.send(c, r),
                Op::Deliver(u, n) => w.deliver(u, n),
                Op::Leave(c) => w.leave(c),
                Op::Kill(u) => w.kill(u),
                Op::Tick(ms) => w.tick(ms),
            }
        }
        w.finish();
    }
}

#[test]
fn requests_behind_a_busy_upstream_are_pipelined_and_answered() {
    let mut w = World::new(1, 4, 3, false);
    w.send(0, Req::Select(false));
    w.send(1, Req::Extended(false));
    w.send(2, Req::Select(true));
    assert_eq!(w.engine.stats().routes[0].pipelined, 2);
    w.finish();
}
