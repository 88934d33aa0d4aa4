//! Clients and upstreams as the protocol-neutral core sees them: the part every protocol
//! shares (route, upstream, wait, deadlines), and the protocol's own session behind it.

use bytes::BytesMut;

use super::ids::{ClientId, Peer, Slots, UpstreamId};
use super::mysql::client::MyClient;
use super::mysql::upstream::MyUpstream;
use super::pg::session::PgClient;
use super::pg::upstream::PgUpstream;

/// What the pooling core knows of every client, whatever its protocol.
#[derive(Debug, Default)]
pub(crate) struct ClientCore {
    /// Index of the client's route (meaningful once it logged in).
    pub(crate) route: usize,
    /// Received bytes not yet handled; empty (no capacity) while idle.
    pub(crate) buf: BytesMut,
    /// The upstream this client holds.
    pub(crate) upstream: Option<UpstreamId>,
    /// When the client started waiting for an upstream.
    pub(crate) waiting_since: Option<u64>,
    /// Pin reasons (protocol-defined bits); non-zero keeps the upstream attached.
    pub(crate) pins: u16,
    /// Why the host was told to stop reading (bits of [`super::backpressure`]); 0: reading.
    pub(crate) paused: u8,
    /// The connection paused because the host's write queue to this client is blocked.
    pub(crate) paused_feeder: Option<Peer>,
}

/// A client session.
#[derive(Debug)]
pub(crate) enum Client {
    /// A PostgreSQL client.
    Pg(PgClient),
    /// A MySQL client.
    My(MyClient),
}

impl Client {
    /// The protocol-neutral part.
    pub(crate) fn core(&self) -> &ClientCore {
        match self {
            Client::Pg(c) => &c.core,
            Client::My(c) => &c.core,
        }
    }

    /// The protocol-neutral part, mutably.
    pub(crate) fn core_mut(&mut self) -> &mut ClientCore {
        match self {
            Client::Pg(c) => &mut c.core,
            Client::My(c) => &mut c.core,
        }
    }

    /// Whether the client is still logging in (not yet counted in a pool).
    pub(crate) fn is_logging_in(&self) -> bool {
        match self {
            Client::Pg(c) => c.is_logging_in(),
            Client::My(c) => c.is_logging_in(),
        }
    }

    /// Whether the client finished login and is served.
    pub(crate) fn is_ready(&self) -> bool {
        match self {
            Client::Pg(c) => c.is_ready(),
            Client::My(c) => c.is_ready(),
        }
    }

    /// Whether the client's request waits behind another client's on a busy upstream.
    pub(crate) fn is_queued(&self) -> bool {
        match self {
            Client::Pg(c) => c.queued_on.is_some(),
            Client::My(c) => c.queued_on.is_some(),
        }
    }

    /// Whether the client waits for an upstream.
    pub(crate) fn is_waiting(&self) -> bool {
        let core = self.core();
        core.waiting_since.is_some() && core.upstream.is_none()
    }
}

/// Where an upstream connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpPhase {
    /// The host is connecting.
    Connecting,
    /// Logging in.
    LoggingIn,
    /// In the pool, ready for a client.
    Idle,
    /// Serving a client.
    Attached(ClientId),
    /// Being cleaned (rollback, state reset) after its client left.
    Resetting,
}

/// What the pooling core knows of every upstream connection, whatever its protocol.
#[derive(Debug)]
pub(crate) struct UpstreamCore {
    pub(crate) route: usize,
    pub(crate) phase: UpPhase,
    /// Received bytes not yet handled.
    pub(crate) buf: BytesMut,
    pub(crate) created: u64,
    pub(crate) idle_since: u64,
    /// Connect/login deadline (`u64::MAX`: none).
    pub(crate) deadline: u64,
    /// Must be closed rather than reused.
    pub(crate) broken: bool,
    /// A side connection (a MySQL KILL): not a member of the pool, closed once done.
    pub(crate) side: bool,
    /// Why the host was told to stop reading (bits of [`super::backpressure`]); 0: reading.
    pub(crate) paused: u8,
    /// The connection paused because the host's write queue to this upstream is blocked.
    pub(crate) paused_feeder: Option<Peer>,
    /// Cancels sent for what runs here that the host has not reported done
    /// ([`Engine::cancel_done`](super::Engine::cancel_done)): until then the connection is not
    /// reused, so that a late cancel cannot reach the next client's query.
    pub(crate) cancels: u16,
    /// When the Engine stops waiting for those reports.
    pub(crate) cancel_deadline: u64,
}

impl UpstreamCore {
    /// A connection of `route` the host starts connecting at `now`, due by `deadline`.
    pub(crate) fn new(route: usize, now: u64, deadline: u64) -> Self {
        UpstreamCore {
            route,
            phase: UpPhase::Connecting,
            buf: BytesMut::new(),
            created: now,
            idle_since: now,
            deadline,
            broken: false,
            side: false,
            paused: 0,
            paused_feeder: None,
            cancels: 0,
            cancel_deadline: u64::MAX,
        }
    }

    /// The client this upstream serves.
    pub(crate) fn client(&self) -> Option<ClientId> {
        match self.phase {
            UpPhase::Attached(c) => Some(c),
            _ => None,
        }
    }

