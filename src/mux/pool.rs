//! One route's pool: idle upstreams, the FIFO queue of clients waiting for one, and counters.

use std::collections::VecDeque;
use std::rc::Rc;

use bytes::Bytes;

use super::ids::{ClientId, UpstreamId};
use super::pg::statements::Registry;
use super::stats::RouteStats;

/// Parameters an upstream reported right after login: what every new client is told, and the
/// reference session parameters are tracked against.
#[derive(Debug)]
pub(crate) struct Baseline {
    /// `(name, value)` as reported, in order.
    pub(crate) params: Vec<(Bytes, Bytes)>,
}

impl Baseline {
    /// Whether `name` (lower case) is a parameter the server reports.
    pub(crate) fn is_reported(&self, name: &str) -> bool {
        self.params
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
    }

    /// The reported value of `name` (lower case).
    pub(crate) fn value(&self, name: &str) -> Option<&Bytes> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }
}

/// The state of one route's pool.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    /// Upstreams ready for a client, most recently used last.
    pub(crate) idle: Vec<UpstreamId>,
    /// Clients waiting for an upstream, oldest first (may hold stale ids; see `waiting`).
    pub(crate) queue: VecDeque<ClientId>,
    /// Clients really waiting.
    pub(crate) waiting: usize,
    /// Upstreams connecting or logging in.
    pub(crate) connecting: usize,
    /// Every upstream of this pool, in any state.
    pub(crate) members: Vec<UpstreamId>,
    /// Parameters reported by the first upstream that logged in.
    pub(crate) baseline: Option<Rc<Baseline>>,
    /// Authenticated clients waiting for `baseline` before they are told login succeeded.
    pub(crate) awaiting_baseline: Vec<ClientId>,
    /// Named prepared statements of this pool's clients.
    pub(crate) statements: Registry,
    /// Counters.
    pub(crate) stats: RouteStats,
    /// The last error an upstream login failed with, told to clients that cannot be served.
    pub(crate) last_error: Option<String>,
}

impl Pool {
    /// Upstreams that exist in any state.
    pub(crate) fn total(&self) -> usize {
        self.members.len()
    }
}
