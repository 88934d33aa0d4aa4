//! One route's pool: its upstreams, the idle list, the FIFO queue of clients waiting for one,
//! and the counters, which only the transitions below change.
//!
//! Every transition saturates instead of underflowing, and [`Pool::recount`] rebuilds the
//! counters from what exists, so a test or a fuzz target can check that they never drift.

use std::collections::VecDeque;

use super::ids::{ClientId, UpstreamId};
use super::mysql::pool::MyPool;
use super::pg::pool::PgPool;
use super::stats::RouteStats;

/// The state of one route's pool.
#[derive(Debug)]
pub(crate) struct Pool {
    /// Upstreams ready for a client, most recently used last.
    pub(crate) idle: Vec<UpstreamId>,
    /// Clients waiting for an upstream, oldest first (may hold stale ids; see `waiting`).
    pub(crate) queue: VecDeque<ClientId>,
    /// Clients really waiting.
    waiting: usize,
    /// Upstreams connecting or logging in.
    connecting: usize,
    /// Every upstream of this pool, in any state.
    members: Vec<UpstreamId>,
    /// Authenticated clients waiting for the pool's first upstream login before they are
    /// welcomed (a protocol tells clients about the server it speaks for).
    pub(crate) awaiting_baseline: Vec<ClientId>,
    /// Counters.
    pub(crate) stats: RouteStats,
    /// The last error an upstream login failed with, told to clients that cannot be served.
    pub(crate) last_error: Option<String>,
    /// What the route's protocol keeps per pool.
    pub(crate) ext: PoolExt,
}

/// Per-pool state owned by the protocols: each route uses its own protocol's part (the other
/// stays empty, which costs no allocation).
#[derive(Debug, Default)]
pub(crate) struct PoolExt {
    /// PostgreSQL: the baseline parameters and the statement registry.
    pg: PgPool,
    /// MySQL: the server version and the statement registry.
    my: MyPool,
}

impl PoolExt {
    /// The PostgreSQL state.
    pub(crate) fn pg(&mut self) -> &mut PgPool {
        &mut self.pg
    }

    /// The MySQL state.
    pub(crate) fn my(&mut self) -> &mut MyPool {
        &mut self.my
    }

    /// The PostgreSQL state, shared.
    pub(crate) fn pg_ref(&self) -> &PgPool {
        &self.pg
    }

    /// The MySQL state, shared.
    pub(crate) fn my_ref(&self) -> &MyPool {
        &self.my
    }

    /// Prepared statements the pool's clients hold.
    pub(crate) fn statements(&self) -> usize {
        self.pg.statements.len() + self.my.statements.len()
    }
}

impl Pool {
    /// An empty pool.
    pub(crate) fn new() -> Self {
        Pool {
            idle: Vec::new(),
            queue: VecDeque::new(),
            waiting: 0,
            connecting: 0,
            members: Vec::new(),
            awaiting_baseline: Vec::new(),
            stats: RouteStats::default(),
            last_error: None,
            ext: PoolExt::default(),
        }
    }

    /// Upstreams that exist in any state.
    pub(crate) fn total(&self) -> usize {
        self.members.len()
    }

    /// Every upstream of the pool.
    pub(crate) fn members(&self) -> &[UpstreamId] {
        &self.members
    }

