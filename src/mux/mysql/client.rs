//! A MySQL client session: the greeting (once the pool knows which server it speaks for),
//! authentication terminated by muxql, and the choice of route.

use std::collections::HashMap;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use super::state::{MyState, UPSTREAM_COLLATION};
use super::statements::ClientStmt;
use super::upstream::CLIENT_CAPS;
use crate::mux::config::{ClientTls, MysqlAuth, Protocol, User};
use crate::mux::engine::Engine;
use crate::mux::error::ErrorKind;
use crate::mux::ids::{ClientId, UpstreamId};
use crate::mux::listener::LoginSettings;
use crate::mux::session::{unpin_read_buffer, ClientCore};
use crate::mux::Action;
use crate::mysql::auth::{
    scramble_from_random, AuthPlugin, ServerAuth, ServerAuthStep, ServerCredential,
};
use crate::mysql::errcode::{self, ErrorCode};
use crate::mysql::handshake::{AuthMoreData, ClientHello, HandshakeV10};
use crate::mysql::packet::{write_packet, HEADER_LEN, MAX_PACKET_PAYLOAD};
use crate::mysql::response::{ErrPacket, OkPacket};
use crate::mysql::{CapabilityFlags, PacketCodec, StatusFlags};

/// Secrets derived once from a configured user's password.
#[derive(Debug)]
pub(crate) struct MyUserSecret {
    pub(crate) name: String,
    credential: ServerCredential,
}

impl MyUserSecret {
    /// Derives the native and caching_sha2 hashes of `user`.
    pub(crate) fn derive(user: &User) -> Self {
        MyUserSecret {
            name: user.name.clone(),
            credential: ServerCredential::from_password(user.password.as_bytes()),
        }
    }
}

/// Where a MySQL client is in its life.
#[derive(Debug)]
pub(crate) enum MyPhase {
    /// Connected; the greeting waits until the default route's pool knows its server.
    AwaitGreeting,
    /// Greeted; its HandshakeResponse41 is due.
    Handshake,
    /// Proving its identity.
    Auth(Box<MyLogin>),
    /// Logged in and served.
    Ready,
}

/// What a client presents to log in.
#[derive(Debug)]
pub(crate) struct NewLogin<'a> {
    pub(crate) username: &'a [u8],
    pub(crate) database: &'a [u8],
    pub(crate) caps: CapabilityFlags,
    pub(crate) collation: u8,
    pub(crate) plugin: Option<&'a [u8]>,
    pub(crate) response: &'a [u8],
}

/// An authentication exchange in progress.
#[derive(Debug)]
pub(crate) struct MyLogin {
    auth: ServerAuth,
    user: Option<Rc<MyUserSecret>>,
    username: String,
    database: String,
    caps: CapabilityFlags,
    collation: u8,
}

/// One MySQL client session.
#[derive(Debug)]
pub(crate) struct MyClient {
    /// What the pooling core tracks.
    pub(crate) core: ClientCore,
    pub(crate) phase: MyPhase,
    /// Capabilities negotiated with the client.
    pub(crate) caps: CapabilityFlags,
    /// Sequence id of the next login packet (handshake phase).
    pub(crate) login_seq: u8,
    /// The greeting's scramble.
    scramble: [u8; 20],
    /// The connection id muxql gave the client (what KILL names).
    pub(crate) conn_id: u32,
    /// The user it logged in as.
    pub(crate) user: Option<Rc<MyUserSecret>>,
    /// Session state that follows it across upstreams.
    pub(crate) state: MyState,
    /// Its statement ids.
    pub(crate) stmts: HashMap<u32, ClientStmt>,
    /// The last statement id minted for it.
    pub(crate) last_stmt: u32,
    /// LAST_INSERT_ID() as its own statements left it.
    pub(crate) last_insert_id: u64,
    /// ROW_COUNT() as its own last statement left it (-1 after a result set or an error).
    pub(crate) row_count: i64,
    /// Warnings of its own last statement.
    pub(crate) warning_count: u16,
    /// The answer to `SHOW WARNINGS` for its last statement, captured right after it.
    pub(crate) warnings: Option<Bytes>,
    /// The ERR payload its own last statement ended with.
    pub(crate) last_error: Option<Bytes>,
    /// Where its answer stood when its upstream was lost (the sequence id an error needs).
    pub(crate) lost_seq: Option<u8>,
    /// A LOCAL INFILE upload runs: its packets go upstream as they are.
    pub(crate) uploading: bool,
    /// Its next command waits until a statement is prepared again on its upstream.
    pub(crate) held: bool,
    /// That preparation failed: the command gets this ERR packet (payload) instead.
    pub(crate) failed_prepare: Option<Bytes>,
    /// Its transaction was lost with its upstream while it had no command there: its next
    /// statement command fails with this message (ER_LOCK_DEADLOCK), as after a rollback.
    pub(crate) lost_tx: Option<String>,
    /// The collation it logged in with (restored by COM_RESET_CONNECTION).
    pub(crate) login_collation: u8,
    /// The busy upstream its command was pipelined onto, behind another client's.
    pub(crate) queued_on: Option<UpstreamId>,
    /// The connection runs TLS (switched, or encrypted by the host from the start).
    pub(crate) tls: bool,
    /// Login settings of its listener.
    pub(crate) settings: LoginSettings,
}

