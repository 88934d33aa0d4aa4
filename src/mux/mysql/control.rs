//! Commands that act on sessions rather than data: COM_RESET_CONNECTION, KILL, and the
//! LOCAL INFILE upload a client streams in answer to its upstream.

use bytes::Bytes;

use super::client::{err_packet, MyPhase, NewLogin};
use super::state::MyState;
use super::upstream::{Owed, RESET_SQL};
use crate::mux::engine::Engine;
use crate::mux::ids::{ClientId, UpstreamId};
use crate::mux::session::UpPhase;
use crate::mux::Action;
use crate::mysql::command::code::{COM_QUERY, COM_RESET_CONNECTION};
use crate::mysql::command::Command;
use crate::mysql::errcode;
use crate::mysql::packet::{PacketHeader, HEADER_LEN};
use crate::mysql::{CapabilityFlags, StatusFlags};

impl Engine {
    /// COM_RESET_CONNECTION: the client's session starts afresh (state, statements, pins);
    /// an upstream it holds is reset too.
    pub(crate) fn my_reset_connection(&mut self, cid: ClientId, uid: Option<UpstreamId>) -> bool {
        let Some(c) = self.clients.my_mut(cid) else {
            return false;
        };
        let route = c.core.route;
        c.state = MyState::for_login(
            c.login_collation,
            c.caps.contains(CapabilityFlags::CLIENT_MULTI_STATEMENTS),
        );
        c.last_insert_id = 0;
        c.row_count = -1;
        c.warning_count = 0;
        c.warnings = None;
        // A reset ends any transaction: one lost with its upstream needs no telling any more.
        c.lost_tx = None;
        let pinned = std::mem::take(&mut c.core.pins) != 0;
        let stmts = std::mem::take(&mut c.stmts);
        let pool = &mut self.pools[route];
        if pinned {
            pool.unpin();
        }
        for (_, s) in stmts {
            pool.ext.my().statements.release(&s.entry);
        }
        if let Some(u) = uid.and_then(|u| self.upstreams.my_mut(u)) {
            u.state = MyState::default();
            u.prepared.clear();
            u.last_insert_id = 0;
            u.tx_pending = false;
            u.status = StatusFlags::SERVER_STATUS_AUTOCOMMIT;
            if let Some(uid) = uid {
                self.my_send_own(uid, &[COM_RESET_CONNECTION], None);
                let mut p = vec![COM_QUERY];
                p.extend_from_slice(RESET_SQL.as_bytes());
                self.my_send_own(uid, &p, None);
                self.my_replay_state(uid, cid);
            }
        }
        let answer = self.my_ok(cid, uid);
        self.my_answer(cid, uid, answer);
        true
    }

    /// COM_CHANGE_USER: the client leaves its route and session (an upstream it holds is
    /// reset) and logs in again as the user it names, against its greeting's scramble; a failed
    /// exchange closes it, as a server does.
    pub(crate) fn my_change_user(&mut self, cid: ClientId, payload: &Bytes) -> bool {
        let Some(caps) = self.clients.my(cid).map(|c| c.caps) else {
            return false;
        };
        let cu = match Command::parse(payload, caps) {
            Ok(Command::ChangeUser(cu)) => cu,
            Ok(_) => return false,
            Err(e) => {
                let msg = format!("bad COM_CHANGE_USER: {e}");
                self.my_fail_client(cid, errcode::ER_MALFORMED_PACKET, &msg);
                return false;
            }
        };
        self.my_leave_route(cid);
        let Some(c) = self.clients.my_mut(cid) else {
            return false;
        };
        c.login_seq = 1;
        c.phase = MyPhase::Handshake;
        self.logging_in += 1;
        let collation = cu
            .character_set
            .and_then(|cs| u8::try_from(cs).ok())
            .unwrap_or(c.login_collation);
        let login = self.my_new_login(
            NewLogin {
                username: &cu.user,
                database: &cu.database,
                caps,
                collation,
                plugin: cu.auth_plugin_name.as_deref(),
                response: &cu.auth_response,
            },
            cid,
        );
        match login {
            Ok((step, login)) => self.my_auth_outcome(cid, step, login),
            Err(e) => {
                self.my_fail_client(cid, errcode::ER_HANDSHAKE_ERROR, &e.to_string());
                false
            }
        }
    }

