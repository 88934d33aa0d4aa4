//! Engine configuration: routes, client credentials, pool and timeout settings.

use crate::wire::limits::{DEFAULT_MAX_MESSAGE, HARD_MAX_MESSAGE};

/// Wire protocol of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// PostgreSQL frontend/backend protocol 3.x.
    Postgres,
    /// MySQL/MariaDB client/server protocol (4.1 and later).
    Mysql,
}

/// When an upstream connection returns to the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PoolMode {
    /// Held by a client from its first request until it disconnects.
    Session,
    /// Held by a client for one transaction (or one request outside a transaction).
    #[default]
    Transaction,
}

/// How MySQL clients prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MysqlAuth {
    /// caching_sha2_password (MySQL 8's default); muxql knows every password, so the fast
    /// path always applies and no RSA or TLS exchange is needed.
    #[default]
    CachingSha2Password,
    /// mysql_native_password (SHA-1 challenge).
    NativePassword,
}

/// How PostgreSQL clients prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientAuth {
    /// SCRAM-SHA-256 (RFC 7677).
    #[default]
    ScramSha256,
    /// PostgreSQL MD5 challenge.
    Md5,
    /// Cleartext password (only sensible over TLS).
    Cleartext,
    /// No password: any configured user name is accepted.
    Trust,
}

/// What happens to a statement whose session state cannot follow a client across upstreams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PinPolicy {
    /// Keep the client on its upstream until it disconnects or runs DISCARD ALL.
    #[default]
    Pin,
    /// Refuse the statement with an error.
    Reject,
}

/// Whether PostgreSQL clients may, or must, switch their connection to TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientTls {
    /// SSLRequest is answered `N`: the host cannot do TLS.
    #[default]
    Off,
    /// SSLRequest is answered `S` and the host told to start TLS ([`Action::StartTls`]).
    ///
    /// [`Action::StartTls`]: super::Action::StartTls
    Offer,
    /// As `Offer`, and a client that logs in without TLS is refused.
    Require,
}

/// A user clients may log in as.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct User {
    /// Login name.
    pub name: String,
    /// Password in clear; muxql derives SCRAM and MD5 secrets from it at start-up.
    pub password: String,
}

impl User {
    /// A user logging in as `name` with `password`.
    pub fn new(name: impl Into<String>, password: impl Into<String>) -> Self {
        User {
            name: name.into(),
            password: password.into(),
        }
    }
}

/// TLS from muxql to a route's server, with libpq's `sslmode` names. The Engine negotiates
/// it (PostgreSQL's SSLRequest, MySQL's CLIENT_SSL) and asks the host to run the handshake
/// ([`Action::StartUpstreamTls`](super::Action::StartUpstreamTls)); the host checks the
/// certificate as the mode says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UpstreamTls {
    /// Plaintext.
    #[default]
    Disable,
    /// TLS when the server offers it, plaintext when it does not.
    Prefer,
    /// TLS or no connection. The certificate is checked only against a CA file when one
    /// is given (as [`UpstreamTls::VerifyCa`]), as libpq does.
    Require,
    /// TLS with a certificate chain that ends at the route's CA.
    VerifyCa,
    /// As [`UpstreamTls::VerifyCa`], and the certificate names the target's host.
    VerifyFull,
}

impl UpstreamTls {
    /// Accepted names, for messages.
    pub const NAMES: &'static str = "disable, prefer, require, verify-ca, verify-full";

    /// The mode named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "disable" => Some(UpstreamTls::Disable),
            "prefer" => Some(UpstreamTls::Prefer),
            "require" => Some(UpstreamTls::Require),
            "verify-ca" => Some(UpstreamTls::VerifyCa),
            "verify-full" => Some(UpstreamTls::VerifyFull),
            _ => None,
        }
    }

    /// Whether muxql asks the server for TLS.
    pub fn requested(self) -> bool {
        self != UpstreamTls::Disable
    }

    /// Whether a server without TLS is refused.
    pub fn required(self) -> bool {
        !matches!(self, UpstreamTls::Disable | UpstreamTls::Prefer)
    }
}

