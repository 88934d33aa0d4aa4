//! Generic response packets (Generic Response Packets): OK, ERR, EOF, the LOCAL INFILE request,
//! and the session state change entries an OK packet may carry (Session State Information).

use bytes::{BufMut, Bytes, BytesMut};

use super::cursor::Cursor;
use super::flags::{CapabilityFlags, StatusFlags};
use super::lenenc;
use crate::wire::Error;

/// First byte of an OK packet.
pub const OK_HEADER: u8 = 0x00;
/// First byte of an EOF packet, and of an OK packet ending a result set with
/// `CLIENT_DEPRECATE_EOF`.
pub const EOF_HEADER: u8 = 0xFE;
/// First byte of an ERR packet.
pub const ERR_HEADER: u8 = 0xFF;
/// First byte of a LOCAL INFILE request.
pub const LOCAL_INFILE_HEADER: u8 = 0xFB;
/// ERR code MariaDB uses for progress reports (not an error, the command goes on).
pub const MARIADB_PROGRESS_CODE: u16 = 0xFFFF;

/// Session tracker: a system variable changed.
pub const SESSION_TRACK_SYSTEM_VARIABLES: u8 = 0;
/// Session tracker: the default schema changed.
pub const SESSION_TRACK_SCHEMA: u8 = 1;
/// Session tracker: session state changed.
pub const SESSION_TRACK_STATE_CHANGE: u8 = 2;
/// Session tracker: GTIDs.
pub const SESSION_TRACK_GTIDS: u8 = 3;
/// Session tracker: transaction characteristics.
pub const SESSION_TRACK_TRANSACTION_CHARACTERISTICS: u8 = 4;
/// Session tracker: transaction state.
pub const SESSION_TRACK_TRANSACTION_STATE: u8 = 5;

/// An OK packet (or the 0xFE-headed OK that ends a result set with `CLIENT_DEPRECATE_EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OkPacket {
    /// 0x00, or 0xFE for an OK that replaces an EOF.
    pub header: u8,
    /// Affected (or found) rows.
    pub affected_rows: u64,
    /// Last insert id.
    pub last_insert_id: u64,
    /// Server status.
    pub status: StatusFlags,
    /// Warning count.
    pub warnings: u16,
    /// Human-readable information.
    pub info: Bytes,
    /// Raw session state information (present with `CLIENT_SESSION_TRACK` and
    /// `SERVER_SESSION_STATE_CHANGED`); iterate it with [`OkPacket::session_state`].
    pub session_state: Bytes,
}

impl OkPacket {
    /// An OK packet with the given status and nothing else.
    pub fn new(status: StatusFlags) -> Self {
        OkPacket {
            header: OK_HEADER,
            affected_rows: 0,
            last_insert_id: 0,
            status,
            warnings: 0,
            info: Bytes::new(),
            session_state: Bytes::new(),
        }
    }

    /// Parses an OK packet negotiated with `caps`.
    pub fn parse(payload: &Bytes, caps: CapabilityFlags) -> Result<Self, Error> {
        let mut c = Cursor::new(payload, "OK");
        let header = c.u8()?;
        if header != OK_HEADER && header != EOF_HEADER {
            return Err(Error::Unexpected("non-OK packet"));
        }
        let affected_rows = c.lenenc()?;
        let last_insert_id = c.lenenc()?;
        let (status, warnings) = if caps.contains(CapabilityFlags::CLIENT_PROTOCOL_41) {
            (c.u16()?, c.u16()?)
        } else if caps.contains(CapabilityFlags::CLIENT_TRANSACTIONS) {
            (c.u16()?, 0)
        } else {
            (0, 0)
        };
        let status = StatusFlags::from_bits_retain(status);
        // `info` is documented as string<EOF> without CLIENT_SESSION_TRACK, but servers
        // (net_send_ok) and libmysql always use string<lenenc>, omitted when empty.
        let info = if c.is_empty() {
            Bytes::new()
        } else {
            c.lenenc_bytes()?
        };
        let mut session_state = Bytes::new();
        if caps.contains(CapabilityFlags::CLIENT_SESSION_TRACK)
            && status.contains(StatusFlags::SERVER_SESSION_STATE_CHANGED)
            && !c.is_empty()
        {
            session_state = c.lenenc_bytes()?;
        }
        c.finish()?;
        Ok(OkPacket {
            header,
            affected_rows,
            last_insert_id,
            status,
            warnings,
            info,
            session_state,
        })
    }

