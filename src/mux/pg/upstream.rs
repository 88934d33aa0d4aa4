//! An upstream PostgreSQL connection: its login with the route's credentials, and the state
//! muxql tracks on it (transaction status, session parameters, prepared statements).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::expect::ExpectQueue;
use super::params::ParamDiff;
use super::pool::Baseline;
use super::statements::Prepared;
use crate::mux::engine::Engine;
use crate::mux::ids::{ClientId, UpstreamId};
use crate::mux::session::{UpPhase, UpstreamCore};
use crate::mux::Action;
use crate::pg::auth::{self, ScramClient, SCRAM_SHA_256};
use crate::pg::backend::{Authentication, BackendMessage};
use crate::pg::frame::{split_frame, Direction};
use crate::pg::frontend::{encode_password_message, encode_sasl_response, SaslInitialResponse};
use crate::pg::startup::{CancelRequest, ProtocolVersion, Startup, StartupRequest, PROTOCOL_3_0};

/// Login progress.
#[derive(Debug, Default)]
pub(crate) struct UpLogin {
    /// An SSLRequest was sent; its one-byte answer is awaited.
    ssl_requested: bool,
    scram: Option<ScramClient>,
    params: Vec<(Bytes, Bytes)>,
}

/// One PostgreSQL upstream connection.
#[derive(Debug)]
pub(crate) struct PgUpstream {
    /// What the pooling core tracks.
    pub(crate) core: UpstreamCore,
    /// Login progress while the core's phase is `LoggingIn`.
    login: Option<Box<UpLogin>>,
    /// Responses the server still owes.
    pub(crate) expect: ExpectQueue,
    /// Status byte of the last ReadyForQuery.
    pub(crate) tx_status: u8,
    backend_pid: u32,
    backend_key: Bytes,
    /// Session parameters that differ from the pool baseline.
    pub(crate) params: ParamDiff,
    /// Pooled statements prepared on this connection.
    pub(crate) prepared: Prepared,
    /// Clients whose requests were pipelined behind the attached client's, in order (`None`
    /// for one that left since).
    pub(crate) followers: VecDeque<Option<ClientId>>,
    /// The attached client sent one autocommit unit: more clients may queue behind it.
    pub(crate) pipeline_ok: bool,
    /// When the request now running started (for pipelining: only behind fresh ones).
    pub(crate) busy_since: u64,
    /// The client whose Parse last set the unnamed statement on this connection.
    pub(crate) unnamed_owner: Option<ClientId>,
    /// A large row or COPY chunk being passed through as it arrives: bytes still to come, and
    /// the client they go to (`None`: dropped).
    pub(crate) passthrough: Option<(usize, Option<ClientId>)>,
}

impl PgUpstream {
    /// A connection the host is about to open.
    pub(crate) fn new(core: UpstreamCore) -> Self {
        PgUpstream {
            busy_since: core.created,
            core,
            login: None,
            expect: ExpectQueue::default(),
            tx_status: b'I',
            backend_pid: 0,
            backend_key: Bytes::new(),
            params: ParamDiff::default(),
            prepared: Prepared::default(),
            followers: VecDeque::new(),
            pipeline_ok: false,
            unnamed_owner: None,
            passthrough: None,
        }
    }

    /// A CancelRequest for whatever runs on this connection now.
    pub(crate) fn cancel_request(&self) -> Option<Bytes> {
        if !self.expect.busy() || self.backend_key.is_empty() {
            return None;
        }
        let mut out = BytesMut::new();
        CancelRequest {
            pid: self.backend_pid,
            key: self.backend_key.clone(),
        }
        .encode(&mut out)
        .ok()?;
        Some(out.freeze())
    }
}

impl Engine {
    /// The host connected an upstream: send the SSLRequest when the route asks for TLS, the
    /// startup packet otherwise.
    pub(crate) fn pg_upstream_connected(&mut self, id: UpstreamId) {
        let Some(u) = self.upstreams.pg_mut(id) else {
            return;
        };
        if u.core.phase != UpPhase::Connecting {
            return;
        }
        u.core.phase = UpPhase::LoggingIn;
        let tls = self.config.routes[u.core.route].upstream_tls;
        u.login = Some(Box::new(UpLogin {
            ssl_requested: tls.requested(),
            ..UpLogin::default()
        }));
        if !tls.requested() {
            return self.pg_send_startup(id);
        }
        let mut out = BytesMut::new();
        match StartupRequest::SslRequest.encode(&mut out) {
            Ok(()) => self.actions.push_back(Action::SendUpstream {
                id,
                bytes: out.freeze(),
            }),
            Err(e) => self.upstream_lost(id, &format!("cannot encode SSLRequest: {e}")),
        }
    }

