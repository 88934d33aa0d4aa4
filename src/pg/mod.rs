//! PostgreSQL protocol: framing, typed messages, authentication and the SQL classifier.

pub mod sql;
