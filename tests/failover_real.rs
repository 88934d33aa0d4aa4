//! A server connection that dies under a client's request, for real: the backend running it is
//! terminated (`pg_terminate_backend`, what a restart does to every backend; MariaDB's
//! `KILL CONNECTION`). The client gets an error for that request and keeps its connection,
//! settings and prepared statements (`close_on_upstream_loss = false`, the default); with the
//! option set, it is closed instead.

mod common;
mod proc;

use std::time::Duration;

use mysql_async::prelude::Queryable;
use proc::Muxql;

fn start(extra_toml: &str) -> (Muxql, std::path::PathBuf) {
    let pg = common::pg();
    let dir = std::env::temp_dir().join(common::unique_name("muxql_failover"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("muxql.toml");
    std::fs::write(
        &config,
        format!(
            "upstreams = [{:?}]\npool_size = 2\n{extra_toml}\n",
            pg.url(&pg.scram_user)
        ),
    )
    .expect("write config");
    let m = Muxql::start(&[
        "--config",
        config.to_str().expect("path"),
        "--log-level",
        "warn",
    ]);
    (m, dir)
}

async fn client(m: &Muxql, app: &str) -> tokio_postgres::Client {
    let mut via = common::pg().clone();
    via.port = m.port;
    let mut cfg = via.config(&via.scram_user);
    cfg.application_name(app);
    common::pg_connect(&cfg)
        .await
        .expect("connect through muxql")
}

/// Terminates the backend running `pg_sleep` for the client named `app`, directly.
async fn terminate_backend_of(app: &str) {
    let pg = common::pg();
    let admin = common::pg_connect(&pg.config(&pg.superuser))
        .await
        .expect("direct superuser connection");
    for _ in 0..100 {
        let n: i64 = admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE application_name = $1 AND query LIKE '%pg_sleep%' AND state = 'active'",
                &[&app],
            )
            .await
            .expect("terminate")
            .get(0);
        if n > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no backend of {app} ran pg_sleep");
}

#[tokio::test]
async fn a_terminated_backend_costs_the_client_one_error_not_its_session() {
    let (m, dir) = start("");
    let app = common::unique_name("failover");
    let c = client(&m, &app).await;
    c.batch_execute("SET statement_timeout = '45s'")
        .await
        .expect("set");
    let stmt = c.prepare("SELECT $1::int + 1").await.expect("prepare");
    let (sleep, ()) = tokio::join!(
        c.simple_query("SELECT pg_sleep(30)"),
        terminate_backend_of(&app)
    );
    let err = sleep.expect_err("the sleep's backend was terminated");
    let db = err
        .as_db_error()
        .expect("an ErrorResponse, not a closed connection");
    assert_eq!(db.code().code(), "08006", "{db:?}");
    assert!(db.message().contains("terminating connection"), "{db:?}");
    // Same connection, same session: its setting and its prepared statement on a new backend.
    let row = c
        .query_one(&stmt, &[&41i32])
        .await
        .expect("prepared statement");
    assert_eq!(row.get::<_, i32>(0), 42);
    let timeout: String = c
        .query_one("SHOW statement_timeout", &[])
        .await
        .expect("show")
        .get(0);
    assert_eq!(timeout, "45s");
    assert!(!c.is_closed());
    std::fs::remove_dir_all(&dir).ok();
}

/// The SQLSTATE of a tokio-postgres error from an ErrorResponse.
fn code_of(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.code().code().to_string())
        .unwrap_or_else(|| format!("not an ErrorResponse: {e:?}"))
}

#[tokio::test]
async fn a_transaction_lost_with_its_backend_is_aborted_and_the_session_goes_on() {
    let (m, dir) = start("");
    let app = common::unique_name("failover_tx");
    let c = client(&m, &app).await;
    c.batch_execute("SET statement_timeout = '44s'")
        .await
        .expect("set");
    c.batch_execute("BEGIN; SET LOCAL work_mem = '7MB'; SET statement_timeout = '43s'")
        .await
        .expect("begin");
    let (sleep, ()) = tokio::join!(
        c.simple_query("SELECT pg_sleep(30)"),
        terminate_backend_of(&app)
    );
    assert_eq!(code_of(&sleep.expect_err("terminated")), "08006");
    // As in an aborted transaction: commands fail until it ends; COMMIT rolls back.
    let err = c.simple_query("SELECT 1").await.expect_err("aborted");
    assert_eq!(code_of(&err), "25P02");
    let done = c
        .simple_query("COMMIT")
        .await
        .expect("COMMIT ends the block");
    assert!(
        done.iter()
            .any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::CommandComplete(_))),
        "{done:?}"
    );
    // The session is as before the transaction, on a new backend.
    let timeout: String = c
        .query_one("SHOW statement_timeout", &[])
        .await
        .expect("show")
        .get(0);
    assert_eq!(timeout, "44s", "the transaction's SET was rolled back");
    assert!(!c.is_closed());
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn a_transaction_lost_while_idle_fails_its_next_command() {
    let (m, dir) = start("");
    let app = common::unique_name("failover_idle_tx");
    let c = client(&m, &app).await;
    c.batch_execute("BEGIN").await.expect("begin");
    let pg = common::pg();
    let admin = common::pg_connect(&pg.config(&pg.superuser))
        .await
        .expect("direct superuser connection");
    let n: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1 AND state = 'idle in transaction'",
            &[&app],
        )
        .await
        .expect("terminate")
        .get(0);
    assert_eq!(n, 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Its COMMIT fails with the loss (nothing was committed), and the session goes on.
    let err = c.simple_query("COMMIT").await.expect_err("the loss");
    assert_eq!(code_of(&err), "08006");
    let one: i32 = c
        .query_one("SELECT 1", &[])
        .await
        .expect("the session goes on")
        .get(0);
    assert_eq!(one, 1);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn with_close_on_upstream_loss_the_client_is_closed() {
    let (m, dir) = start("close_on_upstream_loss = true");
    let app = common::unique_name("failover_close");
    let c = client(&m, &app).await;
    let (sleep, ()) = tokio::join!(
        c.simple_query("SELECT pg_sleep(30)"),
        terminate_backend_of(&app)
    );
    assert!(sleep.is_err());
    let next = tokio::time::timeout(Duration::from_secs(5), c.simple_query("SELECT 1"))
        .await
        .expect("an answer, not a hang");
    assert!(next.is_err(), "the connection is closed");
    std::fs::remove_dir_all(&dir).ok();
}

/// muxql in front of the test MariaDB; returns it, a client connection through it and the
/// scratch directory.
async fn start_mysql() -> (Muxql, mysql_async::Conn, std::path::PathBuf) {
    let my = common::mariadb();
    let dir = std::env::temp_dir().join(common::unique_name("muxql_failover_my"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("muxql.toml");
    let port = common::free_port();
    std::fs::write(
        &config,
        format!(
            "upstreams = [{:?}]\npool_size = 2\nlisten_mysql = [\"127.0.0.1:{port}\"]\n",
            my.url(&my.user)
        ),
    )
    .expect("write config");
    let m = Muxql::start(&[
        "--config",
        config.to_str().expect("path"),
        "--log-level",
        "warn",
    ]);
    let opts = mysql_async::OptsBuilder::from_opts(my.opts(&my.user)).tcp_port(port);
    let c = mysql_async::Conn::new(opts)
        .await
        .expect("connect through muxql");
    (m, c, dir)
}

/// Kills (KILL CONNECTION, directly) the MariaDB connection running a statement that
/// contains `marker`.
async fn kill_connection_running(marker: &str) {
    let my = common::mariadb();
    let mut admin = mysql_async::Conn::new(my.opts(&my.root_user))
        .await
        .expect("root");
    for _ in 0..100 {
        let id: Option<u64> = admin
            .exec_first(
                "SELECT id FROM information_schema.processlist WHERE info LIKE ? AND info NOT LIKE '%processlist%'",
                (format!("%{marker}%"),),
            )
            .await
            .expect("processlist");
        if let Some(id) = id {
            admin
                .query_drop(format!("KILL CONNECTION {id}"))
                .await
                .expect("kill");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the statement never showed");
}

#[tokio::test]
async fn a_killed_mariadb_connection_costs_the_client_one_error_not_its_session() {
    let (_m, mut c, dir) = start_mysql().await;
    c.query_drop("SET time_zone = '+03:00'").await.expect("set");
    let stmt = c.prep("SELECT ? + 1").await.expect("prepare");
    let marker = common::unique_name("killme");
    let sleep = format!("SELECT SLEEP(30) AS {marker}");
    let (slept, ()) = tokio::join!(c.query_drop(sleep), kill_connection_running(&marker));
    assert!(slept.is_err(), "the sleep's connection was killed");
    // Same connection, same session: its time zone and its prepared statement, on a new one.
    let zone: String = c
        .query_first("SELECT @@session.time_zone")
        .await
        .expect("query after the loss")
        .expect("a row");
    assert_eq!(zone, "+03:00");
    let two: i64 = c
        .exec_first(&stmt, (1,))
        .await
        .expect("execute")
        .expect("a row");
    assert_eq!(two, 2);
    c.disconnect().await.expect("disconnect");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn a_mariadb_transaction_lost_with_its_connection_fails_as_after_a_deadlock() {
    let (_m, mut c, dir) = start_mysql().await;
    let table = common::unique_name("lost_tx");
    c.query_drop(format!("CREATE TABLE {table} (k INT) ENGINE=InnoDB"))
        .await
        .expect("create");
    c.query_drop("BEGIN").await.expect("begin");
    c.query_drop(format!("INSERT INTO {table} VALUES (1)"))
        .await
        .expect("insert");
    let marker = common::unique_name("killme");
    let sleep = format!("SELECT SLEEP(30) AS {marker}");
    let (slept, ()) = tokio::join!(c.query_drop(sleep), kill_connection_running(&marker));
    match slept {
        Err(mysql_async::Error::Server(e)) => {
            assert_eq!((e.code, e.state.as_str()), (1213, "40001"), "{e:?}")
        }
        other => panic!("expected ERR 1213: {other:?}"),
    }
    // The transaction is gone (its INSERT with it); the session goes on outside it.
    let rows: Option<i64> = c
        .query_first(format!("SELECT COUNT(*) FROM {table}"))
        .await
        .expect("the session goes on");
    assert_eq!(rows, Some(0), "the lost transaction's row is not there");
    c.query_drop(format!("DROP TABLE {table}"))
        .await
        .expect("drop");
    c.disconnect().await.expect("disconnect");
    std::fs::remove_dir_all(&dir).ok();
}
