//! Soak: PostgreSQL and MariaDB clients that connect, work and leave through the `muxql`
//! binary for `MUXQL_SOAK_SECONDS` (default 20; `scripts/soak` runs an hour), next to pgbench
//! (TPC-B-like, the three query modes in turn) and sysbench (`oltp_read_write`) runs, while
//! faults are injected in turn: every PostgreSQL backend terminated, every MariaDB connection
//! killed, PostgreSQL restarted. Each client checks its own data and session after every
//! step: a wrong result fails the test at once; errors a fault causes are counted. At the end
//! every client's rows are all there, pgbench's balances agree (no transaction half applied)
//! and sysbench's table has all its rows, and muxql's memory and descriptors are flat.

mod common;
mod proc;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use proc::Muxql;

/// Clients of each protocol.
const CLIENTS: usize = 12;
/// Most steps a client takes before it leaves and connects again.
const MAX_STEPS_PER_CONNECTION: u64 = 150;

fn soak_seconds() -> u64 {
    std::env::var("MUXQL_SOAK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

/// What one client knows about its own rows: `committed` for sure, `uncertain` more whose
/// COMMIT failed with the connection (they may or may not have landed).
#[derive(Debug, Default, Clone, Copy)]
struct Ledger {
    committed: u64,
    uncertain: u64,
}

impl Ledger {
    /// Whether `count` rows found is possible.
    fn admits(&self, count: u64) -> bool {
        (self.committed..=self.committed + self.uncertain).contains(&count)
    }
}

/// Counters shared by the clients.
#[derive(Default)]
struct Tally {
    steps: AtomicU64,
    errors: AtomicU64,
    reconnects: AtomicU64,
}

/// A small LCG: how many steps each connection takes.
fn next_steps(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    1 + (*seed >> 33) % MAX_STEPS_PER_CONNECTION
}

async fn pg_worker(
    port: u16,
    table: String,
    me: usize,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> Ledger {
    let pg = common::pg();
    let mut via = pg.clone();
    via.port = port;
    let cfg = via.config(&pg.scram_user);
    let key = format!("pg{me}");
    let mut ledger = Ledger::default();
    let mut seed = me as u64 + 1;
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut client) = common::pg_connect(&cfg).await else {
            tally.errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        tally.reconnects.fetch_add(1, Ordering::Relaxed);
        let app = format!("soak_{me}_{}", ledger.committed);
        if client
            .batch_execute(&format!("SET application_name = '{app}'"))
            .await
            .is_err()
        {
            tally.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        for _ in 0..next_steps(&mut seed) {
            if stop.load(Ordering::Relaxed) || client.is_closed() {
                break;
            }
            match pg_step(&mut client, &table, &key, &app, &mut ledger).await {
                Ok(()) => {
                    tally.steps.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tally.errors.fetch_add(1, Ordering::Relaxed);
                    let code = e.as_db_error().map(|d| d.code().code().to_string());
                    assert!(
                        client.is_closed() || matches!(code.as_deref(), Some("08006" | "57P01")),
                        "client {me}: an error no fault explains: {e:?}"
                    );
                }
            }
        }
    }
    ledger
}

/// One checked step: a transaction adding a row, seeing exactly its own rows, and its own
/// session setting.
async fn pg_step(
    client: &mut tokio_postgres::Client,
    table: &str,
    key: &str,
    app: &str,
    ledger: &mut Ledger,
) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute(&format!("INSERT INTO {table} (k) VALUES ($1)"), &[&key])
        .await?;
    let row = tx
        .query_one(
            &format!(
                "SELECT count(*), current_setting('application_name') FROM {table} WHERE k = $1"
            ),
            &[&key],
        )
        .await?;
    let (count, setting): (i64, String) = (row.get(0), row.get(1));
    let inside = Ledger {
        committed: ledger.committed + 1,
        uncertain: ledger.uncertain,
    };
    assert!(
        inside.admits(count as u64),
        "{key}: {count} rows seen, {inside:?}"
    );
    assert_eq!(setting, app, "{key}: another session's setting");
    match tx.commit().await {
        Ok(()) => {
            ledger.committed += 1;
            Ok(())
        }
        Err(e) => {
            ledger.uncertain += 1;
            Err(e)
        }
    }
}

async fn my_worker(
    port: u16,
    table: String,
    me: usize,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> Ledger {
    let my = common::mariadb();
    let opts = mysql_async::OptsBuilder::from_opts(my.opts(&my.user)).tcp_port(port);
    let key = format!("my{me}");
    let mut ledger = Ledger::default();
    let mut seed = me as u64 + 1000;
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut conn) = mysql_async::Conn::new(opts.clone()).await else {
            tally.errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        tally.reconnects.fetch_add(1, Ordering::Relaxed);
        // Its own session setting: a time zone (tracked and replayed, it pins nobody).
        let mark = format!("+{:02}:{:02}", me % 14, ledger.committed % 60);
        if conn
            .query_drop(format!("SET time_zone = '{mark}'"))
            .await
            .is_err()
        {
            tally.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        for _ in 0..next_steps(&mut seed) {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            match my_step(&mut conn, &table, &key, &mark, &mut ledger).await {
                Ok(()) => {
                    tally.steps.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tally.errors.fetch_add(1, Ordering::Relaxed);
                    let fault = match &e {
                        mysql_async::Error::Server(s) => [1213, 1317, 1927, 2013].contains(&s.code),
                        _ => true,
                    };
                    assert!(fault, "client {me}: an error no fault explains: {e:?}");
                    break;
                }
            }
        }
        let _ = conn.disconnect().await;
    }
    ledger
}

async fn my_step(
    conn: &mut mysql_async::Conn,
    table: &str,
    key: &str,
    mark: &str,
    ledger: &mut Ledger,
) -> Result<(), mysql_async::Error> {
    let mut tx = conn
        .start_transaction(mysql_async::TxOpts::default())
        .await?;
    tx.exec_drop(format!("INSERT INTO {table} (k) VALUES (?)"), (key,))
        .await?;
    let row: Option<(u64, String)> = tx
        .exec_first(
            format!("SELECT COUNT(*), @@session.time_zone FROM {table} WHERE k = ?"),
            (key,),
        )
        .await?;
    let (count, seen_mark) = row.expect("a row");
    let inside = Ledger {
        committed: ledger.committed + 1,
        uncertain: ledger.uncertain,
    };
    assert!(inside.admits(count), "{key}: {count} rows seen, {inside:?}");
    assert_eq!(seen_mark, mark, "{key}: another session's time zone");
    match tx.commit().await {
        Ok(()) => {
            ledger.committed += 1;
            Ok(())
        }
        Err(e) => {
            ledger.uncertain += 1;
            Err(e)
        }
    }
}

/// Rows of sysbench's table (oltp_read_write deletes and inserts one in each transaction).
const SYSBENCH_ROWS: u64 = 1000;

/// Runs pgbench (TPC-B-like, 4 clients, 5 s at a time, simple/extended/prepared in turn)
/// through `port` against `schema` until `stop`; returns the transactions it completed and
/// the runs a fault cut short (pgbench stops a client at its first error).
fn pgbench_load(port: u16, schema: &str, stop: &AtomicBool) -> (u64, u64) {
    let pg = common::pg();
    let (mut done, mut cut) = (0, 0);
    for mode in ["simple", "extended", "prepared"].iter().cycle() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let out = Command::new(pg.bin_path("pgbench"))
            .args(["-n", "-M", mode, "-c", "4", "-j", "4", "-T", "5"])
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-U", &pg.scram_user, &pg.db])
            .env("PGPASSWORD", &pg.password)
            .env("PGSSLMODE", "disable")
            .env("PGOPTIONS", format!("-c search_path={schema}"))
            .output()
            .expect("run pgbench");
        let stdout = String::from_utf8_lossy(&out.stdout);
        done += stdout
            .lines()
            .find_map(|l| l.strip_prefix("number of transactions actually processed:"))
            .and_then(|v| v.trim().split('/').next()?.trim().parse::<u64>().ok())
            .unwrap_or(0);
        cut += u64::from(!out.status.success());
    }
    (done, cut)
}

/// sysbench oltp_read_write through `port`, 4 threads, 5 s at a time, until `stop`; lost
/// statements (1317) and transactions (1213) are retried as sysbench retries deadlocks.
/// Returns the transactions it completed and the runs that stopped on an error.
fn sysbench_load(port: u16, stop: &AtomicBool) -> (u64, u64) {
    let (mut done, mut cut) = (0, 0);
    for ps in ["auto", "disable"].iter().cycle() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let ps = format!("--db-ps-mode={ps}");
        let out = sysbench(port, &[&ps, "--threads=4", "--time=5", "run"]);
        let text = String::from_utf8_lossy(&out.stdout);
        done += text
            .lines()
            .find(|l| l.trim_start().starts_with("transactions:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0);
        cut += u64::from(!out.status.success());
    }
    (done, cut)
}

/// Runs sysbench `oltp_read_write` with `args` on its one table, `sbtest1` (sysbench names its
/// tables itself; the other test binary using it, mysql_mux_real, never runs at the same time).
fn sysbench(port: u16, args: &[&str]) -> std::process::Output {
    let my = common::mariadb();
    Command::new("sysbench")
        .arg("oltp_read_write")
        .arg("--mysql-host=127.0.0.1")
        .arg(format!("--mysql-port={port}"))
        .arg(format!("--mysql-user={}", my.user))
        .arg(format!("--mysql-password={}", my.password))
        .arg(format!("--mysql-db={}", my.db))
        .arg("--tables=1")
        .arg(format!("--table-size={SYSBENCH_ROWS}"))
        .arg("--mysql-ignore-errors=1213,1205,1020,1317")
        .args(args)
        .output()
        .expect("run sysbench (scripts/setup installs it)")
}

/// Faults, in turn.
#[derive(Debug, Clone, Copy)]
enum Fault {
    TerminatePostgresBackends,
    KillMariadbConnections,
    RestartPostgres,
}

async fn inject(fault: Fault) {
    let (pg, my) = (common::pg(), common::mariadb());
    match fault {
        Fault::TerminatePostgresBackends => {
            let admin = common::pg_connect(&pg.config(&pg.superuser))
                .await
                .expect("direct superuser connection");
            admin
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
                    &[&pg.scram_user],
                )
                .await
                .expect("terminate");
        }
        Fault::KillMariadbConnections => {
            let mut root = mysql_async::Conn::new(my.opts(&my.root_user))
                .await
                .expect("MariaDB root");
            let ids: Vec<u64> = root
                .exec(
                    "SELECT id FROM information_schema.processlist WHERE user = ?",
                    (my.user.clone(),),
                )
                .await
                .expect("processlist");
            for id in ids {
                let _ = root.query_drop(format!("KILL CONNECTION {id}")).await;
            }
        }
        Fault::RestartPostgres => {
            tokio::task::spawn_blocking(common::restart_postgres)
                .await
                .expect("restart");
        }
    }
}

#[tokio::test]
async fn clients_come_and_go_under_faults_and_every_row_is_where_it_belongs() {
    let (pg, my) = (common::pg(), common::mariadb());
    let seconds = soak_seconds();
    let fault_every = Duration::from_secs((seconds / 12).clamp(3, 180));
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
        "4",
        "--log-level",
        "error",
    ]);
    let fds_at_start = m.open_fds();
    let table = common::unique_name("soak");
    let admin = common::pg_connect(&pg.config(&pg.scram_user))
        .await
        .expect("direct connection");
    admin
        .batch_execute(&format!("CREATE TABLE {table} (k text NOT NULL)"))
        .await
        .expect("create PostgreSQL table");
    let mut my_admin = mysql_async::Conn::new(my.opts(&my.user))
        .await
        .expect("direct MariaDB connection");
    my_admin
        .query_drop(format!(
            "CREATE TABLE {table} (k VARCHAR(16) NOT NULL) ENGINE=InnoDB"
        ))
        .await
        .expect("create MariaDB table");

    // pgbench's tables in a schema of their own, sysbench's table: set up directly.
    let schema = common::unique_name("soak_pgbench");
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("create schema");
    let init = Command::new(pg.bin_path("pgbench"))
        .args(["-i", "-q", "-s", "1", "-h", "127.0.0.1"])
        .args(["-p", &pg.port.to_string(), "-U", &pg.scram_user, &pg.db])
        .env("PGPASSWORD", &pg.password)
        .env("PGSSLMODE", "disable")
        .env("PGOPTIONS", format!("-c search_path={schema}"))
        .output()
        .expect("pgbench -i");
    assert!(init.status.success(), "pgbench -i: {init:?}");
    let _ = sysbench(my.port, &["cleanup"]);
    let prepared = sysbench(my.port, &["prepare"]);
    assert!(prepared.status.success(), "sysbench prepare: {prepared:?}");

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let pgbench = {
        let (stop, schema, port) = (stop.clone(), schema.clone(), m.port);
        tokio::task::spawn_blocking(move || pgbench_load(port, &schema, &stop))
    };
    let sysbench_run = {
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || sysbench_load(mysql_port, &stop))
    };
    let mut pg_workers = Vec::new();
    let mut my_workers = Vec::new();
    for me in 0..CLIENTS {
        pg_workers.push(tokio::spawn(pg_worker(
            m.port,
            table.clone(),
            me,
            stop.clone(),
            tally.clone(),
        )));
        my_workers.push(tokio::spawn(my_worker(
            mysql_port,
            table.clone(),
            me,
            stop.clone(),
            tally.clone(),
        )));
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let faults = [
        Fault::TerminatePostgresBackends,
        Fault::KillMariadbConnections,
        Fault::RestartPostgres,
    ];
    let mut injected = 0usize;
    let mut rss_warm = None;
    while Instant::now() + fault_every < deadline {
        tokio::time::sleep(fault_every).await;
        if rss_warm.is_none() {
            rss_warm = Some(m.rss_kib());
        }
        inject(faults[injected % faults.len()]).await;
        injected += 1;
    }
    tokio::time::sleep(deadline.saturating_duration_since(Instant::now())).await;
    stop.store(true, Ordering::Relaxed);
    let mut pg_ledgers = Vec::new();
    for w in pg_workers {
        pg_ledgers.push(w.await.expect("a PostgreSQL client found a wrong result"));
    }
    let mut my_ledgers = Vec::new();
    for w in my_workers {
        my_ledgers.push(w.await.expect("a MySQL client found a wrong result"));
    }
    let (pgbench_done, pgbench_cut) = pgbench.await.expect("pgbench load");
    let (sysbench_done, sysbench_cut) = sysbench_run.await.expect("sysbench load");

    // Every client's rows are all there: nothing lost, nothing of another's.
    let admin = common::pg_connect(&pg.config(&pg.scram_user))
        .await
        .expect("direct connection after");
    for (me, ledger) in pg_ledgers.iter().enumerate() {
        let n: i64 = admin
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE k = $1"),
                &[&format!("pg{me}")],
            )
            .await
            .expect("count")
            .get(0);
        assert!(ledger.admits(n as u64), "pg{me}: {n} rows, {ledger:?}");
    }
    let mut my_admin = mysql_async::Conn::new(my.opts(&my.user))
        .await
        .expect("direct MariaDB connection after");
    for (me, ledger) in my_ledgers.iter().enumerate() {
        let n: Option<u64> = my_admin
            .exec_first(
                format!("SELECT COUNT(*) FROM {table} WHERE k = ?"),
                (format!("my{me}"),),
            )
            .await
            .expect("count");
        let n = n.expect("a count");
        assert!(ledger.admits(n), "my{me}: {n} rows, {ledger:?}");
    }
    // No pgbench transaction was half applied: every balance agrees with the history.
    let sums = admin
        .query_one(
            &format!(
                "SELECT (SELECT sum(abalance) FROM {schema}.pgbench_accounts)::bigint, \
                        (SELECT sum(bbalance) FROM {schema}.pgbench_branches)::bigint, \
                        (SELECT sum(tbalance) FROM {schema}.pgbench_tellers)::bigint, \
                        (SELECT coalesce(sum(delta), 0) FROM {schema}.pgbench_history)::bigint"
            ),
            &[],
        )
        .await
        .expect("pgbench sums");
    let sums: [i64; 4] = [sums.get(0), sums.get(1), sums.get(2), sums.get(3)];
    assert!(
        sums.iter().all(|&v| v == sums[0]),
        "pgbench balances disagree: {sums:?}"
    );
    // sysbench deletes and inserts a row in each transaction: all rows are there.
    let rows: Option<u64> = my_admin
        .query_first("SELECT COUNT(*) FROM sbtest1")
        .await
        .expect("sysbench rows");
    assert_eq!(
        rows,
        Some(SYSBENCH_ROWS),
        "sysbench's table lost or gained rows"
    );
    let _ = sysbench(my.port, &["cleanup"]);
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .expect("drop schema");
    admin
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .expect("drop");
    my_admin
        .query_drop(format!("DROP TABLE {table}"))
        .await
        .expect("drop");

    // Flat: the clients are gone, and so are their descriptors and memory.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fds_at_end = m.open_fds();
    let rss_end = m.rss_kib();
    let rows: u64 = pg_ledgers
        .iter()
        .chain(&my_ledgers)
        .map(|l| l.committed)
        .sum();
    let steps = tally.steps.load(Ordering::Relaxed);
    let errors = tally.errors.load(Ordering::Relaxed);
    eprintln!(
        "soak: {seconds} s, {injected} faults, {steps} checked steps, {rows} rows committed, \
         {} connections, {errors} errors from faults, 0 wrong results; \
         pgbench {pgbench_done} transactions ({pgbench_cut} runs cut short), balances agree; \
         sysbench {sysbench_done} transactions ({sysbench_cut} runs cut short), rows intact; \
         fds {fds_at_start} -> {fds_at_end}, RSS {} -> {rss_end} KiB",
        tally.reconnects.load(Ordering::Relaxed),
        rss_warm.unwrap_or(0),
    );
    assert!(steps > 0 && injected > 0, "the soak did something");
    assert!(pgbench_done > 0 && sysbench_done > 0, "the benchmarks ran");
    assert!(
        fds_at_end <= fds_at_start + 2 * 8,
        "descriptors {fds_at_start} -> {fds_at_end}"
    );
    if let Some(warm) = rss_warm {
        assert!(
            rss_end <= warm + 32 * 1024,
            "RSS {warm} -> {rss_end} KiB after the warm-up"
        );
    }
    assert!(
        errors <= (injected as u64 + 1) * (2 * CLIENTS as u64) * 4,
        "{errors} errors for {injected} faults"
    );
}
