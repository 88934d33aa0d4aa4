//! The MySQL response reader, which walks every answer muxql relays (OK, ERR, result sets, text
//! and binary rows, PREPARE_OK, LOCAL INFILE, multi-results): fed in arbitrary slices it never
//! consumes more than it was given, and its sequence-id checks hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use muxql::mysql::{CapabilityFlags, Expect, ResponseReader, Step};
use muxql::wire::Limits;

fuzz_target!(|data: &[u8]| {
    let Some((&[code, cut, caps_lo, caps_hi], rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let Some(expect) = Expect::for_code(code) else {
        return;
    };
    let caps = CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::from_bits_truncate(
            u64::from(u16::from_le_bytes([caps_lo, caps_hi])) << 8,
        );
    let limits = Limits {
        max_message: 1 << 20,
        ..Limits::default()
    };
    let mut reader = ResponseReader::new(expect, caps, limits);
    // Feed the bytes in two arrivals, as a socket might deliver them.
    let split = usize::from(cut).min(rest.len());
    let mut buf: Vec<u8> = rest[..split].to_vec();
    let mut later = &rest[split..];
    for _ in 0..10_000 {
        let Ok(scan) = reader.scan(&buf) else {
            return;
        };
        assert!(scan.consumed <= buf.len());
        buf.drain(..scan.consumed);
        match scan.step {
            Step::More if !later.is_empty() => {
                buf.extend_from_slice(later);
                later = &[];
            }
            Step::ResultEnd(_) => {}
            Step::LocalInfile => {
                let next = reader.next_seq();
                if reader.resume(next.wrapping_add(1)).is_err() {
                    return;
                }
            }
            _ => return,
        }
    }
});
