//! The host of the Engine targets: it applies fuzzer-chosen events to one Engine, plays every
//! client and every upstream server (the scripted models), and checks after each event:
//!
//! - the pool counters match what exists (`Engine::check_counters`);
//! - no action addresses a client or upstream that is closed, unknown or not yet connected;
//! - every frame sent to a client is well framed (within `max_message`, but for streamed rows and
//!   COPY data, within PostgreSQL's 1 GB), and everything sent
//!   to an upstream is what its server would accept (framing always, content while no raw
//!   bytes were injected);
//! - every tag a client receives is its own (while no raw bytes were injected);
//! - a login with the wrong password never succeeds, and with the right one SCRAM's server
//!   signature verifies.

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use muxql::mux::{
    Action, ClientAuth, ClientId, Config, Engine, MysqlAuth, Peer, PoolMode, Protocol, Route,
    UpstreamId, User,
};
use muxql::mysql::PacketHeader;
use muxql::pg::backend::BackendMessage;
use muxql::pg::frame::{split_frame, Direction};
use muxql::pg::startup::{CancelRequest, StartupRequest};
use muxql::wire::limits::HARD_MAX_MESSAGE;
use muxql::wire::Limits;

use crate::mysql_client::{self, MysqlLogin};
use crate::mysql_server::MysqlServer;
use crate::pg_client::{self, PgLogin};
use crate::pg_server::PgServer;
use crate::tags::{find_tags, tag};

/// The user every client logs in as.
pub const USER: &str = "app";
/// Its password.
pub const PASSWORD: &str = "pw";
/// The Engine's `max_message`: small, so that limits are within the fuzzer's reach.
const MAX_MESSAGE: usize = 1 << 16;
/// What a client may receive: rows and COPY data stream through up to PostgreSQL's own bound.
const STREAMED: Limits = Limits {
    max_message: HARD_MAX_MESSAGE,
    max_startup: muxql::wire::limits::MAX_STARTUP_PACKET,
};
/// Events per input.
const MAX_OPS: usize = 256;
/// Databases: one route in transaction mode, one in session mode.
const DATABASES: [&str; 2] = ["app", "sess"];

/// One fuzz input: a few settings, then the events.
#[derive(Arbitrary, Debug)]
pub struct Input {
    /// Client authentication method (PostgreSQL: SCRAM, MD5, cleartext, trust; MySQL: native,
    /// caching_sha2).
    pub auth: u8,
    /// Upstreams per route, 1 to 3.
    pub pool_size: u8,
    /// Cross-client pipelining depth, 0 to 4.
    pub pipeline_depth: u8,
    /// The events.
    pub ops: Vec<Op>,
}

/// One host event. Clients and upstreams are picked by index modulo those that exist.
#[derive(Arbitrary, Debug)]
pub enum Op {
    /// A client connects.
    Open,
    /// A client logs in to one of the two routes, with the right password or not.
    Login {
        /// Which client.
        client: u8,
        /// Right password.
        right_password: bool,
        /// The session-mode route.
        session: bool,
    },
    /// A client sends a request from the protocol's list, in one arrival or cut in two.
    Request {
        /// Which client.
        client: u8,
        /// Which request.
        request: u8,
        /// Where to cut it (0: not cut).
        cut: u8,
    },
    /// A client sends arbitrary bytes.
    ClientBytes {
        /// Which client.
        client: u8,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A client's socket closes.
    ClientClose {
        /// Which client.
        client: u8,
    },
    /// An upstream connection the Engine asked for is established.
    Connected {
        /// Which upstream.
        upstream: u8,
    },
    /// An upstream's server delivers some of its queued answers.
    Answer {
        /// Which upstream.
        upstream: u8,
        /// How many bytes, at most.
        max: u16,
    },
    /// An upstream sends arbitrary bytes.
    UpstreamBytes {
        /// Which upstream.
        upstream: u8,
        /// The bytes.
        data: Vec<u8>,
    },
    /// An upstream's socket closes.
    UpstreamClose {
        /// Which upstream.
        upstream: u8,
    },
    /// A new connection sends a CancelRequest with a client's key (PostgreSQL).
    Cancel {
        /// Whose query.
        client: u8,
    },
    /// The host reports a cancel's side connection done.
    CancelDone {
        /// Which of the cancels sent so far.
        cancel: u8,
    },
    /// Time passes (16 ms units).
    Tick {
        /// How long.
        ms: u16,
    },
    /// The host's write queue to a peer fills up.
    Blocked {
        /// Which client or upstream.
        peer: u8,
        /// An upstream rather than a client.
        upstream: bool,
    },
    /// The host's write queue to a peer drains.
    Drained {
        /// Which client or upstream.
        peer: u8,
        /// An upstream rather than a client.
        upstream: bool,
    },
}

/// What a client learned about its login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// The Engine let it in.
    Authenticated,
    /// The Engine refused it.
    Refused,
}

