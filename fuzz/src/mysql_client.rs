//! A MySQL client of the fuzzed Engine: its commands (each carrying the client's tag) and its
//! side of the login, driven by muxql's own client-role authentication.

use bytes::{BufMut, Bytes, BytesMut};
use muxql::mysql::auth::{ClientAuth, ClientAuthStep};
use muxql::mysql::binary::column_type::MYSQL_TYPE_VAR_STRING;
use muxql::mysql::command::code::{
    COM_INIT_DB, COM_PING, COM_QUERY, COM_QUIT, COM_RESET_CONNECTION, COM_STMT_CLOSE,
    COM_STMT_EXECUTE, COM_STMT_PREPARE,
};
use muxql::mysql::handshake::{HandshakeResponse41, HandshakeV10};
use muxql::mysql::lenenc;
use muxql::mysql::packet::write_packet;

use crate::host::{Auth, USER};
use crate::mysql_server::server_caps;

/// Number of commands [`request`] knows.
pub const REQUESTS: u8 = 24;

/// One packet numbered `seq`.
pub fn packet(payload: &[u8], seq: u8) -> BytesMut {
    let mut out = BytesMut::new();
    let mut seq = seq;
    write_packet(&mut out, &mut seq, payload).expect("a client packet fits");
    out
}

fn query(sql: &str) -> BytesMut {
    let mut p = vec![COM_QUERY];
    p.extend_from_slice(sql.as_bytes());
    packet(&p, 0)
}

fn execute(statement: u32, tag: &str) -> BytesMut {
    let mut p = BytesMut::new();
    p.put_u8(COM_STMT_EXECUTE);
    p.put_u32_le(statement);
    p.put_u8(0); // no cursor
    p.put_u32_le(1); // iteration count
    p.put_u8(0); // NULL bitmap of one parameter
    p.put_u8(1); // new parameters bound: types follow
    p.put_slice(&[MYSQL_TYPE_VAR_STRING, 0]);
    lenenc::put_bytes(&mut p, tag.as_bytes());
    packet(&p, 0)
}

/// Command number `n % REQUESTS` from the client tagged `tag`.
pub fn request(n: u8, tag: &str) -> BytesMut {
    match n % REQUESTS {
        0 => query(&format!("SELECT '{tag}'")),
        1 => query("BEGIN"),
        2 => query("COMMIT"),
        3 => query("ROLLBACK"),
        4 => query("SET @v = 1"),
        5 => query("SELECT error"),
        6 => packet(&[&[COM_STMT_PREPARE][..], b"SELECT ?"].concat(), 0),
        7 => execute(1, tag),
        8 => execute(2, tag),
        9 => packet(&[COM_STMT_CLOSE, 1, 0, 0, 0], 0),
        10 => packet(&[COM_PING], 0),
        11 => packet(&[COM_RESET_CONNECTION], 0),
        12 => query("SET NAMES utf8mb4"),
        13 => query("SELECT LAST_INSERT_ID()"),
        14 => query("SHOW WARNINGS"),
        15 => query("LOCK TABLES t WRITE"),
        16 => query("UNLOCK TABLES"),
        17 => query("SELECT ROW_COUNT(), @@warning_count"),
        18 => packet(&[&[COM_INIT_DB][..], b"app"].concat(), 0),
        19 => packet(&[COM_QUIT], 0),
        20 => query("KILL QUERY 1"),
        21 => query("CREATE TEMPORARY TABLE t (a int)"),
        22 => query(&format!("SELECT '{tag}'; SELECT '{tag}'")),
        _ => query("SET autocommit = 0"),
    }
}

/// A client's side of the login.
pub struct MysqlLogin {
    auth: Option<ClientAuth>,
}

impl MysqlLogin {
    /// Answers the greeting (the first packet the Engine sent) with a HandshakeResponse41 for
    /// `password` and `database`.
    pub fn start(
        greeting: &Bytes,
        password: &str,
        database: &'static str,
    ) -> Option<(MysqlLogin, BytesMut)> {
        let hello = HandshakeV10::parse(greeting).ok()?;
        let auth = ClientAuth::new(
            hello.auth_plugin_name.as_deref(),
            &hello.auth_plugin_data,
            password.as_bytes(),
            false,
            [3; 32],
        )
        .ok()?
        .allow_public_key_request(true);
        let response = HandshakeResponse41 {
            capabilities: server_caps(),
            max_packet_size: 1 << 24,
            character_set: 45,
            username: Bytes::from_static(USER.as_bytes()),
            auth_response: Bytes::from(auth.initial_response()),
            database: Some(Bytes::from_static(database.as_bytes())),
            auth_plugin_name: Some(Bytes::from_static(auth.plugin().name())),
            connect_attrs: vec![],
            zstd_compression_level: None,
        };
        let mut p = BytesMut::new();
        response.encode(&mut p).ok()?;
        Some((MysqlLogin { auth: Some(auth) }, packet(&p, 1)))
    }

    /// Handles one login-phase packet numbered `seq`: what to send back, and what it says about
    /// the login.
    pub fn handle(&mut self, payload: &Bytes, seq: u8, out: &mut BytesMut) -> Option<Auth> {
        let auth = self.auth.as_mut()?;
        match auth.handle(payload, server_caps()) {
            Ok(ClientAuthStep::Send(data)) => {
                out.extend_from_slice(&packet(&data, seq.wrapping_add(1)));
                None
            }
            Ok(ClientAuthStep::Wait) => None,
            Ok(ClientAuthStep::Done(_)) => {
                self.auth = None;
                Some(Auth::Authenticated)
            }
            Ok(ClientAuthStep::Failed(_)) | Err(_) => {
                self.auth = None;
                Some(Auth::Refused)
            }
        }
    }
}
