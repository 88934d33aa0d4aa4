//! `Engine`: the muxql Engine as a JavaScript class.
//!
//! Inputs copy the Buffer they get once (the Engine owns what it parses); `poll` hands every
//! pending action over in one call, each action's bytes as a Buffer the Engine no longer
//! touches (moved without a copy when nothing else shares them).

use bytes::{Bytes, BytesMut};
use muxql::mux::{self, ClientId, Peer, UpstreamId};
use napi::bindgen_prelude::Buffer;
use napi::JsBuffer;
use napi_derive::napi;

use crate::error::{error, Result, INVALID_ARGUMENT, INVALID_CONFIG, UNKNOWN_ID, WRONG_STATE};
use crate::options::{protocol_named, EngineOptions, ListenerOptions};

/// What an action asks the host to do (the values of `MUXQL_ACTION_*` in `include/muxql.h`).
#[napi]
pub enum ActionKind {
    /// Write `data` to client `id`.
    SendClient = 1,
    /// Write `data` to upstream `id`.
    SendUpstream = 2,
    /// Connect upstream `id` to route `route`'s target (`data`, UTF-8), then report
    /// `upstreamConnected` or `upstreamClosed`.
    ConnectUpstream = 3,
    /// Flush what was written to client `id`, then close it; the id is dead.
    CloseClient = 4,
    /// Close upstream `id`; the id is dead.
    CloseUpstream = 5,
    /// Open a side connection to route `route`'s target, write `data` (a PostgreSQL
    /// CancelRequest), wait until the server closes it, then report `cancelDone(id)` (also
    /// when it fails). Upstream `id` is not reused until then (at most 5 s).
    SendCancel = 6,
    /// Stop reading from client `id`.
    PauseClient = 7,
    /// Read from client `id` again.
    ResumeClient = 8,
    /// Stop reading from upstream `id`.
    PauseUpstream = 9,
    /// Read from upstream `id` again.
    ResumeUpstream = 10,
    /// Switch client `id` to TLS: what was written to it goes out as it is, then everything
    /// read and written is TLS, starting with `data` (records the client sent right behind
    /// its request). When the handshake fails, report the client closed.
    StartTls = 11,
    /// Switch upstream `id` to TLS with route `route`'s settings (`upstreamTls` and its
    /// files): what was written goes out as it is, then everything is TLS; the Engine's next
    /// bytes for it may follow at once. Check the certificate as the mode says; when the
    /// handshake or the check fails, report the upstream closed.
    StartUpstreamTls = 12,
}

/// Which side a backpressure report is about.
#[napi]
pub enum PeerKind {
    /// A client connection.
    Client = 1,
    /// An upstream connection.
    Upstream = 2,
}

/// One instruction for the host. Actions for one connection are carried out in order.
#[napi(object)]
pub struct Action {
    /// What to do.
    pub kind: ActionKind,
    /// The client or upstream it is for.
    pub id: i64,
    /// Index of the route (ConnectUpstream, SendCancel, StartUpstreamTls).
    pub route: Option<u32>,
    /// Bytes to write, the target to connect to, or TLS records.
    pub data: Option<Buffer>,
}

