//! MySQL packet framing: logical packets joined from 16 MB pieces stay within the limit,
//! sequence ids are checked, and a packet written back reads the same.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use muxql::mysql::packet::write_packet;
use muxql::mysql::PacketCodec;
use muxql::wire::Limits;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_message: 1 << 20,
        ..Limits::default()
    };
    let first_seq = data.first().copied().unwrap_or(0);
    let mut codec = PacketCodec::new(limits, first_seq);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(packet)) = codec.parse(&mut buf) {
        assert!(packet.payload.len() <= limits.max_message);
        let mut out = BytesMut::new();
        let mut seq = 0u8;
        write_packet(&mut out, &mut seq, &packet.payload).expect("write");
        let mut reader = PacketCodec::new(limits, 0);
        let again = reader.parse(&mut out).expect("reparse").expect("complete");
        assert_eq!(again.payload, packet.payload);
        assert!(out.is_empty());
    }
});
