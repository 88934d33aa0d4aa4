//! Deterministic Engine tests of large messages streaming through in both directions: rows
//! and COPY data from the server, COPY data, queries and Binds from a client.

mod pg_sim;

use pg_sim::*;

/// A row larger than anything muxql buffers streams through as its bytes arrive (PostgreSQL
/// allows values up to 1 GB; muxql's `max_message` bounds only what it buffers whole), and the
/// unit still ends where it should.
#[test]
fn a_large_row_streams_through_as_it_arrives() {
    let mut cfg = config(1, PoolMode::Transaction);
    cfg.max_message = 64 * 1024;
    let mut sim = Sim::new(cfg);
    let a = sim.ready_client();
    let out = sim.client_send(a, &[q("SELECT repeat('x', 1048576)")]);
    let (u, _) = out.to_upstreams[0];
    let value = vec![b'x'; 1 << 20];
    let row = muxql::pg::backend::DataRow::from_values([Some(&value[..])]).unwrap();
    let answer = [
        BackendMessage::DataRow(row),
        complete("SELECT 1"),
        rfq(TransactionStatus::Idle),
    ];
    let mut wire = enc_back(&answer);
    let mut got = BytesMut::new();
    let mut fed = 0;
    while !wire.is_empty() {
        let chunk = wire.split_to(wire.len().min(60_000));
        fed += chunk.len();
        sim.engine.upstream_data(u, chunk, sim.now);
        let out = sim.drain();
        got.extend_from_slice(&bytes_for(&out.to_clients, a));
        if !wire.is_empty() {
            assert_eq!(
                got.len(),
                fed,
                "every byte of the row goes on as it arrives"
            );
        }
    }
    let msgs: Vec<BackendMessage> = frames_with(got, 2 << 20)
        .iter()
        .map(|f| BackendMessage::parse(f).unwrap())
        .collect();
    assert_eq!(msgs, answer.to_vec());
    assert_eq!(
        sim.engine.stats().routes[0].upstreams_idle,
        1,
        "released after the unit"
    );
    // A message muxql must buffer whole is still bounded by max_message.
    let out = sim.client_send(a, &[q("SELECT 1")]);
    let huge = BackendMessage::NoticeResponse(Fields::new("NOTICE", "00000", &"n".repeat(70_000)));
    let out2 = sim.upstream_send(u, &[huge]);
    assert_eq!(out.to_upstreams.len(), 1);
    assert!(
        matches!(&out2.client_msgs(a)[..], [BackendMessage::ErrorResponse(f), BackendMessage::ReadyForQuery(_)]
            if f.code().map(|c| &c[..]) == Some(&b"08006"[..])),
        "the upstream broke: its client is told, and its session goes on: {out2:?}"
    );
    assert!(out2.closed_clients.is_empty());
}

/// Frames of `buf`, allowing messages up to `max` bytes.
fn frames_with(mut buf: BytesMut, max: usize) -> Vec<Frame> {
    let limits = Limits::with_max_message(max);
    let mut out = Vec::new();
    while let Some(f) = split_frame(&mut buf, Direction::Backend, &limits).unwrap() {
        out.push(f);
    }
    assert!(buf.is_empty());
    out
}

/// Feeds `wire` to the Engine from client `id` in chunks of `chunk` bytes; returns what went to
/// upstream `u`, checking that every byte went on as it arrived (but the last chunk's, which
/// may be answered locally).
fn stream_from_client(sim: &mut Sim, id: ClientId, u: UpstreamId, mut wire: BytesMut) -> BytesMut {
    let mut sent = BytesMut::new();
    let mut fed = 0;
    while !wire.is_empty() {
        let chunk = wire.split_to(wire.len().min(50_000));
        fed += chunk.len();
        let out = sim.client_send_raw(id, chunk);
        sent.extend_from_slice(&bytes_for(&out.to_upstreams, u));
        if !wire.is_empty() {
            assert!(sent.len() + 64 >= fed, "{} of {fed} went on", sent.len());
        }
    }
    sent
}

