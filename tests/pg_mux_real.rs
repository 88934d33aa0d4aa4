//! muxql in front of a real PostgreSQL, driven by real clients: psql, pgbench, tokio-postgres
//! and a hand-rolled extended-protocol frontend (issue 5).
//!
//! Every test starts its own in-process muxql ([`Mux`]) on free ports and uses its own tables,
//! so the tests run in parallel against the one harness PostgreSQL.

mod common;

use common::server::{metric, Listeners, TestServer};

use std::collections::HashSet;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use muxql::mux::{ClientAuth, Config, PinPolicy, PoolMode, Protocol, Route, User};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Client, NoTls, Notification, SimpleQueryMessage};

/// Longest any bounded wait in these tests lasts.
const PATIENCE: Duration = Duration::from_secs(15);

/// muxql in front of the harness PostgreSQL, routing database `muxql` as the SCRAM user.
struct Mux {
    /// Port of the PostgreSQL listener on 127.0.0.1.
    port: u16,
    server: TestServer,
}

impl Mux {
    /// Starts muxql with a transaction-mode pool of `pool_size` and SCRAM client logins.
    fn start(pool_size: usize) -> Mux {
        Mux::start_with(pool_size, |_| {})
    }

    /// Starts muxql with a transaction-mode pool of `pool_size` and SCRAM client logins, then
    /// lets `tweak` change the engine configuration.
    fn start_with(pool_size: usize, tweak: impl FnOnce(&mut Config)) -> Mux {
        let pg = common::pg();
        let mut route = Route::new(Protocol::Postgres, &pg.db, pg.addr(), &pg.scram_user);
        route.upstream_password = pg.password.clone();
        route.pool_size = pool_size;
        route.pool_mode = PoolMode::Transaction;
        let mut engine = Config::default();
        engine.routes = vec![route];
        engine.users = vec![User::new(&pg.scram_user, &pg.password)];
        tweak(&mut engine);
        let server = TestServer::start(
            engine,
            Listeners {
                pg: true,
                mysql: false,
            },
        );
        Mux {
            port: server.pg_port.expect("PostgreSQL listener"),
            server,
        }
    }

    /// A tokio-postgres config for the SCRAM user through this muxql.
    fn config(&self) -> tokio_postgres::Config {
        let pg = common::pg();
        let mut c = tokio_postgres::Config::new();
        c.host("127.0.0.1")
            .port(self.port)
            .user(&pg.scram_user)
            .password(&pg.password)
            .dbname(&pg.db);
        c
    }

    /// Connects a tokio-postgres client through this muxql.
    async fn connect(&self) -> Client {
        connect(&self.config()).await
    }

    /// `psql` preset to log in through this muxql (`-X -q -At`, stop on the first error).
    fn psql(&self) -> Command {
        let pg = common::pg();
        let mut cmd = Command::new(pg.bin_path("psql"));
        cmd.args([
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
        ])
        .args([
            "-p",
            &self.port.to_string(),
            "-U",
            &pg.scram_user,
            "-d",
            &pg.db,
        ])
        .env("PGPASSWORD", &pg.password)
        .env_remove("PGOPTIONS");
        cmd
    }

    /// The body of `GET /metrics`.
    async fn metrics(&self) -> String {
        self.server.metrics_text().await
    }
}

/// Connects a tokio-postgres client with `cfg`; its connection runs on a spawned task.
async fn connect(cfg: &tokio_postgres::Config) -> Client {
    common::pg_connect(cfg)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
}

/// A superuser connection straight to PostgreSQL, bypassing muxql.
async fn admin() -> Client {
    let pg = common::pg();
    connect(&pg.config(&pg.superuser)).await
}

/// Polls `pg_stat_activity` (through `admin`) until a backend is running a query containing
/// `marker`; returns that backend's pid.
async fn wait_running(admin: &Client, marker: &str) -> i32 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let rows = admin
            .query(
                "SELECT pid FROM pg_stat_activity WHERE state = 'active' \
                 AND pid <> pg_backend_pid() AND strpos(query, $1) > 0",
                &[&marker],
            )
            .await
            .expect("query pg_stat_activity");
        if let Some(row) = rows.first() {
            return row.get(0);
        }
        assert!(Instant::now() < deadline, "no backend runs {marker:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs a simple query and returns its first row as text.
async fn first_row(client: &Client, sql: &str) -> Vec<Option<String>> {
    let msgs = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    msgs.iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("{sql}: no row"))
}

/// Runs a simple query and returns the first column of its first row as text.
async fn scalar(client: &Client, sql: &str) -> Option<String> {
    first_row(client, sql).await.swap_remove(0)
}

/// Runs a command to completion and returns its output, panicking with its stderr on failure.
fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The standard output of a successful command, trimmed.
fn stdout_of(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run_ok(cmd).stdout)
        .trim()
        .to_string()
}

#[test]
fn psql_runs_queries_transactions_and_copy_through_muxql() {
    let mux = Mux::start(2);
    let table = common::unique_name("psql_t");

    assert_eq!(stdout_of(mux.psql().args(["-c", "select 1"])), "1");
    assert_eq!(
        stdout_of(
            mux.psql()
                .args(["-c", "select 1 + 1"])
                .args(["-c", "select current_user"])
        ),
        format!("2\n{}", common::pg().scram_user)
    );

    // COPY FROM STDIN and TO STDOUT cross the proxy in both directions.
    let mut copy_in = mux
        .psql()
        .args(["-c", &format!("create table {table} (x int, t text)")])
        .args(["-c", &format!("copy {table} from stdin")])
        .args(["-c", &format!("select count(*), sum(x) from {table}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn psql");
    {
        use std::io::Write;
        let mut stdin = copy_in.stdin.take().expect("psql stdin");
        for i in 1..=1000 {
            writeln!(stdin, "{i}\trow {i}").expect("write COPY data");
        }
        writeln!(stdin, "\\.").expect("end COPY data");
    }
    let out = copy_in.wait_with_output().expect("psql COPY");
    assert!(
        out.status.success(),
        "COPY FROM STDIN: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1000|500500");
    let copied = stdout_of(mux.psql().args([
        "-c",
        &format!("copy (select x from {table} where x <= 3 order by x) to stdout"),
    ]));
    assert_eq!(copied, "1\n2\n3");

    // A script with a transaction, a variable and a meta-command, read from stdin.
    let mut script = mux
        .psql()
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn psql");
    {
        use std::io::Write;
        let mut stdin = script.stdin.take().expect("psql stdin");
        write!(
            stdin,
            "BEGIN;\n\
             INSERT INTO {table} VALUES (2000, 'in tx');\n\
             SELECT txid_current() AS xid \\gset\n\
             SELECT txid_current() = :xid;\n\
             COMMIT;\n\
             SELECT count(*) FROM {table} WHERE x = 2000;\n\
             \\dt {table}\n"
        )
        .expect("write script");
    }
    let out = script.wait_with_output().expect("psql script");
    assert!(
        out.status.success(),
        "script: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[..2], ["t", "1"], "script output: {stdout}");
    assert!(lines[2].contains(&table), "\\dt lists the table: {stdout}");

    // An error reaches psql as an error, and the next session is unaffected.
    let out = mux
        .psql()
        .args(["-c", "select 1/0"])
        .output()
        .expect("run psql");
    assert!(!out.status.success(), "division by zero must fail");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("division by zero"),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout_of(
            mux.psql()
                .args(["-c", &format!("drop table {table}")])
                .args(["-c", "select 'still fine'"])
        ),
        "still fine"
    );
}

/// The schema holding the pgbench tables (scale 1), initialised once per test binary directly
/// on PostgreSQL by the SCRAM user. pgbench has no schema option, so every run selects it with
/// `PGOPTIONS=-c search_path=...`, which muxql receives as startup options.
fn pgbench_schema() -> &'static str {
    static SCHEMA: OnceLock<String> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let pg = common::pg();
        let schema = common::unique_name("pgbench");
        run_ok(
            pg.psql(&pg.scram_user)
                .args(["-c", &format!("create schema {schema}")]),
        );
        run_ok(
            Command::new(pg.bin_path("pgbench"))
                .args(["-i", "-q", "-s", "1", "-h", &pg.host])
                .args(["-p", &pg.port.to_string(), "-U", &pg.scram_user, &pg.db])
                .env("PGPASSWORD", &pg.password)
                .env("PGOPTIONS", format!("-c search_path={schema}")),
        );
        schema
    })
}

/// Clients and transactions per client of every pgbench run.
const BENCH_CLIENTS: u64 = 200;
const BENCH_TRANSACTIONS: u64 = 20;

/// What pgbench runs.
#[derive(Debug, Clone, Copy)]
enum Workload {
    /// The built-in select-only script (`-S`).
    SelectOnly,
    /// The built-in TPC-B-like script.
    TpcB,
    /// [`PIPELINE_SCRIPT`]: each pipeline ends with a single Sync.
    Pipelined,
}

