//! The response reader: a sans-I/O state machine that is fed the response packets of one
//! command (headers plus at most [`HEAD_LEN`] payload bytes each) and says when the response
//! ends, with which final status flags. This is how the multiplexer knows an upstream is free.
//!
//! It covers OK/ERR, text and binary result sets with and without `CLIENT_DEPRECATE_EOF`,
//! multi-results (`SERVER_MORE_RESULTS_EXISTS`), LOCAL INFILE, COM_STMT_PREPARE, cursors
//! (COM_STMT_EXECUTE answered by metadata only, then COM_STMT_FETCH), COM_FIELD_LIST,
//! COM_STATISTICS, COM_CHANGE_USER and MariaDB progress reports. Per packet it costs a header
//! check and a byte compare; it never allocates.
//!
//! ```
//! use muxql::mysql::{CapabilityFlags, Expect, ResponseReader, StatusFlags, Step};
//! use muxql::wire::Limits;
//!
//! let caps = CapabilityFlags::CLIENT_PROTOCOL_41 | CapabilityFlags::CLIENT_DEPRECATE_EOF;
//! let mut reader = ResponseReader::new(Expect::Query, caps, Limits::default());
//! // An OK packet (length 7, sequence 1) with SERVER_STATUS_IN_TRANS | AUTOCOMMIT.
//! let wire = [7, 0, 0, 1, 0x00, 0, 0, 0x03, 0x00, 0, 0];
//! let scan = reader.scan(&wire).unwrap();
//! assert_eq!(scan.consumed, wire.len());
//! let Step::Complete(end) = scan.step else { unreachable!() };
//! assert!(end.status.unwrap().contains(StatusFlags::SERVER_STATUS_IN_TRANS));
//! ```

use super::command::{code::*, Command};
use super::flags::{CapabilityFlags, StatusFlags};
use super::lenenc;
use super::packet::{PacketHeader, HEADER_LEN, MAX_PACKET_PAYLOAD};
use super::response::{
    EOF_HEADER, ERR_HEADER, LOCAL_INFILE_HEADER, MARIADB_PROGRESS_CODE, OK_HEADER,
};
use crate::wire::{Error, Limits};

/// Payload bytes of a packet the reader may look at; feeding more is harmless.
pub const HEAD_LEN: usize = 32;

/// The shape of response a command gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// COM_QUERY: OK, ERR, LOCAL INFILE or text result sets, possibly several.
    Query,
    /// COM_STMT_PREPARE: PREPARE_OK with parameter and column definitions, or ERR.
    Prepare,
    /// COM_STMT_EXECUTE: OK, ERR or binary result sets; with a cursor, metadata only.
    Execute,
    /// COM_STMT_FETCH: binary rows then EOF/OK, or ERR.
    Fetch,
    /// COM_FIELD_LIST: column definitions then EOF/OK, or ERR.
    FieldList,
    /// One OK, EOF or ERR (COM_PING, COM_INIT_DB, COM_RESET_CONNECTION, COM_STMT_RESET,
    /// COM_SET_OPTION, COM_PROCESS_KILL).
    Simple,
    /// COM_STATISTICS: one string packet, or ERR.
    Statistics,
    /// COM_CHANGE_USER: an authentication exchange ending with OK or ERR.
    ChangeUser,
    /// No response at all (COM_QUIT, COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA).
    Nothing,
}

impl Expect {
    /// The response shape for a command byte; `None` for commands whose response this reader
    /// cannot delimit (opaque commands, replication streams).
    pub fn for_code(code: u8) -> Option<Expect> {
        Some(match code {
            COM_QUERY => Expect::Query,
            COM_STMT_PREPARE => Expect::Prepare,
            COM_STMT_EXECUTE => Expect::Execute,
            COM_STMT_FETCH => Expect::Fetch,
            COM_FIELD_LIST => Expect::FieldList,
            COM_PING | COM_INIT_DB | COM_RESET_CONNECTION | COM_STMT_RESET | COM_SET_OPTION
            | COM_PROCESS_KILL | COM_DEBUG => Expect::Simple,
            COM_STATISTICS => Expect::Statistics,
            COM_CHANGE_USER => Expect::ChangeUser,
            COM_QUIT | COM_STMT_CLOSE | COM_STMT_SEND_LONG_DATA => Expect::Nothing,
            _ => return None,
        })
    }

    /// The response shape for a parsed command.
    pub fn for_command(cmd: &Command) -> Option<Expect> {
        Expect::for_code(cmd.code())
    }
}

/// How a response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// Status flags of the final OK/EOF; `None` after ERR (the server does not report its
    /// state there) and for responses that carry none (PREPARE_OK without EOF, statistics).
    pub status: Option<StatusFlags>,
    /// The response ended with an ERR packet.
    pub error: bool,
    /// Warning count of the final OK/EOF.
    pub warnings: u16,
}

