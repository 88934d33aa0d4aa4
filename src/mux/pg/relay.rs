//! The relay between an attached client and its upstream.
//!
//! Frames are scanned by header; runs of frames that pass unchanged are forwarded as one
//! zero-copy slice of the read buffer. Only frames that name a pooled prepared statement are
//! rewritten, and only responses muxql injected itself are dropped.

use std::rc::Rc;

use bytes::{Buf, Bytes, BytesMut};

use super::expect::{Kind, Pending, Verdict};
use super::params::Value;
use super::peek;
use super::prepared::{
    plan_changed, plan_changed_error, rejection_sql, result_formats_mismatch,
    unnamed_statement_use, REFUSAL,
};
use super::session::pin_bit;
use super::statements::Statement;
use super::stream::{client_streams, server_streams, too_large, STREAMING, STREAM_FROM};
use crate::mux::config::{PinPolicy, PoolMode};
use crate::mux::engine::Engine;
use crate::mux::ids::{ClientId, UpstreamId};
use crate::mux::session::UpPhase;
use crate::mux::Action;
use crate::pg::backend::BackendMessage;
use crate::pg::frame::{peek_header, Direction, Frame, HEADER_LEN};
use crate::pg::frontend::{Describe, FrontendMessage, Parse, TargetKind};
use crate::pg::sql::{ends_transaction, for_each_effect, Effect, PinReason};
use crate::pg::sqlstate::{self, PROTOCOL_VIOLATION};

/// Which session effects of a statement [`Engine::note_effects`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Record {
    /// Pins and setting changes: the statement runs in the unit that carries it.
    All,
    /// Pins only: a named statement being parsed.
    Pins,
    /// Setting changes only: a named statement being bound to run.
    Settings,
}

/// What a scanned client frame needs.
enum Step {
    /// Forward unchanged, expecting this response (if any).
    Forward(Option<Kind>),
    /// Needs rewriting or a local answer.
    Rewrite,
    /// The client said goodbye.
    Terminate,
    /// Not a message the client may send now.
    Invalid,
}

impl Engine {
    /// Handles a ready client's buffered input: waits for an upstream, or relays to it.
    ///
    /// Input stays buffered while the client's pipelined request waits for its turn, and while
    /// other clients' requests are pipelined behind its own (they must stay in order).
    pub(crate) fn pg_relay_client(&mut self, cid: ClientId) {
        let limits = self.limits;
        let Some(c) = self.clients.pg_mut(cid) else {
            return;
        };
        if c.queued_on.is_some() {
            return;
        }
        let Some(uid) = c.core.upstream else {
            if c.lost_tx.is_some() {
                self.pg_answer_lost_tx(cid);
                return;
            }
            // Large messages stream once an upstream is there (see `pg_forward`).
            match peek_header(&c.core.buf, Direction::Frontend, &STREAMING) {
                Err(e) => self.pg_fail_client(cid, PROTOCOL_VIOLATION, &e.to_string()),
                Ok(None) => {}
                Ok(Some(h)) if h.tag == b'X' => self.close_client(cid),
                Ok(Some(_)) => self.wait_for_upstream(cid),
            }
            return;
        };
        let Some(u) = self.upstreams.pg_mut(uid) else {
            return;
        };
        if !u.followers.is_empty() {
            return;
        }
        u.busy_since = self.now;
        // Followers only look for an upstream to queue behind while the pool is full.
        let route = &self.config.routes[u.core.route];
        u.pipeline_ok = self.config.pipeline_depth > 0
            && c.passthrough.is_none()
            && route.pool_mode == PoolMode::Transaction
            && self.pools[u.core.route].total() >= route.pool_size
            && c.core.pins == 0
            && u.tx_status == b'I'
            && !u.expect.owes_client()
            && super::pipeline::is_autocommit_unit(
                &c.core.buf,
                &c.stmts,
                &mut self.pg.sql_verdicts,
                &limits,
            );
        self.pg_forward(cid, uid);
    }

