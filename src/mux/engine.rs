//! The Engine: inputs from the host, actions back, pools in between.

use std::collections::{HashMap, VecDeque};

use bytes::BytesMut;

use super::action::Action;
use super::config::{Config, ConfigError, Protocol};
use super::ids::{ClientId, Slots, UpstreamId};
use super::pg::session::{Client, UserSecret};
use super::pg::sql_verdicts::SqlVerdicts;
use super::pg::upstream::Upstream;
use super::pool::Pool;
use super::rng::Rng;
use super::stats::{RouteStats, Stats};
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
    pub(crate) users: Vec<UserSecret>,
    /// Minted cancel pid → client.
    pub(crate) cancel_index: HashMap<u32, ClientId>,
    /// Login deadlines of clients still logging in, oldest first (stale entries skipped).
    pub(crate) login_deadlines: VecDeque<(u64, ClientId)>,
    /// Clients logging in.
    pub(crate) logging_in: u64,
    /// Clients whose buffered input must be looked at again.
    pub(crate) ready: VecDeque<ClientId>,
    /// Classifications of recently seen SQL texts.
    pub(crate) sql_verdicts: SqlVerdicts,
}

impl Engine {
    /// Validates `config` and builds an Engine with empty pools.
    pub fn new(config: Config) -> Result<Engine, ConfigError> {
        config.validate()?;
        let mut rng = Rng::new(config.rng_seed);
        let users = config
            .users
            .iter()
            .map(|u| UserSecret::derive(u, config.scram_iterations, &mut rng))
            .collect();
        Ok(Engine {
            limits: Limits::with_max_message(config.max_message),
            pools: config.routes.iter().map(|_| Pool::default()).collect(),
            config,
            rng,
            now: 0,
            actions: VecDeque::new(),
            clients: Slots::default(),
            upstreams: Slots::default(),
            users,
            cancel_index: HashMap::new(),
            login_deadlines: VecDeque::new(),
            logging_in: 0,
            ready: VecDeque::new(),
            sql_verdicts: SqlVerdicts::default(),
        })
    }

    /// The configuration the Engine runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A client connected to a listener speaking `protocol`.
    pub fn client_open(&mut self, protocol: Protocol, now_ms: u64) -> ClientId {
        self.now = now_ms;
        match protocol {
            Protocol::Postgres => self.pg_client_open(),
        }
    }

    /// Bytes arrived from a client.
    pub fn client_data(&mut self, id: ClientId, data: BytesMut, now_ms: u64) {
        self.now = now_ms;
        self.pg_client_data(id, data);
        self.run_ready();
    }

    /// A client's socket closed or failed. Not to be called for ids the Engine closed itself.
    pub fn client_closed(&mut self, id: ClientId, now_ms: u64) {
        self.now = now_ms;
        self.pg_drop_client(id);
        self.run_ready();
    }

    /// The connection announced by [`Action::ConnectUpstream`] is established.
    pub fn upstream_connected(&mut self, id: UpstreamId, now_ms: u64) {
        self.now = now_ms;
        self.pg_upstream_connected(id);
        self.run_ready();
    }

    /// Bytes arrived from an upstream.
    pub fn upstream_data(&mut self, id: UpstreamId, data: BytesMut, now_ms: u64) {
        self.now = now_ms;
        self.pg_upstream_data(id, data);
        self.run_ready();
    }

    /// An upstream's socket closed or failed (or could not connect).
    pub fn upstream_closed(&mut self, id: UpstreamId, now_ms: u64) {
        self.now = now_ms;
        self.pg_upstream_lost(id, "server connection closed");
        self.run_ready();
    }

    /// Time passed; expire whatever is due at `now_ms`.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        self.now = now_ms;
        self.pg_expire();
        self.run_ready();
    }

    /// The next action for the host, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next time [`Engine::handle_timeout`] must be called, if any.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.pg_next_deadline()
    }

    /// Counters per route.
    pub fn stats(&self) -> Stats {
        Stats {
            routes: self
                .pools
                .iter()
                .map(|p| RouteStats {
                    clients_waiting: p.waiting as u64,
                    upstreams: p.total() as u64,
                    upstreams_idle: p.idle.len() as u64,
                    ..p.stats
                })
                .collect(),
            clients_logging_in: self.logging_in,
        }
    }

    /// Bytes of complete requests a client sent that the Engine holds but cannot pass on yet
    /// (it waits for an upstream, or its turn on one). A host should stop reading from a
    /// client while this is large and resume once it shrinks, as the kernel then holds the
    /// client back; a partial message counts as nothing, so a large one can always complete.
    pub fn client_backlog(&self, id: ClientId) -> usize {
        self.clients
            .get(id.0)
            .filter(|c| c.is_ready())
            .map_or(0, |c| super::pg::session::backlog(&c.buf, &self.limits))
    }

    /// The upstream a client holds, if any (for backpressure in the host).
    pub fn upstream_of_client(&self, id: ClientId) -> Option<UpstreamId> {
        self.clients.get(id.0).and_then(|c| c.upstream)
    }

    /// The client an upstream serves, if any (for backpressure in the host).
    pub fn client_of_upstream(&self, id: UpstreamId) -> Option<ClientId> {
        self.upstreams.get(id.0).and_then(|u| u.client())
    }

    /// Whether no client holds an upstream: nothing would be cut short by stopping now.
    pub fn is_idle(&self) -> bool {
        self.pools.iter().all(|p| p.stats.upstreams_active == 0)
    }

    /// Processes clients whose input became actionable (an upstream was assigned or released).
    fn run_ready(&mut self) {
        while let Some(id) = self.ready.pop_front() {
            self.pg_pump_client(id);
        }
    }
}
