//! PostgreSQL startup-phase packets (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest):
//! the size limit holds before buffering, and every packet that parses round-trips.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use muxql::pg::startup::split_startup;
use muxql::wire::Limits;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let mut buf = BytesMut::from(data);
    let before = buf.len();
    let Ok(Some(request)) = split_startup(&mut buf, &limits) else {
        return;
    };
    assert!(before - buf.len() <= limits.max_startup);
    let mut out = BytesMut::new();
    request.encode(&mut out).expect("a parsed request encodes");
    let again = split_startup(&mut out, &limits).expect("reparse");
    assert_eq!(again, Some(request));
    assert!(out.is_empty());
});