    /// Sends the startup packet with the route's user and database.
    fn pg_send_startup(&mut self, id: UpstreamId) {
        let Some(u) = self.upstreams.pg_mut(id) else {
            return;
        };
        let route = &self.config.routes[u.core.route];
        let startup = Startup {
            version: ProtocolVersion(PROTOCOL_3_0),
            params: vec![
                (
                    Bytes::from_static(b"user"),
                    Bytes::from(route.upstream_user.clone()),
                ),
                (
                    Bytes::from_static(b"database"),
                    Bytes::from(route.upstream_database.clone()),
                ),
            ],
        };
        let mut out = BytesMut::new();
        match startup.encode(&mut out) {
            Ok(()) => self.actions.push_back(Action::SendUpstream {
                id,
                bytes: out.freeze(),
            }),
            Err(e) => self.upstream_lost(id, &format!("cannot encode startup packet: {e}")),
        }
    }

    /// The server's one-byte answer to the SSLRequest (Protocol, "SSL Session Encryption").
    /// Returns whether the login goes on with the startup packet.
    fn pg_ssl_answer(&mut self, id: UpstreamId) -> bool {
        let Some(u) = self.upstreams.pg_mut(id) else {
            return false;
        };
        let route = u.core.route;
        let tls = self.config.routes[route].upstream_tls;
        let answer = u.core.buf.first().copied();
        // Bytes behind the answer were sent before the handshake, in plaintext that anyone on
        // the path could have written (CVE-2021-23222): never read them as the server's.
        if u.core.buf.len() > 1 {
            self.upstream_lost(id, "the server sent data behind its answer to SSLRequest");
            return false;
        }
        let Some(answer) = answer else {
            return false;
        };
        u.core.buf.clear();
        if let Some(login) = u.login.as_deref_mut() {
            login.ssl_requested = false;
        }
        match answer {
            b'S' => {
                self.actions
                    .push_back(Action::StartUpstreamTls { id, route });
                self.pg_send_startup(id);
                true
            }
            b'N' if !tls.required() => {
                self.pg_send_startup(id);
                true
            }
            b'N' => {
                self.upstream_lost(
                    id,
                    "the server does not accept TLS, which the route requires",
                );
                false
            }
            _ => {
                self.upstream_lost(id, "the server answered SSLRequest with neither S nor N");
                false
            }
        }
    }

    /// Handles an upstream's buffered input as its phase requires.
    pub(crate) fn pg_upstream_input(&mut self, id: UpstreamId) {
        let Some(u) = self.upstreams.pg_mut(id) else {
            return;
        };
        match u.core.phase {
            UpPhase::Connecting => {}
            UpPhase::LoggingIn => self.pg_upstream_login(id),
            UpPhase::Idle => self.pg_upstream_idle_input(id),
            UpPhase::Attached(_) | UpPhase::Resetting => self.pg_relay_upstream(id),
        }
    }

    /// Handles login messages until the first ReadyForQuery.
    fn pg_upstream_login(&mut self, id: UpstreamId) {
        let awaiting_ssl = self
            .upstreams
            .pg_mut(id)
            .and_then(|u| u.login.as_deref())
            .is_some_and(|l| l.ssl_requested);
        if awaiting_ssl && !self.pg_ssl_answer(id) {
            return;
        }
        loop {
            let limits = self.limits;
            let Some(u) = self.upstreams.pg_mut(id) else {
                return;
            };
            let frame = match split_frame(&mut u.core.buf, Direction::Backend, &limits) {
                Ok(Some(f)) => f,
                Ok(None) => return,
                Err(e) => return self.upstream_lost(id, &format!("protocol error: {e}")),
            };
            let msg = match BackendMessage::parse(&frame) {
                Ok(m) => m,
                Err(e) => return self.upstream_lost(id, &format!("protocol error: {e}")),
            };
            let route = u.core.route;
            let Some(login) = u.login.as_deref_mut() else {
                return;
            };
            let reply = match msg {
                BackendMessage::Authentication(a) => {
                    let r = &self.config.routes[route];
                    match answer_auth(
                        a,
                        login,
                        &r.upstream_user,
                        &r.upstream_password,
                        &mut self.rng,
                    ) {
                        Ok(reply) => reply,
                        Err(e) => return self.upstream_lost(id, &e),
                    }
                }
                BackendMessage::ParameterStatus { name, value } => {
                    login.params.push((name, value));
                    None
                }
                BackendMessage::BackendKeyData { pid, key } => {
                    u.backend_pid = pid;
                    u.backend_key = key;
                    None
                }
                BackendMessage::ErrorResponse(fields) => {
                    let text = fields
                        .message()
                        .map(|m| String::from_utf8_lossy(m).into_owned())
                        .unwrap_or_else(|| "login failed".into());
                    return self.upstream_lost(id, &text);
                }
                BackendMessage::ReadyForQuery(_) => {
                    let params = std::mem::take(&mut login.params);
                    return self.pg_upstream_ready(id, params);
                }
                _ => None,
            };
            if let Some(bytes) = reply {
                self.actions.push_back(Action::SendUpstream { id, bytes });
            }
        }
    }

