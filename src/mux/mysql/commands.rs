//! The relay of a ready MySQL client's commands: answered locally where muxql can, sent to the
//! client's upstream otherwise (waiting for one first), with statement ids rewritten.
//!
//! A command is one logical packet with sequence id 0 (Protocol Basics, "Command Phase");
//! commands that pass unchanged go upstream as a zero-copy slice of the read buffer.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::client::{err_packet, ok_packet, packet};
use super::prepared::stmt_id;
use super::responses::PrepareFor;
use super::upstream::Owed;
use crate::mux::config::{PinPolicy, PoolMode};
use crate::mux::engine::Engine;
use crate::mux::ids::{ClientId, UpstreamId};
use crate::mux::Action;
use crate::mysql::command::code::*;
use crate::mysql::errcode;
use crate::mysql::packet::{PacketHeader, HEADER_LEN, MAX_PACKET_PAYLOAD};
use crate::mysql::response::EOF_HEADER;
use crate::mysql::sql::{for_each_effect, Effect, PinReason};
use crate::mysql::PacketCodec;
use crate::mysql::{CapabilityFlags, StatusFlags};
use crate::wire::{Error, Limits};

/// The pin bit of a statement that changed session state no tracker describes.
pub(crate) const UNTRACKED_PIN: u16 = 1 << 15;

/// The pin bit of an open cursor or of long data sent for a statement.
const CURSOR_PIN: u16 = 1 << 14;

/// The bit of a pin reason in the client's pin set.
pub(crate) fn pin_bit(reason: PinReason) -> u16 {
    1 << (reason as u16)
}

/// The bit of an open cursor or long data in the client's pin set.
pub(crate) fn pin_bit_cursor() -> u16 {
    CURSOR_PIN
}

/// A complete command at the front of a client's buffer.
pub(crate) struct CommandFrame {
    /// Bytes it takes on the wire.
    pub(crate) wire_len: usize,
    /// Its command byte.
    pub(crate) code: u8,
}

/// Finds the complete command at the front of `buf`, checking sequence ids (from 0) and the
/// size limit on each header as it arrives.
pub(crate) fn peek_command(buf: &[u8], max: usize) -> Result<Option<CommandFrame>, Error> {
    let limits = Limits {
        max_message: max,
        ..Limits::default()
    };
    let Some(wire_len) = PacketCodec::new(limits, 0).frame_len(buf)? else {
        return Ok(None);
    };
    // An empty payload has no command byte (the byte after it belongs to the next packet).
    match buf.get(HEADER_LEN).filter(|_| wire_len > HEADER_LEN) {
        Some(&code) => Ok(Some(CommandFrame { wire_len, code })),
        None => Err(Error::Truncated("command")),
    }
}

/// How many physical packets `wire` holds.
fn packet_count(wire: &[u8]) -> usize {
    let mut rest = wire;
    let mut count = 0;
    while let Some(h) = PacketHeader::peek(rest) {
        count += 1;
        rest = rest.get(HEADER_LEN + h.len..).unwrap_or_default();
    }
    count
}

/// The logical payload of a command cut from the wire (joined when it spanned packets).
fn payload_of(wire: &Bytes) -> Bytes {
    match PacketHeader::peek(wire) {
        Some(h) if h.len < MAX_PACKET_PAYLOAD => wire.slice(HEADER_LEN..),
        _ => {
            let mut joined = BytesMut::with_capacity(wire.len());
            let mut rest = &wire[..];
            while let Some(h) = PacketHeader::peek(rest) {
                let end = (HEADER_LEN + h.len).min(rest.len());
                joined.put_slice(&rest[HEADER_LEN..end]);
                rest = &rest[end..];
            }
            joined.freeze()
        }
    }
}

/// Whether a command needs an upstream (the rest muxql answers or drops itself).
fn needs_upstream(code: u8) -> bool {
    matches!(
        code,
        COM_QUERY
            | COM_INIT_DB
            | COM_STMT_PREPARE
            | COM_STMT_EXECUTE
            | COM_STMT_SEND_LONG_DATA
            | COM_STMT_FETCH
            | COM_FIELD_LIST
            | COM_STATISTICS
            | COM_DEBUG
    )
}

/// Whether command `code` would have run inside the client's transaction and answers (the one
/// that is told its transaction was lost).
fn runs_in_transaction(code: u8) -> bool {
    matches!(
        code,
        COM_QUERY | COM_STMT_EXECUTE | COM_STMT_PREPARE | COM_STMT_FETCH | COM_INIT_DB
    )
}

