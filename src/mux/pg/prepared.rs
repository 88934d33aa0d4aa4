//! A client's prepared statements on whichever upstream it lands on: named statements shared
//! per SQL text and prepared lazily, the unnamed statement prepared again where a later Bind
//! lands, `DEALLOCATE`, and the errors PostgreSQL reports at a message's position (42P05, a
//! refused Parse, a changed result type), raised by the server itself in that place.

use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use super::expect::Kind;
use super::peek;
use super::relay::Record;
use super::statements::{server_name, Named, Statement};
use crate::mux::engine::Engine;
use crate::mux::ids::{ClientId, UpstreamId};
use crate::mux::Action;
use crate::pg::backend::BackendMessage;
use crate::pg::frame::{encode_frame, Frame};
use crate::pg::frontend::{
    encode_bind_with_statement, Bind, Close, Execute, FrontendMessage, Parse, TargetKind,
};
use crate::pg::sql::deallocated_name;
use crate::pg::sqlstate::{self, PROTOCOL_VIOLATION};

impl Engine {
    /// A Bind or Describe of the unnamed statement on an upstream where this client did not
    /// parse it. It goes on after a swallowed Parse of the client's unnamed statement when it
    /// has one (the driver parsed it in an earlier round trip, on another upstream), or else
    /// after a swallowed Close, so that the server answers as for a statement that does not
    /// exist rather than running another client's.
    pub(super) fn unnamed_elsewhere(
        &mut self,
        cid: ClientId,
        uid: UpstreamId,
        frame: &Frame,
        kind: Kind,
    ) -> Result<(), String> {
        let mut out = BytesMut::new();
        self.unnamed_prefix(cid, uid, &mut out)?;
        out.extend_from_slice(frame.as_bytes());
        self.expect(uid, kind, false, None);
        self.actions.push_back(Action::SendUpstream {
            id: uid,
            bytes: out.freeze(),
        });
        Ok(())
    }

    /// What goes before a use of the unnamed statement on an upstream where this client did
    /// not parse it (see [`Engine::unnamed_elsewhere`]), in `out`.
    pub(super) fn unnamed_prefix(
        &mut self,
        cid: ClientId,
        uid: UpstreamId,
        out: &mut BytesMut,
    ) -> Result<(), String> {
        let unnamed = self.clients.pg(cid).and_then(|c| c.unnamed.clone());
        match unnamed {
            Some(body) => {
                encode_frame(out, b'P', |w| {
                    w.extend_from_slice(&body);
                    Ok(())
                })
                .map_err(|e| e.to_string())?;
                self.expect(uid, Kind::Parse, true, None);
                if let Some(u) = self.upstreams.pg_mut(uid) {
                    u.unnamed_owner = Some(cid);
                }
            }
            None => {
                FrontendMessage::Close(Close {
                    kind: TargetKind::Statement,
                    name: Bytes::new(),
                })
                .encode(out)
                .map_err(|e| e.to_string())?;
                self.expect(uid, Kind::Close, true, None);
            }
        }
        Ok(())
    }

    /// A Bind of a named statement: only the statement name is rewritten (the parameter
    /// values are copied as they are, never decoded), after a swallowed Parse when this
    /// upstream has not prepared the statement yet.
    pub(super) fn rewrite_bind(
        &mut self,
        cid: ClientId,
        uid: UpstreamId,
        frame: &Frame,
    ) -> Result<(), String> {
        let (portal, name, rest) =
            crate::pg::frontend::bind_names(&frame.body()).map_err(|e| e.to_string())?;
        let mut out = BytesMut::with_capacity(frame.as_bytes().len() + 16);
        let Some(server) = self.bind_target(cid, uid, &name, &mut out)? else {
            return Ok(());
        };
        encode_bind_with_statement(&mut out, &portal, &server, &rest).map_err(|e| e.to_string())?;
        self.actions.push_back(Action::SendUpstream {
            id: uid,
            bytes: out.freeze(),
        });
        Ok(())
    }

