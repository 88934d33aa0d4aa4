//! The event loop around one [`Engine`]: feeds it socket events and carries out its actions.
//!
//! Everything runs on one thread (a tokio `LocalSet`). Client and upstream sockets are
//! registered (edge-triggered) with one mio registry whose epoll descriptor is itself watched by
//! tokio, so a single I/O task serves every socket and an idle connection costs only its
//! [`Conn`]. After every input the driver drains `poll_action()`, queues the bytes per socket,
//! then flushes each touched socket once with a vectored write. One timer task sleeps until
//! `poll_timeout()`; it is woken only when a new deadline is earlier than the one it sleeps for.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use std::os::fd::{AsRawFd, RawFd};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use super::conn::{Conn, Stream};
use super::listener::Transport;
use super::metrics::RouteLabel;
use super::tls::ServerTls;
use super::upstream_tls::{route_tls, RouteTls};
use crate::mux::{Action, Engine, Peer, Protocol, Stats, UpstreamId};

/// Capacity reserved for the shared read buffer when it runs low.
const READ_CHUNK: usize = 64 * 1024;
/// Below this much spare capacity the read buffer gets a fresh chunk.
const READ_MIN: usize = 8 * 1024;
/// A write queue longer than this is reported to the engine, which pauses its feeder.
const HIGH_WATER: usize = 4 * 1024 * 1024;
/// The engine hears that the queue drained once it is this short again.
const LOW_WATER: usize = 1024 * 1024;
/// Readiness events fetched per poll.
const EVENTS: usize = 1024;
/// How long a connection the engine closed may take to accept what is queued for it.
const CLOSE_LINGER: Duration = Duration::from_secs(5);
/// Upper bound on a cancel request's side connection.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);

/// Hasher for engine ids, which are already unique integers.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// An upstream socket: still connecting, or open.
enum Upstream {
    Connecting {
        abort: AbortHandle,
        early: Vec<Bytes>,
    },
    Open(Rc<Conn>),
}

/// The engine, its sockets and the shared read buffer.
pub(crate) struct Driver {
    engine: RefCell<Engine>,
    poll: RefCell<mio::Poll>,
    registry: mio::Registry,
    events: RefCell<mio::Events>,
    ready: RefCell<VecDeque<Rc<Conn>>>,
    io_wake: Notify,
    clients: RefCell<IdMap<Rc<Conn>>>,
    upstreams: RefCell<IdMap<Upstream>>,
    dirty: RefCell<Vec<Rc<Conn>>>,
    flushing: RefCell<Vec<Rc<Conn>>>,
    read_buf: RefCell<BytesMut>,
    epoch: Instant,
    timer: Notify,
    armed: Cell<Option<u64>>,
    /// TLS for clients that ask for it (the engine only asks when this is set).
    tls: RefCell<Option<ServerTls>>,
    /// TLS to the servers, per route (`None`: plaintext).
    upstream_tls: RefCell<Vec<Option<RouteTls>>>,
    /// What the host counts itself (transports, TLS handshakes).
    pub(crate) counts: HostCounts,
}

/// Counters of the host's own: clients by listener kind, TLS handshakes.
#[derive(Debug, Default)]
pub(crate) struct HostCounts {
    /// Clients accepted on TCP, Unix, WebSocket and WebSocket-over-TLS listeners.
    pub(crate) accepted: [Cell<u64>; 4],
    /// TLS handshakes completed.
    pub(crate) tls_ok: Cell<u64>,
    /// TLS handshakes that failed.
    pub(crate) tls_failed: Cell<u64>,
    /// TLS handshakes with servers completed.
    pub(crate) upstream_tls_ok: Cell<u64>,
    /// TLS handshakes with servers that failed (certificate checks included).
    pub(crate) upstream_tls_failed: Cell<u64>,
}

/// The listener kinds of [`HostCounts::accepted`], in order.
pub(crate) const LISTENER_KINDS: [&str; 4] = ["tcp", "unix", "ws", "wss"];

fn bump(c: &Cell<u64>) {
    c.set(c.get().saturating_add(1));
}