    /// Relays a client's complete buffered frames to upstream `uid`, rewriting what names
    /// pooled statements and answering locally what muxql answers itself.
    pub(crate) fn pg_forward(&mut self, cid: ClientId, uid: UpstreamId) {
        let limits = self.limits;
        if !self.pg_client_pass_through(cid, uid) {
            return;
        }
        let Some(c) = self.clients.pg_mut(cid) else {
            return;
        };
        let mut buf = std::mem::take(&mut c.core.buf);
        let mut run = 0;
        let outcome = loop {
            let header = match peek_header(&buf[run..], Direction::Frontend, &STREAMING) {
                Ok(Some(h))
                    if h.frame_len - HEADER_LEN > limits.max_message && !client_streams(h.tag) =>
                {
                    break Err(too_large(&h, &limits));
                }
                Ok(Some(h)) if buf.len() - run >= h.frame_len => h,
                Ok(Some(h)) if client_streams(h.tag) && h.frame_len >= STREAM_FROM => {
                    self.flush_to_upstream(uid, &mut buf, &mut run);
                    break self.pg_stream_from_client(cid, uid, &h, &mut buf);
                }
                Ok(_) => break Ok(()),
                Err(e) => break Err(e.to_string()),
            };
            let body = &buf[run + HEADER_LEN..run + header.frame_len];
            match self.classify_client_frame(cid, uid, header.tag, body) {
                Step::Forward(kind) => {
                    if let Some(kind) = kind {
                        self.expect(uid, kind, false, None);
                    }
                    run += header.frame_len;
                }
                Step::Rewrite => {
                    self.flush_to_upstream(uid, &mut buf, &mut run);
                    let frame = Frame::from_validated(buf.split_to(header.frame_len).freeze());
                    if let Err(e) = self.rewrite_client_frame(cid, uid, frame) {
                        break Err(e);
                    }
                }
                Step::Terminate => {
                    self.flush_to_upstream(uid, &mut buf, &mut run);
                    self.close_client(cid);
                    return;
                }
                Step::Invalid => {
                    break Err(format!("unexpected message type 0x{:02x}", header.tag))
                }
            }
        };
        self.flush_to_upstream(uid, &mut buf, &mut run);
        self.release_synthetics(uid, cid);
        match outcome {
            Ok(()) => {
                if let Some(c) = self.clients.pg_mut(cid) {
                    c.core.buf = buf;
                }
            }
            Err(e) => self.pg_fail_client(cid, PROTOCOL_VIOLATION, &e),
        }
    }

    /// Decides what a client frame needs, noting session effects of any SQL it carries.
    fn classify_client_frame(
        &mut self,
        cid: ClientId,
        uid: UpstreamId,
        tag: u8,
        body: &[u8],
    ) -> Step {
        let unnamed_is_own = |engine: &Engine| {
            engine
                .upstreams
                .pg(uid)
                .is_some_and(|u| u.unnamed_owner == Some(cid))
        };
        match tag {
            b'Q' => {
                // A simple Query ends the unnamed statement (protocol docs, "Simple Query").
                if let Some(c) = self.clients.pg_mut(cid) {
                    c.unnamed = None;
                }
                let sql = peek::first_cstr(body).unwrap_or(body);
                if ends_transaction(sql) {
                    if let Some(c) = self.clients.pg_mut(cid) {
                        c.ending_tx = true;
                    }
                }
                if self.note_effects(cid, uid, sql, Record::All) || self.deallocates_own(cid, sql) {
                    Step::Rewrite
                } else {
                    Step::Forward(Some(Kind::Query))
                }
            }
            b'P' => match peek::cstr(body) {
                Some((b"", rest)) => {
                    if let Some(u) = self.upstreams.pg_mut(uid) {
                        u.unnamed_owner = Some(cid);
                    }
                    let sql = peek::first_cstr(rest).unwrap_or(rest);
                    let refused = self.note_effects(cid, uid, sql, Record::All);
                    if let Some(c) = self.clients.pg_mut(cid) {
                        c.unnamed = (!refused).then(|| Bytes::copy_from_slice(body));
                    }
                    if refused || self.deallocates_own(cid, sql) {
                        Step::Rewrite
                    } else {
                        Step::Forward(Some(Kind::Parse))
                    }
                }
                _ => Step::Rewrite,
            },
            // Another client's unnamed statement is closed first, so that the server reports
            // it missing (26000) instead of running it.
            b'B' => {
                let name = peek::bind_statement(body);
                if let Some(c) = self.clients.pg_mut(cid) {
                    c.ending_tx |= name.is_some_and(|n| binds_transaction_end(c, n));
                }
                match name {
                    Some(b"") if unnamed_is_own(self) => Step::Forward(Some(Kind::Bind)),
                    _ => Step::Rewrite,
                }
            }
            b'D' => match peek::target(body) {
                Some((b'S', b"")) if unnamed_is_own(self) => {
                    Step::Forward(Some(Kind::DescribeStatement))
                }
                Some((b'S', _)) => Step::Rewrite,
                _ => Step::Forward(Some(Kind::DescribePortal)),
            },
            b'C' => match peek::target(body) {
                Some((b'S', name)) if !name.is_empty() => Step::Rewrite,
                _ => Step::Forward(Some(Kind::Close)),
            },
            b'E' => Step::Forward(Some(Kind::Execute)),
            b'S' => Step::Forward(Some(Kind::Sync)),
            b'F' => Step::Forward(Some(Kind::Query)),
            b'H' | b'd' => Step::Forward(None),
            b'c' | b'f' => Step::Forward(Some(Kind::CopyEnd)),
            b'X' => Step::Terminate,
            _ => Step::Invalid,
        }
    }

