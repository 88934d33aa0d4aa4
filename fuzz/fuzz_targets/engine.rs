//! The Engine, structure-aware: sequences of host events (clients of both protocols open, send
//! fragments of valid and corrupted traffic, close; upstreams connect, answer, die; time
//! passes) across many clients and upstreams. After every event the pool counters must match
//! what exists, and every byte the Engine sends to a client must go to a client it opened.
#![no_main]

use std::collections::HashSet;

use arbitrary::Arbitrary;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use muxql::mux::{Action, ClientAuth, ClientId, Config, Engine, Protocol, Route, UpstreamId, User};

/// One host event.
#[derive(Arbitrary, Debug)]
enum Op {
    Open { mysql: bool },
    ClientData { client: u8, data: Vec<u8> },
    ClientClose { client: u8 },
    UpstreamConnected { upstream: u8 },
    UpstreamData { upstream: u8, data: Vec<u8> },
    UpstreamClose { upstream: u8 },
    Tick { ms: u16 },
    Blocked { client: u8 },
    Drained { client: u8 },
}

fn config() -> Config {
    let mut config = Config::default();
    let mut pg = Route::new(Protocol::Postgres, "app", "127.0.0.1:5432", "app");
    pg.pool_size = 2;
    let mut my = Route::new(Protocol::Mysql, "app", "127.0.0.1:3306", "app");
    my.pool_size = 2;
    config.routes = vec![pg, my];
    config.users = vec![User::new("app", "pw")];
    config.client_auth = ClientAuth::Trust;
    config.rng_seed = Some([7; 32]);
    config
}

fuzz_target!(|ops: Vec<Op>| {
    let Ok(mut engine) = Engine::new(config()) else {
        return;
    };
    let mut now = 1_000u64;
    let mut clients: Vec<ClientId> = Vec::new();
    let mut open: HashSet<ClientId> = HashSet::new();
    let mut upstreams: Vec<UpstreamId> = Vec::new();
    let pick = |v: &[ClientId], i: u8| v.get(usize::from(i) % v.len().max(1)).copied();
    for op in ops.into_iter().take(256) {
        match op {
            Op::Open { mysql } => {
                let protocol = if mysql {
                    Protocol::Mysql
                } else {
                    Protocol::Postgres
                };
                let id = engine.client_open(protocol, now);
                clients.push(id);
                open.insert(id);
            }
            Op::ClientData { client, data } => {
                if let Some(id) = pick(&clients, client) {
                    engine.client_data(id, BytesMut::from(&data[..]), now);
                }
            }
            Op::ClientClose { client } => {
                if let Some(id) = pick(&clients, client) {
                    engine.client_closed(id, now);
                    open.remove(&id);
                }
            }
            Op::UpstreamConnected { upstream } => {
                if let Some(&id) = upstreams.get(usize::from(upstream) % upstreams.len().max(1)) {
                    engine.upstream_connected(id, now);
                }
            }
            Op::UpstreamData { upstream, data } => {
                if let Some(&id) = upstreams.get(usize::from(upstream) % upstreams.len().max(1)) {
                    engine.upstream_data(id, BytesMut::from(&data[..]), now);
                }
            }
            Op::UpstreamClose { upstream } => {
                if let Some(&id) = upstreams.get(usize::from(upstream) % upstreams.len().max(1)) {
                    engine.upstream_closed(id, now);
                }
            }
            Op::Tick { ms } => {
                now += u64::from(ms);
                engine.handle_timeout(now);
            }
            Op::Blocked { client } => {
                if let Some(id) = pick(&clients, client) {
                    engine.send_blocked(muxql::mux::Peer::Client(id), now);
                }
            }
            Op::Drained { client } => {
                if let Some(id) = pick(&clients, client) {
                    engine.send_drained(muxql::mux::Peer::Client(id), now);
                }
            }
        }
        while let Some(action) = engine.poll_action() {
            match action {
                Action::SendClient { id, .. } => {
                    assert!(
                        open.contains(&id),
                        "bytes for a client that is gone: {id:?}"
                    );
                }
                Action::CloseClient { id } => {
                    open.remove(&id);
                }
                Action::ConnectUpstream { id, .. } => upstreams.push(id),
                _ => {}
            }
        }
        if let Err(e) = engine.check_counters() {
            panic!("pool counters drifted: {e}");
        }
    }
});
