//! Cross-client pipelining: while every upstream of a full pool is busy, a waiting client whose
//! whole request is one autocommit unit is sent right behind another client's autocommit unit
//! on a busy upstream, instead of waiting for that upstream to come back to the pool.
//!
//! An autocommit unit is a simple Query, or an extended-protocol sequence ending with its only
//! Sync, whose statements all pass [`is_autocommit_statement`]: afterwards the server is idle
//! ('I') in the session state it had before, so the unit after it finds the connection as if
//! fresh from the pool. The server answers in order, and each unit ends with the one
//! ReadyForQuery its Query or Sync gets; there the next queued client (a follower) becomes the
//! client served. Followers never need session parameters replayed: they only queue behind
//! upstreams whose parameters equal their own.
//!
//! What this saves is the idle gap between one client's ReadyForQuery and the next client's
//! request (the round trip through muxql), and the server reads queued requests several at a
//! time instead of sleeping between them.
//!
//! A cancel meant for the client served may reach the server after its unit ended, while a
//! follower's runs. So once a cancel goes out, the followers already queued get their answers
//! held back until their unit ends; if a cancel stopped it, they never see it and the unit runs
//! again (a cancelled autocommit unit left nothing behind), else the answers go out then.
//! Fairness: the wait queue stays FIFO (a client that cannot be pipelined stops pipelining for
//! everyone behind it until an upstream comes free), at most `pipeline_depth` followers queue
//! behind one upstream, and only behind a request that started at most [`FRESH_MS`] ago: a
//! request running longer may be a slow one, and nobody should wait behind it.

use bytes::{Bytes, BytesMut};

use super::peek;
use super::sql_verdicts::SqlVerdicts;
use super::statements::Names;
use crate::mux::engine::Engine;
use crate::mux::ids::{ClientId, UpstreamId};
use crate::mux::session::UpPhase;
use crate::mux::Action;
use crate::pg::frame::{peek_header, Direction, HEADER_LEN};
use crate::pg::sqlstate::QUERY_CANCELED;
use crate::wire::Limits;

/// Longest a request may have been running for others to queue behind it, in milliseconds.
pub(crate) const FRESH_MS: u64 = 2;

/// Whether `buf` holds exactly one autocommit unit and nothing else.
///
/// Unnamed statements must be parsed within the unit (one parsed before its Sync may be gone
/// or replaced); named statements must be known to the client and autocommit themselves.
pub(crate) fn is_autocommit_unit(
    buf: &[u8],
    stmts: &Names,
    verdicts: &mut SqlVerdicts,
    limits: &Limits,
) -> bool {
    let named_ok = |name: &[u8]| stmts.get(name).is_some_and(|n| n.stmt.autocommit);
    let mut rest = buf;
    let mut parsed = false;
    let mut first = true;
    loop {
        let header = match peek_header(rest, Direction::Frontend, limits) {
            Ok(Some(h)) if rest.len() >= h.frame_len => h,
            _ => return false,
        };
        let body = &rest[HEADER_LEN..header.frame_len];
        rest = &rest[header.frame_len..];
        let ok = match header.tag {
            b'Q' => {
                return first
                    && rest.is_empty()
                    && verdicts
                        .get(peek::first_cstr(body).unwrap_or(body))
                        .autocommit
            }
            b'S' => return !first && rest.is_empty(),
            b'P' => match peek::cstr(body) {
                Some((b"", sql)) => {
                    parsed = true;
                    verdicts
                        .get(peek::first_cstr(sql).unwrap_or(sql))
                        .autocommit
                }
                _ => false,
            },
            b'B' => match peek::bind_statement(body) {
                Some(b"") => parsed,
                Some(name) => named_ok(name),
                None => false,
            },
            b'D' => match peek::target(body) {
                Some((b'P', _)) => true,
                Some((b'S', b"")) => parsed,
                Some((b'S', name)) => named_ok(name),
                _ => false,
            },
            b'E' => true,
            _ => false,
        };
        if !ok {
            return false;
        }
        first = false;
    }
}

impl Engine {
    /// The busy upstream of `route` with the fewest followers that can take waiting client
    /// `cid`'s request: one autocommit unit, from an unpinned client whose session parameters
    /// equal the upstream's, on an upstream whose client reads its answer (not paused).
    pub(crate) fn pg_pipeline_target(
        &mut self,
        route: usize,
        cid: ClientId,
        depth: usize,
    ) -> Option<UpstreamId> {
        let c = self.clients.pg(cid)?;
        let unit = c.core.pins == 0
            && is_autocommit_unit(
                &c.core.buf,
                &c.stmts,
                &mut self.pg.sql_verdicts,
                &self.limits,
            );
        if !unit {
            return None;
        }
        let params = &c.params;
        let now = self.now;
        self.pools[route]
            .members()
            .iter()
            .filter_map(|&id| Some((id, self.upstreams.pg(id)?)))
            .filter(|(_, u)| {
                u.pipeline_ok
                    && now.saturating_sub(u.busy_since) <= FRESH_MS
                    && u.core.paused == 0
                    && matches!(u.core.phase, UpPhase::Attached(_))
                    && u.followers.len() < depth
                    && u.params == *params
            })
            .min_by_key(|(_, u)| u.followers.len())
            .map(|(id, _)| id)
    }

