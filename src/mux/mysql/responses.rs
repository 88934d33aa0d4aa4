//! The relay of an upstream's responses: each is delimited by the response reader, passed to
//! its client as zero-copy slices of the read buffer (or swallowed when muxql asked), and its
//! final OK/EOF tells what the session tracks and whether the upstream can go back to the pool.

use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use super::client::{err_packet, packet};
use super::statements::MyStmt;
use super::upstream::Owed;
use crate::mux::config::PoolMode;
use crate::mux::engine::Engine;
use crate::mux::ids::{ClientId, UpstreamId};
use crate::mux::session::UpPhase;
use crate::mux::Action;
use crate::mysql::command::code::COM_STMT_CLOSE;
use crate::mysql::errcode;
use crate::mysql::packet::{PacketHeader, HEADER_LEN};
use crate::mysql::response::{OkPacket, SessionStateChange, ERR_HEADER, OK_HEADER};
use crate::mysql::{CapabilityFlags, Completion, StatusFlags, Step};

use super::commands::UNTRACKED_PIN;

/// A client's COM_STMT_PREPARE in flight: the statement id muxql gave it, and its entry.
#[derive(Debug)]
pub(crate) struct PrepareFor {
    pub(crate) client_id: u32,
    pub(crate) entry: Rc<MyStmt>,
}

/// What the session trackers reported in one OK packet.
#[derive(Debug, Default)]
struct Tracked {
    vars: Vec<(Bytes, Bytes)>,
    schema: Option<Bytes>,
    state_change: bool,
    tx_characteristics: Option<bool>,
}

impl Tracked {
    fn of(ok: &OkPacket) -> Self {
        let mut t = Tracked::default();
        for change in ok.session_state().flatten() {
            match change {
                SessionStateChange::SystemVariable { name, value } => t.vars.push((name, value)),
                SessionStateChange::Schema(s) => t.schema = Some(s),
                SessionStateChange::StateChange(on) => t.state_change |= on,
                SessionStateChange::TransactionCharacteristics(s) => {
                    t.tx_characteristics = Some(!s.is_empty())
                }
                _ => {}
            }
        }
        t
    }

    /// A state change no variable or schema report explains (a user variable, a temporary
    /// table...): it only exists on this connection.
    fn untracked(&self) -> bool {
        self.state_change && self.vars.is_empty() && self.schema.is_none()
    }
}

impl Engine {
    /// Relays an upstream's responses to its client (or swallows muxql's own), then releases
    /// the upstream when the client's transaction is over.
    pub(crate) fn my_relay_upstream(&mut self, uid: UpstreamId) {
        loop {
            self.my_turn(uid);
            let Some(u) = self.upstreams.my_mut(uid) else {
                return;
            };
            let owner = u.owed.front().and_then(Owed::owner);
            let cid = match owner {
                Some(o) => Some(o).filter(|&o| self.clients.my(o).is_some()),
                None => u.core.client(),
            };
            match u.owed.front_mut() {
                None => {
                    if !u.core.buf.is_empty() {
                        return self.upstream_lost(uid, "packet nobody asked for");
                    }
                    break;
                }
                Some(Owed::Local(..)) => {
                    if let (Some(Owed::Local(_, bytes)), Some(cid)) = (u.owed.pop_front(), cid) {
                        self.send_client(cid, bytes);
                    }
                }
                Some(_) => match self.my_relay_response(uid, cid) {
                    Some(true) => {}
                    Some(false) => break,
                    None => return,
                },
            }
        }
        self.my_release_if_done(uid);
        // A client kept on its upstream may have input waiting for the answers it had owed.
        if let Some(cid) = self.upstreams.my(uid).and_then(|u| u.core.client()) {
            if self.clients.core(cid).is_some_and(|c| !c.buf.is_empty()) {
                self.ready.push_back(cid);
            }
        }
    }