impl Engine {
    /// Handles a ready client's buffered commands, as far as its upstream allows.
    pub(crate) fn my_relay_client(&mut self, cid: ClientId) {
        let max = self.limits.max_message;
        loop {
            let Some(c) = self.clients.my_mut(cid) else {
                return;
            };
            if c.uploading {
                if !self.my_upload(cid) {
                    return;
                }
                continue;
            }
            if c.held || c.queued_on.is_some() {
                return;
            }
            let frame = match peek_command(&c.core.buf, max) {
                Ok(Some(f)) => f,
                Ok(None) => return,
                Err(Error::TooLarge { .. }) => {
                    return self.my_fail_client(
                        cid,
                        errcode::ER_NET_PACKET_TOO_LARGE,
                        "Got a packet bigger than 'max_allowed_packet' bytes",
                    )
                }
                Err(e) => {
                    return self.my_fail_client(cid, errcode::ER_MALFORMED_PACKET, &e.to_string())
                }
            };
            if c.lost_tx.is_some() && runs_in_transaction(frame.code) {
                let message = c.lost_tx.take().unwrap_or_default();
                c.core.buf.advance(frame.wire_len);
                self.send_client(cid, err_packet(errcode::ER_LOCK_DEADLOCK, &message, 1));
                continue;
            }
            let upstream = c.core.upstream;
            if needs_upstream(frame.code) && upstream.is_none() && c.failed_prepare.is_none() {
                return self.wait_for_upstream(cid);
            }
            if let Some(uid) = upstream {
                if !self.my_may_send(cid, uid, frame.wire_len) {
                    return;
                }
                let owes = self.upstreams.my(uid).is_some_and(|u| !u.owed.is_empty());
                if frame.code == COM_CHANGE_USER && owes {
                    // Its answer must follow the answers still owed.
                    return;
                }
                if self.my_prepare_first(cid, uid, frame.code) {
                    return;
                }
            }
            let Some(c) = self.clients.my_mut(cid) else {
                return;
            };
            let wire = c.core.buf.split_to(frame.wire_len).freeze();
            let payload = payload_of(&wire);
            if !self.my_command(cid, upstream, frame.code, wire, payload) {
                return;
            }
        }
    }

    /// Handles one command; returns whether the client's next command may follow now.
    pub(crate) fn my_command(
        &mut self,
        cid: ClientId,
        uid: Option<UpstreamId>,
        code: u8,
        wire: Bytes,
        payload: Bytes,
    ) -> bool {
        match code {
            COM_QUIT => {
                self.close_client(cid);
                false
            }
            COM_PING => {
                let answer = self.my_ok(cid, uid);
                self.my_answer(cid, uid, answer);
                true
            }
            COM_SET_OPTION => {
                let off = match payload.get(1..) {
                    Some([0, 0]) => false,
                    Some([1, 0]) => true,
                    _ => {
                        let msg = "Unknown option to COM_SET_OPTION";
                        let answer = err_packet(errcode::ER_UNKNOWN_COM_ERROR, msg, 1);
                        self.my_answer(cid, uid, answer);
                        return true;
                    }
                };
                if let Some(c) = self.clients.my_mut(cid) {
                    c.state.single_statements = off;
                }
                if let Some(u) = uid.and_then(|u| self.upstreams.my_mut(u)) {
                    // The client's own server connection takes the option now; others get
                    // it when the client lands there.
                    u.state.single_statements = off;
                    self.my_forward(cid, uid, code, wire, None);
                    return true;
                }
                let status = self.my_status(uid);
                let eof = [
                    EOF_HEADER,
                    0,
                    0,
                    status.bits() as u8,
                    (status.bits() >> 8) as u8,
                ];
                self.my_answer(cid, uid, packet(&eof, 1));
                true
            }
            COM_STMT_CLOSE => {
                if let Some(id) = stmt_id(&payload) {
                    self.my_close_stmt(cid, id);
                }
                true
            }
            COM_STMT_RESET => self.my_stmt_reset(cid, uid, &payload),
            COM_RESET_CONNECTION => self.my_reset_connection(cid, uid),
            COM_CHANGE_USER => self.my_change_user(cid, &payload),
            COM_PROCESS_KILL => {
                let id = stmt_id(&payload).map_or(0, u64::from);
                self.my_kill(cid, uid, false, id);
                true
            }
            COM_QUERY => self.my_query(cid, uid, wire, &payload),
            COM_STMT_PREPARE => self.my_prepare(cid, uid, wire, payload),
            COM_STMT_EXECUTE | COM_STMT_SEND_LONG_DATA | COM_STMT_FETCH => {
                self.my_stmt_command(cid, uid, code, &payload)
            }
            COM_INIT_DB | COM_FIELD_LIST | COM_STATISTICS | COM_DEBUG => {
                self.my_forward(cid, uid, code, wire, None);
                true
            }
            _ => {
                let msg = format!("Unknown command 0x{code:02x}");
                let answer = err_packet(errcode::ER_UNKNOWN_COM_ERROR, &msg, 1);
                self.my_answer(cid, uid, answer);
                true
            }
        }
    }

    /// The status flags a local answer carries.
    pub(crate) fn my_status(&self, uid: Option<UpstreamId>) -> StatusFlags {
        uid.and_then(|u| self.upstreams.my(u))
            .map_or(StatusFlags::SERVER_STATUS_AUTOCOMMIT, |u| {
                u.status
                    & (StatusFlags::SERVER_STATUS_AUTOCOMMIT | StatusFlags::SERVER_STATUS_IN_TRANS)
            })
    }

