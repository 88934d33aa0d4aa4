//! The Engine: inputs from the host, actions back, pools in between.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use bytes::BytesMut;

use super::action::Action;
use super::config::{Config, ConfigError, Protocol};
use super::error::{ErrorKind, SessionError};
use super::ids::{ClientId, Slots, UpstreamId};
use super::listener::Listener;
use super::mysql::client::MyUserSecret;
use super::pg::session::UserSecret;
use super::pg::sql_verdicts::SqlVerdicts;
use super::pool::{Pool, Recount};
use super::pooling::deadline_after;
use super::rng::Rng;
use super::session::{unpin_read_buffer, Client, UpPhase, Upstream};
use super::stats::{ErrorCounts, RouteStats, Stats};
use crate::wire::Limits;

/// The multiplexer state machine. See the [module docs](super).
#[derive(Debug)]
pub struct Engine {
    pub(crate) config: Config,
    pub(crate) limits: Limits,
    pub(crate) rng: Rng,
    pub(crate) now: u64,
    pub(crate) actions: VecDeque<Action>,
    pub(crate) clients: Slots<Client>,
    pub(crate) upstreams: Slots<Upstream>,
    pub(crate) pools: Vec<Pool>,
    /// Login deadlines of clients still logging in, oldest first (stale entries skipped).
    pub(crate) login_deadlines: VecDeque<(u64, ClientId)>,
    /// Clients logging in.
    pub(crate) logging_in: u64,
    /// Clients in the order they connected, for `max_logins` (stale entries skipped).
    pub(crate) logins: VecDeque<ClientId>,
    /// Clients whose buffered input must be looked at again.
    pub(crate) ready: VecDeque<ClientId>,
    /// Clients paused because their held input is over the backlog limit.
    pub(crate) backlogged: Vec<ClientId>,
    /// Routes a reload removed: they take no new clients (see [`Engine::reload`]).
    pub(crate) retired_routes: Vec<bool>,
    /// What the PostgreSQL sessions share across routes.
    pub(crate) pg: PgShared,
    /// What the MySQL sessions share across routes.
    pub(crate) my: MyShared,
    /// Sessions ended with an error, by kind.
    pub(crate) errors: ErrorCounts,
}

/// State the MySQL sessions share across routes.
#[derive(Debug)]
pub(crate) struct MyShared {
    /// Secrets of the configured users.
    pub(crate) users: Vec<Rc<MyUserSecret>>,
    /// Connection id muxql gave a client → the client.
    pub(crate) conn_index: HashMap<u32, ClientId>,
}

/// State the PostgreSQL sessions share across routes.
#[derive(Debug)]
pub(crate) struct PgShared {
    /// Secrets of the configured users.
    pub(crate) users: Vec<Rc<UserSecret>>,
    /// Minted cancel pid → client.
    pub(crate) cancel_index: HashMap<u32, ClientId>,
    /// Classifications of recently seen SQL texts.
    pub(crate) sql_verdicts: SqlVerdicts,
}

impl Engine {
    /// Validates `config` and builds an Engine with empty pools.
    pub fn new(config: Config) -> Result<Engine, ConfigError> {
        config.validate()?;
        let mut rng = Rng::new(config.rng_seed).ok_or(ConfigError::NoRandomness)?;
        let users = config
            .users
            .iter()
            .map(|u| Rc::new(UserSecret::derive(u, config.scram_iterations, &mut rng)))
            .collect();
        let my_users = config
            .users
            .iter()
            .map(|u| Rc::new(MyUserSecret::derive(u)))
            .collect();
        Ok(Engine {
            limits: Limits::with_max_message(config.max_message),
            pools: config.routes.iter().map(|_| Pool::new()).collect(),
            config,
            rng,
            now: 0,
            actions: VecDeque::new(),
            clients: Slots::default(),
            upstreams: Slots::default(),
            login_deadlines: VecDeque::new(),
            logging_in: 0,
            logins: VecDeque::new(),
            ready: VecDeque::new(),
            backlogged: Vec::new(),
            retired_routes: Vec::new(),
            my: MyShared {
                users: my_users,
                conn_index: HashMap::new(),
            },
            pg: PgShared {
                users,
                cancel_index: HashMap::new(),
                sql_verdicts: SqlVerdicts::default(),
            },
            errors: ErrorCounts::default(),
        })
    }

