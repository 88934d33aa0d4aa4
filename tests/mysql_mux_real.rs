//! muxql in front of a real MariaDB, driven by real clients: mysql_async, the mariadb
//! command-line client and sysbench (issue 9).
//!
//! Every test starts its own in-process muxql on free ports and uses its own tables, so the
//! tests run in parallel against the one harness MariaDB.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::server::{metric, Listeners, TestServer};
use muxql::mux::{Config, MysqlAuth, PoolMode, Protocol, Route, User};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Row};

/// Longest any bounded wait in these tests lasts.
const PATIENCE: Duration = Duration::from_secs(20);

/// muxql in front of the harness MariaDB: every database the native user reaches, pool
/// `pool_size` in transaction mode.
struct Mux {
    port: u16,
    server: TestServer,
}

impl Mux {
    fn start(pool_size: usize) -> Mux {
        Mux::start_with(pool_size, |_| {})
    }

    fn start_with(pool_size: usize, tweak: impl FnOnce(&mut Config)) -> Mux {
        let my = common::mariadb();
        let mut route = Route::new(Protocol::Mysql, &my.db, my.addr(), &my.user);
        route.upstream_password = my.password.clone();
        route.pool_size = pool_size;
        route.pool_mode = PoolMode::Transaction;
        let mut engine = Config::default();
        engine.routes = vec![route];
        engine.users = vec![User::new(&my.user, &my.password)];
        engine.wait_timeout_ms = 60_000;
        tweak(&mut engine);
        let server = TestServer::start(
            engine,
            Listeners {
                pg: false,
                mysql: true,
            },
        );
        Mux {
            port: server.mysql_port.expect("MySQL listener"),
            server,
        }
    }

    /// mysql_async options for the native user through this muxql.
    fn opts(&self) -> Opts {
        let my = common::mariadb();
        self.opts_as(&my.user, &my.password)
    }

    fn opts_as(&self, user: &str, password: &str) -> Opts {
        let my = common::mariadb();
        OptsBuilder::from_opts(my.opts_with_password(user, password))
            .tcp_port(self.port)
            .into()
    }

    async fn connect(&self) -> Conn {
        tokio::time::timeout(PATIENCE, Conn::new(self.opts()))
            .await
            .expect("connect in time")
            .expect("connect through muxql")
    }

    /// The `mariadb` command-line client through this muxql.
    fn cli(&self) -> Command {
        let my = common::mariadb();
        let mut cmd = my.cli(&my.user);
        cmd.arg(format!("--port={}", self.port));
        cmd
    }

    async fn metric(&self, name: &str) -> f64 {
        metric(&self.server.metrics_text().await, name)
    }
}

/// A connection straight to MariaDB as root, for setup and for checks behind muxql's back.
async fn root() -> Conn {
    let my = common::mariadb();
    Conn::new(my.opts(&my.root_user))
        .await
        .expect("connect to MariaDB as root")
}