/// Counters of one route.
#[napi(object)]
pub struct RouteStats {
    /// The route's database name.
    pub database: String,
    /// `postgres` or `mysql`.
    pub protocol: String,
    /// Authenticated clients connected.
    pub clients: f64,
    /// Clients holding an upstream.
    pub clients_active: f64,
    /// Clients waiting for an upstream.
    pub clients_waiting: f64,
    /// Clients pinned to their upstream by session state.
    pub clients_pinned: f64,
    /// Upstream connections (connecting, idle or in use).
    pub upstreams: f64,
    /// Upstream connections assigned to a client.
    pub upstreams_active: f64,
    /// Upstream connections idle in the pool.
    pub upstreams_idle: f64,
    /// Most clients at once.
    pub peak_clients: f64,
    /// Most upstream connections at once.
    pub peak_upstreams: f64,
    /// Transactions (or standalone requests) completed.
    pub transactions: f64,
    /// Queries completed.
    pub queries: f64,
    /// Bytes received from clients.
    pub bytes_from_clients: f64,
    /// Bytes received from upstreams.
    pub bytes_from_upstreams: f64,
    /// Milliseconds clients spent waiting for an upstream, in total.
    pub wait_ms: f64,
    /// Times a client was pinned.
    pub pins: f64,
    /// Upstream connections closed because they could not be returned clean.
    pub upstreams_discarded: f64,
    /// Requests pipelined behind another client's.
    pub pipelined: f64,
    /// Pipelined requests run again after a cancel meant for another client.
    pub pipelined_retries: f64,
    /// Distinct prepared statements the route's clients hold.
    pub statements: f64,
    /// Waits for an upstream by duration: counts per bucket of `waitBucketsMs`, the last
    /// entry for longer waits.
    pub wait_histogram: Vec<f64>,
}

/// Client sessions ended with an error, by kind.
#[napi(object)]
pub struct ErrorCounts {
    /// Refused logins.
    pub auth: f64,
    /// Bad input.
    pub protocol: f64,
    /// A failed upstream.
    pub upstream: f64,
    /// Login or wait timeouts.
    pub timeout: f64,
}

/// Counters of every route, in route order.
#[napi(object)]
pub struct Stats {
    /// Clients that have not finished logging in.
    pub clients_logging_in: f64,
    /// One entry per route.
    pub routes: Vec<RouteStats>,
    /// Sessions ended with an error, by kind.
    pub errors: ErrorCounts,
    /// Upper bounds (ms) of the wait histogram's buckets.
    pub wait_buckets_ms: Vec<f64>,
}

/// The multiplexer state machine: feed it what sockets read, carry out what `poll` returns.
/// Times are milliseconds of a monotonic clock (e.g. `Math.floor(performance.now())`).
#[napi]
pub struct Engine {
    inner: Option<mux::Engine>,
}

#[napi]
impl Engine {
    /// Validates `options` and builds an Engine with empty pools.
    #[napi(constructor, catch_unwind)]
    pub fn new(options: EngineOptions) -> Result<Self> {
        let engine = mux::Engine::new(options.into_config()?)
            .map_err(|e| error(INVALID_CONFIG, e.to_string()))?;
        Ok(Engine {
            inner: Some(engine),
        })
    }

