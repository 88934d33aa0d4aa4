//! The tokio server around one [`Engine`](crate::mux::Engine) and the `muxql` command's core.
//!
//! One thread runs everything: a current-thread runtime with a `LocalSet`, the engine in an
//! `Rc<RefCell<_>>`, one small task per socket, one timer task. See `driver` for the loop.
//!
//! ```no_run
//! use muxql::server::{Args, Server, ServerConfig};
//! use clap::Parser;
//!
//! let args = Args::parse_from(["muxql", "--listen-pg", "127.0.0.1:6432",
//!     "--upstream", "postgres://app:secret@127.0.0.1:5432/app"]);
//! let server = Server::bind(ServerConfig::from_args(&args)?)?;
//! server.run()?; // until SIGINT or SIGTERM
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod conn;
mod driver;
mod fd_limit;
mod listen_spec;
mod listener;
mod metrics;
mod tls;
mod upstream_tls;
mod upstream_url;
mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::sync::Notify;
use tokio::task::LocalSet;

pub use config::{
    engine_config_from_toml, parse_duration, Args, ConfigError, FileConfig, FileRoute, FileUser,
    ListenAddr, ServerConfig, TlsFiles, WsListen, DEFAULT_POOL_SIZE, DEFAULT_SHUTDOWN_TIMEOUT,
};
use driver::Driver;
pub use fd_limit::raise_fd_limit;
pub use listen_spec::{FileListener, ListenerSpec};
use listener::{Listener, Transport};
pub use upstream_url::UpstreamUrl;

use crate::mux::Protocol;

/// How often shutdown checks whether running transactions have finished.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// Why the server could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid (the command exits with code 2).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The TLS certificate or key cannot be used.
    #[error("{0}")]
    Tls(String),
    /// Another I/O failure (runtime creation, signal handlers).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A bound server, ready to [`run`](Server::run).
pub struct Server {
    runtime: Runtime,
    local: LocalSet,
    driver: Rc<Driver>,
    listeners: Vec<Listener>,
    metrics: Option<tokio::net::TcpListener>,
    shutdown_timeout: Duration,
    reporter: Option<Reporter>,
    reloads: Option<tokio::sync::mpsc::UnboundedReceiver<Reload>>,
    on_hangup: Option<Loader>,
}

/// Reads the configuration again (for SIGHUP); an error names the problem.
type Loader = Box<dyn Fn() -> Result<ServerConfig, String>>;

/// A configuration to apply, and where to say whether it was.
type Reload = (
    crate::mux::Config,
    std::sync::mpsc::Sender<Result<(), String>>,
);

/// Applies new engine configurations to a running [`Server`] from any thread.
#[derive(Debug, Clone)]
pub struct Reloader(tokio::sync::mpsc::UnboundedSender<Reload>);

impl Reloader {
    /// Applies `config` to the running engine without dropping clients (see
    /// [`crate::mux::Engine::reload`]); waits for the server's answer. An error names the
    /// problem, or says that the server stopped.
    pub fn reload(&self, config: crate::mux::Config) -> Result<(), String> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.0
            .send((config, tx))
            .map_err(|_| "the server is not running".to_string())?;
        rx.recv()
            .unwrap_or_else(|_| Err("the server is not running".into()))
    }
}