    /// Relays what the buffer holds of the response at the front; `Some(true)` when it ended,
    /// `Some(false)` when more bytes are needed, `None` when the upstream or client is gone.
    fn my_relay_response(&mut self, uid: UpstreamId, cid: Option<ClientId>) -> Option<bool> {
        if self.my_first_prepare_packet(uid, cid)? {
            return Some(true);
        }
        let u = self.upstreams.my_mut(uid)?;
        let caps = u.caps;
        let (reader, own) = match u.owed.front_mut()? {
            Owed::Client { reader, .. } => (reader, false),
            Owed::Own { reader, .. } => (reader, true),
            Owed::Capture { reader, bytes, .. } => {
                return match reader.scan(&u.core.buf) {
                    Ok(scan) => {
                        bytes.extend_from_slice(&u.core.buf.split_to(scan.consumed));
                        match scan.step {
                            Step::More => Some(false),
                            Step::Complete(_) => {
                                self.my_captured(uid);
                                Some(true)
                            }
                            _ => Some(true),
                        }
                    }
                    Err(e) => {
                        self.upstream_lost(uid, &format!("protocol error: {e}"));
                        None
                    }
                };
            }
            Owed::Local(..) => return Some(true),
        };
        let scan = match reader.scan(&u.core.buf) {
            Ok(s) => s,
            Err(e) => {
                self.upstream_lost(uid, &format!("protocol error: {e}"));
                return None;
            }
        };
        let mut data = u.core.buf.split_to(scan.consumed);
        let completion = match scan.step {
            Step::More => {
                self.my_pass(cid, own, data);
                return Some(false);
            }
            Step::LocalInfile => {
                // A client that did not enable CLIENT_LOCAL_FILES never sees the request:
                // muxql refuses it and the client gets only the ERR.
                let enabled = cid
                    .and_then(|c| self.clients.my(c))
                    .is_some_and(|c| c.caps.contains(CapabilityFlags::CLIENT_LOCAL_FILES));
                let request = data.split_off(scan.last);
                self.my_pass(cid, own, data);
                if enabled {
                    self.my_pass(cid, own, request);
                }
                return self.my_local_infile(uid, cid, scan.last);
            }
            Step::AuthData => {
                self.upstream_lost(uid, "authentication data outside a login");
                return None;
            }
            Step::ResultEnd(c) | Step::Complete(c) => c,
        };
        let last = data.split_off(scan.last);
        let last = self.my_final_packet(uid, cid, own, caps, &completion, last);
        self.my_pass(cid, own, data);
        self.my_pass(cid, own, last);
        if matches!(scan.step, Step::ResultEnd(_)) {
            return Some(true);
        }
        let u = self.upstreams.my_mut(uid)?;
        let done = u.owed.pop_front()?;
        if let (
            Owed::Client {
                refused: Some(seq), ..
            },
            Some(cid),
        ) = (&done, cid)
        {
            let msg = "LOAD DATA LOCAL INFILE is not enabled for this client";
            self.send_client(cid, err_packet(errcode::ER_NOT_ALLOWED_COMMAND, msg, *seq));
        }
        if own && completion.error {
            self.my_own_failed(uid, cid, done);
            return self.upstreams.my(uid).map(|_| true);
        }
        let diagnostics = matches!(
            done,
            Owed::Client {
                diagnostics: true,
                ..
            }
        );
        if let (false, false, Some(cid)) = (own, diagnostics, cid) {
            self.my_note_warnings(uid, cid, completion.warnings);
        }
        Some(true)
    }

    /// A client's statement ended with `warnings` warnings: its `SHOW WARNINGS` must be its
    /// own wherever it runs, so muxql asks for them at once, while the connection still holds
    /// them (only when nothing else is queued there: what runs next would replace them).
    fn my_note_warnings(&mut self, uid: UpstreamId, cid: ClientId, warnings: u16) {
        let limits = self.limits;
        let Some(c) = self.clients.my_mut(cid) else {
            return;
        };
        c.warning_count = warnings;
        c.warnings = None;
        let Some(u) = self.upstreams.my_mut(uid) else {
            return;
        };
        if warnings == 0 || !u.owed.is_empty() {
            return;
        }
        let Some(reader) = u.reader(crate::mysql::command::code::COM_QUERY, limits) else {
            return;
        };
        u.owed.push_back(Owed::Capture {
            owner: cid,
            reader,
            bytes: BytesMut::new(),
        });
        u.last_prepare = None;
        self.actions.push_back(Action::SendUpstream {
            id: uid,
            bytes: packet(b"\x03SHOW WARNINGS", 0),
        });
    }