    /// Whether the connection has not finished logging in.
    pub(crate) fn is_connecting(&self) -> bool {
        matches!(self.phase, UpPhase::Connecting | UpPhase::LoggingIn)
    }
}

/// An upstream connection.
#[derive(Debug)]
pub(crate) enum Upstream {
    /// A PostgreSQL server connection.
    Pg(PgUpstream),
    /// A MySQL/MariaDB server connection.
    My(MyUpstream),
}

impl Upstream {
    /// The protocol-neutral part.
    pub(crate) fn core(&self) -> &UpstreamCore {
        match self {
            Upstream::Pg(u) => &u.core,
            Upstream::My(u) => &u.core,
        }
    }

    /// The protocol-neutral part, mutably.
    pub(crate) fn core_mut(&mut self) -> &mut UpstreamCore {
        match self {
            Upstream::Pg(u) => &mut u.core,
            Upstream::My(u) => &mut u.core,
        }
    }
}

impl Slots<Client> {
    /// The PostgreSQL client `id`.
    pub(crate) fn pg(&self, id: ClientId) -> Option<&PgClient> {
        match self.get(id.0)? {
            Client::Pg(c) => Some(c),
            _ => None,
        }
    }

    /// The MySQL client `id`.
    pub(crate) fn my(&self, id: ClientId) -> Option<&MyClient> {
        match self.get(id.0)? {
            Client::My(c) => Some(c),
            _ => None,
        }
    }

    /// The MySQL client `id`, mutably.
    pub(crate) fn my_mut(&mut self, id: ClientId) -> Option<&mut MyClient> {
        match self.get_mut(id.0)? {
            Client::My(c) => Some(c),
            _ => None,
        }
    }

    /// The PostgreSQL client `id`, mutably.
    pub(crate) fn pg_mut(&mut self, id: ClientId) -> Option<&mut PgClient> {
        match self.get_mut(id.0)? {
            Client::Pg(c) => Some(c),
            _ => None,
        }
    }

    /// The neutral part of client `id`.
    pub(crate) fn core(&self, id: ClientId) -> Option<&ClientCore> {
        self.get(id.0).map(Client::core)
    }

    /// The neutral part of client `id`, mutably.
    pub(crate) fn core_mut(&mut self, id: ClientId) -> Option<&mut ClientCore> {
        self.get_mut(id.0).map(Client::core_mut)
    }
}

impl Slots<Upstream> {
    /// The PostgreSQL upstream `id`.
    pub(crate) fn pg(&self, id: UpstreamId) -> Option<&PgUpstream> {
        match self.get(id.0)? {
            Upstream::Pg(u) => Some(u),
            _ => None,
        }
    }

    /// The MySQL upstream `id`.
    pub(crate) fn my(&self, id: UpstreamId) -> Option<&MyUpstream> {
        match self.get(id.0)? {
            Upstream::My(u) => Some(u),
            _ => None,
        }
    }

    /// The MySQL upstream `id`, mutably.
    pub(crate) fn my_mut(&mut self, id: UpstreamId) -> Option<&mut MyUpstream> {
        match self.get_mut(id.0)? {
            Upstream::My(u) => Some(u),
            _ => None,
        }
    }

    /// The PostgreSQL upstream `id`, mutably.
    pub(crate) fn pg_mut(&mut self, id: UpstreamId) -> Option<&mut PgUpstream> {
        match self.get_mut(id.0)? {
            Upstream::Pg(u) => Some(u),
            _ => None,
        }
    }

    /// The neutral part of upstream `id`.
    pub(crate) fn core(&self, id: UpstreamId) -> Option<&UpstreamCore> {
        self.get(id.0).map(Upstream::core)
    }

    /// The neutral part of upstream `id`, mutably.
    pub(crate) fn core_mut(&mut self, id: UpstreamId) -> Option<&mut UpstreamCore> {
        self.get_mut(id.0).map(Upstream::core_mut)
    }
}

/// Largest leftover (a partial frame) copied out of the host's read buffer.
const UNPIN_COPY_LIMIT: usize = 1024;

/// Lets go of the host's read buffer once a session's input is handled: an empty buffer (even
/// one of zero capacity still points into the shared read allocation) is replaced, and a small
/// partial frame is copied out, so idle sessions keep no read memory alive.
pub(crate) fn unpin_read_buffer(buf: &mut BytesMut) {
    if buf.is_empty() {
        *buf = BytesMut::new();
    } else if buf.len() <= UNPIN_COPY_LIMIT {
        *buf = BytesMut::from(&buf[..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fully used read allocation, and a session buffer holding its last `leftover` bytes
    /// after the frames before them were handled.
    fn shared_read(leftover: &[u8]) -> (BytesMut, BytesMut) {
        let mut read = BytesMut::with_capacity(64);
        read.resize(64 - leftover.len(), b'x');
        read.extend_from_slice(leftover);
        let mut part = read.split();
        drop(part.split_to(64 - leftover.len()));
        (read, part)
    }

    #[test]
    fn idle_sessions_keep_no_read_buffer_alive() {
        for leftover in [&b""[..], b"Q\0\0"] {
            let (mut read, mut part) = shared_read(leftover);
            assert!(!read.try_reclaim(64), "still shared before");
            unpin_read_buffer(&mut part);
            assert_eq!(&part[..], leftover);
            assert!(read.try_reclaim(64), "released after");
        }
    }
}
