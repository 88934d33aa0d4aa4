//! Shared integration-test harness: real PostgreSQL and MariaDB servers for every test binary.
//!
//! Use it from a test file with `mod common;` and then `common::pg()` / `common::mariadb()`.
//!
//! When the `MUXQL_*` variables printed by `scripts/dbs env` are set (as `scripts/test` does),
//! the harness connects to those servers. When only `MUXQL_DBS_DIR` is set, it reads
//! `$MUXQL_DBS_DIR/env`. Otherwise it starts throwaway servers itself, once per test binary,
//! with `scripts/dbs up`, and a detached watchdog runs `scripts/dbs down` as soon as the test
//! process exits (Rust tests have no global teardown). Missing packages are a panic naming
//! `scripts/setup`: integration tests never skip.
#![allow(dead_code)]

pub mod server;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Connection parameters of the test PostgreSQL server (`MUXQL_PG_*`).
#[derive(Debug, Clone)]
pub struct PgEnv {
    /// TCP host, always `127.0.0.1` (`MUXQL_PG_HOST`).
    pub host: String,
    /// TCP port (`MUXQL_PG_PORT`).
    pub port: u16,
    /// Directory holding the unix socket `.s.PGSQL.<port>` (`MUXQL_PG_SOCKET_DIR`).
    pub socket_dir: PathBuf,
    /// Database readable and writable by all test users (`MUXQL_PG_DB`, `muxql`).
    pub db: String,
    /// Superuser, trust auth, no password (`MUXQL_PG_SUPERUSER`, `postgres`).
    pub superuser: String,
    /// User authenticated with `trust` over TCP (`MUXQL_PG_TRUST_USER`).
    pub trust_user: String,
    /// User authenticated with `md5` over TCP, MD5-hashed password (`MUXQL_PG_MD5_USER`).
    pub md5_user: String,
    /// User authenticated with `scram-sha-256` over TCP (`MUXQL_PG_SCRAM_USER`).
    pub scram_user: String,
    /// Password of the trust, md5 and scram users (`MUXQL_PG_PASSWORD`).
    pub password: String,
    /// Directory with the server binaries: psql, pgbench, pg_ctl... (`MUXQL_PG_BIN`).
    pub bin: PathBuf,
}

impl PgEnv {
    /// `host:port` of the TCP listener.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The password to log in as `user`: empty for the superuser, `password` otherwise.
    pub fn password_for(&self, user: &str) -> &str {
        if user == self.superuser {
            ""
        } else {
            &self.password
        }
    }

    /// `postgres://user:password@host:port/db` URL for `user` over TCP.
    pub fn url(&self, user: &str) -> String {
        let pw = self.password_for(user);
        if pw.is_empty() {
            format!("postgres://{user}@{}:{}/{}", self.host, self.port, self.db)
        } else {
            format!(
                "postgres://{user}:{pw}@{}:{}/{}",
                self.host, self.port, self.db
            )
        }
    }

    /// libpq key/value connection string for `user` over TCP.
    pub fn conninfo(&self, user: &str) -> String {
        format!(
            "host={} port={} user={user} password={} dbname={}",
            self.host,
            self.port,
            self.password_for(user),
            self.db
        )
    }

    /// A tokio-postgres config for `user` over TCP with that user's password.
    pub fn config(&self, user: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host)
            .port(self.port)
            .user(user)
            .dbname(&self.db)
            .password(self.password_for(user));
        c
    }

    /// Path to the unix socket file of the server.
    pub fn socket_path(&self) -> PathBuf {
        self.socket_dir.join(format!(".s.PGSQL.{}", self.port))
    }

    /// Path of a PostgreSQL binary such as `psql` or `pgbench`.
    pub fn bin_path(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// `psql` preset to connect as `user` over TCP (`-X -v ON_ERROR_STOP=1`, password in env).
    pub fn psql(&self, user: &str) -> Command {
        let mut cmd = Command::new(self.bin_path("psql"));
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", &self.host])
            .args(["-p", &self.port.to_string(), "-U", user, "-d", &self.db])
            .env("PGPASSWORD", self.password_for(user));
        cmd
    }
}

