//! `muxql_config`: the builder a C host fills before creating an engine.

use super::{c_str, guard, muxql_result};
use crate::mux::{
    ClientAuth, ClientTls, Config, MysqlAuth, PinPolicy, PoolMode, Protocol, Route, UpstreamTls,
    User,
};

/// A PostgreSQL route or listener (`muxql_config_add_route`, `muxql_engine_client_open`).
pub const MUXQL_PROTOCOL_POSTGRES: u32 = 1;
/// A MySQL/MariaDB route or listener.
pub const MUXQL_PROTOCOL_MYSQL: u32 = 2;

/// An engine configuration under construction. Not thread-safe: one thread at a time.
#[allow(non_camel_case_types)]
pub struct muxql_config {
    pub(crate) config: Config,
    /// Pool mode given to every route when the engine is created, if set.
    pub(crate) pool_mode: Option<PoolMode>,
}

/// The protocol numbered `p`.
pub(crate) fn protocol(p: u32) -> Result<Protocol, muxql_result> {
    match p {
        MUXQL_PROTOCOL_POSTGRES => Ok(Protocol::Postgres),
        MUXQL_PROTOCOL_MYSQL => Ok(Protocol::Mysql),
        _ => Err(muxql_result::MUXQL_INVALID_ARGUMENT),
    }
}

/// Runs `f` on the config behind `cfg`.
///
/// `cfg` must be NULL or a live config from `muxql_config_new` (every caller's contract).
fn with_config(
    cfg: *mut muxql_config,
    f: impl FnOnce(&mut muxql_config) -> Result<(), muxql_result>,
) -> muxql_result {
    guard(|| {
        // SAFETY: NULL or a pointer from `muxql_config_new` not yet freed (caller contract).
        let Some(c) = (unsafe { cfg.as_mut() }) else {
            return muxql_result::MUXQL_NULL_PARAMETER;
        };
        match f(c) {
            Ok(()) => muxql_result::MUXQL_OK,
            Err(e) => e,
        }
    })
}

/// Creates an empty configuration (engine defaults, no routes, no users) in `*config_out`.
///
/// # Safety
/// `config_out` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn muxql_config_new(config_out: *mut *mut muxql_config) -> muxql_result {
    guard(|| {
        if config_out.is_null() {
            return muxql_result::MUXQL_NULL_PARAMETER;
        }
        let cfg = Box::new(muxql_config {
            config: Config::default(),
            pool_mode: None,
        });
        // SAFETY: checked non-NULL; valid for a write (caller contract).
        unsafe { *config_out = Box::into_raw(cfg) };
        muxql_result::MUXQL_OK
    })
}

/// Frees a configuration; NULL is fine. The engine keeps its own copy.
///
/// # Safety
/// `config` must be NULL or from `muxql_config_new`, and not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn muxql_config_free(config: *mut muxql_config) {
    let _ = guard(|| {
        if !config.is_null() {
            // SAFETY: from `Box::into_raw` in `muxql_config_new`, freed once (caller contract).
            drop(unsafe { Box::from_raw(config) });
        }
        muxql_result::MUXQL_OK
    });
}

/// Adds a route: clients of `protocol` (`MUXQL_PROTOCOL_*`) asking for `database` are served
/// over at most `pool_size` (0: the default, 10) connections to `target` (`host:port`, or a
/// Unix socket path the host understands), opened as `upstream_user`/`upstream_password` on
/// `upstream_database` (NULL: `database`). Routes match in the order they are added.
///
/// # Safety
/// `config` must be a live config; the strings NULL-terminated UTF-8 (passwords and
/// `upstream_database` may be NULL: empty and `database`).
#[no_mangle]
pub unsafe extern "C" fn muxql_config_add_route(
    config: *mut muxql_config,
    protocol_id: u32,
    database: *const libc::c_char,
    target: *const libc::c_char,
    upstream_user: *const libc::c_char,
    upstream_password: *const libc::c_char,
    upstream_database: *const libc::c_char,
    pool_size: usize,
) -> muxql_result {
    // SAFETY: the caller passes NUL-terminated strings valid for the call (or NULL where
    // allowed, which c_str reports).
    let args = unsafe {
        (
            c_str(database),
            c_str(target),
            c_str(upstream_user),
            (!upstream_password.is_null()).then(|| c_str(upstream_password)),
            (!upstream_database.is_null()).then(|| c_str(upstream_database)),
        )
    };
    with_config(config, |c| {
        let (database, target, user, password, upstream_database) = args;
        let mut route = Route::new(protocol(protocol_id)?, database?, target?, user?);
        if let Some(p) = password {
            route.upstream_password = p?.to_string();
        }
        if let Some(d) = upstream_database {
            route.upstream_database = d?.to_string();
        }
        if pool_size > 0 {
            route.pool_size = pool_size;
        }
        c.config.routes.push(route);
        Ok(())
    })
}

