//! Handing upstreams to clients and taking them back: the FIFO wait queue, release after a
//! transaction, cleaning after a client leaves, and the deadlines of all of it.

use bytes::BytesMut;

use super::expect::{Kind, Pending};
use super::params::sync_statements;
use super::session::{Client, Phase};
use super::upstream::{UpPhase, Upstream, CONNECTION_FAILURE};
use crate::mux::config::PoolMode;
use crate::mux::engine::Engine;
use crate::mux::ids::{ClientId, UpstreamId};
use crate::mux::pool::Pool;
use crate::mux::Action;
use crate::pg::frontend::FrontendMessage;

/// SQLSTATE too_many_connections, for clients that waited too long.
const TOO_MANY_CONNECTIONS: &str = "53300";
/// SQLSTATE protocol_violation, for clients that took too long to log in.
const LOGIN_TIMEOUT: &str = "08P01";

impl Engine {
    /// Queues a client for an upstream of its route.
    pub(crate) fn pg_wait_for_upstream(&mut self, id: ClientId) {
        let Some(c) = self.clients.get_mut(id.0) else {
            return;
        };
        if c.waiting_since.is_some() || c.upstream.is_some() {
            return;
        }
        c.waiting_since = Some(self.now);
        let route = c.route;
        let pool = &mut self.pools[route];
        pool.queue.push_back(id);
        pool.waiting += 1;
        self.pg_dispatch(route);
    }

    /// Gives idle upstreams to waiting clients, oldest first, and opens connections while
    /// clients wait and the pool has room.
    pub(crate) fn pg_dispatch(&mut self, route: usize) {
        while !self.pools[route].idle.is_empty() && self.pools[route].waiting > 0 {
            let Some(cid) = self.pools[route].queue.pop_front() else {
                break;
            };
            let waiting = self
                .clients
                .get(cid.0)
                .is_some_and(|c| c.waiting_since.is_some() && c.upstream.is_none());
            if !waiting {
                continue;
            }
            if let Some(uid) = self.pools[route].idle.pop() {
                self.pg_assign(uid, cid);
            }
        }
        self.pg_pipeline_waiting(route);
        let pool = &mut self.pools[route];
        if pool.waiting == 0 {
            pool.queue.clear();
        }
        let needs_baseline = pool.baseline.is_none() && !pool.awaiting_baseline.is_empty();
        let wanted = pool.waiting.max(usize::from(needs_baseline));
        let size = self.config.routes[route].pool_size;
        let mut missing = wanted.saturating_sub(pool.connecting);
        while missing > 0 && self.pools[route].total() < size {
            self.pg_connect_upstream(route);
            missing -= 1;
        }
    }

    /// Attaches an idle upstream to a waiting client and brings the upstream's session
    /// parameters in line with the client's.
    fn pg_assign(&mut self, uid: UpstreamId, cid: ClientId) {
        let now = self.now;
        let (Some(c), Some(u)) = (self.clients.get_mut(cid.0), self.upstreams.get_mut(uid.0))
        else {
            return;
        };
        let pool = &mut self.pools[c.route];
        stop_waiting(pool, c, now);
        pool.stats.upstreams_active += 1;
        c.upstream = Some(uid);
        u.phase = UpPhase::Attached(cid);
        let mut sql = String::new();
        if sync_statements(&c.params, &u.params, &mut sql) > 0 {
            u.params = c.params.clone();
            u.expect.push(Pending {
                kind: Kind::Query,
                swallow: true,
                stmt: None,
            });
            let mut out = BytesMut::new();
            if FrontendMessage::Query(sql.into()).encode(&mut out).is_ok() {
                self.actions.push_back(Action::SendUpstream {
                    id: uid,
                    bytes: out.freeze(),
                });
            }
        }
        self.ready.push_back(cid);
    }

