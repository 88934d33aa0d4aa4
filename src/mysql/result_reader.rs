//! The response reader: a sans-I/O state machine that is fed the response packets of one
//! command (headers plus at most [`HEAD_LEN`] payload bytes each) and says when the response
//! ends, with which final status flags. This is how the multiplexer knows an upstream is free.
//!
//! It covers OK/ERR, text and binary result sets with and without `CLIENT_DEPRECATE_EOF`,
//! multi-results (`SERVER_MORE_RESULTS_EXISTS`), LOCAL INFILE, COM_STMT_PREPARE, cursors
//! (COM_STMT_EXECUTE answered by metadata only, then COM_STMT_FETCH), COM_FIELD_LIST,
//! COM_STATISTICS, COM_CHANGE_USER and MariaDB progress reports. Per packet it costs a header
//! check and a byte compare; it never allocates.

use super::command::{code::*, Command};
use super::flags::{CapabilityFlags, StatusFlags};
use super::lenenc;
use super::packet::{PacketHeader, HEADER_LEN, MAX_PACKET_PAYLOAD};
use super::response::{EOF_HEADER, ERR_HEADER, LOCAL_INFILE_HEADER, MARIADB_PROGRESS_CODE, OK_HEADER};
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
    /// The response is complete.
    Complete(Completion),
}

/// Result of [`ResponseReader::scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// Bytes of complete packets consumed from the front of the buffer.
    pub consumed: usize,
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

    /// True once the response ended (immediately for [`Expect::Nothing`]).
    pub fn is_complete(&self) -> bool {
        self.state == State::Done
    }

    /// The sequence id the next packet must carry.
    pub fn next_seq(&self) -> u8 {
        self.next_seq
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
            let head = head.get(..h.len.min(HEAD_LEN)).ok_or(Error::Truncated("packet head"))?;
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
        while let Some(h) = buf.get(pos..).and_then(PacketHeader::peek) {
            let start = pos + HEADER_LEN;
            let end = start + h.len;
            let Some(payload) = buf.get(start..end) else {
                self.check_header(h)?;
                break;
            };
            let step = self.feed(h, payload)?;
            pos = end;
            if step != Step::More {
                return Ok(Scan { consumed: pos, step });
            }
        }
        Ok(Scan {
            consumed: pos,
            step: Step::More,
        })
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
            Step::More
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
        let optional = self.caps.contains(CapabilityFlags::CLIENT_OPTIONAL_RESULTSET_METADATA)
            || (self.expect == Expect::Execute
                && self.caps.contains(CapabilityFlags::MARIADB_CLIENT_CACHE_METADATA));
        let metadata = if optional {
            head.get(n).copied().ok_or(Error::Truncated("column count"))? != 0
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
            State::Paused => Err(Error::Unexpected("server packet while the client has the turn")),
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
