//! Counters the Engine keeps per route, and of the sessions it ended with an error.

/// Upper bounds of the wait-time histogram's buckets, in milliseconds
/// ([`RouteStats::wait_histogram`]; the last bucket holds longer waits).
pub const WAIT_BUCKETS_MS: [u64; 8] = [1, 5, 10, 50, 100, 500, 1000, 5000];

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
    /// Times a client got an upstream (or a place behind another client's request), each
    /// wait counted in the first bucket of [`WAIT_BUCKETS_MS`] it fits, the longer ones in
    /// the last entry.
    pub wait_histogram: [u64; WAIT_BUCKETS_MS.len() + 1],
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
    /// Client sessions ended with an error, by kind (many happen before a route is known).
    pub errors: ErrorCounts,
}

/// Client sessions the Engine ended with an error, by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorCounts {
    /// Failed logins: wrong password, unknown user or database, TLS required.
    pub auth: u64,
    /// Malformed or unexpected messages, oversized ones, unsupported protocol versions.
    pub protocol: u64,
    /// The upstream failed: lost mid-request, could not connect or log in.
    pub upstream: u64,
    /// Timeouts: login too slow, no upstream free within the wait timeout.
    pub timeout: u64,
}

impl RouteStats {
    /// Counts one wait of `ms` milliseconds in the histogram.
    pub(crate) fn record_wait(&mut self, ms: u64) {
        let bucket = WAIT_BUCKETS_MS
            .iter()
            .position(|&bound| ms <= bound)
            .unwrap_or(WAIT_BUCKETS_MS.len());
        self.wait_histogram[bucket] += 1;
    }
}