/// The pipelined pgbench script (needs the extended or prepared query mode): a TPC-B-like
/// transaction inside a pipeline, then a second pipeline.
const PIPELINE_SCRIPT: &str = "\\set aid random(1, 100000)
\\set tid random(1, 10)
\\set delta random(-5000, 5000)
\\startpipeline
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = 1;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime)
  VALUES (:tid, 1, :aid, :delta, CURRENT_TIMESTAMP);
END;
\\endpipeline
\\startpipeline
SELECT 1;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
\\endpipeline
";

/// Runs pgbench through `mux` with query mode `mode` (`simple`, `extended`, `prepared`) and
/// `workload` on `threads` threads; asserts that every transaction of every client was
/// processed and none failed.
fn pgbench(mux: &Mux, mode: &str, workload: Workload, threads: u64) {
    let pg = common::pg();
    let mut cmd = Command::new(pg.bin_path("pgbench"));
    cmd.args(["-n", "-M", mode, "-j", &threads.to_string()])
        .args(["-c", &BENCH_CLIENTS.to_string()])
        .args(["-t", &BENCH_TRANSACTIONS.to_string()])
        .args(["-h", "127.0.0.1", "-p", &mux.port.to_string()])
        .args(["-U", &pg.scram_user, &pg.db])
        .env("PGPASSWORD", &pg.password)
        .env("PGOPTIONS", format!("-c search_path={}", pgbench_schema()));
    let script = std::env::temp_dir().join(common::unique_name("pipeline") + ".sql");
    match workload {
        Workload::SelectOnly => {
            cmd.arg("-S");
        }
        Workload::TpcB => {}
        Workload::Pipelined => {
            std::fs::write(&script, PIPELINE_SCRIPT).expect("write pgbench script");
            cmd.arg("-f").arg(&script);
        }
    }
    let out = cmd.output().expect("run pgbench");
    let _ = std::fs::remove_file(&script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = format!(
        "pgbench -M {mode} {workload:?}: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");
    let field = |prefix: &str| -> &str {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in {report}"))
            .trim()
    };
    let expected = BENCH_CLIENTS * BENCH_TRANSACTIONS;
    assert_eq!(
        field("number of transactions actually processed:"),
        format!("{expected}/{expected}"),
        "{report}"
    );
    let failed = field("number of failed transactions:");
    assert!(failed.starts_with("0 "), "failed transactions: {report}");
}

/// Checks the TPC-B invariant on the pgbench tables, directly on PostgreSQL: every committed
/// transaction moved the same delta into an account, its teller, its branch and the history,
/// so the four sums agree (in one snapshot) unless some transaction was applied in part.
fn assert_tpcb_consistent() {
    let pg = common::pg();
    let s = pgbench_schema();
    let sums = stdout_of(pg.psql(&pg.scram_user).args([
        "-At",
        "-c",
        &format!(
            "select (select sum(abalance) from {s}.pgbench_accounts), \
             (select sum(tbalance) from {s}.pgbench_tellers), \
             (select sum(bbalance) from {s}.pgbench_branches), \
             (select coalesce(sum(delta), 0) from {s}.pgbench_history)"
        ),
    ]));
    let parts: Vec<&str> = sums.split('|').collect();
    assert_eq!(parts.len(), 4, "{sums}");
    assert!(
        parts.iter().all(|p| *p == parts[0]),
        "balances disagree: {sums}"
    );
}

#[test]
fn pgbench_simple_protocol() {
    let mux = Mux::start(8);
    pgbench(&mux, "simple", Workload::SelectOnly, 2);
    pgbench(&mux, "simple", Workload::TpcB, 2);
    assert_tpcb_consistent();
}

#[test]
fn pgbench_extended_protocol() {
    let mux = Mux::start(8);
    pgbench(&mux, "extended", Workload::SelectOnly, 2);
    pgbench(&mux, "extended", Workload::TpcB, 2);
    pgbench(&mux, "extended", Workload::Pipelined, 2);
    assert_tpcb_consistent();
}

#[test]
fn pgbench_prepared_statements() {
    let mux = Mux::start(8);
    pgbench(&mux, "prepared", Workload::SelectOnly, 2);
    // pgbench prepares each command with a blocking PQprepare the first time a client runs
    // it. Under transaction pooling a thread blocked there (its client waits for an upstream)
    // stalls the thread's other clients, which hold every upstream inside BEGIN..END: with
    // fewer threads than clients the TPC-B script deadlocks behind any pooler smaller than
    // the client count. One thread per client keeps the blocking call to its own client.
    pgbench(&mux, "prepared", Workload::TpcB, BENCH_CLIENTS);
    assert_tpcb_consistent();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_follow_clients_across_upstreams() {
    let mux = Mux::start(4);
    let stop = Arc::new(AtomicBool::new(false));

    // Clients that keep taking upstreams for short transactions, so workers keep moving.
    let mut holders = Vec::new();
    for _ in 0..3 {
        let (cfg, stop) = (mux.config(), stop.clone());
        holders.push(tokio::spawn(async move {
            let mut c = connect(&cfg).await;
            let mut rounds = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let tx = c.transaction().await.expect("begin");
                tx.execute("SELECT pg_sleep(0.002)", &[])
                    .await
                    .expect("sleep");
                tx.commit().await.expect("commit");
                rounds += 1;
            }
            rounds
        }));
    }

    let mut workers = Vec::new();
    for i in 0..16i32 {
        let cfg = mux.config();
        workers.push(tokio::spawn(async move {
            let mut c = connect(&cfg).await;
            // One statement text every worker shares, one of its own; both prepared once.
            let shared = c
                .prepare("SELECT $1::int * 2, pg_backend_pid()")
                .await
                .expect("prepare shared");
            let own = c
                .prepare(&format!("SELECT $1::int + {i}, 'worker {i}'::text"))
                .await
                .expect("prepare own");
            let mut pids = HashSet::new();
            for j in 0..50i32 {
                let row = c.query_one(&shared, &[&j]).await.expect("shared");
                assert_eq!(row.get::<_, i32>(0), 2 * j);
                pids.insert(row.get::<_, i32>(1));
                if j % 10 == 9 {
                    let tx = c.transaction().await.expect("begin");
                    let row = tx.query_one(&own, &[&j]).await.expect("own in tx");
                    assert_eq!(row.get::<_, i32>(0), i + j);
                    tx.commit().await.expect("commit");
                } else {
                    let row = c.query_one(&own, &[&j]).await.expect("own");
                    assert_eq!(row.get::<_, i32>(0), i + j);
                    assert_eq!(row.get::<_, String>(1), format!("worker {i}"));
                }
            }
            pids.len()
        }));
    }
    let mut most_upstreams = 0;
    for w in workers {
        most_upstreams = most_upstreams.max(w.await.expect("worker"));
    }
    stop.store(true, Ordering::Relaxed);
    for h in holders {
        assert!(h.await.expect("holder") > 0);
    }
    assert!(
        most_upstreams > 1,
        "no worker ever changed upstream: the test proves nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_cache_evictions_are_invisible() {
    // Room for three server-side statements per upstream, clients using ten each: muxql
    // keeps closing and re-preparing them, with requests pipelined and upstreams changing.
    let mux = Mux::start_with(2, |c| c.statement_cache_size = 3);
    let mut clients = Vec::new();
    for i in 0..6i32 {
        let cfg = mux.config();
        clients.push(tokio::spawn(async move {
            let c = Arc::new(connect(&cfg).await);
            let mut stmts = Vec::new();
            for k in 0..10 {
                let sql = format!("SELECT $1::int * {k} + {i}");
                stmts.push(c.prepare(&sql).await.expect("prepare"));
            }
            for round in 0..5i32 {
                let mut inflight = Vec::new();
                for (k, stmt) in stmts.iter().enumerate() {
                    let (c, stmt) = (c.clone(), stmt.clone());
                    inflight.push(tokio::spawn(async move {
                        let v: i32 = c.query_one(&stmt, &[&round]).await.expect("run").get(0);
                        (k as i32, v)
                    }));
                }
                for f in inflight {
                    let (k, v) = f.await.expect("request");
                    assert_eq!(v, round * k + i, "client {i}, statement {k}, round {round}");
                }
            }
        }));
    }
    for c in clients {
        c.await.expect("client");
    }
}

/// A minimal frontend that speaks the extended protocol by hand, for what drivers do not
/// expose: choosing statement names. Logs in under trust authentication.
struct RawClient {
    stream: TcpStream,
    buf: BytesMut,
}

impl RawClient {
    /// Connects to `port` and logs in as the SCRAM user (muxql must use trust logins).
    async fn connect(port: u16) -> RawClient {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect raw client");
        Self::login(stream).await
    }

    /// Like [`RawClient::connect`], with a small fixed receive buffer (no kernel autotuning):
    /// what muxql queues for a client that does not read stays in muxql.
    async fn connect_small_window(port: u16) -> RawClient {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(16 * 1024).expect("SO_RCVBUF");
        let stream = socket
            .connect(([127, 0, 0, 1], port).into())
            .await
            .expect("connect raw client");
        Self::login(stream).await
    }

    /// Connects to PostgreSQL itself as the trust user: the same conversation, directly.
    async fn connect_direct() -> RawClient {
        let pg = common::pg();
        let stream = TcpStream::connect(("127.0.0.1", pg.port))
            .await
            .expect("connect raw client to PostgreSQL");
        Self::login_as(stream, &pg.trust_user).await
    }

    async fn login(stream: TcpStream) -> RawClient {
        Self::login_as(stream, &common::pg().scram_user).await
    }

    async fn login_as(stream: TcpStream, user: &str) -> RawClient {
        let pg = common::pg();
        let mut raw = RawClient {
            stream,
            buf: BytesMut::new(),
        };
        let mut out = BytesMut::new();
        frontend::startup_message([("user", user), ("database", pg.db.as_str())], &mut out)
            .expect("encode startup");
        raw.send(out).await;
        for (tag, body) in raw.until_ready().await {
            match tag {
                b'R' => assert_eq!(&body[..], &[0, 0, 0, 0], "only trust logins"),
                b'E' => panic!("login failed: {}", error_text(&body)),
                _ => {}
            }
        }
        raw
    }

    /// Writes `bytes`.
    async fn send(&mut self, bytes: BytesMut) {
        self.stream.write_all(&bytes).await.expect("write");
    }

    /// Reads one message: its tag and body.
    async fn recv(&mut self) -> (u8, Bytes) {
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes(self.buf[1..5].try_into().expect("4 bytes")) as usize;
                if self.buf.len() > len {
                    let tag = self.buf[0];
                    let mut frame = self.buf.split_to(len + 1).freeze();
                    frame.advance(5);
                    return (tag, frame);
                }
            }
            let n = tokio::time::timeout(PATIENCE, self.stream.read_buf(&mut self.buf))
                .await
                .expect("server answered in time")
                .expect("read");
            assert!(n > 0, "server closed the connection");
        }
    }

    /// Reads messages up to and including ReadyForQuery.
    async fn until_ready(&mut self) -> Vec<(u8, Bytes)> {
        let mut msgs = Vec::new();
        loop {
            let (tag, body) = self.recv().await;
            msgs.push((tag, body));
            if tag == b'Z' {
                return msgs;
            }
        }
    }

    /// Parses statement `name` as `sql` (one Sync unit); panics on an error.
    async fn prepare(&mut self, name: &str, sql: &str) {
        let mut out = BytesMut::new();
        frontend::parse(name, sql, std::iter::empty(), &mut out).expect("encode parse");
        frontend::sync(&mut out);
        self.send(out).await;
        let tags = expect_no_error(self.until_ready().await);
        assert_eq!(tags, b"1Z", "Parse {name}");
    }

    /// Binds statement `name` to text parameters, executes it in one Sync unit, and returns
    /// the text of the single value of its single row.
    async fn execute(&mut self, name: &str, params: &[&str]) -> String {
        let mut out = BytesMut::new();
        frontend::bind(
            "",
            name,
            std::iter::empty(),
            params.iter(),
            |p, buf| {
                buf.put_slice(p.as_bytes());
                Ok(postgres_protocol::IsNull::No)
            },
            std::iter::empty(),
            &mut out,
        )
        .map_err(|_| "bind")
        .expect("encode bind");
        frontend::execute("", 0, &mut out).expect("encode execute");
        frontend::sync(&mut out);
        self.send(out).await;
        let msgs = self.until_ready().await;
        let row = msgs
            .iter()
            .find(|(t, _)| *t == b'D')
            .map(|(_, b)| single_value(b));
        expect_no_error(msgs);
        row.unwrap_or_else(|| panic!("no row from {name}"))
    }

    /// Describes statement `name` alone (no Parse in the unit, as pgJDBC does) and returns the
    /// number of parameters it takes.
    async fn describe_params(&mut self, name: &str) -> u16 {
        let mut out = BytesMut::new();
        frontend::describe(b'S', name, &mut out).expect("encode describe");
        frontend::sync(&mut out);
        self.send(out).await;
        let msgs = self.until_ready().await;
        let params = msgs
            .iter()
            .find(|(t, _)| *t == b't')
            .map(|(_, b)| u16::from_be_bytes([b[0], b[1]]));
        expect_no_error(msgs);
        params.unwrap_or_else(|| panic!("no ParameterDescription for {name}"))
    }

    /// Closes statement `name` (one Sync unit).
    async fn close(&mut self, name: &str) {
        let mut out = BytesMut::new();
        frontend::close(b'S', name, &mut out).expect("encode close");
        frontend::sync(&mut out);
        self.send(out).await;
        assert_eq!(expect_no_error(self.until_ready().await), b"3Z");
    }
}

