//! An in-process muxql server for integration tests: bound on free ports, run on its own
//! thread (it drives a current-thread runtime), stopped when dropped. The drop fails the test
//! if anything panicked in the server, since tokio would otherwise swallow the panic.

use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use muxql::mux::Config;
use muxql::server::{ListenAddr, Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Names of muxql server threads that panicked, recorded by a panic hook.
fn server_panics() -> &'static Mutex<Vec<String>> {
    static PANICS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    PANICS.get_or_init(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            if let (Some(name), Some(panics)) = (thread.name(), PANICS.get()) {
                if name.starts_with("muxql-server_") {
                    panics
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(name.to_string());
                }
            }
            default(info);
        }));
        Mutex::new(Vec::new())
    })
}

/// Which listeners a [`TestServer`] opens.
#[derive(Debug, Clone, Copy)]
pub struct Listeners {
    /// A PostgreSQL listener on 127.0.0.1.
    pub pg: bool,
    /// A MySQL listener on 127.0.0.1.
    pub mysql: bool,
}

/// A running in-process muxql.
pub struct TestServer {
    /// Port of the PostgreSQL listener, when asked for.
    pub pg_port: Option<u16>,
    /// Port of the MySQL listener, when asked for.
    pub mysql_port: Option<u16>,
    /// Address of the metrics endpoint.
    pub metrics: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    name: String,
}

fn tcp_port(addrs: &[ListenAddr]) -> Option<u16> {
    match addrs {
        [] => None,
        [ListenAddr::Tcp(a)] => Some(a.parse::<SocketAddr>().expect("listen address").port()),
        other => panic!("expected one TCP listener, got {other:?}"),
    }
}

impl TestServer {
    /// Starts muxql with `engine` and the `listeners` asked for.
    pub fn start(engine: Config, listeners: Listeners) -> TestServer {
        let any = || vec![ListenAddr::Tcp("127.0.0.1:0".into())];
        let config = ServerConfig {
            engine,
            listen_pg: if listeners.pg { any() } else { vec![] },
            listen_mysql: if listeners.mysql { any() } else { vec![] },
            listen_ws: vec![],
            listeners: vec![],
            metrics: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            shutdown_timeout: Duration::from_secs(1),
            log_level: None,
            tls: None,
        };
        let (addrs_tx, addrs_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        server_panics();
        let name = super::unique_name("muxql-server");
        let thread = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let server = Server::bind(config).expect("bind muxql");
                let ports = (
                    tcp_port(&server.local_addrs()),
                    tcp_port(&server.mysql_addrs()),
                );
                let metrics = server.metrics_addr().expect("metrics address");
                addrs_tx.send((ports, metrics)).expect("report addresses");
                server
                    .run_until(async {
                        let _ = stopped.await;
                    })
                    .expect("run muxql");
            })
            .expect("spawn the muxql thread");
        let ((pg_port, mysql_port), metrics) = addrs_rx.recv().expect("muxql started");
        TestServer {
            pg_port,
            mysql_port,
            metrics,
            stop: Some(stop),
            thread: Some(thread),
            name,
        }
    }

    /// The body of `GET /metrics`, fetched with a plain HTTP/1.0 request.
    pub async fn metrics_text(&self) -> String {
        let mut s = TcpStream::connect(self.metrics)
            .await
            .expect("connect metrics");
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
            .await
            .expect("send metrics request");
        let mut resp = String::new();
        s.read_to_string(&mut resp).await.expect("read metrics");
        let (head, body) = resp.split_once("\r\n\r\n").expect("HTTP response");
        assert!(head.starts_with("HTTP/1.1 200"), "metrics answered {head}");
        body.to_string()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let joined = self.thread.take().is_none_or(|t| t.join().is_ok());
        let panicked = !joined
            || server_panics()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&self.name);
        // A panic in the server fails the test, unless the test is failing already.
        if panicked && !std::thread::panicking() {
            panic!("muxql panicked (see the output above)");
        }
    }
}

/// The value of the metric family `name` summed over its label sets; panics when absent.
pub fn metric(text: &str, name: &str) -> f64 {
    let values: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with(['{', ' ']))
        })
        .map(|l| {
            let v = l.rsplit(' ').next().unwrap_or_default();
            v.parse().unwrap_or_else(|_| panic!("bad sample {l:?}"))
        })
        .collect();
    assert!(!values.is_empty(), "metric {name} missing from:\n{text}");
    values.iter().sum()
}