    /// The server-side statement a client's Bind of `name` goes to, after what must precede
    /// it in `out` (a swallowed Parse when this upstream has not prepared it). `None`: the
    /// Bind was answered in its place (the statement's result type changed since the client
    /// prepared it) and must not be sent.
    pub(super) fn bind_target(
        &mut self,
        cid: ClientId,
        uid: UpstreamId,
        name: &[u8],
        out: &mut BytesMut,
    ) -> Result<Option<Vec<u8>>, String> {
        let stale = self
            .clients
            .pg(cid)
            .and_then(|c| c.stmts.get(name))
            .is_some_and(Named::is_stale);
        if stale {
            self.raise_in_place(
                uid,
                sqlstate::FEATURE_NOT_SUPPORTED,
                "cached plan must not change result type",
            )?;
            return Ok(None);
        }
        let stmt = self.client_statement(cid, name);
        if let Some(s) = stmt.as_ref().filter(|s| s.changes_settings) {
            // A named statement changes settings where it runs, not where it was
            // parsed: the two may be different upstreams.
            let query = s.query.clone();
            self.note_effects(cid, uid, &query, Record::Settings);
        }
        let server = self.prepare_on(uid, stmt.as_ref(), out, name);
        self.expect(uid, Kind::Bind, false, stmt);
        Ok(Some(server))
    }

    /// Whether `sql` deallocates one of the client's own (pooled) statements.
    pub(super) fn deallocates_own(&mut self, cid: ClientId, sql: &[u8]) -> bool {
        self.pg.sql_verdicts.get(sql).effects && self.client_deallocation(cid, sql).is_some()
    }

    /// The client's statement name `sql` deallocates, if it is one of the client's own.
    pub(super) fn client_deallocation(&self, cid: ClientId, sql: &[u8]) -> Option<Bytes> {
        let name = Bytes::from(deallocated_name(sql)?);
        self.clients
            .pg(cid)?
            .stmts
            .contains_key(&name)
            .then_some(name)
    }

    /// `DEALLOCATE name` of one of the client's own statements: the name goes, and the SQL
    /// returned (`None` when the name is not the client's) drops the shared statement on this
    /// upstream instead (the others prepare it
    /// again here when they need it), after preparing it here first when it is not (in `out`,
    /// ended by a swallowed Sync), so that the server answers as for the client's own.
    pub(super) fn deallocate_named(
        &mut self,
        cid: ClientId,
        uid: UpstreamId,
        name: &[u8],
        out: &mut BytesMut,
    ) -> Option<Bytes> {
        let (route, named) = self.clients.pg_mut(cid).and_then(|c| {
            let named = c.stmts.remove(name)?;
            Some((c.core.route, named))
        })?;
        self.pools[route].ext.pg().statements.release(&named.stmt);
        let id = named.stmt.server_id();
        let prepared = self
            .upstreams
            .pg_mut(uid)
            .is_some_and(|u| u.prepared.touch(id));
        if !prepared {
            self.note_prepared(uid, id, out);
            let sync = FrontendMessage::Parse(parse_of(&named.stmt))
                .encode(out)
                .and_then(|()| FrontendMessage::Sync.encode(out));
            if sync.is_ok() {
                self.expect(uid, Kind::Parse, true, None);
                self.expect(uid, Kind::Sync, true, None);
            }
        }
        if let Some(u) = self.upstreams.pg_mut(uid) {
            u.prepared.remove(id);
        }
        Some(format!("DEALLOCATE {}", String::from_utf8_lossy(&server_name(id))).into())
    }

    /// Answers the client's extended-protocol message with an error the server raises in its
    /// place (Parse, Bind and Execute of [`raise_sql`] on the unnamed statement and portal),
    /// so that what follows behaves as after any server error: the rest of the unit is
    /// skipped until Sync and a transaction block is aborted.
    pub(super) fn raise_in_place(
        &mut self,
        uid: UpstreamId,
        sqlstate: &str,
        message: &str,
    ) -> Result<(), String> {
        let mut out = BytesMut::new();
        let messages = [
            FrontendMessage::Parse(Parse {
                name: Bytes::new(),
                query: raise_sql(sqlstate, message),
                param_types: Vec::new(),
            }),
            FrontendMessage::Bind(Bind {
                portal: Bytes::new(),
                statement: Bytes::new(),
                param_formats: Vec::new(),
                params: Vec::new(),
                result_formats: Vec::new(),
            }),
            FrontendMessage::Execute(Execute {
                portal: Bytes::new(),
                max_rows: 0,
            }),
        ];
        for m in &messages {
            m.encode(&mut out).map_err(|e| e.to_string())?;
        }
        self.expect(uid, Kind::Parse, true, None);
        self.expect(uid, Kind::Bind, true, None);
        // The error takes the place of the client's own message.
        self.expect(uid, Kind::Execute, false, None);
        if let Some(u) = self.upstreams.pg_mut(uid) {
            u.unnamed_owner = None;
        }
        self.actions.push_back(Action::SendUpstream {
            id: uid,
            bytes: out.freeze(),
        });
        Ok(())
    }

