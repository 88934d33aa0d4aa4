//! An upstream MySQL/MariaDB connection: its login with the route's credentials, the session
//! trackers muxql turns on, and the state muxql tracks on it.

use std::collections::VecDeque;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use super::responses::PrepareFor;
use super::state::{MyState, UPSTREAM_COLLATION};
use super::statements::{MyStmt, Prepared};
use crate::mux::engine::Engine;
use crate::mux::ids::{ClientId, UpstreamId};
use crate::mux::pooling::deadline_after;
use crate::mux::session::{UpPhase, Upstream, UpstreamCore};
use crate::mux::Action;
use crate::mysql::auth::{ClientAuth, ClientAuthStep};
use crate::mysql::command::code::COM_QUERY;
use crate::mysql::handshake::{HandshakeResponse41, HandshakeV10, SslRequest};
use crate::mysql::result_reader::{Expect, ResponseReader};
use crate::mysql::{CapabilityFlags, PacketCodec, StatusFlags};

use super::client::packet;
use super::pool::MyBaseline;

/// Capabilities muxql offers MySQL clients. Not offered, so that every client frames results
/// as the upstreams do: `CLIENT_DEPRECATE_EOF`, `CLIENT_FOUND_ROWS`, `CLIENT_IGNORE_SPACE`,
/// compression, query attributes and MariaDB's extended capabilities (TLS is added when
/// the client asks for it and a certificate is configured).
pub(crate) const CLIENT_CAPS: CapabilityFlags = CapabilityFlags::CLIENT_LONG_PASSWORD
    .union(CapabilityFlags::CLIENT_LONG_FLAG)
    .union(CapabilityFlags::CLIENT_CONNECT_WITH_DB)
    .union(CapabilityFlags::CLIENT_LOCAL_FILES)
    .union(CapabilityFlags::CLIENT_PROTOCOL_41)
    .union(CapabilityFlags::CLIENT_TRANSACTIONS)
    .union(CapabilityFlags::CLIENT_SECURE_CONNECTION)
    .union(CapabilityFlags::CLIENT_MULTI_STATEMENTS)
    .union(CapabilityFlags::CLIENT_MULTI_RESULTS)
    .union(CapabilityFlags::CLIENT_PS_MULTI_RESULTS)
    .union(CapabilityFlags::CLIENT_PLUGIN_AUTH)
    .union(CapabilityFlags::CLIENT_CONNECT_ATTRS)
    .union(CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA)
    .union(CapabilityFlags::CLIENT_SESSION_TRACK);

/// Capabilities an upstream must grant: muxql relies on each of them.
const REQUIRED_CAPS: CapabilityFlags = CapabilityFlags::CLIENT_PROTOCOL_41
    .union(CapabilityFlags::CLIENT_SECURE_CONNECTION)
    .union(CapabilityFlags::CLIENT_PLUGIN_AUTH)
    .union(CapabilityFlags::CLIENT_TRANSACTIONS)
    .union(CapabilityFlags::CLIENT_SESSION_TRACK)
    .union(CapabilityFlags::CLIENT_MULTI_RESULTS);

/// Turns on the session trackers muxql follows client state with (MySQL Reference Manual,
/// "Server Tracking of Client Session State"; MariaDB 10.2+ and MySQL 5.7+).
pub(crate) const TRACKERS_SQL: &str = "SET @@SESSION.session_track_system_variables = '*', \
     @@SESSION.session_track_schema = ON, @@SESSION.session_track_state_change = ON, \
     @@SESSION.session_track_transaction_info = 'CHARACTERISTICS'";

/// After COM_RESET_CONNECTION: the login character set and the trackers again.
pub(crate) const RESET_SQL: &str = "SET NAMES utf8mb4 COLLATE utf8mb4_general_ci, \
     @@SESSION.session_track_system_variables = '*', \
     @@SESSION.session_track_schema = ON, @@SESSION.session_track_state_change = ON, \
     @@SESSION.session_track_transaction_info = 'CHARACTERISTICS'";

/// Login progress.
#[derive(Debug)]
enum MyUpLogin {
    /// Waiting for the server's greeting.
    Greeting,
    /// Authenticating.
    Auth {
        auth: Box<ClientAuth>,
        seq: u8,
        version: Bytes,
        thread_id: u32,
    },
    /// Turning the session trackers on.
    Trackers {
        reader: Box<ResponseReader>,
        version: Bytes,
    },
}