/// The tags of `msgs`, panicking on an ErrorResponse.
fn expect_no_error(msgs: Vec<(u8, Bytes)>) -> Vec<u8> {
    for (tag, body) in &msgs {
        assert!(*tag != b'E', "server error: {}", error_text(body));
    }
    msgs.into_iter().map(|(t, _)| t).collect()
}

/// SQLSTATE and message of an ErrorResponse body.
fn error_text(body: &[u8]) -> String {
    body.split(|&b| b == 0)
        .filter(|f| matches!(f.first(), Some(b'C' | b'M')))
        .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
        .collect::<Vec<_>>()
        .join(": ")
}

/// The only value of a one-column DataRow, as text.
fn single_value(body: &[u8]) -> String {
    assert_eq!(u16::from_be_bytes([body[0], body[1]]), 1, "one column");
    let len = i32::from_be_bytes(body[2..6].try_into().expect("4 bytes"));
    let len = usize::try_from(len).expect("not NULL");
    String::from_utf8_lossy(&body[6..6 + len]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_statement_name_means_each_clients_own_sql() {
    let mux = Mux::start_with(4, |c| c.client_auth = ClientAuth::Trust);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let port = mux.port;
        tasks.push(tokio::spawn(async move {
            let mut c = RawClient::connect(port).await;
            c.prepare("stmt", &format!("SELECT $1::int + {i}")).await;
            for j in 0..10 {
                let got = c.execute("stmt", &[&j.to_string()]).await;
                assert_eq!(got, (i + j).to_string(), "client {i}, round {j}");
            }
            // Describe-only on whatever upstream comes next, then a redefinition.
            assert_eq!(c.describe_params("stmt").await, 1);
            c.close("stmt").await;
            c.prepare("stmt", &format!("SELECT $1::int * {i}, $2::text"))
                .await;
            assert_eq!(c.describe_params("stmt").await, 2);
            c.prepare("one", &format!("SELECT $1::int * {i}")).await;
            for j in 0..5 {
                let got = c.execute("one", &[&j.to_string()]).await;
                assert_eq!(got, (i * j).to_string(), "client {i}, redefined, round {j}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
}

/// The time zone client `i` asks for: distinct for every i < 24.
fn zone(i: usize) -> String {
    let sign = if i % 2 == 0 { '+' } else { '-' };
    format!("Etc/GMT{sign}{}", i / 2 + 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_settings_stay_with_their_client() {
    let mux = Mux::start(3);
    let mut tasks = Vec::new();
    for i in 0..20usize {
        let mut cfg = mux.config();
        let (tz, app, path) = (zone(i), format!("app_{i}"), format!("sp_{i}"));
        // A third of the clients set their values in the startup packet, a third with SET
        // in simple queries, a third with SET statements the driver prepares and executes.
        let how = i % 3;
        if how == 0 {
            cfg.options(format!("-c TimeZone={tz} -c search_path={path}"))
                .application_name(&app);
        }
        tasks.push(tokio::spawn(async move {
            let mut c = connect(&cfg).await;
            let sets = [
                format!("SET TimeZone = '{tz}'"),
                format!("SET application_name = '{app}'"),
                format!("SET search_path = {path}"),
            ];
            for set in &sets {
                match how {
                    1 => c.batch_execute(set).await,
                    2 => c.execute(set.as_str(), &[]).await.map(|_| ()),
                    _ => Ok(()),
                }
                .unwrap_or_else(|e| panic!("{set}: {e}"));
            }
            let show = c
                .prepare(
                    "SELECT current_setting('TimeZone'), current_setting('application_name'), \
                     current_setting('search_path')",
                )
                .await
                .expect("prepare");
            let mut path = path;
            for n in 0..100 {
                let row = c.query_one(&show, &[]).await.expect("show settings");
                let got: (String, String, String) = (row.get(0), row.get(1), row.get(2));
                assert_eq!(
                    got,
                    (tz.clone(), app.clone(), path.clone()),
                    "client {i}, query {n}"
                );
                match n % 25 {
                    // SET LOCAL ends with its transaction.
                    5 => {
                        let tx = c.transaction().await.expect("begin");
                        tx.batch_execute("SET LOCAL TimeZone = 'UTC'")
                            .await
                            .expect("set local");
                        let row = tx.query_one(&show, &[]).await.expect("show in tx");
                        assert_eq!(row.get::<_, String>(0), "UTC");
                        tx.commit().await.expect("commit");
                    }
                    // A SET in a rolled-back transaction is undone.
                    10 => {
                        let tx = c.transaction().await.expect("begin");
                        tx.batch_execute(
                            "SET application_name = 'rolled_back'; SET search_path = nowhere",
                        )
                        .await
                        .expect("set in tx");
                        tx.rollback().await.expect("rollback");
                    }
                    // A SET in a committed transaction sticks.
                    15 => {
                        path = format!("sp_{i}_{n}");
                        let tx = c.transaction().await.expect("begin");
                        tx.batch_execute(&format!("SET search_path = {path}"))
                            .await
                            .expect("set in tx");
                        tx.commit().await.expect("commit");
                    }
                    _ => {}
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_setting_from_prepared_set_is_really_applied() {
    // Every client sets the same search_path with a statement the driver prepares (Parse in
    // one Sync unit, Bind/Execute in the next), so the two units can land on different
    // upstreams, and every upstream that claims the value must really have it: muxql skips
    // replaying a value an upstream already has, so a wrong claim shows as a wrong setting.
    let mux = Mux::start(3);
    let path = common::unique_name("shared_sp");
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (cfg, path) = (mux.config(), path.clone());
        tasks.push(tokio::spawn(async move {
            let c = connect(&cfg).await;
            c.execute(format!("SET search_path = {path}").as_str(), &[])
                .await
                .expect("SET");
            let show = c
                .prepare("SELECT current_setting('search_path')")
                .await
                .expect("prepare");
            for n in 0..50 {
                let got: String = c.query_one(&show, &[]).await.expect("show").get(0);
                assert_eq!(got, path, "client {i}, query {n}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_startup_setting_is_refused_as_postgres_does() {
    let mux = Mux::start(2);
    let bogus = |mut cfg: tokio_postgres::Config| {
        cfg.options("-c TimeZone=Bogus/Zone");
        cfg
    };
    let pg = common::pg();
    let direct = bogus(pg.config(&pg.scram_user))
        .connect(NoTls)
        .await
        .err()
        .expect("PostgreSQL refuses an invalid startup setting");
    assert_eq!(direct.code(), Some(&SqlState::INVALID_PARAMETER_VALUE));

    // muxql only meets the value when it applies it upstream, after the login: the client
    // must then get PostgreSQL's error, not run its queries without the setting.
    let outcome = match bogus(mux.config()).connect(NoTls).await {
        Err(e) => Err(e),
        Ok((client, conn)) => {
            tokio::spawn(conn);
            client.simple_query("SHOW TimeZone").await.map(|rows| {
                rows.iter()
                    .find_map(|m| match m {
                        SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                        _ => None,
                    })
                    .unwrap_or_default()
            })
        }
    };
    let err = outcome.expect_err("a session without its startup setting");
    assert_eq!(
        err.code(),
        Some(&SqlState::INVALID_PARAMETER_VALUE),
        "{err}"
    );

    // Other clients are served as usual.
    let ok = mux.connect().await;
    assert_eq!(scalar(&ok, "SELECT 1").await.as_deref(), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_past_their_lifetime_are_replaced() {
    let mux = Mux::start_with(2, |c| c.server_lifetime_ms = 200);
    let client = mux.connect().await;
    // The upstream outlives its lifetime while serving this query, so it is closed when
    // released and the next query gets a new one.
    let old = first_row(&client, "SELECT pg_backend_pid(), pg_sleep(0.3)::text").await;
    let new = first_row(&client, "SELECT pg_backend_pid(), 1 + 1").await;
    assert_eq!(new[1].as_deref(), Some("2"));
    assert_ne!(old[0], new[0], "the upstream outlived its lifetime");
    let text = mux.metrics().await;
    assert!(metric(&text, "muxql_upstreams") <= 2.0, "{text}");
    assert_eq!(metric(&text, "muxql_upstreams_active"), 0.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_policy_refuses_session_state_with_transaction_semantics() {
    let mux = Mux::start_with(2, |c| c.pin_policy = PinPolicy::Reject);
    let mut c = mux.connect().await;
    let table = common::unique_name("refused");
    let err = c
        .batch_execute(&format!("CREATE TEMP TABLE {table} (x int)"))
        .await
        .expect_err("a temp table is refused");
    assert_eq!(err.code(), Some(&SqlState::FEATURE_NOT_SUPPORTED), "{err}");
    // Through the extended protocol the refusal comes when the statement is prepared.
    let err = c
        .execute("SELECT pg_advisory_lock(1)", &[])
        .await
        .expect_err("a session lock is refused");
    assert_eq!(err.code(), Some(&SqlState::FEATURE_NOT_SUPPORTED), "{err}");

    // Inside a transaction the refusal aborts it, as a server error would.
    let tx = c.transaction().await.expect("begin");
    tx.batch_execute("LISTEN refused_channel")
        .await
        .expect_err("LISTEN is refused");
    let err = tx.batch_execute("SELECT 1").await.expect_err("aborted");
    assert_eq!(
        err.code(),
        Some(&SqlState::IN_FAILED_SQL_TRANSACTION),
        "{err}"
    );
    tx.rollback().await.expect("rollback");
    assert_eq!(scalar(&c, "SELECT 'fine'").await.as_deref(), Some("fine"));
    let text = mux.metrics().await;
    assert_eq!(metric(&text, "muxql_clients_pinned"), 0.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_mode_keeps_one_upstream_and_cleans_it() {
    let mux = Mux::start_with(1, |c| c.routes[0].pool_mode = PoolMode::Session);
    let table = common::unique_name("session_tmp");
    let first = mux.connect().await;
    first
        .batch_execute(&format!(
            "CREATE TEMP TABLE {table} (x int); SET search_path = elsewhere"
        ))
        .await
        .expect("session state");
    let pid = scalar(&first, "SELECT pg_backend_pid()").await;
    for _ in 0..5 {
        assert_eq!(scalar(&first, "SELECT pg_backend_pid()").await, pid);
    }
    drop(first);
    let next = mux.connect().await;
    let row = first_row(
        &next,
        &format!(
            "SELECT pg_backend_pid()::text, to_regclass('pg_temp.{table}') IS NULL, \
             current_setting('search_path')"
        ),
    )
    .await;
    assert_eq!(row[0], pid, "pool of one: the same upstream, cleaned");
    assert_eq!(row[1].as_deref(), Some("t"), "temp table left behind");
    assert_eq!(
        row[2].as_deref(),
        Some("\"$user\", public"),
        "search_path left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_are_checked_like_postgres_does() {
    let mux = Mux::start(1);
    let mut wrong = mux.config();
    wrong.password("not the password");
    let err = wrong.connect(NoTls).await.err().expect("wrong password");
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err}");
    let mut nodb = mux.config();
    nodb.dbname("no_such_database");
    let err = nodb.connect(NoTls).await.err().expect("unknown database");
    assert_eq!(err.code(), Some(&SqlState::INVALID_CATALOG_NAME), "{err}");
    let ok = mux.connect().await;
    assert_eq!(scalar(&ok, "SELECT 1").await.as_deref(), Some("1"));
}

/// A key for session advisory locks that no other test (or test process) uses.
fn unique_lock_key() -> i64 {
    use std::sync::atomic::AtomicI64;
    static NEXT: AtomicI64 = AtomicI64::new(1);
    (i64::from(std::process::id()) << 20) | NEXT.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advisory_lock_pins_its_client() {
    let mux = Mux::start(2);
    let key = unique_lock_key();
    let owner = mux.connect().await;
    let other = mux.connect().await;
    let pid = scalar(&owner, "SELECT pg_backend_pid()").await;
    owner
        .query_one("SELECT pg_advisory_lock($1)", &[&key])
        .await
        .expect("lock");
    for round in 0..20 {
        let got: bool = other
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .await
            .expect("try lock")
            .get(0);
        assert!(
            !got,
            "round {round}: another client took a held session lock"
        );
        assert_eq!(
            scalar(&owner, "SELECT pg_backend_pid()").await,
            pid,
            "round {round}: the lock holder moved to another upstream"
        );
    }
    let unlocked: bool = owner
        .query_one("SELECT pg_advisory_unlock($1)", &[&key])
        .await
        .expect("unlock")
        .get(0);
    assert!(unlocked);
    let got: bool = other
        .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
        .await
        .expect("try lock")
        .get(0);
    assert!(got, "the released lock is free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temp_table_pins_its_client() {
    let mux = Mux::start(2);
    let table = common::unique_name("tmp");
    let owner = mux.connect().await;
    owner
        .batch_execute(&format!(
            "CREATE TEMP TABLE {table} (x int); INSERT INTO {table} VALUES (1)"
        ))
        .await
        .expect("create temp table");
    let probe = format!("SELECT to_regclass('{table}') IS NULL");
    for round in 0..20 {
        // A fresh client and a long-lived one, each in its own transaction, never see it.
        let others = [mux.connect().await, mux.connect().await];
        for other in &others {
            assert_eq!(
                scalar(other, &probe).await.as_deref(),
                Some("t"),
                "round {round}: another client sees the temp table"
            );
        }
        owner
            .batch_execute(&format!("INSERT INTO {table} VALUES ({round})"))
            .await
            .expect("owner still has its temp table");
    }
    assert_eq!(
        scalar(&owner, &format!("SELECT count(*) FROM {table}"))
            .await
            .as_deref(),
        Some("21")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_pins_and_receives_notifications() {
    let mux = Mux::start(2);
    let channel = common::unique_name("chan");
    let (listener, mut notes) = connect_listening(&mux.config()).await;
    listener
        .batch_execute(&format!("LISTEN {channel}"))
        .await
        .expect("listen");
    let sender = mux.connect().await;
    for n in 0..5 {
        // Traffic on the listener between notifications must not move it off its upstream.
        assert_eq!(scalar(&listener, "SELECT 1").await.as_deref(), Some("1"));
        sender
            .batch_execute(&format!("NOTIFY {channel}, 'note {n}'"))
            .await
            .expect("notify");
        let note = tokio::time::timeout(PATIENCE, notes.recv())
            .await
            .unwrap_or_else(|_| panic!("notification {n} never arrived"))
            .expect("listener connection open");
        assert_eq!(note.channel(), channel);
        assert_eq!(note.payload(), format!("note {n}"));
    }
}

/// Connects with `cfg` and forwards the notifications the connection receives to a channel.
async fn connect_listening(
    cfg: &tokio_postgres::Config,
) -> (Client, tokio::sync::mpsc::UnboundedReceiver<Notification>) {
    let (client, mut conn) = cfg.connect(NoTls).await.expect("connect");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(msg)) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
            if let AsyncMessage::Notification(n) = msg {
                if tx.send(n).is_err() {
                    break;
                }
            }
        }
    });
    (client, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_client_leaves_nothing_behind() {
    let mux = Mux::start(1);
    let table = common::unique_name("tmp");
    let key = unique_lock_key();
    let gone = mux.connect().await;
    gone.batch_execute(&format!(
        "CREATE TEMP TABLE {table} (x int); LISTEN {table}; PREPARE {table}_p AS SELECT 1; \
         SELECT pg_advisory_lock({key})"
    ))
    .await
    .expect("session state");
    let pid = scalar(&gone, "SELECT pg_backend_pid()").await;
    drop(gone);

    // Pool of one: the next client gets the same upstream once it has been cleaned.
    let next = mux.connect().await;
    let row = next
        .query_one(
            "SELECT pg_backend_pid()::text, to_regclass($1) IS NULL, \
             (SELECT count(*) FROM pg_listening_channels()), \
             (SELECT count(*) FROM pg_prepared_statements WHERE name = $2), \
             (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
              AND pid = pg_backend_pid())",
            &[&table, &format!("{table}_p")],
        )
        .await
        .expect("inspect session");
    assert_eq!(row.get::<_, String>(0), pid.expect("pid"), "same upstream");
    assert!(row.get::<_, bool>(1), "temp table left behind");
    assert_eq!(row.get::<_, i64>(2), 0, "LISTEN left behind");
    assert_eq!(row.get::<_, i64>(3), 0, "prepared statement left behind");
    assert_eq!(row.get::<_, i64>(4), 0, "advisory lock left behind");
}

/// How a client leaves in the middle of its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leave {
    /// Drops its client: the driver sends Terminate.
    Terminate,
    /// Its socket closes with nothing said.
    Vanish,
    /// Its socket closes after a statement failed (the transaction is aborted).
    VanishInFailedTransaction,
    /// Its socket closes while a query runs upstream.
    VanishMidQuery,
}

/// A client on a pool of one opens a transaction, inserts a row, changes settings, and leaves
/// as `how` says; the next client must find no transaction, no row and no setting of it.
async fn leaving_in_transaction_leaves_nothing(how: Leave) {
    let mux = Mux::start(1);
    let table = common::unique_name("left");
    let admin = admin().await;
    admin
        .batch_execute(&format!(
            "CREATE TABLE {table} (x int); GRANT ALL ON {table} TO PUBLIC"
        ))
        .await
        .expect("create table");

    let (client, conn) = mux.config().connect(NoTls).await.expect("connect");
    let conn = tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "BEGIN; INSERT INTO {table} VALUES (1); SET LOCAL statement_timeout = '1234s'; \
             SET application_name = 'leaver'; SET work_mem = '7MB'"
        ))
        .await
        .expect("open transaction");
    let pid = scalar(&client, "SELECT pg_backend_pid()").await;
    match how {
        Leave::Terminate => drop(client),
        Leave::Vanish => {
            conn.abort();
            let _ = conn.await;
        }
        Leave::VanishInFailedTransaction => {
            let err = client.simple_query("SELECT 1/0").await.expect_err("1/0");
            assert_eq!(err.code(), Some(&SqlState::DIVISION_BY_ZERO), "{err}");
            conn.abort();
            let _ = conn.await;
        }
        Leave::VanishMidQuery => {
            let marker = common::unique_name("midquery");
            let sql = format!("SELECT pg_sleep(2) /* {marker} */");
            let running = tokio::spawn(async move { client.simple_query(&sql).await.map(|_| ()) });
            wait_running(&admin, &marker).await;
            conn.abort();
            let _ = conn.await;
            assert!(running.await.expect("query task").is_err());
        }
    }

    let inspect = format!(
        "SELECT pg_backend_pid()::text, txid_current_if_assigned() IS NULL, \
         now() = statement_timestamp(), current_setting('statement_timeout'), \
         current_setting('application_name'), current_setting('work_mem'), \
         (SELECT count(*) FROM {table})"
    );
    // Simple queries: in the extended protocol, Bind and Execute stamp separate times.
    let pg = common::pg();
    let fresh = first_row(&connect(&pg.config(&pg.scram_user)).await, &inspect).await;
    let next = first_row(&mux.connect().await, &inspect).await;
    // An idle upstream is rolled back and reused; one still owing a response is closed. The
    // driver reports an error before the ReadyForQuery that follows it arrives, so after a
    // failed statement either may happen.
    let reused = match how {
        Leave::Terminate | Leave::Vanish => Some(true),
        Leave::VanishMidQuery => Some(false),
        Leave::VanishInFailedTransaction => None,
    };
    if let Some(reused) = reused {
        assert_eq!(next[0] == pid, reused, "upstream reuse");
    }
    let t = Some("t".to_string());
    assert_eq!(next[1], t, "a transaction id is still assigned");
    assert_eq!(next[2], t, "still inside the old transaction");
    for (i, what) in [(3, "SET LOCAL"), (4, "application_name"), (5, "work_mem")] {
        assert_eq!(next[i], fresh[i], "{what} leaked");
    }
    assert_eq!(next[6].as_deref(), Some("0"), "uncommitted row visible");
    admin
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .expect("drop table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_terminating_in_transaction_leaves_nothing_behind() {
    leaving_in_transaction_leaves_nothing(Leave::Terminate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_vanishing_in_transaction_leaves_nothing_behind() {
    leaving_in_transaction_leaves_nothing(Leave::Vanish).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_vanishing_in_failed_transaction_leaves_nothing_behind() {
    leaving_in_transaction_leaves_nothing(Leave::VanishInFailedTransaction).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_vanishing_mid_query_leaves_nothing_behind() {
    leaving_in_transaction_leaves_nothing(Leave::VanishMidQuery).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_vanishing_mid_copy_leaves_nothing_behind() {
    let mux = Mux::start_with(1, |c| {
        c.client_auth = ClientAuth::Trust;
        c.wait_timeout_ms = 10_000;
    });
    let table = common::unique_name("copy_left");
    let admin = admin().await;
    admin
        .batch_execute(&format!(
            "CREATE TABLE {table} (x int); GRANT ALL ON {table} TO PUBLIC"
        ))
        .await
        .expect("create table");

    let mut raw = RawClient::connect(mux.port).await;
    let mut out = BytesMut::new();
    frontend::query(&format!("COPY {table} FROM STDIN"), &mut out).expect("encode query");
    raw.send(out).await;
    let (tag, _) = raw.recv().await;
    assert_eq!(tag, b'G', "CopyInResponse");
    let mut out = BytesMut::new();
    frontend::CopyData::new(&b"1\n2\n3\n"[..])
        .expect("copy data")
        .write(&mut out);
    raw.send(out).await;
    drop(raw);

    // Pool of one: the next client must not be served by an upstream still in COPY.
    let next = mux.connect().await;
    let row = first_row(
        &next,
        &format!("SELECT txid_current_if_assigned() IS NULL, (SELECT count(*) FROM {table}), 'ok'"),
    )
    .await;
    assert_eq!(row, [Some("t".into()), Some("0".into()), Some("ok".into())]);
    admin
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .expect("drop table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_queries_with_errors_get_their_own_answers() {
    let mux = Mux::start(2);
    let mut clients = Vec::new();
    for i in 0..8i32 {
        let cfg = mux.config();
        clients.push(tokio::spawn(async move {
            let c = Arc::new(connect(&cfg).await);
            let stmt = c.prepare("SELECT 1000 / $1::int").await.expect("prepare");
            for round in 0..10 {
                // Ten requests in flight at once on one connection, some of them failing.
                let mut inflight = Vec::new();
                for j in 0..10i32 {
                    let (c, stmt) = (c.clone(), stmt.clone());
                    let d = (i + j + round) % 4;
                    inflight.push(tokio::spawn(async move {
                        if j % 3 == 0 {
                            let sql = format!("SELECT 1000 / {d}");
                            (d, scalar_result(&c, &sql).await)
                        } else {
                            let r = c.query_one(&stmt, &[&d]).await;
                            (d, r.map(|row| row.get::<_, i32>(0).to_string()))
                        }
                    }));
                }
                for f in inflight {
                    match f.await.expect("request") {
                        (0, Err(e)) => {
                            assert_eq!(e.code(), Some(&SqlState::DIVISION_BY_ZERO), "{e}")
                        }
                        (d, Ok(v)) if d != 0 => assert_eq!(v, (1000 / d).to_string()),
                        (d, r) => panic!("client {i}: 1000 / {d} gave {r:?}"),
                    }
                }
            }
        }));
    }
    for c in clients {
        c.await.expect("client");
    }
}

/// Runs a simple query returning one value; its text, or the error.
async fn scalar_result(client: &Client, sql: &str) -> Result<String, tokio_postgres::Error> {
    let msgs = client.simple_query(sql).await?;
    Ok(msgs
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{sql}: no value")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_result_streams_while_others_work() {
    let mux = Mux::start(2);
    let big = mux.connect().await;
    let stop = Arc::new(AtomicBool::new(false));
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let small = {
        let (cfg, stop) = (mux.config(), stop.clone());
        tokio::spawn(async move {
            let c = connect(&cfg).await;
            assert_eq!(scalar(&c, "SELECT 42").await.as_deref(), Some("42"));
            let _ = started_tx.send(());
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                assert_eq!(scalar(&c, "SELECT 42").await.as_deref(), Some("42"));
                n += 1;
            }
            n
        })
    };
    started.await.expect("small client started");
    // About 24 MB of rows, each carrying its own number, with a pause half-way through
    // during which the other client must get answers.
    let rows = big
        .query(
            "SELECT g, repeat(md5(g::text), 25), \
             CASE WHEN g = 15000 THEN pg_sleep(0.5)::text END \
             FROM generate_series(1, 30000) g",
            &[],
        )
        .await
        .expect("large query");
    stop.store(true, Ordering::Relaxed);
    assert_eq!(rows.len(), 30000);
    for (i, row) in rows.iter().enumerate() {
        let g: i32 = row.get(0);
        assert_eq!(g as usize, i + 1);
        assert_eq!(row.get::<_, &str>(1).len(), 800);
    }
    assert!(small.await.expect("small client") > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_the_running_query() {
    let mux = Mux::start(2);
    let admin = admin().await;
    let client = Arc::new(mux.connect().await);
    let marker = common::unique_name("cancel");
    let running = {
        let (client, sql) = (
            client.clone(),
            format!("SELECT pg_sleep(10) /* {marker} */"),
        );
        tokio::spawn(async move { client.simple_query(&sql).await })
    };
    wait_running(&admin, &marker).await;
    let sent = Instant::now();
    client
        .cancel_token()
        .cancel_query(NoTls)
        .await
        .expect("send cancel to muxql");
    let err = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the query ends after the cancel")
        .expect("query task")
        .expect_err("a cancelled query fails");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err}");
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "cancel took {:?}",
        sent.elapsed()
    );
    assert_eq!(
        scalar(&client, "SELECT 'after'").await.as_deref(),
        Some("after")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_cancel_does_not_touch_the_next_client() {
    let mux = Mux::start(1);
    let admin = admin().await;
    let early = mux.connect().await;
    let early_pid = scalar(&early, "SELECT pg_backend_pid()").await;

    // Pool of one: the next client's query runs on the upstream the early client used.
    let next = mux.connect().await;
    let marker = common::unique_name("late_cancel");
    let sql = format!("SELECT pg_sleep(1) /* {marker} */");
    let running = tokio::spawn(async move {
        let pid = scalar(&next, "SELECT pg_backend_pid()").await;
        let slept = next.simple_query(&sql).await.map(|_| ());
        (pid, slept)
    });
    wait_running(&admin, &marker).await;
    early
        .cancel_token()
        .cancel_query(NoTls)
        .await
        .expect("send cancel to muxql");
    let (pid, slept) = running.await.expect("query task");
    assert_eq!(pid, early_pid, "both clients used the only upstream");
    slept.expect("a cancel for a finished query must not cancel another client's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_upstream_fails_only_its_client() {
    const POOL: usize = 3;
    let mux = Mux::start(POOL);
    let admin = admin().await;

    let mut victim = mux.connect().await;
    let tx = victim.transaction().await.expect("begin");
    let pid: i32 = tx
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);

    // Bystanders keep working through the termination.
    let stop = Arc::new(AtomicBool::new(false));
    let mut bystanders = Vec::new();
    for _ in 0..4 {
        let (cfg, stop) = (mux.config(), stop.clone());
        bystanders.push(tokio::spawn(async move {
            let c = connect(&cfg).await;
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) || n < 20 {
                assert_eq!(scalar(&c, "SELECT 1").await.as_deref(), Some("1"));
                n += 1;
            }
            n
        }));
    }
    let killed: bool = admin
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .expect("terminate")
        .get(0);
    assert!(killed);
    assert!(
        tx.query_one("SELECT 1", &[]).await.is_err(),
        "the client of a terminated upstream must get an error"
    );
    drop(tx);
    stop.store(true, Ordering::Relaxed);
    for b in bystanders {
        assert!(b.await.expect("bystander") >= 20);
    }

    // The pool refills: POOL transactions at once, none on the terminated backend.
    let mut clients = Vec::new();
    for _ in 0..POOL {
        clients.push(mux.connect().await);
    }
    let mut txs = Vec::new();
    for c in &mut clients {
        txs.push(c.transaction().await.expect("begin"));
    }
    let mut pids = HashSet::new();
    for tx in &txs {
        let p: i32 = tx
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .expect("pid")
            .get(0);
        pids.insert(p);
    }
    assert_eq!(
        pids.len(),
        POOL,
        "{POOL} transactions need {POOL} upstreams"
    );
    assert!(!pids.contains(&pid), "the terminated backend is gone");
    for tx in txs {
        tx.commit().await.expect("commit");
    }
    let text = mux.metrics().await;
    assert!(metric(&text, "muxql_upstreams_discarded_total") >= 1.0);
    assert!(metric(&text, "muxql_upstreams") <= POOL as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_many_clients_over_few_upstreams() {
    const POOL: usize = 2;
    const CLIENTS: usize = 20;
    let mux = Mux::start(POOL);
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(Arc::new(mux.connect().await));
    }
    let mut tasks = Vec::new();
    for c in &clients {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..5 {
                let row = c.query_one("SELECT $1::int", &[&n]).await.expect("query");
                assert_eq!(row.get::<_, i32>(0), n);
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
    clients[0]
        .batch_execute("CREATE TEMP TABLE pinned_by_metrics_test (x int)")
        .await
        .expect("pin");

    let text = mux.metrics().await;
    let peak_clients = metric(&text, "muxql_peak_clients");
    let peak_upstreams = metric(&text, "muxql_peak_upstreams");
    assert_eq!(metric(&text, "muxql_clients"), CLIENTS as f64);
    assert!(peak_clients >= CLIENTS as f64, "{text}");
    assert!((1.0..=POOL as f64).contains(&peak_upstreams), "{text}");
    assert!(peak_clients > peak_upstreams);
    assert!(metric(&text, "muxql_upstreams") <= POOL as f64);
    assert!(metric(&text, "muxql_transactions_total") >= (CLIENTS * 5) as f64);
    assert!(metric(&text, "muxql_queries_total") >= (CLIENTS * 5) as f64);
    assert_eq!(metric(&text, "muxql_clients_pinned"), 1.0);
    assert!(metric(&text, "muxql_pins_total") >= 1.0);

    drop(clients);
    let deadline = Instant::now() + PATIENCE;
    while metric(&mux.metrics().await, "muxql_clients") != 0.0 {
        assert!(Instant::now() < deadline, "clients never left the metrics");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Cross-client pipelining against the real server: autocommit requests of many clients queue
/// behind each other on two upstreams, and each client sees only its own answers, errors and
/// settings, while transactions in between never let a stranger's statement in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_requests_get_their_own_answers_and_never_join_a_transaction() {
    const CLIENTS: i32 = 24;
    const ROUNDS: i32 = 60;
    let mux = Mux::start(2);
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let cfg = mux.config();
        tasks.push(tokio::spawn(async move {
            let mut c = connect(&cfg).await;
            for round in 0..ROUNDS {
                let n = i * 1000 + round;
                if i % 6 == 0 {
                    // A transaction with a setting only it may see.
                    let tx = c.transaction().await.expect("begin");
                    let mine = format!("tx{n}");
                    tx.batch_execute(&format!("SET LOCAL application_name = '{mine}'"))
                        .await
                        .expect("set local");
                    let seen: String = tx
                        .query_one("SELECT current_setting('application_name')", &[])
                        .await
                        .expect("setting")
                        .get(0);
                    assert_eq!(seen, mine);
                    tx.commit().await.expect("commit");
                    continue;
                }
                let app = scalar(&c, "SELECT current_setting('application_name')").await;
                assert!(
                    !app.as_deref().unwrap_or_default().starts_with("tx"),
                    "client {i} ran inside another client's transaction ({app:?})"
                );
                let got = scalar_result(&c, &format!("SELECT {n}"))
                    .await
                    .expect("simple");
                assert_eq!(got, n.to_string());
                let row = c
                    .query_one("SELECT $1::int + 1", &[&n])
                    .await
                    .expect("extended");
                assert_eq!(row.get::<_, i32>(0), n + 1);
                if round % 10 == 0 {
                    let err = c.simple_query("SELECT 1 / 0").await.expect_err("1 / 0");
                    assert_eq!(err.code(), Some(&SqlState::DIVISION_BY_ZERO));
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("client");
    }
    let text = mux.metrics().await;
    assert!(metric(&text, "muxql_pipelined_total") > 0.0, "{text}");
    assert_eq!(metric(&text, "muxql_upstreams_discarded_total"), 0.0);
}

/// A client flooding requests while it waits for an upstream is held back by TCP instead of
/// buffered in muxql: muxql stops reading from it once a little input waits, and serves it and
/// everyone else normally once the upstream frees up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_waiting_client_is_held_back_not_buffered() {
    const FLOOD: usize = 64 << 20;
    let mux = Mux::start_with(1, |c| c.client_auth = ClientAuth::Trust);
    let mut holder = mux.connect().await;
    let tx = holder.transaction().await.expect("begin");
    tx.batch_execute("SELECT 1")
        .await
        .expect("hold the only upstream");

    let mut flooder = RawClient::connect(mux.port).await;
    let mut chunk = BytesMut::new();
    let sql = format!("SELECT 1 /* {} */", "x".repeat(60 << 10));
    frontend::query(&sql, &mut chunk).expect("encode query");
    let mut written = 0;
    while written < FLOOD {
        let write = flooder.stream.write_all(&chunk);
        match tokio::time::timeout(Duration::from_secs(2), write).await {
            Ok(r) => r.expect("write"),
            Err(_) => break,
        }
        written += chunk.len();
    }
    assert!(
        written < FLOOD / 2,
        "muxql took {written} bytes from a client that waits for an upstream"
    );

    tx.commit().await.expect("commit");
    drop(flooder);
    let other = mux.connect().await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout(PATIENCE, scalar_result(&other, "SELECT 42")).await {
            Ok(Ok(v)) => {
                assert_eq!(v, "42");
                break;
            }
            r => assert!(
                Instant::now() < deadline,
                "no answer after the flood: {r:?}"
            ),
        }
    }
}

/// A client that stops reading a large result holds back its own query, not muxql's memory:
/// muxql stops reading from the upstream, so the server waits to write (ClientWrite), and the
/// rows arrive complete once the client reads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_not_reading_its_result_holds_back_the_server() {
    const ROWS: usize = 256;
    let mux = Mux::start_with(1, |c| c.client_auth = ClientAuth::Trust);
    let admin = admin().await;
    let marker = format!("slow_reader_{}", common::unique_name("q").replace('-', "_"));
    let mut raw = RawClient::connect(mux.port).await;
    let mut out = BytesMut::new();
    let sql = format!("SELECT repeat('x', 1048576) AS {marker} FROM generate_series(1, {ROWS})");
    frontend::query(&sql, &mut out).expect("encode query");
    raw.send(out).await;
    let pid = wait_running(&admin, &marker).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let row = admin
        .query_one(
            "SELECT state, wait_event FROM pg_stat_activity WHERE pid = $1",
            &[&pid],
        )
        .await
        .expect("backend state");
    let (state, wait): (String, Option<String>) = (row.get(0), row.get(1));
    assert_eq!(
        (state.as_str(), wait.as_deref()),
        ("active", Some("ClientWrite")),
        "256 MiB must not be buffered in muxql for a client that does not read"
    );
    let rows = raw
        .until_ready()
        .await
        .iter()
        .filter(|(tag, _)| *tag == b'D')
        .count();
    assert_eq!(rows, ROWS);
}

/// A client muxql closes but that does not read what is queued for it is let go after a short
/// grace (5 s): its socket is closed with the rest of the queue, the final error included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_client_that_does_not_read_is_let_go() {
    let mux = Mux::start_with(1, |c| c.client_auth = ClientAuth::Trust);
    let admin = admin().await;
    let marker = format!("unread_{}", common::unique_name("q").replace('-', "_"));
    let mut raw = RawClient::connect_small_window(mux.port).await;
    let mut out = BytesMut::new();
    let sql = format!("SELECT repeat('x', 1048576) AS {marker} FROM generate_series(1, 256)");
    frontend::query(&sql, &mut out).expect("encode query");
    raw.send(out).await;
    let pid = wait_running(&admin, &marker).await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let wait: Option<String> = admin
            .query_one(
                "SELECT wait_event FROM pg_stat_activity WHERE pid = $1",
                &[&pid],
            )
            .await
            .expect("backend state")
            .get(0);
        if wait.as_deref() == Some("ClientWrite") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "muxql never stopped reading the result"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A message clients may not send: muxql fails the client and closes it after the queue.
    raw.send(BytesMut::from(&b"Z\0\0\0\x04"[..])).await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    let mut received = Vec::new();
    let read = tokio::time::timeout(PATIENCE, raw.stream.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "muxql still holds the connection open");
    let fatal = received.windows(5).any(|w| w == b"08P01");
    assert!(
        !fatal,
        "the queue was delivered in full: the connection was kept"
    );
}

/// The unnamed statement one client parsed stays its own: another client landing on the same
/// upstream and binding the unnamed statement without parsing gets PostgreSQL's "does not
/// exist" (26000), never the first client's query; the first client still binds its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_clients_unnamed_statement_cannot_be_bound() {
    let mux = Mux::start_with(1, |c| c.client_auth = ClientAuth::Trust);
    let mut owner = RawClient::connect(mux.port).await;
    let mut stranger = RawClient::connect(mux.port).await;
    owner.prepare("", "SELECT 'owner secret'::text").await;
    let mut out = BytesMut::new();
    frontend::bind(
        "",
        "",
        std::iter::empty(),
        std::iter::empty::<&str>(),
        |_, _| Ok(postgres_protocol::IsNull::No),
        std::iter::empty(),
        &mut out,
    )
    .map_err(|_| "bind")
    .expect("encode bind");
    frontend::execute("", 0, &mut out).expect("encode execute");
    frontend::sync(&mut out);
    stranger.send(out).await;
    let msgs = stranger.until_ready().await;
    let errors: Vec<String> = msgs
        .iter()
        .filter(|(t, _)| *t == b'E')
        .map(|(_, b)| error_text(b))
        .collect();
    assert!(
        msgs.iter().all(|(t, _)| *t != b'D'),
        "the stranger ran the owner's query"
    );
    assert!(errors.iter().any(|e| e.contains("26000")), "{errors:?}");
    owner.prepare("", "SELECT 'own again'::text").await;
    assert_eq!(owner.execute("", &[]).await, "own again");
}

/// `set_config(..., false)` changes a session setting to a value muxql cannot replay, so it pins
/// its client: the setting stays with that client and never reaches another one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_set_config_pins_and_stays_with_its_client() {
    let mux = Mux::start(2);
    let setter = mux.connect().await;
    let other = mux.connect().await;
    let default = scalar(&other, "SHOW search_path").await;
    setter
        .batch_execute("SELECT set_config('search_path', 'pg_catalog', false)")
        .await
        .expect("set_config");
    for _ in 0..20 {
        assert_eq!(scalar(&other, "SHOW search_path").await, default);
        assert_eq!(
            scalar(&setter, "SHOW search_path").await.as_deref(),
            Some("pg_catalog")
        );
    }
    assert_eq!(metric(&mux.metrics().await, "muxql_clients_pinned"), 1.0);
}

/// Quick autocommit queries never queue behind a slow one: with one upstream busy in a
/// 2-second query, the quick queries of other clients go through the other upstream, each
/// answered long before the slow one ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_queries_do_not_queue_behind_a_slow_one() {
    let mux = Mux::start(2);
    let slow = mux.connect().await;
    let sleeper = tokio::spawn(async move {
        slow.simple_query("SELECT pg_sleep(2)")
            .await
            .expect("sleep");
    });
    let admin = admin().await;
    wait_running(&admin, "pg_sleep(2)").await;
    let mut quick = Vec::new();
    for i in 0..4i32 {
        let cfg = mux.config();
        quick.push(tokio::spawn(async move {
            let c = connect(&cfg).await;
            let mut worst = Duration::ZERO;
            for j in 0..50i32 {
                let started = Instant::now();
                let row = c.query_one("SELECT $1::int", &[&(i * 100 + j)]).await;
                assert_eq!(row.expect("quick").get::<_, i32>(0), i * 100 + j);
                worst = worst.max(started.elapsed());
            }
            worst
        }));
    }
    for q in quick {
        let worst = q.await.expect("quick client");
        assert!(
            worst < Duration::from_millis(1000),
            "a quick query waited {worst:?}"
        );
    }
    sleeper.await.expect("sleeper");
}

/// One unit's answer as tags, with each error's SQLSTATE and each ReadyForQuery's status:
/// `["1", "E:42P05", "Z:I"]`.
async fn answer_of(c: &mut RawClient, unit: BytesMut) -> Vec<String> {
    c.send(unit).await;
    c.until_ready()
        .await
        .into_iter()
        .map(|(tag, body)| match tag {
            b'E' => format!("E:{}", error_text(&body).split(':').next().unwrap_or("")),
            b'Z' => format!("Z:{}", char::from(body[0])),
            _ => char::from(tag).to_string(),
        })
        .collect()
}

/// What a client sees of a Parse reusing its statement name and of a pinning statement
/// prepared under `--pin-policy reject`, outside and inside a transaction block.
async fn statement_refusals(mut c: RawClient) -> Vec<Vec<String>> {
    let parse = |name: &str, sql: &str| {
        let mut out = BytesMut::new();
        frontend::parse(name, sql, std::iter::empty(), &mut out).expect("encode parse");
        frontend::sync(&mut out);
        out
    };
    let query = |sql: &str| {
        let mut out = BytesMut::new();
        frontend::query(sql, &mut out).expect("encode query");
        out
    };
    let mut seen = Vec::new();
    seen.push(answer_of(&mut c, parse("s1", "SELECT 1")).await);
    seen.push(answer_of(&mut c, parse("s1", "SELECT 2")).await);
    seen.push(answer_of(&mut c, query("BEGIN")).await);
    seen.push(answer_of(&mut c, parse("s1", "SELECT 3")).await);
    seen.push(answer_of(&mut c, query("SELECT 1")).await);
    seen.push(answer_of(&mut c, query("ROLLBACK")).await);
    assert_eq!(c.execute("s1", &[]).await, "1", "s1 kept its statement");
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_statement_name_fails_as_it_does_directly() {
    let mux = Mux::start_with(2, |c| c.client_auth = ClientAuth::Trust);
    let direct = statement_refusals(RawClient::connect_direct().await).await;
    let through = statement_refusals(RawClient::connect(mux.port).await).await;
    assert_eq!(direct[1], ["E:42P05", "Z:I"], "{direct:?}");
    assert_eq!(direct[3], ["E:42P05", "Z:E"], "{direct:?}");
    assert_eq!(through, direct);
}

/// Under `--pin-policy reject` a pinning statement is refused when it is prepared, with the
/// effects of a server error: the unit skips to Sync and a transaction block aborts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_policy_refuses_a_prepared_pinning_statement_at_parse() {
    let mux = Mux::start_with(2, |c| {
        c.client_auth = ClientAuth::Trust;
        c.pin_policy = PinPolicy::Reject;
    });
    let mut c = RawClient::connect(mux.port).await;
    let mut unit = BytesMut::new();
    frontend::parse(
        "lock",
        "SELECT pg_advisory_lock(1)",
        std::iter::empty(),
        &mut unit,
    )
    .expect("encode parse");
    frontend::describe(b'S', "lock", &mut unit).expect("encode describe");
    frontend::sync(&mut unit);
    assert_eq!(answer_of(&mut c, unit.clone()).await, ["E:0A000", "Z:I"]);
    let mut begin = BytesMut::new();
    frontend::query("BEGIN", &mut begin).expect("encode query");
    assert_eq!(answer_of(&mut c, begin).await, ["C", "Z:T"]);
    assert_eq!(answer_of(&mut c, unit).await, ["E:0A000", "Z:E"]);
    let mut rollback = BytesMut::new();
    frontend::query("ROLLBACK", &mut rollback).expect("encode query");
    assert_eq!(answer_of(&mut c, rollback).await, ["C", "Z:I"]);
    let text = mux.metrics().await;
    assert_eq!(metric(&text, "muxql_clients_pinned"), 0.0, "{text}");
}

/// What a client sees of `DEALLOCATE name` and `DEALLOCATE ALL` of statements it prepared
/// through the protocol, with the simple and the extended protocol.
async fn deallocations(mut c: RawClient) -> Vec<Vec<String>> {
    let query = |sql: &str| {
        let mut out = BytesMut::new();
        frontend::query(sql, &mut out).expect("encode query");
        out
    };
    let extended = |sql: &str| {
        let mut out = BytesMut::new();
        frontend::parse("", sql, std::iter::empty(), &mut out).expect("encode parse");
        bind_unit("", &mut out);
        frontend::execute("", 0, &mut out).expect("encode execute");
        frontend::sync(&mut out);
        out
    };
    let bind_s = |name: &str| {
        let mut out = BytesMut::new();
        bind_unit(name, &mut out);
        frontend::execute("", 0, &mut out).expect("encode execute");
        frontend::sync(&mut out);
        out
    };
    let mut seen = Vec::new();
    c.prepare("s1", "SELECT 1").await;
    c.prepare("S2", "SELECT 2").await;
    c.prepare("s3", "SELECT 3").await;
    seen.push(answer_of(&mut c, query("DEALLOCATE s1")).await);
    seen.push(answer_of(&mut c, bind_s("s1")).await);
    seen.push(answer_of(&mut c, extended("DEALLOCATE PREPARE \"S2\"")).await);
    seen.push(answer_of(&mut c, bind_s("S2")).await);
    seen.push(answer_of(&mut c, query("DEALLOCATE ALL")).await);
    seen.push(answer_of(&mut c, bind_s("s3")).await);
    seen.push(answer_of(&mut c, query("DEALLOCATE nothing")).await);
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deallocate_answers_as_it_does_directly() {
    let mux = Mux::start_with(2, |c| c.client_auth = ClientAuth::Trust);
    let direct = deallocations(RawClient::connect_direct().await).await;
    assert_eq!(direct[0], ["C", "Z:I"], "{direct:?}");
    assert_eq!(direct[1], ["E:26000", "Z:I"], "{direct:?}");
    let through = deallocations(RawClient::connect(mux.port).await).await;
    assert_eq!(through, direct);
    // The statements of another client sharing them keep working.
    let mut other = RawClient::connect(mux.port).await;
    other.prepare("mine", "SELECT 3").await;
    for _ in 0..4 {
        assert_eq!(other.execute("mine", &[]).await, "3");
    }
}

/// Appends a Bind of statement `name` without parameters, all results as text.
fn bind_unit(name: &str, out: &mut BytesMut) {
    frontend::bind(
        "",
        name,
        std::iter::empty(),
        std::iter::empty::<&str>(),
        |_, _| Ok(postgres_protocol::IsNull::No),
        std::iter::empty(),
        out,
    )
    .map_err(|_| "bind")
    .expect("encode bind");
}
