//! Soak: PostgreSQL and MariaDB clients that connect, work and leave through the `muxql`
//! binary for `MUXQL_SOAK_SECONDS` (default 20; `scripts/soak` runs an hour), while faults
//! are injected in turn: every PostgreSQL backend terminated, every MariaDB connection
//! killed, PostgreSQL restarted. Each client checks its own data and session after every
//! step: a wrong result fails the test at once; errors a fault causes are counted. At the end
//! every client's rows are all there, and muxql's memory and descriptors are back to flat.

mod common;
mod proc;

use std::process::{Command, Stdio};
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
        let mark = ledger.committed;
        if conn
            .query_drop(format!("SET @mark = {mark}"))
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
            match my_step(&mut conn, &table, &key, mark, &mut ledger).await {
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
    mark: u64,
    ledger: &mut Ledger,
) -> Result<(), mysql_async::Error> {
    let mut tx = conn
        .start_transaction(mysql_async::TxOpts::default())
        .await?;
    tx.exec_drop(format!("INSERT INTO {table} (k) VALUES (?)"), (key,))
        .await?;
    let row: Option<(u64, u64)> = tx
        .exec_first(
            format!("SELECT COUNT(*), @mark FROM {table} WHERE k = ?"),
            (key,),
        )
        .await?;
    let (count, seen_mark) = row.expect("a row");
    let inside = Ledger {
        committed: ledger.committed + 1,
        uncertain: ledger.uncertain,
    };
    assert!(inside.admits(count), "{key}: {count} rows seen, {inside:?}");
    assert_eq!(seen_mark, mark, "{key}: another session's variable");
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
            tokio::task::spawn_blocking(restart_postgres)
                .await
                .expect("restart");
        }
    }
}

/// Restarts the test PostgreSQL in fast mode (as the postgres OS user when run as root).
fn restart_postgres() {
    let pg = common::pg();
    let dir = common::dbs().dir.join("pg");
    let pg_ctl = pg.bin_path("pg_ctl");
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:\t0\t")))
        .unwrap_or(false);
    let mut cmd = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&pg_ctl);
        c
    } else {
        Command::new(&pg_ctl)
    };
    let status = cmd
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-l")
        .arg(dir.join("postgres.log"))
        .args(["-m", "fast", "-w", "-t", "30", "restart"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run pg_ctl");
    assert!(status.success(), "pg_ctl restart: {status}");
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

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
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
         fds {fds_at_start} -> {fds_at_end}, RSS {} -> {rss_end} KiB",
        tally.reconnects.load(Ordering::Relaxed),
        rss_warm.unwrap_or(0),
    );
    assert!(steps > 0 && injected > 0, "the soak did something");
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
