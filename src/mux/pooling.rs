//! Handing upstreams to clients and taking them back, for every protocol: the FIFO wait
//! queue, release after a transaction, retirement, and the deadlines of all of it.
//!
//! What depends on the protocol (replaying a client's state, cleaning an upstream, telling a
//! client why it failed) is asked of the protocol through the seam in [`super::seam`].

use super::config::PoolMode;
use super::engine::Engine;
use super::error::SessionError;
use super::ids::{ClientId, UpstreamId};
use super::session::{UpPhase, Upstream, UpstreamCore};
use super::Action;

/// How long an upstream is held after a cancel the host does not report done.
pub(crate) const CANCEL_GRACE_MS: u64 = 5_000;

/// How an upstream leaves the Engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Departure {
    /// muxql closes it on purpose: the protocol's goodbye, then the host closes it.
    Retired,
    /// It failed (protocol error, timeout): the host closes it.
    Failed,
    /// The host reported its socket closed: nothing is left for the host to do.
    ClosedByHost,
}

impl Engine {
    /// Queues a client for an upstream of its route.
    pub(crate) fn wait_for_upstream(&mut self, id: ClientId) {
        let Some(c) = self.clients.core_mut(id) else {
            return;
        };
        if c.waiting_since.is_some() || c.upstream.is_some() {
            return;
        }
        c.waiting_since = Some(self.now);
        let route = c.route;
        self.pools[route].enqueue(id);
        self.dispatch(route);
    }

    /// Gives idle upstreams to waiting clients, oldest first, lets the protocol share busy
    /// upstreams, and opens connections while clients wait and the pool has room.
    pub(crate) fn dispatch(&mut self, route: usize) {
        while !self.pools[route].idle.is_empty() && self.pools[route].waiting() > 0 {
            let Some(cid) = self.pools[route].queue.pop_front() else {
                break;
            };
            if !self.clients.get(cid.0).is_some_and(|c| c.is_waiting()) {
                continue;
            }
            if let Some(uid) = self.pools[route].idle.pop() {
                self.assign(uid, cid);
            }
        }
        self.share_busy_upstreams(route);
        let pool = &mut self.pools[route];
        if pool.waiting() == 0 {
            pool.queue.clear();
        }
        let needs_baseline = !pool.awaiting_baseline.is_empty() && !self.has_baseline(route);
        let pool = &self.pools[route];
        let wanted = pool.waiting().max(usize::from(needs_baseline));
        let size = self.config.routes[route].pool_size;
        let mut missing = wanted.saturating_sub(pool.connecting());
        while missing > 0 && self.pools[route].total() < size {
            self.connect_upstream(route);
            missing -= 1;
        }
    }

    /// Sends waiting clients of `route`, oldest first, behind busy upstreams while the pool is
    /// full (transaction mode, `pipeline_depth` > 0), as long as the protocol finds an upstream
    /// the request at the head of the queue may run behind; the queue stays FIFO.
    fn share_busy_upstreams(&mut self, route: usize) {
        let cfg = &self.config.routes[route];
        if self.config.pipeline_depth == 0 || cfg.pool_mode != PoolMode::Transaction {
            return;
        }
        let size = cfg.pool_size;
        loop {
            let pool = &self.pools[route];
            if pool.waiting() == 0 || !pool.idle.is_empty() || pool.total() < size {
                return;
            }
            let Some(&cid) = pool.queue.front() else {
                return;
            };
            if !self.clients.get(cid.0).is_some_and(|c| c.is_waiting()) {
                self.pools[route].queue.pop_front();
                continue;
            }
            let Some(uid) = self.pipeline_target(route, cid) else {
                return;
            };
            self.pools[route].queue.pop_front();
            self.follow(cid, uid);
        }
    }

    /// Opens a new upstream connection for `route`.
    fn connect_upstream(&mut self, route: usize) {
        let deadline = deadline_after(self.now, self.config.connect_timeout_ms);
        let core = UpstreamCore::new(route, self.now, deadline);
        let upstream = self.new_upstream(core);
        let id = UpstreamId(self.upstreams.insert(upstream));
        self.pools[route].open(id);
        self.actions
            .push_back(Action::ConnectUpstream { id, route });
    }