/// Receives the server's counters and routes at an interval (for hosts on other threads).
type Reporter = (
    Duration,
    Box<dyn FnMut(crate::mux::Stats, &[crate::mux::Route])>,
);

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listeners", &self.local_addrs())
            .field("metrics", &self.metrics_addr())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Validates the configuration, creates the engine and binds every listener.
    pub fn bind(mut config: ServerConfig) -> Result<Server, Error> {
        if config.engine.client_tls != crate::mux::ClientTls::Off && config.tls.is_none() {
            return Err(ConfigError::TlsFiles.into());
        }
        let tls = match &config.tls {
            Some(files) => Some(tls::server_tls(&files.cert, &files.key).map_err(Error::Tls)?),
            None => None,
        };
        config.engine.tls_server_end_point = tls.as_ref().and_then(|t| t.end_point.clone());
        let upstream_tls = (config.engine.routes.iter())
            .map(upstream_tls::route_tls)
            .collect::<Result<Vec<_>, _>>()
            .map_err(Error::Tls)?;
        let mut engine_config = config.engine;
        fd_limit::default_max_clients(&mut engine_config);
        let engine = crate::mux::Engine::new(engine_config).map_err(ConfigError::from)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let _guard = runtime.enter();
        let mut listeners = Vec::new();
        let plain = |protocol, secure| {
            let mut l = crate::mux::Listener::new(protocol);
            l.secure = secure;
            l
        };
        let addrs = (config.listen_pg.iter())
            .map(|a| (plain(Protocol::Postgres, false), a, Transport::Raw))
            .chain(
                (config.listen_mysql.iter())
                    .map(|a| (plain(Protocol::Mysql, false), a, Transport::Raw)),
            )
            .chain(config.listen_ws.iter().map(|l| {
                let transport = Transport::WebSocket { tls: l.tls };
                (plain(l.protocol, l.tls), &l.addr, transport)
            }))
            .chain(config.listeners.iter().map(|l| {
                let transport = match l.websocket {
                    Some(tls) => Transport::WebSocket { tls },
                    None => Transport::Raw,
                };
                (l.settings, &l.addr, transport)
            }));
        for (settings, addr, transport) in addrs {
            let bound =
                listener::bind(addr, settings, transport).map_err(|source| Error::Bind {
                    addr: addr.to_string(),
                    source,
                })?;
            listeners.extend(bound);
        }
        let metrics = match config.metrics {
            Some(addr) => Some(bind_metrics(addr)?),
            None => None,
        };
        Ok(Server {
            driver: Driver::new(engine, tls, upstream_tls)?,
            local: LocalSet::new(),
            listeners,
            metrics,
            shutdown_timeout: config.shutdown_timeout,
            runtime,
            reporter: None,
            reloads: None,
            on_hangup: None,
        })
    }

    /// A handle that reloads the configuration of this server once it runs.
    pub fn reloader(&mut self) -> Reloader {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.reloads = Some(rx);
        Reloader(tx)
    }

    /// On every SIGHUP while the server runs, applies the configuration `load` returns: the
    /// engine's (see [`crate::mux::Engine::reload`]) and the TLS certificate, which new TLS
    /// connections use while those running keep theirs. A configuration that fails to load or
    /// apply is logged and the running one stays; listeners and metrics stay as bound.
    pub fn reload_on_hangup(&mut self, load: impl Fn() -> Result<ServerConfig, String> + 'static) {
        self.on_hangup = Some(Box::new(load));
    }

    /// Hands the counters and the routes they are for to `report` every `every` while the
    /// server runs (the C Server API keeps the latest snapshot for other threads).
    pub fn report_stats(
        &mut self,
        every: Duration,
        report: impl FnMut(crate::mux::Stats, &[crate::mux::Route]) + 'static,
    ) {
        self.reporter = Some((every, Box::new(report)));
    }

    /// The addresses the PostgreSQL listeners are bound to.
    pub fn local_addrs(&self) -> Vec<ListenAddr> {
        self.addrs_of(Protocol::Postgres)
    }

    /// The addresses the MySQL listeners are bound to.
    pub fn mysql_addrs(&self) -> Vec<ListenAddr> {
        self.addrs_of(Protocol::Mysql)
    }

    fn addrs_of(&self, protocol: Protocol) -> Vec<ListenAddr> {
        self.listeners
            .iter()
            .filter(|l| l.protocol() == protocol)
            .map(Listener::local_addr)
            .collect()
    }

    /// The address of the metrics endpoint, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until SIGINT or SIGTERM, then shuts down gracefully; a second signal ends the
    /// wait for running transactions at once.
    pub fn run(self) -> Result<(), Error> {
        let first = Arc::new(Notify::new());
        let second = Arc::new(Notify::new());
        {
            let _guard = self.runtime.enter();
            let mut signals = Signals::new()?;
            let (first, second) = (first.clone(), second.clone());
            self.runtime.spawn(async move {
                signals.recv().await;
                first.notify_one();
                signals.recv().await;
                second.notify_one();
            });
        }
        self.serve(async move { first.notified().await }, async move {
            second.notified().await
        })
    }

    /// Serves until `shutdown` completes, then stops accepting, waits (up to the shutdown
    /// timeout) until no client holds an upstream, and returns.
    pub fn run_until<F: Future<Output = ()>>(self, shutdown: F) -> Result<(), Error> {
        self.serve(shutdown, std::future::pending())
    }

    /// [`Server::run_until`], where `force` cuts the wait for running transactions short.
    fn serve<F, G>(self, shutdown: F, force: G) -> Result<(), Error>
    where
        F: Future<Output = ()>,
        G: Future<Output = ()>,
    {
        let Server {
            runtime,
            local,
            driver,
            listeners,
            metrics,
            shutdown_timeout,
            reporter,
            reloads,
            on_hangup,
        } = self;
        let hangups = match on_hangup {
            Some(load) => {
                let _guard = runtime.enter();
                let kind = tokio::signal::unix::SignalKind::hangup();
                Some((tokio::signal::unix::signal(kind)?, load))
            }
            None => None,
        };
        local.block_on(&runtime, async move {
            let mut tasks = Vec::new();
            if let Some((mut hangups, load)) = hangups {
                let d = driver.clone();
                tasks.push(tokio::task::spawn_local(async move {
                    while hangups.recv().await.is_some() {
                        match load().and_then(|config| d.reload_server(config)) {
                            Ok(()) => tracing::info!("SIGHUP: configuration reloaded"),
                            Err(e) => tracing::error!("SIGHUP: configuration kept: {e}"),
                        }
                    }
                }));
            }
            if let Some(mut rx) = reloads {
                let d = driver.clone();
                tasks.push(tokio::task::spawn_local(async move {
                    while let Some((config, reply)) = rx.recv().await {
                        let _ = reply.send(d.reload(config));
                    }
                }));
            }
            if let Some((every, mut report)) = reporter {
                let d = driver.clone();
                tasks.push(tokio::task::spawn_local(async move {
                    loop {
                        let routes = d.routes();
                        report(d.stats(), &routes);
                        tokio::time::sleep(every).await;
                    }
                }));
            }
            let mut sockets = Vec::new();
            for l in listeners {
                let protocol = match l.protocol() {
                    Protocol::Postgres => "postgres",
                    _ => "mysql",
                };
                tracing::info!("listening on {} ({protocol})", l.local_addr());
                if let Some(p) = l.unix_path() {
                    sockets.push(p.to_path_buf());
                }
                tasks.push(tokio::task::spawn_local(l.serve(driver.clone())));
            }
            if let Some(m) = metrics {
                if let Ok(a) = m.local_addr() {
                    tracing::info!("metrics on http://{a}/metrics");
                }
                tasks.push(tokio::task::spawn_local(metrics::serve(m, driver.clone())));
            }
            let timer = tokio::task::spawn_local(driver.clone().run_timer());
            let io_driver = driver.clone();
            let io = tokio::task::spawn_local(async move {
                if let Err(e) = io_driver.run_io().await {
                    tracing::error!("I/O loop failed: {e}");
                }
            });
            shutdown.await;
            for t in &tasks {
                t.abort();
            }
            listener::cleanup(&sockets);
            tokio::select! {
                _ = drain(&driver, shutdown_timeout) => {}
                _ = force => tracing::warn!("second signal: closing connections now"),
            }
            timer.abort();
            io.abort();
            driver.close_all();
        });
        Ok(())
    }
}

