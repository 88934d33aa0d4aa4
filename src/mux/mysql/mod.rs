//! MySQL/MariaDB sessions in the Engine: client greeting and authentication, upstream login
//! with session tracking, the relay of commands and responses, state replay, prepared
//! statements across upstreams, and KILL.

pub(crate) mod client;
mod commands;
mod control;
mod diagnostics;
mod failover;
mod pipeline;
pub(crate) mod pool;
mod prepared;
mod responses;
mod state;
mod statements;
pub(crate) mod upstream;
