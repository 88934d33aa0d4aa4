//! Hostile input at every phase, for real: raw sockets send malformed PostgreSQL and MySQL
//! traffic to the `muxql` binary (in front of the test PostgreSQL and MariaDB) before login,
//! during login, idle, inside a transaction, in the middle of a pipeline and in the middle of
//! a result. Each offender gets a protocol error and is closed; bystanders running their own
//! checked queries all the while see no error and no wrong result; memory stays flat.

mod common;
mod mysql_sim;
mod proc;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use muxql::mysql::auth::native;
use muxql::mysql::handshake::{HandshakeResponse41, HandshakeV10};
use muxql::mysql::response::ErrPacket;
use mysql_async::prelude::Queryable;
use proc::Muxql;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long an offender may take to be answered and closed.
const PATIENCE: Duration = Duration::from_secs(10);
/// Rounds of every case (for the memory check).
const ROUNDS: usize = 5;

/// muxql with a SCRAM PostgreSQL listener (`m.port`), a trust one and a MySQL one.
struct Setup {
    m: Muxql,
    trust_port: u16,
    mysql_port: u16,
    _dir: std::path::PathBuf,
}

fn start() -> Setup {
    let (pg, my) = (common::pg(), common::mariadb());
    let tls = common::dbs().dir.join("tls");
    let dir = std::env::temp_dir().join(common::unique_name("muxql_hostile"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (trust_port, mysql_port) = (proc::free_port(), proc::free_port());
    let toml = format!(
        "upstreams = [{:?}, {:?}]\npool_size = 3\ntls_cert = {:?}\ntls_key = {:?}\n\
         mysql_auth = \"mysql_native_password\"\n\
         [[listeners]]\nlisten = \"127.0.0.1:{trust_port}\"\nauth = \"trust\"\n\
         [[listeners]]\nlisten = \"127.0.0.1:{mysql_port}\"\nprotocol = \"mysql\"\n",
        pg.url(&pg.scram_user),
        my.url(&my.user),
        tls.join("server.crt"),
        tls.join("server.key"),
    );
    let config = dir.join("muxql.toml");
    std::fs::write(&config, toml).expect("write config");
    let m = Muxql::start(&[
        "--config",
        config.to_str().expect("path"),
        "--log-level",
        "error",
    ]);
    Setup {
        m,
        trust_port,
        mysql_port,
        _dir: dir,
    }
}

/// A PostgreSQL message with its real length.
fn pg_msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A PostgreSQL message header claiming `len`, then `body`.
fn pg_lying(tag: u8, len: u32, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A startup-phase packet (no tag) claiming `len`, then `body`.
fn startup_lying(len: u32, body: &[u8]) -> Vec<u8> {
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// Reads whatever `s` sends until it closes; fails when it stays open past [`PATIENCE`].
async fn until_closed(s: &mut TcpStream, case: &str) -> Vec<u8> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(PATIENCE, async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "{case}: still open after {PATIENCE:?}, got {:?}",
        String::from_utf8_lossy(&got)
    );
    got
}

/// Reads PostgreSQL messages until one with `tag`; returns everything read.
async fn pg_until(s: &mut TcpStream, tag: u8) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let mut at = 0;
        while got.len() >= at + 5 {
            let len = u32::from_be_bytes(got[at + 1..at + 5].try_into().expect("4")) as usize;
            if got.len() < at + 1 + len {
                break;
            }
            if got[at] == tag {
                return got;
            }
            at += 1 + len;
        }
        let n = tokio::time::timeout(PATIENCE, s.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
}

/// The SQLSTATE of the last ErrorResponse in `bytes`.
fn last_sqlstate(bytes: &[u8]) -> Option<String> {
    let mut at = 0;
    let mut code = None;
    while bytes.len() >= at + 5 {
        let len = u32::from_be_bytes(bytes[at + 1..at + 5].try_into().expect("4")) as usize;
        let Some(body) = bytes.get(at + 5..at + 1 + len) else {
            break;
        };
        if bytes[at] == b'E' {
            code = body
                .split(|&b| b == 0)
                .find_map(|f| f.strip_prefix(b"C"))
                .map(|c| String::from_utf8_lossy(c).into_owned());
        }
        at += 1 + len;
    }
    code
}

/// Where in a PostgreSQL session the hostile bytes arrive.
#[derive(Debug, Clone, Copy)]
enum PgPhase {
    /// First bytes on the connection.
    PreAuth,
    /// After the startup packet, while SCRAM authentication is under way.
    Auth,
    /// Logged in, nothing running.
    Idle,
    /// After `BEGIN`.
    InTransaction,
    /// After Parse, Bind and Execute without a Sync.
    MidPipeline,
    /// While a large result is on its way.
    MidResult,
}

/// Opens a connection and brings it to `phase`.
async fn pg_at(s: &Setup, phase: PgPhase) -> TcpStream {
    let port = match phase {
        PgPhase::PreAuth | PgPhase::Auth => s.m.port,
        _ => s.trust_port,
    };
    let mut c = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    match phase {
        PgPhase::PreAuth => {}
        PgPhase::Auth => {
            c.write_all(&common::pg_startup_packet(&common::pg().scram_user, &[]))
                .await
                .expect("startup");
            pg_until(&mut c, b'R').await;
        }
        _ => {
            c.write_all(&common::pg_startup_packet(&common::pg().scram_user, &[]))
                .await
                .expect("startup");
            pg_until(&mut c, b'Z').await;
        }
    }
    match phase {
        PgPhase::InTransaction => {
            c.write_all(&pg_msg(b'Q', b"BEGIN\0")).await.expect("begin");
            let got = pg_until(&mut c, b'Z').await;
            assert_eq!(got[got.len() - 1], b'T', "in a transaction");
        }
        PgPhase::MidPipeline => {
            let mut unit = pg_msg(b'P', b"\0SELECT 1\0\0\0");
            unit.extend(pg_msg(b'B', b"\0\0\0\0\0\0\0\0"));
            unit.extend(pg_msg(b'E', b"\0\0\0\0\0"));
            c.write_all(&unit).await.expect("pipeline");
        }
        PgPhase::MidResult => {
            let sql = b"SELECT repeat('x', 1000) FROM generate_series(1, 20000)\0";
            c.write_all(&pg_msg(b'Q', sql)).await.expect("query");
            // Not read: the 20 MB result fills the socket buffers while muxql relays it.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        _ => {}
    }
    c
}

/// Hostile bytes for sessions past the startup packet.
fn pg_session_inputs() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("length 0", pg_lying(b'Q', 0, b"")),
        ("length 3", pg_lying(b'Q', 3, b"")),
        ("length 2 GiB", pg_lying(b'Q', 0x7fff_ffff, b"SELECT")),
        ("negative length", pg_lying(b'Q', 0xffff_fff0, b"SELECT")),
        ("unknown type", pg_msg(b'@', b"hello")),
        ("Parse without terminators", pg_msg(b'P', b"stmt")),
        ("oversized Sync", pg_msg(b'S', &[0u8; 100])),
        ("Bind cut inside its portal name", pg_msg(b'B', b"portal")),
    ]
}

/// The case sent after an SSLRequest was answered `S`.
const GARBAGE_TLS: &str = "garbage instead of a TLS handshake";

fn ssl_request() -> Vec<u8> {
    startup_lying(8, &80877103u32.to_be_bytes())
}

/// Hostile bytes for the first packet.
fn pg_startup_inputs() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("startup length 0", startup_lying(0, b"")),
        ("startup length 3", startup_lying(3, b"")),
        (
            "startup length 2 GiB",
            startup_lying(0x7fff_ffff, b"\0\x03\0\0"),
        ),
        (
            "startup negative length",
            startup_lying(0xffff_ffff, b"\0\x03\0\0"),
        ),
        (
            "unknown protocol",
            startup_lying(8, &0x0009_0000u32.to_be_bytes()),
        ),
        ("startup over the cap", {
            let mut body = 196608u32.to_be_bytes().to_vec();
            body.extend(std::iter::repeat_n(b'a', 20_000));
            startup_lying(body.len() as u32 + 4, &body)
        }),
        ("startup without terminators", {
            let mut body = 196608u32.to_be_bytes().to_vec();
            body.extend_from_slice(b"user\0alice");
            startup_lying(body.len() as u32 + 4, &body)
        }),
        ("SSLRequest with bytes behind it", {
            let mut b = ssl_request();
            b.extend_from_slice(&common::pg_startup_packet(&common::pg().scram_user, &[]));
            b
        }),
        (
            GARBAGE_TLS,
            b"this is not a TLS ClientHello at all\r\n".to_vec(),
        ),
    ]
}