    /// The captured `SHOW WARNINGS` answer at the front of `uid`'s queue is complete.
    fn my_captured(&mut self, uid: UpstreamId) {
        let Some(Owed::Capture { owner, bytes, .. }) =
            self.upstreams.my_mut(uid).and_then(|u| u.owed.pop_front())
        else {
            return;
        };
        if let Some(c) = self.clients.my_mut(owner) {
            c.warnings = Some(bytes.freeze());
        }
    }

    /// Sends response bytes to the client, unless muxql asked for them or nobody waits.
    fn my_pass(&mut self, cid: Option<ClientId>, own: bool, data: BytesMut) {
        if data.is_empty() || own {
            return;
        }
        let refused = cid.is_none();
        if let (Some(cid), false) = (cid, refused) {
            self.send_client(cid, data.freeze());
        }
    }

    /// Looks at the packet that ended a result: status, LAST_INSERT_ID and tracked session
    /// state; returns it as the client must see it.
    fn my_final_packet(
        &mut self,
        uid: UpstreamId,
        cid: Option<ClientId>,
        own: bool,
        caps: CapabilityFlags,
        completion: &Completion,
        last: BytesMut,
    ) -> BytesMut {
        let (refused, diagnostics) = match self.upstreams.my(uid).and_then(|u| u.owed.front()) {
            Some(Owed::Client {
                refused,
                diagnostics,
                ..
            }) => (refused.is_some(), *diagnostics),
            _ => (false, false),
        };
        if let Some(u) = self.upstreams.my_mut(uid) {
            if let Some(status) = completion.status {
                u.status = status;
            }
        }
        if refused {
            return BytesMut::new();
        }
        if !own && !diagnostics {
            // ROW_COUNT() of the client's own last statement: affected rows of an OK, -1 after
            // a result set or an error.
            let affected = (last.get(HEADER_LEN) == Some(&OK_HEADER))
                .then(|| {
                    crate::mysql::lenenc::decode_int(&last[HEADER_LEN + 1..])
                        .ok()
                        .flatten()
                })
                .flatten()
                .map_or(-1, |(n, _)| i64::try_from(n).unwrap_or(i64::MAX));
            if let Some(c) = cid.and_then(|c| self.clients.my_mut(c)) {
                c.row_count = affected;
                c.last_error = (last.get(HEADER_LEN) == Some(&ERR_HEADER))
                    .then(|| Bytes::copy_from_slice(&last[HEADER_LEN..]));
            }
        }
        let changed = completion
            .status
            .is_some_and(|s| s.contains(StatusFlags::SERVER_SESSION_STATE_CHANGED));
        if own || last.get(HEADER_LEN) != Some(&OK_HEADER) {
            return last;
        }
        let seq = PacketHeader::peek(&last).map_or(1, |h| h.seq);
        let payload = Bytes::copy_from_slice(&last[HEADER_LEN..]);
        let Ok(ok) = OkPacket::parse(&payload, caps) else {
            return last;
        };
        if ok.last_insert_id != 0 {
            if let Some(u) = self.upstreams.my_mut(uid) {
                u.last_insert_id = ok.last_insert_id;
            }
            if let Some(c) = cid.and_then(|c| self.clients.my_mut(c)) {
                c.last_insert_id = ok.last_insert_id;
            }
        }
        if !changed {
            return last;
        }
        let tracked = Tracked::of(&ok);
        let route_db = self
            .upstreams
            .my(uid)
            .map(|u| Bytes::from(self.config.routes[u.core.route].upstream_database.clone()));
        let schema = tracked
            .schema
            .clone()
            .map(|s| (Some(&s) != route_db.as_ref()).then_some(s));
        if let Some(u) = self.upstreams.my_mut(uid) {
            for (name, value) in &tracked.vars {
                u.state.set_var(name, value.clone());
            }
            if let Some(s) = &schema {
                u.state.schema = s.clone();
            }
            if let Some(pending) = tracked.tx_characteristics {
                u.tx_pending = pending;
            }
        }
        let mut strip = false;
        let untracked = tracked.untracked();
        if let Some(c) = cid.and_then(|c| self.clients.my_mut(c)) {
            for (name, value) in tracked.vars {
                c.state.set_var(&name, value);
            }
            if let Some(s) = schema {
                c.state.schema = s;
            }
            let route = c.core.route;
            let transaction_mode = self.config.routes[route].pool_mode == PoolMode::Transaction;
            if untracked && transaction_mode {
                self.pools[route].pin(c.core.pins == 0);
                c.core.pins |= UNTRACKED_PIN;
            }
            strip = !c.caps.contains(CapabilityFlags::CLIENT_SESSION_TRACK);
        }
        if !strip {
            return last;
        }
        // A client without CLIENT_SESSION_TRACK gets the OK without the tracker data.
        let mut plain = ok;
        plain
            .status
            .remove(StatusFlags::SERVER_SESSION_STATE_CHANGED);
        plain.session_state = Bytes::new();
        let mut out = BytesMut::new();
        let client_caps = caps - CapabilityFlags::CLIENT_SESSION_TRACK;
        if plain.encode(&mut out, client_caps).is_err() {
            return last;
        }
        BytesMut::from(&packet(&out, seq)[..])
    }