    /// Attaches an idle upstream to a waiting client; the protocol replays the client's
    /// session state on it.
    fn assign(&mut self, uid: UpstreamId, cid: ClientId) {
        let now = self.now;
        let (Some(c), Some(u)) = (self.clients.core_mut(cid), self.upstreams.core_mut(uid)) else {
            return;
        };
        let pool = &mut self.pools[c.route];
        pool.serve(c.waiting_since.take().unwrap_or(now), now);
        pool.attach();
        c.upstream = Some(uid);
        u.phase = UpPhase::Attached(cid);
        self.replay_state(uid, cid);
        self.ready.push_back(cid);
    }

    /// Takes the upstream back from its client after a transaction.
    pub(crate) fn release(&mut self, uid: UpstreamId, cid: ClientId) {
        let Some(c) = self.clients.core_mut(cid) else {
            return;
        };
        c.upstream = None;
        let has_input = !c.buf.is_empty();
        self.pools[c.route].detach(true);
        if has_input {
            self.ready.push_back(cid);
        }
        self.park(uid);
    }

    /// Puts an upstream that serves nobody into its pool's idle list, or retires it when it
    /// is broken, old, or owes answers.
    pub(crate) fn park(&mut self, uid: UpstreamId) {
        let Some(u) = self.upstreams.get_mut(uid.0) else {
            return;
        };
        let clean = Engine::upstream_is_clean(u);
        let core = u.core_mut();
        core.phase = UpPhase::Idle;
        let lifetime = self.config.server_lifetime_ms;
        let expired = lifetime > 0 && self.now.saturating_sub(core.created) >= lifetime;
        if core.broken || expired || !clean || core.side {
            return self.retire(uid);
        }
        if core.cancels > 0 {
            // Held out of the pool until the cancel is done (see `cancel_settled`).
            core.phase = UpPhase::Resetting;
            return;
        }
        core.idle_since = self.now;
        let route = core.route;
        let leftover = !core.buf.is_empty();
        self.pools[route].park(uid);
        if leftover {
            self.upstream_input(uid);
        }
        self.dispatch(route);
    }

    /// Closes an upstream that is not attached to a client.
    pub(crate) fn retire(&mut self, uid: UpstreamId) {
        if let Some(u) = self.forget_upstream(uid, Departure::Retired) {
            self.dispatch(u.core().route);
        }
    }

    /// Removes an upstream from the Engine and its pool and, unless the host reported it
    /// closed, tells the host to close it (after the protocol's goodbye when it is retired and
    /// the connection got that far).
    fn forget_upstream(&mut self, uid: UpstreamId, departure: Departure) -> Option<Upstream> {
        let u = self.upstreams.remove(uid.0)?;
        let core = u.core();
        if departure == Departure::Retired && core.phase != UpPhase::Connecting {
            if let Some(bytes) = self.goodbye(&u) {
                self.actions
                    .push_back(Action::SendUpstream { id: uid, bytes });
            }
        }
        if departure != Departure::ClosedByHost {
            self.actions.push_back(Action::CloseUpstream { id: uid });
        }
        if !core.side {
            self.pools[core.route].forget(uid, core.is_connecting());
        }
        self.release_feeder(core.paused_feeder);
        self.upstream_gone(&u);
        Some(u)
    }

    /// A cancel for what runs on `uid` goes out now: the connection is held out of the pool
    /// until the host reports it done or [`CANCEL_GRACE_MS`] pass.
    pub(crate) fn cancel_sent(&mut self, uid: UpstreamId) {
        if let Some(core) = self.upstreams.core_mut(uid) {
            core.cancels = core.cancels.saturating_add(1);
            core.cancel_deadline = self.now.saturating_add(CANCEL_GRACE_MS);
        }
    }