    /// Takes the upstream back from its client after a transaction.
    pub(crate) fn pg_release(&mut self, uid: UpstreamId, cid: ClientId) {
        let Some(c) = self.clients.get_mut(cid.0) else {
            return;
        };
        c.upstream = None;
        let has_input = !c.buf.is_empty();
        let pool = &mut self.pools[c.route];
        pool.stats.clients_active -= 1;
        pool.stats.upstreams_active -= 1;
        if has_input {
            self.ready.push_back(cid);
        }
        self.pg_park(uid);
    }

    /// Puts an upstream into its pool's idle list, or retires it when it is broken or old.
    pub(crate) fn pg_park(&mut self, uid: UpstreamId) {
        let Some(u) = self.upstreams.get_mut(uid.0) else {
            return;
        };
        // No longer attached: the caller already counted the release, so a retirement below
        // must not count it again.
        u.phase = UpPhase::Idle;
        u.pipeline_ok = false;
        let lifetime = self.config.server_lifetime_ms;
        let expired = lifetime > 0 && self.now.saturating_sub(u.created) >= lifetime;
        if u.broken || expired || !u.expect.is_empty() {
            return self.pg_retire(uid);
        }
        u.idle_since = self.now;
        let route = u.route;
        let leftover = !u.buf.is_empty();
        self.pools[route].idle.push(uid);
        if leftover {
            self.pg_upstream_data(uid, BytesMut::new());
        }
        self.pg_dispatch(route);
    }

    /// Closes an upstream that is not attached to a client.
    pub(crate) fn pg_retire(&mut self, uid: UpstreamId) {
        if let Some(u) = self.pg_forget_upstream(uid, true) {
            self.pg_dispatch(u.route);
        }
    }

    /// Removes an upstream from the Engine and its pool's counts and tells the host to close
    /// it, after a Terminate when `terminate` and the connection got that far.
    fn pg_forget_upstream(&mut self, uid: UpstreamId, terminate: bool) -> Option<Upstream> {
        let u = self.upstreams.remove(uid.0)?;
        let mut out = BytesMut::new();
        if terminate
            && !matches!(u.phase, UpPhase::Connecting)
            && FrontendMessage::Terminate.encode(&mut out).is_ok()
        {
            self.actions.push_back(Action::SendUpstream {
                id: uid,
                bytes: out.freeze(),
            });
        }
        self.actions.push_back(Action::CloseUpstream { id: uid });
        let pool = &mut self.pools[u.route];
        pool.members.retain(|&i| i != uid);
        pool.idle.retain(|&i| i != uid);
        if matches!(u.phase, UpPhase::Connecting | UpPhase::Login(_)) {
            pool.connecting -= 1;
        }
        for cid in u.followers.iter().flatten() {
            self.pg_fail_client(*cid, CONNECTION_FAILURE, "server connection lost");
        }
        Some(u)
    }

    /// An upstream failed or closed: its client (if any) gets an error and is closed, clients
    /// that cannot be served are told why, and the pool refills.
    pub(crate) fn pg_upstream_lost(&mut self, uid: UpstreamId, reason: &str) {
        let Some(u) = self.upstreams.get_mut(uid.0) else {
            return;
        };
        let route = u.route;
        let logging_in = matches!(u.phase, UpPhase::Connecting | UpPhase::Login(_));
        if let Some(cid) = u.client() {
            u.phase = UpPhase::Resetting;
            let pool = &mut self.pools[route];
            pool.stats.upstreams_active -= 1;
            pool.stats.clients_active -= 1;
            if let Some(c) = self.clients.get_mut(cid.0) {
                c.upstream = None;
            }
            self.pg_fail_client(
                cid,
                CONNECTION_FAILURE,
                &format!("server connection lost: {reason}"),
            );
        }
        if logging_in {
            self.pools[route].last_error = Some(reason.to_string());
        }
        if self.pg_forget_upstream(uid, false).is_some() {
            self.pools[route].stats.upstreams_discarded += u64::from(!logging_in);
        }
        if logging_in && self.pools[route].total() == 0 {
            self.pg_fail_unservable(route, reason);
        } else {
            self.pg_dispatch(route);
        }
    }

