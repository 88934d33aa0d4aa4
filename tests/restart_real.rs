//! PostgreSQL restarted (`pg_ctl restart -m fast`) under load through muxql: every client keeps
//! its connection and its own settings; a request running at the restart fails with 08006 (at
//! most a few per client), the rest wait for the pool to refill. Its own test binary: the
//! restart would disturb the other tests of a binary, which run at the same time.

mod common;
mod proc;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proc::Muxql;

const CLIENTS: usize = 16;

/// Restarts the test PostgreSQL in fast mode (as the postgres OS user when run as root).
fn restart_postgres() {
    let pg = common::pg();
    let data = common::dbs().dir.join("pg/data");
    let pg_ctl = pg.bin_path("pg_ctl");
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&pg_ctl);
        c
    } else {
        Command::new(&pg_ctl)
    };
    // The server inherits pg_ctl's stdio: with pipes, waiting for pg_ctl's output would wait for
    // the server to exit. Its log goes where scripts/dbs put it.
    let status = cmd
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(common::dbs().dir.join("pg/postgres.log"))
        .args(["-m", "fast", "-w", "-t", "30", "restart"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run pg_ctl");
    assert!(status.success(), "pg_ctl restart: {status}");
}

/// Whether this process runs as root (pg_ctl refuses root; scripts/dbs uses runuser then).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[tokio::test]
async fn a_postgres_restart_under_load_costs_clients_an_error_not_their_connection() {
    let pg = common::pg();
    let m = Muxql::start(&[
        "--upstream",
        &pg.url(&pg.scram_user),
        "--pool-size",
        "4",
        "--wait-timeout",
        "30s",
        "--log-level",
        "error",
    ]);
    let mut via = pg.clone();
    via.port = m.port;
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let client = common::pg_connect(&via.config(&pg.scram_user))
            .await
            .expect("connect through muxql");
        let app = format!("restart_{i}");
        client
            .batch_execute(&format!("SET application_name = '{app}'"))
            .await
            .expect("set");
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut lost) = (0u32, 0u32);
            while !stop.load(Ordering::Relaxed) {
                match client
                    .query_one("SELECT current_setting('application_name')", &[])
                    .await
                {
                    Ok(row) => {
                        assert_eq!(row.get::<_, String>(0), app, "another session's setting");
                        ok += 1;
                    }
                    Err(e) => {
                        let code = e.as_db_error().map(|d| d.code().code().to_string());
                        assert_eq!(code.as_deref(), Some("08006"), "{e:?}");
                        assert!(!client.is_closed(), "the connection stays");
                        lost += 1;
                    }
                }
            }
            (ok, lost, client)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::spawn_blocking(restart_postgres)
        .await
        .expect("restart");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total_lost = 0;
    for t in tasks {
        let (ok, lost, client) = t.await.expect("client task");
        assert!(ok > 0 && lost <= 3, "ok {ok}, lost {lost}");
        total_lost += lost;
        // After the restart: the same connection, its own setting, on a new backend.
        let row = client
            .query_one("SELECT current_setting('application_name')", &[])
            .await
            .expect("a query after the restart");
        assert!(row.get::<_, String>(0).starts_with("restart_"));
    }
    assert!(
        total_lost >= 1,
        "the restart hit no request: it did not test anything"
    );
}