/// Hostile bytes in answer to AuthenticationSASL.
fn pg_auth_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let initial = |mech: &[u8], data: &[u8]| {
        let mut body = mech.to_vec();
        body.push(0);
        body.extend_from_slice(&(data.len() as u32).to_be_bytes());
        body.extend_from_slice(data);
        pg_msg(b'p', &body)
    };
    vec![
        (
            "unknown SASL mechanism",
            initial(b"SCRAM-SHA-1", b"n,,n=,r=abc"),
        ),
        (
            "garbage client-first",
            initial(b"SCRAM-SHA-256", b"\xff\xfe garbage"),
        ),
        (
            "client-first without nonce",
            initial(b"SCRAM-SHA-256", b"n,,n="),
        ),
        ("SASL data longer than the message", {
            let mut body = b"SCRAM-SHA-256\0".to_vec();
            body.extend_from_slice(&1000u32.to_be_bytes());
            body.extend_from_slice(b"n,,n=,r=abc");
            pg_msg(b'p', &body)
        }),
        (
            "password message length 2 GiB",
            pg_lying(b'p', 0x7fff_ffff, b"x"),
        ),
        ("query before login", pg_msg(b'Q', b"SELECT 1\0")),
    ]
}

/// Sends `input` on a connection at `phase` and checks the offender is told and closed.
async fn pg_case(s: &Setup, phase: PgPhase, name: &str, input: &[u8]) {
    let case = format!("{phase:?}/{name}");
    let mut c = pg_at(s, phase).await;
    if name == GARBAGE_TLS {
        c.write_all(&ssl_request()).await.expect("SSLRequest");
        let mut answer = [0u8; 1];
        c.read_exact(&mut answer).await.expect("SSL answer");
        assert_eq!(answer[0], b'S', "{case}: TLS is offered");
        c.write_all(input).await.expect("send hostile bytes");
        // No PostgreSQL message can follow: the TLS layer ends the connection.
        until_closed(&mut c, &case).await;
        return;
    }
    let mut input = input.to_vec();
    if !matches!(phase, PgPhase::PreAuth | PgPhase::Auth) {
        // Where the server answers with an ERROR and skips to the next Sync, this ends it.
        input.extend(pg_msg(b'S', b""));
    }
    c.write_all(&input).await.expect("send hostile bytes");
    let (got, closed) = until_closed_or_ready_after_error(&mut c, &case).await;
    let code = last_sqlstate(&got);
    assert!(
        matches!(
            code.as_deref(),
            Some("08P01" | "28000" | "28P01" | "0A000" | "54000")
        ),
        "{case}: expected a protocol error, got {code:?} in {:?}",
        String::from_utf8_lossy(&got[got.len().saturating_sub(200)..])
    );
    if !closed {
        // PostgreSQL itself answers some malformed messages with an ERROR and goes on (an
        // oversized Sync: "invalid message format"); then so does the session through muxql.
        // (Inside a transaction the error aborted it, as it would directly.)
        c.write_all(&pg_msg(b'Q', b"ROLLBACK\0"))
            .await
            .expect("rollback");
        pg_until(&mut c, b'Z').await;
        c.write_all(&pg_msg(b'Q', b"SELECT 1\0"))
            .await
            .expect("query");
        let after = pg_until(&mut c, b'Z').await;
        assert_eq!(after.first(), Some(&b'T'), "{case}: the session goes on");
    }
}