    /// One cancel for `uid` is done (`all`: stop waiting for any); a connection held only for
    /// them goes back to the pool.
    pub(crate) fn cancel_settled(&mut self, uid: UpstreamId, all: bool) {
        let Some(u) = self.upstreams.get_mut(uid.0) else {
            return;
        };
        let clean = Engine::upstream_is_clean(u);
        let core = u.core_mut();
        if core.cancels == 0 {
            return;
        }
        core.cancels = if all { 0 } else { core.cancels - 1 };
        if core.cancels == 0 {
            core.cancel_deadline = u64::MAX;
            if core.phase == UpPhase::Resetting && clean {
                self.park(uid);
            }
        }
    }

    /// An upstream failed: its client (if any) gets an error for its request, clients that
    /// cannot be served are told why, the host is told to close it, and the pool refills.
    pub(crate) fn upstream_lost(&mut self, uid: UpstreamId, reason: &str) {
        self.lose_upstream(uid, reason, Departure::Failed);
    }

    /// As [`upstream_lost`](Self::upstream_lost) for an upstream the host reported closed: the
    /// host is not asked to close it again (its id may already name another connection).
    pub(crate) fn upstream_closed_by_host(&mut self, uid: UpstreamId) {
        self.lose_upstream(uid, "server connection closed", Departure::ClosedByHost);
    }

    fn lose_upstream(&mut self, uid: UpstreamId, reason: &str, departure: Departure) {
        let Some(u) = self.upstreams.core_mut(uid) else {
            return;
        };
        let route = u.route;
        if u.side {
            self.forget_upstream(uid, departure);
            return;
        }
        let logging_in = u.is_connecting();
        let answered = !logging_in && self.answer_lost(uid, reason);
        let Some(u) = self.upstreams.core_mut(uid) else {
            return;
        };
        if let Some(cid) = u.client() {
            u.phase = UpPhase::Resetting;
            self.pools[route].detach(true);
            self.note_upstream_lost(cid, uid);
            let mut more = false;
            if let Some(c) = self.clients.core_mut(cid) {
                c.upstream = None;
                more = !c.buf.is_empty();
            }
            if !answered {
                self.fail_client(cid, SessionError::UpstreamLost(reason.into()));
            } else if more {
                self.ready.push_back(cid);
            }
        }
        if logging_in {
            self.pools[route].last_error = Some(reason.to_string());
        }
        if self.forget_upstream(uid, departure).is_some() {
            self.pools[route].stats.upstreams_discarded += u64::from(!logging_in);
        }
        if logging_in && self.pools[route].total() == 0 {
            self.fail_unservable(route, reason);
        } else {
            self.dispatch(route);
        }
    }

    /// No upstream of `route` can log in: tell every client waiting for one.
    fn fail_unservable(&mut self, route: usize, reason: &str) {
        let pool = &mut self.pools[route];
        let mut doomed: Vec<ClientId> = std::mem::take(&mut pool.awaiting_baseline);
        doomed.extend(pool.queue.drain(..));
        for cid in doomed {
            let waiting = self.clients.get(cid.0).is_some_and(|c| {
                c.core().upstream.is_none() && (c.core().waiting_since.is_some() || !c.is_ready())
            });
            if waiting {
                self.fail_client(cid, SessionError::Unservable(reason.into()));
            }
        }
    }

    /// Closes a client the Engine is done with.
    pub(crate) fn close_client(&mut self, id: ClientId) {
        if self.clients.get(id.0).is_some() {
            self.actions.push_back(Action::CloseClient { id });
            self.drop_client(id);
        }
    }

    /// Forgets a client whose connection is gone, cleaning its upstream for the next one.
    pub(crate) fn drop_client(&mut self, cid: ClientId) {
        let Some(c) = self.clients.remove(cid.0) else {
            return;
        };
        self.release_feeder(c.core().paused_feeder);
        if c.is_logging_in() {
            self.logging_in = self.logging_in.saturating_sub(1);
            return self.client_gone(cid, c);
        }
        let core = c.core();
        let pool = &mut self.pools[core.route];
        pool.leave();
        pool.awaiting_baseline.retain(|&i| i != cid);
        if core.waiting_since.is_some() {
            pool.unqueue(cid);
        }
        if core.pins != 0 {
            pool.unpin();
        }
        let upstream = core.upstream;
        let discard =
            core.pins != 0 || self.config.routes[core.route].pool_mode == PoolMode::Session;
        if upstream.is_some() {
            self.pools[core.route].detach(true);
        }
        self.client_gone(cid, c);
        if let Some(uid) = upstream {
            if let Some(u) = self.upstreams.core_mut(uid) {
                u.phase = UpPhase::Resetting;
            }
            self.clean_after_client(uid, discard);
        }
    }