    /// Clients really waiting for an upstream.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting
    }

    /// Upstreams connecting or logging in.
    pub(crate) fn connecting(&self) -> usize {
        self.connecting
    }

    /// A new upstream starts connecting.
    pub(crate) fn open(&mut self, uid: UpstreamId) {
        self.members.push(uid);
        self.connecting += 1;
        self.stats.peak_upstreams = self.stats.peak_upstreams.max(self.total() as u64);
    }

    /// An upstream finished logging in.
    pub(crate) fn logged_in(&mut self) {
        self.connecting = self.connecting.saturating_sub(1);
        self.last_error = None;
    }

    /// An upstream leaves the pool; `connecting` when it never finished logging in.
    pub(crate) fn forget(&mut self, uid: UpstreamId, connecting: bool) {
        let before = self.members.len();
        self.members.retain(|&i| i != uid);
        self.idle.retain(|&i| i != uid);
        if connecting && self.members.len() < before {
            self.connecting = self.connecting.saturating_sub(1);
        }
    }

    /// An upstream goes back to the idle list.
    pub(crate) fn park(&mut self, uid: UpstreamId) {
        self.idle.push(uid);
    }

    /// A client logged in to this route.
    pub(crate) fn join(&mut self) {
        self.stats.clients += 1;
        self.stats.peak_clients = self.stats.peak_clients.max(self.stats.clients);
    }

    /// A logged-in client left.
    pub(crate) fn leave(&mut self) {
        self.stats.clients = self.stats.clients.saturating_sub(1);
    }

    /// A client starts waiting for an upstream.
    pub(crate) fn enqueue(&mut self, cid: ClientId) {
        self.queue.push_back(cid);
        self.waiting += 1;
    }

    /// A waiting client that started at `since` is served at `now` (an upstream of its own,
    /// or a place behind another client's request): it becomes active.
    pub(crate) fn serve(&mut self, since: u64, now: u64) {
        self.waiting = self.waiting.saturating_sub(1);
        let waited = now.saturating_sub(since);
        self.stats.wait_ms += waited;
        self.stats.record_wait(waited);
        self.stats.clients_active += 1;
    }

    /// A waiting client left the queue without being served.
    pub(crate) fn unqueue(&mut self, cid: ClientId) {
        self.waiting = self.waiting.saturating_sub(1);
        // A stale head of the queue would hide the wait deadlines of those behind it.
        self.queue.retain(|&i| i != cid);
    }

    /// An upstream is attached to an active client.
    pub(crate) fn attach(&mut self) {
        self.stats.upstreams_active += 1;
    }

    /// An attached upstream is taken back from its client (`client`: the client is still
    /// counted active and stops being so).
    pub(crate) fn detach(&mut self, client: bool) {
        self.stats.upstreams_active = self.stats.upstreams_active.saturating_sub(1);
        if client {
            self.deactivate();
        }
    }

    /// An active client stops being active without an upstream of its own (it left while its
    /// request was queued behind another client's).
    pub(crate) fn deactivate(&mut self) {
        self.stats.clients_active = self.stats.clients_active.saturating_sub(1);
    }

    /// A statement pins a client to its upstream (`newly`: it was not pinned before).
    pub(crate) fn pin(&mut self, newly: bool) {
        self.stats.pins += 1;
        if newly {
            self.stats.clients_pinned += 1;
        }
    }

    /// A pinned client is unpinned or left.
    pub(crate) fn unpin(&mut self) {
        self.stats.clients_pinned = self.stats.clients_pinned.saturating_sub(1);
    }

    /// Compares the counters with `actual`, recounted from the clients and upstreams that
    /// exist; returns the name of the first counter that differs.
    pub(crate) fn recount(&self, actual: &Recount) -> Result<(), &'static str> {
        let s = &self.stats;
        let checks = [
            ("waiting", self.waiting as u64, actual.waiting),
            ("connecting", self.connecting as u64, actual.connecting),
            ("clients", s.clients, actual.clients),
            ("clients_active", s.clients_active, actual.clients_active),
            ("clients_pinned", s.clients_pinned, actual.clients_pinned),
            (
                "upstreams_active",
                s.upstreams_active,
                actual.upstreams_active,
            ),
            ("upstreams", self.total() as u64, actual.upstreams),
            (
                "upstreams_idle",
                self.idle.len() as u64,
                actual.upstreams_idle,
            ),
        ];
        match checks.iter().find(|(_, kept, real)| kept != real) {
            Some((name, _, _)) => Err(name),
            None => Ok(()),
        }
    }
}

/// A pool's counters as recounted from the sessions that exist.
#[derive(Debug, Default)]
pub(crate) struct Recount {
    pub(crate) waiting: u64,
    pub(crate) connecting: u64,
    pub(crate) clients: u64,
    pub(crate) clients_active: u64,
    pub(crate) clients_pinned: u64,
    pub(crate) upstreams: u64,
    pub(crate) upstreams_active: u64,
    pub(crate) upstreams_idle: u64,
}