/// Frontend frames of `buf`, allowing messages up to `max` bytes.
fn front_frames_with(mut buf: BytesMut, max: usize) -> Vec<FrontendMessage> {
    let limits = Limits::with_max_message(max);
    let mut out = Vec::new();
    while let Some(f) = split_frame(&mut buf, Direction::Frontend, &limits).unwrap() {
        out.push(FrontendMessage::parse(&f).unwrap());
    }
    assert!(buf.is_empty());
    out
}

fn small_buffers() -> Config {
    let mut cfg = config(1, PoolMode::Transaction);
    cfg.max_message = 64 * 1024;
    cfg
}

/// COPY FROM STDIN with a CopyData larger than anything muxql buffers.
#[test]
fn large_copy_data_from_a_client_streams_through() {
    let mut sim = Sim::new(small_buffers());
    let a = sim.ready_client();
    let out = sim.client_send(a, &[q("COPY t FROM STDIN")]);
    let (u, _) = out.to_upstreams[0];
    sim.upstream_send(
        u,
        &[BackendMessage::CopyInResponse(
            muxql::pg::backend::CopyResponse {
                format: 0,
                column_formats: vec![0],
            },
        )],
    );
    let data = Bytes::from(vec![b'7'; 1 << 20]);
    let copy = [
        FrontendMessage::CopyData(data.clone()),
        FrontendMessage::CopyDone,
    ];
    let sent = stream_from_client(&mut sim, a, u, enc_front(&copy));
    assert_eq!(front_frames_with(sent, 2 << 20), copy.to_vec());
    let out = sim.upstream_send(u, &[complete("COPY 1"), rfq(TransactionStatus::Idle)]);
    assert!(is_ready(&out.client_msgs(a)));
}

/// A simple query larger than `max_message` streams through (not looked into).
#[test]
fn a_large_query_streams_through() {
    let mut sim = Sim::new(small_buffers());
    let a = sim.ready_client();
    let sql = format!("SELECT '{}'", "y".repeat(1 << 20));
    // The first request attaches an upstream.
    let out = sim.client_send(a, &[q("SELECT 1")]);
    let (u, _) = out.to_upstreams[0];
    sim.upstream_send(u, &select_answer("1"));
    let big = [q(&sql)];
    let sent = stream_from_client(&mut sim, a, u, enc_front(&big));
    assert_eq!(front_frames_with(sent, 2 << 20), big.to_vec());
    let out = sim.upstream_send(u, &select_answer("1"));
    assert_eq!(out.client_msgs(a), select_answer("1"));
}

/// A Bind of a named statement with a large parameter: its statement name is rewritten in
/// front (after the Parse this upstream needs) and the values stream behind it, never decoded.
#[test]
fn a_large_bind_streams_through_with_its_statement_renamed() {
    let mut sim = Sim::new(small_buffers());
    let a = sim.ready_client();
    let out = sim.client_send(
        a,
        &[parse_msg("s1", "SELECT $1::text"), FrontendMessage::Sync],
    );
    let (u, _) = out.to_upstreams[0];
    sim.upstream_send(
        u,
        &[BackendMessage::ParseComplete, rfq(TransactionStatus::Idle)],
    );
    let value = Bytes::from(vec![b'v'; 1 << 20]);
    let bind = |statement: &str| {
        FrontendMessage::Bind(Bind {
            portal: Bytes::new(),
            statement: Bytes::copy_from_slice(statement.as_bytes()),
            param_formats: vec![],
            params: vec![Some(value.clone())],
            result_formats: vec![],
        })
    };
    let unit = [bind("s1"), execute_msg(), FrontendMessage::Sync];
    let sent = stream_from_client(&mut sim, a, u, enc_front(&unit));
    assert_eq!(
        front_frames_with(sent, 2 << 20),
        vec![bind("muxql_1"), execute_msg(), FrontendMessage::Sync]
    );
    let out = sim.upstream_send(
        u,
        &[
            BackendMessage::BindComplete,
            complete("SELECT 1"),
            rfq(TransactionStatus::Idle),
        ],
    );
    assert!(is_ready(&out.client_msgs(a)));
}

