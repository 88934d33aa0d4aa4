//! The PostgreSQL side of pooling: what a pool keeps for its PostgreSQL clients, replaying a
//! client's parameters on the upstream it lands on, and cleaning up after a client.

use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use super::expect::{Kind, Pending};
use super::params::sync_statements;
use super::session::PgClient;
use super::statements::Registry;
use super::upstream::PgUpstream;
use crate::mux::engine::Engine;
use crate::mux::ids::{ClientId, UpstreamId};
use crate::mux::Action;
use crate::pg::frontend::FrontendMessage;

/// Parameters an upstream reported right after login: what every new client is told, and the
/// reference session parameters are tracked against.
#[derive(Debug)]
pub(crate) struct Baseline {
    /// `(name, value)` as reported, in order.
    pub(crate) params: Vec<(Bytes, Bytes)>,
}

impl Baseline {
    /// Whether `name` (lower case) is a parameter the server reports.
    pub(crate) fn is_reported(&self, name: &str) -> bool {
        self.params
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
    }

    /// The reported value of `name` (lower case).
    pub(crate) fn value(&self, name: &str) -> Option<&Bytes> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }
}

/// What a PostgreSQL pool keeps beside the protocol-neutral pool.
#[derive(Debug, Default)]
pub(crate) struct PgPool {
    /// Parameters reported by the first upstream that logged in.
    pub(crate) baseline: Option<Rc<Baseline>>,
    /// Named prepared statements of this pool's clients.
    pub(crate) statements: Registry,
}

impl Engine {
    /// Brings an upstream just attached to a client in line with the client's session
    /// parameters; the answers are swallowed.
    pub(crate) fn pg_replay_state(&mut self, uid: UpstreamId, cid: ClientId) {
        let (Some(c), Some(u)) = (self.clients.pg(cid), self.upstreams.pg_mut(uid)) else {
            return;
        };
        // Whether others may queue behind it is decided by this client's first request.
        u.pipeline_ok = false;
        let mut sql = String::new();
        if sync_statements(&c.params, &u.params, &mut sql) == 0 {
            return;
        }
        u.params = c.params.clone();
        u.expect.push(Pending {
            kind: Kind::Query,
            swallow: true,
            stmt: None,
            server_id: 0,
        });
        let mut out = BytesMut::new();
        if FrontendMessage::Query(sql.into()).encode(&mut out).is_ok() {
            self.actions.push_back(Action::SendUpstream {
                id: uid,
                bytes: out.freeze(),
            });
        }
    }

    /// Forgets what a departed client left in the PostgreSQL state: its cancel key, its
    /// statements, its place behind another client's request.
    pub(crate) fn pg_client_gone(&mut self, cid: ClientId, c: PgClient) {
        if c.cancel_pid != 0 {
            self.pg.cancel_index.remove(&c.cancel_pid);
        }
        if c.is_logging_in() {
            return;
        }
        let pool = &mut self.pools[c.core.route];
        for (_, named) in c.stmts {
            pool.ext.pg().statements.release(&named.stmt);
        }
        if let Some(uid) = c.queued_on {
            // Its request is on the wire already: the answer is dropped when its turn comes.
            pool.deactivate();
            if let Some(u) = self.upstreams.pg_mut(uid) {
                for f in u.followers.iter_mut().filter(|f| **f == Some(cid)) {
                    *f = None;
                }
            }
        }
    }

    /// Fails the clients whose requests were pipelined behind a departed upstream's.
    pub(crate) fn pg_upstream_gone(&mut self, u: &PgUpstream) {
        for cid in u.followers.iter().flatten() {
            self.fail_client(
                *cid,
                crate::mux::error::SessionError::UpstreamLost("connection closed".into()),
            );
        }
    }

    /// Makes an upstream whose client left fit for the next one: roll back an open
    /// transaction, discard session state when the client had any, or close it when a request
    /// was still in flight (its results must reach nobody).
    pub(crate) fn pg_clean_after_client(&mut self, uid: UpstreamId, discard: bool) {
        let Some(u) = self.upstreams.pg_mut(uid) else {
            return;
        };
        if !u.followers.is_empty() {
            // An autocommit unit is running with others queued behind it: its answer is
            // dropped and the next follower is served after it.
            return;
        }
        if !u.expect.is_empty() {
            self.pools[u.core.route].stats.upstreams_discarded += 1;
            return self.retire(uid);
        }
        let mut out = BytesMut::new();
        let mut statements = Vec::new();
        if u.tx_status != b'I' {
            statements.push("ROLLBACK");
        }
        if discard {
            statements.push("DISCARD ALL");
            u.prepared.clear();
            u.params.clear();
        }
        if statements.is_empty() {
            return self.park(uid);
        }
        for sql in statements {
            if FrontendMessage::Query(sql.into()).encode(&mut out).is_ok() {
                u.expect.push(Pending {
                    kind: Kind::Query,
                    swallow: true,
                    stmt: None,
                    server_id: 0,
                });
            }
        }
        self.actions.push_back(Action::SendUpstream {
            id: uid,
            bytes: out.freeze(),
        });
    }
}
