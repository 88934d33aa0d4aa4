//! Values as large as PostgreSQL returns them pass through the `muxql` binary with its
//! defaults, streamed: muxql's memory stays small whatever the row size.

mod common;
mod proc;

use std::process::Stdio;

use futures_util::SinkExt;

use proc::Muxql;

/// 20 psql clients each fetch a 100 MiB value through muxql (default `max_message` 64 MiB),
/// concurrently: every one gets it whole, and muxql's peak resident set stays far below the
/// values' 2 GB (measured 12.7 MB for a release build; the bound allows each client's 4 MiB of
/// queued answers).
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
    assert!(peak < 128 * 1024, "peak RSS {peak} KiB");
}

/// Large values go the other way too: a 100 MiB Bind parameter, a 100 MiB query text and a
/// 100 MiB COPY row, each larger than muxql's default `max_message` (64 MiB), reach the server
/// whole; with muxql's memory small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_send_100_mib_values_through_muxql() {
    const VALUE: usize = 100 * 1024 * 1024;
    let pg = common::pg();
    let m = Muxql::start(&["--upstream", &pg.url(&pg.scram_user), "--log-level", "warn"]);
    let mut via = pg.clone();
    via.port = m.port;
    let client = common::pg_connect(&via.config(&pg.scram_user))
        .await
        .expect("connect through muxql");
    let table = common::unique_name("large_in");
    client
        .batch_execute(&format!("CREATE TABLE {table} (v text)"))
        .await
        .expect("create");
    let value = "p".repeat(VALUE);
    client
        .execute(&format!("INSERT INTO {table} VALUES ($1)"), &[&value])
        .await
        .expect("a 100 MiB parameter");
    let literal = format!("INSERT INTO {table} VALUES ('{}')", "q".repeat(VALUE));
    client
        .batch_execute(&literal)
        .await
        .expect("a 100 MiB query");
    let sink = client
        .copy_in::<_, bytes::Bytes>(&format!("COPY {table} FROM STDIN"))
        .await
        .expect("copy in");
    let mut row = "c".repeat(VALUE);
    row.push('\n');
    let mut sink = Box::pin(sink);
    sink.send(bytes::Bytes::from(row))
        .await
        .expect("a 100 MiB COPY row");
    sink.as_mut().finish().await.expect("finish copy");
    let lengths: Vec<(String, i64)> = client
        .query(
            &format!("SELECT left(v, 1), length(v)::int8 FROM {table} ORDER BY 1"),
            &[],
        )
        .await
        .expect("select")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let want = |c: &str| (c.to_string(), VALUE as i64);
    assert_eq!(lengths, vec![want("c"), want("p"), want("q")]);
    client
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .expect("drop");
    let peak = m.peak_rss_kib();
    eprintln!("muxql peak RSS with 3 x 100 MiB values sent: {peak} KiB");
    assert!(peak < 128 * 1024, "peak RSS {peak} KiB");
}