impl MyClient {
    /// A client that has been sent nothing yet, of a listener with `login`'s settings.
    pub(crate) fn new(settings: LoginSettings) -> Self {
        MyClient {
            core: ClientCore::default(),
            phase: MyPhase::AwaitGreeting,
            caps: CapabilityFlags::empty(),
            login_seq: 0,
            scramble: [0; 20],
            conn_id: 0,
            user: None,
            state: MyState::default(),
            stmts: HashMap::new(),
            last_stmt: 0,
            last_insert_id: 0,
            row_count: -1,
            warning_count: 0,
            warnings: None,
            last_error: None,
            lost_seq: None,
            uploading: false,
            held: false,
            failed_prepare: None,
            lost_tx: None,
            login_collation: 0,
            queued_on: None,
            tls: settings.secure,
            settings,
        }
    }

    /// Whether the client completed login.
    pub(crate) fn is_ready(&self) -> bool {
        matches!(self.phase, MyPhase::Ready)
    }

    /// Whether the client has not proven its identity yet.
    pub(crate) fn is_logging_in(&self) -> bool {
        !self.is_ready()
    }
}

/// Bytes buffered behind a complete first logical packet (all of its 16 MB pieces): input
/// waiting to be passed on. A packet still arriving is not backlog: pausing it would stall.
pub(crate) fn backlog(buf: &[u8]) -> usize {
    let mut at = 0usize;
    while let Some(h) = buf.get(at..).and_then(crate::mysql::PacketHeader::peek) {
        at = at.saturating_add(HEADER_LEN + h.len);
        if at > buf.len() {
            break;
        }
        if h.len < MAX_PACKET_PAYLOAD {
            return buf.len();
        }
    }
    0
}

/// An ERR packet with `code`, `message` and sequence id `seq`.
pub(crate) fn err_packet(code: ErrorCode, message: &str, seq: u8) -> Bytes {
    let mut payload = BytesMut::new();
    ErrPacket {
        code: code.code,
        sql_state: Some(code.sql_state),
        message: Bytes::copy_from_slice(message.as_bytes()),
    }
    .encode(&mut payload, CapabilityFlags::CLIENT_PROTOCOL_41);
    packet(&payload, seq)
}

/// An OK packet with `status` and sequence id `seq`, for a client with `caps`.
pub(crate) fn ok_packet(status: StatusFlags, seq: u8, caps: CapabilityFlags) -> Bytes {
    let mut payload = BytesMut::new();
    let _ = OkPacket::new(status).encode(&mut payload, caps);
    packet(&payload, seq)
}

/// `payload` framed as one logical packet from sequence id `seq`.
pub(crate) fn packet(payload: &[u8], seq: u8) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 4);
    let mut seq = seq;
    let _ = write_packet(&mut out, &mut seq, payload);
    out.freeze()
}

impl Engine {
    /// The first MySQL route: the one whose server the greeting describes.
    fn my_default_route(&self) -> Option<usize> {
        self.config
            .routes
            .iter()
            .position(|r| r.protocol == Protocol::Mysql)
    }

