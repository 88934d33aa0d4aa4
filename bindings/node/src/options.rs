//! The options object of `new Engine(options)`, turned into a muxql [`Config`].
//!
//! Names follow the `muxql` command's TOML settings (docs/configuration.md) in camelCase.

use muxql::mux::{
    ClientAuth, ClientTls, Config, Listener, MysqlAuth, PinPolicy, PoolMode, Protocol, Route,
    UpstreamTls, User,
};
use napi_derive::napi;

use crate::error::{error, Result, INVALID_CONFIG};

/// Where clients asking for one database are sent.
#[napi(object)]
pub struct RouteOptions {
    /// Protocol of the route.
    #[napi(ts_type = "'postgres' | 'mysql'")]
    pub protocol: String,
    /// Database name clients ask for.
    pub database: String,
    /// The server: `host:port` or a Unix socket path (the host connects to it).
    pub target: String,
    /// User muxql logs in as upstream.
    pub upstream_user: String,
    /// Its password (none: trust).
    pub upstream_password: Option<String>,
    /// Database opened upstream (default: `database`).
    pub upstream_database: Option<String>,
    /// Only this client user may use the route (default: every configured user).
    pub client_user: Option<String>,
    /// Most upstream connections (default 10).
    pub pool_size: Option<i64>,
    /// Pool mode (default transaction).
    #[napi(ts_type = "'transaction' | 'session'")]
    pub pool_mode: Option<String>,
    /// TLS to the server (libpq's sslmode names; default disable).
    #[napi(ts_type = "'disable' | 'prefer' | 'require' | 'verify-ca' | 'verify-full'")]
    pub upstream_tls: Option<String>,
    /// PEM file of the CA the server's certificate must chain to (the verify modes need it).
    pub upstream_tls_ca: Option<String>,
    /// PEM file of the client certificate muxql presents (with `upstreamTlsKey`).
    pub upstream_tls_cert: Option<String>,
    /// PEM file of its private key.
    pub upstream_tls_key: Option<String>,
}

/// What the host knows about the listener a client came through.
#[napi(object)]
pub struct ListenerOptions {
    /// The host encrypts the connection itself (TLS from the first byte, wss): it counts as
    /// TLS for `clientTls`, and no TLS is negotiated in the protocol on top of it.
    pub secure: Option<bool>,
    /// PostgreSQL client authentication here (default: the Engine's `auth`).
    #[napi(ts_type = "'scram' | 'md5' | 'cleartext' | 'trust'")]
    pub auth: Option<String>,
    /// MySQL client authentication here (default: the Engine's `mysqlAuth`).
    #[napi(ts_type = "'caching_sha2_password' | 'mysql_native_password'")]
    pub mysql_auth: Option<String>,
    /// TLS negotiated in the protocol here (default: the Engine's `clientTls`).
    #[napi(ts_type = "'off' | 'offer' | 'require'")]
    pub client_tls: Option<String>,
}

impl ListenerOptions {
    /// The Engine's listener settings for clients speaking `protocol`.
    pub fn into_listener(self, protocol: Protocol) -> Result<Listener> {
        let mut l = Listener::new(protocol);
        l.secure = self.secure.unwrap_or(false);
        l.client_auth = named("auth", self.auth.as_deref(), ClientAuth::from_name)?;
        l.mysql_auth = named(
            "mysql auth",
            self.mysql_auth.as_deref(),
            MysqlAuth::from_name,
        )?;
        l.client_tls = named(
            "client tls",
            self.client_tls.as_deref(),
            ClientTls::from_name,
        )?;
        Ok(l)
    }
}

/// A user clients may log in as.
#[napi(object)]
pub struct UserOptions {
    /// User name.
    pub name: String,
    /// Password.
    pub password: String,
}

