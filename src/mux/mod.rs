//! The sans-I/O multiplexer: the host feeds socket events in and carries [`Action`]s out.
//!
//! The Engine does no I/O and reads no clock: time is an input in milliseconds. It is
//! single-threaded and deterministic (given [`Config::rng_seed`]): the same inputs give the
//! same actions, which is what makes it testable, fuzzable and embeddable.

mod action;
mod config;
mod engine;
mod ids;
pub(crate) mod pg;
mod pool;
mod rng;
mod stats;

pub use action::Action;
pub use config::{ClientAuth, Config, ConfigError, PinPolicy, PoolMode, Protocol, Route, User};
pub use engine::Engine;
pub use ids::{ClientId, UpstreamId};
pub use stats::{RouteStats, Stats};