    /// The first packet of a COM_STMT_PREPARE response: PREPARE_OK's statement id is the
    /// server's; the client gets its own, and the upstream remembers the server's. Returns
    /// whether the response ended with it; `None` when the upstream is gone.
    fn my_first_prepare_packet(&mut self, uid: UpstreamId, cid: Option<ClientId>) -> Option<bool> {
        let cache = self.config.statement_cache_size;
        let u = self.upstreams.my_mut(uid)?;
        let (reader, client, own) = match u.owed.front_mut()? {
            Owed::Client {
                reader, prepare, ..
            } if prepare.is_some() => (reader, prepare.take(), None),
            Owed::Own { reader, prepare } if prepare.is_some() => (reader, None, prepare.take()),
            _ => return Some(false),
        };
        let Some(h) = PacketHeader::peek(&u.core.buf) else {
            restore(u.owed.front_mut(), client, own);
            return Some(false);
        };
        if u.core.buf.len() < HEADER_LEN + h.len {
            restore(u.owed.front_mut(), client, own);
            return Some(false);
        }
        let step = match reader.feed(h, &u.core.buf[HEADER_LEN..HEADER_LEN + h.len]) {
            Ok(s) => s,
            Err(e) => {
                self.upstream_lost(uid, &format!("protocol error: {e}"));
                return None;
            }
        };
        let wire = u.core.buf.split_to(HEADER_LEN + h.len);
        let ok = wire.get(HEADER_LEN) == Some(&OK_HEADER) && wire.len() >= HEADER_LEN + 9;
        let entry = client.as_ref().map(|p| p.entry.clone()).or(own);
        let mut closes = Vec::new();
        if let (true, Some(entry)) = (ok, &entry) {
            let server_id = u32::from_le_bytes([wire[5], wire[6], wire[7], wire[8]]);
            let params = u16::from_le_bytes([wire[11], wire[12]]);
            entry.params.set(params);
            closes.extend(u.prepared.insert(entry.id, server_id));
            closes.extend(u.prepared.evict_over(cache));
        }
        let complete = matches!(step, Step::Complete(_));
        if complete {
            u.owed.pop_front();
        }
        for server_id in closes {
            let mut p = vec![COM_STMT_CLOSE];
            p.extend_from_slice(&server_id.to_le_bytes());
            self.actions.push_back(Action::SendUpstream {
                id: uid,
                bytes: packet(&p, 0),
            });
        }
        match (client, cid) {
            (Some(p), Some(cid)) => {
                if ok {
                    let mut w = BytesMut::from(&wire[..]);
                    w[5..9].copy_from_slice(&p.client_id.to_le_bytes());
                    self.send_client(cid, w.freeze());
                } else {
                    if wire.get(HEADER_LEN) == Some(&ERR_HEADER) {
                        self.my_close_stmt(cid, p.client_id);
                    }
                    self.send_client(cid, wire.freeze());
                }
            }
            (None, Some(cid)) => {
                // A re-prepare for the held command: it may go on now, or fail with this.
                if let Some(c) = self.clients.my_mut(cid) {
                    c.held = false;
                    if !ok {
                        c.failed_prepare = Some(Bytes::copy_from_slice(&wire[HEADER_LEN..]));
                    }
                    self.ready.push_back(cid);
                }
            }
            _ => {}
        }
        Some(complete)
    }

