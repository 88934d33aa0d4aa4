//! PostgreSQL backend framing: muxql against postgres-protocol on the same stream.
//!
//! The stream is mostly DataRows, with a RowDescription, CommandComplete and ReadyForQuery per
//! result set. `muxql_relay` is what production runs: the Engine relaying the stream from an
//! upstream to the client whose 200 queries asked for it (it reads every header, tracks every
//! answer against its request, and passes runs of frames on as zero-copy slices), fed in
//! 64 KiB reads. The codec views cut every frame and build a validated typed view of it:
//! `muxql` with DataRows borrowed in place, `muxql_owned` with an owned `BackendMessage` per
//! frame, `postgres-protocol` with `Message::parse`.
//! `cargo bench --bench pg_codec` gives criterion's report; with `MUXQL_BENCH_LINE=1` the
//! bench instead interleaves the variants and prints the `pg_framing` lines that
//! `scripts/bench codec` shows: `pg_framing` is the relay against postgres-protocol,
//! `pg_framing_views` and `pg_framing_owned` the codec views.

use bytes::{Bytes, BytesMut};
use std::time::Instant;

use criterion::{black_box, Criterion, Throughput};
use muxql::mux::{Action, ClientAuth, ClientId, Config, Engine, Protocol, Route, UpstreamId, User};
use muxql::pg::backend::{
    tag, Authentication, BackendMessage, DataRow, DataRowRef, FieldDescription, TransactionStatus,
};
use muxql::pg::frame::{split_frames, Direction};
use muxql::pg::frontend::FrontendMessage;
use muxql::pg::startup::{ProtocolVersion, Startup, PROTOCOL_3_0};
use muxql::wire::Limits;

/// Result sets in the stream.
const RESULT_SETS: usize = 200;
/// Rows per result set.
const ROWS: usize = 50;

fn stream() -> BytesMut {
    let mut out = BytesMut::new();
    let field = |i: usize| FieldDescription {
        name: Bytes::from(format!("column_{i}")),
        table_oid: 16_384,
        column: 1,
        type_oid: 25,
        type_size: -1,
        type_modifier: -1,
        format: 0,
    };
    for set in 0..RESULT_SETS {
        BackendMessage::RowDescription((0..5).map(field).collect())
            .encode(&mut out)
            .expect("encodes");
        for row in 0..ROWS {
            let id = format!("{}", set * ROWS + row);
            let name = format!("user-{row:08}@example.com");
            let cols: [Option<&[u8]>; 5] = [
                Some(id.as_bytes()),
                Some(name.as_bytes()),
                None,
                Some(b"2026-11-26 20:53:00+00"),
                Some(b"t"),
            ];
            BackendMessage::DataRow(DataRow::from_values(cols).expect("encodes"))
                .encode(&mut out)
                .expect("encodes");
        }
        BackendMessage::CommandComplete(Bytes::from(format!("SELECT {ROWS}")))
            .encode(&mut out)
            .expect("encodes");
        BackendMessage::ReadyForQuery(TransactionStatus::Idle)
            .encode(&mut out)
            .expect("encodes");
    }
    out
}

/// The Engine's path: one split per read, frames borrowed from the run, DataRows inspected in
/// place, every other message as an owned typed view.
fn muxql_views(buf: &mut BytesMut) -> usize {
    let limits = Limits::default();
    let mut n = 0;
    while let Ok(run) = split_frames(buf, Direction::Backend, &limits) {
        if run.is_empty() {
            break;
        }
        for frame in run.iter() {
            let ok = if frame.tag() == tag::DATA_ROW {
                DataRowRef::parse(frame.body())
                    .map(|r| black_box(r).len())
                    .is_ok()
            } else {
                let m = run.to_frame(&frame).map(BackendMessage::from_frame);
                black_box(&m).as_ref().is_some_and(Result::is_ok)
            };
            n += usize::from(ok);
        }
    }
    n
}

/// Every message as an owned typed view.
fn muxql_owned_views(buf: &mut BytesMut) -> usize {
    let limits = Limits::default();
    let mut n = 0;
    while let Ok(run) = split_frames(buf, Direction::Backend, &limits) {
        if run.is_empty() {
            break;
        }
        for frame in run {
            let m = BackendMessage::from_frame(frame);
            n += usize::from(black_box(&m).is_ok());
        }
    }
    n
}

/// An Engine with one client logged in and its upstream attached, ready to relay.
struct Relay {
    engine: Engine,
    client: ClientId,
    upstream: UpstreamId,
    /// The client's 200 queries, sent before each relay of the stream.
    queries: Bytes,
}