    /// Appends the payload for a peer negotiated with `caps`.
    pub fn encode(&self, out: &mut BytesMut, caps: CapabilityFlags) -> Result<(), Error> {
        out.put_u8(self.header);
        lenenc::put_int(out, self.affected_rows);
        lenenc::put_int(out, self.last_insert_id);
        if caps.contains(CapabilityFlags::CLIENT_PROTOCOL_41) {
            out.put_u16_le(self.status.bits());
            out.put_u16_le(self.warnings);
        } else if caps.contains(CapabilityFlags::CLIENT_TRANSACTIONS) {
            out.put_u16_le(self.status.bits());
        }
        let track = caps.contains(CapabilityFlags::CLIENT_SESSION_TRACK);
        let state_sent = track
            && self
                .status
                .contains(StatusFlags::SERVER_SESSION_STATE_CHANGED);
        if !state_sent && !self.session_state.is_empty() {
            return Err(Error::InvalidValue(
                "session state without SERVER_SESSION_STATE_CHANGED",
            ));
        }
        if !self.info.is_empty() || state_sent {
            lenenc::put_bytes(out, &self.info);
        }
        if state_sent {
            lenenc::put_bytes(out, &self.session_state);
        }
        Ok(())
    }

    /// The typed session state change entries.
    pub fn session_state(&self) -> SessionStateIter {
        SessionStateIter {
            data: self.session_state.clone(),
            failed: false,
        }
    }
}

/// One session state change entry of an OK packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionStateChange {
    /// `SESSION_TRACK_SYSTEM_VARIABLES`: a variable and its new value.
    SystemVariable {
        /// Variable name.
        name: Bytes,
        /// New value.
        value: Bytes,
    },
    /// `SESSION_TRACK_SCHEMA`: the new default schema.
    Schema(Bytes),
    /// `SESSION_TRACK_STATE_CHANGE`: "1" when session state changed.
    StateChange(bool),
    /// `SESSION_TRACK_GTIDS`: encoding specification and GTID set.
    Gtids {
        /// Encoding specification (0 = text).
        spec: u8,
        /// The GTID set.
        gtids: Bytes,
    },
    /// `SESSION_TRACK_TRANSACTION_CHARACTERISTICS`: SQL that recreates them.
    TransactionCharacteristics(Bytes),
    /// `SESSION_TRACK_TRANSACTION_STATE`: the 8-character state string.
    TransactionState(Bytes),
    /// A tracker this codec does not know, kept opaque.
    Other {
        /// Tracker type.
        kind: u8,
        /// Its data.
        data: Bytes,
    },
}

impl SessionStateChange {
    fn parse(kind: u8, data: &Bytes) -> Result<Self, Error> {
        let mut c = Cursor::new(data, "session state");
        let v = match kind {
            SESSION_TRACK_SYSTEM_VARIABLES => SessionStateChange::SystemVariable {
                name: c.lenenc_bytes()?,
                value: c.lenenc_bytes()?,
            },
            SESSION_TRACK_SCHEMA => SessionStateChange::Schema(c.lenenc_bytes()?),
            // Servers send the bare "1" (not a string<lenenc> as documented).
            SESSION_TRACK_STATE_CHANGE => SessionStateChange::StateChange(&c.rest()[..] == b"1"),
            SESSION_TRACK_GTIDS => SessionStateChange::Gtids {
                spec: c.u8()?,
                gtids: c.lenenc_bytes()?,
            },
            SESSION_TRACK_TRANSACTION_CHARACTERISTICS => {
                SessionStateChange::TransactionCharacteristics(c.lenenc_bytes()?)
            }
            SESSION_TRACK_TRANSACTION_STATE => {
                SessionStateChange::TransactionState(c.lenenc_bytes()?)
            }
            _ => {
                return Ok(SessionStateChange::Other {
                    kind,
                    data: data.clone(),
                })
            }
        };
        c.finish()?;
        Ok(v)
    }