    /// Records the session effects of `sql`, about to run on upstream `uid`, that `record`
    /// selects; returns whether the statement must be refused (a pin under
    /// [`PinPolicy::Reject`]).
    pub(super) fn note_effects(
        &mut self,
        cid: ClientId,
        uid: UpstreamId,
        sql: &[u8],
        record: Record,
    ) -> bool {
        if !self.pg.sql_verdicts.get(sql).effects {
            return false;
        }
        let Some(c) = self.clients.pg_mut(cid) else {
            return false;
        };
        let route = c.core.route;
        let transaction_mode = self.config.routes[route].pool_mode == PoolMode::Transaction;
        let reject = self.config.pin_policy == PinPolicy::Reject && transaction_mode;
        let mut refused = false;
        let mut drops_statements = false;
        let pool = &mut self.pools[route];
        for_each_effect(sql, |effect| match effect {
            Effect::Pin(_) if record == Record::Settings || !transaction_mode => {}
            Effect::Pin(_) if reject => refused = true,
            Effect::Pin(reason) => {
                pool.pin(c.core.pins == 0);
                c.core.pins |= pin_bit(reason);
            }
            _ if record == Record::Pins => {}
            // Answered by rewriting the statement (see `deallocate_named`).
            Effect::Deallocate => {}
            Effect::DeallocateAll => {
                // Not transactional: the client's statements are gone once it runs.
                drops_statements = true;
                for (_, named) in c.stmts.drain() {
                    pool.ext.pg().statements.release(&named.stmt);
                }
            }
            other => {
                drops_statements |= other == Effect::DiscardAll;
                c.pending.push(other);
            }
        });
        if drops_statements && !refused {
            // The server drops every statement of the session, muxql's shared ones too: they
            // are prepared again on this upstream when a client next needs them.
            if let Some(u) = self.upstreams.pg_mut(uid) {
                u.prepared.forget_all();
            }
        }
        refused
    }

    /// Rewrites a frame naming a pooled statement, answers it locally, or refuses it.
    fn rewrite_client_frame(
        &mut self,
        cid: ClientId,
        uid: UpstreamId,
        frame: Frame,
    ) -> Result<(), String> {
        if let Some(kind) = unnamed_statement_use(&frame) {
            return self.unnamed_elsewhere(cid, uid, &frame, kind);
        }
        if frame.tag() == b'B' {
            return self.rewrite_bind(cid, uid, &frame);
        }
        let msg = FrontendMessage::parse(&frame).map_err(|e| e.to_string())?;
        let mut out = BytesMut::new();
        match msg {
            FrontendMessage::Query(sql) => match self.client_deallocation(cid, &sql) {
                Some(name) => {
                    let sql = self
                        .deallocate_named(cid, uid, &name, &mut out)
                        .unwrap_or(sql);
                    self.expect(uid, Kind::Query, false, None);
                    FrontendMessage::Query(sql).encode(&mut out)
                }
                None => {
                    self.expect(uid, Kind::Query, false, None);
                    FrontendMessage::Query(rejection_sql()).encode(&mut out)
                }
            },
            FrontendMessage::Parse(p) if p.name.is_empty() => {
                let Some(name) = self.client_deallocation(cid, &p.query) else {
                    return self.raise_in_place(uid, sqlstate::FEATURE_NOT_SUPPORTED, REFUSAL);
                };
                let query = self
                    .deallocate_named(cid, uid, &name, &mut out)
                    .unwrap_or(p.query.clone());
                self.expect(uid, Kind::Parse, false, None);
                FrontendMessage::Parse(Parse { query, ..p }).encode(&mut out)
            }
            FrontendMessage::Parse(p) => return self.parse_named(cid, uid, p),
            FrontendMessage::Describe(d) => {
                let stmt = self.client_statement(cid, &d.name);
                let server = self.prepare_on(uid, stmt.as_ref(), &mut out, &d.name);
                self.expect(uid, Kind::DescribeStatement, false, None);
                FrontendMessage::Describe(Describe {
                    kind: TargetKind::Statement,
                    name: server.into(),
                })
                .encode(&mut out)
            }
            FrontendMessage::Close(cl) => {
                if let Some(c) = self.clients.pg_mut(cid) {
                    if let Some(named) = c.stmts.remove(&cl.name) {
                        self.pools[c.core.route]
                            .ext
                            .pg()
                            .statements
                            .release(&named.stmt);
                    }
                }
                self.synthetic(uid, BackendMessage::CloseComplete);
                Ok(())
            }
            _ => Err(crate::wire::Error::Unexpected("client message")),
        }
        .map_err(|e| e.to_string())?;
        if !out.is_empty() {
            self.actions.push_back(Action::SendUpstream {
                id: uid,
                bytes: out.freeze(),
            });
        }
        Ok(())
    }

