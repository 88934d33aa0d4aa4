//! A PostgreSQL client session: the startup phase, authentication terminated by muxql, and
//! the welcome (parameters, cancel key) once an upstream has told the pool its baseline.

use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use subtle::ConstantTimeEq;

use super::params::{parse_options, ParamDiff, Value};
use super::statements::Names;
use crate::mux::config::{ClientAuth, ClientTls, Protocol, User};
use crate::mux::engine::Engine;
use crate::mux::error::ErrorKind;
use crate::mux::ids::{ClientId, UpstreamId};
use crate::mux::listener::LoginSettings;
use crate::mux::rng::Rng;
use crate::mux::session::{unpin_read_buffer, ClientCore};
use crate::mux::Action;
use crate::pg::auth::{self, ScramSecret, ScramServer};
use crate::pg::backend::{
    encode_error_response, Authentication, BackendMessage, TransactionStatus,
};
use crate::pg::frame::{peek_header, split_frame, Direction};
use crate::pg::frontend::SaslInitialResponse;
use crate::pg::sql::Effect;
use crate::pg::sqlstate;
use crate::pg::startup::{split_startup, Startup, StartupRequest, TLS_HANDSHAKE_BYTE};
use crate::wire::{Error, Limits};

/// Cancel key length handed to protocol 3.2 clients (what PostgreSQL 18 sends).
const CANCEL_KEY_LEN_3_2: usize = 32;
/// Cancel key length of protocol 3.0.
const CANCEL_KEY_LEN_3_0: usize = 4;
/// Newest protocol minor version muxql speaks to clients.
const NEWEST_MINOR: u16 = 2;

/// Secrets derived once from a configured user's password.
#[derive(Debug)]
pub(crate) struct UserSecret {
    name: String,
    password: String,
    scram: ScramSecret,
    md5: String,
}

impl UserSecret {
    /// Derives the SCRAM and MD5 secrets of `user`.
    pub(crate) fn derive(user: &User, iterations: u32, rng: &mut Rng) -> Self {
        let salt: [u8; 16] = rng.array();
        UserSecret {
            name: user.name.clone(),
            password: user.password.clone(),
            scram: ScramSecret::from_password(&user.password, &salt, iterations),
            md5: auth::md5::md5_hash(user.name.as_bytes(), user.password.as_bytes()),
        }
    }
}

/// Where a client is in its life.
#[derive(Debug)]
pub(crate) enum Phase {
    /// Waiting for the startup packet (after zero or more SSL/GSS refusals).
    Startup,
    /// Proving its identity.
    Auth(Box<Login>),
    /// Authenticated; waiting for the pool's first upstream to report parameters.
    AwaitBaseline,
    /// Logged in and served.
    Ready,
}

/// What a startup packet asks for, copied out of it so that no read buffer stays referenced
/// while the client authenticates. Nothing of it is applied before authentication succeeds.
#[derive(Debug)]
pub(crate) struct Requested {
    user: String,
    database: String,
    params: ParamDiff,
}

impl Requested {
    fn new(startup: &Startup) -> Self {
        let text = |name| {
            startup
                .param(name)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        let user = text("user");
        let database = Some(text("database"))
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| user.clone());
        Requested {
            user,
            database,
            params: startup_params(startup),
        }
    }
}

/// An authentication exchange in progress.
#[derive(Debug)]
pub(crate) struct Login {
    request: Requested,
    /// The user's secrets as they were when the login started (a reload does not change them).
    user: Option<Rc<UserSecret>>,
    method: Method,
    minor: u16,
}

/// The method-specific state of a login.
#[derive(Debug)]
enum Method {
    ScramFirst(Box<ScramServer>),
    ScramFinal(Box<ScramServer>),
    Md5 { salt: [u8; 4] },
    Cleartext,
}