    /// Queues a waiting client behind upstream `uid` and sends its request.
    pub(crate) fn pg_follow(&mut self, cid: ClientId, uid: UpstreamId) {
        let now = self.now;
        let (Some(c), Some(u)) = (self.clients.pg_mut(cid), self.upstreams.pg_mut(uid)) else {
            return;
        };
        let pool = &mut self.pools[c.core.route];
        pool.serve(c.core.waiting_since.take().unwrap_or(now), now);
        pool.stats.pipelined += 1;
        c.queued_on = Some(uid);
        // Small (one autocommit unit), kept in case another client's cancel hits it.
        c.unit = Some(Bytes::copy_from_slice(&c.core.buf));
        u.followers.push_back(Some(cid));
        self.pg_forward(cid, uid);
    }

    /// The unit of the client served by `uid` (`old`, or nobody when it left) is complete:
    /// the next follower becomes the client served. Returns it (`None` when it left too).
    pub(crate) fn pg_promote(
        &mut self,
        uid: UpstreamId,
        old: Option<ClientId>,
    ) -> Option<ClientId> {
        let u = self.upstreams.pg_mut(uid)?;
        let next = u.followers.pop_front()?;
        let was_attached = matches!(u.core.phase, UpPhase::Attached(_));
        u.busy_since = self.now;
        u.core.phase = match next {
            Some(cid) => UpPhase::Attached(cid),
            None => UpPhase::Resetting,
        };
        let route = u.core.route;
        let pool = &mut self.pools[route];
        match (was_attached, next.is_some()) {
            (true, false) => pool.detach(false),
            (false, true) => pool.attach(),
            _ => {}
        }
        if let Some(c) = old.and_then(|o| self.clients.pg_mut(o)) {
            c.core.upstream = None;
            pool.deactivate();
            if !c.core.buf.is_empty() {
                self.ready.extend(old);
            }
        }
        let cid = next?;
        let c = self.clients.pg_mut(cid)?;
        c.queued_on = None;
        c.core.upstream = Some(uid);
        if !c.core.buf.is_empty() {
            self.ready.push_back(cid);
        }
        if std::mem::take(&mut c.cancel_requested) {
            self.pg_forward_cancel(uid);
        }
        Some(cid)
    }

    /// Sends a CancelRequest for whatever runs on `uid`; no client queues behind it after that
    /// (the cancel might arrive after the query it was meant for).
    pub(crate) fn pg_forward_cancel(&mut self, uid: UpstreamId) {
        let Some(u) = self.upstreams.pg_mut(uid) else {
            return;
        };
        if let Some(bytes) = u.cancel_request() {
            u.pipeline_ok = false;
            self.actions.push_back(Action::SendCancel {
                route: u.core.route,
                upstream: uid,
                bytes,
            });
            // The cancel may land after the running unit ended, on a follower's: their
            // answers are held back until their own unit ends, and run again if it did.
            let followers: Vec<ClientId> = u.followers.iter().flatten().copied().collect();
            for f in followers {
                if let Some(c) = self.clients.pg_mut(f) {
                    c.held.get_or_insert_with(BytesMut::new);
                }
            }
            self.cancel_sent(uid);
        }
    }

    /// The unit client `cid` pipelined has been answered in full (its answers so far have been
    /// sent or held). Held answers are released, unless a cancel meant for another client hit
    /// the unit: then nothing reached the client, and the unit goes back in front of its input
    /// to run again (an autocommit unit that was cancelled left nothing behind).
    pub(crate) fn pg_unit_end(&mut self, cid: ClientId) {
        let Some(c) = self.clients.pg_mut(cid) else {
            return;
        };
        let unit = c.unit.take();
        let Some(held) = c.held.take() else {
            return;
        };
        match unit.filter(|_| cancelled_by_signal(&held, &self.limits)) {
            Some(unit) => {
                let mut buf = BytesMut::with_capacity(unit.len() + c.core.buf.len());
                buf.extend_from_slice(&unit);
                buf.extend_from_slice(&c.core.buf);
                c.core.buf = buf;
                self.pools[c.core.route].stats.pipelined_retries += 1;
            }
            None => self.actions.push_back(Action::SendClient {
                id: cid,
                bytes: held.freeze(),
            }),
        }
    }
}

/// Whether held answers include the error a cancel request causes (57014, "canceling
/// statement due to user request"; a statement timeout has the same code, not this message).
fn cancelled_by_signal(held: &[u8], limits: &Limits) -> bool {
    let mut rest = held;
    while let Ok(Some(h)) = peek_header(rest, Direction::Backend, limits) {
        let Some(frame) = rest.get(..h.frame_len) else {
            return false;
        };
        let body = &frame[HEADER_LEN..];
        if h.tag == b'E'
            && peek::error_field(body, b'C') == Some(QUERY_CANCELED.as_bytes())
            && peek::error_field(body, b'M') == Some(CANCELED_BY_USER)
        {
            return true;
        }
        rest = &rest[h.frame_len..];
    }
    false
}

