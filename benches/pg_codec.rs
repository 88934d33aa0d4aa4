//! PostgreSQL backend framing: muxql against postgres-protocol on the same stream.
//!
//! The stream is mostly DataRows, with a RowDescription, CommandComplete and ReadyForQuery per
//! result set. Every side cuts every frame and builds a validated typed view of it:
//! `muxql` as the Engine does (DataRows borrowed in place), `muxql_owned` with an owned
//! `BackendMessage` per frame, `postgres-protocol` with `Message::parse`.
//! `cargo bench --bench pg_codec` gives criterion's report; with `MUXQL_BENCH_LINE=1` the
//! bench instead interleaves the variants and prints the `pg_framing` lines that
//! `scripts/bench-codec-pg` shows.

use bytes::{Bytes, BytesMut};
use std::time::Instant;

use criterion::{black_box, Criterion, Throughput};
use muxql::pg::backend::{
    tag, BackendMessage, DataRow, DataRowRef, FieldDescription, TransactionStatus,
};
use muxql::pg::frame::{split_frames, Direction};
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
    let mut g = c.benchmark_group("pg_framing");
    g.throughput(Throughput::Bytes(data.len() as u64));
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

/// One way of framing the stream; returns the number of typed views built.
type Variant = fn(&mut BytesMut) -> usize;

/// Rounds of the interleaved measurement.
const ROUNDS: usize = 300;

/// Runs every variant in turn, round after round, and prints GB/s from the median of each:
/// on a shared machine, interleaving exposes all variants to the same load.
fn interleaved() {
    let data = stream();
    let variants: [(&str, Variant); 3] = [
        ("muxql", muxql_views),
        ("muxql_owned", muxql_owned_views),
        ("postgres-protocol", peer_views),
    ];
    let mut times = vec![Vec::with_capacity(ROUNDS); variants.len()];
    for round in 0..ROUNDS {
        for i in 0..variants.len() {
            let k = (round + i) % variants.len();
            let mut input = data.clone();
            let start = Instant::now();
            black_box(variants[k].1(&mut input));
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
    for (line, ours) in [("pg_framing", gbps[0]), ("pg_framing_owned", gbps[1])] {
        println!(
            "{line} muxql_gbps={ours:.2} peer_gbps={:.2} ratio={:.2}",
            gbps[2],
            ours / gbps[2]
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
