//! The Engine serving MySQL clients, structure-aware: sequences of host events across many
//! clients and upstreams (see `muxql_fuzz::host` for the events and the invariants).
#![no_main]

use libfuzzer_sys::fuzz_target;
use muxql::mux::Protocol;
use muxql_fuzz::host::{run, Input};

fuzz_target!(|input: Input| {
    run(Protocol::Mysql, input);
});