impl Driver {
    /// Wraps an engine; the clock's zero is now. `upstream_tls` has one entry per route of
    /// the engine's configuration.
    pub(crate) fn new(
        engine: Engine,
        tls: Option<ServerTls>,
        upstream_tls: Vec<Option<RouteTls>>,
    ) -> io::Result<Rc<Driver>> {
        let poll = mio::Poll::new()?;
        let registry = poll.registry().try_clone()?;
        Ok(Rc::new(Driver {
            engine: RefCell::new(engine),
            poll: RefCell::new(poll),
            registry,
            events: RefCell::new(mio::Events::with_capacity(EVENTS)),
            ready: RefCell::default(),
            io_wake: Notify::new(),
            clients: RefCell::default(),
            upstreams: RefCell::default(),
            dirty: RefCell::default(),
            flushing: RefCell::default(),
            read_buf: RefCell::new(BytesMut::new()),
            epoch: Instant::now(),
            timer: Notify::new(),
            armed: Cell::new(None),
            tls: RefCell::new(tls),
            upstream_tls: RefCell::new(upstream_tls),
            counts: HostCounts::default(),
        }))
    }

    /// Milliseconds since the driver started.
    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The engine's statistics.
    /// Applies a new engine configuration to the running engine (see `Engine::reload`).
    /// The routes' TLS files are read first, so that a bad one changes nothing.
    pub(crate) fn reload(self: &Rc<Self>, mut config: crate::mux::Config) -> Result<(), String> {
        super::fd_limit::default_max_clients(&mut config);
        for route in &config.routes {
            route_tls(route)?;
        }
        let now = self.now_ms();
        let result = self.engine.borrow_mut().reload(config, now);
        let routes = self.routes();
        *self.upstream_tls.borrow_mut() = routes
            .iter()
            .map(|r| route_tls(r).unwrap_or_default())
            .collect();
        self.drain();
        result.map_err(|e| e.to_string())
    }

    /// Applies a new server configuration: the engine's, and the TLS certificate (loaded
    /// first, so that a bad file changes nothing).
    pub(crate) fn reload_server(
        self: &Rc<Self>,
        config: super::ServerConfig,
    ) -> Result<(), String> {
        let mut engine = config.engine;
        if engine.client_tls != crate::mux::ClientTls::Off && config.tls.is_none() {
            return Err(super::ConfigError::TlsFiles.to_string());
        }
        let tls = match &config.tls {
            Some(files) => Some(super::tls::server_tls(&files.cert, &files.key)?),
            None => None,
        };
        engine.tls_server_end_point = tls.as_ref().and_then(|t| t.end_point.clone());
        self.reload(engine)?;
        *self.tls.borrow_mut() = tls;
        Ok(())
    }

    /// The engine's routes, as merged by reloads.
    pub(crate) fn routes(&self) -> Vec<crate::mux::Route> {
        self.engine.borrow().config().routes.clone()
    }

    pub(crate) fn stats(&self) -> Stats {
        self.engine.borrow().stats()
    }

    /// Route labels (`database`, `client_user`) in route order, for metrics.
    pub(crate) fn route_labels(&self) -> Vec<RouteLabel> {
        self.engine
            .borrow()
            .config()
            .routes
            .iter()
            .map(|r| RouteLabel {
                database: r.database.clone(),
                user: r.client_user.clone(),
                protocol: match r.protocol {
                    Protocol::Postgres => "postgres",
                    _ => "mysql",
                },
            })
            .collect()
    }

    /// True when no client holds an upstream.
    pub(crate) fn is_idle(&self) -> bool {
        self.engine.borrow().is_idle()
    }

    /// Number of open client sockets.
    pub(crate) fn client_count(&self) -> usize {
        self.clients.borrow().len()
    }

    /// Closes every socket without telling the engine (the server is stopping).
    pub(crate) fn close_all(&self) {
        let clients: Vec<_> = self.clients.borrow_mut().drain().map(|(_, c)| c).collect();
        for c in clients {
            c.kill();
        }
        let upstreams: Vec<_> = self
            .upstreams
            .borrow_mut()
            .drain()
            .map(|(_, u)| u)
            .collect();
        for u in upstreams {
            match u {
                Upstream::Open(c) => c.kill(),
                Upstream::Connecting { abort, .. } => abort.abort(),
            }
        }
        self.dirty.borrow_mut().clear();
        self.ready.borrow_mut().clear();
    }

