//! A scripted PostgreSQL server: it reads what muxql sends an upstream and answers as a
//! trust-authenticating PostgreSQL would (simple and extended protocol, transaction states,
//! errors), echoing the tag of each request in the rows it returns.

use bytes::{Bytes, BytesMut};
use muxql::pg::backend::{
    encode_error_response, Authentication, BackendMessage, DataRow, FieldDescription,
    TransactionStatus,
};
use muxql::pg::frame::{split_frame, Direction};
use muxql::pg::frontend::{FrontendMessage, TargetKind};
use muxql::pg::startup::{split_startup, StartupRequest};
use muxql::wire::Limits;

use crate::tags::first_tag;

/// One upstream's server side.
#[derive(Debug)]
pub struct PgServer {
    inbox: BytesMut,
    started: bool,
    status: TransactionStatus,
    /// The tag bound to the unnamed portal by the last Bind.
    portal_tag: Vec<u8>,
    /// After an error in an extended-protocol run, messages are skipped until Sync.
    skipping: bool,
    /// The client asked to end the connection.
    pub terminated: bool,
    /// Answers not yet delivered to muxql.
    pub out: BytesMut,
}

impl Default for PgServer {
    fn default() -> Self {
        PgServer {
            inbox: BytesMut::new(),
            started: false,
            status: TransactionStatus::Idle,
            portal_tag: b"none".to_vec(),
            skipping: false,
            terminated: false,
            out: BytesMut::new(),
        }
    }
}

impl PgServer {
    /// Takes bytes muxql wrote to this upstream and queues the answers. An error means muxql
    /// sent something a PostgreSQL server would refuse as malformed.
    pub fn receive(&mut self, bytes: &[u8], limits: &Limits) -> Result<(), String> {
        self.inbox.extend_from_slice(bytes);
        if !self.started {
            match split_startup(&mut self.inbox, limits).map_err(|e| format!("startup: {e}"))? {
                None => return Ok(()),
                Some(StartupRequest::Startup(_)) => {
                    self.started = true;
                    self.login();
                }
                Some(other) => return Err(format!("an upstream opened with {other:?}")),
            }
        }
        while let Some(frame) = split_frame(&mut self.inbox, Direction::Frontend, limits)
            .map_err(|e| format!("frontend framing: {e}"))?
        {
            let message =
                FrontendMessage::parse(&frame).map_err(|e| format!("frontend message: {e}"))?;
            self.answer(message);
        }
        Ok(())
    }

    fn send(&mut self, messages: &[BackendMessage]) {
        for m in messages {
            m.encode(&mut self.out)
                .expect("the model's messages encode");
        }
    }

    fn login(&mut self) {
        self.send(&[
            BackendMessage::Authentication(Authentication::Ok),
            BackendMessage::ParameterStatus {
                name: Bytes::from_static(b"server_version"),
                value: Bytes::from_static(b"17.0"),
            },
            BackendMessage::ParameterStatus {
                name: Bytes::from_static(b"client_encoding"),
                value: Bytes::from_static(b"UTF8"),
            },
            BackendMessage::BackendKeyData {
                pid: 42,
                key: Bytes::from_static(&[1, 2, 3, 4]),
            },
            BackendMessage::ReadyForQuery(TransactionStatus::Idle),
        ]);
    }

    fn error(&mut self, sqlstate: &str) {
        encode_error_response(&mut self.out, "ERROR", sqlstate, "the model refused this")
            .expect("an error encodes");
        if self.status == TransactionStatus::InTransaction {
            self.status = TransactionStatus::Failed;
        }
    }

    fn row(&mut self, tag: &[u8]) {
        let row = DataRow::from_values([Some(tag)]).expect("a row encodes");
        self.send(&[
            BackendMessage::DataRow(row),
            BackendMessage::CommandComplete(Bytes::from_static(b"SELECT 1")),
        ]);
    }

    fn answer(&mut self, message: FrontendMessage) {
        if self.skipping && !matches!(message, FrontendMessage::Sync) {
            return;
        }
        match message {
            FrontendMessage::Query(sql) => {
                self.query(&sql);
                self.send(&[BackendMessage::ReadyForQuery(self.status)]);
            }
            FrontendMessage::Parse(p) => {
                if refused(&p.query) {
                    self.error("42601");
                    self.skipping = true;
                } else {
                    self.send(&[BackendMessage::ParseComplete]);
                }
            }
            FrontendMessage::Bind(b) => {
                let values: Vec<u8> = b.params.iter().flatten().flat_map(|v| v.to_vec()).collect();
                self.portal_tag = first_tag(&values).unwrap_or_else(|| b"none".to_vec());
                self.send(&[BackendMessage::BindComplete]);
            }
            FrontendMessage::Describe(d) => {
                if d.kind == TargetKind::Statement {
                    self.send(&[BackendMessage::ParameterDescription(vec![25])]);
                }
                self.send(&[BackendMessage::RowDescription(vec![text_column()])]);
            }
            FrontendMessage::Execute(_) => {
                let tag = std::mem::take(&mut self.portal_tag);
                self.row(&tag);
                self.portal_tag = tag;
            }
            FrontendMessage::Close(_) => self.send(&[BackendMessage::CloseComplete]),
            FrontendMessage::Sync => {
                self.skipping = false;
                self.send(&[BackendMessage::ReadyForQuery(self.status)]);
            }
            FrontendMessage::Terminate => self.terminated = true,
            FrontendMessage::Flush
            | FrontendMessage::CopyData(_)
            | FrontendMessage::CopyDone
            | FrontendMessage::CopyFail(_)
            | FrontendMessage::Password(_) => {}
            FrontendMessage::FunctionCall(_) => self.error("0A000"),
        }
    }

    fn query(&mut self, sql: &[u8]) {
        let text = String::from_utf8_lossy(sql).to_ascii_uppercase();
        let word = text.split_whitespace().next().unwrap_or("");
        if word.is_empty() {
            self.send(&[BackendMessage::EmptyQueryResponse]);
            return;
        }
        if self.status == TransactionStatus::Failed
            && !matches!(word, "ROLLBACK" | "COMMIT" | "END" | "ABORT")
        {
            self.error("25P02");
            return;
        }
        if refused(sql) {
            self.error("42601");
            return;
        }
        match word {
            "BEGIN" | "START" => {
                self.status = TransactionStatus::InTransaction;
                self.complete("BEGIN");
            }
            "COMMIT" | "END" | "ROLLBACK" | "ABORT" => {
                self.status = TransactionStatus::Idle;
                self.complete(word);
            }
            "SELECT" | "SHOW" | "VALUES" => match first_tag(sql) {
                Some(tag) => {
                    self.send(&[BackendMessage::RowDescription(vec![text_column()])]);
                    self.row(&tag);
                }
                None => self.complete("SELECT 0"),
            },
            _ => self.complete(word),
        }
    }

    fn complete(&mut self, tag: &str) {
        self.send(&[BackendMessage::CommandComplete(Bytes::copy_from_slice(
            tag.as_bytes(),
        ))]);
    }
}

/// Statements the model answers with an error: those that mention `error`.
fn refused(sql: &[u8]) -> bool {
    sql.windows(5).any(|w| w.eq_ignore_ascii_case(b"error"))
}

fn text_column() -> FieldDescription {
    FieldDescription {
        name: Bytes::from_static(b"v"),
        table_oid: 0,
        column: 0,
        type_oid: 25,
        type_size: -1,
        type_modifier: -1,
        format: 0,
    }
}
