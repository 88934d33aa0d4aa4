//! PostgreSQL frontend/backend protocol (3.0 and 3.2): framing, typed messages, authentication,
//! and the SQL lexer that finds session effects.

pub mod frame;
pub mod sql;
pub mod startup;
