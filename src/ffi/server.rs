//! `muxql_server`: muxql running its own thread (the tokio server), for hosts that want a
//! ready proxy rather than the Engine API. Built with the `server` feature.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::config::muxql_config;
use super::engine::stats_json;
use super::{c_str, copy_text, guard, muxql_result};
use crate::mux::{Route, Stats};
use crate::server::{ListenAddr, Reloader, Server, ServerConfig};

/// How often the server thread publishes its counters for `muxql_server_stats_json`.
const STATS_EVERY: Duration = Duration::from_millis(200);

/// A running muxql server: its own thread, listeners and pools. Any thread may call its
/// functions, one at a time.
#[allow(non_camel_case_types)]
pub struct muxql_server {
    thread: Option<JoinHandle<()>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The latest counters and the routes they are for, published by the server thread.
    stats: Arc<Mutex<(Stats, Vec<Route>)>>,
    reloader: Reloader,
    pg_port: u16,
    mysql_port: u16,
}

/// The TCP port a listener bound (0 for Unix sockets or none).
fn port(addrs: &[ListenAddr]) -> u16 {
    addrs
        .iter()
        .find_map(|a| match a {
            ListenAddr::Tcp(s) => s.parse::<std::net::SocketAddr>().ok().map(|a| a.port()),
            ListenAddr::Unix(_) => None,
        })
        .unwrap_or(0)
}

/// Starts a server with `config` on its own thread, listening for PostgreSQL clients on
/// `listen_pg` and MySQL clients on `listen_mysql` (`host:port`, `unix:/path`; either may be
/// NULL, not both; port 0 picks a free one, see `muxql_server_port`). Returns once the
/// listeners are bound; on failure writes the reason to `message` (as `muxql_engine_new`).
/// `shutdown_timeout_ms` bounds the wait for running transactions in `muxql_server_stop`.
///
/// # Safety
/// `config` must be a live config; the addresses NULL or NUL-terminated UTF-8; `server_out`
/// valid for a write; `message` NULL or valid for `message_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn muxql_server_start(
    config: *const muxql_config,
    listen_pg: *const libc::c_char,
    listen_mysql: *const libc::c_char,
    shutdown_timeout_ms: u64,
    server_out: *mut *mut muxql_server,
    message: *mut libc::c_char,
    message_len: usize,
) -> muxql_result {
    // SAFETY: NULL or NUL-terminated strings valid for the call (caller contract).
    let (pg, my) = unsafe {
        (
            (!listen_pg.is_null()).then(|| c_str(listen_pg)),
            (!listen_mysql.is_null()).then(|| c_str(listen_mysql)),
        )
    };
    guard(|| {
        // SAFETY: NULL or a live config (caller contract).
        let Some(cfg) = (unsafe { config.as_ref() }) else {
            return muxql_result::MUXQL_NULL_PARAMETER;
        };
        if server_out.is_null() {
            return muxql_result::MUXQL_NULL_PARAMETER;
        }
        let fail = |text: &str| {
            // SAFETY: the caller's contract on `message`.
            unsafe { copy_text(text, message, message_len, std::ptr::null_mut()) };
            muxql_result::MUXQL_INVALID_CONFIG
        };
        let parse =
            |a: Option<Result<&str, muxql_result>>| -> Result<Vec<ListenAddr>, muxql_result> {
                match a {
                    None => Ok(Vec::new()),
                    Some(s) => {
                        Ok(vec![ListenAddr::parse(s?)
                            .map_err(|_| muxql_result::MUXQL_INVALID_ARGUMENT)?])
                    }
                }
            };
        let (listen_pg, listen_mysql) = match (parse(pg), parse(my)) {
            (Ok(p), Ok(m)) => (p, m),
            (Err(e), _) | (_, Err(e)) => return e,
        };
        if listen_pg.is_empty() && listen_mysql.is_empty() {
            return fail("no listen address: give listen_pg, listen_mysql or both");
        }
        let mut engine = cfg.config.clone();
        if let Some(mode) = cfg.pool_mode {
            for r in &mut engine.routes {
                r.pool_mode = mode;
            }
        }
        let routes = engine.routes.clone();
        let config = ServerConfig {
            engine,
            listen_pg,
            listen_mysql,
            listen_ws: Vec::new(),
            listeners: Vec::new(),
            metrics: None,
            shutdown_timeout: Duration::from_millis(shutdown_timeout_ms),
            log_level: None,
            tls: None,
        };
        let stats = Arc::new(Mutex::new((Stats::default(), routes)));
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let published = stats.clone();
        let thread = std::thread::Builder::new()
            .name("muxql-server".into())
            .spawn(move || {
                let mut server = match Server::bind(config) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = bound_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                server.report_stats(STATS_EVERY, move |s, routes| {
                    if let Ok(mut slot) = published.lock() {
                        *slot = (s, routes.to_vec());
                    }
                });
                let ports = (port(&server.local_addrs()), port(&server.mysql_addrs()));
                let _ = bound_tx.send(Ok((ports, server.reloader())));
                if let Err(e) = server.run_until(async {
                    let _ = stopped.await;
                }) {
                    eprintln!("muxql server: {e}");
                }
            });
        let Ok(thread) = thread else {
            return fail("cannot start the server thread");
        };
        match bound_rx.recv() {
            Ok(Ok(((pg_port, mysql_port), reloader))) => {
                let server = Box::new(muxql_server {
                    thread: Some(thread),
                    stop: Some(stop),
                    stats,
                    reloader,
                    pg_port,
                    mysql_port,
                });
                // SAFETY: checked non-NULL; valid for a write (caller contract).
                unsafe { *server_out = Box::into_raw(server) };
                muxql_result::MUXQL_OK
            }
            Ok(Err(e)) => {
                let _ = thread.join();
                fail(&e)
            }
            Err(_) => {
                let _ = thread.join();
                fail("the server thread ended before binding")
            }
        }
    })
}

