//! Prepared statement commands (COM_STMT_*): client statement ids mapped to each upstream's
//! own, statements prepared again lazily where a client lands, and parameter types resent to
//! a server that does not hold this client's (COM_STMT_EXECUTE, "new_params_bind_flag").

use bytes::{BufMut, Bytes, BytesMut};

use super::client::{err_packet, packet};
use super::commands::pin_bit_cursor;
use super::responses::PrepareFor;
use super::statements::ClientStmt;
use crate::mux::engine::Engine;
use crate::mux::ids::{ClientId, UpstreamId};
use crate::mysql::command::code::*;
use crate::mysql::command::{CURSOR_TYPE_NO_CURSOR, MARIADB_LAST_STATEMENT_ID};
use crate::mysql::errcode;

/// Offset of the null bitmap in a COM_STMT_EXECUTE payload (command, statement id, flags,
/// iteration count).
const EXECUTE_PARAMS_AT: usize = 10;

/// The statement id a COM_STMT_* payload names.
pub(crate) fn stmt_id(payload: &[u8]) -> Option<u32> {
    match payload.get(1..5) {
        Some(&[a, b, c, d]) => Some(u32::from_le_bytes([a, b, c, d])),
        _ => None,
    }
}

/// Offset of new_params_bind_flag in a COM_STMT_EXECUTE payload for `params` parameters.
fn flag_offset(params: usize) -> usize {
    EXECUTE_PARAMS_AT + params.div_ceil(8)
}

/// The parameter types block of a COM_STMT_EXECUTE payload for `params` parameters, with the
/// offset of its new_params_bind_flag; `None` when the payload sends no types.
fn sent_types(payload: &[u8], params: usize) -> (usize, Option<&[u8]>) {
    let flag_at = flag_offset(params);
    match payload.get(flag_at) {
        Some(1) => (flag_at, payload.get(flag_at + 1..flag_at + 1 + 2 * params)),
        _ => (flag_at, None),
    }
}

impl Engine {
    /// Before a statement command runs on `uid`: prepares its statement there first when the
    /// upstream lacks it, and holds the client's input until then. Returns whether it did.
    pub(crate) fn my_prepare_first(&mut self, cid: ClientId, uid: UpstreamId, code: u8) -> bool {
        if !matches!(
            code,
            COM_STMT_EXECUTE | COM_STMT_SEND_LONG_DATA | COM_STMT_FETCH
        ) {
            return false;
        }
        let (Some(c), Some(u)) = (self.clients.my(cid), self.upstreams.my_mut(uid)) else {
            return false;
        };
        if c.failed_prepare.is_some() {
            // The last try failed: the command gets that error, not another try.
            return false;
        }
        let Some(raw_id) = c.core.buf.get(4..).and_then(stmt_id) else {
            return false;
        };
        let last = raw_id == MARIADB_LAST_STATEMENT_ID;
        let id = if last { c.last_stmt } else { raw_id };
        let Some(stmt) = c.stmts.get(&id) else {
            return false;
        };
        if last && u.last_prepare == Some(stmt.entry.id) {
            // Still being prepared there: the server resolves "the last statement" itself.
            return false;
        }
        if u.prepared.touch(stmt.entry.id).is_some() {
            return false;
        }
        let entry = stmt.entry.clone();
        let mut p = BytesMut::with_capacity(entry.sql.len() + 1);
        p.put_u8(COM_STMT_PREPARE);
        p.put_slice(&entry.sql);
        self.my_send_own(uid, &p, Some(entry));
        if let Some(c) = self.clients.my_mut(cid) {
            c.held = true;
        }
        true
    }

    /// COM_STMT_PREPARE: a new statement id for the client, prepared on its upstream.
    pub(crate) fn my_prepare(
        &mut self,
        cid: ClientId,
        uid: Option<UpstreamId>,
        wire: Bytes,
        payload: Bytes,
    ) -> bool {
        let Some(c) = self.clients.my_mut(cid) else {
            return false;
        };
        let entry = self.pools[c.core.route]
            .ext
            .my()
            .statements
            .intern(payload.slice(1..));
        c.last_stmt = match c.last_stmt.wrapping_add(1) {
            0 | MARIADB_LAST_STATEMENT_ID => 1,
            n => n,
        };
        let id = c.last_stmt;
        let prepare = PrepareFor {
            client_id: id,
            entry: entry.clone(),
        };
        if let Some(old) = c.stmts.insert(id, ClientStmt { entry, types: None }) {
            self.pools[c.core.route]
                .ext
                .my()
                .statements
                .release(&old.entry);
        }
        self.my_forward(cid, uid, COM_STMT_PREPARE, wire, Some(prepare));
        true
    }

    /// COM_STMT_CLOSE: forgotten locally; the server statement stays cached on its upstreams.
    pub(crate) fn my_close_stmt(&mut self, cid: ClientId, id: u32) {
        let Some(c) = self.clients.my_mut(cid) else {
            return;
        };
        if let Some(s) = c.stmts.remove(&id) {
            self.pools[c.core.route]
                .ext
                .my()
                .statements
                .release(&s.entry);
        }
    }