/// One PostgreSQL client session.
#[derive(Debug)]
pub(crate) struct PgClient {
    /// What the pooling core tracks.
    pub(crate) core: ClientCore,
    pub(crate) phase: Phase,
    /// The busy upstream this client's request was pipelined onto, behind another client's.
    pub(crate) queued_on: Option<UpstreamId>,
    /// A cancel arrived while queued: forward it once this client's request runs.
    pub(crate) cancel_requested: bool,
    /// Session parameters that differ from the pool baseline.
    pub(crate) params: ParamDiff,
    /// Session effects of the running transaction, applied when it commits.
    pub(crate) pending: Vec<Effect>,
    /// The running transaction failed or rolled back: its effects are void.
    pub(crate) tx_failed: bool,
    /// Client statement name → pooled statement.
    pub(crate) stmts: Names,
    /// The body of the client's last Parse of the unnamed statement, while that statement
    /// lives (a simple Query ends it): prepared again on whichever upstream a later Bind or
    /// Describe of it lands.
    pub(crate) unnamed: Option<Bytes>,
    /// A copy of the autocommit unit this client pipelined behind another's, until it is
    /// answered: run again if another client's late cancel hits it.
    pub(crate) unit: Option<Bytes>,
    /// Answers held back while another client's cancel may still hit this client's pipelined
    /// unit (see [`super::pipeline`]); `None`: answers go straight to the client.
    pub(crate) held: Option<BytesMut>,
    /// Its transaction was lost with its server connection and it has not ended it yet:
    /// muxql answers it as a server in an aborted transaction block (see `lost_tx`).
    pub(crate) lost_tx: Option<super::lost_tx::LostTx>,
    /// A request on its upstream ends its transaction (COMMIT, ROLLBACK...): lost before its
    /// ReadyForQuery, it leaves no transaction behind.
    pub(crate) ending_tx: bool,
    /// A large message being streamed to the upstream as it arrives: bytes still to come, and
    /// whether they go on (`false`: muxql answered it in its place, they are dropped).
    pub(crate) passthrough: Option<(usize, bool)>,
    /// The connection runs TLS (switched, or encrypted by the host from the start).
    pub(crate) tls: bool,
    /// Login settings of its listener.
    pub(crate) settings: LoginSettings,
    pub(crate) cancel_pid: u32,
    pub(crate) cancel_key: Box<[u8]>,
}

impl PgClient {
    /// A client that has sent nothing yet, of a listener with `login`'s settings.
    pub(crate) fn new(settings: LoginSettings) -> Self {
        PgClient {
            core: ClientCore::default(),
            phase: Phase::Startup,
            queued_on: None,
            cancel_requested: false,
            params: ParamDiff::default(),
            pending: Vec::new(),
            tx_failed: false,
            stmts: Names::new(),
            unnamed: None,
            unit: None,
            held: None,
            lost_tx: None,
            ending_tx: false,
            passthrough: None,
            tls: settings.secure,
            settings,
            cancel_pid: 0,
            cancel_key: Box::new([]),
        }
    }

    /// Whether the client completed login.
    pub(crate) fn is_ready(&self) -> bool {
        matches!(self.phase, Phase::Ready)
    }

    /// Whether the client has not proven its identity yet.
    pub(crate) fn is_logging_in(&self) -> bool {
        matches!(self.phase, Phase::Startup | Phase::Auth(_))
    }
}

/// The bit of a pin reason in [`Client::pins`].
pub(crate) fn pin_bit(reason: crate::pg::sql::PinReason) -> u16 {
    1 << (reason as u16)
}

