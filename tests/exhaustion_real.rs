//! Exhaustion, for real, through the `muxql` binary in front of the test PostgreSQL: thousands
//! of connections that never log in, ten thousand idle clients, a file-descriptor limit too
//! small for everyone. Each time the clients that play by the rules still get in and work.

mod common;
mod proc;

use std::time::{Duration, Instant};

use proc::Muxql;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// muxql in front of the test PostgreSQL with `extra` flags.
fn start(extra: &[&str], fd_limit: Option<u64>) -> Muxql {
    let pg = common::pg();
    let url = pg.url(&pg.scram_user);
    let mut args = vec![
        "--upstream",
        &url,
        "--pool-size",
        "4",
        "--log-level",
        "error",
    ];
    args.extend_from_slice(extra);
    Muxql::start_with_fd_limit(&args, fd_limit)
}

/// A real client through `m`: logs in with SCRAM and runs a query.
async fn real_client_works(m: &Muxql) -> tokio_postgres::Client {
    let pg = common::pg();
    let mut via = pg.clone();
    via.port = m.port;
    let client = tokio::time::timeout(
        Duration::from_secs(10),
        common::pg_connect(&via.config(&pg.scram_user)),
    )
    .await
    .expect("logged in in time")
    .expect("logged in");
    let v: i32 = client
        .query_one("SELECT 41 + 1", &[])
        .await
        .expect("query")
        .get(0);
    assert_eq!(v, 42);
    client
}

/// Connects `n` sockets to `port` that send only `bytes` (maybe nothing).
async fn stalled_sockets(port: u16, n: usize, bytes: &[u8]) -> Vec<TcpStream> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect a stalled socket");
        if !bytes.is_empty() {
            s.write_all(bytes).await.expect("write");
        }
        out.push(s);
    }
    out
}

/// Reads `s` to its end within `limit`; returns what came (an error message, maybe).
async fn read_to_close(s: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    match tokio::time::timeout(limit, s.read_to_end(&mut got)).await {
        Ok(_) => got,
        Err(_) => panic!("the connection was not closed within {limit:?}"),
    }
}

/// The SQLSTATE of an ErrorResponse at the start of `bytes`, if it is one.
fn sqlstate(bytes: &[u8]) -> Option<String> {
    if bytes.first() != Some(&b'E') {
        return None;
    }
    let body = bytes.get(5..)?;
    body.split(|&b| b == 0)
        .find_map(|f| f.strip_prefix(b"C"))
        .map(|c| String::from_utf8_lossy(c).into_owned())
}

#[tokio::test]
async fn five_thousand_connections_that_never_log_in_lock_nobody_out() {
    muxql::server::raise_fd_limit().expect("raise the descriptor limit");
    let m = start(
        &["--max-logins", "1000", "--client-login-timeout", "3s"],
        None,
    );
    let rss_before = m.rss_kib();
    // Half say nothing; half start a startup packet and never finish it.
    let half_startup = [0u8, 0, 0, 40, 0, 3, 0, 0];
    let mut silent = stalled_sockets(m.port, 2_500, &[]).await;
    let mut partial = stalled_sockets(m.port, 2_500, &half_startup).await;
    let started = Instant::now();
    for _ in 0..3 {
        real_client_works(&m).await;
    }
    let logging_in = m.metric("muxql_clients_logging_in").expect("metric");
    assert!(logging_in <= 1000.0, "{logging_in} clients logging in");
    // The 4,000 evicted first and the rest at the login timeout: every stalled socket is
    // closed, with 53300 (evicted) or 08P01 (timed out) when it gets a message at all.
    let mut codes = std::collections::BTreeMap::new();
    for s in silent.iter_mut().chain(partial.iter_mut()) {
        let got = read_to_close(s, Duration::from_secs(15)).await;
        *codes.entry(sqlstate(&got)).or_insert(0) += 1;
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        codes
            .keys()
            .all(|c| matches!(c.as_deref(), Some("53300" | "08P01"))),
        "{codes:?}"
    );
    assert!(codes.get(&Some("53300".into())).copied().unwrap_or(0) >= 3_900);
    assert_eq!(m.metric("muxql_clients_logging_in"), Some(0.0));
    real_client_works(&m).await;
    let grown = m.rss_kib().saturating_sub(rss_before);
    assert!(grown < 64 * 1024, "RSS grew by {grown} KiB");
}

/// Starts a raw client's login (trust) and reads up to ReadyForQuery; on a refusal, returns
/// the ErrorResponse read to the connection's close.
async fn raw_login(port: u16) -> Result<TcpStream, Vec<u8>> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(&common::pg_startup_packet(&common::pg().scram_user, &[]))
        .await
        .expect("startup");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .expect("read welcome");
        got.extend_from_slice(&buf[..n]);
        if got.first() == Some(&b'E') {
            got.extend(read_to_close(&mut s, Duration::from_secs(5)).await);
            return Err(got);
        }
        assert!(
            n > 0,
            "closed during login: {:?}",
            String::from_utf8_lossy(&got)
        );
        if got.len() >= 6 && got[got.len() - 6] == b'Z' {
            return Ok(s);
        }
    }
}

#[tokio::test]
async fn ten_thousand_idle_clients_cost_little_and_a_small_fd_limit_refuses_cleanly() {
    let own = muxql::server::raise_fd_limit().expect("raise the descriptor limit");
    assert!(
        own >= 11_000,
        "this test needs 11,000 descriptors, has {own}"
    );
    let m = start(&["--auth", "trust"], None);
    let rss_before = m.rss_kib();
    let mut idle = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        idle.push(raw_login(m.port).await.expect("logged in"));
    }
    real_client_works(&m).await;
    let per_client = (m.rss_kib().saturating_sub(rss_before)) * 1024 / 10_000;
    assert!(per_client < 16 * 1024, "{per_client} B per idle client");
    eprintln!("idle clients: {per_client} B each");
    drop(idle);

    // 200 descriptors: muxql takes what is left after its reserve and the pool, refuses the
    // rest with PostgreSQL's "too many clients", and those already in keep working.
    let small = start(&["--auth", "trust"], Some(200));
    let mut kept = Vec::new();
    let mut refused = 0;
    for _ in 0..200 {
        match raw_login(small.port).await {
            Ok(s) => kept.push(s),
            Err(e) => {
                assert_eq!(sqlstate(&e).as_deref(), Some("53300"));
                refused += 1;
            }
        }
    }
    assert!(
        refused > 0 && kept.len() > 100,
        "kept {}, refused {refused}",
        kept.len()
    );
    // Those in keep working; one leaving makes room for a real client.
    let mut first = kept.pop().expect("a kept client");
    first
        .write_all(b"Q\0\0\0\rSELECT 1\0")
        .await
        .expect("query");
    let mut answer = [0u8; 1];
    first.read_exact(&mut answer).await.expect("an answer");
    assert_eq!(answer[0], b'T', "RowDescription");
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    real_client_works(&small).await;
}
