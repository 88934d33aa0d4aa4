//! muxql: an embeddable PostgreSQL and MySQL/MariaDB wire-protocol multiplexer.
//!
//! Layers, each depending only on those above it:
//!
//! ```text
//! wire      limits and the typed codec error            (no I/O, no clock)
//! pg        PostgreSQL framing, typed messages, auth
//! mysql     MySQL/MariaDB packets, handshake, commands, responses, auth
//! mux       the sans-I/O multiplexer Engine
//! server    tokio driver and the `muxql` command         (feature "server")
//! ffi       the C ABI over mux (include/muxql.h)
//! ```

pub mod ffi;
pub mod mux;
pub mod mysql;
pub mod pg;
#[cfg(feature = "server")]
pub mod server;
pub mod wire;