/// Reads until `s` closes, or until a ReadyForQuery follows an ErrorResponse (the session
/// survived the error); returns what was read and whether the connection closed.
async fn until_closed_or_ready_after_error(s: &mut TcpStream, case: &str) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let read = tokio::time::timeout(PATIENCE, async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            if ready_after_error(&got) {
                return false;
            }
        }
    })
    .await;
    match read {
        Ok(closed) => (got, closed),
        Err(_) => panic!(
            "{case}: neither closed nor ready after {PATIENCE:?}, got {:?}",
            String::from_utf8_lossy(&got[got.len().saturating_sub(300)..])
        ),
    }
}

/// Whether `bytes` (whole messages from some point on) end with an ErrorResponse followed by
/// a ReadyForQuery.
fn ready_after_error(bytes: &[u8]) -> bool {
    let mut at = 0;
    let mut error_seen = false;
    let mut last = None;
    while bytes.len() >= at + 5 {
        let len = u32::from_be_bytes(bytes[at + 1..at + 5].try_into().expect("4")) as usize;
        if bytes.len() < at + 1 + len {
            return false;
        }
        error_seen |= bytes[at] == b'E';
        last = Some(bytes[at]);
        at += 1 + len;
    }
    error_seen && last == Some(b'Z') && at == bytes.len()
}

