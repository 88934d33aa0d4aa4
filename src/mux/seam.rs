//! The seam between the protocol-neutral core and the protocols: everything the core asks of
//! a client's or an upstream's protocol, as one dispatch per question.
//!
//! The core owns ids, pools, the wait queue, timeouts and counters. A protocol owns what
//! goes over the wire: logging clients and upstreams in, replaying a client's session state
//! on the upstream it lands on, saying whether an upstream is clean enough to reuse,
//! cleaning up after a client, and relaying traffic in between.

use bytes::{Bytes, BytesMut};

use super::config::Protocol;
use super::engine::Engine;
use super::error::SessionError;
use super::ids::{ClientId, UpstreamId};
use super::mysql::client::MyClient;
use super::mysql::upstream::MyUpstream;
use super::pg::session::PgClient;
use super::pg::upstream::PgUpstream;
use super::session::{Client, Upstream, UpstreamCore};
use crate::mysql::command::code::COM_QUIT;
use crate::mysql::errcode;
use crate::pg::sqlstate;

use super::listener::LoginSettings;

impl Engine {
    /// A new client session of `protocol`, logging in with `login`'s settings.
    pub(crate) fn new_client(protocol: Protocol, login: LoginSettings) -> Client {
        match protocol {
            Protocol::Postgres => Client::Pg(PgClient::new(login)),
            Protocol::Mysql => Client::My(MyClient::new(login)),
        }
    }

    /// Login: a client just connected (MySQL servers speak first).
    pub(crate) fn client_opened(&mut self, id: ClientId) {
        if let Some(Client::My(_)) = self.clients.get(id.0) {
            self.my_client_opened(id);
        }
    }

    /// A new upstream connection of the protocol of its route.
    pub(crate) fn new_upstream(&self, core: UpstreamCore) -> Upstream {
        match self.config.routes[core.route].protocol {
            Protocol::Postgres => Upstream::Pg(PgUpstream::new(core)),
            Protocol::Mysql => Upstream::My(MyUpstream::new(core)),
        }
    }

    /// Login: handles whatever a client's buffered input allows (login steps, or the relay
    /// once it is ready).
    pub(crate) fn client_input(&mut self, id: ClientId) {
        match self.clients.get(id.0) {
            Some(Client::Pg(_)) => self.pg_pump_client(id),
            Some(Client::My(_)) => self.my_pump_client(id),
            None => {}
        }
    }

    /// Login: the host connected an upstream; the protocol starts logging in.
    pub(crate) fn upstream_opened(&mut self, id: UpstreamId) {
        match self.upstreams.get(id.0) {
            Some(Upstream::Pg(_)) => self.pg_upstream_connected(id),
            Some(Upstream::My(_)) => self.my_upstream_connected(id),
            None => {}
        }
    }

    /// Relay: handles an upstream's buffered input (login, idle chatter, or responses).
    pub(crate) fn upstream_input(&mut self, id: UpstreamId) {
        match self.upstreams.get(id.0) {
            Some(Upstream::Pg(_)) => self.pg_upstream_input(id),
            Some(Upstream::My(_)) => self.my_upstream_input(id),
            None => {}
        }
    }

    /// Whether the pool of `route` knows what its server reports (clients can be welcomed).
    pub(crate) fn has_baseline(&self, route: usize) -> bool {
        let ext = &self.pools[route].ext;
        match self.config.routes[route].protocol {
            Protocol::Postgres => ext.pg_ref().baseline.is_some(),
            Protocol::Mysql => ext.my_ref().baseline.is_some(),
        }
    }

    /// Replay: brings upstream `uid`, just attached to client `cid`, in line with the
    /// client's session state.
    pub(crate) fn replay_state(&mut self, uid: UpstreamId, cid: ClientId) {
        match self.upstreams.get(uid.0) {
            Some(Upstream::Pg(_)) => self.pg_replay_state(uid, cid),
            Some(Upstream::My(_)) => self.my_replay_state(uid, cid),
            None => {}
        }
    }

    /// Sharing: the busy upstream of `route` waiting client `cid`'s request may run behind
    /// (an autocommit request, behind another, on a connection in the same session state).
    pub(crate) fn pipeline_target(&mut self, route: usize, cid: ClientId) -> Option<UpstreamId> {
        let depth = self.config.pipeline_depth;
        match self.config.routes[route].protocol {
            Protocol::Postgres => self.pg_pipeline_target(route, cid, depth),
            Protocol::Mysql => self.my_pipeline_target(route, cid, depth),
        }
    }