    /// Login finished: record the baseline, welcome clients waiting for it, and serve.
    fn pg_upstream_ready(&mut self, id: UpstreamId, params: Vec<(Bytes, Bytes)>) {
        let Some(u) = self.upstreams.pg_mut(id) else {
            return;
        };
        let route = u.core.route;
        u.login = None;
        let pool = &mut self.pools[route];
        pool.logged_in();
        let pg = pool.ext.pg();
        if pg.baseline.is_none() {
            pg.baseline = Some(std::rc::Rc::new(Baseline { params }));
            for c in std::mem::take(&mut pool.awaiting_baseline) {
                self.pg_welcome(c);
            }
        }
        self.park(id);
    }

    /// Messages an idle upstream may send on its own: notices, notifications and parameter
    /// reports are dropped; anything else (a FATAL error, say) retires the connection.
    fn pg_upstream_idle_input(&mut self, id: UpstreamId) {
        loop {
            let limits = self.limits;
            let Some(u) = self.upstreams.pg_mut(id) else {
                return;
            };
            match split_frame(&mut u.core.buf, Direction::Backend, &limits) {
                Ok(Some(f)) if matches!(f.tag(), b'N' | b'A' | b'S') => {}
                Ok(Some(_)) | Err(_) => {
                    return self.upstream_lost(id, "unexpected message on idle connection")
                }
                Ok(None) => return,
            }
        }
    }
}

/// The reply to one authentication request from the server, if it needs one.
fn answer_auth(
    auth_msg: Authentication,
    login: &mut UpLogin,
    user: &str,
    password: &str,
    rng: &mut crate::mux::rng::Rng,
) -> Result<Option<Bytes>, String> {
    let mut out = BytesMut::new();
    let encoded = match auth_msg {
        // A server that skips SCRAM's final message has not proven it knows the password.
        Authentication::Ok if login.scram.as_ref().is_some_and(|s| !s.is_verified()) => {
            return Err("server accepted the login without completing SCRAM".into())
        }
        Authentication::Ok => return Ok(None),
        Authentication::CleartextPassword => encode_password_message(&mut out, password.as_bytes()),
        Authentication::Md5Password { salt } => {
            let stored = auth::md5::md5_hash(user.as_bytes(), password.as_bytes());
            let response = auth::md5::md5_response(&stored, salt);
            encode_password_message(&mut out, response.as_bytes())
        }
        Authentication::Sasl { mechanisms } => {
            if !mechanisms
                .iter()
                .any(|m| &m[..] == SCRAM_SHA_256.as_bytes())
            {
                return Err("server offers no supported SASL mechanism".into());
            }
            let client = ScramClient::new(password, rng.array(), None);
            let msg = SaslInitialResponse {
                mechanism: Bytes::from_static(client.mechanism().as_bytes()),
                data: Some(Bytes::from(client.client_first())),
            };
            login.scram = Some(client);
            msg.encode(&mut out)
        }
        Authentication::SaslContinue(data) => {
            let client = login.scram.as_mut().ok_or("unexpected SASL continue")?;
            let reply = client
                .handle_server_first(&data)
                .map_err(|e| format!("SCRAM: {e}"))?;
            encode_sasl_response(&mut out, &reply)
        }
        Authentication::SaslFinal(data) => {
            let client = login.scram.as_mut().ok_or("unexpected SASL final")?;
            client
                .handle_server_final(&data)
                .map_err(|e| format!("SCRAM: {e}"))?;
            return Ok(None);
        }
        _ => return Err("server asks for an unsupported authentication method".into()),
    };
    encoded.map_err(|e| e.to_string())?;
    Ok(Some(out.freeze()))
}