    /// No upstream of `route` can log in: tell every client waiting for one.
    fn pg_fail_unservable(&mut self, route: usize, reason: &str) {
        let msg = format!("could not connect to upstream server: {reason}");
        let pool = &mut self.pools[route];
        let mut doomed: Vec<ClientId> = std::mem::take(&mut pool.awaiting_baseline);
        doomed.extend(pool.queue.drain(..));
        for cid in doomed {
            let waiting = self.clients.get(cid.0).is_some_and(|c| {
                c.upstream.is_none()
                    && (c.waiting_since.is_some() || matches!(c.phase, Phase::AwaitBaseline))
            });
            if waiting {
                self.pg_fail_client(cid, CONNECTION_FAILURE, &msg);
            }
        }
    }

    /// Forgets a client whose connection is gone, cleaning its upstream for the next one.
    pub(crate) fn pg_drop_client(&mut self, cid: ClientId) {
        let Some(c) = self.clients.remove(cid.0) else {
            return;
        };
        let pool = &mut self.pools[c.route];
        match c.phase {
            Phase::Startup | Phase::Auth(_) => self.logging_in = self.logging_in.saturating_sub(1),
            Phase::AwaitBaseline => {
                pool.stats.clients -= 1;
                pool.awaiting_baseline.retain(|&i| i != cid);
            }
            Phase::Ready => pool.stats.clients -= 1,
        }
        if c.cancel_pid != 0 {
            self.cancel_index.remove(&c.cancel_pid);
        }
        for (_, stmt) in c.stmts {
            pool.statements.release(stmt);
        }
        if c.waiting_since.is_some() {
            pool.waiting -= 1;
            // A stale head of the queue would hide the wait deadlines of those behind it.
            pool.queue.retain(|&i| i != cid);
        }
        if let Some(uid) = c.queued_on {
            // Its request is on the wire already: the answer is dropped when its turn comes.
            pool.stats.clients_active -= 1;
            if let Some(u) = self.upstreams.get_mut(uid.0) {
                for f in u.followers.iter_mut().filter(|f| **f == Some(cid)) {
                    *f = None;
                }
            }
        }
        if c.pins != 0 {
            pool.stats.clients_pinned -= 1;
        }
        let session = self.config.routes[c.route].pool_mode == PoolMode::Session;
        if let Some(uid) = c.upstream {
            pool.stats.clients_active -= 1;
            pool.stats.upstreams_active -= 1;
            self.pg_clean_after_client(uid, c.pins != 0 || session);
        }
    }

    /// Makes an upstream whose client left fit for the next one: roll back an open
    /// transaction, discard session state when the client had any, or close it when a request
    /// was still in flight (its results must reach nobody).
    fn pg_clean_after_client(&mut self, uid: UpstreamId, discard: bool) {
        let Some(u) = self.upstreams.get_mut(uid.0) else {
            return;
        };
        u.phase = UpPhase::Resetting;
        if !u.followers.is_empty() {
            // An autocommit unit is running with others queued behind it: its answer is
            // dropped and the next follower is served after it.
            return;
        }
        if !u.expect.is_empty() {
            self.pools[u.route].stats.upstreams_discarded += 1;
            return self.pg_retire(uid);
        }
        let mut out = BytesMut::new();
        let mut statements = Vec::new();
        if u.tx_status != b'I' {
            statements.push("ROLLBACK");
        }
        if discard {
            statements.push("DISCARD ALL");
            u.prepared.clear();
            u.params.clear();
        }
        if statements.is_empty() {
            return self.pg_park(uid);
        }
        for sql in statements {
            if FrontendMessage::Query(sql.into()).encode(&mut out).is_ok() {
                u.expect.push(Pending {
                    kind: Kind::Query,
                    swallow: true,
                    stmt: None,
                });
            }
        }
        self.actions.push_back(Action::SendUpstream {
            id: uid,
            bytes: out.freeze(),
        });
    }