    /// A named Parse: map the client's name to the pooled statement and prepare it on this
    /// upstream unless it already is (then ParseComplete is answered locally, in order).
    pub(super) fn parse_named(
        &mut self,
        cid: ClientId,
        uid: UpstreamId,
        p: Parse,
    ) -> Result<(), String> {
        if self
            .clients
            .pg(cid)
            .is_some_and(|c| c.stmts.contains_key(&p.name))
        {
            let message = format!(
                "prepared statement \"{}\" already exists",
                String::from_utf8_lossy(&p.name)
            );
            return self.raise_in_place(uid, sqlstate::DUPLICATE_PREPARED_STATEMENT, &message);
        }
        // Pins count from the Parse; setting changes from each Bind (see above).
        if self.note_effects(cid, uid, &p.query, Record::Pins) {
            return self.raise_in_place(uid, sqlstate::FEATURE_NOT_SUPPORTED, REFUSAL);
        }
        let Some(c) = self.clients.pg_mut(cid) else {
            return Ok(());
        };
        let pool = &mut self.pools[c.core.route];
        let stmt = pool.ext.pg().statements.intern(p.query, p.param_types);
        if let Some(old) = c.stmts.insert(p.name, Named::new(Rc::clone(&stmt))) {
            pool.ext.pg().statements.release(&old.stmt);
        }
        let mut out = BytesMut::new();
        let prepared = self
            .upstreams
            .pg_mut(uid)
            .is_some_and(|u| u.prepared.touch(stmt.server_id()));
        if prepared {
            self.synthetic(uid, BackendMessage::ParseComplete);
            return Ok(());
        }
        self.evict_for(uid, &mut out);
        self.note_prepared(uid, stmt.server_id(), &mut out);
        FrontendMessage::Parse(parse_of(&stmt))
            .encode(&mut out)
            .map_err(|e| e.to_string())?;
        self.expect(uid, Kind::Parse, false, Some(stmt));
        self.actions.push_back(Action::SendUpstream {
            id: uid,
            bytes: out.freeze(),
        });
        Ok(())
    }

    /// The pooled statement a client calls `name`.
    pub(super) fn client_statement(&self, cid: ClientId, name: &[u8]) -> Option<Rc<Statement>> {
        self.clients
            .pg(cid)?
            .stmts
            .get(name)
            .map(|n| Rc::clone(&n.stmt))
    }

    /// The server-side name for a client statement, preparing it on the upstream first
    /// (a swallowed Parse in `out`) when this upstream has not seen it. Unknown names pass
    /// through, except that they can never address muxql's own statements.
    pub(super) fn prepare_on(
        &mut self,
        uid: UpstreamId,
        stmt: Option<&Rc<Statement>>,
        out: &mut BytesMut,
        client_name: &[u8],
    ) -> Vec<u8> {
        let Some(stmt) = stmt else {
            return if client_name.starts_with(b"muxql_") {
                [b"client_".as_slice(), client_name].concat()
            } else {
                client_name.to_vec()
            };
        };
        let id = stmt.server_id();
        let prepared = self
            .upstreams
            .pg_mut(uid)
            .is_some_and(|u| u.prepared.touch(id));
        if !prepared {
            self.evict_for(uid, out);
            self.note_prepared(uid, id, out);
            if FrontendMessage::Parse(parse_of(stmt)).encode(out).is_ok() {
                self.expect(uid, Kind::Parse, true, Some(Rc::clone(stmt)));
            }
        }
        server_name(id)
    }

    /// Records statement `id` as prepared on `uid` by the Parse about to follow in `out`,
    /// after a swallowed Close when the server may still hold an older copy.
    pub(super) fn note_prepared(&mut self, uid: UpstreamId, id: u64, out: &mut BytesMut) {
        let Some(u) = self.upstreams.pg_mut(uid) else {
            return;
        };
        if u.prepared.insert(id) {
            let close = FrontendMessage::Close(Close {
                kind: TargetKind::Statement,
                name: server_name(id).into(),
            });
            if close.encode(out).is_ok() {
                self.expect(uid, Kind::Close, true, None);
            }
        }
    }

