//! A scripted MariaDB server: it greets, accepts muxql's login, and answers commands as MariaDB
//! would (OK and ERR with transaction status, text and binary result sets, prepared statements),
//! echoing the tag of each request in the rows it returns.

use bytes::{BufMut, Bytes, BytesMut};
use muxql::mysql::auth::native;
use muxql::mysql::binary::column_type::MYSQL_TYPE_VAR_STRING;
use muxql::mysql::command::code::{
    COM_CHANGE_USER, COM_INIT_DB, COM_PING, COM_QUERY, COM_QUIT, COM_RESET_CONNECTION,
    COM_SET_OPTION, COM_STMT_CLOSE, COM_STMT_EXECUTE, COM_STMT_PREPARE, COM_STMT_RESET,
    COM_STMT_SEND_LONG_DATA,
};
use muxql::mysql::handshake::{ClientHello, HandshakeV10};
use muxql::mysql::lenenc;
use muxql::mysql::packet::write_packet;
use muxql::mysql::response::{EofPacket, ErrPacket, OkPacket};
use muxql::mysql::stmt::{ColumnDefinition, PrepareOk};
use muxql::mysql::{CapabilityFlags, PacketHeader, StatusFlags};

use crate::tags::first_tag;

/// The capabilities the model's greeting offers.
pub fn server_caps() -> CapabilityFlags {
    CapabilityFlags::CLIENT_LONG_PASSWORD
        | CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::CLIENT_SECURE_CONNECTION
        | CapabilityFlags::CLIENT_TRANSACTIONS
        | CapabilityFlags::CLIENT_PLUGIN_AUTH
        | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | CapabilityFlags::CLIENT_MULTI_RESULTS
        | CapabilityFlags::CLIENT_MULTI_STATEMENTS
        | CapabilityFlags::CLIENT_SESSION_TRACK
        | CapabilityFlags::CLIENT_CONNECT_WITH_DB
}

/// One upstream's server side.
#[derive(Debug)]
pub struct MysqlServer {
    inbox: BytesMut,
    logged_in: bool,
    caps: CapabilityFlags,
    in_trans: bool,
    next_statement: u32,
    /// The client sent COM_QUIT.
    pub quit: bool,
    /// Answers not yet delivered to muxql.
    pub out: BytesMut,
}

impl MysqlServer {
    /// A server that has just accepted the connection: its greeting is queued.
    pub fn greeting(thread: u32) -> MysqlServer {
        let hello = HandshakeV10 {
            server_version: Bytes::from_static(b"5.5.5-10.11.0-MariaDB"),
            connection_id: thread,
            auth_plugin_data: Bytes::from_static(b"abcdefgh12345678ijkl"),
            capabilities: server_caps(),
            character_set: 45,
            status: StatusFlags::SERVER_STATUS_AUTOCOMMIT,
            auth_plugin_name: Some(Bytes::from_static(native::NAME)),
        };
        let mut p = BytesMut::new();
        hello.encode(&mut p).expect("the greeting encodes");
        let mut server = MysqlServer {
            inbox: BytesMut::new(),
            logged_in: false,
            caps: server_caps(),
            in_trans: false,
            next_statement: 1,
            quit: false,
            out: BytesMut::new(),
        };
        server.packets(0, &[&p]);
        server
    }

