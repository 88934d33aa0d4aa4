//! A transaction lost with its server connection. The server rolled it back; the client was
//! told with an ErrorResponse and `ReadyForQuery 'E'`, and is now in what PostgreSQL calls an
//! aborted transaction block. muxql answers it as a server does there until the client ends
//! the block: `COMMIT`/`END`/`ROLLBACK`/`ABORT` get `ROLLBACK` and `ReadyForQuery 'I'`, every
//! other command 25P02, extended messages after an error are skipped up to their Sync. Nothing
//! the client sends meanwhile reaches a server: it would run outside the transaction the client
//! believes it is in. Once the block ends, the client goes on on any server connection with its
//! session (settings, prepared statements) as before the transaction.

use bytes::{Bytes, BytesMut};

use crate::mux::engine::Engine;
use crate::mux::ids::ClientId;
use crate::pg::backend::{encode_error_response, BackendMessage, TransactionStatus};
use crate::pg::frame::{peek_header, Direction, Frame, HEADER_LEN};
use crate::pg::frontend::{FrontendMessage, TargetKind};
use crate::pg::sql::is_transaction_end;
use crate::pg::sqlstate::{CONNECTION_FAILURE, IN_FAILED_SQL_TRANSACTION, PROTOCOL_VIOLATION};

/// PostgreSQL's words for a command in an aborted transaction block.
const ABORTED: &str =
    "current transaction is aborted, commands ignored until end of transaction block";

/// Where a client in a lost transaction is in its extended-protocol messages.
#[derive(Debug, Default, Clone)]
pub(crate) struct LostTx {
    /// An error was answered: messages are skipped up to the next Sync.
    skipping: bool,
    /// The unnamed statement, parsed since the loss, ends the transaction.
    unnamed_ends: Option<bool>,
    /// The unnamed portal ends the transaction.
    portal_ends: bool,
    /// A transaction end was executed: the next Sync answers 'I' and the block is over.
    ended: bool,
    /// The loss, not told yet (the client had no request on the server): its next command
    /// gets this 08006 message instead of 25P02, and a COMMIT fails with it.
    announce: Option<String>,
}

impl LostTx {
    /// A lost transaction whose client still has to be told, with `message`.
    pub(crate) fn unannounced(message: String) -> Self {
        LostTx {
            announce: Some(message),
            ..LostTx::default()
        }
    }
}

impl Engine {
    /// Answers what a client in a lost transaction has sent, up to the end of the block;
    /// input after it stays buffered for an upstream.
    pub(crate) fn pg_answer_lost_tx(&mut self, cid: ClientId) {
        let limits = self.limits;
        let mut out = BytesMut::new();
        let outcome = loop {
            let Some(c) = self.clients.pg_mut(cid) else {
                return;
            };
            let Some(state) = c.lost_tx.as_mut() else {
                break Ok(());
            };
            let header = match peek_header(&c.core.buf, Direction::Frontend, &limits) {
                Ok(Some(h)) if c.core.buf.len() >= h.frame_len => h,
                Ok(_) => break Ok(()),
                Err(e) => break Err(e.to_string()),
            };
            let raw = c.core.buf.split_to(header.frame_len).freeze();
            let body = raw.slice(HEADER_LEN..);
            let msg = match FrontendMessage::from_frame(Frame::from_validated(raw)) {
                Ok(m) => m,
                Err(e) => break Err(e.to_string()),
            };
            let unnamed = c.unnamed.clone();
            // As on the server: a simple Query, and a Parse of the unnamed statement, drop the
            // unnamed statement; only a transaction end can be parsed again here.
            if !state.skipping {
                match &msg {
                    FrontendMessage::Query(_) => c.unnamed = None,
                    FrontendMessage::Parse(p) if p.name.is_empty() => {
                        let ok = state.announce.is_none() && is_transaction_end(&p.query);
                        c.unnamed = ok.then_some(body);
                    }
                    _ => {}
                }
            }
            let named_ends = |name: &Bytes| {
                c.stmts
                    .get(name)
                    .is_some_and(|n| is_transaction_end(&n.stmt.query))
            };
            let step = answer(state, &msg, unnamed, named_ends, &mut out);
            match step {
                Step::Go => {}
                Step::Ended => {
                    c.lost_tx = None;
                    c.pending.clear();
                    c.tx_failed = false;
                }
                Step::Close(kind, name) => self.pg_lost_tx_close(cid, kind, &name, &mut out),
                Step::Terminate => {
                    if !out.is_empty() {
                        self.send_client(cid, out.freeze());
                    }
                    self.close_client(cid);
                    return;
                }
                Step::Invalid => break Err("unexpected message in a session".to_string()),
            }
        };
        if !out.is_empty() {
            self.send_client(cid, out.freeze());
        }
        match outcome {
            Err(e) => self.pg_fail_client(cid, PROTOCOL_VIOLATION, &e),
            Ok(()) => {
                let more = self
                    .clients
                    .pg(cid)
                    .is_some_and(|c| c.lost_tx.is_none() && !c.core.buf.is_empty());
                if more {
                    self.ready.push_back(cid);
                }
            }
        }
    }

