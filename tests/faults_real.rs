//! Faults, for real, through the `muxql` binary: a PostgreSQL backend stopped (SIGSTOP) under
//! a client's transaction then resumed, the whole MariaDB server stopped then resumed while the
//! PostgreSQL route goes on, and a backend terminated in the middle of a streaming result.

mod common;
mod proc;

use std::time::Duration;

use mysql_async::prelude::Queryable;
use proc::Muxql;

/// How long a stopped server stays stopped.
const STALL: Duration = Duration::from_secs(2);

/// muxql with a PostgreSQL route and a MySQL route, pools of 2.
fn start() -> (Muxql, u16) {
    let (pg, my) = (common::pg(), common::mariadb());
    let mysql_port = proc::free_port();
    let listen_mysql = format!("127.0.0.1:{mysql_port}");
    let m = Muxql::start(&[
        "--upstream",
        &pg.url(&pg.scram_user),
        "--upstream",
        &my.url(&my.user),
        "--listen-mysql",
        &listen_mysql,
        "--pool-size",
        "2",
        "--log-level",
        "error",
    ]);
    (m, mysql_port)
}

async fn pg_client(m: &Muxql) -> tokio_postgres::Client {
    let pg = common::pg();
    let mut via = pg.clone();
    via.port = m.port;
    common::pg_connect(&via.config(&pg.scram_user))
        .await
        .expect("connect through muxql")
}

fn signal(pid: i32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(ok.success(), "kill -{sig} {pid}");
}

/// Resumes a stopped process when dropped, so that a failing test leaves no server stopped.
struct Resume(i32);

impl Drop for Resume {
    fn drop(&mut self) {
        signal(self.0, "CONT");
    }
}

#[tokio::test]
async fn a_stalled_backend_delays_only_its_own_client() {
    let (m, _) = start();
    let a = pg_client(&m).await;
    a.batch_execute("BEGIN").await.expect("begin");
    let pid: i32 = a
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);
    signal(pid, "STOP");
    let resume = Resume(pid);
    let stalled = tokio::spawn(async move {
        let v: i32 = a
            .query_one("SELECT 42", &[])
            .await
            .expect("answered once resumed")
            .get(0);
        a.batch_execute("COMMIT").await.expect("commit");
        v
    });
    // Meanwhile the pool's other upstream serves everyone else.
    let others = pg_client(&m).await;
    for i in 0..50i32 {
        let v: i32 = others
            .query_one("SELECT $1::int * 2", &[&i])
            .await
            .expect("others go on")
            .get(0);
        assert_eq!(v, i * 2);
    }
    tokio::time::sleep(STALL).await;
    assert!(!stalled.is_finished(), "the stalled client waits");
    drop(resume);
    let v = tokio::time::timeout(Duration::from_secs(10), stalled)
        .await
        .expect("answered after the resume")
        .expect("task");
    assert_eq!(v, 42);
}

#[tokio::test]
async fn a_stopped_mariadb_holds_its_clients_and_no_postgres_client_notices() {
    let (m, mysql_port) = start();
    let my = common::mariadb();
    let opts = mysql_async::OptsBuilder::from_opts(my.opts(&my.user)).tcp_port(mysql_port);
    let mut conn = mysql_async::Conn::new(opts)
        .await
        .expect("mysql through muxql");
    let one: Option<u32> = conn.query_first("SELECT 1").await.expect("query");
    assert_eq!(one, Some(1));
    let pid: i32 = std::fs::read_to_string(common::dbs().dir.join("mariadb/mariadbd.pid"))
        .expect("mariadbd.pid")
        .trim()
        .parse()
        .expect("a pid");
    signal(pid, "STOP");
    let resume = Resume(pid);
    let waiting = tokio::spawn(async move {
        let v: Option<u32> = conn
            .query_first("SELECT 7 * 6")
            .await
            .expect("answered once resumed");
        v
    });
    let pg = pg_client(&m).await;
    for i in 0..50i32 {
        let v: i32 = pg
            .query_one("SELECT $1::int + 1", &[&i])
            .await
            .expect("the PostgreSQL route goes on")
            .get(0);
        assert_eq!(v, i + 1);
    }
    tokio::time::sleep(STALL).await;
    assert!(!waiting.is_finished(), "the MySQL client waits");
    drop(resume);
    let v = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("answered after the resume")
        .expect("task");
    assert_eq!(v, Some(42));
}

#[tokio::test]
async fn a_backend_terminated_mid_result_fails_its_client_and_the_pool_recovers() {
    let (m, _) = start();
    let victim = pg_client(&m).await;
    victim
        .batch_execute("SET application_name = 'mid_result_victim'")
        .await
        .expect("set");
    let bystander = pg_client(&m).await;
    let streaming = tokio::spawn(async move {
        let r = victim
            .query(
                "SELECT repeat('x', 100) FROM generate_series(1, 5000000)",
                &[],
            )
            .await;
        (r.map(|rows| rows.len()), victim)
    });
    let pg = common::pg();
    let admin = common::pg_connect(&pg.config(&pg.superuser))
        .await
        .expect("direct superuser connection");
    let mut terminated = false;
    for _ in 0..200 {
        let n: i64 = admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE application_name = 'mid_result_victim' AND state = 'active'",
                &[],
            )
            .await
            .expect("terminate")
            .get(0);
        if n > 0 {
            terminated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(terminated, "the streaming backend was found");
    let (result, victim) = streaming.await.expect("task");
    let err = result.expect_err("the result was cut short");
    let code = err.as_db_error().map(|e| e.code().code().to_string());
    assert!(
        matches!(code.as_deref(), Some("08006" | "57P01")) || victim.is_closed(),
        "{err:?}"
    );
    // The others never noticed, and the pool serves new work.
    for i in 0..20i32 {
        let v: i32 = bystander
            .query_one("SELECT $1::int", &[&i])
            .await
            .expect("the bystander goes on")
            .get(0);
        assert_eq!(v, i);
    }
    let fresh = pg_client(&m).await;
    let one: i32 = fresh
        .query_one("SELECT 1", &[])
        .await
        .expect("a new client")
        .get(0);
    assert_eq!(one, 1);
}
