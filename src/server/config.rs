//! Server configuration: a TOML file and command-line flags merged into a [`ServerConfig`].
//!
//! Flags override the file: scalar flags replace the file's value, `--listen-pg` replaces the
//! file's listener list, and `--upstream` / `--user` entries replace file entries with the same
//! (database, user) / name and are appended otherwise. The schema is documented in
//! `docs/configuration.md`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use super::listen_spec::{FileListener, ListenerSpec};
use super::upstream_url::UpstreamUrl;
use crate::mux::{
    self, ClientAuth, MysqlAuth, PinPolicy, PoolMode, Protocol, Route, UpstreamTls, User,
};

/// Pool size of a route that names none.
pub const DEFAULT_POOL_SIZE: usize = Route::DEFAULT_POOL_SIZE;
/// Time allowed for running transactions to finish after SIGINT/SIGTERM.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// A configuration problem; its `Display` is one line naming the problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or does not match the schema.
    #[error("config file {path}: {message}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// The parser's message, folded to one line.
        message: String,
    },
    /// An `--upstream` / `upstreams` URL is malformed.
    #[error("invalid upstream URL {url:?}: {reason}")]
    UpstreamUrl {
        /// The URL with its password masked.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A listen address is neither `host:port` nor `unix:/path`.
    #[error("invalid listen address {0:?}: expected host:port or unix:/path")]
    ListenAddr(String),
    /// The metrics address is not `host:port` with a literal IP.
    #[error("invalid metrics address {0:?}: expected ip:port")]
    MetricsAddr(String),
    /// A `--user` value is not `NAME:PASSWORD`.
    #[error("invalid user {0:?}: expected NAME:PASSWORD")]
    UserSpec(String),
    /// One user name was given two different passwords.
    #[error("user {0:?} is given two different passwords")]
    UserConflict(String),
    /// A duration is not a number with an optional ms|s|m|h suffix.
    #[error("invalid duration {value:?} for {field}: expected e.g. 500ms, 30s, 5m")]
    Duration {
        /// The setting.
        field: &'static str,
        /// The value given.
        value: String,
    },
    /// An enumerated setting has an unknown value.
    #[error("invalid {field} {value:?}: expected one of {expected}")]
    Choice {
        /// The setting.
        field: &'static str,
        /// The value given.
        value: String,
        /// The accepted values.
        expected: &'static str,
    },
    /// A `[[listeners]]` entry has a bad value.
    #[error("listener {index}: {reason}")]
    Listener {
        /// Zero-based position in `[[listeners]]`.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// A route in the file lacks a required key or has a bad value.
    #[error("route {index}: {reason}")]
    Route {
        /// Zero-based position in `[[routes]]`.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// Neither `--listen-pg` / `listen_pg` nor `--listen-mysql` / `listen_mysql` was given.
    #[error(
        "no listen address: pass --listen-pg ADDR or --listen-mysql ADDR, or set listen_pg or \
         listen_mysql in the config file"
    )]
    NoListener,
    /// No `--upstream` / `upstreams` / `[[routes]]` was given.
    #[error(
        "no upstream: pass --upstream postgres://USER:PASS@HOST:PORT/DB (or mysql://...) or add \
         [[routes]]"
    )]
    NoRoute,
    /// TLS needs both a certificate and a key, and client TLS needs them.
    #[error(
        "TLS needs both --tls-cert FILE and --tls-key FILE (tls_cert, tls_key), and \
         --client-tls offer|require and --listen-wss need them"
    )]
    TlsFiles,
    /// The engine rejected the merged configuration.
    #[error("{0}")]
    Engine(#[from] mux::ConfigError),
}