/// A MySQL packet: 3-byte length, sequence id, payload.
fn my_packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    out.push(seq);
    out.extend_from_slice(payload);
    out
}

/// Reads one MySQL packet's payload and sequence id.
async fn my_read(c: &mut TcpStream) -> (u8, Bytes) {
    let mut head = [0u8; 4];
    tokio::time::timeout(PATIENCE, c.read_exact(&mut head))
        .await
        .expect("a packet in time")
        .expect("read header");
    let len = u32::from_le_bytes([head[0], head[1], head[2], 0]) as usize;
    let mut payload = vec![0u8; len];
    c.read_exact(&mut payload).await.expect("read payload");
    (head[3], Bytes::from(payload))
}

/// Where in a MySQL session the hostile bytes arrive.
#[derive(Debug, Clone, Copy)]
enum MyPhase {
    /// The greeting was read; the handshake response is due.
    PreAuth,
    /// Logged in, nothing running.
    Idle,
    /// After `BEGIN`.
    InTransaction,
    /// While a large result is on its way.
    MidResult,
}

async fn my_at(s: &Setup, phase: MyPhase) -> TcpStream {
    let my = common::mariadb();
    let mut c = TcpStream::connect(("127.0.0.1", s.mysql_port))
        .await
        .expect("connect");
    let (_, greeting) = my_read(&mut c).await;
    if matches!(phase, MyPhase::PreAuth) {
        return c;
    }
    let hello = HandshakeV10::parse(&greeting).expect("greeting");
    let response = HandshakeResponse41 {
        capabilities: mysql_sim::caps(),
        max_packet_size: 1 << 24,
        character_set: 45,
        username: Bytes::from(my.user.clone()),
        auth_response: Bytes::from(native::scramble_password(
            &hello.auth_plugin_data,
            my.password_for(&my.user).as_bytes(),
        )),
        database: Some(Bytes::from(my.db.clone())),
        auth_plugin_name: Some(Bytes::from_static(native::NAME)),
        connect_attrs: vec![],
        zstd_compression_level: None,
    };
    let mut p = BytesMut::new();
    response.encode(&mut p).expect("encode");
    c.write_all(&my_packet(1, &p)).await.expect("login");
    let (_, ok) = my_read(&mut c).await;
    assert_eq!(ok[0], 0, "logged in: {ok:?}");
    match phase {
        MyPhase::InTransaction => {
            c.write_all(&my_packet(0, b"\x03BEGIN"))
                .await
                .expect("begin");
            let (_, ok) = my_read(&mut c).await;
            assert_eq!(ok[0], 0, "BEGIN: {ok:?}");
        }
        MyPhase::MidResult => {
            let sql = b"\x03SELECT REPEAT('x', 1000) FROM seq_1_to_20000";
            c.write_all(&my_packet(0, sql)).await.expect("query");
            my_read(&mut c).await;
        }
        _ => {}
    }
    c
}