/// Everything an Engine runs with. Timeouts are in milliseconds, 0 meaning no limit.
#[napi(object)]
pub struct EngineOptions {
    /// Routes, in matching order.
    pub routes: Vec<RouteOptions>,
    /// Users clients may log in as.
    pub users: Option<Vec<UserOptions>>,
    /// Authentication of PostgreSQL clients (default scram).
    #[napi(ts_type = "'scram' | 'md5' | 'cleartext' | 'trust'")]
    pub auth: Option<String>,
    /// Authentication of MySQL clients.
    #[napi(ts_type = "'caching_sha2_password' | 'mysql_native_password'")]
    pub mysql_auth: Option<String>,
    /// What happens to statements that would pin a client to its upstream.
    #[napi(ts_type = "'pin' | 'reject'")]
    pub pin_policy: Option<String>,
    /// TLS for clients: the host terminates it when an action says so.
    #[napi(ts_type = "'off' | 'offer' | 'require'")]
    pub client_tls: Option<String>,
    /// Channel-binding data of the host's TLS certificate (RFC 5929 tls-server-end-point):
    /// with it, clients over TLS are offered SCRAM-SHA-256-PLUS.
    pub tls_server_end_point: Option<napi::bindgen_prelude::Buffer>,
    /// Longest a client waits for an upstream.
    pub wait_timeout_ms: Option<i64>,
    /// Idle upstream connections are closed after this long.
    pub idle_timeout_ms: Option<i64>,
    /// Upstream connections are retired after this long.
    pub server_lifetime_ms: Option<i64>,
    /// Longest an upstream may take to connect and log in.
    pub connect_timeout_ms: Option<i64>,
    /// Longest a client may take to log in.
    pub client_login_timeout_ms: Option<i64>,
    /// Most clients connected at once (0: no limit); more are refused as the servers do.
    pub max_clients: Option<i64>,
    /// Most clients logging in at once (0: no limit); a new one closes the one logging in
    /// the longest.
    pub max_logins: Option<i64>,
    /// Close a client whose upstream fails under its request, instead of answering the
    /// request with an error and keeping its session.
    pub close_on_upstream_loss: Option<bool>,
    /// Most server-side prepared statements per upstream connection.
    pub statement_cache_size: Option<i64>,
    /// Most clients queued behind another's request on one busy upstream (0: off).
    pub pipeline_depth: Option<i64>,
    /// Largest accepted message, in bytes.
    pub max_message: Option<i64>,
    /// Bytes a client may send ahead before the host is told to stop reading from it.
    pub client_backlog_limit: Option<i64>,
    /// PBKDF2 iterations of the SCRAM secrets derived from configured passwords.
    pub scram_iterations: Option<i64>,
    /// 64 hex digits seeding the Engine's random numbers (deterministic tests only).
    pub rng_seed: Option<String>,
}

fn named<T>(what: &str, value: Option<&str>, parse: fn(&str) -> Option<T>) -> Result<Option<T>> {
    value
        .map(|v| parse(v).ok_or_else(|| error(INVALID_CONFIG, format!("unknown {what} {v:?}"))))
        .transpose()
}

fn millis(what: &str, value: Option<i64>, into: &mut u64) -> Result<()> {
    if let Some(v) = value {
        *into = u64::try_from(v)
            .map_err(|_| error(INVALID_CONFIG, format!("{what} must not be negative")))?;
    }
    Ok(())
}

/// A count from JavaScript: a whole number from 0 to `max` (N-API would wrap a negative or
/// oversized one silently).
fn count<T: TryFrom<i64>>(what: &str, value: Option<i64>, into: &mut T) -> Result<()> {
    if let Some(v) = value {
        *into = T::try_from(v)
            .ok()
            .filter(|_| v >= 0)
            .ok_or_else(|| error(INVALID_CONFIG, format!("{what} {v} is out of range")))?;
    }
    Ok(())
}

fn protocol(name: &str) -> Option<Protocol> {
    match name {
        "postgres" => Some(Protocol::Postgres),
        "mysql" => Some(Protocol::Mysql),
        _ => None,
    }
}

/// The protocol named `name` (`postgres` or `mysql`).
pub fn protocol_named(name: &str) -> Result<Protocol> {
    named("protocol", Some(name), protocol)?.ok_or_else(|| error(INVALID_CONFIG, "no protocol"))
}