/// Where a listener accepts connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A TCP `host:port` (host may be a name; resolved at bind time).
    Tcp(String),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl ListenAddr {
    /// Parses `host:port`, `[v6]:port`, `unix:/path` or `/path`.
    pub fn parse(s: &str) -> Result<ListenAddr, ConfigError> {
        let bad = || ConfigError::ListenAddr(s.to_string());
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad());
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        if s.starts_with('/') {
            return Ok(ListenAddr::Unix(PathBuf::from(s)));
        }
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(bad());
        }
        Ok(ListenAddr::Tcp(s.to_string()))
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(a) => f.write_str(a),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Everything the server needs: the engine config, listeners, metrics and shutdown settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The multiplexer configuration handed to [`mux::Engine::new`].
    pub engine: mux::Config,
    /// PostgreSQL listeners.
    pub listen_pg: Vec<ListenAddr>,
    /// MySQL listeners.
    pub listen_mysql: Vec<ListenAddr>,
    /// WebSocket listeners.
    pub listen_ws: Vec<WsListen>,
    /// Listeners with settings of their own (the file's `[[listeners]]`).
    pub listeners: Vec<ListenerSpec>,
    /// Address of the Prometheus `/metrics` endpoint, if any.
    pub metrics: Option<SocketAddr>,
    /// How long running transactions may take to finish after a shutdown signal.
    pub shutdown_timeout: Duration,
    /// Log filter (`tracing` env-filter syntax) from the file or `--log-level`.
    pub log_level: Option<String>,
    /// Certificate and key for PostgreSQL clients that ask for TLS.
    pub tls: Option<TlsFiles>,
}

/// A WebSocket listener: its address, the protocol its clients speak in binary messages, and
/// whether it is `wss` (TLS from the first byte).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsListen {
    /// Where it listens.
    pub addr: ListenAddr,
    /// What its clients speak.
    pub protocol: mux::Protocol,
    /// TLS below the WebSocket.
    pub tls: bool,
}

impl WsListen {
    /// Parses `[pg@|mysql@]ADDR` (PostgreSQL by default).
    pub fn parse(s: &str, tls: bool) -> Result<WsListen, ConfigError> {
        let (protocol, addr) = match s.split_once('@') {
            Some(("mysql", a)) => (mux::Protocol::Mysql, a),
            Some(("pg" | "postgres", a)) => (mux::Protocol::Postgres, a),
            Some(_) => return Err(ConfigError::ListenAddr(s.to_string())),
            None => (mux::Protocol::Postgres, s),
        };
        Ok(WsListen {
            addr: ListenAddr::parse(addr)?,
            protocol,
            tls,
        })
    }
}

/// PEM files of the server's TLS certificate chain (leaf first) and private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// Command-line flags of the `muxql` command.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "muxql",
    version,
    about = "PostgreSQL and MySQL/MariaDB connection multiplexer"
)]
pub struct Args {
    /// PostgreSQL listen address: host:port or unix:/path/.s.PGSQL.5432 (repeatable).
    #[arg(long = "listen-pg", value_name = "ADDR")]
    pub listen_pg: Vec<String>,
    /// MySQL/MariaDB listen address: host:port or unix:/path/mysqld.sock (repeatable).
    #[arg(long = "listen-mysql", value_name = "ADDR")]
    pub listen_mysql: Vec<String>,
    /// WebSocket listen address, [mysql@]host:port (PostgreSQL unless mysql@; repeatable).
    #[arg(long = "listen-ws", value_name = "ADDR")]
    pub listen_ws: Vec<String>,
    /// WebSocket over TLS (wss) listen address, [mysql@]host:port; needs --tls-cert.
    #[arg(long = "listen-wss", value_name = "ADDR")]
    pub listen_wss: Vec<String>,
    /// Upstream server and the credentials clients use (repeatable):
    /// postgres://USER:PASS@HOST:PORT/DB or mysql://USER:PASS@HOST:PORT/DB (also mariadb://).
    #[arg(long, value_name = "URL")]
    pub upstream: Vec<String>,
    /// Upstream connections per route [default: 10].
    #[arg(long = "pool-size", value_name = "N")]
    pub pool_size: Option<usize>,
    /// transaction | session [default: transaction].
    #[arg(long = "pool-mode", value_name = "MODE")]
    pub pool_mode: Option<String>,
    /// Clients that may queue an autocommit request behind another's on a busy upstream;
    /// 0 turns cross-client pipelining off [default: 4].
    #[arg(long = "pipeline-depth", value_name = "N")]
    pub pipeline_depth: Option<usize>,
    /// Most clients connected at once; more are refused with "too many clients" [default:
    /// what the file-descriptor limit allows].
    #[arg(long = "max-clients", value_name = "N")]
    pub max_clients: Option<usize>,
    /// Most clients logging in at once; a new one closes the one logging in the longest
    /// [default: 1000; 0: no limit].
    #[arg(long = "max-logins", value_name = "N")]
    pub max_logins: Option<usize>,
    /// Time a client has to log in, e.g. 10s (0: no limit) [default: 60s].
    #[arg(long = "client-login-timeout", value_name = "DURATION")]
    pub client_login_timeout: Option<String>,
    /// TOML config file; flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// PostgreSQL client authentication: scram | md5 | cleartext | trust [default: scram].
    #[arg(long, value_name = "METHOD")]
    pub auth: Option<String>,
    /// MySQL client authentication: caching_sha2_password | mysql_native_password
    /// [default: caching_sha2_password].
    #[arg(long = "mysql-auth", value_name = "PLUGIN")]
    pub mysql_auth: Option<String>,
    /// Extra client credentials NAME:PASSWORD (repeatable).
    #[arg(long, value_name = "NAME:PASS")]
    pub user: Vec<String>,
    /// What to do with session state that needs a dedicated upstream: pin | reject [default: pin].
    #[arg(long = "pin-policy", value_name = "POLICY")]
    pub pin_policy: Option<String>,
    /// Longest wait of a client for a free upstream, e.g. 30s.
    #[arg(long = "wait-timeout", value_name = "DURATION")]
    pub wait_timeout: Option<String>,
    /// Close upstreams idle longer than this, e.g. 10m.
    #[arg(long = "idle-timeout", value_name = "DURATION")]
    pub idle_timeout: Option<String>,
    /// Upstream connect timeout, e.g. 5s.
    #[arg(long = "connect-timeout", value_name = "DURATION")]
    pub connect_timeout: Option<String>,
    /// Time for running transactions to finish after SIGINT/SIGTERM [default: 10s].
    #[arg(long = "shutdown-timeout", value_name = "DURATION")]
    pub shutdown_timeout: Option<String>,
    /// Log filter, e.g. info, debug, muxql=trace (RUST_LOG takes precedence) [default: info].
    #[arg(long = "log-level", value_name = "FILTER")]
    pub log_level: Option<String>,
    /// PEM certificate chain offered to PostgreSQL clients that ask for TLS.
    #[arg(long = "tls-cert", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long = "tls-key", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// TLS for PostgreSQL clients: off | offer | require [default: offer with --tls-cert, else off].
    #[arg(long = "client-tls", value_name = "MODE")]
    pub client_tls: Option<String>,
}

