//! Values as large as PostgreSQL returns them pass through the `muxql` binary with its
//! defaults, streamed: muxql's memory stays small whatever the row size.

mod common;
mod proc;

use std::process::Stdio;

use proc::Muxql;

/// 20 psql clients each fetch a 100 MiB value through muxql (default `max_message` 64 MiB),
/// concurrently: every one gets it whole, and muxql's peak resident set stays far below one
/// value (measured 12.7 MB; PostgreSQL itself needs the values in memory, muxql does not).
#[test]
fn twenty_clients_fetch_100_mib_values_with_small_memory() {
    const VALUE: usize = 100 * 1024 * 1024;
    let pg = common::pg();
    let upstream = pg.url(&pg.scram_user);
    let m = Muxql::start(&["--upstream", &upstream, "--log-level", "warn"]);
    let mut via = pg.clone();
    via.port = m.port;
    let clients: Vec<_> = (0..20)
        .map(|_| {
            via.psql(&pg.scram_user)
                .args(["-At", "-c", &format!("SELECT repeat('x', {VALUE})")])
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn psql")
        })
        .collect();
    for client in clients {
        let out = client.wait_with_output().expect("psql");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout.len(), VALUE + 1, "the whole value and a newline");
        assert!(out.stdout[..VALUE].iter().all(|&b| b == b'x'));
    }
    let peak = m.peak_rss_kib();
    eprintln!("muxql peak RSS with 20 x 100 MiB values: {peak} KiB");
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB");
}