    /// Sharing: sends waiting client `cid`'s request behind the one running on `uid`.
    pub(crate) fn follow(&mut self, cid: ClientId, uid: UpstreamId) {
        match self.upstreams.get(uid.0) {
            Some(Upstream::Pg(_)) => self.pg_follow(cid, uid),
            Some(Upstream::My(_)) => self.my_follow(cid, uid),
            None => {}
        }
    }

    /// Release: whether an upstream that serves nobody owes no answers and can be reused.
    pub(crate) fn upstream_is_clean(u: &Upstream) -> bool {
        match u {
            Upstream::Pg(u) => u.expect.is_empty(),
            Upstream::My(u) => u.owed.is_empty(),
        }
    }

    /// Cleanup: makes upstream `uid`, whose client left, fit for the next one (`discard`:
    /// the client left session state behind), or retires it.
    pub(crate) fn clean_after_client(&mut self, uid: UpstreamId, discard: bool) {
        match self.upstreams.get(uid.0) {
            Some(Upstream::Pg(_)) => self.pg_clean_after_client(uid, discard),
            Some(Upstream::My(_)) => self.my_clean_after_client(uid, discard),
            None => {}
        }
    }

    /// Cleanup: the protocol's part of a client that is gone (statements, cancel keys, places
    /// in other clients' pipelines). The core already updated the pool.
    pub(crate) fn client_gone(&mut self, cid: ClientId, client: Client) {
        match client {
            Client::Pg(c) => self.pg_client_gone(cid, c),
            Client::My(c) => self.my_client_gone(c),
        }
    }

    /// Cleanup: the protocol's part of an upstream that is gone.
    pub(crate) fn upstream_gone(&mut self, u: &Upstream) {
        match u {
            Upstream::Pg(u) => self.pg_upstream_gone(u),
            Upstream::My(u) => {
                for cid in u.followers.clone() {
                    self.fail_client(cid, SessionError::UpstreamLost("connection closed".into()));
                }
            }
        }
    }

    /// The bytes that end an upstream session politely, if any.
    pub(crate) fn goodbye(&self, u: &Upstream) -> Option<Bytes> {
        match u {
            Upstream::Pg(_) => {
                let mut out = BytesMut::new();
                crate::pg::frontend::FrontendMessage::Terminate
                    .encode(&mut out)
                    .ok()?;
                Some(out.freeze())
            }
            Upstream::My(_) => Some(crate::mux::mysql::client::packet(&[COM_QUIT], 0)),
        }
    }

    /// Upstream `uid` is lost: answers the requests it was running (each client keeps its
    /// session) when the protocol can; false when the clients must be closed instead.
    pub(crate) fn answer_lost(&mut self, uid: UpstreamId, reason: &str) -> bool {
        match self.upstreams.get(uid.0) {
            Some(Upstream::Pg(_)) => self.pg_answer_lost(uid, reason),
            Some(Upstream::My(_)) => self.my_answer_lost(uid, reason),
            None => false,
        }
    }

    /// Upstream `uid` is lost while serving client `cid`: notes where in its answer the
    /// client is, for the error it gets next.
    pub(crate) fn note_upstream_lost(&mut self, cid: ClientId, uid: UpstreamId) {
        let seq = self.upstreams.my(uid).and_then(|u| u.client_seq());
        if let Some(c) = self.clients.my_mut(cid) {
            c.lost_seq = seq;
        }
    }

    /// Tells a client why it cannot go on, in its protocol's terms, and closes it.
    pub(crate) fn fail_client(&mut self, cid: ClientId, error: SessionError) {
        let message = error.to_string();
        if self.clients.get(cid.0).is_some() {
            self.count_error(error.kind());
        }
        match self.clients.get(cid.0) {
            Some(Client::Pg(_)) => {
                let code = match error {
                    SessionError::LoginTimeout => sqlstate::PROTOCOL_VIOLATION,
                    SessionError::WaitTimeout
                    | SessionError::TooManyClients
                    | SessionError::TooManyLogins => sqlstate::TOO_MANY_CONNECTIONS,
                    SessionError::UpstreamLost(_) | SessionError::Unservable(_) => {
                        sqlstate::CONNECTION_FAILURE
                    }
                };
                self.pg_end_with_error(cid, code, &message);
            }
            Some(Client::My(_)) => {
                let code = match error {
                    SessionError::LoginTimeout => errcode::ER_NET_READ_INTERRUPTED,
                    SessionError::WaitTimeout
                    | SessionError::TooManyClients
                    | SessionError::TooManyLogins => errcode::ER_CON_COUNT_ERROR,
                    SessionError::UpstreamLost(_) | SessionError::Unservable(_) => {
                        errcode::ER_CONNECTION_KILLED
                    }
                };
                self.my_end_with_error(cid, code, &message);
            }
            None => {}
        }
    }
}
