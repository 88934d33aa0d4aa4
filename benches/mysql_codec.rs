//! MySQL codec benchmark: framing + response reader over a generated text result-set stream,
//! against mysql_common's `PacketCodec` decoding the same bytes. `scripts/bench codec` prints
//! the summary line from criterion's estimates.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use muxql::mysql::binary::encode_text_row;
use muxql::mysql::packet::write_packet;
use muxql::mysql::response::{OkPacket, EOF_HEADER};
use muxql::mysql::stmt::ColumnDefinition;
use muxql::mysql::{CapabilityFlags, Expect, PacketCodec, ResponseReader, StatusFlags, Step};
use muxql::wire::Limits;

/// About 0.9 MB: a socket-read-sized, cache-resident stream, as the engine scans it right after a
/// read (a multi-megabyte stream measures memory bandwidth, the same for both sides).
const ROWS: usize = 12_000;

fn caps() -> CapabilityFlags {
    CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::CLIENT_TRANSACTIONS
        | CapabilityFlags::CLIENT_DEPRECATE_EOF
        | CapabilityFlags::CLIENT_MULTI_RESULTS
}

/// A `SELECT id, name, note, created FROM t` response: 4 columns, `ROWS` text rows, final OK.
fn stream() -> BytesMut {
    let mut out = BytesMut::new();
    let mut seq = 0u8;
    let mut payload = BytesMut::new();
    let packet = |out: &mut BytesMut, seq: &mut u8, p: &mut BytesMut| {
        write_packet(out, seq, p).expect("frame");
        p.clear();
    };
    payload.extend_from_slice(&[4]);
    packet(&mut out, &mut seq, &mut payload);
    for (name, ty) in [
        (&b"id"[..], 8u8),
        (b"name", 253),
        (b"note", 252),
        (b"created", 12),
    ] {
        ColumnDefinition {
            catalog: "def".into(),
            schema: "muxql".into(),
            table: "t".into(),
            org_table: "t".into(),
            name: bytes::Bytes::copy_from_slice(name),
            org_name: bytes::Bytes::copy_from_slice(name),
            extended_type_info: None,
            character_set: 45,
            column_length: 255,
            column_type: ty,
            flags: 0,
            decimals: 0,
        }
        .encode(&mut payload, caps())
        .expect("column");
        packet(&mut out, &mut seq, &mut payload);
    }
    for i in 0..ROWS {
        let note = (i % 3 != 0).then(|| format!("note number {i} with some text").into());
        encode_text_row(
            &mut payload,
            &[
                Some(i.to_string().into()),
                Some(format!("user-{i:08}@example.com").into()),
                note,
                Some("2026-11-26 20:50:00".into()),
            ],
        );
        packet(&mut out, &mut seq, &mut payload);
    }
    let mut ok = OkPacket::new(StatusFlags::SERVER_STATUS_AUTOCOMMIT);
    ok.header = EOF_HEADER;
    ok.encode(&mut payload, caps()).expect("ok");
    packet(&mut out, &mut seq, &mut payload);
    out
}

fn bench(c: &mut Criterion) {
    let wire = stream();
    let mut g = c.benchmark_group("mysql_framing");
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.sample_size(30);

    // The engine's hot path: frame headers checked and the response delimited in one pass.
    g.bench_function("muxql", |b| {
        b.iter(|| {
            let mut r =
                ResponseReader::new(Expect::Query, caps(), Limits::default()).starting_at(0);
            let scan = r.scan(black_box(&wire)).expect("scan");
            assert!(matches!(scan.step, Step::Complete(_)));
            scan.consumed
        })
    });

    // Zero-copy logical packets plus the reader, as a codec user sees them.
    g.bench_function("muxql_packets", |b| {
        b.iter_batched(
            || wire.clone(),
            |mut buf| {
                let mut codec = PacketCodec::new(Limits::default(), 0);
                let mut r =
                    ResponseReader::new(Expect::Query, caps(), Limits::default()).starting_at(0);
                let mut last = Step::More;
                while let Some(p) = codec.parse(&mut buf).expect("packet") {
                    last = r.feed_logical(p.seq, &p.payload).expect("reader");
                }
                assert!(matches!(last, Step::Complete(_)));
            },
            BatchSize::LargeInput,
        )
    });

    g.bench_function("peer", |b| {
        b.iter_batched(
            || wire.clone(),
            |mut buf| {
                let mut codec = mysql_common::proto::codec::PacketCodec::default();
                let mut dst = Vec::with_capacity(256);
                let mut n = 0usize;
                while codec.decode(&mut buf, &mut dst).expect("packet") {
                    n += dst.len();
                    dst.clear();
                }
                n
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
