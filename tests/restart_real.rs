//! PostgreSQL restarted (`pg_ctl restart -m fast`) under load through muxql: every client keeps
//! its connection and its own settings; a request running at the restart fails with 08006 (at
//! most a few per client), the rest wait for the pool to refill. Its own test binary: the
//! restart would disturb the other tests of a binary, which run at the same time.

mod common;
mod proc;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proc::Muxql;

const CLIENTS: usize = 16;

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
    let hits = Arc::new(AtomicU32::new(0));
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
        let (stop, hits) = (stop.clone(), hits.clone());
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
                        hits.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            (ok, lost, client)
        }));
    }
    // A restart between two requests of every client hits nothing: then it is tried again.
    let mut restarts = 0;
    while restarts < 3 && hits.load(Ordering::Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        tokio::task::spawn_blocking(common::restart_postgres)
            .await
            .expect("restart");
        restarts += 1;
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut total_lost = 0;
    for t in tasks {
        let (ok, lost, client) = t.await.expect("client task");
        assert!(ok > 0 && lost <= 3 * restarts, "ok {ok}, lost {lost}");
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