    /// Whether `close` was called.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.inner.is_none()
    }

    /// A client connected to a listener speaking `protocol` (with that listener's settings,
    /// when they differ from the Engine's); returns its id.
    #[napi(catch_unwind)]
    pub fn client_open(
        &mut self,
        #[napi(ts_arg_type = "'postgres' | 'mysql'")] protocol: String,
        now_ms: i64,
        listener: Option<ListenerOptions>,
    ) -> Result<i64> {
        let protocol = protocol_named(&protocol).map_err(|e| error(INVALID_ARGUMENT, e.reason))?;
        let now = time(now_ms)?;
        let listener = match listener {
            Some(l) => l
                .into_listener(protocol)
                .map_err(|e| error(INVALID_ARGUMENT, e.reason))?,
            None => mux::Listener::new(protocol),
        };
        let id = self.engine()?.client_open_on(&listener, now);
        Ok(js_id(id.0))
    }

    /// Bytes arrived from client `id`.
    #[napi(catch_unwind)]
    pub fn client_data(&mut self, id: i64, data: JsBuffer, now_ms: i64) -> Result<()> {
        let bytes = copy(data)?;
        let (e, id, now) = self.client(id, now_ms)?;
        e.client_data(id, bytes, now);
        Ok(())
    }

    /// Bytes arrived from upstream `id`.
    #[napi(catch_unwind)]
    pub fn upstream_data(&mut self, id: i64, data: JsBuffer, now_ms: i64) -> Result<()> {
        let bytes = copy(data)?;
        let (e, id, now) = self.upstream(id, now_ms)?;
        e.upstream_data(id, bytes, now);
        Ok(())
    }

    /// Client `id`'s connection closed or failed (not for ids the Engine closed itself).
    #[napi(catch_unwind)]
    pub fn client_closed(&mut self, id: i64, now_ms: i64) -> Result<()> {
        let (e, id, now) = self.client(id, now_ms)?;
        e.client_closed(id, now);
        Ok(())
    }

    /// The connection a ConnectUpstream action asked for is established.
    #[napi(catch_unwind)]
    pub fn upstream_connected(&mut self, id: i64, now_ms: i64) -> Result<()> {
        let (e, id, now) = self.upstream(id, now_ms)?;
        e.upstream_connected(id, now);
        Ok(())
    }

    /// Upstream `id` closed, failed or could not connect; the id is dead.
    #[napi(catch_unwind)]
    pub fn upstream_closed(&mut self, id: i64, now_ms: i64) -> Result<()> {
        let (e, id, now) = self.upstream(id, now_ms)?;
        e.upstream_closed(id, now);
        Ok(())
    }

    /// The side connection of a SendCancel action for upstream `id` is done (closed by the
    /// server, or failed). An id no longer known is fine.
    #[napi(catch_unwind)]
    pub fn cancel_done(&mut self, upstream: i64, now_ms: i64) -> Result<()> {
        let now = time(now_ms)?;
        let id = UpstreamId(engine_id(upstream)?);
        self.engine()?.cancel_done(id, now);
        Ok(())
    }

    /// Time passed: expires whatever is due at `nowMs`.
    #[napi(catch_unwind)]
    pub fn handle_timeout(&mut self, now_ms: i64) -> Result<()> {
        let now = time(now_ms)?;
        self.engine()?.handle_timeout(now);
        Ok(())
    }

    /// When `handleTimeout` must be called next, or null when nothing is armed.
    #[napi(catch_unwind)]
    pub fn next_deadline(&mut self) -> Result<Option<i64>> {
        Ok(self.engine()?.poll_timeout().map(js_time))
    }

    /// The host's write queue to a peer grew past its high-water mark: the Engine pauses
    /// what feeds it (through the actions).
    #[napi(catch_unwind)]
    pub fn send_blocked(&mut self, peer: PeerKind, id: i64, now_ms: i64) -> Result<()> {
        let (e, peer, now) = self.peer(peer, id, now_ms)?;
        e.send_blocked(peer, now);
        Ok(())
    }

    /// The host's write queue to a peer drained below its low-water mark.
    #[napi(catch_unwind)]
    pub fn send_drained(&mut self, peer: PeerKind, id: i64, now_ms: i64) -> Result<()> {
        let (e, peer, now) = self.peer(peer, id, now_ms)?;
        e.send_drained(peer, now);
        Ok(())
    }

    /// Every pending action, in order (an empty array when there is none).
    #[napi(catch_unwind)]
    pub fn poll(&mut self) -> Result<Vec<Action>> {
        let e = self.engine()?;
        let mut out = Vec::new();
        while let Some(a) = e.poll_action() {
            out.push(action(e, a)?);
        }
        Ok(out)
    }

    /// Route `route`'s target (`host:port` or a socket path).
    #[napi(catch_unwind)]
    pub fn route_target(&mut self, route: u32) -> Result<String> {
        let e = self.engine()?;
        e.config()
            .routes
            .get(route as usize)
            .map(|r| r.target.clone())
            .ok_or_else(|| error(INVALID_ARGUMENT, format!("no route {route}")))
    }

    /// Counters per route.
    #[napi(catch_unwind)]
    pub fn stats(&mut self) -> Result<Stats> {
        let e = self.engine()?;
        let s = e.stats();
        let routes = s
            .routes
            .iter()
            .zip(&e.config().routes)
            .map(|(r, route)| route_stats(r, route))
            .collect();
        Ok(Stats {
            clients_logging_in: s.clients_logging_in as f64,
            routes,
            errors: ErrorCounts {
                auth: s.errors.auth as f64,
                protocol: s.errors.protocol as f64,
                upstream: s.errors.upstream as f64,
                timeout: s.errors.timeout as f64,
            },
            wait_buckets_ms: mux::WAIT_BUCKETS_MS.iter().map(|&b| b as f64).collect(),
        })
    }

    /// Whether no client holds an upstream: nothing would be cut short by stopping now.
    #[napi(catch_unwind)]
    pub fn is_idle(&mut self) -> Result<bool> {
        Ok(self.engine()?.is_idle())
    }

    /// Checks a listener's settings (the protocol and names a later `clientOpen` would
    /// refuse) without opening a client.
    #[napi(catch_unwind)]
    pub fn check_listener(
        &self,
        #[napi(ts_arg_type = "'postgres' | 'mysql'")] protocol: String,
        listener: ListenerOptions,
    ) -> Result<()> {
        let protocol = protocol_named(&protocol).map_err(|e| error(INVALID_ARGUMENT, e.reason))?;
        listener
            .into_listener(protocol)
            .map(|_| ())
            .map_err(|e| error(INVALID_ARGUMENT, e.reason))
    }

    /// Drops the Engine's state; later calls throw `MUXQL_WRONG_STATE`. Closing twice is
    /// fine. The host closes its sockets itself.
    #[napi]
    pub fn close(&mut self) {
        self.inner = None;
    }
}