/// What the reader concluded from one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The response goes on.
    More,
    /// The server asked for a LOCAL INFILE; once the client's data (and empty packet) went up,
    /// call [`ResponseReader::resume`] with the sequence id the server will use next.
    LocalInfile,
    /// COM_CHANGE_USER: an AuthSwitchRequest or AuthMoreData that needs a client answer; call
    /// [`ResponseReader::resume`] after sending it.
    AuthData,
    /// One result of several ended with this OK or EOF (`SERVER_MORE_RESULTS_EXISTS` set);
    /// the response goes on with the next result.
    ResultEnd(Completion),
    /// The response is complete.
    Complete(Completion),
}

/// Result of [`ResponseReader::scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// Bytes of complete packets consumed from the front of the buffer.
    pub consumed: usize,
    /// Where the last packet consumed starts (its header), so the packet that ended a result
    /// can be read without walking the rows before it.
    pub last: usize,
    /// The step of the last packet consumed ([`Step::More`] when the buffer ran out first).
    pub step: Step,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the first packet of a (further) result.
    First,
    /// Column definitions left in a result set.
    Columns(u64),
    /// The EOF after column definitions (no `CLIENT_DEPRECATE_EOF`).
    ColumnsEof,
    /// Rows until EOF/OK or ERR.
    Rows,
    /// COM_STMT_PREPARE parameter definitions left, then columns.
    PrepParams(u64, u64),
    /// EOF after parameter definitions, then columns.
    PrepParamsEof(u64),
    /// COM_STMT_PREPARE column definitions left.
    PrepColumns(u64),
    /// EOF after the prepared statement's column definitions.
    PrepColumnsEof,
    /// COM_FIELD_LIST column definitions until EOF/OK.
    FieldList,
    /// Waiting for the client (LOCAL INFILE data or an auth answer).
    Paused,
    /// The response ended.
    Done,
}

/// The response state machine for one command. Create one per command with the capabilities
/// negotiated on that connection.
#[derive(Debug, Clone)]
pub struct ResponseReader {
    caps: CapabilityFlags,
    expect: Expect,
    state: State,
    next_seq: u8,
    max_payload: usize,
    logical_len: usize,
    continued: bool,
    pending: Step,
    last_status: Option<StatusFlags>,
}

impl ResponseReader {
    /// A reader for the response to a command sent with sequence id 0 (the response starts at
    /// sequence id 1), with logical packets capped at `limits.max_message`.
    pub fn new(expect: Expect, caps: CapabilityFlags, limits: Limits) -> Self {
        let state = match expect {
            Expect::Fetch => State::Rows,
            Expect::FieldList => State::FieldList,
            Expect::Nothing => State::Done,
            _ => State::First,
        };
        ResponseReader {
            caps,
            expect,
            state,
            next_seq: 1,
            max_payload: limits.max_message,
            logical_len: 0,
            continued: false,
            pending: Step::More,
            last_status: None,
        }
    }

    /// Sets the sequence id of the response's first packet (the one after the command's last
    /// packet: 1 unless the command itself spanned several packets).
    pub fn starting_at(mut self, seq: u8) -> Self {
        self.next_seq = seq;
        self
    }

    /// True once the response ended (immediately for [`Expect::Nothing`]).
    pub fn is_complete(&self) -> bool {
        self.state == State::Done
    }

    /// The sequence id the next packet must carry.
    pub fn next_seq(&self) -> u8 {
        self.next_seq
    }

    /// Whether an ERR packet may come next, as a server sends when a command fails before its
    /// result or between rows (a killed query): not in the middle of column or parameter
    /// definitions, nor of a logical packet split over several physical ones.
    pub fn may_end_with_error(&self) -> bool {
        !self.continued && matches!(self.state, State::First | State::Rows)
    }

    /// Continues after [`Step::LocalInfile`] or [`Step::AuthData`]: the client's packets were
    /// sent and the server's next packet will carry `next_seq`.
    pub fn resume(&mut self, next_seq: u8) -> Result<(), Error> {
        if self.state != State::Paused {
            return Err(Error::Unexpected("resume of a response that is not paused"));
        }
        self.state = State::First;
        self.next_seq = next_seq;
        Ok(())
    }

    /// Checks a header against the sequence and size rules without consuming it.
    #[inline]
    fn check_header(&self, h: PacketHeader) -> Result<(), Error> {
        if h.seq != self.next_seq {
            return Err(Error::BadSequence {
                got: h.seq,
                expected: self.next_seq,
            });
        }
        let total = self.logical_len.saturating_add(h.len);
        if total > self.max_payload {
            return Err(Error::TooLarge {
                len: total as u64,
                limit: self.max_payload as u64,
            });
        }
        Ok(())
    }

    /// Feeds one physical packet: its header and at least its first [`HEAD_LEN`] payload bytes
    /// (or the whole payload when shorter). The step of a logical packet split over several
    /// physical ones is returned with its last piece.
    #[inline]
    pub fn feed(&mut self, h: PacketHeader, head: &[u8]) -> Result<Step, Error> {
        self.check_header(h)?;
        self.next_seq = self.next_seq.wrapping_add(1);
        let first_piece = !self.continued;
        self.logical_len += h.len;
        self.continued = h.len == MAX_PACKET_PAYLOAD;
        if first_piece {
            let head = head
                .get(..h.len.min(HEAD_LEN))
                .ok_or(Error::Truncated("packet head"))?;
            self.pending = self.classify(head, h.len)?;
        }
        if self.continued {
            return Ok(Step::More);
        }
        self.logical_len = 0;
        Ok(std::mem::replace(&mut self.pending, Step::More))
    }