    /// Greets a new client now, or once the default route's pool knows its server.
    pub(crate) fn my_client_opened(&mut self, id: ClientId) {
        let Some(route) = self.my_default_route() else {
            return self.my_fail_client(id, errcode::ER_HANDSHAKE_ERROR, "no MySQL route");
        };
        if self.has_baseline(route) {
            return self.my_greet(id);
        }
        self.pools[route].awaiting_baseline.push(id);
        self.dispatch(route);
    }

    /// Sends the HandshakeV10 greeting.
    pub(crate) fn my_greet(&mut self, id: ClientId) {
        let Some(route) = self.my_default_route() else {
            return;
        };
        let version = match &self.pools[route].ext.my_ref().baseline {
            Some(b) => b.server_version.clone(),
            None => return,
        };
        let Some(login) = self.clients.my(id).map(|c| c.settings) else {
            return;
        };
        let scramble = scramble_from_random(self.rng.array());
        let mut conn_id = self.rng.u32() & 0x7FFF_FFFF;
        while conn_id == 0 || self.my.conn_index.contains_key(&conn_id) {
            conn_id = self.rng.u32() & 0x7FFF_FFFF;
        }
        let plugin = match login.mysql_auth {
            MysqlAuth::CachingSha2Password => AuthPlugin::CachingSha2Password,
            MysqlAuth::NativePassword => AuthPlugin::MysqlNativePassword,
        };
        let greeting = HandshakeV10 {
            server_version: version,
            connection_id: conn_id,
            auth_plugin_data: Bytes::copy_from_slice(&scramble),
            capabilities: if login.offers_tls() {
                CLIENT_CAPS | CapabilityFlags::CLIENT_SSL
            } else {
                CLIENT_CAPS
            },
            character_set: UPSTREAM_COLLATION,
            status: StatusFlags::SERVER_STATUS_AUTOCOMMIT,
            auth_plugin_name: Some(Bytes::from_static(plugin.name())),
        };
        let mut payload = BytesMut::new();
        if greeting.encode(&mut payload).is_err() {
            return self.my_fail_client(id, errcode::ER_HANDSHAKE_ERROR, "bad greeting");
        }
        let Some(c) = self.clients.my_mut(id) else {
            return;
        };
        c.phase = MyPhase::Handshake;
        c.scramble = scramble;
        c.conn_id = conn_id;
        c.login_seq = 1;
        self.my.conn_index.insert(conn_id, id);
        self.send_client(id, packet(&payload, 0));
        // Input that arrived before the greeting is a protocol error the next step reports.
        self.ready.push_back(id);
    }

    /// Handles the client's login packets, then its commands.
    pub(crate) fn my_pump_client(&mut self, id: ClientId) {
        loop {
            let Some(c) = self.clients.my_mut(id) else {
                return;
            };
            let progressed = match c.phase {
                MyPhase::AwaitGreeting => {
                    if !c.core.buf.is_empty() {
                        self.my_fail_client(id, errcode::ER_HANDSHAKE_ERROR, "spoke first");
                    }
                    false
                }
                MyPhase::Handshake | MyPhase::Auth(_) => self.my_login_step(id),
                MyPhase::Ready => {
                    self.my_relay_client(id);
                    false
                }
            };
            if !progressed {
                break;
            }
        }
        if let Some(c) = self.clients.core_mut(id) {
            unpin_read_buffer(&mut c.buf);
        }
    }

