//! Deterministic Engine tests for MySQL commands at their edges: prepared statements that move
//! between upstreams, short or huge packets, options, LOCAL INFILE refusals.

mod mysql_sim;

use muxql::mysql::command::code::{COM_SET_OPTION, COM_STMT_EXECUTE, COM_STMT_PREPARE};
use muxql::mysql::packet::MAX_PACKET_PAYLOAD;
use muxql::mysql::response::EofPacket;
use muxql::mysql::stmt::{ColumnDefinition, PrepareOk};
use mysql_sim::*;

/// The server's answer to a COM_STMT_PREPARE: PREPARE_OK, parameter definitions, EOF.
fn prepare_ok(statement_id: u32, params: u16) -> BytesMut {
    let mut out = BytesMut::new();
    let mut seq = 1u8;
    let mut p = BytesMut::new();
    PrepareOk {
        statement_id,
        num_columns: 0,
        num_params: params,
        warnings: 0,
        metadata_follows: None,
    }
    .encode(&mut p);
    write_packet(&mut out, &mut seq, &p).unwrap();
    for _ in 0..params {
        let mut p = BytesMut::new();
        ColumnDefinition {
            catalog: Bytes::from_static(b"def"),
            schema: Bytes::new(),
            table: Bytes::new(),
            org_table: Bytes::new(),
            name: Bytes::from_static(b"?"),
            org_name: Bytes::new(),
            extended_type_info: None,
            character_set: 63,
            column_length: 0,
            column_type: 0xfd,
            flags: 0,
            decimals: 0,
        }
        .encode(&mut p, caps())
        .unwrap();
        write_packet(&mut out, &mut seq, &p).unwrap();
    }
    if params > 0 {
        let mut p = BytesMut::new();
        EofPacket {
            warnings: 0,
            status: StatusFlags::SERVER_STATUS_AUTOCOMMIT,
        }
        .encode(&mut p, caps());
        write_packet(&mut out, &mut seq, &p).unwrap();
    }
    out
}

fn prepare(sql: &str) -> BytesMut {
    let mut p = vec![COM_STMT_PREPARE];
    p.extend_from_slice(sql.as_bytes());
    frame(&p, 0)
}

/// COM_STMT_EXECUTE of client statement `id` with one parameter of `ty` sent as `value`.
fn execute_one(id: u32, ty: u8, value: &[u8]) -> BytesMut {
    let mut p = vec![COM_STMT_EXECUTE];
    p.extend_from_slice(&id.to_le_bytes());
    p.extend_from_slice(&[0, 1, 0, 0, 0, 0, 1, ty, 0]);
    p.extend_from_slice(value);
    frame(&p, 0)
}

/// COM_STMT_EXECUTE of client statement `id` without parameters.
fn execute_bare(id: u32) -> BytesMut {
    let mut p = vec![COM_STMT_EXECUTE];
    p.extend_from_slice(&id.to_le_bytes());
    p.extend_from_slice(&[0, 1, 0, 0, 0]);
    frame(&p, 0)
}

/// An ERR packet from the server (sequence id `seq`).
fn server_err(code: u16, state: &[u8; 5], message: &'static str, seq: u8) -> BytesMut {
    let mut err = BytesMut::new();
    ErrPacket {
        code,
        sql_state: Some(*state),
        message: Bytes::from_static(message.as_bytes()),
    }
    .encode(&mut err, caps());
    frame(&err, seq)
}

fn autocommit_ok() -> BytesMut {
    frame(&ok(StatusFlags::SERVER_STATUS_AUTOCOMMIT, caps()), 1)
}

/// The only upstream a step sent something to.
fn upstream_of(out: &Out) -> UpstreamId {
    out.to_upstreams[0].0
}