/// A message muxql must buffer whole (a Parse) is still bounded by `max_message`.
#[test]
fn a_parse_over_max_message_is_refused() {
    let mut sim = Sim::new(small_buffers());
    let a = sim.ready_client();
    let sql = format!("SELECT '{}'", "y".repeat(100_000));
    let out = sim.client_send(a, &[parse_msg("", &sql), FrontendMessage::Sync]);
    assert!(out.closed_clients.contains(&a));
}

/// COPY FROM STDIN through the extended protocol, as tokio-postgres sends it: Bind, Execute
/// and Sync, then the data, CopyDone and another Sync. The server ignores a Sync that arrives
/// during copy-in (protocol docs, "COPY Operations") and answers only the last: muxql must not
/// wait for an answer to the first.
#[test]
fn a_sync_sent_during_copy_in_gets_no_answer() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let a = sim.ready_client();
    let out = sim.client_send(
        a,
        &[parse_msg("", "COPY t FROM STDIN"), FrontendMessage::Sync],
    );
    let (u, _) = out.to_upstreams[0];
    sim.upstream_send(
        u,
        &[BackendMessage::ParseComplete, rfq(TransactionStatus::Idle)],
    );
    sim.client_send(
        a,
        &[
            bind_msg(""),
            execute_msg(),
            FrontendMessage::Sync,
            FrontendMessage::CopyData(Bytes::from_static(b"1\n")),
            FrontendMessage::CopyDone,
            FrontendMessage::Sync,
        ],
    );
    let copy_in = BackendMessage::CopyInResponse(muxql::pg::backend::CopyResponse {
        format: 0,
        column_formats: vec![0],
    });
    let answer = [
        BackendMessage::BindComplete,
        copy_in,
        complete("COPY 1"),
        rfq(TransactionStatus::Idle),
    ];
    let out = sim.upstream_send(u, &answer);
    assert_eq!(out.client_msgs(a), answer.to_vec());
    assert_eq!(
        sim.engine.stats().routes[0].upstreams_idle,
        1,
        "the unit is over"
    );
    let out = sim.client_send(a, &[q("SELECT 1")]);
    assert_eq!(out.upstream_msgs(u), vec![q("SELECT 1")]);
    let out = sim.upstream_send(u, &select_answer("1"));
    assert_eq!(out.client_msgs(a), select_answer("1"));
}

/// An error during copy-in ends it: the server then answers the client's next Sync.
#[test]
fn an_error_during_copy_in_is_answered_at_the_next_sync() {
    let mut sim = Sim::new(config(1, PoolMode::Transaction));
    let a = sim.ready_client();
    let out = sim.client_send(
        a,
        &[
            parse_msg("", "COPY t FROM STDIN"),
            bind_msg(""),
            execute_msg(),
            FrontendMessage::Sync,
            FrontendMessage::CopyData(Bytes::from_static(b"not a number\n")),
        ],
    );
    let (u, _) = out.to_upstreams[0];
    let copy_in = BackendMessage::CopyInResponse(muxql::pg::backend::CopyResponse {
        format: 0,
        column_formats: vec![0],
    });
    let bad = error("22P02", "invalid input syntax for type integer");
    sim.upstream_send(
        u,
        &[
            BackendMessage::ParseComplete,
            BackendMessage::BindComplete,
            copy_in,
            bad,
        ],
    );
    sim.client_send(a, &[FrontendMessage::CopyDone, FrontendMessage::Sync]);
    let out = sim.upstream_send(u, &[rfq(TransactionStatus::Idle)]);
    assert!(is_ready(&out.client_msgs(a)));
    assert_eq!(
        sim.engine.stats().routes[0].upstreams_idle,
        1,
        "the unit is over"
    );
}