    /// Expires logins, waits and idle or old upstreams due at `self.now`.
    pub(crate) fn expire(&mut self) {
        let now = self.now;
        while let Some(&(deadline, cid)) = self.login_deadlines.front() {
            if deadline > now {
                break;
            }
            self.login_deadlines.pop_front();
            if self.clients.get(cid.0).is_some_and(|c| c.is_logging_in()) {
                self.fail_client(cid, SessionError::LoginTimeout);
            }
        }
        for route in 0..self.pools.len() {
            while let Some(&cid) = self.pools[route].queue.front() {
                match self.wait_deadline(cid) {
                    None => {
                        self.pools[route].queue.pop_front();
                    }
                    Some(d) if d <= now => {
                        self.pools[route].queue.pop_front();
                        self.fail_client(cid, SessionError::WaitTimeout);
                    }
                    Some(_) => break,
                }
            }
        }
        let unanswered: Vec<UpstreamId> = self
            .upstreams
            .iter()
            .filter(|(_, u)| u.core().cancels > 0 && u.core().cancel_deadline <= now)
            .map(|(id, _)| UpstreamId(id))
            .collect();
        for uid in unanswered {
            self.cancel_settled(uid, true);
        }
        let due: Vec<(UpstreamId, bool)> = self
            .upstreams
            .iter()
            .filter_map(|(id, u)| {
                let u = u.core();
                match u.phase {
                    UpPhase::Connecting | UpPhase::LoggingIn if u.deadline <= now => {
                        Some((UpstreamId(id), true))
                    }
                    UpPhase::Idle if self.idle_deadline(u) <= now => Some((UpstreamId(id), false)),
                    _ => None,
                }
            })
            .collect();
        for (uid, logging_in) in due {
            if logging_in {
                self.upstream_lost(uid, "timeout while connecting");
            } else {
                self.retire(uid);
            }
        }
    }

    /// When waiting client `cid` runs out of patience (`u64::MAX`: never); `None` when it does
    /// not wait.
    fn wait_deadline(&self, cid: ClientId) -> Option<u64> {
        let c = self.clients.core(cid).filter(|c| c.upstream.is_none())?;
        Some(deadline_after(
            c.waiting_since?,
            self.config.wait_timeout_ms,
        ))
    }

    /// When an idle upstream must go (`u64::MAX`: never).
    fn idle_deadline(&self, u: &UpstreamCore) -> u64 {
        let idle = deadline_after(u.idle_since, self.config.idle_timeout_ms);
        let life = deadline_after(u.created, self.config.server_lifetime_ms);
        idle.min(life)
    }

    /// The earliest deadline the Engine has armed.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        let logins = self.login_deadlines.front().map(|&(d, _)| d);
        let waits = self
            .pools
            .iter()
            .filter_map(|p| self.wait_deadline(*p.queue.front()?));
        let upstreams = self.upstreams.iter().filter_map(|(_, u)| {
            let u = u.core();
            let phase = match u.phase {
                UpPhase::Connecting | UpPhase::LoggingIn => Some(u.deadline),
                UpPhase::Idle => Some(self.idle_deadline(u)),
                _ => None,
            };
            let cancel = (u.cancels > 0).then_some(u.cancel_deadline);
            phase.into_iter().chain(cancel).min()
        });
        logins
            .into_iter()
            .chain(waits)
            .chain(upstreams)
            .filter(|&d| d != u64::MAX)
            .min()
    }
}

/// The deadline `timeout_ms` after `since`; a timeout of 0 means no limit (`u64::MAX`).
pub(crate) fn deadline_after(since: u64, timeout_ms: u64) -> u64 {
    match timeout_ms {
        0 => u64::MAX,
        t => since.saturating_add(t),
    }
}
