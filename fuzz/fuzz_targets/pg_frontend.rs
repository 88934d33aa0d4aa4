//! PostgreSQL frontend framing and message parsing: frames cut from arbitrary bytes stay within
//! the limits, and every message that parses encodes and parses back to itself.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use muxql::pg::frame::{split_frames, Direction, Frame};
use muxql::pg::frontend::FrontendMessage;
use muxql::wire::Limits;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let mut buf = BytesMut::from(data);
    while let Ok(run) = split_frames(&mut buf, Direction::Frontend, &limits) {
        if run.is_empty() {
            break;
        }
        for frame in run.iter() {
            assert!(frame.as_bytes().len() <= limits.max_message + 5);
            let Some(frame) = run.to_frame(&frame) else {
                continue;
            };
            round_trip(&frame);
        }
    }
});

fn round_trip(frame: &Frame) {
    let Ok(message) = FrontendMessage::parse(frame) else {
        return;
    };
    let mut out = BytesMut::new();
    message.encode(&mut out).expect("a parsed message encodes");
    let again = Frame::from_parts(out[0], &out[5..]).expect("an encoded message frames");
    assert_eq!(FrontendMessage::parse(&again).expect("reparse"), message);
}