    /// A local OK for client `cid`.
    pub(crate) fn my_ok(&self, cid: ClientId, uid: Option<UpstreamId>) -> Bytes {
        let caps = self
            .clients
            .my(cid)
            .map_or(CapabilityFlags::CLIENT_PROTOCOL_41, |c| c.caps);
        ok_packet(self.my_status(uid), 1, caps)
    }

    /// Sends a local answer in order: behind what the upstream still owes the client.
    pub(crate) fn my_answer(&mut self, cid: ClientId, uid: Option<UpstreamId>, bytes: Bytes) {
        if let Some(u) = uid.and_then(|u| self.upstreams.my_mut(u)) {
            if !u.owed.is_empty() {
                u.owed.push_back(Owed::Local(cid, bytes));
                return;
            }
        }
        self.send_client(cid, bytes);
    }

    /// Sends a client command upstream and expects its answer for the client.
    pub(crate) fn my_forward(
        &mut self,
        cid: ClientId,
        uid: Option<UpstreamId>,
        code: u8,
        wire: Bytes,
        prepare: Option<PrepareFor>,
    ) {
        let limits = self.limits;
        let Some(uid) = uid else {
            return;
        };
        let Some(u) = self.upstreams.my_mut(uid) else {
            return;
        };
        let preparing = prepare.as_ref().map(|p| p.entry.id);
        // The answer is numbered after the command's packets (several when 16 MB or more).
        let first_seq = packet_count(&wire) as u8;
        if let Some(reader) = u.reader(code, limits).map(|r| r.starting_at(first_seq)) {
            if !reader.is_complete() {
                u.owed.push_back(Owed::Client {
                    owner: cid,
                    reader,
                    prepare,
                    refused: None,
                    diagnostics: false,
                });
            }
        }
        u.last_prepare = preparing;
        self.pools[u.core.route].stats.queries += 1;
        self.actions.push_back(Action::SendUpstream {
            id: uid,
            bytes: wire,
        });
    }

    /// COM_QUERY: notes what the statement does to the session, then sends it.
    fn my_query(
        &mut self,
        cid: ClientId,
        uid: Option<UpstreamId>,
        wire: Bytes,
        payload: &[u8],
    ) -> bool {
        let sql = payload.get(1..).unwrap_or_default();
        let mut pins = 0u16;
        let mut unlock = false;
        let mut insert_id = false;
        let mut kill = None;
        for_each_effect(sql, |e| match e {
            Effect::Pin(r) => pins |= pin_bit(r),
            Effect::UnlockTables => unlock = true,
            Effect::LastInsertId => insert_id = true,
            Effect::Kill { query, id } => kill = Some((query, id)),
            Effect::PreviousResult => {}
        });
        if let Some((query, id)) = kill {
            self.my_kill(cid, uid, query, id);
            return true;
        }
        let Some(c) = self.clients.my_mut(cid) else {
            return false;
        };
        let route = c.core.route;
        let transaction_mode = self.config.routes[route].pool_mode == PoolMode::Transaction;
        if pins != 0 && transaction_mode && self.config.pin_policy == PinPolicy::Reject {
            let msg = "this statement keeps session state on one server connection, which the \
                       pool's reject policy refuses";
            let answer = err_packet(errcode::ER_NOT_SUPPORTED_YET, msg, 1);
            self.my_answer(cid, uid, answer);
            return true;
        }
        if unlock {
            let before = c.core.pins;
            c.core.pins &= !pin_bit(PinReason::LockTables);
            if before != 0 && c.core.pins == 0 {
                self.pools[route].unpin();
            }
        }
        if pins != 0 && transaction_mode {
            let c = self.clients.my_mut(cid).map(|c| &mut c.core);
            if let Some(core) = c {
                self.pools[route].pin(core.pins == 0);
                core.pins |= pins;
            }
        }
        if insert_id {
            if let Some(uid) = uid {
                self.my_replay_insert_id(uid, cid);
            }
        }
        // ROW_COUNT(), @@warning_count, @@error_count and SHOW WARNINGS / ERRORS read the
        // connection's previous statement, which may have been another client's: the client's
        // own values go into the text or answer the statement.
        if let Some(kind) = crate::mysql::sql::show_diagnostics(sql) {
            self.my_show_diagnostics(cid, uid, kind);
            return true;
        }
        let Some(row_count) = self.clients.my(cid).map(|c| c.row_count) else {
            return false;
        };
        let (warning_count, error_count) = self.my_diagnostic_counts(cid);
        let wire = match crate::mysql::sql::replace_previous_values(
            sql,
            row_count,
            warning_count,
            error_count,
        ) {
            Some(text) => {
                let mut p = Vec::with_capacity(text.len() + 1);
                p.push(COM_QUERY);
                p.extend_from_slice(&text);
                packet(&p, 0)
            }
            None => wire,
        };
        self.my_forward(cid, uid, COM_QUERY, wire, None);
        true
    }
}