    /// Feeds one logical packet as cut by [`super::PacketCodec`] (`seq` is its first sequence
    /// id; a payload of 0xFFFFFF bytes or more stands for several physical packets).
    pub fn feed_logical(&mut self, seq: u8, payload: &[u8]) -> Result<Step, Error> {
        let mut rest = payload;
        let mut seq = seq;
        loop {
            let n = rest.len().min(MAX_PACKET_PAYLOAD);
            let step = self.feed(PacketHeader { len: n, seq }, rest)?;
            rest = rest.get(n..).unwrap_or_default();
            seq = seq.wrapping_add(1);
            if n < MAX_PACKET_PAYLOAD {
                return Ok(step);
            }
        }
    }

    /// Consumes complete physical packets from the front of `buf` (raw wire bytes, headers
    /// included) and stops after the packet that ends the response or needs the client, or
    /// when the next packet is incomplete. Headers are checked as soon as they arrive, so an
    /// oversized or out-of-sequence packet fails before its body is buffered.
    pub fn scan(&mut self, buf: &[u8]) -> Result<Scan, Error> {
        let mut pos = 0usize;
        let mut last = 0usize;
        loop {
            if self.state == State::Rows && !self.continued {
                pos = self.skip_rows(buf, pos);
            }
            let Some(h) = buf.get(pos..).and_then(PacketHeader::peek) else {
                break;
            };
            let start = pos + HEADER_LEN;
            let end = start + h.len;
            let Some(payload) = buf.get(start..end) else {
                self.check_header(h)?;
                break;
            };
            let step = self.feed(h, payload)?;
            last = pos;
            pos = end;
            if step != Step::More {
                return Ok(Scan {
                    consumed: pos,
                    last,
                    step,
                });
            }
        }
        Ok(Scan {
            consumed: pos,
            last,
            step: Step::More,
        })
    }

    /// The hot path: skips complete, in-sequence row packets that cannot end the result set
    /// (first byte neither 0xFE nor 0xFF, not continued, within the limit). Anything else is
    /// left to the general path.
    #[inline]
    fn skip_rows(&mut self, buf: &[u8], mut pos: usize) -> usize {
        let limit = self.max_payload.min(MAX_PACKET_PAYLOAD - 1);
        while let Some(&[a, b, c, seq, first]) = buf.get(pos..pos + HEADER_LEN + 1) {
            let len = usize::from(a) | usize::from(b) << 8 | usize::from(c) << 16;
            let end = pos + HEADER_LEN + len;
            if seq != self.next_seq
                || len == 0
                || len > limit
                || end > buf.len()
                || first == EOF_HEADER
                || first == ERR_HEADER
            {
                break;
            }
            self.next_seq = seq.wrapping_add(1);
            pos = end;
        }
        pos
    }

    fn deprecate_eof(&self) -> bool {
        self.caps.contains(CapabilityFlags::CLIENT_DEPRECATE_EOF)
    }

    /// An EOF packet, or with `CLIENT_DEPRECATE_EOF` the OK that replaces it (0xFE and shorter
    /// than a row that starts with an 8-byte length could be).
    #[inline]
    fn is_terminator(&self, head: &[u8], len: usize) -> bool {
        head.first() == Some(&EOF_HEADER)
            && (len < 9 || (self.deprecate_eof() && len < MAX_PACKET_PAYLOAD))
    }

    fn complete(&mut self, status: Option<StatusFlags>, error: bool, warnings: u16) -> Step {
        self.state = State::Done;
        Step::Complete(Completion {
            status,
            error,
            warnings,
        })
    }

    /// Status and warnings of an OK (or 0xFE OK) packet head.
    fn ok_status(&self, head: &[u8]) -> Result<(StatusFlags, u16), Error> {
        let mut pos = 1usize;
        for _ in 0..2 {
            let rest = head.get(pos..).unwrap_or_default();
            let (_, n) = lenenc::decode_int(rest)?.ok_or(Error::Truncated("OK"))?;
            pos += n;
        }
        let field = |at: usize| -> Result<u16, Error> {
            match head.get(at..at + 2) {
                Some(&[a, b]) => Ok(u16::from_le_bytes([a, b])),
                _ => Err(Error::Truncated("OK")),
            }
        };
        if self.caps.contains(CapabilityFlags::CLIENT_PROTOCOL_41) {
            Ok((StatusFlags::from_bits_retain(field(pos)?), field(pos + 2)?))
        } else if self.caps.contains(CapabilityFlags::CLIENT_TRANSACTIONS) {
            Ok((StatusFlags::from_bits_retain(field(pos)?), 0))
        } else {
            Ok((StatusFlags::empty(), 0))
        }
    }