enum Login {
    None,
    Pg(PgLogin),
    Mysql(MysqlLogin),
}

struct Client {
    id: ClientId,
    n: u32,
    open: bool,
    paused: bool,
    inbox: BytesMut,
    greeting: Option<Bytes>,
    login: Login,
    /// Whether the Login event used the right password (None: no Login event yet).
    right: Option<bool>,
    /// The client sent raw bytes: its login is not the harness's to judge.
    raw: bool,
    /// The cancel key muxql gave it (PostgreSQL).
    cancel_key: Option<(u32, Bytes)>,
}

enum Server {
    Pg(PgServer),
    Mysql(MysqlServer),
}

struct Upstream {
    id: UpstreamId,
    open: bool,
    paused: bool,
    server: Option<Server>,
    /// The model refused what it was sent (after raw bytes): it answers nothing more.
    confused: bool,
}

/// The Engine and everything around it.
pub struct Host {
    engine: Engine,
    protocol: Protocol,
    now: u64,
    limits: Limits,
    clients: Vec<Client>,
    upstreams: Vec<Upstream>,
    /// Raw bytes were injected somewhere: tags and message contents are no longer the
    /// harness's, only framing and routing are checked.
    tainted: bool,
    /// The client authentication method checks passwords.
    passwords_checked: bool,
    /// Upstreams of the cancels sent and not yet reported done.
    cancels: Vec<UpstreamId>,
    report: Report,
}

fn config(protocol: Protocol, input: &Input) -> Config {
    let mut config = Config::default();
    config.routes = DATABASES
        .iter()
        .map(|db| {
            let mut r = Route::new(protocol, *db, "127.0.0.1:1", "up");
            r.pool_size = 1 + usize::from(input.pool_size % 3);
            r.pool_mode = if *db == "sess" {
                PoolMode::Session
            } else {
                PoolMode::Transaction
            };
            r
        })
        .collect();
    config.users = vec![User::new(USER, PASSWORD)];
    config.client_auth = match input.auth % 4 {
        0 => ClientAuth::ScramSha256,
        1 => ClientAuth::Md5,
        2 => ClientAuth::Cleartext,
        _ => ClientAuth::Trust,
    };
    config.mysql_auth = if input.auth.is_multiple_of(2) {
        MysqlAuth::NativePassword
    } else {
        MysqlAuth::CachingSha2Password
    };
    config.scram_iterations = 1;
    config.pipeline_depth = usize::from(input.pipeline_depth % 5);
    config.max_message = MAX_MESSAGE;
    config.rng_seed = Some([7; 32]);
    config
}

/// What one run reached: how deep the events went (the harness's own tests check it).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Logins the Engine accepted.
    pub logins: usize,
    /// Logins the Engine refused.
    pub refusals: usize,
    /// Tags clients received (answers that came from an upstream's server).
    pub tags: usize,
}

/// Runs one input against a fresh Engine for `protocol`.
pub fn run(protocol: Protocol, input: Input) -> Report {
    let config = config(protocol, &input);
    let passwords_checked = protocol == Protocol::Mysql || config.client_auth != ClientAuth::Trust;
    let Ok(engine) = Engine::new(config) else {
        return Report::default();
    };
    let mut host = Host {
        engine,
        protocol,
        now: 1_000,
        limits: Limits::with_max_message(MAX_MESSAGE),
        clients: Vec::new(),
        upstreams: Vec::new(),
        tainted: false,
        passwords_checked,
        cancels: Vec::new(),
        report: Report::default(),
    };
    for op in input.ops.into_iter().take(MAX_OPS) {
        host.apply(op);
        host.drain();
    }
    host.report
}