/// What a response muxql waits for belongs to.
#[derive(Debug)]
pub(crate) enum Owed {
    /// A client's command: relayed to it (the attached client, or one pipelined behind it).
    Client {
        owner: ClientId,
        reader: ResponseReader,
        /// A COM_STMT_PREPARE: its PREPARE_OK is rewritten with the client's statement id.
        prepare: Option<PrepareFor>,
        /// A LOCAL INFILE the client did not enable was refused: it gets an error with this
        /// sequence id instead of the answer.
        refused: Option<u8>,
        /// A diagnostics statement answered for the client: its own last statement's
        /// diagnostics stay as they are, as they do on a server.
        diagnostics: bool,
    },
    /// A command muxql sent itself (state replay, re-prepare, cleanup, KILL): swallowed.
    Own {
        reader: ResponseReader,
        /// A re-prepare of this entry: the server's statement id is recorded.
        prepare: Option<Rc<MyStmt>>,
    },
    /// An answer muxql makes itself, sent to its client in order.
    Local(ClientId, Bytes),
    /// `SHOW WARNINGS` muxql sent right after a client's statement that had warnings: the
    /// answer is kept for that client, whose own `SHOW WARNINGS` may come on another upstream.
    Capture {
        owner: ClientId,
        reader: ResponseReader,
        bytes: BytesMut,
    },
}

impl Owed {
    /// The client the response is for (`None` for muxql's own commands).
    pub(crate) fn owner(&self) -> Option<ClientId> {
        match self {
            Owed::Client { owner, .. } | Owed::Local(owner, _) | Owed::Capture { owner, .. } => {
                Some(*owner)
            }
            Owed::Own { .. } => None,
        }
    }
}

/// One MySQL upstream connection.
#[derive(Debug)]
pub(crate) struct MyUpstream {
    /// What the pooling core tracks.
    pub(crate) core: UpstreamCore,
    login: Option<MyUpLogin>,
    /// Capabilities negotiated with the server.
    pub(crate) caps: CapabilityFlags,
    /// The server's thread id (what KILL QUERY names).
    pub(crate) thread_id: u32,
    /// Responses the server still owes, oldest first.
    pub(crate) owed: VecDeque<Owed>,
    /// Status flags of the last OK or EOF.
    pub(crate) status: StatusFlags,
    /// A `SET TRANSACTION` waits for the next transaction: the connection stays with its client.
    pub(crate) tx_pending: bool,
    /// Session state that differs from a fresh connection.
    pub(crate) state: MyState,
    /// LAST_INSERT_ID() on this connection.
    pub(crate) last_insert_id: u64,
    /// Statements prepared on this connection.
    pub(crate) prepared: Prepared,
    /// The last command sent was a COM_STMT_PREPARE of this pool entry (MariaDB's "last
    /// statement" id refers to it).
    pub(crate) last_prepare: Option<u64>,
    /// A side connection that only runs `KILL QUERY` of this server thread.
    kill: Option<u32>,
    /// Clients whose one command was pipelined behind the attached client's, in order.
    pub(crate) followers: VecDeque<ClientId>,
    /// The attached client sent one autocommit command: others may queue behind it.
    pub(crate) pipeline_ok: bool,
    /// When the request now running was sent (pipelining queues only behind fresh ones).
    pub(crate) busy_since: u64,
}

impl MyUpstream {
    /// A connection the host is about to open.
    pub(crate) fn new(core: UpstreamCore) -> Self {
        MyUpstream {
            core,
            login: None,
            caps: CapabilityFlags::empty(),
            thread_id: 0,
            owed: VecDeque::new(),
            status: StatusFlags::SERVER_STATUS_AUTOCOMMIT,
            tx_pending: false,
            state: MyState::default(),
            last_insert_id: 0,
            prepared: Prepared::default(),
            last_prepare: None,
            kill: None,
            followers: VecDeque::new(),
            pipeline_ok: false,
            busy_since: 0,
        }
    }

    /// The sequence id of the next packet of the response now relayed to the client.
    pub(crate) fn client_seq(&self) -> Option<u8> {
        match self.owed.front()? {
            Owed::Client { reader, .. } => Some(reader.next_seq()),
            _ => None,
        }
    }

    /// A reader for the response to a command sent now (code `code`).
    pub(crate) fn reader(&self, code: u8, limits: crate::wire::Limits) -> Option<ResponseReader> {
        Some(ResponseReader::new(
            Expect::for_code(code)?,
            self.caps,
            limits,
        ))
    }
}

impl Engine {
    /// The host connected an upstream: the server speaks first.
    pub(crate) fn my_upstream_connected(&mut self, id: UpstreamId) {
        let Some(u) = self.upstreams.my_mut(id) else {
            return;
        };
        if u.core.phase != UpPhase::Connecting {
            return;
        }
        u.core.phase = UpPhase::LoggingIn;
        u.login = Some(MyUpLogin::Greeting);
    }