/// Connection parameters of the test MariaDB server (`MUXQL_MY_*`).
#[derive(Debug, Clone)]
pub struct MyEnv {
    /// TCP host, always `127.0.0.1` (`MUXQL_MY_HOST`).
    pub host: String,
    /// TCP port (`MUXQL_MY_PORT`).
    pub port: u16,
    /// Unix socket path (`MUXQL_MY_SOCKET`).
    pub socket: PathBuf,
    /// Database the test users have ALL privileges on (`MUXQL_MY_DB`, `muxql`).
    pub db: String,
    /// User authenticated with `mysql_native_password` (`MUXQL_MY_USER`).
    pub user: String,
    /// Password of `user` and `ed25519_user` (`MUXQL_MY_PASSWORD`).
    pub password: String,
    /// User authenticated with the `ed25519` plugin; `None` when the server lacks the plugin
    /// (`MUXQL_MY_ED25519_USER`, empty then).
    pub ed25519_user: Option<String>,
    /// Administrative user with all privileges (`MUXQL_MY_ROOT_USER`, `root`).
    pub root_user: String,
    /// Password of `root_user`, empty (`MUXQL_MY_ROOT_PASSWORD`).
    pub root_password: String,
}

impl MyEnv {
    /// `host:port` of the TCP listener.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The password to log in as `user`: `root_password` for root, `password` otherwise.
    pub fn password_for(&self, user: &str) -> &str {
        if user == self.root_user {
            &self.root_password
        } else {
            &self.password
        }
    }

    /// `mysql://user:password@host:port/db` URL for `user` over TCP.
    pub fn url(&self, user: &str) -> String {
        let pw = self.password_for(user);
        if pw.is_empty() {
            format!("mysql://{user}@{}:{}/{}", self.host, self.port, self.db)
        } else {
            format!(
                "mysql://{user}:{pw}@{}:{}/{}",
                self.host, self.port, self.db
            )
        }
    }

    /// mysql_async options for `user` with the given password over TCP.
    pub fn opts_with_password(&self, user: &str, password: &str) -> mysql_async::Opts {
        mysql_async::OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(user))
            .pass(Some(password))
            .db_name(Some(self.db.clone()))
            .prefer_socket(false)
            .into()
    }

    /// mysql_async options for `user` over TCP with that user's password.
    pub fn opts(&self, user: &str) -> mysql_async::Opts {
        self.opts_with_password(user, self.password_for(user))
    }

    /// The ed25519 user; panics when the server has no ed25519 plugin (Debian ships it).
    pub fn require_ed25519_user(&self) -> &str {
        self.ed25519_user.as_deref().expect(
            "MUXQL_MY_ED25519_USER is empty: the MariaDB auth_ed25519 plugin did not load; \
             run scripts/setup (mariadb-server ships it) and see the dbs log",
        )
    }

    /// `mariadb` CLI client preset to connect as `user` over TCP (`--batch`, password in env).
    pub fn cli(&self, user: &str) -> Command {
        let mut cmd = Command::new("mariadb");
        cmd.args(["--no-defaults", "--batch", "--protocol=tcp"])
            .arg(format!("--host={}", self.host))
            .arg(format!("--port={}", self.port))
            .arg(format!("--user={user}"))
            .arg(&self.db)
            .env("MYSQL_PWD", self.password_for(user));
        cmd
    }
}

/// TLS of both servers: a throwaway CA of `scripts/dbs` and users that must use TLS.
#[derive(Debug, Clone)]
pub struct TlsEnv {
    /// The CA the servers' certificate chains to (`MUXQL_TLS_CA`).
    pub ca: PathBuf,
    /// An unrelated CA (`MUXQL_TLS_WRONG_CA`).
    pub wrong_ca: PathBuf,
    /// Client certificate, CN = `cert_user` (`MUXQL_TLS_CLIENT_CERT`).
    pub client_cert: PathBuf,
    /// Its key (`MUXQL_TLS_CLIENT_KEY`).
    pub client_key: PathBuf,
    /// PostgreSQL user that may log in only over TLS (`MUXQL_PG_TLS_USER`).
    pub pg_user: String,
    /// PostgreSQL user that also needs the client certificate (`MUXQL_PG_TLS_CERT_USER`).
    pub pg_cert_user: String,
    /// MariaDB user that may log in only over TLS (`MUXQL_MY_TLS_USER`).
    pub my_user: String,
    /// MariaDB user that also needs the client certificate (`MUXQL_MY_TLS_CERT_USER`).
    pub my_cert_user: String,
}