    /// Appends this entry (type, lenenc data).
    pub fn encode(&self, out: &mut BytesMut) {
        let mut data = BytesMut::new();
        let kind = match self {
            SessionStateChange::SystemVariable { name, value } => {
                lenenc::put_bytes(&mut data, name);
                lenenc::put_bytes(&mut data, value);
                SESSION_TRACK_SYSTEM_VARIABLES
            }
            SessionStateChange::Schema(s) => {
                lenenc::put_bytes(&mut data, s);
                SESSION_TRACK_SCHEMA
            }
            SessionStateChange::StateChange(b) => {
                data.put_u8(if *b { b'1' } else { b'0' });
                SESSION_TRACK_STATE_CHANGE
            }
            SessionStateChange::Gtids { spec, gtids } => {
                data.put_u8(*spec);
                lenenc::put_bytes(&mut data, gtids);
                SESSION_TRACK_GTIDS
            }
            SessionStateChange::TransactionCharacteristics(s) => {
                lenenc::put_bytes(&mut data, s);
                SESSION_TRACK_TRANSACTION_CHARACTERISTICS
            }
            SessionStateChange::TransactionState(s) => {
                lenenc::put_bytes(&mut data, s);
                SESSION_TRACK_TRANSACTION_STATE
            }
            SessionStateChange::Other { kind, data: d } => {
                data.put_slice(d);
                *kind
            }
        };
        out.put_u8(kind);
        lenenc::put_bytes(out, &data);
    }
}

/// Iterator over the session state entries of an OK packet; yields one error and stops on
/// malformed data.
#[derive(Debug, Clone)]
pub struct SessionStateIter {
    data: Bytes,
    failed: bool,
}

impl Iterator for SessionStateIter {
    type Item = Result<SessionStateChange, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.data.is_empty() {
            return None;
        }
        let data = self.data.clone();
        let mut c = Cursor::new(&data, "session state");
        let item = c
            .u8()
            .and_then(|kind| Ok((kind, c.lenenc_bytes()?)))
            .and_then(|(kind, body)| SessionStateChange::parse(kind, &body));
        match item {
            Ok(v) => {
                self.data = c.rest();
                Some(Ok(v))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// An ERR packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrPacket {
    /// Error code.
    pub code: u16,
    /// SQLSTATE (with `CLIENT_PROTOCOL_41`, when the '#' marker is present).
    pub sql_state: Option<[u8; 5]>,
    /// Human-readable message.
    pub message: Bytes,
}

impl ErrPacket {
    /// Parses an ERR packet.
    pub fn parse(payload: &Bytes, caps: CapabilityFlags) -> Result<Self, Error> {
        let mut c = Cursor::new(payload, "ERR");
        if c.u8()? != ERR_HEADER {
            return Err(Error::Unexpected("non-ERR packet"));
        }
        let code = c.u16()?;
        let sql_state =
            if caps.contains(CapabilityFlags::CLIENT_PROTOCOL_41) && c.peek() == Some(b'#') {
                c.skip(1)?;
                Some(c.array::<5>()?)
            } else {
                None
            };
        Ok(ErrPacket {
            code,
            sql_state,
            message: c.rest(),
        })
    }

    /// Appends the payload.
    pub fn encode(&self, out: &mut BytesMut, caps: CapabilityFlags) {
        out.put_u8(ERR_HEADER);
        out.put_u16_le(self.code);
        if let (Some(state), true) = (
            self.sql_state,
            caps.contains(CapabilityFlags::CLIENT_PROTOCOL_41),
        ) {
            out.put_u8(b'#');
            out.put_slice(&state);
        }
        out.put_slice(&self.message);
    }
}

/// An EOF packet (without `CLIENT_DEPRECATE_EOF`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EofPacket {
    /// Warning count.
    pub warnings: u16,
    /// Server status.
    pub status: StatusFlags,
}

impl EofPacket {
    /// Parses an EOF packet; it is shorter than 9 bytes by definition.
    pub fn parse(payload: &Bytes, caps: CapabilityFlags) -> Result<Self, Error> {
        let mut c = Cursor::new(payload, "EOF");
        if c.u8()? != EOF_HEADER || payload.len() >= 9 {
            return Err(Error::Unexpected("non-EOF packet"));
        }
        if caps.contains(CapabilityFlags::CLIENT_PROTOCOL_41) {
            let warnings = c.u16()?;
            let status = StatusFlags::from_bits_retain(c.u16()?);
            c.finish()?;
            Ok(EofPacket { warnings, status })
        } else {
            c.finish()?;
            Ok(EofPacket {
                warnings: 0,
                status: StatusFlags::empty(),
            })
        }
    }