/// The TOML file, as written (see `docs/configuration.md`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// PostgreSQL listen addresses.
    #[serde(default)]
    pub listen_pg: Vec<String>,
    /// MySQL listen addresses.
    #[serde(default)]
    pub listen_mysql: Vec<String>,
    /// WebSocket listen addresses (`[mysql@]host:port`).
    #[serde(default)]
    pub listen_ws: Vec<String>,
    /// WebSocket over TLS listen addresses.
    #[serde(default)]
    pub listen_wss: Vec<String>,
    /// Listeners with settings of their own.
    #[serde(default)]
    pub listeners: Vec<FileListener>,
    /// Metrics address.
    pub metrics: Option<String>,
    /// Log filter.
    pub log_level: Option<String>,
    /// Shutdown timeout (duration string).
    pub shutdown_timeout: Option<String>,
    /// PostgreSQL client authentication method.
    pub auth: Option<String>,
    /// MySQL client authentication plugin.
    pub mysql_auth: Option<String>,
    /// Pin policy.
    pub pin_policy: Option<String>,
    /// TLS certificate chain (PEM).
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// TLS for PostgreSQL clients.
    pub client_tls: Option<String>,
    /// Default pool size of routes.
    pub pool_size: Option<usize>,
    /// Default pool mode of routes.
    pub pool_mode: Option<String>,
    /// Client wait timeout.
    pub wait_timeout: Option<String>,
    /// Upstream idle timeout.
    pub idle_timeout: Option<String>,
    /// Upstream lifetime.
    pub server_lifetime: Option<String>,
    /// Upstream connect timeout.
    pub connect_timeout: Option<String>,
    /// Client login timeout.
    pub client_login_timeout: Option<String>,
    /// Most clients connected at once.
    pub max_clients: Option<usize>,
    /// Most clients logging in at once.
    pub max_logins: Option<usize>,
    /// Prepared statements cached per pool.
    pub statement_cache_size: Option<usize>,
    /// Cross-client pipelining depth (0: off).
    pub pipeline_depth: Option<usize>,
    /// Close a client whose upstream fails under its request, instead of answering the
    /// request with an error and keeping its session.
    pub close_on_upstream_loss: Option<bool>,
    /// Largest accepted protocol message in bytes.
    pub max_message: Option<usize>,
    /// SCRAM iteration count for client authentication.
    pub scram_iterations: Option<u32>,
    /// Upstream URLs, as with `--upstream`.
    #[serde(default)]
    pub upstreams: Vec<String>,
    /// Client credentials.
    #[serde(default)]
    pub users: Vec<FileUser>,
    /// Explicit routes.
    #[serde(default)]
    pub routes: Vec<FileRoute>,
}