/// Both servers plus the state directory they live in.
#[derive(Debug)]
pub struct Dbs {
    /// The `scripts/dbs` state directory (`MUXQL_DBS_DIR`).
    pub dir: PathBuf,
    /// PostgreSQL parameters.
    pub pg: PgEnv,
    /// MariaDB parameters.
    pub my: MyEnv,
    /// TLS of both.
    pub tls: TlsEnv,
    /// True when this test process started the servers (a watchdog stops them).
    pub owned: bool,
}

static DBS: OnceLock<Result<Dbs, String>> = OnceLock::new();

/// The test databases, started on first use (see the module docs).
pub fn dbs() -> &'static Dbs {
    match DBS.get_or_init(init) {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    }
}

/// The test PostgreSQL server.
pub fn pg() -> &'static PgEnv {
    &dbs().pg
}

/// The test MariaDB server.
pub fn mariadb() -> &'static MyEnv {
    &dbs().my
}

/// TLS of the test servers.
pub fn tls() -> &'static TlsEnv {
    &dbs().tls
}

/// Root of the muxql repository (where `scripts/` lives).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn init() -> Result<Dbs, String> {
    if std::env::var_os("MUXQL_PG_PORT").is_some() {
        let vars: HashMap<String, String> = std::env::vars().collect();
        let dbs = from_vars(&vars, false)?;
        if !dbs.dir.join("env").exists() {
            return Err(format!(
                "stale MUXQL_* environment: {} has no env file (servers stopped?); \
                 run `scripts/dbs up` again or unset the MUXQL_* variables",
                dbs.dir.display()
            ));
        }
        return Ok(dbs);
    }
    if let Some(dir) = std::env::var_os("MUXQL_DBS_DIR") {
        let file = Path::new(&dir).join("env");
        let text = std::fs::read_to_string(&file).map_err(|e| {
            format!(
                "MUXQL_DBS_DIR is set but {} is unreadable ({e}); run `scripts/dbs up` or unset it",
                file.display()
            )
        })?;
        return from_vars(&parse_env_file(&text), false);
    }
    start_own()
}

/// Starts the servers with `scripts/dbs up` into a fresh dir, with a watchdog that stops them.
fn start_own() -> Result<Dbs, String> {
    let root = repo_root();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    // Under /tmp rather than $TMPDIR: the postgres OS user must be able to reach it.
    let dir = Path::new("/tmp").join(format!("muxql-dbs.{}-{nanos}", std::process::id()));
    std::fs::create_dir(&dir)
        .map_err(|e| format!("cannot create state dir {}: {e}", dir.display()))?;

    // Watchdog first, so the servers are stopped even if this process dies during startup.
    // Its own process group keeps it alive through a Ctrl-C aimed at the test run.
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; exec bash '{dbs}' down '{dir}'",
        pid = std::process::id(),
        dbs = root.join("scripts/dbs").display(),
        dir = dir.display(),
    );
    {
        use std::os::unix::process::CommandExt;
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot spawn the dbs watchdog (sh): {e}"))?;
    }

    let out = Command::new("bash")
        .arg(root.join("scripts/dbs"))
        .arg("up")
        .arg(&dir)
        .env_remove("MUXQL_DBS_DIR")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run scripts/dbs: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`scripts/dbs up {}` failed ({}). Are the databases installed? Run scripts/setup.\n{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = std::fs::read_to_string(dir.join("env"))
        .map_err(|e| format!("scripts/dbs up wrote no {}/env: {e}", dir.display()))?;
    from_vars(&parse_env_file(&text), true)
}