    /// Status and warnings of a terminator (EOF, or OK with `CLIENT_DEPRECATE_EOF`).
    fn terminator_status(&self, head: &[u8]) -> Result<(StatusFlags, u16), Error> {
        if self.deprecate_eof() {
            return self.ok_status(head);
        }
        if !self.caps.contains(CapabilityFlags::CLIENT_PROTOCOL_41) {
            return Ok((StatusFlags::empty(), 0));
        }
        match head {
            [_, w0, w1, s0, s1, ..] => Ok((
                StatusFlags::from_bits_retain(u16::from_le_bytes([*s0, *s1])),
                u16::from_le_bytes([*w0, *w1]),
            )),
            _ => Err(Error::Truncated("EOF")),
        }
    }

    /// End of one result: more may follow.
    fn end_of_result(&mut self, status: StatusFlags, warnings: u16) -> Step {
        if status.contains(StatusFlags::SERVER_MORE_RESULTS_EXISTS) {
            self.state = State::First;
            Step::ResultEnd(Completion {
                status: Some(status),
                error: false,
                warnings,
            })
        } else {
            self.complete(Some(status), false, warnings)
        }
    }

    fn err_or_progress(&mut self, head: &[u8]) -> Step {
        let progress = self.caps.contains(CapabilityFlags::MARIADB_CLIENT_PROGRESS)
            && head.get(1..3) == Some(&MARIADB_PROGRESS_CODE.to_le_bytes()[..]);
        if progress {
            Step::More
        } else {
            self.complete(None, true, 0)
        }
    }

    /// After the column count of a result set: column definitions, if metadata is sent.
    fn start_columns(&mut self, head: &[u8]) -> Result<Step, Error> {
        let (count, n) = lenenc::decode_int(head)?.ok_or(Error::Truncated("column count"))?;
        if count == 0 {
            return Err(Error::InvalidValue("column count"));
        }
        let optional = self
            .caps
            .contains(CapabilityFlags::CLIENT_OPTIONAL_RESULTSET_METADATA)
            || (self.expect == Expect::Execute
                && self
                    .caps
                    .contains(CapabilityFlags::MARIADB_CLIENT_CACHE_METADATA));
        let metadata = if optional {
            head.get(n)
                .copied()
                .ok_or(Error::Truncated("column count"))?
                != 0
        } else {
            true
        };
        self.state = if metadata {
            State::Columns(count)
        } else {
            State::Rows
        };
        Ok(Step::More)
    }

    fn after_columns(&mut self) {
        self.state = if self.deprecate_eof() {
            State::Rows
        } else {
            State::ColumnsEof
        };
    }

    fn classify(&mut self, head: &[u8], len: usize) -> Result<Step, Error> {
        let first = head.first().copied();
        match self.state {
            State::Rows => {
                if self.is_terminator(head, len) {
                    let (status, warnings) = self.terminator_status(head)?;
                    Ok(self.end_of_result(status, warnings))
                } else if first == Some(ERR_HEADER) {
                    Ok(self.complete(None, true, 0))
                } else {
                    Ok(Step::More)
                }
            }
            State::Columns(left) => {
                if left > 1 {
                    self.state = State::Columns(left - 1);
                } else {
                    self.after_columns();
                }
                Ok(Step::More)
            }
            State::ColumnsEof => {
                if !self.is_terminator(head, len) {
                    return Err(Error::Unexpected("packet instead of EOF after columns"));
                }
                let (status, warnings) = self.terminator_status(head)?;
                if self.expect == Expect::Execute
                    && status.contains(StatusFlags::SERVER_STATUS_CURSOR_EXISTS)
                {
                    return Ok(self.complete(Some(status), false, warnings));
                }
                self.state = State::Rows;
                Ok(Step::More)
            }
            State::First => self.classify_first(head, len),
            State::PrepParams(left, cols) => {
                if left > 1 {
                    self.state = State::PrepParams(left - 1, cols);
                    Ok(Step::More)
                } else if !self.deprecate_eof() {
                    self.state = State::PrepParamsEof(cols);
                    Ok(Step::More)
                } else {
                    Ok(self.prepare_columns(cols))
                }
            }
            State::PrepParamsEof(cols) => {
                self.expect_eof(head, len)?;
                Ok(self.prepare_columns(cols))
            }
            State::PrepColumns(left) => {
                if left > 1 {
                    self.state = State::PrepColumns(left - 1);
                    Ok(Step::More)
                } else if !self.deprecate_eof() {
                    self.state = State::PrepColumnsEof;
                    Ok(Step::More)
                } else {
                    Ok(self.complete(self.last_status, false, 0))
                }
            }
            State::PrepColumnsEof => {
                self.expect_eof(head, len)?;
                Ok(self.complete(self.last_status, false, 0))
            }
            State::FieldList => {
                if self.is_terminator(head, len) {
                    let (status, warnings) = self.terminator_status(head)?;
                    Ok(self.complete(Some(status), false, warnings))
                } else if first == Some(ERR_HEADER) {
                    Ok(self.complete(None, true, 0))
                } else {
                    Ok(Step::More)
                }
            }
            State::Paused => Err(Error::Unexpected(
                "server packet while the client has the turn",
            )),
            State::Done => Err(Error::Unexpected("packet after the end of a response")),
        }
    }

