//! What the Engine asks its host to do.

use bytes::Bytes;

use super::ids::{ClientId, Peer, UpstreamId};

/// One instruction for the host, drained with [`Engine::poll_action`](super::Engine::poll_action).
///
/// Actions for one connection must be carried out in the order they are polled.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
    /// Open a side connection to the target of route `route`, write `bytes` (a PostgreSQL
    /// CancelRequest), wait until the server closes it, then report
    /// [`Engine::cancel_done`](super::Engine::cancel_done) for `upstream` (also when it fails).
    /// Until then `upstream` is held out of the pool, so that the cancel cannot reach the next
    /// client's query (at most 5 s when nothing is reported).
    SendCancel {
        /// Index of the route in [`Config::routes`](super::Config::routes).
        route: usize,
        /// The upstream whose query it cancels.
        upstream: UpstreamId,
        /// The complete request.
        bytes: Bytes,
    },
    /// Switch client `id` to TLS (it asked with an SSLRequest, see
    /// [`Config::client_tls`](super::Config::client_tls)): what was written to it so far goes
    /// out as it is (PostgreSQL: it ends with the answer `S`), then everything read from and
    /// written to it is TLS, starting with `records`, the bytes the client sent after its
    /// request (a MySQL client starts its handshake without waiting; PostgreSQL's must wait,
    /// so for it they are empty). When the handshake fails, report the client closed.
    StartTls {
        /// The client.
        id: ClientId,
        /// TLS records already read.
        records: Bytes,
    },
    /// Switch upstream `id` to TLS with route `route`'s settings
    /// ([`Route::upstream_tls`](super::Route::upstream_tls) and its files): what was written
    /// to it so far goes out as it is (PostgreSQL: the SSLRequest; MySQL: the SSLRequest
    /// packet), then everything written is encrypted — the Engine's next bytes for it may
    /// follow at once and wait for the handshake — and everything read is decrypted. Verify
    /// the certificate as the mode says (verify-full: against the target's host name); when
    /// the handshake or the check fails, report the upstream closed.
    StartUpstreamTls {
        /// The upstream.
        id: UpstreamId,
        /// Index of the route in [`Config::routes`](super::Config::routes).
        route: usize,
    },
    /// Stop reading from `peer` until [`Action::ResumeReading`] names it (see
    /// [`Engine::send_blocked`](super::Engine::send_blocked)); bytes already read may still be
    /// fed.
    PauseReading {
        /// The connection.
        peer: Peer,
    },
    /// Read from `peer` again.
    ResumeReading {
        /// The connection.
        peer: Peer,
    },
}
