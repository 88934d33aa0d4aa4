//! `SHOW WARNINGS`, `SHOW ERRORS` and their `COUNT(*)` forms read the connection's previous
//! statement, which in a pool is usually another client's. They are answered from the
//! client's own last statement: warnings muxql captured right after it, its ERR, its counts.

use std::fmt::Write;

use bytes::Bytes;

use super::client::packet;
use super::upstream::Owed;
use crate::mux::engine::Engine;
use crate::mux::ids::{ClientId, UpstreamId};
use crate::mysql::command::code::COM_QUERY;
use crate::mysql::response::ErrPacket;
use crate::mysql::sql::ShowDiagnostics;
use crate::mysql::CapabilityFlags;

/// A query giving one diagnostics row for the ERR payload `err`, with `SHOW ERRORS`' columns.
fn error_row(err: &Bytes) -> Vec<u8> {
    let (code, message) = ErrPacket::parse(err, CapabilityFlags::CLIENT_PROTOCOL_41)
        .map_or((0, Bytes::new()), |e| (e.code, e.message));
    let mut sql = format!("SELECT 'Error' AS Level, {code} AS Code, CONVERT(x'");
    for b in message.iter() {
        let _ = write!(sql, "{b:02x}");
    }
    sql.push_str("' USING utf8mb4) AS Message");
    sql.into_bytes()
}

impl Engine {
    /// The warning and error counts of client `cid`'s own last statement (an ERR counts in
    /// both, as on the server).
    pub(crate) fn my_diagnostic_counts(&self, cid: ClientId) -> (u16, u16) {
        self.clients.my(cid).map_or((0, 0), |c| {
            let errors = u16::from(c.last_error.is_some());
            (c.warning_count.saturating_add(errors), errors)
        })
    }

    /// Answers a diagnostics statement with client `cid`'s own diagnostics. `LIMIT` is not
    /// applied to a captured list.
    pub(crate) fn my_show_diagnostics(
        &mut self,
        cid: ClientId,
        uid: Option<UpstreamId>,
        kind: ShowDiagnostics,
    ) {
        let (warning_count, error_count) = self.my_diagnostic_counts(cid);
        let Some(c) = self.clients.my(cid) else {
            return;
        };
        let sql = match (kind, &c.warnings, &c.last_error) {
            (ShowDiagnostics::Warnings, Some(captured), _) => {
                let captured = captured.clone();
                return self.my_answer(cid, uid, captured);
            }
            (ShowDiagnostics::Warnings | ShowDiagnostics::Errors, _, Some(err)) => error_row(err),
            // Nothing of the client's own (or warnings that could not be captured because
            // another statement followed at once): an empty list with the right columns.
            (ShowDiagnostics::Warnings, _, None) => b"SHOW WARNINGS LIMIT 0".to_vec(),
            (ShowDiagnostics::Errors, _, None) => b"SHOW ERRORS LIMIT 0".to_vec(),
            (ShowDiagnostics::WarningCount, ..) => {
                format!("SELECT {warning_count} AS `@@session.warning_count`").into_bytes()
            }
            (ShowDiagnostics::ErrorCount, ..) => {
                format!("SELECT {error_count} AS `@@session.error_count`").into_bytes()
            }
        };
        let mut p = Vec::with_capacity(sql.len() + 1);
        p.push(COM_QUERY);
        p.extend_from_slice(&sql);
        self.my_forward(cid, uid, COM_QUERY, packet(&p, 0), None);
        let owed = uid.and_then(|u| self.upstreams.my_mut(u));
        if let Some(Owed::Client { diagnostics, .. }) = owed.and_then(|u| u.owed.back_mut()) {
            *diagnostics = true;
        }
    }
}