    /// Handles an upstream's buffered input as its phase requires.
    pub(crate) fn my_upstream_input(&mut self, id: UpstreamId) {
        let Some(u) = self.upstreams.my_mut(id) else {
            return;
        };
        match u.core.phase {
            UpPhase::Connecting => {}
            UpPhase::LoggingIn => self.my_upstream_login(id),
            UpPhase::Idle => {
                if !u.core.buf.is_empty() {
                    self.upstream_lost(id, "unexpected packet on idle connection");
                }
            }
            UpPhase::Attached(_) | UpPhase::Resetting => self.my_relay_upstream(id),
        }
    }

    /// Handles login packets until the session trackers are on.
    fn my_upstream_login(&mut self, id: UpstreamId) {
        loop {
            let limits = self.limits;
            let Some(u) = self.upstreams.my_mut(id) else {
                return;
            };
            let Some(login) = u.login.take() else {
                return;
            };
            if let MyUpLogin::Trackers {
                mut reader,
                version,
            } = login
            {
                let scan = match reader.scan(&u.core.buf) {
                    Ok(s) => s,
                    Err(e) => return self.upstream_lost(id, &format!("protocol error: {e}")),
                };
                let _ = u.core.buf.split_to(scan.consumed);
                match scan.step {
                    crate::mysql::Step::Complete(c) if !c.error => {
                        return self.my_upstream_ready(id, version)
                    }
                    crate::mysql::Step::More => {
                        u.login = Some(MyUpLogin::Trackers { reader, version });
                        return;
                    }
                    _ => return self.upstream_lost(id, "the server refused session tracking"),
                }
            }
            let expected_seq = match &login {
                MyUpLogin::Auth { seq, .. } => *seq,
                _ => 0,
            };
            let mut codec = PacketCodec::pre_auth(limits);
            codec.set_next_seq(expected_seq);
            let packet_in = match codec.parse(&mut u.core.buf) {
                Ok(Some(p)) => p,
                Ok(None) => {
                    u.login = Some(login);
                    return;
                }
                Err(e) => return self.upstream_lost(id, &format!("protocol error: {e}")),
            };
            let route = &self.config.routes[u.core.route];
            match login {
                MyUpLogin::Greeting => {
                    if packet_in.payload.first() == Some(&0xFF) {
                        return self.upstream_lost(id, &err_text(&packet_in.payload));
                    }
                    let hello = match HandshakeV10::parse(&packet_in.payload) {
                        Ok(h) => h,
                        Err(e) => return self.upstream_lost(id, &format!("bad greeting: {e}")),
                    };
                    if !hello.capabilities.contains(REQUIRED_CAPS) {
                        return self.upstream_lost(id, "the server lacks session tracking");
                    }
                    let tls = route.upstream_tls;
                    let offers_tls = hello.capabilities.contains(CapabilityFlags::CLIENT_SSL);
                    if tls.required() && !offers_tls {
                        return self.upstream_lost(
                            id,
                            "the server does not offer TLS, which the route requires",
                        );
                    }
                    let use_tls = tls.requested() && offers_tls;
                    // Bytes behind the greeting came before the handshake, in plaintext
                    // anyone on the path could have written: never read them as the server's.
                    if use_tls && !u.core.buf.is_empty() {
                        return self.upstream_lost(id, "the server sent data behind its greeting");
                    }
                    let auth = match ClientAuth::new(
                        hello.auth_plugin_name.as_deref(),
                        &hello.auth_plugin_data,
                        route.upstream_password.as_bytes(),
                        use_tls,
                        self.rng.array(),
                    ) {
                        Ok(a) => a.allow_public_key_request(true),
                        Err(e) => return self.upstream_lost(id, &format!("login: {e}")),
                    };
                    let mut caps = (CLIENT_CAPS | CapabilityFlags::CLIENT_CONNECT_WITH_DB)
                        & hello.capabilities;
                    if use_tls {
                        caps |= CapabilityFlags::CLIENT_SSL;
                    }
                    let response = HandshakeResponse41 {
                        capabilities: caps,
                        max_packet_size: 1 << 30,
                        character_set: UPSTREAM_COLLATION,
                        username: Bytes::from(route.upstream_user.clone()),
                        auth_response: Bytes::from(auth.initial_response()),
                        database: caps
                            .contains(CapabilityFlags::CLIENT_CONNECT_WITH_DB)
                            .then(|| Bytes::from(route.upstream_database.clone())),
                        auth_plugin_name: Some(Bytes::from_static(auth.plugin().name())),
                        connect_attrs: if caps.contains(CapabilityFlags::CLIENT_CONNECT_ATTRS) {
                            vec![(
                                Bytes::from_static(b"program_name"),
                                Bytes::from_static(b"muxql"),
                            )]
                        } else {
                            Vec::new()
                        },
                        zstd_compression_level: None,
                    };
                    let mut out = BytesMut::new();
                    if let Err(e) = response.encode(&mut out) {
                        return self.upstream_lost(id, &format!("login: {e}"));
                    }
                    u.caps = caps;
                    u.thread_id = hello.connection_id;
                    // Over TLS the login is the packet after the SSLRequest (sequence id 1),
                    // sent once the handshake is done.
                    let seq = u8::from(use_tls) + 1;
                    u.login = Some(MyUpLogin::Auth {
                        auth: Box::new(auth),
                        seq: seq + 1,
                        version: hello.server_version,
                        thread_id: hello.connection_id,
                    });
                    if use_tls {
                        let mut request = BytesMut::new();
                        SslRequest {
                            capabilities: caps,
                            max_packet_size: 1 << 30,
                            character_set: UPSTREAM_COLLATION,
                        }
                        .encode(&mut request);
                        let route = u.core.route;
                        self.actions.push_back(Action::SendUpstream {
                            id,
                            bytes: packet(&request, 1),
                        });
                        self.actions
                            .push_back(Action::StartUpstreamTls { id, route });
                    }
                    self.actions.push_back(Action::SendUpstream {
                        id,
                        bytes: packet(&out, seq),
                    });
                }
                MyUpLogin::Auth {
                    mut auth,
                    version,
                    thread_id,
                    ..
                } => match auth.handle(&packet_in.payload, u.caps) {
                    Ok(ClientAuthStep::Send(data)) => {
                        let seq = codec.next_seq();
                        u.login = Some(MyUpLogin::Auth {
                            auth,
                            seq: seq.wrapping_add(1),
                            version,
                            thread_id,
                        });
                        self.actions.push_back(Action::SendUpstream {
                            id,
                            bytes: packet(&data, seq),
                        });
                    }
                    Ok(ClientAuthStep::Wait) => {
                        u.login = Some(MyUpLogin::Auth {
                            auth,
                            seq: codec.next_seq(),
                            version,
                            thread_id,
                        });
                    }
                    Ok(ClientAuthStep::Done(_)) if u.kill.is_some() => {
                        let sql = format!("KILL QUERY {}", u.kill.unwrap_or_default());
                        u.core.phase = UpPhase::Resetting;
                        let mut payload = vec![COM_QUERY];
                        payload.extend_from_slice(sql.as_bytes());
                        self.my_send_own(id, &payload, None);
                        return;
                    }
                    Ok(ClientAuthStep::Done(_)) => {
                        let mut payload = vec![COM_QUERY];
                        payload.extend_from_slice(TRACKERS_SQL.as_bytes());
                        let Some(reader) = u.reader(COM_QUERY, limits) else {
                            return;
                        };
                        u.login = Some(MyUpLogin::Trackers {
                            reader: Box::new(reader),
                            version,
                        });
                        self.actions.push_back(Action::SendUpstream {
                            id,
                            bytes: packet(&payload, 0),
                        });
                    }
                    Ok(ClientAuthStep::Failed(e)) => {
                        return self.upstream_lost(id, &String::from_utf8_lossy(&e.message))
                    }
                    Err(e) => return self.upstream_lost(id, &format!("login: {e}")),
                },
                MyUpLogin::Trackers { .. } => return,
            }
        }
    }