    /// Registers an accepted client socket of a listener with `settings` with the engine and
    /// the poller.
    pub(crate) fn accept(
        self: &Rc<Self>,
        mut stream: Stream,
        settings: &crate::mux::Listener,
        transport: Transport,
    ) {
        let now = self.now_ms();
        let protocol = settings.protocol;
        let id = self.engine.borrow_mut().client_open_on(settings, now);
        let peer = Peer::Client(id);
        let kind = match (transport, &stream) {
            (Transport::WebSocket { tls: true }, _) => 3,
            (Transport::WebSocket { tls: false }, _) => 2,
            (Transport::Raw, Stream::Unix(_)) => 1,
            (Transport::Raw, Stream::Tcp(_)) => 0,
        };
        bump(&self.counts.accepted[kind]);
        match self.register(&mut stream, peer) {
            Ok(()) => {
                let conn = Rc::new(Conn::new(peer, stream, Some(protocol)));
                if let Transport::WebSocket { tls } = transport {
                    let tls_config = self.tls_config(protocol).filter(|_| tls);
                    if let Some(config) = tls_config {
                        if let Err(e) = conn.start_tls(config) {
                            tracing::warn!("client {id:?}: cannot start TLS: {e}");
                        }
                    }
                    conn.start_ws(self.engine.borrow().config().max_message);
                }
                self.clients.borrow_mut().insert(id.0, conn.clone());
                self.list(&conn);
                self.io_wake.notify_one();
            }
            Err(e) => {
                tracing::warn!("registering client socket: {e}");
                self.engine.borrow_mut().client_closed(id, now);
            }
        }
        self.drain();
    }

    fn register(&self, stream: &mut Stream, peer: Peer) -> io::Result<()> {
        let token = peer
            .token()
            .ok_or_else(|| io::Error::other("id out of token range"))?;
        stream.register(&self.registry, token)
    }

    /// Puts a connection in the ready queue (once).
    fn list(&self, conn: &Rc<Conn>) {
        if conn.mark_listed() {
            self.ready.borrow_mut().push_back(conn.clone());
        }
    }

    /// The single I/O task: waits for the poller, then serves ready sockets, forever.
    pub(crate) async fn run_io(self: Rc<Self>) -> io::Result<()> {
        let fd: RawFd = self.poll.borrow().as_raw_fd();
        // SAFETY: `fd` is the epoll descriptor owned by `self.poll`, which is never replaced and
        // outlives `afd`: this task holds `self` (an `Rc<Driver>`) until `afd` is dropped.
        let afd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(io::Error::from)?;
        let mut more = true;
        loop {
            if !more && self.ready.borrow().is_empty() {
                tokio::select! {
                    guard = afd.readable() => guard?.clear_ready(),
                    _ = self.io_wake.notified() => {}
                }
            }
            more = self.poll_events();
            self.serve_ready();
            if more || !self.ready.borrow().is_empty() {
                tokio::task::yield_now().await;
            }
        }
    }

    /// Fetches readiness events without blocking; true when the event buffer was full.
    fn poll_events(&self) -> bool {
        let mut poll = self.poll.borrow_mut();
        let mut events = self.events.borrow_mut();
        if let Err(e) = poll.poll(&mut events, Some(Duration::ZERO)) {
            if e.kind() != io::ErrorKind::Interrupted {
                tracing::warn!("poll: {e}");
            }
            return false;
        }
        let mut count = 0;
        for ev in events.iter() {
            count += 1;
            let Some(conn) = self.conn_of(Peer::from_token(ev.token())) else {
                continue;
            };
            let failed = ev.is_error();
            conn.set_ready(
                ev.is_readable() || failed,
                ev.is_read_closed(),
                ev.is_writable() || ev.is_write_closed() || failed,
            );
            self.list(&conn);
        }
        count >= EVENTS
    }

    /// One pass over the ready queue: flush what waits for writability, read once from each.
    fn serve_ready(self: &Rc<Self>) {
        let n = self.ready.borrow().len();
        for _ in 0..n {
            let Some(conn) = self.ready.borrow_mut().pop_front() else {
                break;
            };
            conn.clear_listed();
            if conn.wants_write() && self.flush_one(&conn) {
                self.drain();
            }
            if conn.wants_read() {
                self.on_readable(&conn);
                if conn.wants_read() {
                    self.list(&conn);
                }
            }
        }
    }

