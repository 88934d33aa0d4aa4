//! What an upstream still owes: one entry per request forwarded or injected, in order, plus
//! responses muxql answers itself, which are released to the client in their place.
//!
//! Protocol docs, "Extended Query": after an ErrorResponse the server discards every message
//! up to the next Sync, so requests queued behind a failed one get no answer and are dropped.

use std::collections::VecDeque;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use super::statements::Statement;

/// The kind of request a response answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Parse: ParseComplete.
    Parse,
    /// Bind: BindComplete.
    Bind,
    /// Describe of a statement: ParameterDescription, then RowDescription or NoData.
    DescribeStatement,
    /// Describe of a portal: RowDescription or NoData.
    DescribePortal,
    /// Execute: rows or COPY, then CommandComplete, EmptyQueryResponse or PortalSuspended.
    Execute,
    /// Close: CloseComplete.
    Close,
    /// Sync: ReadyForQuery (possibly after an ErrorResponse from an implicit commit).
    Sync,
    /// Simple Query or FunctionCall: anything up to ReadyForQuery.
    Query,
    /// CopyDone or CopyFail from the client: never answered; marks where a copy-in ends, so
    /// that a Sync sent before it is known to get no answer (protocol docs, "COPY Operations":
    /// the server ignores Sync during copy-in).
    CopyEnd,
}

impl Kind {
    /// Whether the request belongs to the extended protocol's discard-until-Sync rule.
    fn is_extended(self) -> bool {
        !matches!(self, Kind::Sync | Kind::Query | Kind::CopyEnd)
    }
}

/// A request awaiting its response.
#[derive(Debug)]
pub(crate) struct Pending {
    /// What was sent.
    pub(crate) kind: Kind,
    /// Whether the response is muxql's own business and must not reach the client.
    pub(crate) swallow: bool,
    /// The pooled statement a Parse prepares or a Bind uses.
    pub(crate) stmt: Option<Rc<Statement>>,
    /// The statement's server id when the request was sent (0 without a statement).
    pub(crate) server_id: u64,
}

/// An entry of the queue.
#[derive(Debug)]
enum Item {
    Response(Pending),
    Synthetic(Bytes),
}

/// What to do with one response message.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Pass it on (or swallow it when `swallow`); `done` carries the completed request.
    Accept {
        /// Whether the client must not see it.
        swallow: bool,
        /// The request this message completed, if it did.
        done: Option<Pending>,
        /// Requests dropped because the server now discards until Sync.
        dropped: Vec<Pending>,
    },
    /// No request expects this message: the connection is out of step.
    Unexpected,
}

/// The ordered requests of one upstream connection.
#[derive(Debug, Default)]
pub(crate) struct ExpectQueue {
    items: VecDeque<Item>,
    skipping: bool,
    /// The server is in copy-in and the client has not ended it yet: its Syncs get no answer.
    copy_in: bool,
}

impl ExpectQueue {
    /// Records a forwarded or injected request; returns it back when the server will ignore it
    /// (discarding until Sync after an error).
    pub(crate) fn push(&mut self, pending: Pending) -> Option<Pending> {
        match pending.kind {
            Kind::CopyEnd if self.copy_in || self.items.is_empty() => {
                self.copy_in = false;
                return None;
            }
            Kind::Sync if self.copy_in => return Some(pending),
            Kind::Sync => self.skipping = false,
            _ if self.skipping => return Some(pending),
            _ => {}
        }
        self.items.push_back(Item::Response(pending));
        None
    }

    /// Queues a response muxql answers itself, released once everything before it is answered.
    pub(crate) fn push_synthetic(&mut self, bytes: Bytes) {
        if !self.skipping {
            self.items.push_back(Item::Synthetic(bytes));
        }
    }