/// The TCP port the listener for `protocol` (`MUXQL_PROTOCOL_*`) bound, in `*port_out` (0 when
/// there is none or it is a Unix socket).
///
/// # Safety
/// `server` must be a live server; `port_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn muxql_server_port(
    server: *const muxql_server,
    protocol: u32,
    port_out: *mut u16,
) -> muxql_result {
    guard(|| {
        // SAFETY: NULL or a live server (caller contract).
        let Some(s) = (unsafe { server.as_ref() }) else {
            return muxql_result::MUXQL_NULL_PARAMETER;
        };
        if port_out.is_null() {
            return muxql_result::MUXQL_NULL_PARAMETER;
        }
        let p = match protocol {
            super::MUXQL_PROTOCOL_POSTGRES => s.pg_port,
            super::MUXQL_PROTOCOL_MYSQL => s.mysql_port,
            _ => return muxql_result::MUXQL_INVALID_ARGUMENT,
        };
        // SAFETY: checked non-NULL (caller contract).
        unsafe { *port_out = p };
        muxql_result::MUXQL_OK
    })
}

/// The server's counters as JSON (the format of `muxql_engine_stats_json`, at most a fifth of
/// a second old), with the same buffer rules.
///
/// # Safety
/// `server` must be a live server; `buf` valid for `len` bytes; `written_out` valid.
#[no_mangle]
pub unsafe extern "C" fn muxql_server_stats_json(
    server: *const muxql_server,
    buf: *mut libc::c_char,
    len: usize,
    written_out: *mut usize,
) -> muxql_result {
    guard(|| {
        // SAFETY: NULL or a live server (caller contract).
        let Some(s) = (unsafe { server.as_ref() }) else {
            return muxql_result::MUXQL_NULL_PARAMETER;
        };
        if written_out.is_null() {
            return muxql_result::MUXQL_NULL_PARAMETER;
        }
        let (stats, routes) = s.stats.lock().map(|g| g.clone()).unwrap_or_default();
        let json = stats_json(&stats, &routes);
        if buf.is_null() || len <= json.len() {
            // SAFETY: checked non-NULL (caller contract).
            unsafe { *written_out = json.len() };
            return muxql_result::MUXQL_INSUFFICIENT_SIZE;
        }
        // SAFETY: the caller's contract on `buf`, `len`, `written_out`.
        unsafe { copy_text(&json, buf, len, written_out) };
        muxql_result::MUXQL_OK
    })
}

/// Applies `config` to the running server without dropping clients: users and settings are
/// replaced, routes keep their pools (a route whose server or login changed reconnects as its
/// connections come free), new routes are added and removed ones take no new clients. When the
/// configuration is refused, returns `MUXQL_INVALID_CONFIG` and writes the reason to `message`;
/// the server then runs on unchanged.
///
/// # Safety
/// `server` must be a live server; `config` a live config; `message` NULL or valid for
/// `message_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn muxql_server_reload(
    server: *mut muxql_server,
    config: *const muxql_config,
    message: *mut libc::c_char,
    message_len: usize,
) -> muxql_result {
    guard(|| {
        // SAFETY: NULL or a live server and config (caller contract).
        let (Some(s), Some(cfg)) = (unsafe { server.as_mut() }, unsafe { config.as_ref() }) else {
            return muxql_result::MUXQL_NULL_PARAMETER;
        };
        let mut engine = cfg.config.clone();
        if let Some(mode) = cfg.pool_mode {
            for r in &mut engine.routes {
                r.pool_mode = mode;
            }
        }
        match s.reloader.reload(engine) {
            Ok(()) => muxql_result::MUXQL_OK,
            Err(e) => {
                // SAFETY: the caller's contract on `message`.
                unsafe { copy_text(&e, message, message_len, std::ptr::null_mut()) };
                muxql_result::MUXQL_INVALID_CONFIG
            }
        }
    })
}

/// Stops accepting, waits up to the shutdown timeout until no client holds an upstream, closes
/// everything and joins the server thread. Stopping twice is fine.
///
/// # Safety
/// `server` must be a live server.
#[no_mangle]
pub unsafe extern "C" fn muxql_server_stop(server: *mut muxql_server) -> muxql_result {
    guard(|| {
        // SAFETY: NULL or a live server (caller contract).
        let Some(s) = (unsafe { server.as_mut() }) else {
            return muxql_result::MUXQL_NULL_PARAMETER;
        };
        stop(s);
        muxql_result::MUXQL_OK
    })
}

fn stop(s: &mut muxql_server) {
    if let Some(tx) = s.stop.take() {
        let _ = tx.send(());
    }
    if let Some(t) = s.thread.take() {
        let _ = t.join();
    }
}

/// Stops the server (as `muxql_server_stop`) and frees it; NULL is fine.
///
/// # Safety
/// `server` must be NULL or from `muxql_server_start`, and not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn muxql_server_free(server: *mut muxql_server) {
    let _ = guard(|| {
        if !server.is_null() {
            // SAFETY: from `Box::into_raw` in `muxql_server_start`, freed once (caller contract).
            let mut s = unsafe { Box::from_raw(server) };
            stop(&mut s);
        }
        muxql_result::MUXQL_OK
    });
}