fn my_inputs(phase: MyPhase) -> Vec<(&'static str, Vec<u8>)> {
    let mut inputs = my_closing_inputs(phase);
    if matches!(phase, MyPhase::Idle | MyPhase::InTransaction) {
        inputs.push((UNKNOWN_COMMAND, my_packet(0, b"\xee\x01")));
    }
    inputs
}

/// An unknown command byte: the server answers ERR 1047 and the session goes on.
const UNKNOWN_COMMAND: &str = "unknown command";

fn my_closing_inputs(phase: MyPhase) -> Vec<(&'static str, Vec<u8>)> {
    match phase {
        MyPhase::PreAuth => vec![
            ("handshake with sequence id 3", my_packet(3, &[0u8; 40])),
            (
                "truncated handshake response",
                my_packet(1, b"\x8d\xa6\x0f\x00"),
            ),
            (
                "HTTP instead of MySQL",
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            ),
            ("empty packet", my_packet(1, b"")),
        ],
        _ => vec![
            ("command with sequence id 5", my_packet(5, b"\x03SELECT 1")),
            ("empty command packet", my_packet(0, b"")),
            ("truncated COM_STMT_EXECUTE", my_packet(0, b"\x17\x01\x00")),
            ("truncated COM_STMT_PREPARE-like length", {
                let mut p = vec![0xff, 0xff, 0x00, 0x00, 0x16];
                p.extend_from_slice(b"SELECT");
                p
            }),
        ],
    }
}

/// Sends `input` on a MySQL connection at `phase`; the offender gets an ERR and is closed.
async fn my_case(s: &Setup, phase: MyPhase, name: &str, input: &[u8]) {
    let case = format!("mysql {phase:?}/{name}");
    let mut c = my_at(s, phase).await;
    c.write_all(input).await.expect("send hostile bytes");
    if name == UNKNOWN_COMMAND {
        let (_, err) = my_read(&mut c).await;
        let err = ErrPacket::parse(&err, mysql_sim::caps())
            .unwrap_or_else(|e| panic!("{case}: {e:?} in {err:?}"));
        assert_eq!(err.code, 1047, "{case}: as MariaDB answers");
        c.write_all(&my_packet(0, b"\x03SELECT 1"))
            .await
            .expect("query");
        let (_, columns) = my_read(&mut c).await;
        assert_eq!(&columns[..], &[1], "{case}: the session goes on");
        return;
    }
    if name.contains("length") {
        // A packet announcing more than it carries waits for the rest: the offender is cut
        // off by closing its side; nothing of it must linger.
        c.shutdown().await.expect("shutdown");
    }
    let got = until_closed(&mut c, &case).await;
    if name.contains("length") {
        return;
    }
    let err = find_err(&got).unwrap_or_else(|| panic!("{case}: no ERR packet in {got:?}"));
    assert!(
        [ER_HANDSHAKE_ERROR, ER_MALFORMED_PACKET].contains(&err.code),
        "{case}: ERR {} {}",
        err.code,
        String::from_utf8_lossy(&err.message)
    );
}

/// MySQL's "Bad handshake".
const ER_HANDSHAKE_ERROR: u16 = 1043;
/// MySQL's "Malformed communication packet".
const ER_MALFORMED_PACKET: u16 = 1835;

/// The last ERR packet in `bytes` (packets cut by their headers).
fn find_err(bytes: &[u8]) -> Option<ErrPacket> {
    let mut at = 0;
    let mut last = None;
    while bytes.len() >= at + 4 {
        let len = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], 0]) as usize;
        let Some(p) = bytes.get(at + 4..at + 4 + len) else {
            break;
        };
        if p.first() == Some(&0xff) {
            last = ErrPacket::parse(&Bytes::copy_from_slice(p), mysql_sim::caps()).ok();
        }
        at += 4 + len;
    }
    last
}