/// Where clients asking for one database are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Route {
    /// Protocol of the route.
    pub protocol: Protocol,
    /// Database name clients ask for.
    pub database: String,
    /// Only this client user may use the route; `None` lets every configured user in.
    pub client_user: Option<String>,
    /// Address of the upstream server, interpreted by the host (`host:port` or a socket path).
    pub target: String,
    /// User muxql logs in as upstream.
    pub upstream_user: String,
    /// Password for `upstream_user` (empty for trust).
    pub upstream_password: String,
    /// Database muxql opens upstream.
    pub upstream_database: String,
    /// Most upstream connections this route opens.
    pub pool_size: usize,
    /// Pool mode of the route.
    pub pool_mode: PoolMode,
    /// TLS to the server.
    pub upstream_tls: UpstreamTls,
    /// PEM file of the CA the server's certificate must chain to (read by the host;
    /// required by the verify modes).
    pub upstream_tls_ca: Option<String>,
    /// PEM file of the client certificate chain muxql presents (read by the host; with
    /// `upstream_tls_key`).
    pub upstream_tls_cert: Option<String>,
    /// PEM file of that certificate's private key.
    pub upstream_tls_key: Option<String>,
}

impl Route {
    /// A route of `protocol` serving clients that ask for `database`, sent to `target` (where
    /// muxql logs in as `upstream_user` to the same database name), open to every configured
    /// user, with a pool of [`Route::DEFAULT_POOL_SIZE`] in transaction mode. Set the other
    /// fields as needed.
    pub fn new(
        protocol: Protocol,
        database: impl Into<String>,
        target: impl Into<String>,
        upstream_user: impl Into<String>,
    ) -> Self {
        let database = database.into();
        Route {
            protocol,
            upstream_database: database.clone(),
            database,
            client_user: None,
            target: target.into(),
            upstream_user: upstream_user.into(),
            upstream_password: String::new(),
            pool_size: Route::DEFAULT_POOL_SIZE,
            pool_mode: PoolMode::default(),
            upstream_tls: UpstreamTls::default(),
            upstream_tls_ca: None,
            upstream_tls_cert: None,
            upstream_tls_key: None,
        }
    }

    /// Pool size of a route built by [`Route::new`].
    pub const DEFAULT_POOL_SIZE: usize = 10;
}

/// Longest timeout accepted, in milliseconds (one year): longer ones are unit mistakes.
pub const MAX_TIMEOUT_MS: u64 = 365 * 24 * 3_600_000;