impl Engine {
    fn engine(&mut self) -> Result<&mut mux::Engine> {
        self.inner
            .as_mut()
            .ok_or_else(|| error(WRONG_STATE, "the engine is closed"))
    }

    fn client(&mut self, id: i64, now_ms: i64) -> Result<(&mut mux::Engine, ClientId, u64)> {
        let now = time(now_ms)?;
        let id = ClientId(engine_id(id)?);
        let e = self.engine()?;
        if !e.has_client(id) {
            return Err(error(UNKNOWN_ID, format!("no client {}", id.0)));
        }
        Ok((e, id, now))
    }

    fn upstream(&mut self, id: i64, now_ms: i64) -> Result<(&mut mux::Engine, UpstreamId, u64)> {
        let now = time(now_ms)?;
        let id = UpstreamId(engine_id(id)?);
        let e = self.engine()?;
        if !e.has_upstream(id) {
            return Err(error(UNKNOWN_ID, format!("no upstream {}", id.0)));
        }
        Ok((e, id, now))
    }

    fn peer(
        &mut self,
        kind: PeerKind,
        id: i64,
        now_ms: i64,
    ) -> Result<(&mut mux::Engine, Peer, u64)> {
        Ok(match kind {
            PeerKind::Client => {
                let (e, id, now) = self.client(id, now_ms)?;
                (e, Peer::Client(id), now)
            }
            PeerKind::Upstream => {
                let (e, id, now) = self.upstream(id, now_ms)?;
                (e, Peer::Upstream(id), now)
            }
        })
    }
}

/// Ids are below 2^53 (see muxql's `mux::ids`), so a JavaScript number holds them exactly.
fn js_id(id: u64) -> i64 {
    id as i64
}

fn engine_id(id: i64) -> Result<u64> {
    u64::try_from(id).map_err(|_| error(UNKNOWN_ID, format!("no connection {id}")))
}

fn time(now_ms: i64) -> Result<u64> {
    u64::try_from(now_ms).map_err(|_| error(INVALID_ARGUMENT, "time must not be negative"))
}