    /// Reads once from a readable socket and feeds the bytes to the engine.
    fn on_readable(self: &Rc<Self>, conn: &Rc<Conn>) {
        let res = {
            let mut buf = self.read_buf.borrow_mut();
            if buf.capacity() - buf.len() < READ_MIN {
                buf.reserve(READ_CHUNK);
            }
            let room = buf.capacity() - buf.len();
            match conn.stream.read_into(&mut buf) {
                Ok(0) => Err(None),
                Ok(n) => {
                    if n < room {
                        conn.clear_readable();
                    }
                    Ok(buf.split())
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.clear_readable();
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return,
                Err(e) => Err(Some(e)),
            }
        };
        let res = match res {
            Ok(raw) if conn.is_layered() => {
                let mut plain = BytesMut::new();
                let handshaking = conn.is_handshaking();
                let received = conn.receive(&raw, &mut plain);
                self.count_handshake(conn, handshaking, received.is_err());
                if let (Err(e), Peer::Upstream(id)) = (&received, conn.peer) {
                    // Most often a certificate the route's settings refuse: say so.
                    tracing::warn!("upstream {id:?}: TLS: {e}");
                }
                if conn.queued() > 0 && conn.mark_dirty() {
                    self.dirty.borrow_mut().push(conn.clone());
                }
                match received {
                    Ok(true) => {
                        // The client closed its WebSocket: the answer goes out, then the socket.
                        if let Peer::Client(id) = conn.peer {
                            let now = self.now_ms();
                            self.engine.borrow_mut().client_closed(id, now);
                        }
                        self.close(conn);
                        return self.drain();
                    }
                    Ok(false) if plain.is_empty() => return self.drain(),
                    Ok(false) => Ok(plain),
                    Err(e) => Err(Some(e)),
                }
            }
            other => other,
        };
        match res {
            Ok(data) => {
                let now = self.now_ms();
                match conn.peer {
                    Peer::Client(id) => self.engine.borrow_mut().client_data(id, data, now),
                    Peer::Upstream(id) => self.engine.borrow_mut().upstream_data(id, data, now),
                }
                self.drain();
            }
            Err(e) => {
                if let Some(e) = e {
                    tracing::debug!("{:?}: read error: {e}", conn.peer);
                }
                self.lost(conn);
                self.drain();
            }
        }
    }

    /// Counts a TLS handshake that just completed, or failed (`failed` while `handshaking`).
    fn count_handshake(&self, conn: &Conn, handshaking: bool, failed: bool) {
        let (ok, bad) = match conn.peer {
            Peer::Client(_) => (&self.counts.tls_ok, &self.counts.tls_failed),
            Peer::Upstream(_) => (
                &self.counts.upstream_tls_ok,
                &self.counts.upstream_tls_failed,
            ),
        };
        if handshaking && failed {
            bump(bad);
        } else if conn.handshake_done() {
            bump(ok);
        }
    }

    /// The TLS configuration for clients of `protocol`.
    fn tls_config(&self, protocol: Protocol) -> Option<Arc<rustls::ServerConfig>> {
        let tls = self.tls.borrow();
        let tls = tls.as_ref()?;
        Some(match protocol {
            Protocol::Mysql => tls.mysql.clone(),
            _ => tls.postgres.clone(),
        })
    }

    /// TLS records a client sent before its connection switched: decrypted (a handshake
    /// message yields no plaintext; what does goes to the engine) and answered.
    fn tls_records(self: &Rc<Self>, conn: &Rc<Conn>, records: &[u8]) {
        let mut plain = BytesMut::new();
        let decrypted = conn.decrypt(records, &mut plain);
        self.count_handshake(conn, true, decrypted.is_err());
        if conn.queued() > 0 && conn.mark_dirty() {
            self.dirty.borrow_mut().push(conn.clone());
        }
        match (decrypted, conn.peer) {
            (Ok(()), Peer::Client(id)) if !plain.is_empty() => {
                let now = self.now_ms();
                self.engine.borrow_mut().client_data(id, plain, now);
            }
            (Ok(()), _) => {}
            (Err(e), _) => {
                tracing::debug!("{:?}: TLS: {e}", conn.peer);
                self.lost(conn);
            }
        }
    }

    /// Drains engine actions and flushes, until no write failure feeds back into the engine.
    fn drain(self: &Rc<Self>) {
        loop {
            loop {
                let action = self.engine.borrow_mut().poll_action();
                match action {
                    Some(a) => self.apply(a),
                    None => break,
                }
            }
            let mut batch = std::mem::take(&mut *self.flushing.borrow_mut());
            std::mem::swap(&mut batch, &mut *self.dirty.borrow_mut());
            let mut failed = false;
            for conn in batch.drain(..) {
                conn.clear_dirty();
                failed |= self.flush_one(&conn);
            }
            *self.flushing.borrow_mut() = batch;
            if !failed {
                break;
            }
        }
        self.rearm_timer();
    }

    /// Writes a connection's queue; true when something was reported to the engine (a
    /// failure, or the queue crossing a water mark), so its actions must be drained again.
    fn flush_one(self: &Rc<Self>, conn: &Rc<Conn>) -> bool {
        if conn.is_dead() {
            return false;
        }
        match conn.flush() {
            Ok(true) => {
                if conn.is_closing() {
                    self.forget(conn);
                    false
                } else {
                    self.report_drained(conn)
                }
            }
            Ok(false) if conn.is_closing() => {
                self.linger(conn);
                false
            }
            Ok(false) => {
                if conn.queued() <= LOW_WATER {
                    self.report_drained(conn)
                } else if conn.queued() > HIGH_WATER && !conn.blocked.replace(true) {
                    let now = self.now_ms();
                    self.engine.borrow_mut().send_blocked(conn.peer, now);
                    true
                } else {
                    false
                }
            }
            Err(e) => {
                tracing::debug!("{:?}: write error: {e}", conn.peer);
                if conn.is_closing() {
                    self.forget(conn);
                    false
                } else {
                    self.lost(conn);
                    true
                }
            }
        }
    }

    /// Gives a closing connection whose peer does not read [`CLOSE_LINGER`] to take its
    /// queue; then it is closed with whatever is left.
    fn linger(self: &Rc<Self>, conn: &Rc<Conn>) {
        if !conn.mark_lingering() {
            return;
        }
        // Weak: a connection that flushes in time must close at once, not when this wakes.
        let (driver, conn) = (Rc::downgrade(self), Rc::downgrade(conn));
        tokio::task::spawn_local(async move {
            tokio::time::sleep(CLOSE_LINGER).await;
            let (Some(driver), Some(conn)) = (driver.upgrade(), conn.upgrade()) else {
                return;
            };
            if !conn.is_dead() {
                tracing::debug!(
                    "{:?}: closed with {} bytes unsent",
                    conn.peer,
                    conn.queued()
                );
                driver.forget(&conn);
            }
        });
    }

    /// Tells the engine that a queue it heard was blocked has drained; true when it did.
    fn report_drained(&self, conn: &Conn) -> bool {
        if !conn.blocked.replace(false) {
            return false;
        }
        let now = self.now_ms();
        self.engine.borrow_mut().send_drained(conn.peer, now);
        true
    }

    fn conn_of(&self, peer: Peer) -> Option<Rc<Conn>> {
        match peer {
            Peer::Client(id) => self.clients.borrow().get(&id.0).cloned(),
            Peer::Upstream(id) => match self.upstreams.borrow().get(&id.0) {
                Some(Upstream::Open(c)) => Some(c.clone()),
                _ => None,
            },
        }
    }

    /// The socket closed or failed on its own: tell the engine.
    fn lost(&self, conn: &Rc<Conn>) {
        let closing = conn.is_closing();
        self.forget(conn);
        if closing {
            return;
        }
        let now = self.now_ms();
        match conn.peer {
            Peer::Client(id) => self.engine.borrow_mut().client_closed(id, now),
            Peer::Upstream(id) => self.engine.borrow_mut().upstream_closed(id, now),
        }
    }

    /// Removes a connection and closes its socket without telling the engine.
    fn forget(&self, conn: &Rc<Conn>) {
        if conn.is_dead() {
            return;
        }
        conn.kill();
        match conn.peer {
            Peer::Client(id) => {
                self.clients.borrow_mut().remove(&id.0);
            }
            Peer::Upstream(id) => {
                self.upstreams.borrow_mut().remove(&id.0);
            }
        }
    }

    fn queue(&self, conn: &Rc<Conn>, bytes: Bytes) {
        if conn.is_dead() {
            return;
        }
        conn.push(bytes);
        if conn.mark_dirty() {
            self.dirty.borrow_mut().push(conn.clone());
        }
    }

    /// Carries out one engine action (writes are only queued; `drain` flushes them).
    fn apply(self: &Rc<Self>, action: Action) {
        match action {
            Action::SendClient { id, bytes } => {
                let conn = self.clients.borrow().get(&id.0).cloned();
                if let Some(conn) = conn {
                    self.queue(&conn, bytes);
                }
            }
            Action::SendUpstream { id, bytes } => {
                let conn = match self.upstreams.borrow_mut().get_mut(&id.0) {
                    Some(Upstream::Open(c)) => Some(c.clone()),
                    Some(Upstream::Connecting { early, .. }) => {
                        early.push(bytes.clone());
                        None
                    }
                    None => None,
                };
                if let Some(conn) = conn {
                    self.queue(&conn, bytes);
                }
            }
            Action::CloseClient { id } => {
                let conn = self.clients.borrow().get(&id.0).cloned();
                if let Some(conn) = conn {
                    conn.goodbye();
                    self.close(&conn);
                }
            }
            Action::CloseUpstream { id } => {
                let open = match self.upstreams.borrow().get(&id.0) {
                    Some(Upstream::Open(c)) => Some(c.clone()),
                    _ => None,
                };
                match open {
                    Some(conn) => self.close(&conn),
                    None => {
                        if let Some(Upstream::Connecting { abort, .. }) =
                            self.upstreams.borrow_mut().remove(&id.0)
                        {
                            abort.abort();
                        }
                    }
                }
            }
            Action::ConnectUpstream { id, route } => self.connect(id, route),
            Action::StartTls { id, records } => {
                let conn = self.clients.borrow().get(&id.0).cloned();
                if let Some(conn) = conn {
                    let config = conn.protocol.and_then(|p| self.tls_config(p));
                    let started = match config {
                        Some(config) => conn.start_tls(config).map_err(|e| e.to_string()),
                        None => Err("no TLS configured".into()),
                    };
                    match started {
                        Ok(()) if !records.is_empty() => self.tls_records(&conn, &records),
                        Ok(()) => {}
                        Err(e) => {
                            tracing::warn!("client {id:?}: cannot start TLS: {e}");
                            self.close(&conn);
                        }
                    }
                }
            }
            Action::StartUpstreamTls { id, route } => {
                let open = match self.upstreams.borrow().get(&id.0) {
                    Some(Upstream::Open(c)) => Some(c.clone()),
                    _ => None,
                };
                if let Some(conn) = open {
                    let tls = self.upstream_tls.borrow().get(route).cloned().flatten();
                    let started = match tls {
                        Some(t) => conn
                            .start_client_tls(t.config, t.name)
                            .map_err(|e| e.to_string()),
                        None => Err("the route has no TLS configuration".into()),
                    };
                    match started {
                        Ok(()) => {
                            if conn.mark_dirty() {
                                self.dirty.borrow_mut().push(conn.clone());
                            }
                        }
                        Err(e) => {
                            tracing::warn!("upstream {id:?}: cannot start TLS: {e}");
                            self.lost(&conn);
                        }
                    }
                }
            }
            Action::PauseReading { peer } => {
                if let Some(conn) = self.conn_of(peer) {
                    conn.pause();
                }
            }
            Action::ResumeReading { peer } => {
                if let Some(conn) = self.conn_of(peer) {
                    if conn.resume() {
                        self.list(&conn);
                        self.io_wake.notify_one();
                    }
                }
            }
            Action::SendCancel {
                route,
                upstream,
                bytes,
            } => {
                let driver = self.clone();
                let target = self.target(route);
                tokio::task::spawn_local(async move {
                    if let Some(target) = target {
                        send_cancel(target, bytes).await;
                    }
                    let now = driver.now_ms();
                    driver.engine.borrow_mut().cancel_done(upstream, now);
                    driver.drain();
                });
            }
        }
    }

    /// Closes after flushing; at once when nothing is queued.
    fn close(&self, conn: &Rc<Conn>) {
        conn.set_closing();
        if conn.queued() == 0 {
            self.forget(conn);
        } else if conn.mark_dirty() {
            self.dirty.borrow_mut().push(conn.clone());
        }
    }

    fn target(&self, route: usize) -> Option<String> {
        let engine = self.engine.borrow();
        let target = engine.config().routes.get(route).map(|r| r.target.clone());
        if target.is_none() {
            tracing::warn!("engine referred to unknown route {route}");
        }
        target
    }

    /// Starts connecting an upstream socket. The Engine's connect deadline bounds the attempt:
    /// when it passes, the Engine closes the upstream and the attempt is aborted.
    fn connect(self: &Rc<Self>, id: UpstreamId, route: usize) {
        let Some(target) = self.target(route) else {
            let now = self.now_ms();
            self.engine.borrow_mut().upstream_closed(id, now);
            return;
        };
        let driver = self.clone();
        let task = tokio::task::spawn_local(async move {
            let res = open(&target).await;
            driver.connected(id, &target, res);
        });
        self.upstreams.borrow_mut().insert(
            id.0,
            Upstream::Connecting {
                abort: task.abort_handle(),
                early: Vec::new(),
            },
        );
    }

    /// Completes an upstream connection attempt.
    fn connected(self: &Rc<Self>, id: UpstreamId, target: &str, res: io::Result<Stream>) {
        let early = match self.upstreams.borrow_mut().remove(&id.0) {
            Some(Upstream::Connecting { early, .. }) => early,
            Some(other) => {
                self.upstreams.borrow_mut().insert(id.0, other);
                return;
            }
            None => return,
        };
        let now = self.now_ms();
        match res {
            Ok(mut stream) => {
                let peer = Peer::Upstream(id);
                if let Err(e) = self.register(&mut stream, peer) {
                    tracing::warn!("registering upstream socket: {e}");
                    self.engine.borrow_mut().upstream_closed(id, now);
                    self.drain();
                    return;
                }
                let conn = Rc::new(Conn::new(peer, stream, None));
                for b in early {
                    conn.push(b);
                }
                if conn.queued() > 0 && conn.mark_dirty() {
                    self.dirty.borrow_mut().push(conn.clone());
                }
                self.upstreams
                    .borrow_mut()
                    .insert(id.0, Upstream::Open(conn.clone()));
                self.list(&conn);
                self.io_wake.notify_one();
                self.engine.borrow_mut().upstream_connected(id, now);
            }
            Err(e) => {
                tracing::warn!("cannot connect to upstream {target}: {e}");
                self.engine.borrow_mut().upstream_closed(id, now);
            }
        }
        self.drain();
    }

    /// Wakes the timer task when the engine's deadline moved earlier than the armed one.
    fn rearm_timer(&self) {
        let next = self.engine.borrow().poll_timeout();
        if let Some(d) = next {
            if self.armed.get().is_none_or(|a| d < a) {
                self.armed.set(Some(d));
                self.timer.notify_one();
            }
        }
    }

    /// Sleeps until each engine deadline and calls `handle_timeout`; runs forever.
    pub(crate) async fn run_timer(self: Rc<Self>) {
        loop {
            let deadline = self.engine.borrow().poll_timeout();
            self.armed.set(deadline);
            let Some(deadline) = deadline else {
                self.timer.notified().await;
                continue;
            };
            let now = self.now_ms();
            if now >= deadline {
                self.engine.borrow_mut().handle_timeout(now);
                self.drain();
                continue;
            }
            let at = self
                .epoch
                .checked_add(Duration::from_millis(deadline))
                .map(tokio::time::Instant::from_std);
            match at {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = self.timer.notified() => {}
                    }
                }
                None => self.timer.notified().await,
            }
        }
    }
}

/// Connects to `host:port` (TCP) or a unix socket path starting with '/'.
async fn open(target: &str) -> io::Result<Stream> {
    if target.starts_with('/') {
        Stream::from_tokio_unix(UnixStream::connect(target).await?)
    } else {
        Stream::from_tokio_tcp(TcpStream::connect(target).await?)
    }
}

/// Delivers a cancel request on a side connection; failures are only logged at debug level.
/// Sends a CancelRequest and waits until the server closes the connection: by then it has
/// passed the cancel on to the backend.
async fn send_cancel(target: String, bytes: Bytes) {
    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, bytes: &[u8]) -> io::Result<()> {
        s.write_all(bytes).await?;
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.map(drop)
    }
    let res = tokio::time::timeout(CANCEL_TIMEOUT, async {
        if target.starts_with('/') {
            exchange(UnixStream::connect(&target).await?, &bytes).await
        } else {
            let s = TcpStream::connect(&target).await?;
            s.set_nodelay(true)?;
            exchange(s, &bytes).await
        }
    })
    .await;
    match res {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!("cancel request to {target}: {e}"),
        Err(_) => tracing::debug!("cancel request to {target}: timed out"),
    }
}