    /// Close in a lost transaction: a statement name of the client's is forgotten (as the
    /// server would drop it); answered CloseComplete.
    fn pg_lost_tx_close(
        &mut self,
        cid: ClientId,
        kind: TargetKind,
        name: &Bytes,
        out: &mut BytesMut,
    ) {
        if kind == TargetKind::Statement {
            if let Some(c) = self.clients.pg_mut(cid) {
                if name.is_empty() {
                    c.unnamed = None;
                    if let Some(s) = c.lost_tx.as_mut() {
                        s.unnamed_ends = Some(false);
                    }
                } else if let Some(named) = c.stmts.remove(name) {
                    self.pools[c.core.route]
                        .ext
                        .pg()
                        .statements
                        .release(&named.stmt);
                }
            }
        }
        push(out, BackendMessage::CloseComplete);
    }
}

/// What one message asks for beyond its answer.
enum Step {
    /// Nothing more.
    Go,
    /// The block is over; what follows goes to a server.
    Ended,
    /// Close this statement or portal.
    Close(TargetKind, Bytes),
    /// The client leaves.
    Terminate,
    /// Not a message a client may send in a session.
    Invalid,
}

/// Answers `msg` as a server in an aborted transaction block does.
fn answer(
    state: &mut LostTx,
    msg: &FrontendMessage,
    unnamed: Option<Bytes>,
    named_ends: impl Fn(&Bytes) -> bool,
    out: &mut BytesMut,
) -> Step {
    let skip = state.skipping;
    match msg {
        FrontendMessage::Sync => {
            let ended = std::mem::take(&mut state.ended);
            state.skipping = false;
            state.portal_ends = false;
            let status = if ended {
                TransactionStatus::Idle
            } else {
                TransactionStatus::Failed
            };
            push(out, BackendMessage::ReadyForQuery(status));
            return if ended { Step::Ended } else { Step::Go };
        }
        FrontendMessage::Terminate => return Step::Terminate,
        FrontendMessage::Flush
        | FrontendMessage::CopyData(_)
        | FrontendMessage::CopyDone
        | FrontendMessage::CopyFail(_) => return Step::Go,
        _ if skip => return Step::Go,
        _ => {}
    }
    // A Close is answered as ever; the loss is told with the next command.
    let closes = matches!(msg, FrontendMessage::Close(_));
    if let Some(message) = state.announce.take_if(|_| !closes) {
        let _ = encode_error_response(out, "ERROR", CONNECTION_FAILURE, &message);
        return match msg {
            // A transaction end fails with the loss, and the block is over.
            FrontendMessage::Query(sql) if is_transaction_end(sql) => {
                push(out, BackendMessage::ReadyForQuery(TransactionStatus::Idle));
                Step::Ended
            }
            FrontendMessage::Query(_) | FrontendMessage::FunctionCall(_) => {
                push(
                    out,
                    BackendMessage::ReadyForQuery(TransactionStatus::Failed),
                );
                Step::Go
            }
            _ => {
                state.skipping = true;
                Step::Go
            }
        };
    }
    match msg {
        FrontendMessage::Query(sql) => {
            if is_transaction_end(sql) {
                push(
                    out,
                    BackendMessage::CommandComplete(Bytes::from_static(b"ROLLBACK")),
                );
                push(out, BackendMessage::ReadyForQuery(TransactionStatus::Idle));
                return Step::Ended;
            }
            if sql
                .iter()
                .all(|b| b.is_ascii_whitespace() || *b == 0 || *b == b';')
            {
                push(out, BackendMessage::EmptyQueryResponse);
            } else {
                aborted(out);
            }
            push(
                out,
                BackendMessage::ReadyForQuery(TransactionStatus::Failed),
            );
            Step::Go
        }
        FrontendMessage::FunctionCall(_) => {
            aborted(out);
            push(
                out,
                BackendMessage::ReadyForQuery(TransactionStatus::Failed),
            );
            Step::Go
        }
        FrontendMessage::Parse(p) if p.name.is_empty() && is_transaction_end(&p.query) => {
            state.unnamed_ends = Some(true);
            push(out, BackendMessage::ParseComplete);
            Step::Go
        }
        FrontendMessage::Bind(b)
            if b.portal.is_empty()
                && statement_ends(state, &b.statement, unnamed.as_ref(), &named_ends) =>
        {
            state.portal_ends = true;
            push(out, BackendMessage::BindComplete);
            Step::Go
        }
        FrontendMessage::Describe(d)
            if d.kind == TargetKind::Portal && d.name.is_empty() && state.portal_ends =>
        {
            push(out, BackendMessage::NoData);
            Step::Go
        }
        FrontendMessage::Describe(d)
            if d.kind == TargetKind::Statement
                && statement_ends(state, &d.name, unnamed.as_ref(), &named_ends) =>
        {
            push(out, BackendMessage::ParameterDescription(Vec::new()));
            push(out, BackendMessage::NoData);
            Step::Go
        }
        FrontendMessage::Execute(e) if e.portal.is_empty() && state.portal_ends => {
            push(
                out,
                BackendMessage::CommandComplete(Bytes::from_static(b"ROLLBACK")),
            );
            state.ended = true;
            Step::Go
        }
        FrontendMessage::Close(c) => Step::Close(c.kind, c.name.clone()),
        FrontendMessage::Parse(p) => {
            if p.name.is_empty() {
                state.unnamed_ends = Some(false);
            }
            aborted(out);
            state.skipping = true;
            Step::Go
        }
        FrontendMessage::Bind(_) | FrontendMessage::Describe(_) | FrontendMessage::Execute(_) => {
            aborted(out);
            state.skipping = true;
            Step::Go
        }
        _ => Step::Invalid,
    }
}

/// Whether statement `name` ends the transaction: the unnamed one as parsed since the loss
/// (or before it), a named one by its SQL.
fn statement_ends(
    state: &LostTx,
    name: &Bytes,
    unnamed: Option<&Bytes>,
    named_ends: &impl Fn(&Bytes) -> bool,
) -> bool {
    if !name.is_empty() {
        return named_ends(name);
    }
    match state.unnamed_ends {
        Some(ends) => ends,
        None => unnamed
            .and_then(|body| FrontendMessage::parse_body(b'P', body.clone()).ok())
            .is_some_and(
                |m| matches!(m, FrontendMessage::Parse(p) if is_transaction_end(&p.query)),
            ),
    }
}

fn aborted(out: &mut BytesMut) {
    // Encoding a fixed message into a BytesMut cannot fail.
    let _ = encode_error_response(out, "ERROR", IN_FAILED_SQL_TRANSACTION, ABORTED);
}

fn push(out: &mut BytesMut, msg: BackendMessage) {
    // Encoding muxql's own fixed messages into a BytesMut cannot fail.
    let _ = msg.encode(out);
}