    /// Handles one login packet; returns whether one was handled.
    fn my_login_step(&mut self, id: ClientId) -> bool {
        let limits = self.limits;
        let Some(c) = self.clients.my_mut(id) else {
            return false;
        };
        let mut codec = PacketCodec::pre_auth(limits);
        codec.set_next_seq(c.login_seq);
        let input = match codec.parse(&mut c.core.buf) {
            Ok(Some(p)) => p,
            Ok(None) => return false,
            Err(e) => {
                self.my_fail_client(id, errcode::ER_HANDSHAKE_ERROR, &e.to_string());
                return false;
            }
        };
        c.login_seq = codec.next_seq();
        let phase = std::mem::replace(&mut c.phase, MyPhase::Handshake);
        let seed = self.rng.array();
        let step = match phase {
            MyPhase::Handshake => match ClientHello::parse(&input.payload) {
                Ok(ClientHello::Response(_)) if c.settings.tls == ClientTls::Require && !c.tls => {
                    self.my_fail_client(
                        id,
                        errcode::ER_SECURE_TRANSPORT_REQUIRED,
                        "Connections using insecure transport are prohibited: muxql requires TLS",
                    );
                    return false;
                }
                Ok(ClientHello::Response(r)) => self.my_new_login(
                    NewLogin {
                        username: &r.username,
                        database: r.database.as_deref().unwrap_or_default(),
                        caps: r.capabilities & CLIENT_CAPS,
                        collation: r.character_set,
                        plugin: r.auth_plugin_name.as_deref(),
                        response: &r.auth_response,
                    },
                    id,
                ),
                Ok(ClientHello::Ssl(_)) => {
                    let why = if !c.settings.offers_tls() && !c.tls {
                        Some("TLS is not offered")
                    } else if c.tls {
                        Some("SSLRequest over TLS")
                    } else {
                        None
                    };
                    match why {
                        Some(why) => self.my_fail_client(id, errcode::ER_HANDSHAKE_ERROR, why),
                        None => {
                            c.tls = true;
                            c.phase = MyPhase::Handshake;
                            // The client starts its TLS handshake at once: what followed the
                            // request is TLS, for the host to decrypt, never read as plaintext.
                            let records = c.core.buf.split().freeze();
                            self.actions.push_back(Action::StartTls { id, records });
                        }
                    }
                    return false;
                }
                Err(e) => Err(e),
            },
            MyPhase::Auth(mut login) => login
                .auth
                .step(&input.payload, c.tls, None, seed)
                .map(|s| (s, login)),
            other => {
                if let Some(c) = self.clients.my_mut(id) {
                    c.phase = other;
                }
                return false;
            }
        };
        match step {
            Ok((step, login)) => self.my_auth_outcome(id, step, login),
            Err(e) => {
                self.my_fail_client(id, errcode::ER_HANDSHAKE_ERROR, &e.to_string());
                false
            }
        }
    }

    /// Starts authenticating a client (its HandshakeResponse41, or COM_CHANGE_USER) against
    /// the scramble of its greeting.
    pub(crate) fn my_new_login(
        &mut self,
        req: NewLogin<'_>,
        id: ClientId,
    ) -> Result<(ServerAuthStep, Box<MyLogin>), crate::wire::Error> {
        let username = String::from_utf8_lossy(req.username).into_owned();
        let user = self.my.users.iter().find(|u| u.name == username).cloned();
        // An unknown user still gets a full exchange that fails at the end, so the answer does
        // not tell which user names exist.
        let credential = match &user {
            Some(u) => u.credential.clone(),
            None => ServerCredential::from_password(&self.rng.array::<16>()),
        };
        let mysql_auth = self.clients.my(id).map(|c| c.settings.mysql_auth);
        let plugin = match mysql_auth.unwrap_or(self.config.mysql_auth) {
            MysqlAuth::CachingSha2Password => AuthPlugin::CachingSha2Password,
            MysqlAuth::NativePassword => AuthPlugin::MysqlNativePassword,
        };
        let scramble = self.clients.my(id).map(|c| c.scramble).unwrap_or_default();
        // Over TLS, caching_sha2_password's full authentication takes the password as it is.
        let secure = self.clients.my(id).is_some_and(|c| c.tls);
        let mut login = Box::new(MyLogin {
            auth: ServerAuth::new(plugin, scramble, credential, true)?,
            user,
            username,
            database: String::from_utf8_lossy(req.database).into_owned(),
            caps: req.caps,
            collation: req.collation,
        });
        let seed = self.rng.array();
        let step = login
            .auth
            .start(req.plugin, req.response, secure, None, seed)?;
        Ok((step, login))
    }

