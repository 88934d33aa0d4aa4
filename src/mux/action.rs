//! What the Engine asks its host to do.

use bytes::Bytes;

use super::ids::{ClientId, UpstreamId};

/// One instruction for the host, drained with [`Engine::poll_action`](super::Engine::poll_action).
///
/// Actions for one connection must be carried out in the order they are polled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write `bytes` to the client's socket.
    SendClient {
        /// The client.
        id: ClientId,
        /// Bytes to write, in order after earlier writes.
        bytes: Bytes,
    },
    /// Write `bytes` to the upstream's socket.
    SendUpstream {
        /// The upstream.
        id: UpstreamId,
        /// Bytes to write, in order after earlier writes.
        bytes: Bytes,
    },
    /// Open a connection to the target of route `route` and report it with
    /// [`Engine::upstream_connected`](super::Engine::upstream_connected) or
    /// [`Engine::upstream_closed`](super::Engine::upstream_closed).
    ConnectUpstream {
        /// The id the Engine gives the new connection.
        id: UpstreamId,
        /// Index of the route in [`Config::routes`](super::Config::routes).
        route: usize,
    },
    /// Flush what was sent to the client, then close its socket. The id is dead afterwards.
    CloseClient {
        /// The client.
        id: ClientId,
    },
    /// Close the upstream's socket. The id is dead afterwards.
    CloseUpstream {
        /// The upstream.
        id: UpstreamId,
    },
    /// Open a side connection to the target of route `route`, write `bytes`, and close it
    /// (a PostgreSQL CancelRequest). Nothing is reported back.
    SendCancel {
        /// Index of the route in [`Config::routes`](super::Config::routes).
        route: usize,
        /// The complete request.
        bytes: Bytes,
    },
}