    /// Records a request sent upstream; cleans up after it when the server will ignore it.
    pub(super) fn expect(
        &mut self,
        uid: UpstreamId,
        kind: Kind,
        swallow: bool,
        stmt: Option<Rc<Statement>>,
    ) {
        let Some(u) = self.upstreams.pg_mut(uid) else {
            return;
        };
        let server_id = stmt.as_ref().map_or(0, |s| s.server_id());
        if let Some(ignored) = u.expect.push(Pending {
            kind,
            swallow,
            stmt,
            server_id,
        }) {
            forget_unprepared(&mut u.prepared, &ignored);
        }
    }

    /// Queues a response muxql answers itself.
    pub(super) fn synthetic(&mut self, uid: UpstreamId, msg: BackendMessage) {
        let mut out = BytesMut::new();
        if msg.encode(&mut out).is_ok() {
            if let Some(u) = self.upstreams.pg_mut(uid) {
                u.expect.push_synthetic(out.freeze());
            }
        }
    }

    /// Sends the client any local answers that are now due.
    pub(super) fn release_synthetics(&mut self, uid: UpstreamId, cid: ClientId) {
        while let Some(bytes) = self
            .upstreams
            .pg_mut(uid)
            .and_then(|u| u.expect.pop_synthetic())
        {
            self.send_client(cid, bytes);
        }
    }

    /// Forwards the pending run of unchanged client frames.
    fn flush_to_upstream(&mut self, uid: UpstreamId, buf: &mut BytesMut, run: &mut usize) {
        if let Some(bytes) = take_run(buf, run) {
            self.actions
                .push_back(Action::SendUpstream { id: uid, bytes });
        }
    }

    /// Forwards the pending run of unchanged upstream frames to the client (or drops it
    /// when the upstream has none).
    fn flush_to_client(&mut self, cid: Option<ClientId>, buf: &mut BytesMut, run: &mut usize) {
        if let (Some(bytes), Some(cid)) = (take_run(buf, run), cid) {
            self.send_client(cid, bytes);
        }
    }

