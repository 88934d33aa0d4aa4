//! MySQL command-phase payloads (COM_QUERY ... COM_STMT_EXECUTE with parameters): whatever
//! parses under some capabilities encodes, and the encoding is stable through the parser
//! (bytes are compared, so a NaN parameter compares equal to itself).
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use muxql::mysql::command::Command;
use muxql::mysql::CapabilityFlags;

fuzz_target!(|data: &[u8]| {
    let Some((caps, payload)) = data.split_first_chunk::<4>() else {
        return;
    };
    let caps = CapabilityFlags::from_bits_truncate(u64::from(u32::from_le_bytes(*caps)));
    let payload = Bytes::copy_from_slice(payload);
    let Ok(command) = Command::parse(&payload, caps) else {
        return;
    };
    let mut first = BytesMut::new();
    if command.encode(&mut first, caps).is_ok() {
        let again = Command::parse(&first.clone().freeze(), caps).expect("reparse");
        let mut second = BytesMut::new();
        again
            .encode(&mut second, caps)
            .expect("a reparsed command encodes");
        assert_eq!(first, second);
    }
});