impl Engine {
    /// Handles whatever the client's buffer holds, as far as its state allows.
    pub(crate) fn pg_pump_client(&mut self, id: ClientId) {
        loop {
            let Some(c) = self.clients.pg_mut(id) else {
                return;
            };
            let progressed = match c.phase {
                Phase::Startup => self.pg_startup_step(id),
                Phase::Auth(_) => self.pg_auth_step(id),
                Phase::AwaitBaseline => false,
                Phase::Ready => {
                    self.pg_relay_client(id);
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

    /// Handles one startup-phase packet; returns whether one was handled.
    fn pg_startup_step(&mut self, id: ClientId) -> bool {
        let limits = self.limits;
        let Some(c) = self.clients.pg_mut(id) else {
            return false;
        };
        // PostgreSQL 17's direct TLS: the client opens with a TLS handshake, no SSLRequest.
        if c.settings.offers_tls() && !c.tls && c.core.buf.first() == Some(&TLS_HANDSHAKE_BYTE) {
            c.tls = true;
            let records = c.core.buf.split().freeze();
            self.actions.push_back(Action::StartTls { id, records });
            return false;
        }
        match split_startup(&mut c.core.buf, &limits) {
            Ok(None) => false,
            Err(e) => {
                self.pg_fail_client(id, sqlstate::PROTOCOL_VIOLATION, &e.to_string());
                false
            }
            Ok(Some(StartupRequest::SslRequest)) => self.pg_ssl_request(id),
            Ok(Some(StartupRequest::GssEncRequest)) => {
                self.send_client(id, Bytes::from_static(b"N"));
                true
            }
            Ok(Some(StartupRequest::Cancel(req))) => {
                self.pg_cancel(&req.key, req.pid);
                self.close_client(id);
                false
            }
            Ok(Some(StartupRequest::Startup(s))) => {
                self.pg_begin_login(id, s);
                true
            }
        }
    }

    /// SSLRequest: `S` and a switch to TLS when TLS is offered, else `N`. Bytes the client sent
    /// behind the request, before the answer, are refused (they would be read as plaintext
    /// after the handshake: CVE-2021-23214), as is a second request.
    fn pg_ssl_request(&mut self, id: ClientId) -> bool {
        let Some(c) = self.clients.pg_mut(id) else {
            return false;
        };
        // `N` also where the host already encrypts the connection: no TLS inside TLS.
        if !c.settings.offers_tls() {
            self.send_client(id, Bytes::from_static(b"N"));
            return true;
        }
        if c.tls || !c.core.buf.is_empty() {
            let why = if c.tls {
                "SSLRequest over TLS"
            } else {
                "received unencrypted data after SSL request"
            };
            self.pg_fail_client(id, sqlstate::PROTOCOL_VIOLATION, why);
            return false;
        }
        c.tls = true;
        self.send_client(id, Bytes::from_static(b"S"));
        self.actions.push_back(Action::StartTls {
            id,
            records: Bytes::new(),
        });
        // Nothing more was read; the next bytes come through TLS.
        false
    }

    /// Checks the startup packet and sends the first authentication request.
    fn pg_begin_login(&mut self, id: ClientId, startup: Startup) {
        let Some(login) = self.clients.pg(id).map(|c| c.settings) else {
            return;
        };
        let tls = self.clients.pg(id).is_some_and(|c| c.tls);
        if login.tls == ClientTls::Require && !tls {
            return self.pg_fail_client(
                id,
                sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
                "muxql requires TLS: connect with sslmode=require or stricter",
            );
        }
        if startup.version.major() != 3 {
            return self.pg_fail_client(
                id,
                sqlstate::FEATURE_NOT_SUPPORTED,
                "unsupported frontend protocol",
            );
        }
        if startup.param("user").is_none() {
            return self.pg_fail_client(
                id,
                sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
                "no PostgreSQL user name specified in startup packet",
            );
        }
        let request = Requested::new(&startup);
        let requested = startup.version.minor();
        let minor = if requested >= NEWEST_MINOR {
            NEWEST_MINOR
        } else {
            0
        };
        let unsupported: Vec<Bytes> = startup
            .params
            .iter()
            .filter(|(k, _)| k.starts_with(b"_pq_."))
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = BytesMut::new();
        if u32::from(minor) != u32::from(requested) || !unsupported.is_empty() {
            let _ = BackendMessage::NegotiateProtocolVersion {
                newest_minor: u32::from(minor),
                unsupported,
            }
            .encode(&mut out);
        }
        let user = self
            .pg
            .users
            .iter()
            .find(|u| u.name == request.user)
            .cloned();
        let method = match login.auth {
            ClientAuth::Trust => None,
            ClientAuth::ScramSha256 => {
                let secret = match &user {
                    Some(u) => u.scram.clone(),
                    // An unknown user still gets a full exchange that fails at the end, so
                    // the answer does not tell which user names exist.
                    None => self.mock_scram_secret(),
                };
                let nonce = self.rng.array();
                // Over TLS, SCRAM-SHA-256-PLUS binds the proof to this connection's certificate.
                let tls = self.clients.pg(id).is_some_and(|c| c.tls);
                let binding = self.config.tls_server_end_point.clone().filter(|_| tls);
                let server = ScramServer::new(secret, nonce, binding);
                let _ = BackendMessage::Authentication(Authentication::Sasl {
                    mechanisms: server
                        .mechanisms()
                        .iter()
                        .map(|m| Bytes::from_static(m.as_bytes()))
                        .collect(),
                })
                .encode(&mut out);
                Some(Method::ScramFirst(Box::new(server)))
            }
            ClientAuth::Md5 => {
                let salt = self.rng.array();
                let _ = BackendMessage::Authentication(Authentication::Md5Password { salt })
                    .encode(&mut out);
                Some(Method::Md5 { salt })
            }
            ClientAuth::Cleartext => {
                let _ = BackendMessage::Authentication(Authentication::CleartextPassword)
                    .encode(&mut out);
                Some(Method::Cleartext)
            }
        };
        if !out.is_empty() {
            self.send_client(id, out.freeze());
        }
        match method {
            None if user.is_none() => self.pg_auth_failed(id, &request.user),
            None => self.pg_login_succeeded(id, request, minor),
            Some(method) => {
                if let Some(c) = self.clients.pg_mut(id) {
                    c.phase = Phase::Auth(Box::new(Login {
                        request,
                        user,
                        method,
                        minor,
                    }));
                }
            }
        }
    }

    /// A SCRAM secret no password matches.
    fn mock_scram_secret(&mut self) -> ScramSecret {
        ScramSecret {
            iterations: self.config.scram_iterations,
            salt: self.rng.array::<16>().to_vec(),
            stored_key: self.rng.array(),
            server_key: self.rng.array(),
        }
    }

    /// Handles one authentication message; returns whether the client moved on.
    fn pg_auth_step(&mut self, id: ClientId) -> bool {
        let limits = crate::wire::Limits {
            max_message: self.limits.max_startup,
            ..self.limits
        };
        let Some(c) = self.clients.pg_mut(id) else {
            return false;
        };
        let frame = match split_frame(&mut c.core.buf, Direction::Frontend, &limits) {
            Ok(None) => return false,
            Ok(Some(f)) if f.tag() == b'p' => f,
            Ok(Some(_)) => {
                self.pg_fail_client(
                    id,
                    sqlstate::PROTOCOL_VIOLATION,
                    "expected a password message",
                );
                return false;
            }
            Err(e) => {
                self.pg_fail_client(id, sqlstate::PROTOCOL_VIOLATION, &e.to_string());
                return false;
            }
        };
        let Phase::Auth(login) = std::mem::replace(&mut c.phase, Phase::Startup) else {
            return false;
        };
        let mut login = login;
        let body = frame.body();
        let outcome = match login.method {
            Method::ScramFirst(mut server) => {
                // Checked before the rest, as PostgreSQL does: a serverless driver's pipelined
                // connect sends a cleartext password here, ahead of the server's request.
                let mechanism = body.split(|&b| b == 0).next().unwrap_or_default();
                if !server
                    .mechanisms()
                    .iter()
                    .any(|m| m.as_bytes() == mechanism)
                {
                    self.pg_fail_client(id, sqlstate::PROTOCOL_VIOLATION, INVALID_MECHANISM);
                    return false;
                }
                match SaslInitialResponse::parse(body).and_then(|r| {
                    server.handle_client_first(&r.mechanism, r.data.as_deref().unwrap_or_default())
                }) {
                    Ok(server_first) => {
                        let mut out = BytesMut::new();
                        let _ = BackendMessage::Authentication(Authentication::SaslContinue(
                            Bytes::from(server_first),
                        ))
                        .encode(&mut out);
                        self.send_client(id, out.freeze());
                        login.method = Method::ScramFinal(server);
                        if let Some(c) = self.clients.pg_mut(id) {
                            c.phase = Phase::Auth(login);
                        }
                        return true;
                    }
                    Err(e) => Err(e),
                }
            }
            Method::ScramFinal(mut server) => match server.handle_client_final(&body) {
                Ok(server_final) if login.user.is_some() => {
                    let mut out = BytesMut::new();
                    let _ = BackendMessage::Authentication(Authentication::SaslFinal(Bytes::from(
                        server_final,
                    )))
                    .encode(&mut out);
                    self.send_client(id, out.freeze());
                    Ok(true)
                }
                Ok(_) => Ok(false),
                Err(Error::Auth(_)) => Ok(false),
                Err(e) => Err(e),
            },
            Method::Md5 { salt } => crate::pg::frontend::parse_password_message(body).map(|pw| {
                login
                    .user
                    .as_ref()
                    .is_some_and(|u| auth::md5::verify_md5_response(&u.md5, salt, &pw))
            }),
            Method::Cleartext => crate::pg::frontend::parse_password_message(body).map(|pw| {
                login
                    .user
                    .as_ref()
                    .is_some_and(|u| auth::verify_cleartext(u.password.as_bytes(), &pw))
            }),
        };
        match outcome {
            Ok(true) => {
                self.pg_login_succeeded(id, login.request, login.minor);
                true
            }
            Ok(false) => {
                self.pg_auth_failed(id, &login.request.user);
                false
            }
            Err(e) => {
                self.pg_fail_client(id, sqlstate::PROTOCOL_VIOLATION, &e.to_string());
                false
            }
        }
    }

    /// Refuses a login with PostgreSQL's own wording.
    fn pg_auth_failed(&mut self, id: ClientId, user: &str) {
        let msg = format!("password authentication failed for user \"{user}\"");
        self.pg_fail_client(id, sqlstate::INVALID_PASSWORD, &msg);
    }

    /// The client proved its identity: pick its route, record its startup parameters (only
    /// now: nothing from the startup packet is applied before authentication), and welcome it.
    fn pg_login_succeeded(&mut self, id: ClientId, request: Requested, minor: u16) {
        let Requested {
            user,
            database,
            params,
        } = request;
        let mut out = BytesMut::new();
        let _ = BackendMessage::Authentication(Authentication::Ok).encode(&mut out);
        self.send_client(id, out.freeze());
        let Some(route) = self.live_route_for(Protocol::Postgres, &database, &user) else {
            let msg = format!("database \"{database}\" does not exist");
            return self.pg_fail_client(id, sqlstate::INVALID_CATALOG_NAME, &msg);
        };
        let key_len = if minor >= 2 {
            CANCEL_KEY_LEN_3_2
        } else {
            CANCEL_KEY_LEN_3_0
        };
        let mut key = vec![0u8; key_len].into_boxed_slice();
        self.rng.fill(&mut key);
        let mut pid = self.rng.u32();
        while pid == 0 || self.pg.cancel_index.contains_key(&pid) {
            pid = self.rng.u32();
        }
        self.pg.cancel_index.insert(pid, id);
        self.logging_in = self.logging_in.saturating_sub(1);
        let Some(c) = self.clients.pg_mut(id) else {
            return;
        };
        c.core.route = route;
        c.params = params;
        c.cancel_pid = pid;
        c.cancel_key = key;
        c.phase = Phase::AwaitBaseline;
        let pool = &mut self.pools[route];
        pool.join();
        if pool.ext.pg().baseline.is_some() {
            self.pg_welcome(id);
        } else {
            pool.awaiting_baseline.push(id);
            self.dispatch(route);
        }
    }

    /// Sends the parameters, the cancel key and the first ReadyForQuery.
    pub(crate) fn pg_welcome(&mut self, id: ClientId) {
        let Some(c) = self.clients.pg_mut(id) else {
            return;
        };
        let Some(baseline) = self.pools[c.core.route].ext.pg().baseline.clone() else {
            return;
        };
        let mut out = BytesMut::new();
        for (name, value) in &baseline.params {
            let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
            let value = match c.params.get(&lower) {
                Some(Value::Literal(v)) => Bytes::copy_from_slice(v.as_bytes()),
                _ => value.clone(),
            };
            let _ = BackendMessage::ParameterStatus {
                name: name.clone(),
                value,
            }
            .encode(&mut out);
        }
        // Startup values the server would have reported back are the client's from now on;
        // the rest (reported values equal to the baseline) need not be tracked.
        c.params.retain(|name, value| {
            baseline
                .value(name)
                .is_none_or(|b| !matches!(value, Value::Literal(v) if v.as_bytes() == &b[..]))
        });
        let _ = BackendMessage::BackendKeyData {
            pid: c.cancel_pid,
            key: Bytes::copy_from_slice(&c.cancel_key),
        }
        .encode(&mut out);
        let _ = BackendMessage::ReadyForQuery(TransactionStatus::Idle).encode(&mut out);
        c.phase = Phase::Ready;
        self.send_client(id, out.freeze());
        self.ready.push_back(id);
    }

    /// Forwards a CancelRequest when its key names a client whose query runs upstream now.
    fn pg_cancel(&mut self, key: &[u8], pid: u32) {
        let Some(&target) = self.pg.cancel_index.get(&pid) else {
            return;
        };
        let Some(c) = self.clients.pg_mut(target) else {
            return;
        };
        if c.cancel_key.len() != key.len() || !bool::from(c.cancel_key.ct_eq(key)) {
            return;
        }
        // Its own cancel's error must reach it: nothing is held back from now on.
        if let Some(held) = c.held.take() {
            self.actions.push_back(Action::SendClient {
                id: target,
                bytes: held.freeze(),
            });
        }
        match c.core.upstream {
            Some(uid) => self.pg_forward_cancel(uid),
            None => c.cancel_requested = c.queued_on.is_some(),
        }
    }

    /// Queues bytes for a client (held back instead while its pipelined unit is at risk of
    /// another client's cancel, up to [`super::pipeline::MAX_HELD`]).
    pub(crate) fn send_client(&mut self, id: ClientId, bytes: Bytes) {
        if let Some(c) = self.clients.pg_mut(id) {
            if let Some(held) = c.held.as_mut() {
                if held.len() + bytes.len() <= super::pipeline::MAX_HELD {
                    held.extend_from_slice(&bytes);
                    return;
                }
                let earlier = std::mem::take(held).freeze();
                c.held = None;
                self.actions
                    .push_back(Action::SendClient { id, bytes: earlier });
            }
        }
        self.actions.push_back(Action::SendClient { id, bytes });
    }

    /// Sends a FATAL error and closes the client.
    pub(crate) fn pg_fail_client(&mut self, id: ClientId, sqlstate: &str, message: &str) {
        self.count_error(ErrorKind::of_sqlstate(sqlstate));
        self.pg_end_with_error(id, sqlstate, message);
    }

    /// Sends a FATAL error and closes the client (counted by the caller).
    pub(crate) fn pg_end_with_error(&mut self, id: ClientId, sqlstate: &str, message: &str) {
        let mut out = BytesMut::new();
        if encode_error_response(&mut out, "FATAL", sqlstate, message).is_ok() {
            self.send_client(id, out.freeze());
        }
        self.close_client(id);
    }
}

/// The answer to an answer that is not a SASL mechanism muxql offered.
const INVALID_MECHANISM: &str = "client selected an invalid SASL authentication mechanism: muxql \
    asks for SCRAM-SHA-256 (a password sent in cleartext ahead of the server's request, as a \
    pipelined connect does, is not accepted)";

/// Bytes buffered behind a complete first message: input waiting to be passed on.
pub(crate) fn backlog(buf: &BytesMut, limits: &Limits) -> usize {
    match peek_header(buf, Direction::Frontend, limits) {
        Ok(Some(h)) if buf.len() >= h.frame_len => buf.len(),
        _ => 0,
    }
}

/// The session parameters a startup packet asks for, as differences to replay.
fn startup_params(startup: &Startup) -> ParamDiff {
    let mut diff = ParamDiff::default();
    for (name, value) in &startup.params {
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        let value = String::from_utf8_lossy(value);
        match name.as_str() {
            "user" | "database" | "replication" => {}
            "options" => {
                for (k, v) in parse_options(&value) {
                    diff.set(&k, Value::Literal(v.into()));
                }
            }
            n if n.starts_with("_pq_.") => {}
            n => diff.set(n, Value::Literal(value.as_ref().into())),
        }
    }
    diff
}