/// A `[[users]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUser {
    /// Login name.
    pub name: String,
    /// Password clients authenticate with.
    pub password: String,
}

/// A `[[routes]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRoute {
    /// Protocol: postgres (default) or mysql.
    pub protocol: Option<String>,
    /// Database name clients ask for.
    pub database: String,
    /// Only this client user takes the route; any user when absent.
    pub client_user: Option<String>,
    /// Upstream `host:port` or unix socket path.
    pub target: String,
    /// User muxql logs in upstream as.
    pub upstream_user: String,
    /// Password of `upstream_user`.
    #[serde(default)]
    pub upstream_password: String,
    /// Upstream database; defaults to `database`.
    pub upstream_database: Option<String>,
    /// Pool size; defaults to the top-level `pool_size`.
    pub pool_size: Option<usize>,
    /// Pool mode; defaults to the top-level `pool_mode`.
    pub pool_mode: Option<String>,
    /// TLS to the server: disable (default), prefer, require, verify-ca, verify-full.
    pub tls: Option<String>,
    /// CA file the server's certificate must chain to (PEM).
    pub tls_ca_file: Option<PathBuf>,
    /// Client certificate chain muxql presents (PEM).
    pub tls_cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    pub tls_key_file: Option<PathBuf>,
}

/// Parses `500ms`, `30s`, `5m`, `1h`, or a bare number of seconds.
pub fn parse_duration(field: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let err = || ConfigError::Duration {
        field,
        value: value.to_string(),
    };
    let v = value.trim();
    let digits = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(digits);
    let n: u64 = num.parse().map_err(|_| err())?;
    let ms = match unit.trim() {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1_000),
        "m" | "min" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    };
    ms.map(Duration::from_millis).ok_or_else(err)
}

fn duration_ms(field: &'static str, value: &str) -> Result<u64, ConfigError> {
    let d = parse_duration(field, value)?;
    u64::try_from(d.as_millis()).map_err(|_| ConfigError::Duration {
        field,
        value: value.to_string(),
    })
}

/// Parses `transaction` or `session`.
pub fn parse_pool_mode(value: &str) -> Result<PoolMode, ConfigError> {
    PoolMode::from_name(value).ok_or_else(|| ConfigError::Choice {
        field: "pool mode",
        value: value.to_string(),
        expected: PoolMode::NAMES,
    })
}

/// Parses `scram`, `md5`, `cleartext` or `trust`.
pub fn parse_auth(value: &str) -> Result<ClientAuth, ConfigError> {
    ClientAuth::from_name(value).ok_or_else(|| ConfigError::Choice {
        field: "auth",
        value: value.to_string(),
        expected: ClientAuth::NAMES,
    })
}

/// Parses `caching_sha2_password` or `mysql_native_password`.
pub fn parse_mysql_auth(value: &str) -> Result<MysqlAuth, ConfigError> {
    MysqlAuth::from_name(value).ok_or_else(|| ConfigError::Choice {
        field: "mysql auth",
        value: value.to_string(),
        expected: MysqlAuth::NAMES,
    })
}

/// Parses `pin` or `reject`.
pub fn parse_pin_policy(value: &str) -> Result<PinPolicy, ConfigError> {
    PinPolicy::from_name(value).ok_or_else(|| ConfigError::Choice {
        field: "pin policy",
        value: value.to_string(),
        expected: PinPolicy::NAMES,
    })
}

/// Parses a `--metrics` address (`ip:port`; `localhost` is accepted for 127.0.0.1).
fn parse_metrics(value: &str) -> Result<SocketAddr, ConfigError> {
    let v = value
        .strip_prefix("localhost:")
        .map(|p| format!("127.0.0.1:{p}"));
    v.as_deref()
        .unwrap_or(value)
        .parse()
        .map_err(|_| ConfigError::MetricsAddr(value.to_string()))
}