fn seed(hex: &str) -> Option<[u8; 32]> {
    let mut seed = [0u8; 32];
    if hex.len() != 64 {
        return None;
    }
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(seed)
}

impl EngineOptions {
    /// The Config these options describe (validated later by the Engine).
    pub fn into_config(self) -> Result<Config> {
        let mut c = Config::default();
        for r in self.routes {
            let mut route = Route::new(
                protocol_named(&r.protocol)?,
                r.database,
                r.target,
                r.upstream_user,
            );
            route.upstream_password = r.upstream_password.unwrap_or_default();
            if let Some(d) = r.upstream_database {
                route.upstream_database = d;
            }
            route.client_user = r.client_user;
            count("poolSize", r.pool_size, &mut route.pool_size)?;
            if let Some(m) = named("pool mode", r.pool_mode.as_deref(), PoolMode::from_name)? {
                route.pool_mode = m;
            }
            let tls = r.upstream_tls.as_deref();
            if let Some(t) = named("upstream TLS mode", tls, UpstreamTls::from_name)? {
                route.upstream_tls = t;
            }
            route.upstream_tls_ca = r.upstream_tls_ca;
            route.upstream_tls_cert = r.upstream_tls_cert;
            route.upstream_tls_key = r.upstream_tls_key;
            c.routes.push(route);
        }
        for u in self.users.unwrap_or_default() {
            c.users.push(User::new(u.name, u.password));
        }
        let auth = self.auth.as_deref();
        if let Some(a) = named("auth", auth, ClientAuth::from_name)? {
            c.client_auth = a;
        }
        let mysql_auth = self.mysql_auth.as_deref();
        if let Some(a) = named("mysql auth", mysql_auth, MysqlAuth::from_name)? {
            c.mysql_auth = a;
        }
        let pin = self.pin_policy.as_deref();
        if let Some(p) = named("pin policy", pin, PinPolicy::from_name)? {
            c.pin_policy = p;
        }
        if let Some(t) = named(
            "client tls",
            self.client_tls.as_deref(),
            ClientTls::from_name,
        )? {
            c.client_tls = t;
        }
        c.tls_server_end_point = self.tls_server_end_point.map(|b| b.to_vec());
        millis(
            "waitTimeoutMs",
            self.wait_timeout_ms,
            &mut c.wait_timeout_ms,
        )?;
        millis(
            "idleTimeoutMs",
            self.idle_timeout_ms,
            &mut c.idle_timeout_ms,
        )?;
        millis(
            "serverLifetimeMs",
            self.server_lifetime_ms,
            &mut c.server_lifetime_ms,
        )?;
        millis(
            "connectTimeoutMs",
            self.connect_timeout_ms,
            &mut c.connect_timeout_ms,
        )?;
        millis(
            "clientLoginTimeoutMs",
            self.client_login_timeout_ms,
            &mut c.client_login_timeout_ms,
        )?;
        count("maxClients", self.max_clients, &mut c.max_clients)?;
        count("maxLogins", self.max_logins, &mut c.max_logins)?;
        if let Some(close) = self.close_on_upstream_loss {
            c.close_on_upstream_loss = close;
        }
        count(
            "statementCacheSize",
            self.statement_cache_size,
            &mut c.statement_cache_size,
        )?;
        count("pipelineDepth", self.pipeline_depth, &mut c.pipeline_depth)?;
        count("maxMessage", self.max_message, &mut c.max_message)?;
        count(
            "clientBacklogLimit",
            self.client_backlog_limit,
            &mut c.client_backlog_limit,
        )?;
        count(
            "scramIterations",
            self.scram_iterations,
            &mut c.scram_iterations,
        )?;
        if let Some(hex) = self.rng_seed {
            c.rng_seed =
                Some(seed(&hex).ok_or_else(|| error(INVALID_CONFIG, "rngSeed: 64 hex digits"))?);
        }
        Ok(c)
    }
}
