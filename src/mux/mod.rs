//! The sans-I/O multiplexer: the host feeds socket events in and carries [`Action`]s out.
//!
//! The Engine does no I/O and reads no clock: time is an input in milliseconds. It is
//! single-threaded and deterministic (given [`Config::rng_seed`]): the same inputs give the
//! same actions, which is what makes it testable, fuzzable and embeddable.
//!
//! # Layout
//!
//! The protocol-neutral core:
//! - [`engine`](Engine): the entry points a host calls, and the state behind them;
//! - `session`: clients and upstreams as the core sees them (route, upstream, wait, phase),
//!   each carrying its protocol's own session;
//! - `pool` and `pooling`: one route's pool (idle list, FIFO wait queue, counters changed only
//!   by its transitions) and the handing out, release, retirement and deadlines of upstreams;
//! - `backpressure`: when the host must stop and resume reading, for every host alike;
//! - `config`, `ids`, `action`, `stats`, `error`, `rng`.
//!
//! The seam, `seam`: every question the core asks of a protocol, one dispatch each — log a
//! client or an upstream in, replay a client's state on the upstream it lands on, say whether
//! an upstream is clean enough to reuse, clean up after a client, relay traffic, tell a client
//! why it failed. Behind it, `pg` holds the PostgreSQL sessions.

mod action;
mod backpressure;
mod config;
mod engine;
mod error;
mod ids;
mod listener;
pub(crate) mod mysql;
pub(crate) mod pg;
mod pool;
mod pooling;
mod reload;
mod rng;
mod seam;
mod session;
mod stats;

pub use action::Action;
pub use config::{
    ClientAuth, ClientTls, Config, ConfigError, MysqlAuth, PinPolicy, PoolMode, Protocol, Route,
    UpstreamTls, User, MAX_TIMEOUT_MS,
};
pub use engine::Engine;
pub use ids::{ClientId, Peer, UpstreamId};
pub use listener::Listener;
pub use stats::{ErrorCounts, RouteStats, Stats, WAIT_BUCKETS_MS};