/// Waits until no client holds an upstream, at most `limit`.
async fn drain(driver: &Driver, limit: Duration) {
    if driver.is_idle() {
        tracing::info!("shutting down");
        return;
    }
    tracing::info!(
        "shutting down: waiting up to {limit:?} for running transactions ({} clients)",
        driver.client_count()
    );
    let deadline = tokio::time::Instant::now() + limit;
    while !driver.is_idle() {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!("shutdown timeout: closing connections with transactions in progress");
            return;
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

fn bind_metrics(addr: SocketAddr) -> Result<tokio::net::TcpListener, Error> {
    let bind = || -> std::io::Result<tokio::net::TcpListener> {
        let l = std::net::TcpListener::bind(addr)?;
        l.set_nonblocking(true)?;
        tokio::net::TcpListener::from_std(l)
    };
    bind().map_err(|source| Error::Bind {
        addr: addr.to_string(),
        source,
    })
}

/// SIGINT and SIGTERM handlers.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    /// Completes at the next SIGINT or SIGTERM.
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => tracing::info!("SIGINT received"),
            _ = self.term.recv() => tracing::info!("SIGTERM received"),
        }
    }
}

/// Binds and serves `config` until SIGINT or SIGTERM.
pub fn run(config: ServerConfig) -> Result<(), Error> {
    Server::bind(config)?.run()
}