/// A table name no other test uses.
fn table(prefix: &str) -> String {
    common::unique_name(prefix)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_log_in_with_both_plugins_and_wrong_passwords_are_refused() {
    for auth in [MysqlAuth::CachingSha2Password, MysqlAuth::NativePassword] {
        let mux = Mux::start_with(2, |c| c.mysql_auth = auth);
        let mut c = mux.connect().await;
        let one: Option<i64> = c.query_first("SELECT 1").await.unwrap();
        assert_eq!(one, Some(1));
        let version: Option<String> = c.query_first("SELECT @@version").await.unwrap();
        assert!(version.unwrap().contains("MariaDB"));
        c.disconnect().await.unwrap();
        let my = common::mariadb();
        let err = Conn::new(mux.opts_as(&my.user, "wrong")).await.unwrap_err();
        assert!(err.to_string().contains("1045"), "{auth:?}: {err}");
        let err = Conn::new(mux.opts_as("nobody", "pw")).await.unwrap_err();
        assert!(err.to_string().contains("1045"), "{auth:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mariadb_client_works_through_muxql() {
    let mux = Mux::start(2);
    let t = table("cli");
    let out = mux
        .cli()
        .arg("-e")
        .arg(format!(
            "CREATE TABLE {t} (id INT PRIMARY KEY AUTO_INCREMENT, v TEXT); \
             INSERT INTO {t} (v) VALUES ('a'), ('b'); \
             SELECT COUNT(*) FROM {t}; SELECT LAST_INSERT_ID(); DROP TABLE {t};"
        ))
        .output()
        .expect("run mariadb");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines, ["COUNT(*)", "2", "LAST_INSERT_ID()", "1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_state_follows_each_client_over_a_small_pool() {
    let mux = Mux::start(2);
    let mut tasks = Vec::new();
    for i in 0..24u32 {
        let opts = mux.opts();
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::new(opts).await.unwrap();
            let tz = format!("+{:02}:{:02}", i % 13, (i * 7) % 60);
            let mode = if i % 2 == 0 {
                "ANSI_QUOTES"
            } else {
                "NO_ZERO_DATE"
            };
            c.query_drop(format!(
                "SET time_zone = '{tz}', sql_mode = '{mode}', wait_timeout = {}",
                1000 + i
            ))
            .await
            .unwrap();
            if i % 3 == 0 {
                c.query_drop("SET NAMES latin1").await.unwrap();
            }
            if i % 4 == 0 {
                c.query_drop("USE information_schema").await.unwrap();
            }
            for round in 0..40 {
                let row: Row = c
                    .query_first(
                        "SELECT @@time_zone, @@sql_mode, @@wait_timeout, \
                         @@character_set_client, DATABASE()",
                    )
                    .await
                    .unwrap()
                    .unwrap();
                let (got_tz, got_mode, wait, charset, db): (String, String, u32, String, String) =
                    mysql_async::from_row(row);
                assert_eq!(got_tz, tz, "client {i} round {round}");
                assert_eq!(got_mode, mode, "client {i} round {round}");
                assert_eq!(wait, 1000 + i, "client {i} round {round}");
                let want_charset = if i % 3 == 0 { "latin1" } else { "utf8mb4" };
                assert_eq!(charset, want_charset, "client {i} round {round}");
                let want_db = if i % 4 == 0 {
                    "information_schema"
                } else {
                    "muxql"
                };
                assert_eq!(db, want_db, "client {i} round {round}");
            }
            c.disconnect().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(mux.metric("muxql_upstreams").await <= 2.0);
    assert_eq!(mux.metric("muxql_clients_pinned").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autocommit_off_keeps_the_implicit_transaction_on_one_upstream() {
    let mux = Mux::start(2);
    let t = table("ac");
    let mut setup = mux.connect().await;
    setup
        .query_drop(format!("CREATE TABLE {t} (id INT PRIMARY KEY, v INT)"))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..8i32 {
        let (opts, t) = (mux.opts(), t.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::new(opts).await.unwrap();
            c.query_drop("SET autocommit = 0").await.unwrap();
            for k in 0..10 {
                let id = i * 100 + k;
                c.query_drop(format!("INSERT INTO {t} VALUES ({id}, {k})"))
                    .await
                    .unwrap();
                let seen: Option<i64> = c
                    .query_first(format!("SELECT COUNT(*) FROM {t} WHERE id = {id}"))
                    .await
                    .unwrap();
                assert_eq!(seen, Some(1), "its own uncommitted row");
                if k % 2 == 0 {
                    c.query_drop("COMMIT").await.unwrap();
                } else {
                    c.query_drop("ROLLBACK").await.unwrap();
                }
            }
            let ac: Option<i64> = c.query_first("SELECT @@autocommit").await.unwrap();
            assert_eq!(ac, Some(0));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n: Option<i64> = setup
        .query_first(format!("SELECT COUNT(*) FROM {t}"))
        .await
        .unwrap();
    assert_eq!(n, Some(8 * 5), "committed rows only");
    setup.query_drop(format!("DROP TABLE {t}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_work_across_upstreams_with_each_clients_types() {
    let mux = Mux::start(2);
    let mut tasks = Vec::new();
    for i in 0..16i64 {
        let opts = mux.opts();
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::new(opts).await.unwrap();
            let stmt = c.prep("SELECT CONCAT(?, '|', ?)").await.unwrap();
            for k in 0..30i64 {
                // Even clients bind integers, odd ones strings: the server must hold each
                // client's own types whichever upstream runs the statement.
                let got: Option<String> = if i % 2 == 0 {
                    c.exec_first(&stmt, (i, k)).await.unwrap()
                } else {
                    c.exec_first(&stmt, (format!("s{i}"), format!("t{k}")))
                        .await
                        .unwrap()
                };
                let want = if i % 2 == 0 {
                    format!("{i}|{k}")
                } else {
                    format!("s{i}|t{k}")
                };
                assert_eq!(got.as_deref(), Some(want.as_str()));
            }
            c.close(stmt).await.unwrap();
            let sum: Option<i64> = c.exec_first("SELECT ? + 1", (i,)).await.unwrap();
            assert_eq!(sum, Some(i + 1));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(mux.metric("muxql_clients_pinned").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_insert_id_is_each_clients_own() {
    let mux = Mux::start(2);
    let t = table("lid");
    let mut setup = mux.connect().await;
    setup
        .query_drop(format!(
            "CREATE TABLE {t} (id INT PRIMARY KEY AUTO_INCREMENT, who INT)"
        ))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..12i64 {
        let (opts, t) = (mux.opts(), t.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::new(opts).await.unwrap();
            for _ in 0..15 {
                c.query_drop(format!("INSERT INTO {t} (who) VALUES ({i})"))
                    .await
                    .unwrap();
                let mine = c.last_insert_id().expect("insert id");
                // Another client's INSERT may run on that upstream in between.
                tokio::task::yield_now().await;
                let read: Option<u64> = c.query_first("SELECT LAST_INSERT_ID()").await.unwrap();
                assert_eq!(read, Some(mine));
                let who: Option<i64> = c
                    .query_first(format!("SELECT who FROM {t} WHERE id = LAST_INSERT_ID()"))
                    .await
                    .unwrap();
                assert_eq!(who, Some(i));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    setup.query_drop(format!("DROP TABLE {t}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_only_one_connection_holds_pins_its_client() {
    let mux = Mux::start(2);
    let mut a = mux.connect().await;
    a.query_drop("SET @mine = 42").await.unwrap();
    a.query_drop("CREATE TEMPORARY TABLE tmp_pin (x INT)")
        .await
        .unwrap();
    a.query_drop("INSERT INTO tmp_pin VALUES (7)")
        .await
        .unwrap();
    let locked: Option<i64> = a
        .query_first("SELECT GET_LOCK('muxql_pin', 5)")
        .await
        .unwrap();
    assert_eq!(locked, Some(1));
    assert_eq!(mux.metric("muxql_clients_pinned").await, 1.0);
    // Other clients keep the remaining upstream busy meanwhile.
    let mut others = Vec::new();
    for _ in 0..4 {
        let opts = mux.opts();
        others.push(tokio::spawn(async move {
            let mut c = Conn::new(opts).await.unwrap();
            for _ in 0..20 {
                let v: Option<Option<i64>> = c.query_first("SELECT @mine").await.unwrap();
                assert_eq!(v, Some(None), "user variables stay with their client");
            }
        }));
    }
    for _ in 0..20 {
        let v: Option<i64> = a.query_first("SELECT @mine").await.unwrap();
        assert_eq!(v, Some(42));
        let x: Option<i64> = a.query_first("SELECT x FROM tmp_pin").await.unwrap();
        assert_eq!(x, Some(7));
    }
    for o in others {
        o.await.unwrap();
    }
    a.reset().await.unwrap();
    let v: Option<Option<i64>> = a.query_first("SELECT @mine").await.unwrap();
    assert_eq!(v, Some(None), "COM_RESET_CONNECTION clears the session");
    assert_eq!(mux.metric("muxql_clients_pinned").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_vanishing_mid_transaction_or_mid_result_leaves_nothing_behind() {
    let mux = Mux::start(1);
    let t = table("gone");
    let mut b = mux.connect().await;
    b.query_drop(format!("CREATE TABLE {t} (id INT PRIMARY KEY)"))
        .await
        .unwrap();
    let mut a = mux.connect().await;
    a.query_drop("BEGIN").await.unwrap();
    a.query_drop(format!("INSERT INTO {t} VALUES (1)"))
        .await
        .unwrap();
    drop(a);
    let n: Option<i64> =
        tokio::time::timeout(PATIENCE, b.query_first(format!("SELECT COUNT(*) FROM {t}")))
            .await
            .expect("the only upstream comes back")
            .unwrap();
    assert_eq!(
        n,
        Some(0),
        "the vanished client's transaction was rolled back"
    );
    let mut c = mux.connect().await;
    let mut rows = c
        .query_iter("SELECT seq FROM seq_1_to_200000")
        .await
        .unwrap();
    let _first: Option<Row> = rows.next().await.unwrap();
    drop(rows);
    drop(c);
    let ok: Option<i64> = tokio::time::timeout(PATIENCE, b.query_first("SELECT 5"))
        .await
        .expect("served after a client left mid-result")
        .unwrap();
    assert_eq!(ok, Some(5));
    b.query_drop(format!("DROP TABLE {t}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_statements_and_a_20_mib_blob_flow_through() {
    let mut r = root().await;
    r.query_drop("SET GLOBAL max_allowed_packet = 64 * 1024 * 1024")
        .await
        .unwrap();
    let mux = Mux::start(2);
    let mut c = mux.connect().await;
    let mut result = c
        .query_iter("SELECT 1; SELECT 2; SET @@session.time_zone = '+03:00'")
        .await
        .unwrap();
    let first: Vec<i64> = result.collect().await.unwrap();
    let second: Vec<i64> = result.collect().await.unwrap();
    drop(result);
    assert_eq!((first, second), (vec![1], vec![2]));
    let tz: Option<String> = c.query_first("SELECT @@time_zone").await.unwrap();
    assert_eq!(
        tz.as_deref(),
        Some("+03:00"),
        "state set inside a multi-statement"
    );
    let t = table("blob");
    c.query_drop(format!("CREATE TABLE {t} (b LONGBLOB)"))
        .await
        .unwrap();
    let blob: Vec<u8> = (0..20 * 1024 * 1024 + 17)
        .map(|i| (i % 251) as u8)
        .collect();
    c.exec_drop(format!("INSERT INTO {t} VALUES (?)"), (blob.clone(),))
        .await
        .unwrap();
    let back: Option<Vec<u8>> = c.query_first(format!("SELECT b FROM {t}")).await.unwrap();
    assert!(back.as_ref() == Some(&blob), "blob round trip");
    c.query_drop(format!("DROP TABLE {t}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_query_reaches_only_the_named_clients_statement() {
    let mux = Mux::start(2);
    let mut a = mux.connect().await;
    let mut b = mux.connect().await;
    let a_id = a.id();
    let started = Instant::now();
    let sleeper = tokio::spawn(async move {
        let r: mysql_async::Result<Option<i64>> = a.query_first("SELECT SLEEP(20)").await;
        (r, a)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let err = b.query_drop("KILL QUERY 999999").await.unwrap_err();
    assert!(err.to_string().contains("1094"), "{err}");
    b.query_drop(format!("KILL QUERY {a_id}")).await.unwrap();
    let (r, mut a) = tokio::time::timeout(PATIENCE, sleeper)
        .await
        .expect("the query ends")
        .unwrap();
    // MariaDB ends a killed SLEEP() early with the value 1 or with error 1317.
    match r {
        Ok(v) => assert_eq!(v, Some(1)),
        Err(e) => assert!(e.to_string().contains("1317"), "{e}"),
    }
    assert!(started.elapsed() < Duration::from_secs(15));
    let still: Option<i64> = a.query_first("SELECT 3").await.unwrap();
    assert_eq!(still, Some(3), "the client keeps its connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_killed_mid_query_fails_only_its_client() {
    let mux = Mux::start(2);
    let mut a = mux.connect().await;
    let mut b = mux.connect().await;
    let marker = table("victim");
    let sql = format!("SELECT SLEEP(20) AS {marker}");
    let sleeper = tokio::spawn(async move { a.query_drop(sql).await });
    let mut r = root().await;
    let deadline = Instant::now() + PATIENCE;
    let thread: u64 = loop {
        let id: Option<u64> = r
            .query_first(format!(
                "SELECT id FROM information_schema.processlist WHERE info LIKE '%AS {marker}'"
            ))
            .await
            .unwrap();
        if let Some(id) = id {
            break id;
        }
        assert!(Instant::now() < deadline, "the query never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    r.query_drop(format!("KILL CONNECTION {thread}"))
        .await
        .unwrap();
    let res = tokio::time::timeout(PATIENCE, sleeper)
        .await
        .expect("the client hears about it")
        .unwrap();
    assert!(res.is_err(), "the client whose upstream died gets an error");
    let v: Option<i64> = b.query_first("SELECT 4").await.unwrap();
    assert_eq!(v, Some(4), "other clients go on");
}

/// Runs a sysbench test through muxql and returns its output; fails on any error.
fn sysbench(mux: &Mux, test: &str, ps_mode: &str, threads: u32, extra: &[&str]) -> String {
    let my = common::mariadb();
    let out = Command::new("sysbench")
        .arg(test)
        .arg("--mysql-host=127.0.0.1")
        .arg(format!("--mysql-port={}", mux.port))
        .arg(format!("--mysql-user={}", my.user))
        .arg(format!("--mysql-password={}", my.password))
        .arg(format!("--mysql-db={}", my.db))
        .arg(format!("--db-ps-mode={ps_mode}"))
        .arg(format!("--threads={threads}"))
        .args(extra)
        .output()
        .expect("run sysbench (scripts/setup installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "sysbench {test} failed:\n{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sysbench_with_200_threads_over_a_pool_of_8_has_no_errors() {
    let mux = Mux::start(8);
    let tables = "--tables=2";
    let size = "--table-size=5000";
    sysbench(&mux, "oltp_read_write", "disable", 4, &[tables, "cleanup"]);
    sysbench(
        &mux,
        "oltp_read_write",
        "disable",
        4,
        &[tables, size, "prepare"],
    );
    for ps in ["auto", "disable"] {
        for test in ["oltp_point_select", "oltp_read_write"] {
            // Any error other than a deadlock or lock wait timeout ends sysbench with a FATAL
            // line and a failed exit (sysbench's --mysql-ignore-errors default).
            let out = sysbench(&mux, test, ps, 200, &[tables, size, "--time=4", "run"]);
            let count = |label: &str| -> u64 {
                let line = out
                    .lines()
                    .find(|l| l.trim_start().starts_with(label))
                    .unwrap_or_else(|| panic!("no {label} in:\n{out}"));
                line.split_whitespace()
                    .find_map(|w| w.parse().ok())
                    .unwrap_or_else(|| panic!("no count in {line:?}"))
            };
            assert!(count("transactions:") > 0, "{test} ps-mode {ps}:\n{out}");
            if test == "oltp_point_select" {
                // Reads never deadlock: nothing at all may go wrong.
                assert_eq!(count("ignored errors:"), 0, "{test} ps-mode {ps}:\n{out}");
            }
        }
    }
    sysbench(&mux, "oltp_read_write", "disable", 4, &[tables, "cleanup"]);
    assert!(mux.metric("muxql_upstreams").await <= 8.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_user_logs_in_again_with_a_fresh_session() {
    let mux = Mux::start(1);
    let mut c = mux.connect().await;
    c.query_drop("SET @v = 1, time_zone = '+05:00'")
        .await
        .unwrap();
    assert_eq!(mux.metric("muxql_clients_pinned").await, 1.0);
    c.change_user(mysql_async::ChangeUserOpts::default())
        .await
        .unwrap();
    let row: Row = c
        .query_first("SELECT @v, @@time_zone")
        .await
        .unwrap()
        .unwrap();
    let (v, tz): (Option<i64>, String) = mysql_async::from_row(row);
    assert_eq!(v, None);
    assert_ne!(tz, "+05:00");
    assert_eq!(mux.metric("muxql_clients_pinned").await, 0.0);
    let wrong = mysql_async::ChangeUserOpts::default().with_pass(Some("wrong".to_string()));
    assert!(c.change_user(wrong).await.is_err(), "wrong password");
    let mut other = mux.connect().await;
    let one: Option<i64> = other.query_first("SELECT 1").await.unwrap();
    assert_eq!(one, Some(1), "the pool is fine after a failed change");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_count_is_each_clients_own_and_table_locks_pin_until_unlocked() {
    let mux = Mux::start(1);
    let t = table("rc");
    let mut a = mux.connect().await;
    let mut b = mux.connect().await;
    a.query_drop(format!("CREATE TABLE {t} (id INT PRIMARY KEY, v INT)"))
        .await
        .unwrap();
    a.query_drop(format!(
        "INSERT INTO {t} VALUES (1, 0), (2, 0), (3, 0), (4, 0), (5, 0)"
    ))
    .await
    .unwrap();
    for round in 0..5i64 {
        a.query_drop(format!("UPDATE {t} SET v = v + 1 WHERE id <= 3"))
            .await
            .unwrap();
        // b's statement runs on the only upstream in between.
        b.query_drop(format!(
            "UPDATE {t} SET v = v + 1 WHERE id <= {}",
            round % 2 + 4
        ))
        .await
        .unwrap();
        let mine: Option<i64> = a.query_first("SELECT ROW_COUNT()").await.unwrap();
        assert_eq!(mine, Some(3), "round {round}");
        let theirs: Option<i64> = b.query_first("SELECT ROW_COUNT() AS n").await.unwrap();
        assert_eq!(theirs, Some(round % 2 + 4), "round {round}: b's own count");
    }
    a.query_drop(format!("LOCK TABLES {t} READ")).await.unwrap();
    assert_eq!(mux.metric("muxql_clients_pinned").await, 1.0);
    a.query_drop("UNLOCK TABLES").await.unwrap();
    assert_eq!(mux.metric("muxql_clients_pinned").await, 0.0);
    b.query_drop(format!("DROP TABLE {t}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_warnings_and_warning_count_are_each_clients_own() {
    let mux = Mux::start(1);
    let t = table("warn");
    let mut a = mux.connect().await;
    let mut b = mux.connect().await;
    a.query_drop(format!("CREATE TABLE {t} (c VARCHAR(2))"))
        .await
        .unwrap();
    a.query_drop("SET sql_mode = ''").await.unwrap();
    for round in 0..3 {
        // a's insert is truncated (warning 1265); b's statement runs on the only upstream next.
        a.query_drop(format!("INSERT INTO {t} VALUES ('abcdef')"))
            .await
            .unwrap();
        b.query_drop("SELECT 1").await.unwrap();
        let count: Option<i64> = a.query_first("SELECT @@warning_count").await.unwrap();
        assert_eq!(count, Some(1), "round {round}");
        a.query_drop(format!("INSERT INTO {t} VALUES ('ghijkl')"))
            .await
            .unwrap();
        b.query_drop("SELECT 2").await.unwrap();
        let warnings: Vec<(String, u32, String)> = a.query("SHOW WARNINGS").await.unwrap();
        assert_eq!(warnings.len(), 1, "round {round}: {warnings:?}");
        assert_eq!(warnings[0].1, 1265, "round {round}: {warnings:?}");
        let none: Vec<(String, u32, String)> = b.query("SHOW WARNINGS").await.unwrap();
        assert!(none.is_empty(), "b had no warnings: {none:?}");
    }
    a.query_drop(format!("DROP TABLE {t}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_errors_and_error_count_are_each_clients_own() {
    let mux = Mux::start(1);
    let t = table("errs");
    let mut a = mux.connect().await;
    let mut b = mux.connect().await;
    a.query_drop(format!("CREATE TABLE {t} (id INT PRIMARY KEY)"))
        .await
        .unwrap();
    a.query_drop(format!("INSERT INTO {t} VALUES (1)"))
        .await
        .unwrap();
    type Row = (String, u32, String);
    for round in 0..2 {
        // a's duplicate key, then b's statements run on the only upstream.
        let dup = a.query_drop(format!("INSERT INTO {t} VALUES (1)")).await;
        assert!(dup.is_err(), "round {round}");
        assert!(b.query_drop("SELECT no_such_column").await.is_err());
        b.query_drop("SELECT 1").await.unwrap();
        for _ in 0..2 {
            let errors: Vec<Row> = a.query("SHOW ERRORS").await.unwrap();
            assert_eq!(errors.len(), 1, "round {round}: {errors:?}");
            assert_eq!((errors[0].0.as_str(), errors[0].1), ("Error", 1062));
            assert!(errors[0].2.contains("Duplicate entry"), "{errors:?}");
        }
        let count: Option<i64> = a.query_first("SHOW COUNT(*) ERRORS").await.unwrap();
        assert_eq!(count, Some(1), "round {round}");
        let count: Option<i64> = a.query_first("SELECT @@error_count").await.unwrap();
        assert_eq!(count, Some(1), "round {round}");
        let none: Vec<Row> = b.query("SHOW ERRORS").await.unwrap();
        assert!(none.is_empty(), "b's last statement succeeded: {none:?}");
        let count: Option<i64> = b.query_first("SHOW COUNT(*) WARNINGS").await.unwrap();
        assert_eq!(count, Some(0), "round {round}");
    }
    a.query_drop(format!("DROP TABLE {t}")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_log_in_with_client_ed25519_too() {
    let my = common::mariadb();
    let ed = my.require_ed25519_user().to_string();
    let mux = Mux::start_with(2, |c| {
        c.routes[0].upstream_user = ed.clone();
        c.routes[0].upstream_password = my.password.clone();
    });
    let mut c = mux.connect().await;
    let user: Option<String> = c.query_first("SELECT CURRENT_USER()").await.unwrap();
    assert!(user.unwrap().starts_with(&format!("{ed}@")));
}
