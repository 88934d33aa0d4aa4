//! Counters the Engine keeps per route.

/// A snapshot of one route's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteStats {
    /// Authenticated clients connected.
    pub clients: u64,
    /// Clients currently holding an upstream.
    pub clients_active: u64,
    /// Clients waiting for an upstream.
    pub clients_waiting: u64,
    /// Clients pinned to their upstream by session state.
    pub clients_pinned: u64,
    /// Upstream connections that exist (connecting, idle or in use).
    pub upstreams: u64,
    /// Upstream connections assigned to a client.
    pub upstreams_active: u64,
    /// Upstream connections idle in the pool.
    pub upstreams_idle: u64,
    /// Most clients ever connected at once.
    pub peak_clients: u64,
    /// Most upstream connections ever open at once.
    pub peak_upstreams: u64,
    /// Transactions (or standalone requests) completed.
    pub transactions: u64,
    /// Queries completed (simple-protocol statements and Execute messages).
    pub queries: u64,
    /// Bytes received from clients.
    pub bytes_from_clients: u64,
    /// Bytes received from upstreams.
    pub bytes_from_upstreams: u64,
    /// Total milliseconds clients spent waiting for an upstream.
    pub wait_ms: u64,
    /// Times a client was pinned.
    pub pins: u64,
    /// Upstream connections closed because they could not be returned clean.
    pub upstreams_discarded: u64,
    /// Requests pipelined behind another client's on a busy upstream.
    pub pipelined: u64,
    /// Pipelined requests run again because a cancel meant for another client stopped them.
    pub pipelined_retries: u64,
    /// Distinct prepared statements the route's clients hold (shared server-side).
    pub statements: u64,
}

/// A snapshot of every route's counters, in route order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Counters per route, indexed like [`Config::routes`](super::Config::routes).
    pub routes: Vec<RouteStats>,
    /// Clients that have not finished logging in.
    pub clients_logging_in: u64,
}
