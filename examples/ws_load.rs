//! Load over one transport for the WebSocket benchmark (`scripts/bench transports`): CLIENTS
//! PostgreSQL sessions (trust authentication), each a thread running `SELECT 1` in a loop as
//! simple queries for SECONDS, over plain TCP or over WebSocket binary messages (the way
//! `@neondatabase/serverless` talks). The same client code on both, so that the ratio is the
//! cost of the WebSocket layer. Prints `queries=N qps=Q`.
//!
//! ```text
//! cargo run --release --example ws_load -- tcp|ws HOST PORT USER DATABASE CLIENTS SECONDS
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use muxql::pg::frontend::FrontendMessage;
use muxql::pg::startup::{ProtocolVersion, Startup, StartupRequest, PROTOCOL_3_0};
use tungstenite::{Message, WebSocket};

/// One session's connection: raw TCP or a WebSocket over TCP.
enum Conn {
    Tcp(TcpStream),
    Ws(Box<WebSocket<TcpStream>>),
}

impl Conn {
    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Tcp(s) => s.write_all(bytes),
            Conn::Ws(ws) => ws
                .send(Message::binary(bytes.to_vec()))
                .map_err(std::io::Error::other),
        }
    }

    /// Reads until the bytes received end with a ReadyForQuery message.
    fn until_ready(&mut self, buf: &mut Vec<u8>) -> std::io::Result<()> {
        buf.clear();
        let mut chunk = [0u8; 16 * 1024];
        while !ends_ready(buf) {
            match self {
                Conn::Tcp(s) => {
                    let n = s.read(&mut chunk)?;
                    if n == 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                Conn::Ws(ws) => match ws.read().map_err(std::io::Error::other)? {
                    Message::Binary(b) => buf.extend_from_slice(&b),
                    Message::Close(_) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                    _ => {}
                },
            }
        }
        Ok(())
    }
}

/// Whether `buf` ends with ReadyForQuery (`Z`, length 5, a status byte).
fn ends_ready(buf: &[u8]) -> bool {
    buf.len() >= 6 && buf[buf.len() - 6..buf.len() - 1] == *b"Z\0\0\0\x05"
}

fn connect(kind: &str, host: &str, port: u16) -> std::io::Result<Conn> {
    let tcp = TcpStream::connect((host, port))?;
    tcp.set_nodelay(true)?;
    match kind {
        "tcp" => Ok(Conn::Tcp(tcp)),
        _ => {
            let (ws, _) = tungstenite::client(format!("ws://{host}:{port}/v2"), tcp)
                .map_err(std::io::Error::other)?;
            Ok(Conn::Ws(Box::new(ws)))
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [kind, host, port, user, database, clients, seconds] = &args[..] else {
        eprintln!("usage: ws_load tcp|ws HOST PORT USER DATABASE CLIENTS SECONDS");
        std::process::exit(2);
    };
    let port: u16 = port.parse().expect("port");
    let clients: usize = clients.parse().expect("clients");
    let seconds: u64 = seconds.parse().expect("seconds");
    let mut startup = BytesMut::new();
    StartupRequest::Startup(Startup {
        version: ProtocolVersion(PROTOCOL_3_0),
        params: vec![
            ("user".into(), user.clone().into()),
            ("database".into(), database.clone().into()),
        ],
    })
    .encode(&mut startup)
    .expect("startup");
    let mut query = BytesMut::new();
    FrontendMessage::Query("SELECT 1".into())
        .encode(&mut query)
        .expect("query");
    let (startup, query) = (startup.freeze(), query.freeze());
    let done = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (kind, host) = (kind.clone(), host.clone());
            let (startup, query) = (startup.clone(), query.clone());
            let (done, total, start) = (done.clone(), total.clone(), start.clone());
            std::thread::spawn(move || -> std::io::Result<()> {
                let mut buf = Vec::new();
                let login = connect(&kind, &host, port).and_then(|mut conn| {
                    conn.send(&startup)?;
                    conn.until_ready(&mut buf)?;
                    Ok(conn)
                });
                // Every thread reaches the barrier, logged in or not, so that none waits forever.
                start.wait();
                let mut conn = login?;
                let mut n = 0;
                while !done.load(Ordering::Relaxed) {
                    conn.send(&query)?;
                    conn.until_ready(&mut buf)?;
                    n += 1;
                }
                total.fetch_add(n, Ordering::Relaxed);
                Ok(())
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    done.store(true, Ordering::Relaxed);
    let elapsed = began.elapsed().as_secs_f64();
    let mut failed = 0;
    for t in threads {
        if !matches!(t.join(), Ok(Ok(()))) {
            failed += 1;
        }
    }
    let queries = total.load(Ordering::Relaxed);
    println!(
        "queries={queries} qps={:.0} failed={failed}",
        queries as f64 / elapsed
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