    /// Takes bytes muxql wrote to this upstream and queues the answers. An error means muxql
    /// sent something MariaDB would refuse as malformed.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.inbox.extend_from_slice(bytes);
        while let Some(header) = PacketHeader::peek(&self.inbox) {
            if header.is_continued() {
                return Err("a 16 MB packet to the model".into());
            }
            let len = header.len;
            if self.inbox.len() < 4 + len {
                break;
            }
            let packet = self.inbox.split_to(4 + len).freeze();
            self.answer(header.seq, packet.slice(4..))?;
        }
        Ok(())
    }

    fn status(&self) -> StatusFlags {
        let mut s = StatusFlags::SERVER_STATUS_AUTOCOMMIT;
        if self.in_trans {
            s |= StatusFlags::SERVER_STATUS_IN_TRANS;
        }
        s
    }

    /// Queues `payloads` as packets numbered from `seq`.
    fn packets(&mut self, seq: u8, payloads: &[&[u8]]) {
        let mut seq = seq;
        for p in payloads {
            write_packet(&mut self.out, &mut seq, p).expect("a model packet fits");
        }
    }

    fn ok(&mut self, seq: u8) {
        let mut p = BytesMut::new();
        OkPacket::new(self.status())
            .encode(&mut p, self.caps)
            .expect("an OK encodes");
        self.packets(seq, &[&p]);
    }

    fn err(&mut self, seq: u8, code: u16) {
        let mut p = BytesMut::new();
        ErrPacket {
            code,
            sql_state: Some(*b"42000"),
            message: Bytes::from_static(b"the model refused this"),
        }
        .encode(&mut p, self.caps);
        self.packets(seq, &[&p]);
    }

    fn eof(&self) -> BytesMut {
        let mut p = BytesMut::new();
        EofPacket {
            warnings: 0,
            status: self.status(),
        }
        .encode(&mut p, self.caps);
        p
    }

    fn column(&self) -> BytesMut {
        let mut p = BytesMut::new();
        ColumnDefinition {
            catalog: Bytes::from_static(b"def"),
            schema: Bytes::new(),
            table: Bytes::new(),
            org_table: Bytes::new(),
            name: Bytes::from_static(b"v"),
            org_name: Bytes::new(),
            extended_type_info: None,
            character_set: 45,
            column_length: 1024,
            column_type: MYSQL_TYPE_VAR_STRING,
            flags: 0,
            decimals: 0,
        }
        .encode(&mut p, self.caps)
        .expect("a column encodes");
        p
    }

    /// A one-column, one-row result set; `binary` for COM_STMT_EXECUTE.
    fn rows(&mut self, seq: u8, tag: &[u8], binary: bool) {
        let mut row = BytesMut::new();
        if binary {
            // Binary row: header 0x00, then a NULL bitmap of (columns + 7 + 2) / 8 bytes.
            row.put_u8(0);
            row.put_u8(0);
        }
        lenenc::put_bytes(&mut row, tag);
        let (column, eof) = (self.column(), self.eof());
        self.packets(seq, &[&[1], &column, &eof, &row, &eof]);
    }

    fn answer(&mut self, seq: u8, payload: Bytes) -> Result<(), String> {
        let reply = seq.wrapping_add(1);
        if !self.logged_in {
            let login = match ClientHello::parse(&payload) {
                Ok(ClientHello::Response(r)) => r,
                other => return Err(format!("muxql's login: {other:?}")),
            };
            self.caps = login.capabilities & server_caps();
            self.logged_in = true;
            self.ok(reply);
            return Ok(());
        }
        let Some((&code, body)) = payload.split_first() else {
            return Err("an empty command".into());
        };
        match code {
            COM_QUERY => self.query(reply, body),
            COM_STMT_PREPARE => {
                let mut p = BytesMut::new();
                PrepareOk {
                    statement_id: self.next_statement,
                    num_columns: 1,
                    num_params: 1,
                    warnings: 0,
                    metadata_follows: None,
                }
                .encode(&mut p);
                self.next_statement += 1;
                let (column, eof) = (self.column(), self.eof());
                self.packets(reply, &[&p, &column, &eof, &column, &eof]);
            }
            COM_STMT_EXECUTE => {
                let tag = first_tag(body).unwrap_or_else(|| b"none".to_vec());
                self.rows(reply, &tag, true);
            }
            COM_QUIT => self.quit = true,
            COM_STMT_CLOSE | COM_STMT_SEND_LONG_DATA => {}
            COM_SET_OPTION => {
                let eof = self.eof();
                self.packets(reply, &[&eof]);
            }
            COM_RESET_CONNECTION | COM_CHANGE_USER => {
                self.in_trans = false;
                self.ok(reply);
            }
            COM_PING | COM_INIT_DB | COM_STMT_RESET => self.ok(reply),
            _ => self.err(reply, 1047),
        }
        Ok(())
    }

    fn query(&mut self, seq: u8, sql: &[u8]) {
        let text = String::from_utf8_lossy(sql).to_ascii_uppercase();
        let word = text.split_whitespace().next().unwrap_or("");
        if sql.windows(5).any(|w| w.eq_ignore_ascii_case(b"error")) {
            self.err(seq, 1064);
            return;
        }
        match word {
            "BEGIN" | "START" => self.in_trans = true,
            "COMMIT" | "ROLLBACK" => self.in_trans = false,
            _ => {}
        }
        match first_tag(sql) {
            Some(tag) if word == "SELECT" => self.rows(seq, &tag, false),
            _ => self.ok(seq),
        }
    }
}