/// Everything the Engine needs to run; validated by [`Config::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Routes, in matching order.
    pub routes: Vec<Route>,
    /// Users clients may log in as.
    pub users: Vec<User>,
    /// Authentication of PostgreSQL clients.
    pub client_auth: ClientAuth,
    /// Authentication of MySQL clients.
    pub mysql_auth: MysqlAuth,
    /// Handling of statements that cannot be replayed on another upstream.
    pub pin_policy: PinPolicy,
    /// TLS for PostgreSQL clients (the host terminates it; see [`ClientTls`]).
    pub client_tls: ClientTls,
    /// Channel-binding data of the host's TLS certificate (RFC 5929 `tls-server-end-point`:
    /// the hash of its DER encoding): with it, clients over TLS are offered
    /// SCRAM-SHA-256-PLUS, which ties their proof to this TLS connection.
    pub tls_server_end_point: Option<Vec<u8>>,
    /// Longest a client waits for an upstream before it gets an error, in milliseconds.
    ///
    /// Every timeout is in milliseconds, at most [`MAX_TIMEOUT_MS`], and 0 means no limit.
    pub wait_timeout_ms: u64,
    /// Idle upstream connections are closed after this long, in milliseconds (0: never).
    pub idle_timeout_ms: u64,
    /// Upstream connections are retired after this long, in milliseconds (0: never).
    pub server_lifetime_ms: u64,
    /// Longest an upstream may take to connect and log in, in milliseconds (0: no limit).
    pub connect_timeout_ms: u64,
    /// Longest an unauthenticated client may take to log in, in milliseconds (0: no limit).
    pub client_login_timeout_ms: u64,
    /// Most clients connected at once (0: no limit); beyond it a new client is refused with
    /// PostgreSQL's 53300 or MySQL's 1040 "too many connections", as the servers do.
    pub max_clients: usize,
    /// Most clients logging in at once (0: no limit). At the limit a new connection closes
    /// the one that has been logging in the longest: connections that never finish their
    /// login cannot lock real clients out, which log in within milliseconds.
    pub max_logins: usize,
    /// Most server-side prepared statements muxql keeps per upstream connection.
    pub statement_cache_size: usize,
    /// Most clients whose autocommit requests may queue behind another client's on one busy
    /// upstream in transaction mode, while the pool is full; 0 turns pipelining off.
    pub pipeline_depth: usize,
    /// Largest accepted message, in bytes.
    pub max_message: usize,
    /// Bytes of complete requests a client may send ahead while the Engine cannot pass them
    /// on yet; beyond it the host is told to stop reading from the client.
    pub client_backlog_limit: usize,
    /// PBKDF2 iterations for the SCRAM secrets derived from configured passwords.
    pub scram_iterations: u32,
    /// Seed for the Engine's random numbers (salts, nonces, cancel keys); `None` seeds from
    /// the operating system. Fixed seeds exist for deterministic tests.
    pub rng_seed: Option<[u8; 32]>,
    /// When an upstream fails under a client's request, close that client (as PgBouncer
    /// does) instead of answering the request with an error and keeping its session.
    pub close_on_upstream_loss: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            routes: Vec::new(),
            users: Vec::new(),
            client_auth: ClientAuth::default(),
            mysql_auth: MysqlAuth::default(),
            pin_policy: PinPolicy::default(),
            client_tls: ClientTls::default(),
            tls_server_end_point: None,
            wait_timeout_ms: 120_000,
            idle_timeout_ms: 600_000,
            server_lifetime_ms: 3_600_000,
            connect_timeout_ms: 15_000,
            client_login_timeout_ms: 60_000,
            max_clients: 0,
            max_logins: 1000,
            statement_cache_size: 256,
            pipeline_depth: 4,
            max_message: DEFAULT_MAX_MESSAGE,
            client_backlog_limit: 256 * 1024,
            scram_iterations: 4096,
            rng_seed: None,
            close_on_upstream_loss: false,
        }
    }
}

impl PoolMode {
    /// Accepted names, for messages.
    pub const NAMES: &'static str = "transaction, session";

    /// The mode named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "transaction" => Some(PoolMode::Transaction),
            "session" => Some(PoolMode::Session),
            _ => None,
        }
    }
}

impl ClientAuth {
    /// Accepted names, for messages.
    pub const NAMES: &'static str = "scram, md5, cleartext, trust";

    /// The method named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "scram" | "scram-sha-256" => Some(ClientAuth::ScramSha256),
            "md5" => Some(ClientAuth::Md5),
            "cleartext" | "password" => Some(ClientAuth::Cleartext),
            "trust" => Some(ClientAuth::Trust),
            _ => None,
        }
    }
}

impl MysqlAuth {
    /// Accepted names, for messages.
    pub const NAMES: &'static str = "caching_sha2_password, mysql_native_password";

    /// The plugin named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "caching_sha2_password" | "caching_sha2" => Some(MysqlAuth::CachingSha2Password),
            "mysql_native_password" | "native" => Some(MysqlAuth::NativePassword),
            _ => None,
        }
    }
}

impl ClientTls {
    /// Accepted names, for messages.
    pub const NAMES: &'static str = "off, offer, require";

    /// The setting named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "off" => Some(ClientTls::Off),
            "offer" => Some(ClientTls::Offer),
            "require" => Some(ClientTls::Require),
            _ => None,
        }
    }
}

impl PinPolicy {
    /// Accepted names, for messages.
    pub const NAMES: &'static str = "pin, reject";

    /// The policy named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "pin" => Some(PinPolicy::Pin),
            "reject" => Some(PinPolicy::Reject),
            _ => None,
        }
    }
}