    /// Appends the payload.
    pub fn encode(&self, out: &mut BytesMut, caps: CapabilityFlags) {
        out.put_u8(EOF_HEADER);
        if caps.contains(CapabilityFlags::CLIENT_PROTOCOL_41) {
            out.put_u16_le(self.warnings);
            out.put_u16_le(self.status.bits());
        }
    }
}

/// A LOCAL INFILE request (0xFB + file name) answering COM_QUERY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalInfileRequest {
    /// The file the server asks for.
    pub filename: Bytes,
}

impl LocalInfileRequest {
    /// Parses the request.
    pub fn parse(payload: &Bytes) -> Result<Self, Error> {
        let mut c = Cursor::new(payload, "LOCAL INFILE request");
        if c.u8()? != LOCAL_INFILE_HEADER {
            return Err(Error::Unexpected("non-LOCAL INFILE packet"));
        }
        Ok(LocalInfileRequest { filename: c.rest() })
    }

    /// Appends the payload.
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u8(LOCAL_INFILE_HEADER);
        out.put_slice(&self.filename);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn caps41() -> CapabilityFlags {
        CapabilityFlags::CLIENT_PROTOCOL_41 | CapabilityFlags::CLIENT_TRANSACTIONS
    }

    #[test]
    fn spec_example_ok() {
        // OK_Packet example: `07 00 00 02 00 00 00 02 00 00 00` (payload after the header).
        let p = Bytes::from_static(&[0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00]);
        let ok = OkPacket::parse(&p, caps41()).unwrap();
        assert_eq!(ok.status, StatusFlags::SERVER_STATUS_AUTOCOMMIT);
        assert_eq!(ok.affected_rows, 0);
        assert!(ok.info.is_empty());
    }

    #[test]
    fn spec_example_err() {
        // ERR_Packet example: 1096, state HY000, "No tables used".
        let p = Bytes::from_static(b"\xff\x48\x04#HY000No tables used");
        let e = ErrPacket::parse(&p, caps41()).unwrap();
        assert_eq!(e.code, 1096);
        assert_eq!(&e.sql_state.unwrap(), b"HY000");
        assert_eq!(&e.message[..], b"No tables used");
    }

    #[test]
    fn spec_example_eof() {
        let p = Bytes::from_static(&[0xfe, 0x00, 0x00, 0x02, 0x00]);
        let e = EofPacket::parse(&p, caps41()).unwrap();
        assert_eq!(e.status, StatusFlags::SERVER_STATUS_AUTOCOMMIT);
    }

    #[test]
    fn spec_example_session_state() {
        // OK with a SESSION_TRACK_SYSTEM_VARIABLES entry autocommit=OFF, as in the docs.
        let caps = caps41() | CapabilityFlags::CLIENT_SESSION_TRACK;
        let p = Bytes::from_static(
            b"\x00\x00\x00\x00\x40\x00\x00\x00\x11\x00\x0f\x0aautocommit\x03OFF",
        );
        let ok = OkPacket::parse(&p, caps).unwrap();
        let entries: Vec<_> = ok.session_state().collect::<Result<_, _>>().unwrap();
        assert_eq!(
            entries,
            vec![SessionStateChange::SystemVariable {
                name: Bytes::from_static(b"autocommit"),
                value: Bytes::from_static(b"OFF"),
            }]
        );
    }