    /// Relays an upstream's responses to its client (or swallows them while resetting), and
    /// releases the upstream when the client's transaction is over.
    pub(crate) fn pg_relay_upstream(&mut self, uid: UpstreamId) {
        let limits = self.limits;
        if !self.pg_server_pass_through(uid) {
            return;
        }
        let Some(u) = self.upstreams.pg_mut(uid) else {
            return;
        };
        let route = u.core.route;
        let mut cid = u.core.client();
        let mut buf = std::mem::take(&mut u.core.buf);
        let mut run = 0;
        let mut promoted = false;
        loop {
            let header = match peek_header(&buf[run..], Direction::Backend, &STREAMING) {
                Ok(Some(h))
                    if h.frame_len - HEADER_LEN > limits.max_message && !server_streams(h.tag) =>
                {
                    self.flush_to_client(cid, &mut buf, &mut run);
                    let e = too_large(&h, &limits);
                    return self.upstream_lost(uid, &format!("protocol error: {e}"));
                }
                Ok(Some(h)) if buf.len() - run >= h.frame_len => h,
                Ok(Some(h)) if server_streams(h.tag) && h.frame_len >= STREAM_FROM => {
                    self.flush_to_client(cid, &mut buf, &mut run);
                    if let Err(e) = self.pg_stream_from_server(uid, cid, &h, &mut buf) {
                        return self.upstream_lost(uid, &e);
                    }
                    return;
                }
                Ok(_) => break,
                Err(e) => {
                    self.flush_to_client(cid, &mut buf, &mut run);
                    return self.upstream_lost(uid, &format!("protocol error: {e}"));
                }
            };
            let tag = header.tag;
            if matches!(tag, b'N' | b'A' | b'S') {
                if tag == b'S' {
                    let body = &buf[run + HEADER_LEN..run + header.frame_len];
                    let (name, value) = parameter_status(body);
                    self.note_parameter(uid, cid, name, value);
                }
                if cid.is_some() {
                    run += header.frame_len;
                } else {
                    buf.advance(header.frame_len);
                }
                continue;
            }
            if let Some(cid) = cid {
                if self
                    .upstreams
                    .pg(uid)
                    .is_some_and(|u| !u.expect.front_is_response())
                {
                    self.flush_to_client(Some(cid), &mut buf, &mut run);
                    self.release_synthetics(uid, cid);
                }
            }
            let body = &buf[run + HEADER_LEN..run + header.frame_len];
            // FATAL or PANIC: the server ends this connection (a restart, pg_terminate_backend).
            // It is about the connection, not the client's session: the upstream is lost, and the
            // client gets the lost-upstream answer (see failover.rs) instead of this error.
            if tag == b'E' && server_ends_connection(body) {
                let message = peek::error_field(body, b'M')
                    .map(|m| String::from_utf8_lossy(m).into_owned())
                    .unwrap_or_else(|| "the server ended the connection".into());
                self.flush_to_client(cid, &mut buf, &mut run);
                return self.upstream_lost(uid, &message);
            }
            let status = body.first().copied().unwrap_or(b'I');
            let rolled_back = tag == b'C' && body.starts_with(b"ROLLBACK");
            let plan_changed = tag == b'E' && plan_changed(body);
            let statement_missing = tag == b'E'
                && peek::error_field(body, b'C')
                    == Some(sqlstate::INVALID_SQL_STATEMENT_NAME.as_bytes());
            let formats_mismatch = tag == b'E' && result_formats_mismatch(body);
            let mut replacement = None;
            let Some(u) = self.upstreams.pg_mut(uid) else {
                return;
            };
            let Verdict::Accept {
                swallow,
                done,
                dropped,
            } = u.expect.on_response(tag)
            else {
                self.flush_to_client(cid, &mut buf, &mut run);
                return self.upstream_lost(uid, "server response out of step with requests");
            };
            for p in &dropped {
                forget_unprepared(&mut u.prepared, p);
            }
            let ends_unit =
                tag == b'Z' && !u.followers.is_empty() && done.as_ref().is_some_and(|p| !p.swallow);
            let mut forward = !swallow && cid.is_some();
            match tag {
                b'E' => {
                    if let Some(p) = &done {
                        forget_unprepared(&mut u.prepared, p);
                    }
                    let injected_extended =
                        swallow && done.as_ref().is_some_and(|p| p.kind != Kind::Query);
                    if swallow && !injected_extended {
                        u.core.broken = true;
                        // The only query muxql injects while a client is attached restores
                        // that client's session parameters. When it fails (an invalid value
                        // from the startup packet, which PostgreSQL itself refuses at login),
                        // the client cannot be served as it asked: fail it with the error.
                        if let Some(cid) = cid {
                            let field = |code| {
                                peek::error_field(body, code)
                                    .map(|f| String::from_utf8_lossy(f).into_owned())
                            };
                            let sqlstate =
                                field(b'C').unwrap_or_else(|| sqlstate::CONNECTION_FAILURE.into());
                            let message = field(b'M').unwrap_or_default();
                            self.flush_to_client(Some(cid), &mut buf, &mut run);
                            return self.pg_fail_client(cid, &sqlstate, &message);
                        }
                    }
                    forward = cid.is_some() && (forward || injected_extended);
                    if let Some((stmt, used)) = done
                        .as_ref()
                        .filter(|p| p.kind == Kind::Bind)
                        .and_then(|p| Some((p.stmt.as_ref()?, p.server_id)))
                    {
                        // Once per change: Binds of the old statement still in flight on
                        // other upstreams fail too, and must not renew it again.
                        if (plan_changed || formats_mismatch) && used == stmt.server_id() {
                            let route = u.core.route;
                            self.pools[route].ext.pg().statements.renew(stmt);
                        }
                        if formats_mismatch {
                            // Prepared here after the client's columns changed: on a direct
                            // connection its own statement would report the change.
                            replacement = Some(plan_changed_error());
                        } else if statement_missing {
                            // Something dropped it behind muxql's back: prepare it again
                            // next time instead of failing every Bind on this upstream.
                            u.prepared.remove(stmt.server_id());
                        }
                    }
                    if forward {
                        if let Some(c) = cid.and_then(|c| self.clients.pg_mut(c)) {
                            c.tx_failed = true;
                        }
                    }
                }
                b'C' if forward => {
                    let route = u.core.route;
                    self.pools[route].stats.queries += 1;
                    if let Some(c) = cid.and_then(|c| self.clients.pg_mut(c)) {
                        if !c.pending.is_empty() && rolled_back {
                            c.tx_failed = true;
                        }
                    }
                }
                b'Z' => {
                    u.tx_status = status;
                    if forward {
                        if let Some(cid) = cid {
                            self.transaction_boundary(uid, cid, status);
                        }
                    }
                }
                _ => {}
            }
            if let (Some(bytes), true) = (replacement, forward) {
                self.flush_to_client(cid, &mut buf, &mut run);
                buf.advance(header.frame_len);
                if let Some(cid) = cid {
                    self.send_client(cid, bytes);
                }
            } else if forward {
                run += header.frame_len;
            } else {
                self.flush_to_client(cid, &mut buf, &mut run);
                buf.advance(header.frame_len);
            }
            if ends_unit {
                self.flush_to_client(cid, &mut buf, &mut run);
                if let Some(cid) = cid {
                    self.release_synthetics(uid, cid);
                    self.pg_unit_end(cid);
                }
                if status != b'I' {
                    // Followers' requests would run inside this transaction: never let them.
                    return self.upstream_lost(uid, "pipelined request left a transaction open");
                }
                cid = self.pg_promote(uid, cid);
                promoted = true;
                continue;
            }
            if tag == b'Z' && self.releasable(uid) {
                self.flush_to_client(cid, &mut buf, &mut run);
                if let Some(cid) = cid {
                    self.release_synthetics(uid, cid);
                    self.pg_unit_end(cid);
                }
                if let Some(u) = self.upstreams.pg_mut(uid) {
                    u.core.buf = buf;
                }
                return match cid {
                    Some(cid) => self.release(uid, cid),
                    None => self.park(uid),
                };
            }
        }
        self.flush_to_client(cid, &mut buf, &mut run);
        if let Some(cid) = cid {
            self.release_synthetics(uid, cid);
        }
        if let Some(u) = self.upstreams.pg_mut(uid) {
            u.core.buf = buf;
        }
        if promoted {
            self.dispatch(route);
        }
    }