fn pick(len: usize, i: u8) -> Option<usize> {
    (len > 0).then(|| usize::from(i) % len)
}

impl Host {
    /// A client that may send: open and not paused.
    fn sender(&self, i: u8) -> Option<usize> {
        pick(self.clients.len(), i).filter(|&c| self.clients[c].open && !self.clients[c].paused)
    }

    fn apply(&mut self, op: Op) {
        let now = self.now;
        match op {
            Op::Open => {
                let id = self.engine.client_open(self.protocol, now);
                let n = u32::try_from(self.clients.len()).unwrap_or(u32::MAX);
                self.clients.push(Client {
                    id,
                    n,
                    open: true,
                    paused: false,
                    inbox: BytesMut::new(),
                    greeting: None,
                    login: Login::None,
                    right: None,
                    raw: false,
                    cancel_key: None,
                });
            }
            Op::Login {
                client,
                right_password,
                session,
            } => {
                let Some(c) = self.sender(client) else { return };
                if self.clients[c].right.is_some() {
                    return;
                }
                let password = if right_password { PASSWORD } else { "nope" };
                let database = DATABASES[usize::from(session)];
                let client = &mut self.clients[c];
                let bytes = match self.protocol {
                    Protocol::Postgres => {
                        let nonce = [u8::try_from(client.n % 256).unwrap_or(0); 18];
                        client.login = Login::Pg(PgLogin::new(password, nonce));
                        pg_client::startup(database)
                    }
                    _ => {
                        let Some(greeting) = &client.greeting else {
                            return;
                        };
                        let Some((login, bytes)) = MysqlLogin::start(greeting, password, database)
                        else {
                            return;
                        };
                        client.login = Login::Mysql(login);
                        bytes
                    }
                };
                client.right = Some(right_password);
                let id = client.id;
                self.engine.client_data(id, bytes, now);
            }
            Op::Request {
                client,
                request,
                cut,
            } => {
                let Some(c) = self.sender(client) else { return };
                let tag = tag(self.clients[c].n);
                let mut bytes = match self.protocol {
                    Protocol::Postgres => pg_client::request(request, &tag),
                    _ => mysql_client::request(request, &tag),
                };
                let id = self.clients[c].id;
                if cut != 0 && bytes.len() > 1 {
                    let first = bytes.split_to(1 + usize::from(cut) % (bytes.len() - 1));
                    self.engine.client_data(id, first, now);
                }
                self.engine.client_data(id, bytes, now);
            }
            Op::ClientBytes { client, data } => {
                let Some(c) = self.sender(client) else { return };
                self.tainted = true;
                self.clients[c].raw = true;
                let id = self.clients[c].id;
                self.engine.client_data(id, BytesMut::from(&data[..]), now);
            }
            Op::ClientClose { client } => {
                let Some(c) = pick(self.clients.len(), client) else {
                    return;
                };
                if self.clients[c].open {
                    self.clients[c].open = false;
                    self.engine.client_closed(self.clients[c].id, now);
                }
            }
            Op::Connected { upstream } => {
                let Some(u) = pick(self.upstreams.len(), upstream) else {
                    return;
                };
                let up = &mut self.upstreams[u];
                if !up.open || up.server.is_some() {
                    return;
                }
                up.server = Some(match self.protocol {
                    Protocol::Postgres => Server::Pg(PgServer::default()),
                    _ => Server::Mysql(MysqlServer::greeting(100 + u32::from(upstream))),
                });
                self.engine.upstream_connected(up.id, now);
            }
            Op::Answer { upstream, max } => {
                let Some(u) = pick(self.upstreams.len(), upstream) else {
                    return;
                };
                let up = &mut self.upstreams[u];
                if !up.open || up.paused || up.confused {
                    return;
                }
                let out = match &mut up.server {
                    Some(Server::Pg(s)) => &mut s.out,
                    Some(Server::Mysql(s)) => &mut s.out,
                    None => return,
                };
                let n = out.len().min(usize::from(max % 2048) + 1);
                if n == 0 {
                    return;
                }
                let bytes = out.split_to(n);
                self.engine.upstream_data(up.id, bytes, now);
            }
            Op::UpstreamBytes { upstream, data } => {
                let Some(u) = pick(self.upstreams.len(), upstream) else {
                    return;
                };
                let up = &self.upstreams[u];
                if !up.open || up.paused || up.server.is_none() {
                    return;
                }
                self.tainted = true;
                self.engine
                    .upstream_data(up.id, BytesMut::from(&data[..]), now);
            }
            Op::UpstreamClose { upstream } => {
                let Some(u) = pick(self.upstreams.len(), upstream) else {
                    return;
                };
                if self.upstreams[u].open {
                    self.upstreams[u].open = false;
                    self.engine.upstream_closed(self.upstreams[u].id, now);
                }
            }
            Op::Cancel { client } => {
                let Some(c) = pick(self.clients.len(), client) else {
                    return;
                };
                let Some((pid, key)) = self.clients[c].cancel_key.clone() else {
                    return;
                };
                let mut bytes = BytesMut::new();
                if StartupRequest::Cancel(CancelRequest { pid, key })
                    .encode(&mut bytes)
                    .is_ok()
                {
                    self.apply(Op::Open);
                    if let Some(opener) = self.clients.last() {
                        let id = opener.id;
                        self.engine.client_data(id, bytes, now);
                    }
                }
            }
            Op::CancelDone { cancel } => {
                if let Some(c) = pick(self.cancels.len(), cancel) {
                    let upstream = self.cancels.swap_remove(c);
                    self.engine.cancel_done(upstream, now);
                }
            }
            Op::Tick { ms } => {
                self.now += u64::from(ms) * 16;
                self.engine.handle_timeout(self.now);
            }
            Op::Blocked { peer, upstream } => {
                if let Some(p) = self.peer(peer, upstream) {
                    self.engine.send_blocked(p, now);
                }
            }
            Op::Drained { peer, upstream } => {
                if let Some(p) = self.peer(peer, upstream) {
                    self.engine.send_drained(p, now);
                }
            }
        }
    }