/// Why a [`Config`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No route is configured.
    #[error("no route configured")]
    NoRoutes,
    /// A route has a pool size of zero.
    #[error("route for database {0:?} has pool size 0")]
    EmptyPool(String),
    /// A route's upstream TLS settings do not fit together.
    #[error("route for database {database:?}: {problem}")]
    UpstreamTls {
        /// The route's database.
        database: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// `max_message` is outside 1 KiB ..= 1 GiB.
    #[error("max message size {0} is outside 1024..=1073741824")]
    MaxMessage(usize),
    /// The statement cache cannot hold a single statement.
    #[error("statement cache size must be at least 1")]
    StatementCache,
    /// A user name appears twice.
    #[error("user {0:?} is configured twice")]
    DuplicateUser(String),
    /// SCRAM iteration count outside 1 ..= 10,000,000.
    #[error("scram iterations {0} is outside 1..=10000000")]
    ScramIterations(u32),
    /// The operating system gave no random bytes to seed the Engine with.
    #[error("the operating system random generator failed")]
    NoRandomness,
    /// A timeout is longer than [`MAX_TIMEOUT_MS`].
    #[error("{name} of {ms} ms is longer than one year (0 means no limit)")]
    Timeout {
        /// The setting.
        name: &'static str,
        /// The value given.
        ms: u64,
    },
}

impl Config {
    /// Checks the configuration for values the Engine cannot run with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.routes.is_empty() {
            return Err(ConfigError::NoRoutes);
        }
        if let Some(r) = self.routes.iter().find(|r| r.pool_size == 0) {
            return Err(ConfigError::EmptyPool(r.database.clone()));
        }
        for r in &self.routes {
            let problem = if matches!(
                r.upstream_tls,
                UpstreamTls::VerifyCa | UpstreamTls::VerifyFull
            ) && r.upstream_tls_ca.is_none()
            {
                Some("upstream TLS verify-ca and verify-full need a CA file")
            } else if r.upstream_tls_cert.is_some() != r.upstream_tls_key.is_some() {
                Some("an upstream client certificate needs its key, and a key its certificate")
            } else if !r.upstream_tls.requested()
                && (r.upstream_tls_ca.is_some() || r.upstream_tls_cert.is_some())
            {
                Some("upstream TLS files are set but upstream TLS is disabled")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(ConfigError::UpstreamTls {
                    database: r.database.clone(),
                    problem,
                });
            }
        }
        if !(1024..=HARD_MAX_MESSAGE).contains(&self.max_message) {
            return Err(ConfigError::MaxMessage(self.max_message));
        }
        if self.statement_cache_size == 0 {
            return Err(ConfigError::StatementCache);
        }
        let timeouts = [
            ("wait_timeout", self.wait_timeout_ms),
            ("idle_timeout", self.idle_timeout_ms),
            ("server_lifetime", self.server_lifetime_ms),
            ("connect_timeout", self.connect_timeout_ms),
            ("client_login_timeout", self.client_login_timeout_ms),
        ];
        if let Some(&(name, ms)) = timeouts.iter().find(|(_, ms)| *ms > MAX_TIMEOUT_MS) {
            return Err(ConfigError::Timeout { name, ms });
        }
        if !(1..=10_000_000).contains(&self.scram_iterations) {
            return Err(ConfigError::ScramIterations(self.scram_iterations));
        }
        for (i, u) in self.users.iter().enumerate() {
            if self.users[..i].iter().any(|o| o.name == u.name) {
                return Err(ConfigError::DuplicateUser(u.name.clone()));
            }
        }
        Ok(())
    }

    /// Index of the route of `protocol` serving `user` asking for `database`; an empty
    /// `database` matches the first route open to `user` (MySQL clients need not name one).
    pub fn route_for(&self, protocol: Protocol, database: &str, user: &str) -> Option<usize> {
        self.routes.iter().position(|r| {
            r.protocol == protocol
                && (database.is_empty() || r.database == database)
                && r.client_user.as_deref().is_none_or(|u| u == user)
        })
    }
}