    /// COM_STMT_RESET: sent on when the upstream holds the statement, answered locally
    /// otherwise (nothing of it is buffered anywhere).
    pub(crate) fn my_stmt_reset(
        &mut self,
        cid: ClientId,
        uid: Option<UpstreamId>,
        payload: &[u8],
    ) -> bool {
        let known = stmt_id(payload).and_then(|id| {
            let c = self.clients.my(cid)?;
            Some(c.stmts.get(&id)?.entry.id)
        });
        let Some(entry) = known else {
            let answer = err_packet(
                errcode::ER_UNKNOWN_STMT_HANDLER,
                "Unknown prepared statement handler given to mysqld_stmt_reset",
                1,
            );
            self.my_answer(cid, uid, answer);
            return true;
        };
        let server = uid
            .and_then(|u| self.upstreams.my_mut(u))
            .and_then(|u| u.prepared.touch(entry).map(|s| s.server_id));
        match server {
            Some(server_id) => {
                let mut p = BytesMut::from(payload);
                p[1..5].copy_from_slice(&server_id.to_le_bytes());
                self.my_forward(cid, uid, COM_STMT_RESET, packet(&p, 0), None);
            }
            None => {
                let answer = self.my_ok(cid, uid);
                self.my_answer(cid, uid, answer);
            }
        }
        true
    }

    /// COM_STMT_EXECUTE, COM_STMT_SEND_LONG_DATA, COM_STMT_FETCH: the client's statement id
    /// becomes the upstream's; parameter types the server lacks for this client are added.
    pub(crate) fn my_stmt_command(
        &mut self,
        cid: ClientId,
        uid: Option<UpstreamId>,
        code: u8,
        payload: &[u8],
    ) -> bool {
        let answers = code != COM_STMT_SEND_LONG_DATA;
        let Some(c) = self.clients.my_mut(cid) else {
            return false;
        };
        if let Some(err) = c.failed_prepare.take() {
            if answers {
                self.my_answer(cid, uid, packet(&err, 1));
            }
            return true;
        }
        let Some(uid) = uid else {
            return false;
        };
        let Some(raw_id) = stmt_id(payload) else {
            self.my_fail_client(cid, errcode::ER_MALFORMED_PACKET, "statement id missing");
            return false;
        };
        let route = c.core.route;
        let cursor = code == COM_STMT_EXECUTE
            && payload
                .get(5)
                .is_some_and(|&f| f & 0x07 != CURSOR_TYPE_NO_CURSOR);
        if code == COM_STMT_SEND_LONG_DATA || cursor {
            // Long data and cursors live on one server connection.
            self.pools[route].pin(c.core.pins == 0);
            c.core.pins |= pin_bit_cursor();
        }
        let last = raw_id == MARIADB_LAST_STATEMENT_ID;
        let id = if last { c.last_stmt } else { raw_id };
        let Some(stmt) = c.stmts.get_mut(&id) else {
            if answers {
                let msg = format!(
                    "Unknown prepared statement handler ({raw_id}) given to mysqld_stmt_execute"
                );
                let answer = err_packet(errcode::ER_UNKNOWN_STMT_HANDLER, &msg, 1);
                self.my_answer(cid, Some(uid), answer);
            }
            return true;
        };
        let params = usize::from(stmt.entry.params.get());
        // With parameters, the null bitmap and new_params_bind_flag must follow.
        if code == COM_STMT_EXECUTE && params > 0 && payload.len() <= flag_offset(params) {
            let msg = "COM_STMT_EXECUTE ends before its parameters";
            self.my_fail_client(cid, errcode::ER_MALFORMED_PACKET, msg);
            return false;
        }
        let mut out: Option<BytesMut> = None;
        let Some(u) = self.upstreams.my_mut(uid) else {
            return false;
        };
        let pending_prepare = last && u.last_prepare == Some(stmt.entry.id);
        if code == COM_STMT_EXECUTE && params > 0 {
            let (flag_at, types) = sent_types(payload, params);
            match types {
                Some(t) => {
                    let t = Bytes::copy_from_slice(t);
                    stmt.types = Some(t.clone());
                    if let Some(s) = u.prepared.touch(stmt.entry.id) {
                        s.types = Some(t);
                    }
                }
                None => {
                    let held = u
                        .prepared
                        .touch(stmt.entry.id)
                        .and_then(|s| s.types.clone());
                    if let (Some(mine), false) = (&stmt.types, held.as_ref() == stmt.types.as_ref())
                    {
                        // The server holds another client's types (or none): send ours.
                        let mut p = BytesMut::with_capacity(payload.len() + mine.len());
                        p.put_slice(payload.get(..flag_at).unwrap_or_default());
                        p.put_u8(1);
                        p.put_slice(mine);
                        p.put_slice(payload.get(flag_at + 1..).unwrap_or_default());
                        if let Some(s) = u.prepared.touch(stmt.entry.id) {
                            s.types = Some(mine.clone());
                        }
                        out = Some(p);
                    }
                }
            }
        }
        if !pending_prepare {
            let Some(server_id) = u.prepared.touch(stmt.entry.id).map(|s| s.server_id) else {
                // my_prepare_first prepares it before the command is taken; should that ever
                // not hold, the client gets an error rather than silence.
                if answers {
                    let msg = format!("Unknown prepared statement handler ({raw_id})");
                    let answer = err_packet(errcode::ER_UNKNOWN_STMT_HANDLER, &msg, 1);
                    self.my_answer(cid, Some(uid), answer);
                }
                return true;
            };
            let p = out.get_or_insert_with(|| BytesMut::from(payload));
            p[1..5].copy_from_slice(&server_id.to_le_bytes());
        }
        let bytes = match out {
            Some(p) => packet(&p, 0),
            None => packet(payload, 0),
        };
        u.last_prepare = None;
        if answers {
            self.my_forward(cid, Some(uid), code, bytes, None);
        } else {
            self.actions
                .push_back(crate::mux::Action::SendUpstream { id: uid, bytes });
        }
        true
    }
}