    fn peer(&self, i: u8, upstream: bool) -> Option<Peer> {
        if upstream {
            pick(self.upstreams.len(), i).map(|u| Peer::Upstream(self.upstreams[u].id))
        } else {
            pick(self.clients.len(), i).map(|c| Peer::Client(self.clients[c].id))
        }
    }

    fn client_index(&self, id: ClientId) -> usize {
        self.clients
            .iter()
            .position(|c| c.id == id)
            .unwrap_or_else(|| panic!("an action for an unknown client {id:?}"))
    }

    fn upstream_index(&self, id: UpstreamId) -> usize {
        self.upstreams
            .iter()
            .position(|u| u.id == id)
            .unwrap_or_else(|| panic!("an action for an unknown upstream {id:?}"))
    }

    /// Carries out every action (answering login challenges on the clients' behalf), then
    /// checks the counters.
    fn drain(&mut self) {
        loop {
            let mut replies = Vec::new();
            while let Some(action) = self.engine.poll_action() {
                self.act(action, &mut replies);
            }
            if replies.is_empty() {
                break;
            }
            for (c, bytes) in replies {
                let client = &self.clients[c];
                if client.open {
                    self.engine.client_data(client.id, bytes, self.now);
                }
            }
        }
        if let Err(e) = self.engine.check_counters() {
            panic!("pool counters drifted: {e}");
        }
    }