/// Adds `user` to `users`, rejecting a second, different password for the same name.
fn add_user(users: &mut Vec<User>, user: User, replace: bool) -> Result<(), ConfigError> {
    match users.iter_mut().find(|u| u.name == user.name) {
        Some(u) if u.password == user.password => Ok(()),
        Some(u) if replace => {
            u.password = user.password;
            Ok(())
        }
        Some(_) => Err(ConfigError::UserConflict(user.name)),
        None => {
            users.push(user);
            Ok(())
        }
    }
}

/// Adds `route`, replacing one with the same database and client user.
fn add_route(routes: &mut Vec<Route>, route: Route) {
    match routes
        .iter_mut()
        .find(|r| r.database == route.database && r.client_user == route.client_user)
    {
        Some(r) => *r = route,
        None => routes.push(route),
    }
}

/// A route plus its user from an upstream URL.
fn url_route(
    url: &str,
    pool_size: usize,
    pool_mode: PoolMode,
) -> Result<(Route, User), ConfigError> {
    let u = UpstreamUrl::parse(url)?;
    let mut route = Route::new(u.protocol, u.database, u.target, u.user.clone());
    route.client_user = Some(u.user.clone());
    route.upstream_tls = u.tls;
    route.upstream_tls_ca = u.tls_ca;
    route.upstream_tls_cert = u.tls_cert;
    route.upstream_tls_key = u.tls_key;
    route.upstream_password = u.password.clone();
    route.pool_size = pool_size;
    route.pool_mode = pool_mode;
    Ok((route, User::new(u.user, u.password)))
}

impl FileConfig {
    /// Reads and parses a TOML config file.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_path_buf(),
            source,
        })?;
        FileConfig::parse(path, &text)
    }

    /// Parses TOML text; `path` only names the file in errors.
    pub fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Toml {
            path: path.to_path_buf(),
            message: e
                .to_string()
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('|') && !l.ends_with('|'))
                .collect::<Vec<_>>()
                .join("; "),
        })
    }
}

/// The engine settings of a TOML config (the `--config` schema) given as text: routes,
/// `upstreams`, users and settings. Listeners, metrics and shutdown belong to a host and are
/// not needed here (the C ABI's `muxql_config_from_toml` builds on this).
pub fn engine_config_from_toml(text: &str) -> Result<mux::Config, ConfigError> {
    let mut file = FileConfig::parse(Path::new("<config string>"), text)?;
    if file.listen_pg.is_empty() && file.listen_mysql.is_empty() {
        // Any listener satisfies the server's check; an engine host has its own.
        file.listen_pg.push("127.0.0.1:0".into());
    }
    Ok(ServerConfig::merge(file, &Args::default())?.engine)
}

impl ServerConfig {
    /// Loads `args.config` (if any) and merges the flags over it.
    pub fn from_args(args: &Args) -> Result<ServerConfig, ConfigError> {
        let file = match &args.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        ServerConfig::merge(file, args)
    }