    fn expect_eof(&mut self, head: &[u8], len: usize) -> Result<(), Error> {
        if !self.is_terminator(head, len) {
            return Err(Error::Unexpected("packet instead of EOF"));
        }
        self.last_status = Some(self.terminator_status(head)?.0);
        Ok(())
    }

    fn prepare_columns(&mut self, cols: u64) -> Step {
        if cols > 0 {
            self.state = State::PrepColumns(cols);
            Step::More
        } else {
            self.complete(self.last_status, false, 0)
        }
    }

    fn classify_first(&mut self, head: &[u8], len: usize) -> Result<Step, Error> {
        let first = head.first().copied();
        if first == Some(ERR_HEADER) {
            return Ok(self.err_or_progress(head));
        }
        match self.expect {
            Expect::Query | Expect::Execute => match first {
                Some(OK_HEADER) => {
                    let (status, warnings) = self.ok_status(head)?;
                    Ok(self.end_of_result(status, warnings))
                }
                Some(LOCAL_INFILE_HEADER) if self.expect == Expect::Query => {
                    self.state = State::Paused;
                    Ok(Step::LocalInfile)
                }
                Some(EOF_HEADER) | Some(LOCAL_INFILE_HEADER) | None => {
                    Err(Error::Unexpected("packet at the start of a result"))
                }
                Some(_) => self.start_columns(head),
            },
            Expect::Prepare => {
                if first != Some(OK_HEADER) || len < 9 {
                    return Err(Error::Unexpected("packet instead of PREPARE_OK"));
                }
                let field = |at: usize| match head.get(at..at + 2) {
                    Some(&[a, b]) => Ok(u64::from(u16::from_le_bytes([a, b]))),
                    _ => Err(Error::Truncated("COM_STMT_PREPARE_OK")),
                };
                let (cols, params) = (field(5)?, field(7)?);
                let metadata = !self
                    .caps
                    .contains(CapabilityFlags::CLIENT_OPTIONAL_RESULTSET_METADATA)
                    || !matches!(head.get(12), Some(0));
                if !metadata {
                    return Ok(self.complete(None, false, 0));
                }
                if params > 0 {
                    self.state = State::PrepParams(params, cols);
                    Ok(Step::More)
                } else {
                    Ok(self.prepare_columns(cols))
                }
            }
            Expect::Simple => match first {
                Some(OK_HEADER) => {
                    let (status, warnings) = self.ok_status(head)?;
                    Ok(self.complete(Some(status), false, warnings))
                }
                Some(EOF_HEADER) if len < 9 || self.deprecate_eof() => {
                    let (status, warnings) = self.terminator_status(head)?;
                    Ok(self.complete(Some(status), false, warnings))
                }
                _ => Err(Error::Unexpected("packet instead of OK")),
            },
            Expect::Statistics => Ok(self.complete(None, false, 0)),
            Expect::ChangeUser => match (first, head.get(1)) {
                (Some(OK_HEADER), _) => {
                    let (status, warnings) = self.ok_status(head)?;
                    Ok(self.complete(Some(status), false, warnings))
                }
                // caching_sha2 fast-auth success: the OK follows without a client answer.
                (Some(0x01), Some(0x03)) if len == 2 => Ok(Step::More),
                (Some(0x01), _) | (Some(EOF_HEADER), _) => {
                    self.state = State::Paused;
                    Ok(Step::AuthData)
                }
                _ => Err(Error::Unexpected("packet during COM_CHANGE_USER")),
            },
            Expect::Fetch | Expect::FieldList | Expect::Nothing => {
                Err(Error::Unexpected("packet after the end of a response"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::binary::column_type::*;
    use crate::mysql::packet::write_packet;
    use crate::mysql::response::{EofPacket, ErrPacket, OkPacket};
    use crate::mysql::stmt::{tests::column, PrepareOk};
    use bytes::{Bytes, BytesMut};
    use proptest::prelude::*;

    const IN_TRANS: StatusFlags = StatusFlags::SERVER_STATUS_IN_TRANS;
    const MORE: StatusFlags = StatusFlags::SERVER_MORE_RESULTS_EXISTS;

    fn base() -> CapabilityFlags {
        CapabilityFlags::CLIENT_PROTOCOL_41
            | CapabilityFlags::CLIENT_TRANSACTIONS
            | CapabilityFlags::CLIENT_MULTI_RESULTS
    }

    /// Builds a server response stream packet by packet.
    struct Stream {
        caps: CapabilityFlags,
        seq: u8,
        out: BytesMut,
        /// Wire offset of the end of each packet.
        ends: Vec<usize>,
    }

    impl Stream {
        fn new(caps: CapabilityFlags) -> Self {
            Stream {
                caps,
                seq: 1,
                out: BytesMut::new(),
                ends: Vec::new(),
            }
        }
        fn raw(&mut self, payload: &[u8]) -> &mut Self {
            write_packet(&mut self.out, &mut self.seq, payload).unwrap();
            self.ends.push(self.out.len());
            self
        }
        fn ok(&mut self, status: StatusFlags) -> &mut Self {
            let mut p = BytesMut::new();
            OkPacket::new(status).encode(&mut p, self.caps).unwrap();
            self.raw(&p)
        }
        fn err(&mut self) -> &mut Self {
            let mut p = BytesMut::new();
            ErrPacket {
                code: 1064,
                sql_state: Some(*b"42000"),
                message: Bytes::from_static(b"syntax"),
            }
            .encode(&mut p, self.caps);
            self.raw(&p)
        }
        fn eof(&mut self, status: StatusFlags) -> &mut Self {
            let mut p = BytesMut::new();
            EofPacket {
                warnings: 0,
                status,
            }
            .encode(&mut p, self.caps);
            self.raw(&p)
        }
        /// EOF, or with CLIENT_DEPRECATE_EOF the 0xFE OK that ends rows.
        fn end_rows(&mut self, status: StatusFlags) -> &mut Self {
            if self.caps.contains(CapabilityFlags::CLIENT_DEPRECATE_EOF) {
                let mut ok = OkPacket::new(status);
                ok.header = EOF_HEADER;
                let mut p = BytesMut::new();
                ok.encode(&mut p, self.caps).unwrap();
                self.raw(&p)
            } else {
                self.eof(status)
            }
        }
        fn columns(&mut self, n: usize) -> &mut Self {
            for _ in 0..n {
                let mut p = BytesMut::new();
                column(b"c", MYSQL_TYPE_VAR_STRING)
                    .encode(&mut p, self.caps)
                    .unwrap();
                self.raw(&p);
            }
            if !self.caps.contains(CapabilityFlags::CLIENT_DEPRECATE_EOF) {
                self.eof(StatusFlags::empty());
            }
            self
        }
        fn result_set(&mut self, cols: usize, rows: &[Vec<u8>], status: StatusFlags) -> &mut Self {
            self.raw(&[cols as u8]).columns(cols);
            for r in rows {
                self.raw(r);
            }
            self.end_rows(status)
        }
    }

    /// Scans the whole stream (through the ends of intermediate results) and checks that only
    /// the last packet completes it.
    fn run(expect: Expect, s: &Stream) -> Completion {
        let mut r = ResponseReader::new(expect, s.caps, Limits::default());
        let mut pos = 0;
        let c = loop {
            let scan = r.scan(&s.out[pos..]).unwrap();
            pos += scan.consumed;
            match scan.step {
                Step::ResultEnd(_) => continue,
                Step::Complete(c) => break c,
                other => panic!("not complete: {other:?}"),
            }
        };
        assert_eq!(pos, s.out.len(), "scan stopped early");
        // Byte by byte arrival gives the same answer and never completes early.
        let mut r = ResponseReader::new(expect, s.caps, Limits::default());
        let mut pos = 0;
        let mut last = Step::More;
        for end in 1..=s.out.len() {
            loop {
                let scan = r.scan(&s.out[pos..end]).unwrap();
                pos += scan.consumed;
                last = scan.step;
                if !matches!(last, Step::ResultEnd(_)) {
                    break;
                }
            }
            if last != Step::More {
                assert_eq!(end, s.out.len());
            }
        }
        assert_eq!(last, Step::Complete(c));
        c
    }

    #[test]
    fn ok_and_err() {
        let mut s = Stream::new(base());
        s.ok(IN_TRANS);
        assert_eq!(run(Expect::Query, &s).status, Some(IN_TRANS));
        let mut s = Stream::new(base());
        s.err();
        let c = run(Expect::Query, &s);
        assert!(c.error && c.status.is_none());
    }

    #[test]
    fn text_result_sets_with_and_without_deprecate_eof() {
        for caps in [base(), base() | CapabilityFlags::CLIENT_DEPRECATE_EOF] {
            let mut rows = vec![b"\x01a\x01b".to_vec(), b"\xfb\x00".to_vec()];
            if !caps.contains(CapabilityFlags::CLIENT_DEPRECATE_EOF) {
                // Without CLIENT_DEPRECATE_EOF a 0xFE row of 9 bytes or more is a row.
                rows.push(b"\xfe\x00\x00\x00\x00\x00\x00\x00\x00\x00".to_vec());
            }
            let mut s = Stream::new(caps);
            s.result_set(2, &rows, IN_TRANS);
            let c = run(Expect::Query, &s);
            assert_eq!(c.status, Some(IN_TRANS));
            assert!(!c.error);
        }
    }

    #[test]
    fn multi_results_end_at_the_last() {
        for caps in [base(), base() | CapabilityFlags::CLIENT_DEPRECATE_EOF] {
            let mut s = Stream::new(caps);
            s.ok(MORE)
                .result_set(1, &[b"\x011".to_vec()], MORE)
                .result_set(1, &[], MORE)
                .ok(StatusFlags::SERVER_STATUS_AUTOCOMMIT);
            assert_eq!(
                run(Expect::Query, &s).status,
                Some(StatusFlags::SERVER_STATUS_AUTOCOMMIT)
            );
            let mut s = Stream::new(caps);
            s.ok(MORE).err();
            assert!(run(Expect::Query, &s).error);
        }
    }

    #[test]
    fn error_mid_rows_ends_the_response() {
        let mut s = Stream::new(base());
        s.raw(&[1]).columns(1).raw(b"\x011").err();
        assert!(run(Expect::Query, &s).error);
    }

    #[test]
    fn local_infile_pauses_then_resumes() {
        let mut s = Stream::new(base());
        s.raw(b"\xfb/tmp/x.csv");
        let mut r = ResponseReader::new(Expect::Query, base(), Limits::default());
        assert_eq!(r.scan(&s.out).unwrap().step, Step::LocalInfile);
        assert!(r.feed(PacketHeader { len: 7, seq: 2 }, &[0; 7]).is_err());
        let mut r = ResponseReader::new(Expect::Query, base(), Limits::default());
        r.scan(&s.out).unwrap();
        // The client sent its file in packets 2 and 3 and the empty packet 4.
        r.resume(5).unwrap();
        let mut tail = Stream::new(base());
        tail.seq = 5;
        tail.ok(StatusFlags::empty());
        assert!(matches!(r.scan(&tail.out).unwrap().step, Step::Complete(_)));
    }

    #[test]
    fn prepare_ok_with_definitions() {
        for caps in [base(), base() | CapabilityFlags::CLIENT_DEPRECATE_EOF] {
            for (params, cols) in [(0u16, 0u16), (2, 0), (0, 3), (2, 3)] {
                let mut s = Stream::new(caps);
                let mut p = BytesMut::new();
                PrepareOk {
                    statement_id: 1,
                    num_columns: cols,
                    num_params: params,
                    warnings: 0,
                    metadata_follows: None,
                }
                .encode(&mut p);
                s.raw(&p);
                if params > 0 {
                    s.columns(params.into());
                }
                if cols > 0 {
                    s.columns(cols.into());
                }
                assert!(!run(Expect::Prepare, &s).error);
            }
        }
    }

    #[test]
    fn execute_binary_rows_cursor_and_fetch() {
        for caps in [base(), base() | CapabilityFlags::CLIENT_DEPRECATE_EOF] {
            let mut s = Stream::new(caps);
            s.result_set(
                1,
                &[b"\x00\x00\x01".to_vec(), b"\x00\x04".to_vec()],
                StatusFlags::empty(),
            );
            assert_eq!(run(Expect::Execute, &s).status, Some(StatusFlags::empty()));

            // Cursor opened: metadata only, ended by EOF/OK carrying SERVER_STATUS_CURSOR_EXISTS.
            let cursor = StatusFlags::SERVER_STATUS_CURSOR_EXISTS | IN_TRANS;
            let mut s = Stream::new(caps);
            s.raw(&[1]);
            let mut p = BytesMut::new();
            column(b"c", MYSQL_TYPE_LONG).encode(&mut p, caps).unwrap();
            s.raw(&p).end_rows(cursor);
            assert_eq!(run(Expect::Execute, &s).status, Some(cursor));

            let mut s = Stream::new(caps);
            s.raw(b"\x00\x00\x01\x00\x00\x00")
                .end_rows(cursor | StatusFlags::SERVER_STATUS_LAST_ROW_SENT);
            assert!(run(Expect::Fetch, &s)
                .status
                .unwrap()
                .contains(StatusFlags::SERVER_STATUS_LAST_ROW_SENT));
        }
    }

    #[test]
    fn field_list_statistics_simple_change_user() {
        for caps in [base(), base() | CapabilityFlags::CLIENT_DEPRECATE_EOF] {
            let mut s = Stream::new(caps);
            let mut p = BytesMut::new();
            column(b"c", MYSQL_TYPE_LONG).encode(&mut p, caps).unwrap();
            s.raw(&p).raw(&p).end_rows(StatusFlags::empty());
            run(Expect::FieldList, &s);
        }
        let mut s = Stream::new(base());
        s.raw(b"Uptime: 5  Threads: 1");
        assert_eq!(run(Expect::Statistics, &s).status, None);
        let mut s = Stream::new(base());
        s.eof(StatusFlags::SERVER_STATUS_AUTOCOMMIT);
        run(Expect::Simple, &s);

        let mut r = ResponseReader::new(Expect::ChangeUser, base(), Limits::default());
        let mut s = Stream::new(base());
        s.raw(b"\xfemysql_native_password\x0012345678901234567890\x00");
        assert_eq!(r.scan(&s.out).unwrap().step, Step::AuthData);
        r.resume(3).unwrap();
        let mut s = Stream::new(base());
        s.seq = 3;
        s.raw(&[0x01, 0x03]).ok(StatusFlags::empty());
        assert!(matches!(r.scan(&s.out).unwrap().step, Step::Complete(_)));
        assert!(ResponseReader::new(Expect::Nothing, base(), Limits::default()).is_complete());
    }

    #[test]
    fn mariadb_progress_reports_are_not_the_end() {
        let caps = base() | CapabilityFlags::MARIADB_CLIENT_PROGRESS;
        let mut s = Stream::new(caps);
        s.raw(b"\xff\xff\xff\x01\x01\x00\x10\x00\x00\x00stage")
            .ok(StatusFlags::empty());
        assert!(!run(Expect::Query, &s).error);
    }

    #[test]
    fn sequence_size_and_trailing_packets_are_checked() {
        let mut r = ResponseReader::new(Expect::Query, base(), Limits::default());
        assert_eq!(
            r.scan(&[7, 0, 0, 2]),
            Err(Error::BadSequence {
                got: 2,
                expected: 1
            })
        );
        let mut r = ResponseReader::new(Expect::Query, base(), Limits::with_max_message(100));
        assert!(matches!(
            r.scan(&[101, 0, 0, 1]),
            Err(Error::TooLarge { .. })
        ));
        let mut s = Stream::new(base());
        s.ok(StatusFlags::empty()).ok(StatusFlags::empty());
        let mut r = ResponseReader::new(Expect::Query, base(), Limits::default());
        let first = r.scan(&s.out).unwrap();
        assert_eq!(first.consumed, s.ends[0]);
        assert!(r.scan(&s.out[first.consumed..]).is_err());
        let mut r = ResponseReader::new(Expect::Query, base(), Limits::default());
        assert!(r.scan(&[1, 0, 0, 1, 0xFE]).is_err());
        let mut r = ResponseReader::new(Expect::Query, base(), Limits::default());
        assert!(r.scan(&[2, 0, 0, 1, 0x00, 0x00]).is_err());
    }

    #[test]
    fn an_error_may_stand_before_a_result_and_between_rows_only() {
        let mut r = ResponseReader::new(Expect::Query, base(), Limits::default());
        assert!(r.may_end_with_error());
        // A column count, then one of its two column definitions.
        let mut wire = BytesMut::new();
        let mut seq = 1;
        let def = |name: &'static [u8]| {
            let mut p = BytesMut::new();
            column(name, MYSQL_TYPE_LONG)
                .encode(&mut p, base())
                .unwrap();
            p
        };
        write_packet(&mut wire, &mut seq, &[2]).unwrap();
        write_packet(&mut wire, &mut seq, &def(b"a")).unwrap();
        r.scan(&wire).unwrap();
        assert!(!r.may_end_with_error(), "inside the column definitions");
        let mut wire = BytesMut::new();
        write_packet(&mut wire, &mut seq, &def(b"b")).unwrap();
        let mut eof = BytesMut::new();
        EofPacket {
            warnings: 0,
            status: StatusFlags::SERVER_STATUS_AUTOCOMMIT,
        }
        .encode(&mut eof, base());
        write_packet(&mut wire, &mut seq, &eof).unwrap();
        r.scan(&wire).unwrap();
        assert!(r.may_end_with_error(), "between rows");
    }

    #[test]
    fn huge_row_starting_with_0xfe_is_a_row() {
        let caps = base() | CapabilityFlags::CLIENT_DEPRECATE_EOF;
        let mut row = vec![0xFE];
        row.extend_from_slice(&(0x100_0000u64).to_le_bytes());
        row.resize(9 + 0x100_0000, b'x');
        let mut s = Stream::new(caps);
        s.result_set(1, &[row], StatusFlags::empty());
        let mut r = ResponseReader::new(Expect::Query, caps, Limits::default());
        let scan = r.scan(&s.out).unwrap();
        assert_eq!(scan.consumed, s.out.len());
        assert!(matches!(scan.step, Step::Complete(_)));
        // The same through the logical-packet API.
        let mut r = ResponseReader::new(Expect::Query, caps, Limits::default());
        let mut codec = crate::mysql::PacketCodec::new(Limits::default(), 1);
        let mut buf = s.out.clone();
        let mut last = Step::More;
        while let Some(p) = codec.parse(&mut buf).unwrap() {
            last = r.feed_logical(p.seq, &p.payload).unwrap();
        }
        assert!(matches!(last, Step::Complete(_)));
    }

    proptest! {
        #[test]
        fn generated_responses_end_exactly_at_their_end(
            deprecate in any::<bool>(),
            results in proptest::collection::vec((0usize..4, proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 0..5)), 1..4),
            final_status in any::<u16>(),
        ) {
            let caps = if deprecate { base() | CapabilityFlags::CLIENT_DEPRECATE_EOF } else { base() };
            let mut s = Stream::new(caps);
            let last = results.len() - 1;
            let final_status = StatusFlags::from_bits_retain(final_status).difference(MORE);
            for (i, (cols, rows)) in results.iter().enumerate() {
                let status = if i == last { final_status } else { MORE };
                if *cols == 0 {
                    s.ok(status);
                } else {
                    // Text rows never start with 0xFF and start with 0xFE only when huge.
                    let rows: Vec<Vec<u8>> = rows.iter().map(|r| {
                        let mut r = r.clone();
                        if r[0] >= 0xFB { r[0] = 0xFB; }
                        r
                    }).collect();
                    s.result_set(*cols, &rows, status);
                }
            }
            let c = run(Expect::Query, &s);
            prop_assert_eq!(c.status, Some(final_status));
        }
    }
}