/// Most answer bytes held back for one at-risk follower; past it they go out (a cancel that
/// hits the unit then reaches the client, as without pipelining it would not).
pub(crate) const MAX_HELD: usize = 256 * 1024;

/// PostgreSQL's message for a query stopped by a CancelRequest.
const CANCELED_BY_USER: &[u8] = b"canceling statement due to user request";

#[cfg(test)]
mod tests {
    use super::super::statements::Named;
    use super::*;
    use crate::pg::frontend::{Bind, Describe, Execute, FrontendMessage, Parse, TargetKind};
    use std::collections::HashMap;

    fn encode(msgs: &[FrontendMessage]) -> BytesMut {
        let mut b = BytesMut::new();
        for m in msgs {
            m.encode(&mut b).unwrap();
        }
        b
    }

    fn query(sql: &str) -> FrontendMessage {
        FrontendMessage::Query(Bytes::copy_from_slice(sql.as_bytes()))
    }

    fn parse(name: &str, sql: &str) -> FrontendMessage {
        FrontendMessage::Parse(Parse {
            name: Bytes::copy_from_slice(name.as_bytes()),
            query: Bytes::copy_from_slice(sql.as_bytes()),
            param_types: Vec::new(),
        })
    }

    fn bind(stmt: &str) -> FrontendMessage {
        FrontendMessage::Bind(Bind {
            portal: Bytes::new(),
            statement: Bytes::copy_from_slice(stmt.as_bytes()),
            param_formats: Vec::new(),
            params: Vec::new(),
            result_formats: Vec::new(),
        })
    }

    fn execute() -> FrontendMessage {
        FrontendMessage::Execute(Execute {
            portal: Bytes::new(),
            max_rows: 0,
        })
    }

    fn describe_portal() -> FrontendMessage {
        FrontendMessage::Describe(Describe {
            kind: TargetKind::Portal,
            name: Bytes::new(),
        })
    }

    fn unit(msgs: &[FrontendMessage], stmts: &Names) -> bool {
        let mut verdicts = SqlVerdicts::default();
        is_autocommit_unit(&encode(msgs), stmts, &mut verdicts, &Limits::default())
    }

    #[test]
    fn one_simple_autocommit_query_is_a_unit() {
        let none = HashMap::new();
        assert!(unit(&[query("SELECT 1")], &none));
        assert!(!unit(&[query("BEGIN")], &none));
        assert!(!unit(&[query("SELECT 1"), query("SELECT 1")], &none));
        let mut partial = encode(&[query("SELECT 1")]);
        partial.truncate(partial.len() - 1);
        let mut verdicts = SqlVerdicts::default();
        assert!(!is_autocommit_unit(
            &partial,
            &none,
            &mut verdicts,
            &Limits::default()
        ));
    }

    #[test]
    fn extended_units_end_with_their_only_sync() {
        let none = HashMap::new();
        let s = FrontendMessage::Sync;
        let p = || parse("", "SELECT $1");
        assert!(unit(
            &[p(), bind(""), describe_portal(), execute(), s.clone()],
            &none
        ));
        assert!(!unit(&[p(), bind(""), execute()], &none), "no Sync yet");
        assert!(
            !unit(
                &[p(), bind(""), execute(), s.clone(), query("SELECT 1")],
                &none
            ),
            "more after the Sync"
        );
        assert!(
            !unit(&[bind(""), execute(), s.clone()], &none),
            "unnamed statement from an earlier unit"
        );
        assert!(!unit(
            &[parse("", "BEGIN"), bind(""), execute(), s.clone()],
            &none
        ));
        assert!(!unit(&[parse("s1", "SELECT 1"), s.clone()], &none));
        assert!(!unit(&[FrontendMessage::Flush, s.clone()], &none));
        assert!(!unit(&[s], &none), "a lone Sync is not worth it");
    }

    #[test]
    fn named_statements_must_be_known_and_autocommit() {
        let mut registry = super::super::statements::Registry::default();
        let mut stmts = HashMap::new();
        let select = registry.intern(Bytes::from_static(b"SELECT 1"), Vec::new());
        let begin = registry.intern(Bytes::from_static(b"BEGIN"), Vec::new());
        stmts.insert(Bytes::from_static(b"sel"), Named::new(select));
        stmts.insert(Bytes::from_static(b"beg"), Named::new(begin));
        let s = FrontendMessage::Sync;
        assert!(unit(&[bind("sel"), execute(), s.clone()], &stmts));
        assert!(!unit(&[bind("beg"), execute(), s.clone()], &stmts));
        assert!(!unit(&[bind("unknown"), execute(), s], &stmts));
    }
}