    /// Merges flags over a parsed file.
    pub fn merge(file: FileConfig, args: &Args) -> Result<ServerConfig, ConfigError> {
        let mut engine = mux::Config::default();
        let pick = |flag: &Option<String>, file: &Option<String>| flag.clone().or(file.clone());

        if let Some(v) = pick(&args.auth, &file.auth) {
            engine.client_auth = parse_auth(&v)?;
        }
        if let Some(v) = pick(&args.mysql_auth, &file.mysql_auth) {
            engine.mysql_auth = parse_mysql_auth(&v)?;
        }
        if let Some(v) = pick(&args.pin_policy, &file.pin_policy) {
            engine.pin_policy = parse_pin_policy(&v)?;
        }
        let tls = match (
            args.tls_cert.clone().or(file.tls_cert.clone()),
            args.tls_key.clone().or(file.tls_key.clone()),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => return Err(ConfigError::TlsFiles),
        };
        engine.client_tls = match pick(&args.client_tls, &file.client_tls) {
            Some(v) => mux::ClientTls::from_name(&v).ok_or_else(|| ConfigError::Choice {
                field: "client TLS",
                value: v.clone(),
                expected: mux::ClientTls::NAMES,
            })?,
            None if tls.is_some() => mux::ClientTls::Offer,
            None => mux::ClientTls::Off,
        };
        if engine.client_tls != mux::ClientTls::Off && tls.is_none() {
            return Err(ConfigError::TlsFiles);
        }
        if let Some(v) = pick(&args.wait_timeout, &file.wait_timeout) {
            engine.wait_timeout_ms = duration_ms("wait timeout", &v)?;
        }
        if let Some(v) = pick(&args.idle_timeout, &file.idle_timeout) {
            engine.idle_timeout_ms = duration_ms("idle timeout", &v)?;
        }
        if let Some(v) = pick(&args.connect_timeout, &file.connect_timeout) {
            engine.connect_timeout_ms = duration_ms("connect timeout", &v)?;
        }
        if let Some(v) = &file.server_lifetime {
            engine.server_lifetime_ms = duration_ms("server lifetime", v)?;
        }
        if let Some(v) = pick(&args.client_login_timeout, &file.client_login_timeout) {
            engine.client_login_timeout_ms = duration_ms("client login timeout", &v)?;
        }
        if let Some(v) = args.max_clients.or(file.max_clients) {
            engine.max_clients = v;
        }
        if let Some(v) = args.max_logins.or(file.max_logins) {
            engine.max_logins = v;
        }
        if let Some(v) = file.statement_cache_size {
            engine.statement_cache_size = v;
        }
        if let Some(v) = file.close_on_upstream_loss {
            engine.close_on_upstream_loss = v;
        }
        if let Some(v) = args.pipeline_depth.or(file.pipeline_depth) {
            engine.pipeline_depth = v;
        }
        if let Some(v) = file.max_message {
            engine.max_message = v;
        }
        if let Some(v) = file.scram_iterations {
            engine.scram_iterations = v;
        }
        let shutdown_timeout = match pick(&args.shutdown_timeout, &file.shutdown_timeout) {
            Some(v) => parse_duration("shutdown timeout", &v)?,
            None => DEFAULT_SHUTDOWN_TIMEOUT,
        };
        let pool_size = args
            .pool_size
            .or(file.pool_size)
            .unwrap_or(DEFAULT_POOL_SIZE);
        let pool_mode = match pick(&args.pool_mode, &file.pool_mode) {
            Some(v) => parse_pool_mode(&v)?,
            None => PoolMode::default(),
        };

        let mut users = Vec::new();
        for u in file.users {
            add_user(&mut users, User::new(u.name, u.password), false)?;
        }
        let mut routes = Vec::new();
        for (index, r) in file.routes.into_iter().enumerate() {
            let route_err = |reason: String| ConfigError::Route { index, reason };
            if r.database.is_empty() || r.target.is_empty() || r.upstream_user.is_empty() {
                return Err(route_err(
                    "database, target and upstream_user must not be empty".into(),
                ));
            }
            let mode = match &r.pool_mode {
                Some(m) => parse_pool_mode(m).map_err(|e| route_err(e.to_string()))?,
                None => pool_mode,
            };
            let protocol = match r.protocol.as_deref() {
                None | Some("postgres") | Some("postgresql") => Protocol::Postgres,
                Some("mysql") | Some("mariadb") => Protocol::Mysql,
                Some(other) => {
                    return Err(route_err(format!(
                        "protocol {other:?}: expected postgres or mysql"
                    )))
                }
            };
            let upstream_database = r.upstream_database.unwrap_or_else(|| r.database.clone());
            let mut route = Route::new(protocol, r.database, r.target, r.upstream_user);
            route.upstream_database = upstream_database;
            route.client_user = r.client_user;
            route.upstream_password = r.upstream_password;
            route.pool_size = r.pool_size.unwrap_or(pool_size);
            route.pool_mode = mode;
            if let Some(t) = &r.tls {
                route.upstream_tls = UpstreamTls::from_name(t).ok_or_else(|| {
                    route_err(format!("tls {t:?}: expected one of {}", UpstreamTls::NAMES))
                })?;
            }
            let path = |p: Option<PathBuf>| p.map(|p| p.to_string_lossy().into_owned());
            route.upstream_tls_ca = path(r.tls_ca_file);
            route.upstream_tls_cert = path(r.tls_cert_file);
            route.upstream_tls_key = path(r.tls_key_file);
            add_route(&mut routes, route);
        }
        for url in &file.upstreams {
            let (route, user) = url_route(url, pool_size, pool_mode)?;
            add_route(&mut routes, route);
            add_user(&mut users, user, false)?;
        }
        let mut cli_users = Vec::new();
        for url in &args.upstream {
            let (route, user) = url_route(url, pool_size, pool_mode)?;
            add_route(&mut routes, route);
            add_user(&mut cli_users, user, false)?;
        }
        for spec in &args.user {
            let (name, password) = spec
                .split_once(':')
                .filter(|(n, _)| !n.is_empty())
                .ok_or_else(|| ConfigError::UserSpec(spec.clone()))?;
            let user = User::new(name, password);
            add_user(&mut cli_users, user, false)?;
        }
        for user in cli_users {
            add_user(&mut users, user, true)?;
        }
        if routes.is_empty() {
            return Err(ConfigError::NoRoute);
        }
        engine.routes = routes;
        engine.users = users;

        let listeners = |flag: &Vec<String>, file: &Vec<String>| {
            let src = if flag.is_empty() { file } else { flag };
            src.iter()
                .map(|s| ListenAddr::parse(s))
                .collect::<Result<Vec<_>, _>>()
        };
        let listen_pg = listeners(&args.listen_pg, &file.listen_pg)?;
        let listen_mysql = listeners(&args.listen_mysql, &file.listen_mysql)?;
        let ws = |flag: &Vec<String>, file: &Vec<String>, tls: bool| {
            let src = if flag.is_empty() { file } else { flag };
            src.iter()
                .map(|s| WsListen::parse(s, tls))
                .collect::<Result<Vec<_>, _>>()
        };
        let mut listen_ws = ws(&args.listen_ws, &file.listen_ws, false)?;
        listen_ws.extend(ws(&args.listen_wss, &file.listen_wss, true)?);
        let listeners = (file.listeners.iter().enumerate())
            .map(|(i, l)| ListenerSpec::from_file(i, l))
            .collect::<Result<Vec<_>, _>>()?;
        if listen_pg.is_empty()
            && listen_mysql.is_empty()
            && listen_ws.is_empty()
            && listeners.is_empty()
        {
            return Err(ConfigError::NoListener);
        }
        let need_cert = listen_ws.iter().any(|l| l.tls)
            || listeners.iter().any(ListenerSpec::needs_certificate);
        if need_cert && tls.is_none() {
            return Err(ConfigError::TlsFiles);
        }
        let metrics = pick(&args.metrics, &file.metrics)
            .map(|m| parse_metrics(&m))
            .transpose()?;

        Ok(ServerConfig {
            engine,
            listen_pg,
            listen_mysql,
            listen_ws,
            listeners,
            metrics,
            shutdown_timeout,
            log_level: pick(&args.log_level, &file.log_level),
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(flags: &[&str]) -> Args {
        let mut v = vec!["muxql"];
        v.extend_from_slice(flags);
        Args::try_parse_from(v).expect("flags parse")
    }

    fn merge(text: &str, flags: &[&str]) -> Result<ServerConfig, ConfigError> {
        let file = FileConfig::parse(Path::new("t.toml"), text)?;
        ServerConfig::merge(file, &args(flags))
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("x", "500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(parse_duration("x", "30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("x", "7").unwrap(), Duration::from_secs(7));
        assert_eq!(parse_duration("x", "2m").unwrap(), Duration::from_secs(120));
        assert_eq!(
            parse_duration("x", "1h").unwrap(),
            Duration::from_secs(3600)
        );
        for bad in ["", "s", "5 weeks", "-1s", "1.5s", "99999999999999999999h"] {
            assert!(parse_duration("x", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            ListenAddr::parse("unix:/tmp/.s.PGSQL.6432").unwrap(),
            ListenAddr::Unix("/tmp/.s.PGSQL.6432".into())
        );
        assert_eq!(
            ListenAddr::parse("0.0.0.0:6432").unwrap(),
            ListenAddr::Tcp("0.0.0.0:6432".into())
        );
        for bad in ["6432", ":6432", "host:", "host:x", "unix:"] {
            assert!(ListenAddr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_build_routes_and_users() {
        let c = merge(
            "",
            &[
                "--listen-pg",
                "127.0.0.1:6432",
                "--upstream",
                "postgres://a:pa@h1:5432/db1",
                "--upstream",
                "postgres://a:pa@h2:5432/db2",
                "--pool-size",
                "8",
                "--pool-mode",
                "session",
                "--user",
                "b:pb",
                "--metrics",
                "127.0.0.1:9100",
            ],
        )
        .unwrap();
        assert_eq!(c.engine.routes.len(), 2);
        let r = &c.engine.routes[1];
        assert_eq!(r.database, "db2");
        assert_eq!(r.client_user.as_deref(), Some("a"));
        assert_eq!(r.target, "h2:5432");
        assert_eq!((r.pool_size, r.pool_mode), (8, PoolMode::Session));
        let names: Vec<_> = c.engine.users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(c.metrics, Some("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(c.shutdown_timeout, DEFAULT_SHUTDOWN_TIMEOUT);
    }

    #[test]
    fn default_pool_size_is_ten() {
        let c = merge(
            "",
            &["--listen-pg", "h:1", "--upstream", "postgres://a@h/d"],
        )
        .unwrap();
        assert_eq!(c.engine.routes[0].pool_size, DEFAULT_POOL_SIZE);
        assert_eq!(c.engine.routes[0].pool_mode, PoolMode::Transaction);
    }

    #[test]
    fn pipeline_depth_comes_from_flag_then_file_then_default() {
        let base = ["--listen-pg", "h:1", "--upstream", "postgres://a@h/d"];
        let depth = |file: &str, extra: &[&str]| {
            let flags: Vec<&str> = base.iter().chain(extra).copied().collect();
            merge(file, &flags).unwrap().engine.pipeline_depth
        };
        assert_eq!(depth("", &[]), crate::mux::Config::default().pipeline_depth);
        assert_eq!(depth("pipeline_depth = 2", &[]), 2);
        assert_eq!(depth("pipeline_depth = 2", &["--pipeline-depth", "0"]), 0);
    }

    #[test]
    fn flags_override_file() {
        let file = r#"
            listen_pg = ["127.0.0.1:1111"]
            pool_size = 3
            auth = "md5"
            wait_timeout = "5s"
            upstreams = ["postgres://a:old@h:1/d"]
            [[users]]
            name = "a"
            password = "old"
        "#;
        let c = merge(
            file,
            &[
                "--listen-pg",
                "unix:/tmp/x",
                "--upstream",
                "postgres://a:new@h:2/d",
                "--auth",
                "trust",
            ],
        )
        .unwrap();
        assert_eq!(c.listen_pg, [ListenAddr::Unix("/tmp/x".into())]);
        assert_eq!(c.engine.routes.len(), 1);
        assert_eq!(c.engine.routes[0].target, "h:2");
        assert_eq!(c.engine.routes[0].pool_size, 3);
        assert_eq!(c.engine.users.len(), 1);
        assert_eq!(c.engine.users[0].password, "new");
        assert_eq!(c.engine.client_auth, ClientAuth::Trust);
        assert_eq!(c.engine.wait_timeout_ms, 5_000);
    }

    #[test]
    fn config_errors_are_one_line() {
        let cases: [(&str, &[&str], &str); 8] = [
            ("", &["--upstream", "postgres://a@h/d"], "no listen address"),
            ("", &["--listen-pg", "h:1"], "no upstream"),
            ("bogus = 1", &[], "unknown field `bogus`"),
            ("pool_size = \"x\"", &[], "invalid type"),
            (
                "",
                &[
                    "--listen-pg",
                    "h:1",
                    "--upstream",
                    "postgres://a@h/d",
                    "--pool-mode",
                    "x",
                ],
                "invalid pool mode \"x\"",
            ),
            (
                "",
                &[
                    "--listen-pg",
                    "h:1",
                    "--upstream",
                    "postgres://a@h/d",
                    "--user",
                    "nopass",
                ],
                "expected NAME:PASSWORD",
            ),
            (
                "",
                &[
                    "--listen-pg",
                    "h:1",
                    "--upstream",
                    "postgres://a:1@h/d",
                    "--upstream",
                    "postgres://a:2@h/e",
                ],
                "two different passwords",
            ),
            (
                "",
                &[
                    "--listen-pg",
                    "h:1",
                    "--upstream",
                    "postgres://a@h/d",
                    "--wait-timeout",
                    "soon",
                ],
                "invalid duration \"soon\" for wait timeout",
            ),
        ];
        for (file, flags, want) in cases {
            let msg = merge(file, flags).unwrap_err().to_string();
            assert!(msg.contains(want), "{flags:?}: {msg}");
            assert!(!msg.contains('\n'), "{msg}");
        }
    }

    #[test]
    fn example_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/muxql.toml");
        let file = FileConfig::load(&path).unwrap();
        let c = ServerConfig::merge(file, &args(&[])).unwrap();
        assert!(!c.engine.routes.is_empty());
        assert!(!c.listen_pg.is_empty());
        assert!(c.metrics.is_some());
    }
}
