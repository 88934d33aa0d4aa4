//! Cross-client pipelining for MySQL: while every upstream of a full pool is busy, a waiting
//! client's one autocommit command goes out right behind another client's on a busy upstream.
//!
//! A server runs the commands of a connection in order and answers them in order (Protocol
//! Basics, "Command Phase": one response per command), so each answer reaches its own client.
//! Only commands that leave no session state qualify: a single SELECT, INSERT, UPDATE, DELETE
//! or REPLACE (text or prepared) from a client whose session state equals the upstream's, in
//! autocommit mode, behind a request of the same kind sent at most [`FRESH_MS`] ago.
//!
//! A stored function can still change the session where the lexer sees none. A tracked change
//! is noted on the upstream (and replayed for whoever lands there next), though the commands
//! already queued behind run with it; an untracked one strands its client, which is failed
//! rather than let go on without it, and the connection is not reused.

use super::commands::peek_command;
use crate::mux::engine::Engine;
use crate::mux::ids::{ClientId, UpstreamId};
use crate::mux::session::UpPhase;
use crate::mysql::command::code::{COM_QUERY, COM_STMT_EXECUTE};
use crate::mysql::command::{CURSOR_TYPE_NO_CURSOR, MARIADB_LAST_STATEMENT_ID};
use crate::mysql::errcode;
use crate::mysql::sql::is_autocommit_statement;
use crate::mysql::StatusFlags;

/// Requests queue only behind one sent at most this long ago (an older one may be slow).
const FRESH_MS: u64 = 2;

impl Engine {
    /// Whether client `cid`'s buffer holds exactly one autocommit command that can run on
    /// upstream `uid` as it is (no state to replay, statement prepared there).
    pub(crate) fn my_is_pipeline_unit(&self, cid: ClientId, uid: UpstreamId) -> bool {
        let (Some(c), Some(u)) = (self.clients.my(cid), self.upstreams.my(uid)) else {
            return false;
        };
        if c.core.pins != 0 || c.uploading || c.held || c.failed_prepare.is_some() {
            return false;
        }
        let buf = &c.core.buf;
        let Ok(Some(frame)) = peek_command(buf, self.limits.max_message) else {
            return false;
        };
        if frame.wire_len != buf.len() || c.state != u.state {
            return false;
        }
        let autocommit_on = c
            .state
            .vars
            .get("autocommit")
            .is_none_or(|v| v.eq_ignore_ascii_case(b"ON") || &v[..] == b"1");
        if !autocommit_on {
            return false;
        }
        let payload = &buf[4..];
        match frame.code {
            COM_QUERY => is_autocommit_statement(&payload[1..]),
            COM_STMT_EXECUTE => {
                let (Some(id), Some(&flags)) = (super::prepared::stmt_id(payload), payload.get(5))
                else {
                    return false;
                };
                if id == MARIADB_LAST_STATEMENT_ID || flags & 0x07 != CURSOR_TYPE_NO_CURSOR {
                    return false;
                }
                c.stmts
                    .get(&id)
                    .is_some_and(|s| s.entry.autocommit && u.prepared.contains(s.entry.id))
            }
            _ => false,
        }
    }

    /// Whether the attached client may send its next command on `uid` now: not while other
    /// clients' commands are queued behind its own (they must stay in order). Notes whether
    /// others may queue behind this one.
    pub(crate) fn my_may_send(&mut self, cid: ClientId, uid: UpstreamId, wire_len: usize) -> bool {
        let now = self.now;
        let depth = self.config.pipeline_depth;
        let unit = depth > 0
            && self.upstreams.my(uid).is_some_and(|u| u.owed.is_empty())
            && self
                .clients
                .my(cid)
                .is_some_and(|c| c.core.buf.len() == wire_len)
            && self.my_is_pipeline_unit(cid, uid);
        let Some(u) = self.upstreams.my_mut(uid) else {
            return false;
        };
        if !u.followers.is_empty() {
            return false;
        }
        // Only a unit sent on an otherwise idle connection lets others queue behind it; any
        // other command (a state change, or one behind muxql's own replay) stops them.
        u.pipeline_ok = unit;
        if u.owed.is_empty() {
            u.busy_since = now;
        }
        true
    }

