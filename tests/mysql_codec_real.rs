//! The MySQL codec against a real MariaDB: a minimal blocking client built only on
//! `muxql::mysql` logs in with every plugin MariaDB offers, runs text and prepared queries, a
//! multi-statement, cursors, a >16 MiB round trip, and delimits every response with the
//! response reader (raw-frame `scan`) while parsing every packet with the codec.

use std::io::{Read, Write};
use std::net::TcpStream;

use bytes::{Bytes, BytesMut};
use muxql::mysql::auth::{random_seed, ClientAuth, ClientAuthStep};
use muxql::mysql::binary::{parse_binary_row, parse_text_row, Value};
use muxql::mysql::command::{
    BoundParam, Command, Query, StmtExecute, CURSOR_TYPE_NO_CURSOR, CURSOR_TYPE_READ_ONLY,
};
use muxql::mysql::handshake::{ClientHello, HandshakeResponse41, HandshakeV10};
use muxql::mysql::packet::write_packet;
use muxql::mysql::response::{ErrPacket, OkPacket, SessionStateChange};
use muxql::mysql::stmt::{ColumnDefinition, PrepareOk};
use muxql::mysql::{
    CapabilityFlags, Completion, Expect, PacketCodec, ResponseReader, StatusFlags, Step,
};
use muxql::wire::Limits;

mod common;

/// Bytes of the >16 MiB round trips.
const BIG: usize = 17 * 1024 * 1024 + 3;

struct Conn {
    sock: TcpStream,
    buf: BytesMut,
    caps: CapabilityFlags,
}

/// One command's response: its logical packets and how it ended.
struct Response {
    packets: Vec<Bytes>,
    end: Completion,
}

impl Conn {
    fn connect(user: &str, deprecate_eof: bool) -> Conn {
        let e = common::mariadb();
        let sock = TcpStream::connect(e.addr()).expect("connect to MariaDB");
        let mut c = Conn {
            sock,
            buf: BytesMut::new(),
            caps: CapabilityFlags::empty(),
        };
        let mut codec = PacketCodec::pre_auth(Limits::default());
        let greeting = c.read_packet(&mut codec);
        let server = HandshakeV10::parse(&greeting).expect("HandshakeV10");
        assert!(
            server.is_mariadb(),
            "expected MariaDB: {:?}",
            server.server_version
        );
        let mut want = CapabilityFlags::CLIENT_LONG_PASSWORD
            | CapabilityFlags::CLIENT_PROTOCOL_41
            | CapabilityFlags::CLIENT_SECURE_CONNECTION
            | CapabilityFlags::CLIENT_PLUGIN_AUTH
            | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
            | CapabilityFlags::CLIENT_CONNECT_WITH_DB
            | CapabilityFlags::CLIENT_CONNECT_ATTRS
            | CapabilityFlags::CLIENT_TRANSACTIONS
            | CapabilityFlags::CLIENT_MULTI_STATEMENTS
            | CapabilityFlags::CLIENT_MULTI_RESULTS
            | CapabilityFlags::CLIENT_PS_MULTI_RESULTS
            | CapabilityFlags::CLIENT_SESSION_TRACK;
        if deprecate_eof {
            want |= CapabilityFlags::CLIENT_DEPRECATE_EOF;
        }
        c.caps = want & server.capabilities;
        let mut auth = ClientAuth::new(
            server.auth_plugin_name.as_deref(),
            &server.auth_plugin_data,
            e.password.as_bytes(),
            false,
            random_seed().unwrap(),
        )
        .expect("supported plugin");
        let resp = HandshakeResponse41 {
            capabilities: c.caps,
            max_packet_size: 64 << 20,
            character_set: 45,
            username: Bytes::from(user.to_owned()),
            auth_response: Bytes::from(auth.initial_response()),
            database: Some(Bytes::from(e.db.clone())),
            auth_plugin_name: Some(Bytes::from_static(auth.plugin().name())),
            connect_attrs: vec![(
                Bytes::from_static(b"_client_name"),
                Bytes::from_static(b"muxql-test"),
            )],
            zstd_compression_level: None,
        };
        let mut payload = BytesMut::new();
        resp.encode(&mut payload).unwrap();
        // The server-role parser reads what the client role wrote.
        assert_eq!(
            ClientHello::parse(&payload.clone().freeze()).unwrap(),
            ClientHello::Response(resp)
        );
        let mut seq = 1;
        c.send(&mut seq, &payload);
        codec.set_next_seq(seq);
        loop {
            let p = c.read_packet(&mut codec);
            match auth.handle(&p, c.caps).expect("auth packet") {
                ClientAuthStep::Done(ok) => {
                    assert!(ok.status.contains(StatusFlags::SERVER_STATUS_AUTOCOMMIT));
                    return c;
                }
                ClientAuthStep::Failed(e) => panic!("login of {user} failed: {:?}", e.message),
                ClientAuthStep::Wait => {}
                ClientAuthStep::Send(data) => {
                    let mut seq = codec.next_seq();
                    c.send(&mut seq, &data);
                    codec.set_next_seq(seq);
                }
            }
        }
    }

