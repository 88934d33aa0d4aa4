//! PostgreSQL frontend/backend protocol (3.0 and 3.2): framing, typed messages, authentication,
//! and the SQL lexer that finds session effects.

#[cfg(test)]
mod arbitrary;
pub mod auth;
pub mod backend;
#[cfg(test)]
mod differential;
pub mod frame;
pub mod frontend;
mod reader;
pub mod sql;
pub mod sqlstate;
pub mod startup;
mod writer;
