//! An upstream lost under requests: each client with a request on it gets an ErrorResponse and
//! a ReadyForQuery for that request, as if the server had failed it, and keeps its connection
//! and session (settings, prepared statements); its next request waits for the pool to refill.
//! A client inside a transaction gets `ReadyForQuery 'E'` and is answered as in an aborted
//! transaction block until it ends it (`lost_tx`). A client that cannot be answered that way
//! (session-scoped state lived on the server, a copy or a large message was half way) is
//! closed as before; so is everyone with `close_on_upstream_loss`.

use bytes::BytesMut;

use crate::mux::config::PoolMode;
use crate::mux::engine::Engine;
use crate::mux::ids::{ClientId, UpstreamId};
use crate::pg::backend::{encode_error_response, BackendMessage, TransactionStatus};
use crate::pg::sqlstate;

impl Engine {
    /// Answers every client with a request on lost upstream `uid` (the attached one and those
    /// pipelined behind it) and takes the followers off it. Returns false, answering nobody,
    /// when one of them cannot be answered that way: the caller then closes them.
    pub(crate) fn pg_answer_lost(&mut self, uid: UpstreamId, reason: &str) -> bool {
        if self.config.close_on_upstream_loss {
            return false;
        }
        let Some(u) = self.upstreams.pg(uid) else {
            return false;
        };
        let route = &self.config.routes[u.core.route];
        if route.pool_mode != PoolMode::Transaction || u.passthrough.is_some() {
            return false;
        }
        // Inside a transaction the server rolled it back: the client is answered as in an
        // aborted transaction block until it ends it (see `lost_tx`).
        let ending = u
            .core
            .client()
            .and_then(|cid| self.clients.pg(cid))
            .is_some_and(|c| c.ending_tx);
        // A request ending the transaction leaves none behind, whatever happened to it.
        let in_tx = u.tx_status != b'I' && !ending;
        if in_tx && !u.followers.is_empty() {
            return false;
        }
        let (message, status) = if in_tx {
            (
                format!(
                    "server connection lost: {reason}; the transaction was rolled back, end it \
                     with ROLLBACK and the session goes on"
                ),
                TransactionStatus::Failed,
            )
        } else {
            (
                format!(
                    "server connection lost: {reason}; this request failed, the session goes on"
                ),
                TransactionStatus::Idle,
            )
        };
        let mut error = BytesMut::new();
        let mut ready = BytesMut::new();
        let encoded =
            encode_error_response(&mut error, "ERROR", sqlstate::CONNECTION_FAILURE, &message)
                .and_then(|()| BackendMessage::ReadyForQuery(status).encode(&mut ready));
        if encoded.is_err() {
            return false;
        }
        let Some(units) = u.expect.lost_units(&error, &ready) else {
            return false;
        };
        let units_empty = units.is_empty();
        let leader = u.core.client();
        let followers: Vec<Option<ClientId>> = u.followers.iter().copied().collect();
        // Without followers every unit is the attached client's; with them, one unit each.
        let owners: Vec<Option<ClientId>> = if followers.is_empty() {
            vec![leader; units.len()]
        } else {
            std::iter::once(leader)
                .chain(followers.iter().copied())
                .collect()
        };
        if owners.len() != units.len() {
            return false;
        }
        let answerable = owners.iter().flatten().all(|&cid| {
            self.clients
                .pg(cid)
                .is_none_or(|c| c.core.pins == 0 && c.passthrough.is_none())
        });
        if !answerable {
            return false;
        }
        for (owner, answer) in owners.into_iter().zip(units) {
            let Some(cid) = owner else {
                continue;
            };
            if let Some(c) = self.clients.pg_mut(cid) {
                c.ending_tx = false;
            }
            if let Some(held) = self.clients.pg_mut(cid).and_then(|c| c.held.take()) {
                self.send_client(cid, held.freeze());
            }
            self.send_client(cid, answer.freeze());
        }
        if let Some(u) = self.upstreams.pg_mut(uid) {
            u.followers.clear();
        }
        if in_tx {
            // Without a request on the server, the client hears of the loss at its next one.
            let told = !units_empty;
            if let Some(c) = leader.and_then(|cid| self.clients.pg_mut(cid)) {
                c.lost_tx = Some(if told {
                    super::lost_tx::LostTx::default()
                } else {
                    super::lost_tx::LostTx::unannounced(message)
                });
                c.pending.clear();
            }
        }
        for cid in followers.into_iter().flatten() {
            let Some(c) = self.clients.pg_mut(cid) else {
                continue;
            };
            c.queued_on = None;
            c.unit = None;
            self.pools[c.core.route].deactivate();
            if !c.core.buf.is_empty() {
                self.ready.push_back(cid);
            }
        }
        true
    }
}