fn js_time(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn copy(data: JsBuffer) -> Result<BytesMut> {
    let value = data
        .into_value()
        .map_err(|_| error(INVALID_ARGUMENT, "data must be a Buffer"))?;
    Ok(BytesMut::from(&value[..]))
}

/// The bytes as a Buffer: the allocation moves to JavaScript when nothing else shares it.
fn buffer(bytes: Bytes) -> Buffer {
    Buffer::from(Vec::from(bytes))
}

fn action(e: &mux::Engine, a: mux::Action) -> Result<Action> {
    let simple = |kind, id: u64| Action {
        kind,
        id: js_id(id),
        route: None,
        data: None,
    };
    let unknown = || {
        error(
            WRONG_STATE,
            "an action this addon does not know (version skew)",
        )
    };
    Ok(match a {
        mux::Action::SendClient { id, bytes } => Action {
            data: Some(buffer(bytes)),
            ..simple(ActionKind::SendClient, id.0)
        },
        mux::Action::SendUpstream { id, bytes } => Action {
            data: Some(buffer(bytes)),
            ..simple(ActionKind::SendUpstream, id.0)
        },
        mux::Action::ConnectUpstream { id, route } => Action {
            route: Some(route as u32),
            data: e
                .config()
                .routes
                .get(route)
                .map(|r| Buffer::from(r.target.as_bytes().to_vec())),
            ..simple(ActionKind::ConnectUpstream, id.0)
        },
        mux::Action::CloseClient { id } => simple(ActionKind::CloseClient, id.0),
        mux::Action::CloseUpstream { id } => simple(ActionKind::CloseUpstream, id.0),
        mux::Action::SendCancel {
            route,
            upstream,
            bytes,
        } => Action {
            route: Some(route as u32),
            data: Some(buffer(bytes)),
            ..simple(ActionKind::SendCancel, upstream.0)
        },
        mux::Action::StartTls { id, records } => Action {
            data: Some(buffer(records)),
            ..simple(ActionKind::StartTls, id.0)
        },
        mux::Action::StartUpstreamTls { id, route } => Action {
            route: Some(route as u32),
            ..simple(ActionKind::StartUpstreamTls, id.0)
        },
        mux::Action::PauseReading { peer } => match peer {
            Peer::Client(id) => simple(ActionKind::PauseClient, id.0),
            Peer::Upstream(id) => simple(ActionKind::PauseUpstream, id.0),
            _ => return Err(unknown()),
        },
        mux::Action::ResumeReading { peer } => match peer {
            Peer::Client(id) => simple(ActionKind::ResumeClient, id.0),
            Peer::Upstream(id) => simple(ActionKind::ResumeUpstream, id.0),
            _ => return Err(unknown()),
        },
        _ => return Err(unknown()),
    })
}

fn route_stats(r: &mux::RouteStats, route: &mux::Route) -> RouteStats {
    RouteStats {
        database: route.database.clone(),
        protocol: match route.protocol {
            mux::Protocol::Postgres => "postgres",
            _ => "mysql",
        }
        .to_string(),
        clients: r.clients as f64,
        clients_active: r.clients_active as f64,
        clients_waiting: r.clients_waiting as f64,
        clients_pinned: r.clients_pinned as f64,
        upstreams: r.upstreams as f64,
        upstreams_active: r.upstreams_active as f64,
        upstreams_idle: r.upstreams_idle as f64,
        peak_clients: r.peak_clients as f64,
        peak_upstreams: r.peak_upstreams as f64,
        transactions: r.transactions as f64,
        queries: r.queries as f64,
        bytes_from_clients: r.bytes_from_clients as f64,
        bytes_from_upstreams: r.bytes_from_upstreams as f64,
        wait_ms: r.wait_ms as f64,
        pins: r.pins as f64,
        upstreams_discarded: r.upstreams_discarded as f64,
        pipelined: r.pipelined as f64,
        pipelined_retries: r.pipelined_retries as f64,
        statements: r.statements as f64,
        wait_histogram: r.wait_histogram.iter().map(|&n| n as f64).collect(),
    }
}