/// Bystanders: PostgreSQL and MariaDB clients that each check their own results in a loop
/// (in and out of transactions) until `stop`; returns how many queries they ran.
fn bystanders(s: &Setup, stop: Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<u64>> {
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let (pg, my) = (common::pg(), common::mariadb());
    for i in 0..4i32 {
        let mut via = pg.clone();
        via.port = s.m.port;
        let cfg = via.config(&pg.scram_user);
        let (stop, done) = (stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = common::pg_connect(&cfg).await.expect("bystander connects");
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let tx = client.transaction().await.expect("bystander BEGIN");
                let v: i32 = tx
                    .query_one("SELECT $1::int * 1000 + $2::int", &[&i, &(n as i32 % 1000)])
                    .await
                    .expect("bystander query")
                    .get(0);
                assert_eq!(v, i * 1000 + (n as i32 % 1000), "a bystander's own result");
                tx.commit().await.expect("bystander COMMIT");
                n += 1;
            }
            done.fetch_add(n, Ordering::Relaxed);
            n
        }));
    }
    for i in 0..4u32 {
        let opts = mysql_async::OptsBuilder::from_opts(my.opts(&my.user)).tcp_port(s.mysql_port);
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = mysql_async::Conn::new(opts)
                .await
                .expect("bystander connects");
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let v: Option<u64> = conn
                    .exec_first("SELECT ? * 1000 + ?", (i, n % 1000))
                    .await
                    .expect("bystander query");
                assert_eq!(v, Some(u64::from(i) * 1000 + n % 1000));
                n += 1;
            }
            n
        }));
    }
    tasks
}

#[tokio::test]
async fn hostile_input_at_every_phase_closes_only_the_offender() {
    let s = start();
    let stop = Arc::new(AtomicBool::new(false));
    let watchers = bystanders(&s, stop.clone());
    let mut rss_after_first_round = 0;
    let mut cases = 0;
    for round in 0..ROUNDS {
        for (name, input) in pg_startup_inputs() {
            pg_case(&s, PgPhase::PreAuth, name, &input).await;
            cases += 1;
        }
        for (name, input) in pg_auth_inputs() {
            pg_case(&s, PgPhase::Auth, name, &input).await;
            cases += 1;
        }
        for phase in [
            PgPhase::Idle,
            PgPhase::InTransaction,
            PgPhase::MidPipeline,
            PgPhase::MidResult,
        ] {
            for (name, input) in pg_session_inputs() {
                pg_case(&s, phase, name, &input).await;
                cases += 1;
            }
        }
        for phase in [
            MyPhase::PreAuth,
            MyPhase::Idle,
            MyPhase::InTransaction,
            MyPhase::MidResult,
        ] {
            for (name, input) in my_inputs(phase) {
                my_case(&s, phase, name, &input).await;
                cases += 1;
            }
        }
        if round == 0 {
            rss_after_first_round = s.m.rss_kib();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut ran = 0;
    for w in watchers {
        let n = w.await.expect("a bystander failed");
        assert!(n > 0, "every bystander ran");
        ran += n;
    }
    let grown = s.m.rss_kib().saturating_sub(rss_after_first_round);
    eprintln!("{cases} hostile sessions, {ran} bystander queries, RSS +{grown} KiB");
    assert!(
        grown < 16 * 1024,
        "RSS grew by {grown} KiB over {ROUNDS} rounds"
    );
    assert_eq!(s.m.metric("muxql_clients_logging_in"), Some(0.0));
    // No upstream was left inside an offender's transaction.
    let pg = common::pg();
    let admin = common::pg_connect(&pg.config(&pg.superuser))
        .await
        .expect("direct superuser connection");
    let dirty: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 \
             AND state LIKE 'idle in transaction%'",
            &[&pg.scram_user],
        )
        .await
        .expect("pg_stat_activity")
        .get(0);
    assert_eq!(dirty, 0, "upstreams left in a transaction");
}