    /// Answers one step of an authentication exchange; returns whether the client moved on.
    pub(crate) fn my_auth_outcome(
        &mut self,
        id: ClientId,
        step: ServerAuthStep,
        login: Box<MyLogin>,
    ) -> bool {
        let Some(c) = self.clients.my_mut(id) else {
            return false;
        };
        let mut out = BytesMut::new();
        match step {
            ServerAuthStep::MoreData(data) => {
                AuthMoreData { data }.encode(&mut out);
                let seq = c.login_seq;
                c.login_seq = seq.wrapping_add(1);
                c.phase = MyPhase::Auth(login);
                self.send_client(id, packet(&out, seq));
                true
            }
            ServerAuthStep::Switch(req) => {
                if req.encode(&mut out).is_err() {
                    self.my_fail_client(id, errcode::ER_HANDSHAKE_ERROR, "auth switch");
                    return false;
                }
                let seq = c.login_seq;
                c.login_seq = seq.wrapping_add(1);
                c.phase = MyPhase::Auth(login);
                self.send_client(id, packet(&out, seq));
                true
            }
            ServerAuthStep::Accept { more_data } if login.user.is_some() => {
                if let Some(data) = more_data {
                    AuthMoreData { data }.encode(&mut out);
                    let seq = c.login_seq;
                    c.login_seq = seq.wrapping_add(1);
                    self.send_client(id, packet(&out, seq));
                }
                self.my_login_succeeded(id, *login);
                true
            }
            ServerAuthStep::Accept { .. } | ServerAuthStep::Reject => {
                let msg = format!(
                    "Access denied for user '{}' (using password: YES)",
                    login.username
                );
                self.my_fail_client(id, errcode::ER_ACCESS_DENIED_ERROR, &msg);
                false
            }
        }
    }

    /// The client proved its identity: pick its route and tell it so.
    fn my_login_succeeded(&mut self, id: ClientId, login: MyLogin) {
        let MyLogin {
            user,
            username,
            database,
            caps,
            collation,
            ..
        } = login;
        // A database no route names is the client's schema on the first route open to it.
        let route = self
            .live_route_for(Protocol::Mysql, &database, &username)
            .or_else(|| self.live_route_for(Protocol::Mysql, "", &username));
        let Some(route) = route else {
            let msg = format!("Access denied for user '{username}' to database '{database}'");
            return self.my_fail_client(id, errcode::ER_ACCESS_DENIED_ERROR, &msg);
        };
        self.logging_in = self.logging_in.saturating_sub(1);
        let r = &self.config.routes[route];
        let schema =
            (!database.is_empty() && database != r.database && database != r.upstream_database)
                .then(|| Bytes::from(database));
        let Some(c) = self.clients.my_mut(id) else {
            return;
        };
        c.core.route = route;
        c.user = user;
        c.caps = caps;
        c.state = MyState::for_login(
            collation,
            caps.contains(CapabilityFlags::CLIENT_MULTI_STATEMENTS),
        );
        c.login_collation = collation;
        c.state.schema = schema;
        c.phase = MyPhase::Ready;
        let seq = c.login_seq;
        let ok = ok_packet(StatusFlags::SERVER_STATUS_AUTOCOMMIT, seq, caps);
        self.pools[route].join();
        self.send_client(id, ok);
        self.ready.push_back(id);
    }

    /// Sends an ERR packet and closes the client.
    pub(crate) fn my_fail_client(&mut self, id: ClientId, code: ErrorCode, message: &str) {
        self.count_error(ErrorKind::of_mysql(code));
        self.my_end_with_error(id, code, message);
    }

    /// Sends an ERR packet and closes the client (counted by the caller).
    pub(crate) fn my_end_with_error(&mut self, id: ClientId, code: ErrorCode, message: &str) {
        let seq = self.my_error_seq(id);
        self.send_client(id, err_packet(code, message, seq));
        self.close_client(id);
    }

    /// The sequence id an error for client `id` must carry now.
    fn my_error_seq(&self, id: ClientId) -> u8 {
        let Some(c) = self.clients.my(id) else {
            return 0;
        };
        if !c.is_ready() {
            return c.login_seq;
        }
        c.core
            .upstream
            .and_then(|u| self.upstreams.my(u))
            .and_then(|u| u.client_seq())
            .or(c.lost_seq)
            .unwrap_or(1)
    }
}
