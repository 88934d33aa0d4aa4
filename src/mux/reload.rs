//! Reloading the configuration of a running Engine without dropping clients.

use std::rc::Rc;

use super::config::{Config, ConfigError, Protocol, Route};
use super::engine::Engine;
use super::mysql::client::MyUserSecret;
use super::pg::session::UserSecret;
use super::pool::Pool;
use super::session::UpPhase;
use crate::wire::Limits;

/// Whether two routes serve the same clients (the same route, perhaps with other settings).
fn same_route(a: &Route, b: &Route) -> bool {
    a.protocol == b.protocol && a.database == b.database && a.client_user == b.client_user
}

/// Whether a route's connections must be opened again (another server or login).
fn moved(a: &Route, b: &Route) -> bool {
    a.target != b.target
        || a.upstream_user != b.upstream_user
        || a.upstream_password != b.upstream_password
        || a.upstream_database != b.upstream_database
}

impl Engine {
    /// Applies `config` while every client stays connected:
    /// - users and settings are replaced (logins already under way finish with the
    ///   credentials they started with);
    /// - a route is matched to the running one with the same protocol, database and client
    ///   user and keeps its pool and its place; when its target or upstream login changed,
    ///   idle connections close at once and busy ones when their client is done with them;
    /// - new routes go after the existing ones; a route the new configuration lacks takes no
    ///   new clients, and its clients keep their connections until they leave.
    ///
    /// [`Engine::config`] shows the routes as merged. Nothing changes when `config` is refused.
    pub fn reload(&mut self, config: Config, now_ms: u64) -> Result<(), ConfigError> {
        config.validate()?;
        self.now = now_ms;
        let mut routes = self.config.routes.clone();
        let mut retired = vec![true; routes.len()];
        let mut renew = Vec::new();
        for r in &config.routes {
            match routes.iter().position(|o| same_route(o, r)) {
                Some(i) => {
                    if moved(&routes[i], r) {
                        renew.push(i);
                    }
                    routes[i] = r.clone();
                    retired[i] = false;
                }
                None => {
                    routes.push(r.clone());
                    retired.push(false);
                    self.pools.push(Pool::new());
                }
            }
        }
        let iterations = config.scram_iterations;
        let rng = &mut self.rng;
        self.pg.users = config
            .users
            .iter()
            .map(|u| Rc::new(UserSecret::derive(u, iterations, rng)))
            .collect();
        self.my.users = config
            .users
            .iter()
            .map(|u| Rc::new(MyUserSecret::derive(u)))
            .collect();
        self.limits = Limits::with_max_message(config.max_message);
        self.config = Config { routes, ..config };
        self.retired_routes = retired;
        for route in renew {
            self.renew_pool(route);
        }
        for route in 0..self.pools.len() {
            self.dispatch(route);
        }
        Ok(())
    }

    /// Whether route `route` takes new clients.
    pub(crate) fn route_open(&self, route: usize) -> bool {
        !self.retired_routes.get(route).copied().unwrap_or(false)
    }

    /// The route of `protocol` serving `user` asking for `database`, among the open ones.
    pub(crate) fn live_route_for(
        &self,
        protocol: Protocol,
        database: &str,
        user: &str,
    ) -> Option<usize> {
        let routes = &self.config.routes;
        (0..routes.len()).find(|&i| {
            let r = &routes[i];
            self.route_open(i)
                && r.protocol == protocol
                && (database.is_empty() || r.database == database)
                && r.client_user.as_deref().is_none_or(|u| u == user)
        })
    }

    /// The route's connections go to another server or login: idle ones close now, the
    /// others once their client is done.
    fn renew_pool(&mut self, route: usize) {
        let members = self.pools[route].members().to_vec();
        for uid in members {
            let Some(u) = self.upstreams.core_mut(uid) else {
                continue;
            };
            u.broken = true;
            if u.phase == UpPhase::Idle {
                self.retire(uid);
            }
        }
    }
}
