//! The real `muxql` binary in front of the harness PostgreSQL, driven by tokio-postgres.

mod common;
mod proc;

use std::time::Duration;

use proc::Muxql;
use tokio_postgres::NoTls;

const POOL: usize = 2;

/// The harness PostgreSQL as an `--upstream` URL.
fn upstream_url() -> String {
    let pg = common::pg();
    format!(
        "postgres://{}:{}@{}/{}",
        pg.scram_user,
        pg.password,
        pg.addr(),
        pg.db
    )
}

fn start() -> (Muxql, String, std::path::PathBuf) {
    let upstream = upstream_url();
    let dir = std::env::temp_dir().join(format!("muxql-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let unix = format!("unix:{}/.s.PGSQL.6432", dir.display());
    let m = Muxql::start(&[
        "--upstream",
        &upstream,
        "--pool-size",
        &POOL.to_string(),
        "--listen-pg",
        &unix,
    ]);
    (m, upstream, dir)
}

async fn connect(config: &tokio_postgres::Config) -> tokio_postgres::Client {
    let (client, conn) = config.connect(NoTls).await.expect("connect through muxql");
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("connection: {e}");
        }
    });
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_flow_through_muxql() {
    let pg = common::pg();
    let (m, _, dir) = start();
    let through = |host: &str, port: u16| {
        let mut c = tokio_postgres::Config::new();
        c.host(host)
            .port(port)
            .user(&pg.scram_user)
            .password(&pg.password)
            .dbname(&pg.db);
        c
    };
    let cfg = through("127.0.0.1", m.port);

    let client = connect(&cfg).await;
    let row = client
        .query_one("SELECT 1 + 1", &[])
        .await
        .expect("simple query");
    assert_eq!(row.get::<_, i32>(0), 2);
    let row = client
        .query_one("SELECT $1::int * 3", &[&7i32])
        .await
        .expect("extended query");
    assert_eq!(row.get::<_, i32>(0), 21);

    let unix_cfg = through(dir.to_str().expect("utf-8 temp dir"), 6432);
    let via_unix = connect(&unix_cfg).await;
    let row = via_unix
        .query_one("SELECT 'unix'::text", &[])
        .await
        .expect("unix");
    assert_eq!(row.get::<_, String>(0), "unix");

    let mut tasks = Vec::new();
    for i in 0..12i32 {
        let cfg = cfg.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = connect(&cfg).await;
            for j in 0..20i32 {
                let tx = c.transaction().await.expect("begin");
                let row = tx
                    .query_one("SELECT $1::int + $2::int", &[&i, &j])
                    .await
                    .expect("q");
                assert_eq!(row.get::<_, i32>(0), i + j);
                tx.commit().await.expect("commit");
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }

    let route = format!(
        "{{route=\"{}\",user=\"{}\",protocol=\"postgres\"}}",
        pg.db, pg.scram_user
    );
    let peak_up = m
        .metric(&format!("muxql_peak_upstreams{route}"))
        .expect("peak_upstreams");
    let peak_clients = m
        .metric(&format!("muxql_peak_clients{route}"))
        .expect("peak_clients");
    let txns = m
        .metric(&format!("muxql_transactions_total{route}"))
        .expect("transactions");
    assert!(
        peak_up <= POOL as f64,
        "peak upstreams {peak_up} > pool {POOL}"
    );
    assert!(peak_clients >= 12.0, "peak clients {peak_clients}");
    assert!(txns >= 240.0, "transactions {txns}");

    drop(client);
    drop(via_unix);
    let status = tokio::task::spawn_blocking(move || m.terminate(Duration::from_secs(15)))
        .await
        .expect("terminate");
    assert_eq!(status.code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_ends_the_wait_for_running_transactions() {
    let pg = common::pg();
    let upstream = upstream_url();
    let mut m = Muxql::start(&["--upstream", &upstream, "--shutdown-timeout", "60s"]);
    let mut cfg = tokio_postgres::Config::new();
    cfg.host("127.0.0.1")
        .port(m.port)
        .user(&pg.scram_user)
        .password(&pg.password)
        .dbname(&pg.db);
    let mut client = connect(&cfg).await;
    let tx = client.transaction().await.expect("begin");
    tx.batch_execute("SELECT 1").await.expect("in transaction");
    m.signal("TERM");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        m.is_running(),
        "the first signal waits for the open transaction"
    );
    m.signal("INT");
    let status = tokio::task::spawn_blocking(move || m.wait_exit(Duration::from_secs(5)))
        .await
        .expect("wait");
    assert_eq!(status.code(), Some(0));
    assert!(tx.commit().await.is_err(), "its connection was closed");
}