impl Relay {
    fn new() -> Relay {
        let mut config = Config::default();
        config.routes = vec![Route::new(Protocol::Postgres, "db", "127.0.0.1:5432", "up")];
        config.users = vec![User::new("app", "pw")];
        config.client_auth = ClientAuth::Trust;
        config.rng_seed = Some([1; 32]);
        let mut engine = Engine::new(config).expect("config");
        let client = engine.client_open(Protocol::Postgres, 0);
        let mut startup = BytesMut::new();
        Startup {
            version: ProtocolVersion(PROTOCOL_3_0),
            params: vec![
                (Bytes::from_static(b"user"), Bytes::from_static(b"app")),
                (Bytes::from_static(b"database"), Bytes::from_static(b"db")),
            ],
        }
        .encode(&mut startup)
        .expect("startup");
        engine.client_data(client, startup, 0);
        let upstream = std::iter::from_fn(|| engine.poll_action())
            .find_map(|a| match a {
                Action::ConnectUpstream { id, .. } => Some(id),
                _ => None,
            })
            .expect("connect");
        engine.upstream_connected(upstream, 0);
        let mut login = BytesMut::new();
        for m in [
            BackendMessage::Authentication(Authentication::Ok),
            BackendMessage::BackendKeyData {
                pid: 1,
                key: Bytes::from_static(b"KEY!"),
            },
            BackendMessage::ReadyForQuery(TransactionStatus::Idle),
        ] {
            m.encode(&mut login).expect("login");
        }
        engine.upstream_data(upstream, login, 0);
        while engine.poll_action().is_some() {}
        let mut queries = BytesMut::new();
        for _ in 0..RESULT_SETS {
            FrontendMessage::Query(Bytes::from_static(b"SELECT * FROM users LIMIT 50"))
                .encode(&mut queries)
                .expect("query");
        }
        Relay {
            engine,
            client,
            upstream,
            queries: queries.freeze(),
        }
    }

    /// The client asks; the upstream's answer arrives in 64 KiB reads and is relayed. Returns
    /// the bytes the client was sent.
    fn run(&mut self, stream: &mut BytesMut) -> usize {
        let e = &mut self.engine;
        e.client_data(self.client, BytesMut::from(&self.queries[..]), 1);
        while e.poll_action().is_some() {}
        let mut sent = 0;
        while !stream.is_empty() {
            let read = stream.split_to(stream.len().min(64 * 1024));
            e.upstream_data(self.upstream, read, 1);
            while let Some(a) = e.poll_action() {
                if let Action::SendClient { bytes, .. } = a {
                    sent += black_box(bytes).len();
                }
            }
        }
        sent
    }
}

fn peer_views(buf: &mut BytesMut) -> usize {
    use postgres_protocol::message::backend::Message;
    let mut n = 0;
    while let Ok(Some(m)) = Message::parse(buf) {
        black_box(&m);
        n += 1;
    }
    n
}

fn framing(c: &mut Criterion) {
    let data = stream();
    let total = RESULT_SETS * (ROWS + 3);
    assert_eq!(muxql_views(&mut data.clone()), total);
    assert_eq!(muxql_owned_views(&mut data.clone()), total);
    assert_eq!(peer_views(&mut data.clone()), total);
    let mut relay = Relay::new();
    assert_eq!(relay.run(&mut data.clone()), data.len());
    let mut g = c.benchmark_group("pg_framing");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("muxql_relay", |b| {
        b.iter_batched_ref(
            || data.clone(),
            |input| relay.run(input),
            criterion::BatchSize::LargeInput,
        )
    });
    g.bench_function("muxql", |b| {
        b.iter_batched_ref(
            || data.clone(),
            muxql_views,
            criterion::BatchSize::LargeInput,
        )
    });
    g.bench_function("muxql_owned", |b| {
        b.iter_batched_ref(
            || data.clone(),
            muxql_owned_views,
            criterion::BatchSize::LargeInput,
        )
    });
    g.bench_function("postgres-protocol", |b| {
        b.iter_batched_ref(
            || data.clone(),
            peer_views,
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// Private so the generated group function needs no docs.
mod group {
    criterion::criterion_group!(benches, super::framing);
}

/// One way of framing the stream; returns what it did (views built or bytes relayed).
type Variant<'a> = Box<dyn FnMut(&mut BytesMut) -> usize + 'a>;

/// Rounds of the interleaved measurement.
const ROUNDS: usize = 300;

/// Runs every variant in turn, round after round, and prints GB/s from the median of each:
/// on a shared machine, interleaving exposes all variants to the same load.
fn interleaved() {
    let data = stream();
    let mut relay = Relay::new();
    let mut variants: [(&str, Variant); 4] = [
        ("muxql_relay", Box::new(|b: &mut BytesMut| relay.run(b))),
        ("muxql", Box::new(muxql_views)),
        ("muxql_owned", Box::new(muxql_owned_views)),
        ("postgres-protocol", Box::new(peer_views)),
    ];
    let mut times = vec![Vec::with_capacity(ROUNDS); variants.len()];
    for round in 0..ROUNDS {
        for i in 0..variants.len() {
            let k = (round + i) % variants.len();
            let mut input = data.clone();
            let start = Instant::now();
            black_box((variants[k].1)(&mut input));
            times[k].push(start.elapsed());
        }
    }
    let gbps: Vec<f64> = times
        .iter_mut()
        .map(|t| {
            t.sort();
            data.len() as f64 / t[t.len() / 2].as_nanos().max(1) as f64
        })
        .collect();
    let peer = gbps[3];
    for (line, ours) in [
        ("pg_framing", gbps[0]),
        ("pg_framing_views", gbps[1]),
        ("pg_framing_owned", gbps[2]),
    ] {
        println!(
            "{line} muxql_gbps={ours:.2} peer_gbps={peer:.2} ratio={:.2}",
            ours / peer
        );
    }
}

fn main() {
    if std::env::var_os("MUXQL_BENCH_LINE").is_some() {
        interleaved();
    } else {
        group::benches();
        Criterion::default().configure_from_args().final_summary();
    }
}