    fn any_entry() -> impl Strategy<Value = SessionStateChange> {
        let b = || proptest::collection::vec(any::<u8>(), 0..20).prop_map(Bytes::from);
        prop_oneof![
            (b(), b()).prop_map(|(name, value)| SessionStateChange::SystemVariable { name, value }),
            b().prop_map(SessionStateChange::Schema),
            any::<bool>().prop_map(SessionStateChange::StateChange),
            (any::<u8>(), b()).prop_map(|(spec, gtids)| SessionStateChange::Gtids { spec, gtids }),
            b().prop_map(SessionStateChange::TransactionCharacteristics),
            b().prop_map(SessionStateChange::TransactionState),
            (6u8.., b()).prop_map(|(kind, data)| SessionStateChange::Other { kind, data }),
        ]
    }

    proptest! {
        #[test]
        fn ok_round_trip(affected in any::<u64>(), id in any::<u64>(), status in any::<u16>(), warnings in any::<u16>(),
                         info in proptest::collection::vec(any::<u8>(), 0..40), entries in proptest::collection::vec(any_entry(), 0..4),
                         track in any::<bool>(), eof in any::<bool>()) {
            let mut caps = caps41();
            let mut status = StatusFlags::from_bits_retain(status);
            let mut state = BytesMut::new();
            if track {
                caps |= CapabilityFlags::CLIENT_SESSION_TRACK;
                for e in &entries { e.encode(&mut state); }
                status.set(StatusFlags::SERVER_SESSION_STATE_CHANGED, !entries.is_empty());
            }
            let state = if status.contains(StatusFlags::SERVER_SESSION_STATE_CHANGED) { state.freeze() } else { Bytes::new() };
            let ok = OkPacket { header: if eof { EOF_HEADER } else { OK_HEADER }, affected_rows: affected, last_insert_id: id, status, warnings, info: Bytes::from(info), session_state: state };
            let mut out = BytesMut::new();
            ok.encode(&mut out, caps).unwrap();
            let back = OkPacket::parse(&out.freeze(), caps).unwrap();
            prop_assert_eq!(&back, &ok);
            if track && !entries.is_empty() {
                let got: Vec<_> = back.session_state().collect::<Result<_, _>>().unwrap();
                prop_assert_eq!(got, entries);
            }
        }

        #[test]
        fn err_round_trip(code in any::<u16>(), state in proptest::option::of(any::<[u8; 5]>()), msg in proptest::collection::vec(any::<u8>(), 0..40)) {
            let msg = if state.is_none() && msg.first() == Some(&b'#') { Vec::new() } else { msg };
            let e = ErrPacket { code, sql_state: state, message: Bytes::from(msg) };
            let mut out = BytesMut::new();
            e.encode(&mut out, caps41());
            prop_assert_eq!(ErrPacket::parse(&out.freeze(), caps41()).unwrap(), e);
        }

        #[test]
        fn eof_round_trip(warnings in any::<u16>(), status in any::<u16>()) {
            let e = EofPacket { warnings, status: StatusFlags::from_bits_retain(status) };
            let mut out = BytesMut::new();
            e.encode(&mut out, caps41());
            prop_assert_eq!(EofPacket::parse(&out.freeze(), caps41()).unwrap(), e);
        }

        #[test]
        fn infile_round_trip(name in proptest::collection::vec(any::<u8>(), 0..40)) {
            let r = LocalInfileRequest { filename: Bytes::from(name) };
            let mut out = BytesMut::new();
            r.encode(&mut out);
            prop_assert_eq!(LocalInfileRequest::parse(&out.freeze()).unwrap(), r);
        }
    }
}
