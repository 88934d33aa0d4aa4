//! PostgreSQL frontend/backend protocol (3.0 and 3.2): framing, typed messages, authentication.

pub mod frame;
pub mod startup;
