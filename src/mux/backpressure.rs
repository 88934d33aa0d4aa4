//! Backpressure: when the host must stop reading from a connection, and when it may read again.
//!
//! One mechanism for every host. The host reports only what it alone knows, that its write
//! queue to a connection grew past its high-water mark ([`Engine::send_blocked`]) or drained
//! ([`Engine::send_drained`]); the Engine answers with [`Action::PauseReading`] and
//! [`Action::ResumeReading`] for the connections that must wait. Two causes pause a reader:
//! - it feeds a connection whose write queue is blocked (an upstream streaming rows to a slow
//!   client, or a client sending to an upstream that does not keep up);
//! - it is a client whose complete requests the Engine holds but cannot pass on yet (it waits
//!   for an upstream), beyond [`Config::client_backlog_limit`](super::Config::client_backlog_limit).
//!
//! A connection is paused once however many causes hold, and resumed when the last one ends.

use super::engine::Engine;
use super::ids::{ClientId, Peer};
use super::session::Client;
use super::Action;

/// Cause bit: the connection feeds one whose write queue is blocked.
pub(crate) const FEEDS_BLOCKED: u8 = 1;
/// Cause bit: the client's held input is over the backlog limit.
pub(crate) const BACKLOG: u8 = 2;

impl Engine {
    /// The host's write queue to `peer` grew past its high-water mark: the connection feeding
    /// `peer` now (the upstream serving a client, or the client an upstream serves) is paused
    /// until [`Engine::send_drained`] is called for `peer`.
    pub fn send_blocked(&mut self, peer: Peer, now_ms: u64) {
        self.now = now_ms;
        let feeder = match peer {
            Peer::Client(id) => self
                .clients
                .core(id)
                .and_then(|c| c.upstream)
                .map(Peer::Upstream),
            Peer::Upstream(id) => self
                .upstreams
                .core(id)
                .and_then(|u| u.client())
                .map(Peer::Client),
        };
        let Some(feeder) = feeder else {
            return;
        };
        let slot = match peer {
            Peer::Client(id) => self.clients.core_mut(id).map(|c| &mut c.paused_feeder),
            Peer::Upstream(id) => self.upstreams.core_mut(id).map(|u| &mut u.paused_feeder),
        };
        match slot {
            Some(slot) if slot.is_none() => *slot = Some(feeder),
            _ => return,
        }
        self.add_pause(feeder, FEEDS_BLOCKED);
    }

    /// The host's write queue to `peer` drained below its low-water mark: the connection paused
    /// for it reads again.
    pub fn send_drained(&mut self, peer: Peer, now_ms: u64) {
        self.now = now_ms;
        let feeder = match peer {
            Peer::Client(id) => self
                .clients
                .core_mut(id)
                .and_then(|c| c.paused_feeder.take()),
            Peer::Upstream(id) => self
                .upstreams
                .core_mut(id)
                .and_then(|u| u.paused_feeder.take()),
        };
        if let Some(feeder) = feeder {
            self.remove_pause(feeder, FEEDS_BLOCKED);
        }
    }

    /// Resumes the connection a departing one had paused.
    pub(crate) fn release_feeder(&mut self, feeder: Option<Peer>) {
        if let Some(feeder) = feeder {
            self.remove_pause(feeder, FEEDS_BLOCKED);
        }
    }

    /// Pauses clients whose held input grew over the limit and resumes those whose input the
    /// Engine passed on. Runs after every input.
    pub(crate) fn check_backlogs(&mut self, touched: Option<ClientId>) {
        let limit = self.config.client_backlog_limit;
        if let Some(id) = touched {
            let over = self.client_backlog(id) > limit;
            let paused = self
                .clients
                .core(id)
                .is_some_and(|c| c.paused & BACKLOG != 0);
            if over && !paused {
                self.add_pause(Peer::Client(id), BACKLOG);
                self.backlogged.push(id);
            }
        }
        if self.backlogged.is_empty() {
            return;
        }
        let mut i = 0;
        while i < self.backlogged.len() {
            let id = self.backlogged[i];
            let alive = self.clients.get(id.0).is_some();
            if alive && self.client_backlog(id) > limit {
                i += 1;
                continue;
            }
            self.backlogged.swap_remove(i);
            if alive {
                self.remove_pause(Peer::Client(id), BACKLOG);
            }
        }
    }

    /// Bytes of complete requests a client sent that the Engine holds but cannot pass on yet
    /// (it waits for an upstream, or its turn on one); a partial message counts as nothing,
    /// so a large one can always complete. Informational: the Engine pauses the client itself.
    pub fn client_backlog(&self, id: ClientId) -> usize {
        match self.clients.get(id.0) {
            Some(Client::Pg(c)) if c.is_ready() => {
                super::pg::session::backlog(&c.core.buf, &self.limits)
            }
            Some(Client::My(c)) if c.is_ready() && !c.uploading => {
                super::mysql::client::backlog(&c.core.buf)
            }
            _ => 0,
        }
    }

    fn add_pause(&mut self, peer: Peer, cause: u8) {
        let Some(paused) = self.paused_mut(peer) else {
            return;
        };
        let was = *paused;
        *paused |= cause;
        if was == 0 {
            self.actions.push_back(Action::PauseReading { peer });
        }
    }

    fn remove_pause(&mut self, peer: Peer, cause: u8) {
        let Some(paused) = self.paused_mut(peer) else {
            return;
        };
        let was = *paused;
        *paused &= !cause;
        if was != 0 && *paused == 0 {
            self.actions.push_back(Action::ResumeReading { peer });
        }
    }

    fn paused_mut(&mut self, peer: Peer) -> Option<&mut u8> {
        match peer {
            Peer::Client(id) => self.clients.core_mut(id).map(|c| &mut c.paused),
            Peer::Upstream(id) => self.upstreams.core_mut(id).map(|u| &mut u.paused),
        }
    }
}