    /// Closes the least recently used statement when the upstream's cache is full.
    pub(super) fn evict_for(&mut self, uid: UpstreamId, out: &mut BytesMut) {
        let capacity = self.config.statement_cache_size;
        let Some(u) = self.upstreams.pg_mut(uid) else {
            return;
        };
        if u.prepared.len() < capacity {
            return;
        }
        if let Some(old) = u.prepared.evict_oldest() {
            let close = FrontendMessage::Close(Close {
                kind: TargetKind::Statement,
                name: server_name(old).into(),
            });
            if close.encode(out).is_ok() {
                self.expect(uid, Kind::Close, true, None);
            }
        }
    }
}

/// What a Bind or a statement Describe of the unnamed statement expects, if `frame` is one.
pub(super) fn unnamed_statement_use(frame: &Frame) -> Option<Kind> {
    let body = frame.body();
    match frame.tag() {
        b'B' => (peek::bind_statement(&body) == Some(b"")).then_some(Kind::Bind),
        b'D' => (peek::target(&body) == Some((b'S', b""))).then_some(Kind::DescribeStatement),
        _ => None,
    }
}

/// Whether an ErrorResponse body is PostgreSQL's refusal of a Bind whose result formats do
/// not match the statement's columns.
pub(super) fn result_formats_mismatch(body: &[u8]) -> bool {
    peek::error_field(body, b'C') == Some(PROTOCOL_VIOLATION.as_bytes())
        && peek::error_field(body, b'M').is_some_and(|m| {
            m.starts_with(b"bind message has ")
                && m.windows(26).any(|w| w == b" result formats but query ")
        })
}

/// The ErrorResponse PostgreSQL sends for a statement whose result type changed.
pub(super) fn plan_changed_error() -> Bytes {
    let mut out = BytesMut::new();
    crate::pg::backend::encode_error_response(
        &mut out,
        "ERROR",
        sqlstate::FEATURE_NOT_SUPPORTED,
        "cached plan must not change result type",
    )
    .map_or_else(|_| Bytes::new(), |()| out.freeze())
}

/// Whether an ErrorResponse body says a cached plan changed result type (SQLSTATE 0A000).
pub(super) fn plan_changed(body: &[u8]) -> bool {
    peek::error_field(body, b'C') == Some(sqlstate::FEATURE_NOT_SUPPORTED.as_bytes())
        && peek::error_field(body, b'M').is_some_and(|m| m.windows(11).any(|w| w == b"cached plan"))
}

/// The Parse that prepares a pooled statement under its server-side name.
fn parse_of(stmt: &Statement) -> Parse {
    Parse {
        name: server_name(stmt.server_id()).into(),
        query: stmt.query.clone(),
        param_types: stmt.param_types.to_vec(),
    }
}

/// SQL that fails with feature_not_supported, sent instead of a statement the pin policy
/// refuses, so the server itself reports the error with correct transaction semantics.
pub(super) fn rejection_sql() -> Bytes {
    raise_sql(sqlstate::FEATURE_NOT_SUPPORTED, REFUSAL)
}

/// A statement that fails with `sqlstate` and `message` when it runs: the server raises the
/// error itself, so that it aborts a transaction block and skips to Sync exactly as any other.
/// `message` may hold anything a client sent (a statement name): it is an escape string
/// literal, inside a dollar quote whose tag does not occur in it.
fn raise_sql(sqlstate: &str, message: &str) -> Bytes {
    let literal = message.replace('\\', "\\\\").replace('\'', "''");
    let mut tag = String::from("muxql");
    while literal.contains(&format!("${tag}$")) {
        tag.push('_');
    }
    format!(
        "DO ${tag}$BEGIN RAISE EXCEPTION USING ERRCODE = '{sqlstate}', MESSAGE = E'{literal}'; \
         END${tag}$"
    )
    .into()
}

/// Why a statement is refused under [`PinPolicy::Reject`].
pub(super) const REFUSAL: &str =
    "muxql: statement refused: its session state cannot be kept in transaction pooling mode";