    /// The configuration the Engine runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A client connected to a plaintext listener speaking `protocol`, with the Config's
    /// login settings (see [`Engine::client_open_on`]).
    pub fn client_open(&mut self, protocol: Protocol, now_ms: u64) -> ClientId {
        self.client_open_on(&Listener::new(protocol), now_ms)
    }

    /// A client connected to `listener`.
    pub fn client_open_on(&mut self, listener: &Listener, now_ms: u64) -> ClientId {
        self.now = now_ms;
        let login = listener.resolve(&self.config);
        let client = Engine::new_client(listener.protocol, login);
        let id = ClientId(self.clients.insert(client));
        self.logging_in += 1;
        let deadline = deadline_after(now_ms, self.config.client_login_timeout_ms);
        if deadline != u64::MAX {
            self.login_deadlines.push_back((deadline, id));
        }
        let max_clients = self.config.max_clients;
        if max_clients != 0 && self.clients.len() > max_clients {
            self.fail_client(id, SessionError::TooManyClients);
            return id;
        }
        self.logins.push_back(id);
        self.limit_logins();
        self.client_opened(id);
        self.run_ready();
        id
    }

    /// Holds `max_logins`: closes the clients logging in the longest, beyond the limit.
    fn limit_logins(&mut self) {
        let max = self.config.max_logins as u64;
        if max == 0 {
            self.logins.clear();
            return;
        }
        while self.logging_in > max {
            let Some(oldest) = self.logins.pop_front() else {
                break;
            };
            if self
                .clients
                .get(oldest.0)
                .is_some_and(|c| c.is_logging_in())
            {
                self.fail_client(oldest, SessionError::TooManyLogins);
            }
        }
        // Entries of clients that logged in or left: dropped in bulk once they dominate.
        if self.logins.len() as u64 > 2 * self.logging_in + 64 {
            let clients = &self.clients;
            self.logins
                .retain(|c| clients.get(c.0).is_some_and(|c| c.is_logging_in()));
        }
    }

    /// Bytes arrived from a client.
    pub fn client_data(&mut self, id: ClientId, data: BytesMut, now_ms: u64) {
        self.now = now_ms;
        let Some(c) = self.clients.get_mut(id.0) else {
            return;
        };
        let ready = c.is_ready();
        let core = c.core_mut();
        if ready {
            self.pools[core.route].stats.bytes_from_clients += data.len() as u64;
        }
        if core.buf.is_empty() {
            core.buf = data;
        } else {
            core.buf.unsplit(data);
        }
        self.client_input(id);
        self.run_ready();
        self.check_backlogs(Some(id));
    }

    /// A client's socket closed or failed. Not to be called for ids the Engine closed itself.
    pub fn client_closed(&mut self, id: ClientId, now_ms: u64) {
        self.now = now_ms;
        self.drop_client(id);
        self.run_ready();
    }

    /// The connection announced by [`Action::ConnectUpstream`] is established.
    pub fn upstream_connected(&mut self, id: UpstreamId, now_ms: u64) {
        self.now = now_ms;
        self.upstream_opened(id);
        self.run_ready();
    }

    /// Bytes arrived from an upstream.
    pub fn upstream_data(&mut self, id: UpstreamId, data: BytesMut, now_ms: u64) {
        self.now = now_ms;
        let Some(u) = self.upstreams.core_mut(id) else {
            return;
        };
        self.pools[u.route].stats.bytes_from_upstreams += data.len() as u64;
        if u.buf.is_empty() {
            u.buf = data;
        } else {
            u.buf.unsplit(data);
        }
        self.upstream_input(id);
        if let Some(u) = self.upstreams.core_mut(id) {
            unpin_read_buffer(&mut u.buf);
        }
        self.run_ready();
    }

    /// An upstream's socket closed or failed (or could not connect); the id is dead, and no
    /// [`Action::CloseUpstream`] follows for it.
    pub fn upstream_closed(&mut self, id: UpstreamId, now_ms: u64) {
        self.now = now_ms;
        self.upstream_closed_by_host(id);
        self.run_ready();
    }

