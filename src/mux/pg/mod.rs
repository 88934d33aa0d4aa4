//! PostgreSQL sessions in the Engine: client login, upstream login, pooling and the relay of
//! traffic in between.

mod expect;
mod failover;
mod lost_tx;
pub(crate) mod params;
mod peek;
mod pipeline;
pub(crate) mod pool;
mod prepared;
mod relay;
pub(crate) mod session;
pub(crate) mod sql_verdicts;
pub(crate) mod statements;
mod stream;
pub(crate) mod upstream;