    /// Whether the upstream can go back to the pool now.
    fn releasable(&self, uid: UpstreamId) -> bool {
        let Some(u) = self.upstreams.pg(uid) else {
            return false;
        };
        if !u.expect.is_empty() || u.tx_status != b'I' {
            return false;
        }
        match u.core.phase {
            UpPhase::Resetting => true,
            UpPhase::Attached(cid) => {
                self.config.routes[u.core.route].pool_mode == PoolMode::Transaction
                    && self.clients.pg(cid).is_some_and(|c| c.core.pins == 0)
            }
            _ => false,
        }
    }

    /// A ReadyForQuery reached the client: commit or void the transaction's session effects.
    fn transaction_boundary(&mut self, uid: UpstreamId, cid: ClientId, status: u8) {
        if let Some(c) = self.clients.pg_mut(cid) {
            c.ending_tx = false;
        }
        if status != b'I' {
            return;
        }
        let (Some(c), Some(u)) = (self.clients.pg_mut(cid), self.upstreams.pg_mut(uid)) else {
            return;
        };
        let pool = &mut self.pools[c.core.route];
        pool.stats.transactions += 1;
        let effects = std::mem::take(&mut c.pending);
        let failed = std::mem::replace(&mut c.tx_failed, false);
        if failed {
            return;
        }
        let Some(baseline) = pool.ext.pg().baseline.clone() else {
            return;
        };
        for effect in effects {
            match effect {
                Effect::Set { name, value } if !baseline.is_reported(&name) => {
                    c.params.set(&name, Value::Sql(value.clone().into()));
                    u.params.set(&name, Value::Sql(value.into()));
                }
                Effect::Reset { name } if !baseline.is_reported(&name) => {
                    c.params.reset(&name);
                    u.params.reset(&name);
                }
                Effect::ResetAll | Effect::DiscardAll => {
                    c.params.retain(|n, _| baseline.is_reported(n));
                    u.params.retain(|n, _| baseline.is_reported(n));
                    let before = c.core.pins;
                    c.core.pins &= !(pin_bit(PinReason::SetRole)
                        | pin_bit(PinReason::SessionAuthorization)
                        | pin_bit(PinReason::SetConfig));
                    if matches!(effect, Effect::DiscardAll) {
                        c.core.pins = 0;
                        for (_, named) in c.stmts.drain() {
                            pool.ext.pg().statements.release(&named.stmt);
                        }
                    }
                    if before != 0 && c.core.pins == 0 {
                        pool.unpin();
                    }
                }
                _ => {}
            }
        }
    }