    /// The side connection of [`Action::SendCancel`] for `upstream` is done: the server closed
    /// it (it has passed the cancel on) or it failed. The upstream may be reused from now on;
    /// an id no longer known is fine.
    pub fn cancel_done(&mut self, upstream: UpstreamId, now_ms: u64) {
        self.now = now_ms;
        self.cancel_settled(upstream, false);
        self.run_ready();
    }

    /// Time passed; expire whatever is due at `now_ms`.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        self.now = now_ms;
        self.expire();
        self.run_ready();
    }

    /// The next action for the host, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next time [`Engine::handle_timeout`] must be called, if any.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.next_deadline()
    }

    /// Counters per route.
    pub fn stats(&self) -> Stats {
        Stats {
            routes: self
                .pools
                .iter()
                .map(|p| RouteStats {
                    clients_waiting: p.waiting() as u64,
                    upstreams: p.total() as u64,
                    upstreams_idle: p.idle.len() as u64,
                    statements: p.ext.statements() as u64,
                    ..p.stats
                })
                .collect(),
            clients_logging_in: self.logging_in,
            errors: self.errors,
        }
    }

    /// Counts a session ended with an error of `kind`.
    pub(crate) fn count_error(&mut self, kind: ErrorKind) {
        let e = &mut self.errors;
        let n = match kind {
            ErrorKind::Auth => &mut e.auth,
            ErrorKind::Protocol => &mut e.protocol,
            ErrorKind::Upstream => &mut e.upstream,
            ErrorKind::Timeout => &mut e.timeout,
        };
        *n = n.saturating_add(1);
    }

    /// Whether client `id` is open (not yet closed by the host or the Engine).
    pub fn has_client(&self, id: ClientId) -> bool {
        self.clients.get(id.0).is_some()
    }

    /// Whether upstream `id` exists (connecting, idle or in use).
    pub fn has_upstream(&self, id: UpstreamId) -> bool {
        self.upstreams.get(id.0).is_some()
    }

    /// Whether no client holds an upstream: nothing would be cut short by stopping now.
    pub fn is_idle(&self) -> bool {
        self.pools.iter().all(|p| p.stats.upstreams_active == 0)
    }

    /// Processes clients whose input became actionable (an upstream was assigned or
    /// released), then revisits backpressure.
    fn run_ready(&mut self) {
        while let Some(id) = self.ready.pop_front() {
            self.client_input(id);
        }
        self.check_backlogs(None);
    }

    /// Recounts every pool from the clients and upstreams that exist and compares the result
    /// with the counters the Engine keeps; returns which counter of which route differs.
    /// For tests and fuzz targets: counters that drift would misreport load or stall a pool.
    pub fn check_counters(&self) -> Result<(), String> {
        let mut actual: Vec<Recount> = self.pools.iter().map(|_| Recount::default()).collect();
        let mut logging_in = 0;
        for (_, c) in self.clients.iter() {
            if c.is_logging_in() {
                logging_in += 1;
                continue;
            }
            let core = c.core();
            let r = &mut actual[core.route];
            r.clients += 1;
            r.waiting += u64::from(c.is_waiting());
            r.clients_active += u64::from(core.upstream.is_some() || c.is_queued());
            r.clients_pinned += u64::from(core.pins != 0);
        }
        for (_, u) in self.upstreams.iter() {
            let core = u.core();
            if core.side {
                continue;
            }
            let r = &mut actual[core.route];
            r.upstreams += 1;
            r.connecting += u64::from(core.is_connecting());
            r.upstreams_active += u64::from(matches!(core.phase, UpPhase::Attached(_)));
            r.upstreams_idle += u64::from(core.phase == UpPhase::Idle);
        }
        if logging_in != self.logging_in {
            return Err(format!(
                "clients logging in: kept {}, counted {logging_in}",
                self.logging_in
            ));
        }
        for (route, (pool, real)) in self.pools.iter().zip(&actual).enumerate() {
            pool.recount(real)
                .map_err(|name| format!("route {route}: counter {name} differs ({real:?})"))?;
        }
        Ok(())
    }
}
