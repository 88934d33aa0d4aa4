//! Shared harness of muxql's structure-aware fuzz targets: a host that drives the Engine with
//! fuzzer-chosen events, plays its clients and its upstream servers (scripted models), and
//! asserts the invariants listed in `host`.
pub mod host;
pub mod mutation;
pub mod mysql_client;
pub mod mysql_server;
pub mod pg_client;
pub mod pg_server;
pub mod tags;
