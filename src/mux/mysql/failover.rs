//! An upstream lost under commands: each client with a command on it gets an ERR packet for
//! that command and keeps its connection and session (variables, schema, prepared
//! statements); its next command waits for the pool to refill. An autocommit command gets 1317
//! (query interrupted, as after KILL QUERY); inside a transaction, which the server rolled back,
//! 1213 (40001, as after a deadlock: restart the transaction), and a client idle in its
//! transaction gets it for its next statement. A client whose session lived on the server
//! (pinned state, a LOCAL INFILE upload) is closed as before; so is everyone with
//! `close_on_upstream_loss`.

use crate::mux::config::PoolMode;
use crate::mux::engine::Engine;
use crate::mux::ids::UpstreamId;
use crate::mysql::errcode::{ER_LOCK_DEADLOCK, ER_QUERY_INTERRUPTED};
use crate::mysql::StatusFlags;

use super::client::err_packet;
use super::upstream::Owed;

impl Engine {
    /// Answers every client with a command on lost upstream `uid` (the attached one and those
    /// pipelined behind it) and takes the followers off it. Returns false, answering nobody,
    /// when one of them cannot be answered that way: the caller then closes them.
    pub(crate) fn my_answer_lost(&mut self, uid: UpstreamId, reason: &str) -> bool {
        if self.config.close_on_upstream_loss {
            return false;
        }
        let Some(u) = self.upstreams.my(uid) else {
            return false;
        };
        let route = &self.config.routes[u.core.route];
        // Inside a transaction the server rolled it back: its command fails as after a
        // deadlock (the whole transaction is gone, the session goes on outside it). Its
        // characteristics (`SET TRANSACTION`) went with it; waiting for the next transaction,
        // they live on the server.
        let in_tx = u.status.contains(StatusFlags::SERVER_STATUS_IN_TRANS);
        if route.pool_mode != PoolMode::Transaction
            || (u.tx_pending && !in_tx)
            || (in_tx && !u.followers.is_empty())
        {
            return false;
        }
        // An ERR can only stand where the server could have sent one.
        let clean = u.owed.iter().all(|owed| match owed {
            Owed::Client { reader, .. } => reader.may_end_with_error(),
            _ => true,
        });
        if !clean {
            return false;
        }
        let owners = u
            .core
            .client()
            .into_iter()
            .chain(u.followers.iter().copied());
        let answerable = owners.clone().all(|cid| {
            self.clients
                .my(cid)
                .is_none_or(|c| c.core.pins == 0 && !c.uploading && !c.held)
        });
        if !answerable {
            return false;
        }
        let (code, message) = if in_tx {
            (
                ER_LOCK_DEADLOCK,
                format!(
                    "server connection lost: {reason}; the transaction was rolled back, try \
                     restarting transaction"
                ),
            )
        } else {
            (
                ER_QUERY_INTERRUPTED,
                format!(
                    "server connection lost: {reason}; this statement failed, the session goes on"
                ),
            )
        };
        let leader = u.core.client();
        let answers: Vec<_> = u
            .owed
            .iter()
            .filter_map(|owed| match owed {
                Owed::Client { owner, reader, .. } => {
                    Some((*owner, err_packet(code, &message, reader.next_seq())))
                }
                Owed::Local(owner, bytes) => Some((*owner, bytes.clone())),
                Owed::Own { .. } | Owed::Capture { .. } => None,
            })
            .collect();
        let followers: Vec<_> = u.followers.iter().copied().collect();
        // Without a command there, the client hears of it at its next one.
        let told = answers.iter().any(|(owner, _)| Some(*owner) == leader);
        if in_tx && !told {
            if let Some(c) = leader.and_then(|cid| self.clients.my_mut(cid)) {
                c.lost_tx = Some(message);
            }
        }
        for (owner, bytes) in answers {
            if self.clients.my(owner).is_some() {
                self.send_client(owner, bytes);
            }
        }
        if let Some(u) = self.upstreams.my_mut(uid) {
            u.followers.clear();
        }
        for cid in followers {
            let Some(c) = self.clients.my_mut(cid) else {
                continue;
            };
            c.queued_on = None;
            self.pools[c.core.route].deactivate();
            if !c.core.buf.is_empty() {
                self.ready.push_back(cid);
            }
        }
        true
    }
}
