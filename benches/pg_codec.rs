//! PostgreSQL backend framing: muxql against postgres-protocol on the same stream.
//!
//! The stream is mostly DataRows, with a RowDescription, CommandComplete and ReadyForQuery per
//! result set. Every side cuts every frame and builds a validated typed view of it:
//! `muxql` as the Engine does (DataRows borrowed in place), `muxql_owned` with an owned
//! `BackendMessage` per frame, `postgres-protocol` with `Message::parse`.
//! `scripts/bench-codec-pg` turns criterion's estimates into GB/s.

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_main, Criterion, Throughput};
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
                run.to_frame(&frame)
                    .map(BackendMessage::from_frame)
                    .is_some_and(|m| black_box(m).is_ok())
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
            n += usize::from(black_box(BackendMessage::from_frame(frame)).is_ok());
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
criterion_main!(group::benches);
