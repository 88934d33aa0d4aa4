//! muxql for Node.js: the Engine API for JavaScript hosts.
//!
//! A host feeds the [`engine::Engine`] what its sockets read and drains the actions it asks
//! for (`poll`, one native call per batch). `lib/` builds the Node-hosted proxy and the
//! in-process pool on top of it.

#![deny(clippy::all)]

mod engine;
mod error;
mod options;