    /// Login finished: record the baseline, greet clients waiting for it, and serve.
    fn my_upstream_ready(&mut self, id: UpstreamId, version: Bytes) {
        let Some(u) = self.upstreams.my_mut(id) else {
            return;
        };
        let route = u.core.route;
        let pool = &mut self.pools[route];
        pool.logged_in();
        let my = pool.ext.my();
        if my.baseline.is_none() {
            my.baseline = Some(MyBaseline {
                server_version: version,
            });
            for c in std::mem::take(&mut pool.awaiting_baseline) {
                self.my_greet(c);
            }
        }
        self.park(id);
    }
}

impl Engine {
    /// Opens a side connection to `route`'s server that logs in, runs `KILL QUERY thread`,
    /// and closes; it is not a member of the pool.
    pub(crate) fn my_side_kill(&mut self, route: usize, thread: u32) {
        let deadline = deadline_after(self.now, self.config.connect_timeout_ms);
        let mut core = UpstreamCore::new(route, self.now, deadline);
        core.side = true;
        let mut up = MyUpstream::new(core);
        up.kill = Some(thread);
        let id = UpstreamId(self.upstreams.insert(Upstream::My(up)));
        self.actions
            .push_back(Action::ConnectUpstream { id, route });
    }
}

/// The message of an ERR packet payload.
fn err_text(payload: &Bytes) -> String {
    crate::mysql::response::ErrPacket::parse(payload, CapabilityFlags::CLIENT_PROTOCOL_41)
        .map(|e| String::from_utf8_lossy(&e.message).into_owned())
        .unwrap_or_else(|_| "login refused".into())
}