/// `b` holds the first upstream in a transaction, `a` has prepared `SELECT 1` there, and a
/// third client has prepared `SELECT 2` on a second upstream, last. Returns (a, u1, u2).
fn statement_on_another_upstream(sim: &mut Sim) -> (ClientId, UpstreamId, UpstreamId) {
    let a = sim.ready_client();
    let b = sim.ready_client();
    let c = sim.ready_client();
    let out = sim.client_send(a, prepare("SELECT 1"));
    let u1 = upstream_of(&out);
    sim.upstream_send(u1, prepare_ok(7, 0));
    let out = sim.client_send(b, query("BEGIN"));
    assert_eq!(upstream_of(&out), u1);
    sim.upstream_send(u1, frame(&ok(in_trans(), caps()), 1));
    let out = sim.client_send(c, prepare("SELECT 2"));
    let u2 = out.connects[0];
    let out = sim.login_upstream(u2, 200);
    assert_eq!(out.packets_to_upstream(u2)[0][0], COM_STMT_PREPARE);
    sim.upstream_send(u2, prepare_ok(9, 0));
    (a, u1, u2)
}

#[test]
fn a_short_execute_closes_only_its_client() {
    let mut sim = Sim::new(config(1));
    let a = sim.ready_client();
    let b = sim.ready_client();
    let out = sim.client_send(a, prepare("SELECT ?"));
    let u = upstream_of(&out);
    sim.upstream_send(u, prepare_ok(7, 1));
    sim.client_send(a, execute_one(1, 0x08, &5u64.to_le_bytes()));
    sim.upstream_send(u, autocommit_ok());
    // b binds other types to the same statement on the same server connection...
    let out = sim.client_send(b, prepare("SELECT ?"));
    if !out.to_upstreams.is_empty() {
        sim.upstream_send(u, prepare_ok(8, 1));
    }
    sim.client_send(b, execute_one(1, 0x0f, b"\x01x"));
    sim.upstream_send(u, autocommit_ok());
    // ...so a's types would be added to a's execute, which stops after the statement id.
    let mut p = vec![COM_STMT_EXECUTE];
    p.extend_from_slice(&1u32.to_le_bytes());
    let out = sim.client_send(a, frame(&p, 0));
    assert_eq!(out.closed_clients, vec![a]);
    let err = ErrPacket::parse(&out.packets_to_client(a)[0], caps()).unwrap();
    assert_eq!(err.code, 1835, "ER_MALFORMED_PACKET");
    let out = sim.client_send(b, query("SELECT 1"));
    assert_eq!(out.packets_to_upstream(u).len(), 1, "b goes on");
}

#[test]
fn a_failed_prepare_again_answers_the_command_with_its_error() {
    let mut sim = Sim::new(config(2));
    let (a, _, u2) = statement_on_another_upstream(&mut sim);
    let out = sim.client_send(a, query("BEGIN"));
    assert_eq!(upstream_of(&out), u2);
    sim.upstream_send(u2, frame(&ok(in_trans(), caps()), 1));
    // a's statement is prepared again on u2, and that fails there.
    let out = sim.client_send(a, execute_bare(1));
    let sent = out.packets_to_upstream(u2);
    assert_eq!(&sent[..], [Bytes::from_static(b"\x16SELECT 1")]);
    let err = server_err(1146, b"42S02", "Table 'db.t' doesn't exist", 1);
    let out = sim.upstream_send(u2, err);
    assert!(
        out.packets_to_upstream(u2).is_empty(),
        "no second try: {out:?}"
    );
    let answer = out.packets_to_client(a);
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert_eq!(ErrPacket::parse(&answer[0], caps()).unwrap().code, 1146);
}

#[test]
fn the_last_statement_id_names_the_clients_statement_wherever_it_lands() {
    let mut sim = Sim::new(config(2));
    let (a, _, u2) = statement_on_another_upstream(&mut sim);
    // MariaDB's "last prepared statement" id: u2's last one is the other client's.
    let out = sim.client_send(a, execute_bare(u32::MAX));
    let sent = out.packets_to_upstream(u2);
    assert_eq!(&sent[..], [Bytes::from_static(b"\x16SELECT 1")], "{out:?}");
    let out = sim.upstream_send(u2, prepare_ok(11, 0));
    let sent = out.packets_to_upstream(u2);
    assert_eq!(sent.len(), 1, "{out:?}");
    assert_eq!(&sent[0][..5], &[COM_STMT_EXECUTE, 11, 0, 0, 0]);
    let out = sim.upstream_send(u2, autocommit_ok());
    assert_eq!(out.packets_to_client(a).len(), 1);
}