    /// A logged-in client leaves its route: statements, pins and its upstream go (the
    /// upstream is reset for the next client), as when it disconnects.
    fn my_leave_route(&mut self, cid: ClientId) {
        let Some(c) = self.clients.my_mut(cid) else {
            return;
        };
        let route = c.core.route;
        let upstream = c.core.upstream.take();
        let pinned = std::mem::take(&mut c.core.pins) != 0;
        let stmts = std::mem::take(&mut c.stmts);
        c.state = MyState::default();
        c.last_insert_id = 0;
        let pool = &mut self.pools[route];
        pool.leave();
        if pinned {
            pool.unpin();
        }
        for (_, s) in stmts {
            pool.ext.my().statements.release(&s.entry);
        }
        if let Some(uid) = upstream {
            pool.detach(true);
            if let Some(u) = self.upstreams.core_mut(uid) {
                u.phase = UpPhase::Resetting;
            }
            self.clean_after_client(uid, true);
        }
    }

    /// `KILL [QUERY] <id>` and COM_PROCESS_KILL, with muxql's connection ids: a connection
    /// kill closes that client; a query kill reaches the server thread running the target's
    /// statement, through a side connection. Only a client's own user may kill it.
    pub(crate) fn my_kill(&mut self, cid: ClientId, uid: Option<UpstreamId>, query: bool, id: u64) {
        let Some(user) = self.clients.my(cid).map(|c| c.user.clone()) else {
            return;
        };
        let target = u32::try_from(id)
            .ok()
            .and_then(|id| self.my.conn_index.get(&id).copied())
            .filter(|&t| {
                self.clients
                    .my(t)
                    .is_some_and(|c| matches!(c.phase, MyPhase::Ready))
            });
        let Some(target) = target else {
            let answer = err_packet(
                errcode::ER_NO_SUCH_THREAD,
                &format!("Unknown thread id: {id}"),
                1,
            );
            return self.my_answer(cid, uid, answer);
        };
        let Some(t) = self.clients.my(target) else {
            return;
        };
        let same_user = matches!((&t.user, &user), (Some(a), Some(b)) if a.name == b.name);
        if !same_user {
            let answer = err_packet(
                errcode::ER_KILL_DENIED_ERROR,
                &format!("You are not owner of thread {id}"),
                1,
            );
            return self.my_answer(cid, uid, answer);
        }
        if !query {
            if target == cid {
                return self.close_client(cid);
            }
            self.close_client(target);
        } else if let Some(tu) = t.core.upstream {
            let running = self.upstreams.my(tu).and_then(|u| {
                let runs = u.owed.iter().any(|o| matches!(o, Owed::Client { .. }));
                runs.then_some((u.core.route, u.thread_id))
            });
            if let Some((route, thread)) = running {
                self.my_side_kill(route, thread);
            }
        }
        let answer = self.my_ok(cid, uid);
        self.my_answer(cid, uid, answer);
    }

    /// Streams a client's LOCAL INFILE packets to its upstream until the empty packet that
    /// ends them; returns whether the upload ended.
    pub(crate) fn my_upload(&mut self, cid: ClientId) -> bool {
        let Some(c) = self.clients.my_mut(cid) else {
            return false;
        };
        let Some(uid) = c.core.upstream else {
            self.my_fail_client(cid, errcode::ER_MALFORMED_PACKET, "upload without a query");
            return false;
        };
        let mut pos = 0usize;
        let mut end_seq = None;
        while let Some(h) = c.core.buf.get(pos..).and_then(PacketHeader::peek) {
            let end = pos + HEADER_LEN + h.len;
            if c.core.buf.len() < end {
                break;
            }
            pos = end;
            if h.len == 0 {
                end_seq = Some(h.seq);
                break;
            }
        }
        if pos == 0 {
            return false;
        }
        let bytes: Bytes = c.core.buf.split_to(pos).freeze();
        self.actions
            .push_back(Action::SendUpstream { id: uid, bytes });
        let Some(seq) = end_seq else {
            return false;
        };
        c.uploading = false;
        if let Some(Some(Owed::Client { reader, .. })) =
            self.upstreams.my_mut(uid).map(|u| u.owed.front_mut())
        {
            if reader.resume(seq.wrapping_add(1)).is_err() {
                self.upstream_lost(uid, "upload out of step");
                return false;
            }
        }
        self.ready.push_back(cid);
        self.upstream_input(uid);
        true
    }
}