    /// Tracks a ParameterStatus: the value is now the session's on both sides.
    fn note_parameter(
        &mut self,
        uid: UpstreamId,
        cid: Option<ClientId>,
        name: String,
        value: Value,
    ) {
        let Some(u) = self.upstreams.pg_mut(uid) else {
            return;
        };
        let Some(baseline) = self.pools[u.core.route].ext.pg().baseline.clone() else {
            return;
        };
        let is_baseline = matches!(&value, Value::Literal(v)
            if baseline.value(&name).is_some_and(|b| &b[..] == v.as_bytes()));
        let client = cid.and_then(|c| self.clients.pg_mut(c));
        if is_baseline {
            u.params.reset(&name);
            if let Some(c) = client {
                c.params.reset(&name);
            }
        } else {
            if let Some(c) = client {
                c.params.set(&name, value.clone());
            }
            u.params.set(&name, value);
        }
    }
}

/// Cuts the first `run` bytes (whole frames passed on unchanged) off `buf`, zero-copy.
/// Whether statement `name` of client `c` (the unnamed one as last parsed) ends a
/// transaction.
fn binds_transaction_end(c: &super::session::PgClient, name: &[u8]) -> bool {
    if name.is_empty() {
        return c.unnamed.as_ref().is_some_and(|body| {
            peek::cstr(body)
                .and_then(|(_, rest)| peek::first_cstr(rest))
                .is_some_and(ends_transaction)
        });
    }
    c.stmts
        .get(name)
        .is_some_and(|n| ends_transaction(&n.stmt.query))
}

fn take_run(buf: &mut BytesMut, run: &mut usize) -> Option<Bytes> {
    let len = std::mem::take(run);
    (len > 0).then(|| buf.split_to(len).freeze())
}

/// The lower-case name and the value of a ParameterStatus body.
fn parameter_status(body: &[u8]) -> (String, Value) {
    let (name, rest) = peek::cstr(body).unwrap_or((body, &[]));
    let value = peek::first_cstr(rest).unwrap_or(rest);
    (
        String::from_utf8_lossy(name).to_ascii_lowercase(),
        Value::Literal(String::from_utf8_lossy(value).into()),
    )
}

/// After a failed or ignored Parse, the statement is not prepared on that upstream.
fn forget_unprepared(prepared: &mut super::statements::Prepared, p: &Pending) {
    if p.kind == Kind::Parse {
        if let Some(stmt) = &p.stmt {
            prepared.remove(stmt.server_id());
        }
    }
}

/// Whether an ErrorResponse ends the connection (severity FATAL or PANIC; `V` is the
/// untranslated severity, PostgreSQL 9.6 and later, `S` the fallback).
fn server_ends_connection(body: &[u8]) -> bool {
    let severity = peek::error_field(body, b'V').or_else(|| peek::error_field(body, b'S'));
    matches!(severity, Some(b"FATAL" | b"PANIC"))
}