    /// The server asked for a LOCAL INFILE (the packet at `at` of what was just passed on):
    /// the client uploads it when it enabled LOCAL INFILE; otherwise muxql sends the server an
    /// empty file and the client gets an error instead of the answer.
    fn my_local_infile(
        &mut self,
        uid: UpstreamId,
        cid: Option<ClientId>,
        _at: usize,
    ) -> Option<bool> {
        let cid = cid?;
        let enabled = self
            .clients
            .my(cid)
            .is_some_and(|c| c.caps.contains(CapabilityFlags::CLIENT_LOCAL_FILES));
        let u = self.upstreams.my_mut(uid)?;
        let Some(Owed::Client {
            reader, refused, ..
        }) = u.owed.front_mut()
        else {
            self.upstream_lost(uid, "LOCAL INFILE request for muxql's own command");
            return None;
        };
        let seq = reader.next_seq();
        if enabled {
            if let Some(c) = self.clients.my_mut(cid) {
                c.uploading = true;
            }
            self.ready.push_back(cid);
            return Some(false);
        }
        *refused = Some(seq.wrapping_sub(1));
        if reader.resume(seq.wrapping_add(1)).is_err() {
            self.upstream_lost(uid, "LOCAL INFILE out of step");
            return None;
        }
        self.actions.push_back(Action::SendUpstream {
            id: uid,
            bytes: packet(&[], seq),
        });
        Some(true)
    }

    /// A command muxql sent itself failed: the session state of the client it was for cannot
    /// be restored, so that client gets the error and the connection is not reused.
    fn my_own_failed(&mut self, uid: UpstreamId, cid: Option<ClientId>, _done: Owed) {
        if let Some(u) = self.upstreams.my_mut(uid) {
            u.core.broken = true;
        }
        if let Some(cid) = cid {
            self.my_fail_client(
                cid,
                errcode::ER_CONNECTION_KILLED,
                "the session state could not be restored on a server connection",
            );
        }
    }

    /// Releases the upstream once it owes nothing and its client's transaction is over.
    fn my_release_if_done(&mut self, uid: UpstreamId) {
        let Some(u) = self.upstreams.my(uid) else {
            return;
        };
        if !u.owed.is_empty() {
            return;
        }
        match u.core.phase {
            UpPhase::Resetting => self.park(uid),
            UpPhase::Attached(cid) => {
                let busy = u.status.contains(StatusFlags::SERVER_STATUS_IN_TRANS)
                    || u.status.contains(StatusFlags::SERVER_MORE_RESULTS_EXISTS)
                    || u.tx_pending;
                let transaction_mode =
                    self.config.routes[u.core.route].pool_mode == PoolMode::Transaction;
                let free = self
                    .clients
                    .my(cid)
                    .is_some_and(|c| c.core.pins == 0 && !c.uploading && !c.held);
                if !busy && transaction_mode && free {
                    self.pools[u.core.route].stats.transactions += 1;
                    self.release(uid, cid);
                }
            }
            _ => {}
        }
    }
}

/// Puts back a prepare marker taken from the front response while its first packet is
/// incomplete.
fn restore(front: Option<&mut Owed>, client: Option<PrepareFor>, own: Option<Rc<MyStmt>>) {
    match front {
        Some(Owed::Client { prepare, .. }) => *prepare = client,
        Some(Owed::Own { prepare, .. }) => *prepare = own,
        _ => {}
    }
}