    /// Takes the synthetic response at the head of the queue, if that is what comes next.
    pub(crate) fn pop_synthetic(&mut self) -> Option<Bytes> {
        match self.items.front() {
            Some(Item::Synthetic(_)) => match self.items.pop_front() {
                Some(Item::Synthetic(b)) => Some(b),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether the server owes nothing and is not discarding input.
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty() && !self.skipping
    }

    /// Whether the head of the queue waits for a server response (not a local answer).
    pub(crate) fn front_is_response(&self) -> bool {
        matches!(self.items.front(), Some(Item::Response(_)))
    }

    /// Whether a request whose answer goes to the client is outstanding.
    pub(crate) fn owes_client(&self) -> bool {
        self.items.iter().any(|i| {
            matches!(i, Item::Response(p) if !p.swallow && p.kind != Kind::CopyEnd)
                || matches!(i, Item::Synthetic(_))
        })
    }

    /// Whether a Query (simple protocol) or Sync is outstanding: a query is running.
    pub(crate) fn busy(&self) -> bool {
        !self.items.is_empty()
    }

    /// Matches backend message `tag` against the head of the queue.
    pub(crate) fn on_response(&mut self, tag: u8) -> Verdict {
        let Some(Item::Response(front)) = self.items.front() else {
            return Verdict::Unexpected;
        };
        let (kind, swallow) = (front.kind, front.swallow);
        let done = match (kind, tag) {
            (Kind::Parse, b'1') | (Kind::Bind, b'2') | (Kind::Close, b'3') => true,
            (Kind::DescribeStatement, b't') => false,
            (Kind::DescribeStatement | Kind::DescribePortal, b'T' | b'n') => true,
            (Kind::Execute, b'D' | b'd' | b'c' | b'G' | b'H' | b'W') => false,
            (Kind::Execute, b'C' | b'I' | b's') => true,
            (Kind::Sync, b'E') => false,
            (Kind::Sync | Kind::Query, b'Z') => true,
            (Kind::Query, _) => false,
            (_, b'E') => true,
            _ => return Verdict::Unexpected,
        };
        let done = if done {
            match self.items.pop_front() {
                Some(Item::Response(p)) => Some(p),
                _ => None,
            }
        } else {
            None
        };
        match tag {
            b'G' => self.copy_in_started(),
            // An error ends copy-in: the server then answers the client's next Sync.
            b'E' => self.copy_in = false,
            _ => {}
        }
        let dropped = if tag == b'E' && kind.is_extended() {
            self.discard_until_sync()
        } else {
            Vec::new()
        };
        self.pop_copy_ends();
        Verdict::Accept {
            swallow,
            done,
            dropped,
        }
    }

    /// CopyInResponse: the Syncs the client sent since the request, before ending the copy,
    /// get no answer; until the client's CopyDone or CopyFail, neither do the ones to come.
    fn copy_in_started(&mut self) {
        let mut i = 1;
        while let Some(item) = self.items.get(i) {
            match item {
                Item::Response(p) if p.kind == Kind::CopyEnd => return,
                Item::Response(p) if p.kind == Kind::Sync => {
                    self.items.remove(i);
                }
                _ => i += 1,
            }
        }
        self.copy_in = true;
    }

    /// Drops the copy-end marks at the head of the queue: nothing answers them.
    fn pop_copy_ends(&mut self) {
        while matches!(self.items.front(), Some(Item::Response(p)) if p.kind == Kind::CopyEnd) {
            self.items.pop_front();
        }
    }

    /// What the client side is owed when the server is lost, one entry per unit (a simple
    /// Query, or extended messages up to their Sync), in order: local answers queued before
    /// the unit failed, then `error` (as if the server had failed the unit) and `ready`.
    /// `None` when the queue cannot be answered that way: a copy-in runs (the client goes on
    /// sending data), or the last unit has no Sync yet (the client's next messages would have
    /// to be discarded up to it).
    pub(crate) fn lost_units(&self, error: &[u8], ready: &[u8]) -> Option<Vec<BytesMut>> {
        if self.copy_in || self.skipping {
            return None;
        }
        let mut units = Vec::new();
        let mut unit = BytesMut::new();
        let mut failed = false;
        let mut open = false;
        for item in &self.items {
            match item {
                Item::Synthetic(b) if !failed => {
                    unit.extend_from_slice(b);
                    open = true;
                }
                Item::Synthetic(_) => {}
                Item::Response(p) if p.swallow || p.kind == Kind::CopyEnd => {}
                Item::Response(p) if matches!(p.kind, Kind::Query | Kind::Sync) => {
                    if !failed {
                        unit.extend_from_slice(error);
                    }
                    unit.extend_from_slice(ready);
                    units.push(std::mem::take(&mut unit));
                    (failed, open) = (false, false);
                }
                Item::Response(_) => {
                    if !failed {
                        unit.extend_from_slice(error);
                        failed = true;
                    }
                    open = true;
                }
            }
        }
        (!open).then_some(units)
    }

    /// Drops queued requests up to the next Sync; the server will not answer them.
    fn discard_until_sync(&mut self) -> Vec<Pending> {
        let mut dropped = Vec::new();
        while let Some(item) = self.items.front() {
            if matches!(item, Item::Response(p) if p.kind == Kind::Sync) {
                return dropped;
            }
            if let Some(Item::Response(p)) = self.items.pop_front() {
                dropped.push(p);
            }
        }
        self.skipping = true;
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_units_fail_each_unit_once_and_end_it() {
        let mut q = ExpectQueue::default();
        q.push(pending(Kind::Query));
        q.push_synthetic(Bytes::from_static(b"1"));
        q.push(pending(Kind::Bind));
        q.push(pending(Kind::Execute));
        q.push(pending(Kind::Sync));
        let units = q.lost_units(b"E", b"Z").expect("answerable");
        assert_eq!(
            units,
            vec![BytesMut::from(&b"EZ"[..]), BytesMut::from(&b"1EZ"[..])]
        );
        // A unit without its Sync yet cannot be answered: the client's next messages would
        // have to be discarded.
        q.push(pending(Kind::Parse));
        assert_eq!(q.lost_units(b"E", b"Z"), None);
        // muxql's own requests get nothing.
        let mut q = ExpectQueue::default();
        let mut own = pending(Kind::Query);
        own.swallow = true;
        q.push(own);
        assert_eq!(q.lost_units(b"E", b"Z"), Some(vec![]));
    }

    fn pending(kind: Kind) -> Pending {
        Pending {
            kind,
            swallow: false,
            stmt: None,
            server_id: 0,
        }
    }

    fn accept_done(v: Verdict) -> Option<Kind> {
        match v {
            Verdict::Accept { done, .. } => done.map(|p| p.kind),
            Verdict::Unexpected => panic!("unexpected"),
        }
    }

    #[test]
    fn extended_unit_completes_in_order() {
        let mut q = ExpectQueue::default();
        for k in [
            Kind::Parse,
            Kind::Bind,
            Kind::DescribePortal,
            Kind::Execute,
            Kind::Sync,
        ] {
            q.push(pending(k));
        }
        assert_eq!(accept_done(q.on_response(b'1')), Some(Kind::Parse));
        assert_eq!(accept_done(q.on_response(b'2')), Some(Kind::Bind));
        assert_eq!(accept_done(q.on_response(b'T')), Some(Kind::DescribePortal));
        assert_eq!(accept_done(q.on_response(b'D')), None);
        assert_eq!(accept_done(q.on_response(b'C')), Some(Kind::Execute));
        assert!(!q.is_empty());
        assert_eq!(accept_done(q.on_response(b'Z')), Some(Kind::Sync));
        assert!(q.is_empty());
    }

    #[test]
    fn error_discards_until_sync_including_synthetics() {
        let mut q = ExpectQueue::default();
        q.push(pending(Kind::Parse));
        q.push(pending(Kind::Bind));
        q.push_synthetic(Bytes::from_static(b"3\0\0\0\x04"));
        q.push(pending(Kind::Execute));
        q.push(pending(Kind::Sync));
        match q.on_response(b'E') {
            Verdict::Accept { done, dropped, .. } => {
                assert_eq!(done.map(|p| p.kind), Some(Kind::Parse));
                assert_eq!(dropped.len(), 2);
            }
            Verdict::Unexpected => panic!("unexpected"),
        }
        assert_eq!(q.pop_synthetic(), None);
        assert_eq!(accept_done(q.on_response(b'Z')), Some(Kind::Sync));
        assert!(q.is_empty());
    }

    #[test]
    fn error_without_sync_skips_later_requests_until_one_arrives() {
        let mut q = ExpectQueue::default();
        q.push(pending(Kind::Parse));
        let _ = q.on_response(b'E');
        assert!(!q.is_empty());
        assert!(q.push(pending(Kind::Bind)).is_some());
        q.push_synthetic(Bytes::from_static(b"x"));
        assert!(q.push(pending(Kind::Sync)).is_none());
        assert_eq!(q.pop_synthetic(), None);
        assert_eq!(accept_done(q.on_response(b'Z')), Some(Kind::Sync));
        assert!(q.is_empty());
    }

    #[test]
    fn query_runs_until_ready_for_query_even_after_errors() {
        let mut q = ExpectQueue::default();
        q.push(pending(Kind::Query));
        for tag in [b'T', b'D', b'C', b'E'] {
            assert_eq!(accept_done(q.on_response(tag)), None);
        }
        assert_eq!(accept_done(q.on_response(b'Z')), Some(Kind::Query));
    }

    #[test]
    fn out_of_step_responses_are_flagged() {
        let mut q = ExpectQueue::default();
        assert!(matches!(q.on_response(b'Z'), Verdict::Unexpected));
        q.push(pending(Kind::Bind));
        assert!(matches!(q.on_response(b'1'), Verdict::Unexpected));
    }

    #[test]
    fn synthetic_waits_for_earlier_responses() {
        let mut q = ExpectQueue::default();
        q.push(pending(Kind::Bind));
        q.push_synthetic(Bytes::from_static(b"x"));
        assert_eq!(q.pop_synthetic(), None);
        let _ = q.on_response(b'2');
        assert_eq!(q.pop_synthetic(), Some(Bytes::from_static(b"x")));
    }
}