#[test]
fn a_command_of_several_packets_is_not_paused_halfway_and_is_answered() {
    let mut sim = Sim::new(config(1));
    let a = sim.ready_client();
    let mut sql = b"SELECT 1".to_vec();
    sql.resize(MAX_PACKET_PAYLOAD + 10, b' ');
    let whole = query(std::str::from_utf8(&sql).unwrap());
    let mut first = whole;
    let second = first.split_off(4 + MAX_PACKET_PAYLOAD);
    let out = sim.client_send(a, first);
    assert!(
        !out.paused.contains(&Peer::Client(a)),
        "the rest of the command could never arrive"
    );
    let out = sim.client_send(a, second);
    let (u, _) = out.to_upstreams[0];
    let sent: usize = out.to_upstreams.iter().map(|(_, b)| b.len()).sum();
    assert_eq!(sent, 2 * 4 + MAX_PACKET_PAYLOAD + 11);
    // The server numbers its answer after the command's two packets.
    let out = sim.upstream_send(
        u,
        frame(&ok(StatusFlags::SERVER_STATUS_AUTOCOMMIT, caps()), 2),
    );
    assert!(out.closed_clients.is_empty(), "{out:?}");
    assert!(out.closed_upstreams.is_empty(), "{out:?}");
    let answer = &out.to_clients[0].1;
    assert_eq!((answer[3], answer[4]), (2, 0x00), "OK with seq 2");
}

#[test]
fn a_refused_local_infile_reaches_the_client_as_one_error() {
    let mut sim = Sim::new(config(1));
    let a = sim.ready_client();
    let out = sim.client_send(
        a,
        query("LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE t"),
    );
    let u = upstream_of(&out);
    let out = sim.upstream_send(u, frame(b"\xfb/etc/passwd", 1));
    assert!(
        out.to_clients.is_empty(),
        "the request is not shown: {out:?}"
    );
    assert_eq!(&out.packets_to_upstream(u)[..], [Bytes::new()], "no file");
    let out = sim.upstream_send(u, server_err(1148, b"42000", "not allowed", 3));
    let answer = &out.to_clients;
    assert_eq!(answer.len(), 1, "{out:?}");
    assert_eq!((answer[0].1[3], answer[0].1[4]), (1, 0xff), "ERR, seq 1");
}

#[test]
fn set_option_reaches_the_server_a_client_holds() {
    let mut sim = Sim::new(config(1));
    let a = sim.ready_client();
    let out = sim.client_send(a, query("BEGIN"));
    let u = upstream_of(&out);
    sim.upstream_send(u, frame(&ok(in_trans(), caps()), 1));
    let out = sim.client_send(a, frame(&[COM_SET_OPTION, 1, 0], 0));
    assert_eq!(
        &out.packets_to_upstream(u)[..],
        [Bytes::from_static(&[COM_SET_OPTION, 1, 0])]
    );
    let mut eof = BytesMut::new();
    EofPacket {
        warnings: 0,
        status: in_trans(),
    }
    .encode(&mut eof, caps());
    let out = sim.upstream_send(u, frame(&eof, 1));
    assert_eq!(out.packets_to_client(a).len(), 1);
    let out = sim.client_send(a, frame(&[COM_SET_OPTION, 7, 0], 0));
    assert!(out.to_upstreams.is_empty(), "not an option");
    let err = ErrPacket::parse(&out.packets_to_client(a)[0], caps()).unwrap();
    assert_eq!(err.code, 1047, "ER_UNKNOWN_COM_ERROR");
}