/// Adds a user clients may log in as.
///
/// # Safety
/// `config` must be a live config; `name` and `password` NUL-terminated UTF-8.
#[no_mangle]
pub unsafe extern "C" fn muxql_config_add_user(
    config: *mut muxql_config,
    name: *const libc::c_char,
    password: *const libc::c_char,
) -> muxql_result {
    // SAFETY: the caller passes NUL-terminated strings valid for the call.
    let (name, password) = unsafe { (c_str(name), c_str(password)) };
    with_config(config, |c| {
        c.config.users.push(User::new(name?, password?));
        Ok(())
    })
}

/// Creates a configuration from TOML text with the schema of the `muxql --config` file
/// (`[[routes]]`, `upstreams`, `[[users]]` and the settings; listener keys are accepted and
/// ignored). When the text is refused, returns `MUXQL_INVALID_CONFIG` and writes the reason
/// to `message`. Only in the library built with the server feature.
///
/// # Safety
/// `toml` must be NUL-terminated UTF-8; `config_out` valid for a write; `message` NULL or
/// valid for `message_len` bytes.
#[cfg(feature = "server")]
#[no_mangle]
pub unsafe extern "C" fn muxql_config_from_toml(
    toml: *const libc::c_char,
    config_out: *mut *mut muxql_config,
    message: *mut libc::c_char,
    message_len: usize,
) -> muxql_result {
    // SAFETY: the caller passes a NUL-terminated string valid for the call.
    let text = unsafe { c_str(toml) };
    guard(|| {
        let text = match text {
            Ok(t) => t,
            Err(e) => return e,
        };
        if config_out.is_null() {
            return muxql_result::MUXQL_NULL_PARAMETER;
        }
        match crate::server::engine_config_from_toml(text) {
            Ok(config) => {
                let cfg = Box::new(muxql_config {
                    config,
                    pool_mode: None,
                });
                // SAFETY: checked non-NULL; valid for a write (caller contract).
                unsafe { *config_out = Box::into_raw(cfg) };
                muxql_result::MUXQL_OK
            }
            Err(e) => {
                // SAFETY: the caller's contract on `message`.
                unsafe {
                    super::copy_text(&e.to_string(), message, message_len, std::ptr::null_mut())
                };
                muxql_result::MUXQL_INVALID_CONFIG
            }
        }
    })
}

/// Sets one setting by its `--config` TOML name: `auth` (scram, md5, cleartext, trust),
/// `mysql_auth`, `pin_policy`, `client_tls` (off, offer, require: the host then terminates
/// TLS on `MUXQL_ACTION_START_TLS`), `pool_mode` (every route), the millisecond timeouts
/// `wait_timeout_ms`, `idle_timeout_ms`, `server_lifetime_ms`, `connect_timeout_ms`,
/// `client_login_timeout_ms` (0: no limit), and the numbers `max_clients`, `max_logins`
/// (0: no limit), `statement_cache_size`,
/// `pipeline_depth`, `max_message`, `scram_iterations`, `client_backlog_limit`,
/// `close_on_upstream_loss` (`true`: a client whose upstream fails under its request is closed
/// instead of getting an error for it); `rng_seed` is
/// 64 hex digits (deterministic tests only). Values are checked when the engine is created.
///
/// # Safety
/// `config` must be a live config; `key` and `value` NUL-terminated UTF-8.
#[no_mangle]
pub unsafe extern "C" fn muxql_config_set(
    config: *mut muxql_config,
    key: *const libc::c_char,
    value: *const libc::c_char,
) -> muxql_result {
    // SAFETY: the caller passes NUL-terminated strings valid for the call.
    let (key, value) = unsafe { (c_str(key), c_str(value)) };
    with_config(config, |c| {
        set(c, key?, value?).ok_or(muxql_result::MUXQL_INVALID_ARGUMENT)
    })
}