    /// Expires logins, waits and idle or old upstreams due at `self.now`.
    pub(crate) fn pg_expire(&mut self) {
        let now = self.now;
        while let Some(&(deadline, cid)) = self.login_deadlines.front() {
            if deadline > now {
                break;
            }
            self.login_deadlines.pop_front();
            let logging_in = self
                .clients
                .get(cid.0)
                .is_some_and(|c| matches!(c.phase, Phase::Startup | Phase::Auth(_)));
            if logging_in {
                self.pg_fail_client(cid, LOGIN_TIMEOUT, "client login timeout");
            }
        }
        let wait = self.config.wait_timeout_ms;
        for route in 0..self.pools.len() {
            while let Some(&cid) = self.pools[route].queue.front() {
                let since = self
                    .clients
                    .get(cid.0)
                    .filter(|c| c.upstream.is_none())
                    .and_then(|c| c.waiting_since);
                match since {
                    None => {
                        self.pools[route].queue.pop_front();
                    }
                    Some(s) if s.saturating_add(wait) <= now => {
                        self.pools[route].queue.pop_front();
                        self.pg_fail_client(
                            cid,
                            TOO_MANY_CONNECTIONS,
                            "no upstream connection became free within wait_timeout",
                        );
                    }
                    Some(_) => break,
                }
            }
        }
        let due: Vec<(UpstreamId, bool)> = self
            .upstreams
            .iter()
            .filter_map(|(id, u)| match u.phase {
                UpPhase::Connecting | UpPhase::Login(_) if u.deadline <= now => {
                    Some((UpstreamId(id), true))
                }
                UpPhase::Idle if self.idle_deadline(u.idle_since, u.created) <= now => {
                    Some((UpstreamId(id), false))
                }
                _ => None,
            })
            .collect();
        for (uid, logging_in) in due {
            if logging_in {
                self.pg_upstream_lost(uid, "timeout while connecting");
            } else {
                self.pg_retire(uid);
            }
        }
    }

    /// When an idle upstream created at `created` and idle since `idle_since` must go.
    fn idle_deadline(&self, idle_since: u64, created: u64) -> u64 {
        let idle = match self.config.idle_timeout_ms {
            0 => u64::MAX,
            t => idle_since.saturating_add(t),
        };
        let life = match self.config.server_lifetime_ms {
            0 => u64::MAX,
            t => created.saturating_add(t),
        };
        idle.min(life)
    }

    /// The earliest deadline the Engine has armed.
    pub(crate) fn pg_next_deadline(&self) -> Option<u64> {
        let logins = self.login_deadlines.front().map(|&(d, _)| d);
        let waits = self.pools.iter().filter_map(|p| {
            let cid = p.queue.front()?;
            let since = self.clients.get(cid.0)?.waiting_since?;
            Some(since.saturating_add(self.config.wait_timeout_ms))
        });
        let upstreams = self.upstreams.iter().filter_map(|(_, u)| match u.phase {
            UpPhase::Connecting | UpPhase::Login(_) => Some(u.deadline),
            UpPhase::Idle => Some(self.idle_deadline(u.idle_since, u.created)),
            _ => None,
        });
        logins
            .into_iter()
            .chain(waits)
            .chain(upstreams)
            .filter(|&d| d != u64::MAX)
            .min()
    }
}

/// Counts a waiting client as served from `now`.
pub(crate) fn stop_waiting(pool: &mut Pool, c: &mut Client, now: u64) {
    pool.waiting -= 1;
    pool.stats.wait_ms += now.saturating_sub(c.waiting_since.take().unwrap_or(now));
    pool.stats.clients_active += 1;
}