    fn send(&mut self, seq: &mut u8, payload: &[u8]) {
        let mut out = BytesMut::new();
        write_packet(&mut out, seq, payload).unwrap();
        self.sock.write_all(&out).unwrap();
    }

    /// Sends a command; returns the sequence id the response starts at.
    fn send_command(&mut self, cmd: &Command) -> u8 {
        let mut payload = BytesMut::new();
        cmd.encode(&mut payload, self.caps).unwrap();
        let mut seq = 0;
        self.send(&mut seq, &payload);
        seq
    }

    fn fill(&mut self) {
        let mut chunk = vec![0u8; 256 * 1024];
        let n = self.sock.read(&mut chunk).unwrap();
        assert!(n > 0, "server closed the connection");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    fn read_packet(&mut self, codec: &mut PacketCodec) -> Bytes {
        loop {
            if let Some(p) = codec.parse(&mut self.buf).unwrap() {
                return p.payload;
            }
            self.fill();
        }
    }

    /// Sends a command and reads its whole response: the reader decides where it ends on the
    /// raw frames; the codec then cuts exactly those bytes into logical packets.
    fn command(&mut self, cmd: &Command) -> Response {
        let first = self.send_command(cmd);
        let expect = Expect::for_command(cmd).expect("known command");
        let mut reader =
            ResponseReader::new(expect, self.caps, Limits::default()).starting_at(first);
        let mut codec = PacketCodec::new(Limits::default(), first);
        let mut scanned = 0;
        loop {
            let scan = reader.scan(&self.buf[scanned..]).unwrap();
            scanned += scan.consumed;
            match scan.step {
                Step::Complete(end) => {
                    let mut frames = self.buf.split_to(scanned);
                    let mut packets = Vec::new();
                    while let Some(p) = codec.parse(&mut frames).unwrap() {
                        packets.push(p.payload);
                    }
                    assert!(frames.is_empty());
                    assert!(self.buf.is_empty(), "bytes after the end of the response");
                    return Response { packets, end };
                }
                // One result of several ended: the response goes on.
                Step::ResultEnd(_) => {}
                Step::More => self.fill(),
                other => panic!("unexpected step {other:?}"),
            }
        }
    }

    fn query(&mut self, sql: &str) -> Response {
        self.command(&Command::Query(Query {
            attributes: Vec::new(),
            sql: Bytes::from(sql.to_owned()),
        }))
    }

    /// Splits a single result set response into column definitions and rows.
    fn result_set(&self, r: &Response) -> (Vec<ColumnDefinition>, Vec<Bytes>) {
        let (count, rest) = r.packets.split_first().expect("column count");
        let n = usize::from(count[0]);
        let cols: Vec<ColumnDefinition> = rest[..n]
            .iter()
            .map(|p| ColumnDefinition::parse(p, self.caps).unwrap())
            .collect();
        let skip = if self.caps.contains(CapabilityFlags::CLIENT_DEPRECATE_EOF) {
            n
        } else {
            n + 1
        };
        (cols, rest[skip..rest.len() - 1].to_vec())
    }
}

fn param(param_type: u8, value: Value) -> BoundParam {
    BoundParam {
        param_type,
        unsigned: false,
        name: Bytes::new(),
        value,
    }
}

#[test]
fn logs_in_with_every_mariadb_plugin_and_queries() {
    let e = common::mariadb();
    for user in [e.user.as_str(), e.require_ed25519_user()] {
        for deprecate in [false, true] {
            let mut c = Conn::connect(user, deprecate);
            let r = c.query("SELECT 1, 'muxql', NULL");
            assert!(!r.end.error);
            let (cols, rows) = c.result_set(&r);
            assert_eq!(cols.len(), 3);
            assert_eq!(
                parse_text_row(&rows[0], 3).unwrap(),
                vec![
                    Some(Bytes::from_static(b"1")),
                    Some(Bytes::from_static(b"muxql")),
                    None
                ]
            );
            let r = c.query("SELEC 1");
            assert!(r.end.error);
            let err = ErrPacket::parse(&r.packets[0], c.caps).unwrap();
            assert_eq!(err.sql_state, Some(*b"42000"));
        }
    }
}

#[test]
fn transaction_status_and_session_tracking() {
    let e = common::mariadb();
    let mut c = Conn::connect(&e.user, true);
    let r = c.query("BEGIN");
    assert!(r
        .end
        .status
        .unwrap()
        .contains(StatusFlags::SERVER_STATUS_IN_TRANS));
    let r = c.query("COMMIT");
    assert!(!r
        .end
        .status
        .unwrap()
        .contains(StatusFlags::SERVER_STATUS_IN_TRANS));
    c.query("SET SESSION session_track_state_change = ON, session_track_system_variables = 'autocommit,time_zone'");
    let r = c.query("SET SESSION time_zone = '+01:00'");
    let ok = OkPacket::parse(&r.packets[0], c.caps).unwrap();
    let changes: Vec<_> = ok.session_state().collect::<Result<_, _>>().unwrap();
    assert!(
        changes.contains(&SessionStateChange::SystemVariable {
            name: Bytes::from_static(b"time_zone"),
            value: Bytes::from_static(b"+01:00"),
        }),
        "{changes:?}"
    );
    assert!(
        changes.contains(&SessionStateChange::StateChange(true)),
        "{changes:?}"
    );
    let r = c.command(&Command::InitDb(Bytes::from(e.db.clone())));
    let ok = OkPacket::parse(&r.packets[0], c.caps).unwrap();
    let schema = SessionStateChange::Schema(Bytes::from(e.db.clone()));
    assert!(ok.session_state().any(|s| s == Ok(schema.clone())));
    for cmd in [
        Command::Ping,
        Command::ResetConnection,
        Command::SetOption(0),
    ] {
        assert!(!c.command(&cmd).end.error, "{cmd:?}");
    }
    let stats = c.command(&Command::Statistics);
    assert!(stats.packets[0].starts_with(b"Uptime"));
    c.query("CREATE TEMPORARY TABLE fl (a INT, b TEXT)");
    let r = c.command(&Command::FieldList {
        table: Bytes::from_static(b"fl"),
        wildcard: Bytes::new(),
    });
    assert_eq!(r.packets.len(), 3);
}

#[test]
fn multi_statements_and_multi_results() {
    for deprecate in [false, true] {
        let mut c = Conn::connect(&common::mariadb().user, deprecate);
        let r = c.query("SELECT 1; DO 1; SELECT 2, 3; BEGIN");
        assert!(!r.end.error);
        let status = r.end.status.unwrap();
        assert!(status.contains(StatusFlags::SERVER_STATUS_IN_TRANS));
        assert!(!status.contains(StatusFlags::SERVER_MORE_RESULTS_EXISTS));
        let r = c.query("SELECT 1; SELEC 2; SELECT 3");
        assert!(r.end.error);
        // Nothing of the failed batch is left over: the next command starts clean.
        assert!(!c.query("ROLLBACK").end.error);
    }
}

#[test]
fn prepared_statements_cursors_and_long_data() {
    for deprecate in [false, true] {
        let mut c = Conn::connect(&common::mariadb().user, deprecate);
        let sql = Bytes::from_static(b"SELECT ? + 1, CONCAT(?, 'b')");
        let r = c.command(&Command::StmtPrepare(sql));
        let ok = PrepareOk::parse(&r.packets[0], c.caps).unwrap();
        assert_eq!((ok.num_params, ok.num_columns), (2, 2));
        let params = [
            param(8, Value::LongLong(41)),
            param(253, Value::Bytes(Bytes::from_static(b"a"))),
        ];
        let exec = StmtExecute::new(
            ok.statement_id,
            CURSOR_TYPE_NO_CURSOR,
            &params,
            c.caps,
            true,
        );
        let r = c.command(&Command::StmtExecute(exec));
        let (cols, rows) = c.result_set(&r);
        let types: Vec<u8> = cols.iter().map(|c| c.column_type).collect();
        let row = parse_binary_row(&rows[0], &types).unwrap();
        assert_eq!(row[1], Value::Bytes(Bytes::from_static(b"ab")));

        // Long data has no response; the next execute carries it.
        let long = Command::StmtSendLongData {
            statement_id: ok.statement_id,
            param_id: 1,
            data: Bytes::from_static(b"long"),
        };
        assert_eq!(Expect::for_command(&long), Some(Expect::Nothing));
        c.send_command(&long);
        let exec = StmtExecute::new(
            ok.statement_id,
            CURSOR_TYPE_NO_CURSOR,
            &params,
            c.caps,
            true,
        );
        let r = c.command(&Command::StmtExecute(exec));
        let (_, rows) = c.result_set(&r);
        let row = parse_binary_row(&rows[0], &types).unwrap();
        assert_eq!(row[1], Value::Bytes(Bytes::from_static(b"longb")));
        assert!(!c.command(&Command::StmtReset(ok.statement_id)).end.error);

        // A read-only cursor: metadata only, then rows through COM_STMT_FETCH.
        let sql = Bytes::from_static(b"SELECT seq FROM seq_1_to_5");
        let r = c.command(&Command::StmtPrepare(sql));
        let cur = PrepareOk::parse(&r.packets[0], c.caps).unwrap();
        let exec = StmtExecute::new(cur.statement_id, CURSOR_TYPE_READ_ONLY, &[], c.caps, true);
        let r = c.command(&Command::StmtExecute(exec));
        assert!(r
            .end
            .status
            .unwrap()
            .contains(StatusFlags::SERVER_STATUS_CURSOR_EXISTS));
        let fetch = Command::StmtFetch {
            statement_id: cur.statement_id,
            num_rows: 3,
        };
        assert_eq!(c.command(&fetch).packets.len(), 4);
        let r = c.command(&fetch);
        assert_eq!(r.packets.len(), 3);
        assert!(r
            .end
            .status
            .unwrap()
            .contains(StatusFlags::SERVER_STATUS_LAST_ROW_SENT));

        for id in [ok.statement_id, cur.statement_id] {
            c.send_command(&Command::StmtClose(id));
        }
        assert!(!c.command(&Command::Ping).end.error);
    }
}

#[test]
fn payloads_over_16_mib_round_trip() {
    let mut c = Conn::connect(&common::mariadb().user, true);
    let r = c.query("SELECT @@max_allowed_packet");
    let (_, rows) = c.result_set(&r);
    let max = parse_text_row(&rows[0], 1).unwrap()[0].clone().unwrap();
    let max: usize = std::str::from_utf8(&max).unwrap().parse().unwrap();
    assert!(
        max > BIG + 1024,
        "the test server needs max_allowed_packet > 18M (got {max}); scripts/dbs sets 64M"
    );

    // Text protocol: a >16 MiB row comes back split into packets and is joined.
    let r = c.query(&format!("SELECT REPEAT('x', {BIG})"));
    let (_, rows) = c.result_set(&r);
    let v = parse_text_row(&rows[0], 1).unwrap()[0].clone().unwrap();
    assert_eq!(v.len(), BIG);

    // Binary protocol: a >16 MiB parameter goes up split and comes back whole.
    let blob: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();
    let r = c.command(&Command::StmtPrepare(Bytes::from_static(b"SELECT ?")));
    let ok = PrepareOk::parse(&r.packets[0], c.caps).unwrap();
    let params = [param(251, Value::Bytes(Bytes::from(blob.clone())))];
    let exec = StmtExecute::new(
        ok.statement_id,
        CURSOR_TYPE_NO_CURSOR,
        &params,
        c.caps,
        true,
    );
    let r = c.command(&Command::StmtExecute(exec));
    let (cols, rows) = c.result_set(&r);
    let row = parse_binary_row(&rows[0], &[cols[0].column_type]).unwrap();
    assert_eq!(row[0], Value::Bytes(Bytes::from(blob)));
}