/// Parses the `export NAME='value'` lines written by `scripts/dbs`.
fn parse_env_file(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("export "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(v);
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn from_vars(vars: &HashMap<String, String>, owned: bool) -> Result<Dbs, String> {
    let get = |name: &str| -> Result<String, String> {
        vars.get(name).cloned().ok_or_else(|| {
            format!("{name} is not set: export the output of `scripts/dbs env DIR` or unset MUXQL_PG_PORT/MUXQL_DBS_DIR to let the harness start its own databases")
        })
    };
    let port = |name: &str| -> Result<u16, String> {
        let v = get(name)?;
        v.parse()
            .map_err(|e| format!("{name}={v:?} is not a port: {e}"))
    };
    let ed25519 = get("MUXQL_MY_ED25519_USER")?;
    Ok(Dbs {
        dir: PathBuf::from(get("MUXQL_DBS_DIR")?),
        pg: PgEnv {
            host: get("MUXQL_PG_HOST")?,
            port: port("MUXQL_PG_PORT")?,
            socket_dir: PathBuf::from(get("MUXQL_PG_SOCKET_DIR")?),
            db: get("MUXQL_PG_DB")?,
            superuser: get("MUXQL_PG_SUPERUSER")?,
            trust_user: get("MUXQL_PG_TRUST_USER")?,
            md5_user: get("MUXQL_PG_MD5_USER")?,
            scram_user: get("MUXQL_PG_SCRAM_USER")?,
            password: get("MUXQL_PG_PASSWORD")?,
            bin: PathBuf::from(get("MUXQL_PG_BIN")?),
        },
        my: MyEnv {
            host: get("MUXQL_MY_HOST")?,
            port: port("MUXQL_MY_PORT")?,
            socket: PathBuf::from(get("MUXQL_MY_SOCKET")?),
            db: get("MUXQL_MY_DB")?,
            user: get("MUXQL_MY_USER")?,
            password: get("MUXQL_MY_PASSWORD")?,
            ed25519_user: (!ed25519.is_empty()).then_some(ed25519),
            root_user: get("MUXQL_MY_ROOT_USER")?,
            root_password: vars
                .get("MUXQL_MY_ROOT_PASSWORD")
                .cloned()
                .unwrap_or_default(),
        },
        tls: TlsEnv {
            ca: PathBuf::from(get("MUXQL_TLS_CA")?),
            wrong_ca: PathBuf::from(get("MUXQL_TLS_WRONG_CA")?),
            client_cert: PathBuf::from(get("MUXQL_TLS_CLIENT_CERT")?),
            client_key: PathBuf::from(get("MUXQL_TLS_CLIENT_KEY")?),
            pg_user: get("MUXQL_PG_TLS_USER")?,
            pg_cert_user: get("MUXQL_PG_TLS_CERT_USER")?,
            my_user: get("MUXQL_MY_TLS_USER")?,
            my_cert_user: get("MUXQL_MY_TLS_CERT_USER")?,
        },
        owned,
    })
}

/// Connects to PostgreSQL with `config`, driving the connection on a spawned task.
///
/// Must be called inside a tokio runtime (`#[tokio::test]`).
pub async fn pg_connect(
    config: &tokio_postgres::Config,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        // The connection ends with the client; errors surface through the client's calls.
        let _ = conn.await;
    });
    Ok(client)
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for a proxy listener in a test).
///
/// Prefer binding `127.0.0.1:0` directly when the code under test accepts a listener; this
/// is for configs that need a number up front. Another process may take the port meanwhile.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0 to find a free port")
}

/// A name unique within this machine run, for tables or objects shared test databases hold:
/// `prefix_<pid>_<counter>`.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A StartupMessage (protocol 3.0) for `user` and the test database, with `extra` parameters,
/// as muxql's own encoder writes it.
pub fn pg_startup_packet(user: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    use bytes::Bytes;
    use muxql::pg::startup::{ProtocolVersion, Startup, StartupRequest, PROTOCOL_3_0};
    let db = pg().db.clone();
    let params = [("user", user), ("database", db.as_str())]
        .iter()
        .chain(extra)
        .map(|(k, v)| {
            (
                Bytes::copy_from_slice(k.as_bytes()),
                Bytes::copy_from_slice(v.as_bytes()),
            )
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    StartupRequest::Startup(Startup {
        version: ProtocolVersion(PROTOCOL_3_0),
        params,
    })
    .encode(&mut buf)
    .expect("encode a startup packet");
    buf.to_vec()
}

/// Restarts the test PostgreSQL in fast mode, as the postgres OS user when run as root (as
/// `scripts/dbs` starts it). The server inherits pg_ctl's stdio: with pipes, waiting for
/// pg_ctl's output would wait for the server to exit, so its log goes where scripts/dbs put it.
pub fn restart_postgres() {
    let pg = pg();
    let dir = dbs().dir.join("pg");
    let pg_ctl = pg.bin_path("pg_ctl");
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:\t0\t")))
        .unwrap_or(false);
    let mut cmd = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&pg_ctl);
        c
    } else {
        Command::new(&pg_ctl)
    };
    let status = cmd
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-l")
        .arg(dir.join("postgres.log"))
        .args(["-m", "fast", "-w", "-t", "30", "restart"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run pg_ctl");
    assert!(status.success(), "pg_ctl restart: {status}");
}