    fn act(&mut self, action: Action, replies: &mut Vec<(usize, BytesMut)>) {
        match action {
            Action::SendClient { id, bytes } => {
                let c = self.client_index(id);
                assert!(self.clients[c].open, "bytes for a closed client {id:?}");
                let mut out = BytesMut::new();
                self.client_receive(c, &bytes, &mut out);
                if !out.is_empty() {
                    replies.push((c, out));
                }
            }
            Action::SendUpstream { id, bytes } => {
                let u = self.upstream_index(id);
                let up = &mut self.upstreams[u];
                assert!(up.open, "bytes for a closed upstream {id:?}");
                let result = match &mut up.server {
                    Some(Server::Pg(s)) => s.receive(&bytes, &self.limits),
                    Some(Server::Mysql(s)) => s.receive(&bytes),
                    None => panic!("bytes for upstream {id:?} before it connected"),
                };
                if let Err(e) = result {
                    assert!(
                        self.tainted,
                        "muxql sent upstream {id:?} what a server refuses: {e}"
                    );
                    up.confused = true;
                }
            }
            Action::ConnectUpstream { id, .. } => self.upstreams.push(Upstream {
                id,
                open: true,
                paused: false,
                server: None,
                confused: false,
            }),
            Action::CloseClient { id } => {
                let c = self.client_index(id);
                assert!(self.clients[c].open, "a close for a closed client {id:?}");
                self.clients[c].open = false;
            }
            Action::CloseUpstream { id } => {
                let u = self.upstream_index(id);
                assert!(
                    self.upstreams[u].open,
                    "a close for a closed upstream {id:?}"
                );
                self.upstreams[u].open = false;
            }
            Action::SendCancel { upstream, .. } => self.cancels.push(upstream),
            Action::PauseReading { peer } => self.set_paused(peer, true),
            Action::ResumeReading { peer } => self.set_paused(peer, false),
            _ => {}
        }
    }

    fn set_paused(&mut self, peer: Peer, paused: bool) {
        match peer {
            Peer::Client(id) => {
                let c = self.client_index(id);
                self.clients[c].paused = paused;
            }
            Peer::Upstream(id) => {
                let u = self.upstream_index(id);
                self.upstreams[u].paused = paused;
            }
            _ => {}
        }
    }

    /// Bytes from the Engine to client `c`: checks them, and answers login challenges.
    fn client_receive(&mut self, c: usize, bytes: &Bytes, out: &mut BytesMut) {
        let client = &mut self.clients[c];
        if !self.tainted {
            for t in find_tags(bytes) {
                assert_eq!(
                    t, client.n,
                    "client {} received client {t}'s data",
                    client.n
                );
                self.report.tags += 1;
            }
        }
        client.inbox.extend_from_slice(bytes);
        let mut outcome = None;
        match self.protocol {
            Protocol::Postgres => loop {
                let frame = match split_frame(&mut client.inbox, Direction::Backend, &STREAMED) {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => panic!("a malformed frame to client {}: {e}", client.n),
                };
                if frame.tag() == b'K' {
                    if let Ok(BackendMessage::BackendKeyData { pid, key }) =
                        BackendMessage::parse(&frame)
                    {
                        client.cancel_key = Some((pid, key));
                    }
                }
                if let Login::Pg(login) = &mut client.login {
                    let right = client.right == Some(true);
                    if let Some(a) = login.handle(&frame, right, out) {
                        outcome = Some(a);
                        client.login = Login::None;
                    }
                }
            },
            _ => {
                while let Some(h) = PacketHeader::peek(&client.inbox) {
                    assert!(h.len <= MAX_MESSAGE, "a {} byte packet to a client", h.len);
                    if client.inbox.len() < 4 + h.len {
                        break;
                    }
                    let payload = client.inbox.split_to(4 + h.len).freeze().slice(4..);
                    if client.greeting.is_none() {
                        client.greeting = Some(payload);
                    } else if let Login::Mysql(login) = &mut client.login {
                        if let Some(a) = login.handle(&payload, h.seq, out) {
                            outcome = Some(a);
                            client.login = Login::None;
                        }
                    }
                }
            }
        }
        match outcome {
            Some(Auth::Authenticated) => self.report.logins += 1,
            Some(Auth::Refused) => self.report.refusals += 1,
            None => {}
        }
        if outcome == Some(Auth::Authenticated) {
            assert!(
                client.raw || !self.passwords_checked || client.right != Some(false),
                "client {} logged in with a wrong password",
                client.n
            );
        }
    }
}