/// Sets one setting of route `route` (0 for the first `muxql_config_add_route`, and so on):
/// `pool_mode` (transaction, session), `client_user` (only that user may use the route),
/// `upstream_tls` (disable, prefer, require, verify-ca, verify-full; the host runs the
/// handshake on `MUXQL_ACTION_START_UPSTREAM_TLS`), and the PEM file paths the host reads for
/// it: `upstream_tls_ca`, `upstream_tls_cert`, `upstream_tls_key`. Returns
/// `MUXQL_INVALID_ARGUMENT` for an unknown route, key or value; whether the TLS settings fit
/// together is checked when the engine is created.
///
/// # Safety
/// `config` must be a live config; `key` and `value` NUL-terminated UTF-8.
#[no_mangle]
pub unsafe extern "C" fn muxql_config_set_route(
    config: *mut muxql_config,
    route: usize,
    key: *const libc::c_char,
    value: *const libc::c_char,
) -> muxql_result {
    // SAFETY: the caller passes NUL-terminated strings valid for the call.
    let (key, value) = unsafe { (c_str(key), c_str(value)) };
    with_config(config, |c| {
        let r = c
            .config
            .routes
            .get_mut(route)
            .ok_or(muxql_result::MUXQL_INVALID_ARGUMENT)?;
        set_route(r, key?, value?).ok_or(muxql_result::MUXQL_INVALID_ARGUMENT)
    })
}

fn set_route(r: &mut Route, key: &str, value: &str) -> Option<()> {
    match key {
        "pool_mode" => r.pool_mode = PoolMode::from_name(value)?,
        "client_user" => r.client_user = Some(value.to_string()),
        "upstream_tls" => r.upstream_tls = UpstreamTls::from_name(value)?,
        "upstream_tls_ca" => r.upstream_tls_ca = Some(value.to_string()),
        "upstream_tls_cert" => r.upstream_tls_cert = Some(value.to_string()),
        "upstream_tls_key" => r.upstream_tls_key = Some(value.to_string()),
        _ => return None,
    }
    Some(())
}

/// `true` or `false`.
fn flag(value: &str) -> Option<bool> {
    match value {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn set(c: &mut muxql_config, key: &str, value: &str) -> Option<()> {
    let number = || value.parse::<u64>().ok();
    let cfg = &mut c.config;
    match key {
        "auth" => cfg.client_auth = ClientAuth::from_name(value)?,
        "mysql_auth" => cfg.mysql_auth = MysqlAuth::from_name(value)?,
        "pin_policy" => cfg.pin_policy = PinPolicy::from_name(value)?,
        "client_tls" => cfg.client_tls = ClientTls::from_name(value)?,
        "pool_mode" => c.pool_mode = Some(PoolMode::from_name(value)?),
        "wait_timeout_ms" => cfg.wait_timeout_ms = number()?,
        "idle_timeout_ms" => cfg.idle_timeout_ms = number()?,
        "server_lifetime_ms" => cfg.server_lifetime_ms = number()?,
        "connect_timeout_ms" => cfg.connect_timeout_ms = number()?,
        "client_login_timeout_ms" => cfg.client_login_timeout_ms = number()?,
        "max_clients" => cfg.max_clients = usize::try_from(number()?).ok()?,
        "max_logins" => cfg.max_logins = usize::try_from(number()?).ok()?,
        "statement_cache_size" => cfg.statement_cache_size = usize::try_from(number()?).ok()?,
        "pipeline_depth" => cfg.pipeline_depth = usize::try_from(number()?).ok()?,
        "close_on_upstream_loss" => cfg.close_on_upstream_loss = flag(value)?,
        "max_message" => cfg.max_message = usize::try_from(number()?).ok()?,
        "client_backlog_limit" => cfg.client_backlog_limit = usize::try_from(number()?).ok()?,
        "scram_iterations" => cfg.scram_iterations = u32::try_from(number()?).ok()?,
        "rng_seed" => {
            if value.len() != 64 {
                return None;
            }
            let mut seed = [0u8; 32];
            for (i, b) in seed.iter_mut().enumerate() {
                *b = u8::from_str_radix(value.get(2 * i..2 * i + 2)?, 16).ok()?;
            }
            cfg.rng_seed = Some(seed);
        }
        _ => return None,
    }
    Some(())
}