    /// The busy upstream of `route` with the fewest followers that can take `cid`'s command.
    pub(crate) fn my_pipeline_target(
        &self,
        route: usize,
        cid: ClientId,
        depth: usize,
    ) -> Option<UpstreamId> {
        let now = self.now;
        self.pools[route]
            .members()
            .iter()
            .filter_map(|&id| Some((id, self.upstreams.my(id)?)))
            .filter(|(id, u)| {
                u.pipeline_ok
                    && now.saturating_sub(u.busy_since) <= FRESH_MS
                    && u.core.paused == 0
                    && matches!(u.core.phase, UpPhase::Attached(_))
                    && u.followers.len() < depth
                    && !u.tx_pending
                    && !u.status.contains(StatusFlags::SERVER_STATUS_IN_TRANS)
                    && self.my_is_pipeline_unit(cid, *id)
            })
            .min_by_key(|(_, u)| u.followers.len())
            .map(|(id, _)| id)
    }

    /// Queues waiting client `cid` behind upstream `uid` and sends its command.
    pub(crate) fn my_follow(&mut self, cid: ClientId, uid: UpstreamId) {
        let now = self.now;
        let Some(c) = self.clients.my_mut(cid) else {
            return;
        };
        let pool = &mut self.pools[c.core.route];
        pool.serve(c.core.waiting_since.take().unwrap_or(now), now);
        pool.stats.pipelined += 1;
        c.queued_on = Some(uid);
        let wire = c.core.buf.split().freeze();
        let Some(&code) = wire.get(4) else {
            return;
        };
        if let Some(u) = self.upstreams.my_mut(uid) {
            u.followers.push_back(cid);
        }
        let payload = wire.slice(4..);
        self.my_command(cid, Some(uid), code, wire, payload);
    }

    /// The response at the front of `uid`'s queue belongs to a client other than the attached
    /// one: the attached client is done, and that client (or nobody, when it left) is served.
    pub(crate) fn my_turn(&mut self, uid: UpstreamId) {
        let Some(u) = self.upstreams.my_mut(uid) else {
            return;
        };
        let Some(owner) = u.owed.front().and_then(|o| o.owner()) else {
            return;
        };
        let old = u.core.client();
        if old == Some(owner) {
            return;
        }
        u.followers.retain(|&f| f != owner);
        u.busy_since = self.now;
        let alive = self.clients.my(owner).is_some();
        let Some(u) = self.upstreams.my_mut(uid) else {
            return;
        };
        u.core.phase = if alive {
            UpPhase::Attached(owner)
        } else {
            UpPhase::Resetting
        };
        let route = u.core.route;
        let pool = &mut self.pools[route];
        match (old.is_some(), alive) {
            (true, false) => pool.detach(false),
            (false, true) => pool.attach(),
            _ => {}
        }
        let mut stranded = None;
        if let Some(c) = old.and_then(|o| self.clients.my_mut(o)) {
            c.core.upstream = None;
            self.pools[route].deactivate();
            if c.core.pins != 0 {
                // Its last statement left state only this connection has (reported after
                // the followers were sent): it cannot follow the client anywhere.
                stranded = old;
            } else if !c.core.buf.is_empty() {
                self.ready.extend(old);
            }
        }
        if let Some(c) = self.clients.my_mut(owner) {
            c.queued_on = None;
            c.core.upstream = Some(uid);
            if !c.core.buf.is_empty() {
                self.ready.push_back(owner);
            }
        }
        if let Some(stranded) = stranded {
            if let Some(u) = self.upstreams.my_mut(uid) {
                u.core.broken = true;
            }
            self.my_fail_client(
                stranded,
                errcode::ER_CONNECTION_KILLED,
                "the session state this statement created stayed on a server connection \
                 other clients' statements were already queued on",
            );
        }
    }
}
