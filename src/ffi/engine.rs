//! `muxql_engine`: the Engine API for a C host that owns its sockets and its event loop.

use bytes::{Bytes, BytesMut};

use super::config::{muxql_config, protocol};
use super::{copy_text, guard, muxql_result};
use crate::mux::{Action, ClientId, Engine, Peer, Protocol, Route, Stats, UpstreamId};

/// Write `data` to client `id`.
pub const MUXQL_ACTION_SEND_CLIENT: u32 = 1;
/// Write `data` to upstream `id`.
pub const MUXQL_ACTION_SEND_UPSTREAM: u32 = 2;
/// Connect upstream `id` to `data` (the route's target, not NUL-terminated; `route` names the
/// route), then call `muxql_engine_upstream_connected` or `muxql_engine_upstream_closed`.
pub const MUXQL_ACTION_CONNECT_UPSTREAM: u32 = 3;
/// Flush what was written to client `id`, then close it; the id is dead.
pub const MUXQL_ACTION_CLOSE_CLIENT: u32 = 4;
/// Close upstream `id`; the id is dead.
pub const MUXQL_ACTION_CLOSE_UPSTREAM: u32 = 5;
/// PostgreSQL cancel of what runs on upstream `id`: open a side connection to route `route`'s
/// target, write `data`, wait until the server closes it, then call
/// `muxql_engine_cancel_done` for `id` (also when it fails). Until then the upstream is not
/// reused (at most 5 s), so that the cancel cannot reach the next client's query.
pub const MUXQL_ACTION_SEND_CANCEL: u32 = 6;
/// Stop reading from client `id` until `MUXQL_ACTION_RESUME_CLIENT`.
pub const MUXQL_ACTION_PAUSE_CLIENT: u32 = 7;
/// Read from client `id` again.
pub const MUXQL_ACTION_RESUME_CLIENT: u32 = 8;
/// Stop reading from upstream `id` until `MUXQL_ACTION_RESUME_UPSTREAM`.
pub const MUXQL_ACTION_PAUSE_UPSTREAM: u32 = 9;
/// Read from upstream `id` again.
pub const MUXQL_ACTION_RESUME_UPSTREAM: u32 = 10;
/// Switch client `id` to TLS: what was written to it so far goes out as it is (PostgreSQL: it
/// ends with the answer to its SSLRequest), then everything read and written is TLS, starting
/// with `data` (TLS records the client sent right behind its request; a MySQL client does not
/// wait for an answer). When the handshake fails, report the client closed. Only with
/// `client_tls` set.
pub const MUXQL_ACTION_START_TLS: u32 = 11;
/// Switch upstream `id` to TLS with route `route`'s settings (`upstream_tls`, its CA and
/// client certificate files: `muxql_config_set_route`): what was written to it so far goes
/// out as it is, then everything written is encrypted (the engine's next bytes may follow at
/// once; they wait for the handshake) and everything read is decrypted. Check the server's
/// certificate as the mode says; when the handshake or the check fails, call
/// `muxql_engine_upstream_closed`. Only for routes with upstream TLS set.
pub const MUXQL_ACTION_START_UPSTREAM_TLS: u32 = 12;

/// A client connection (`muxql_engine_send_blocked`, `muxql_engine_send_drained`).
pub const MUXQL_PEER_CLIENT: u32 = 1;
/// An upstream connection.
pub const MUXQL_PEER_UPSTREAM: u32 = 2;

/// No deadline (`muxql_engine_timeout`).
pub const MUXQL_NO_DEADLINE: u64 = u64::MAX;

/// One instruction for the host. `data`/`len` point into the engine's memory and stay valid
/// until the next call on that engine that may act (all but `muxql_engine_timeout`,
/// `muxql_engine_route_target` and `muxql_engine_stats_json`); NULL/0 for actions without
/// bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
#[allow(non_camel_case_types)]
pub struct muxql_action {
    /// `MUXQL_ACTION_*`.
    pub kind: u32,
    /// Index of the route (`MUXQL_ACTION_CONNECT_UPSTREAM`, `MUXQL_ACTION_SEND_CANCEL`,
    /// `MUXQL_ACTION_START_UPSTREAM_TLS`).
    pub route: u32,
    /// The client or upstream the action is for.
    pub id: u64,
    /// Bytes to write, or the target to connect to.
    pub data: *const u8,
    /// Length of `data`.
    pub len: usize,
}

/// A multiplexer engine. One thread at a time; every call may lend memory (action bytes, the
/// read buffer) that the next call reclaims, as each function says.
#[allow(non_camel_case_types)]
pub struct muxql_engine {
    engine: Engine,
    /// Bytes of the actions handed out since the last call.
    lent: Vec<Bytes>,
    /// The buffer `muxql_engine_read_buffer` lends (its spare capacity).
    read: BytesMut,
    /// A read buffer is lent and not committed yet.
    reading: bool,
}

/// Runs `f` on the engine behind `e`, after taking back what the previous call lent.
/// `e` must be NULL or a live engine from `muxql_engine_new` (every caller's contract).
fn with_engine(
    e: *mut muxql_engine,
    f: impl FnOnce(&mut muxql_engine) -> Result<(), muxql_result>,
) -> muxql_result {
    run(e, true, f)
}

/// Runs a query that acts on nothing (`muxql_engine_timeout`, `muxql_engine_route_target`,
/// `muxql_engine_stats_json`): what the previous call lent stays valid.
fn with_engine_query(
    e: *mut muxql_engine,
    f: impl FnOnce(&mut muxql_engine) -> Result<(), muxql_result>,
) -> muxql_result {
    run(e, false, f)
}

fn run(
    e: *mut muxql_engine,
    reclaim: bool,
    f: impl FnOnce(&mut muxql_engine) -> Result<(), muxql_result>,
) -> muxql_result {
    guard(|| {
        // SAFETY: NULL or a pointer from `muxql_engine_new` not yet freed (caller contract).
        let Some(e) = (unsafe { e.as_mut() }) else {
            return muxql_result::MUXQL_NULL_PARAMETER;
        };
        if reclaim {
            e.lent.clear();
        }
        match f(e) {
            Ok(()) => muxql_result::MUXQL_OK,
            Err(r) => r,
        }
    })
}

fn client(e: &muxql_engine, id: u64) -> Result<ClientId, muxql_result> {
    let id = ClientId(id);
    e.engine
        .has_client(id)
        .then_some(id)
        .ok_or(muxql_result::MUXQL_UNKNOWN_ID)
}

fn upstream(e: &muxql_engine, id: u64) -> Result<UpstreamId, muxql_result> {
    let id = UpstreamId(id);
    e.engine
        .has_upstream(id)
        .then_some(id)
        .ok_or(muxql_result::MUXQL_UNKNOWN_ID)
}

/// `len` bytes at `data` as an owned buffer (`data` may be NULL when `len` is 0).
///
/// # Safety
/// `data` must be valid for reads of `len` bytes.
unsafe fn input(data: *const u8, len: usize) -> Result<BytesMut, muxql_result> {
    if len == 0 {
        return Ok(BytesMut::new());
    }
    if data.is_null() {
        return Err(muxql_result::MUXQL_NULL_PARAMETER);
    }
    // SAFETY: `data` is valid for `len` bytes (caller contract), checked non-NULL.
    Ok(BytesMut::from(unsafe {
        std::slice::from_raw_parts(data, len)
    }))
}

/// Creates an engine from `config` (which stays the caller's) in `*engine_out`. When the
/// configuration is refused, returns `MUXQL_INVALID_CONFIG` and writes the reason to `message`
/// (NUL-terminated, at most `message_len` bytes; `message` may be NULL).
///
/// # Safety
/// `config` must be a live config; `engine_out` valid for a write; `message` NULL or valid for
/// `message_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn muxql_engine_new(
    config: *const muxql_config,
    engine_out: *mut *mut muxql_engine,
    message: *mut libc::c_char,
    message_len: usize,
) -> muxql_result {
    guard(|| {
        // SAFETY: NULL or a live config (caller contract).
        let Some(cfg) = (unsafe { config.as_ref() }) else {
            return muxql_result::MUXQL_NULL_PARAMETER;
        };
        if engine_out.is_null() {
            return muxql_result::MUXQL_NULL_PARAMETER;
        }
        let mut c = cfg.config.clone();
        if let Some(mode) = cfg.pool_mode {
            for r in &mut c.routes {
                r.pool_mode = mode;
            }
        }
        match Engine::new(c) {
            Ok(engine) => {
                let e = Box::new(muxql_engine {
                    engine,
                    lent: Vec::new(),
                    read: BytesMut::new(),
                    reading: false,
                });
                // SAFETY: checked non-NULL; valid for a write (caller contract).
                unsafe { *engine_out = Box::into_raw(e) };
                muxql_result::MUXQL_OK
            }
            Err(err) => {
                // SAFETY: the caller's contract on `message`.
                unsafe { copy_text(&err.to_string(), message, message_len, std::ptr::null_mut()) };
                muxql_result::MUXQL_INVALID_CONFIG
            }
        }
    })
}

/// Frees an engine and everything it lent; NULL is fine. The host closes its sockets itself.
///
/// # Safety
/// `engine` must be NULL or from `muxql_engine_new`, and not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn muxql_engine_free(engine: *mut muxql_engine) {
    let _ = guard(|| {
        if !engine.is_null() {
            // SAFETY: from `Box::into_raw` in `muxql_engine_new`, freed once (caller contract).
            drop(unsafe { Box::from_raw(engine) });
        }
        muxql_result::MUXQL_OK
    });
}

/// A client connected to a listener speaking `protocol` (`MUXQL_PROTOCOL_*`); its id goes to
/// `*id_out`. A MySQL client is greeted by the engine (through the actions).
///
/// # Safety
/// `engine` must be a live engine; `id_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn muxql_engine_client_open(
    engine: *mut muxql_engine,
    protocol_id: u32,
    now_ms: u64,
    id_out: *mut u64,
) -> muxql_result {
    with_engine(engine, |e| {
        if id_out.is_null() {
            return Err(muxql_result::MUXQL_NULL_PARAMETER);
        }
        let p: Protocol = protocol(protocol_id)?;
        let id = e.engine.client_open(p, now_ms);
        // SAFETY: checked non-NULL; valid for a write (caller contract).
        unsafe { *id_out = id.0 };
        Ok(())
    })
}

/// Bytes arrived from client `id` (copied once; see `muxql_engine_read_buffer` for none).
///
/// # Safety
/// `engine` must be a live engine; `data` valid for reads of `len` bytes (NULL when 0).
#[no_mangle]
pub unsafe extern "C" fn muxql_engine_client_data(
    engine: *mut muxql_engine,
    id: u64,
    data: *const u8,
    len: usize,
    now_ms: u64,
) -> muxql_result {
    with_engine(engine, |e| {
        let id = client(e, id)?;
        // SAFETY: the caller's contract on `data`.
        let bytes = unsafe { input(data, len) }?;
        e.engine.client_data(id, bytes, now_ms);
        Ok(())
    })
}

/// Bytes arrived from upstream `id` (copied once).
///
/// # Safety
/// `engine` must be a live engine; `data` valid for reads of `len` bytes (NULL when 0).
#[no_mangle]
pub unsafe extern "C" fn muxql_engine_upstream_data(
    engine: *mut muxql_engine,
    id: u64,
    data: *const u8,
    len: usize,
    now_ms: u64,
) -> muxql_result {
    with_engine(engine, |e| {
        let id = upstream(e, id)?;
        // SAFETY: the caller's contract on `data`.
        let bytes = unsafe { input(data, len) }?;
        e.engine.upstream_data(id, bytes, now_ms);
        Ok(())
    })
}

/// Lends a buffer of at least `min` bytes to read into: `*buf_out`, `*capacity_out`. Read
/// straight into it, then hand the bytes over with `muxql_engine_client_commit` or
/// `muxql_engine_upstream_commit` — no copy on the way in. The buffer stays valid until that
/// commit (other calls may come in between) or `muxql_engine_free`.
///
/// # Safety
/// `engine` must be a live engine; `buf_out` and `capacity_out` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn muxql_engine_read_buffer(
    engine: *mut muxql_engine,
    min: usize,
    buf_out: *mut *mut u8,
    capacity_out: *mut usize,
) -> muxql_result {
    with_engine(engine, |e| {
        if buf_out.is_null() || capacity_out.is_null() {
            return Err(muxql_result::MUXQL_NULL_PARAMETER);
        }
        if min > crate::wire::limits::HARD_MAX_MESSAGE {
            return Err(muxql_result::MUXQL_INVALID_ARGUMENT);
        }
        if e.read.capacity() - e.read.len() < min.max(1) {
            e.read.reserve(min.max(64 * 1024));
        }
        let spare = e.read.spare_capacity_mut();
        // SAFETY: both checked non-NULL; valid for writes (caller contract).
        unsafe {
            *buf_out = spare.as_mut_ptr().cast();
            *capacity_out = spare.len();
        }
        e.reading = true;
        Ok(())
    })
}

/// Takes the `n` bytes read into the lent buffer as the engine's own.
fn commit(e: &mut muxql_engine, n: usize) -> Result<BytesMut, muxql_result> {
    if !e.reading {
        return Err(muxql_result::MUXQL_WRONG_STATE);
    }
    if n > e.read.capacity() - e.read.len() {
        return Err(muxql_result::MUXQL_INVALID_ARGUMENT);
    }
    e.reading = false;
    let len = e.read.len();
    // SAFETY: the host wrote `n` bytes into the spare capacity lent by
    // `muxql_engine_read_buffer` (its contract), and n is within that capacity.
    unsafe { e.read.set_len(len + n) };
    Ok(e.read.split())
}

/// Hands the first `n` bytes of the lent read buffer to the engine as data from client `id`.
///
/// # Safety
/// `engine` must be a live engine, and `n` bytes must have been written to the lent buffer.
#[no_mangle]
pub unsafe extern "C" fn muxql_engine_client_commit(
    engine: *mut muxql_engine,
    id: u64,
    n: usize,
    now_ms: u64,
) -> muxql_result {
    with_engine(engine, |e| {
        let id = client(e, id)?;
        let bytes = commit(e, n)?;
        e.engine.client_data(id, bytes, now_ms);
        Ok(())
    })
}

/// Hands the first `n` bytes of the lent read buffer to the engine as data from upstream `id`.
///
/// # Safety
/// `engine` must be a live engine, and `n` bytes must have been written to the lent buffer.
#[no_mangle]
pub unsafe extern "C" fn muxql_engine_upstream_commit(
    engine: *mut muxql_engine,
    id: u64,
    n: usize,
    now_ms: u64,
) -> muxql_result {
    with_engine(engine, |e| {
        let id = upstream(e, id)?;
        let bytes = commit(e, n)?;
        e.engine.upstream_data(id, bytes, now_ms);
        Ok(())
    })
}

/// Client `id`'s socket closed or failed (not for ids the engine closed itself).
///
/// # Safety
/// `engine` must be a live engine.
#[no_mangle]
pub unsafe extern "C" fn muxql_engine_client_closed(
    engine: *mut muxql_engine,
    id: u64,
    now_ms: u64,
) -> muxql_result {
    with_engine(engine, |e| {
        let id = client(e, id)?;
        e.engine.client_closed(id, now_ms);
        Ok(())
    })
}

/// The connection asked for by `MUXQL_ACTION_CONNECT_UPSTREAM` is established.
///
/// # Safety
/// `engine` must be a live engine.
#[no_mangle]
pub unsafe extern "C" fn muxql_engine_upstream_connected(
    engine: *mut muxql_engine,
    id: u64,
    now_ms: u64,
) -> muxql_result {
    with_engine(engine, |e| {
        let id = upstream(e, id)?;
        e.engine.upstream_connected(id, now_ms);
        Ok(())
    })
}

/// The side connection of `MUXQL_ACTION_SEND_CANCEL` for upstream `id` is done: the server
/// closed it, or it failed. An id no longer known is fine (`MUXQL_OK`).
///
/// # Safety
/// `engine` must be a live engine.
#[no_mangle]
pub unsafe extern "C" fn muxql_engine_cancel_done(
    engine: *mut muxql_engine,
    id: u64,
    now_ms: u64,
) -> muxql_result {
    with_engine(engine, |e| {
        e.engine.cancel_done(UpstreamId(id), now_ms);
        Ok(())
    })
}

/// Upstream `id`'s socket closed or failed, or could not connect; the id is dead (no
/// `MUXQL_ACTION_CLOSE_UPSTREAM` follows for it).
///
/// # Safety
/// `engine` must be a live engine.
#[no_mangle]
pub unsafe extern "C" fn muxql_engine_upstream_closed(
    engine: *mut muxql_engine,
    id: u64,
    now_ms: u64,
) -> muxql_result {
    with_engine(engine, |e| {
        let id = upstream(e, id)?;
        e.engine.upstream_closed(id, now_ms);
        Ok(())
    })
}

/// Time passed: expires whatever is due at `now_ms`.
///
/// # Safety
/// `engine` must be a live engine.
#[no_mangle]
pub unsafe extern "C" fn muxql_engine_handle_timeout(
    engine: *mut muxql_engine,
    now_ms: u64,
) -> muxql_result {
    with_engine(engine, |e| {
        e.engine.handle_timeout(now_ms);
        Ok(())
    })
}

/// The next time `muxql_engine_handle_timeout` must be called, in `*deadline_out`
/// (`MUXQL_NO_DEADLINE` when nothing is armed).
///
/// # Safety
/// `engine` must be a live engine; `deadline_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn muxql_engine_timeout(
    engine: *mut muxql_engine,
    deadline_out: *mut u64,
) -> muxql_result {
    with_engine_query(engine, |e| {
        if deadline_out.is_null() {
            return Err(muxql_result::MUXQL_NULL_PARAMETER);
        }
        let d = e.engine.poll_timeout().unwrap_or(MUXQL_NO_DEADLINE);
        // SAFETY: checked non-NULL (caller contract).
        unsafe { *deadline_out = d };
        Ok(())
    })
}

fn peer(e: &muxql_engine, kind: u32, id: u64) -> Result<Peer, muxql_result> {
    match kind {
        MUXQL_PEER_CLIENT => client(e, id).map(Peer::Client),
        MUXQL_PEER_UPSTREAM => upstream(e, id).map(Peer::Upstream),
        _ => Err(muxql_result::MUXQL_INVALID_ARGUMENT),
    }
}

/// The host's write queue to a peer (`MUXQL_PEER_*`, `id`) grew past its high-water mark: the
/// engine pauses the connection feeding it (through the actions).
///
/// # Safety
/// `engine` must be a live engine.
#[no_mangle]
pub unsafe extern "C" fn muxql_engine_send_blocked(
    engine: *mut muxql_engine,
    peer_kind: u32,
    id: u64,
    now_ms: u64,
) -> muxql_result {
    with_engine(engine, |e| {
        let p = peer(e, peer_kind, id)?;
        e.engine.send_blocked(p, now_ms);
        Ok(())
    })
}

/// The host's write queue to a peer drained below its low-water mark.
///
/// # Safety
/// `engine` must be a live engine.
#[no_mangle]
pub unsafe extern "C" fn muxql_engine_send_drained(
    engine: *mut muxql_engine,
    peer_kind: u32,
    id: u64,
    now_ms: u64,
) -> muxql_result {
    with_engine(engine, |e| {
        let p = peer(e, peer_kind, id)?;
        e.engine.send_drained(p, now_ms);
        Ok(())
    })
}

/// The next action as a C struct, keeping its bytes alive in `lent`.
fn next_action(e: &mut muxql_engine) -> Option<muxql_action> {
    let action = e.engine.poll_action()?;
    let mut a = muxql_action {
        kind: 0,
        route: 0,
        id: 0,
        data: std::ptr::null(),
        len: 0,
    };
    let mut lend = |bytes: Bytes, a: &mut muxql_action| {
        a.data = bytes.as_ptr();
        a.len = bytes.len();
        e.lent.push(bytes);
    };
    match action {
        Action::SendClient { id, bytes } => {
            (a.kind, a.id) = (MUXQL_ACTION_SEND_CLIENT, id.0);
            lend(bytes, &mut a);
        }
        Action::SendUpstream { id, bytes } => {
            (a.kind, a.id) = (MUXQL_ACTION_SEND_UPSTREAM, id.0);
            lend(bytes, &mut a);
        }
        Action::ConnectUpstream { id, route } => {
            (a.kind, a.id) = (MUXQL_ACTION_CONNECT_UPSTREAM, id.0);
            a.route = u32::try_from(route).unwrap_or(u32::MAX);
            if let Some(r) = e.engine.config().routes.get(route) {
                a.data = r.target.as_ptr();
                a.len = r.target.len();
            }
        }
        Action::CloseClient { id } => (a.kind, a.id) = (MUXQL_ACTION_CLOSE_CLIENT, id.0),
        Action::CloseUpstream { id } => (a.kind, a.id) = (MUXQL_ACTION_CLOSE_UPSTREAM, id.0),
        Action::SendCancel {
            route,
            upstream,
            bytes,
        } => {
            (a.kind, a.id) = (MUXQL_ACTION_SEND_CANCEL, upstream.0);
            a.route = u32::try_from(route).unwrap_or(u32::MAX);
            lend(bytes, &mut a);
        }
        Action::StartTls { id, records } => {
            (a.kind, a.id) = (MUXQL_ACTION_START_TLS, id.0);
            lend(records, &mut a);
        }
        Action::StartUpstreamTls { id, route } => {
            (a.kind, a.id) = (MUXQL_ACTION_START_UPSTREAM_TLS, id.0);
            a.route = u32::try_from(route).unwrap_or(u32::MAX);
        }
        Action::PauseReading { peer } | Action::ResumeReading { peer } => {
            let pause = matches!(action, Action::PauseReading { .. });
            (a.kind, a.id) = match (peer, pause) {
                (Peer::Client(c), true) => (MUXQL_ACTION_PAUSE_CLIENT, c.0),
                (Peer::Client(c), false) => (MUXQL_ACTION_RESUME_CLIENT, c.0),
                (Peer::Upstream(u), true) => (MUXQL_ACTION_PAUSE_UPSTREAM, u.0),
                (Peer::Upstream(u), false) => (MUXQL_ACTION_RESUME_UPSTREAM, u.0),
            };
        }
    }
    Some(a)
}

/// The next action, in `*action_out`; `MUXQL_NO_ACTION` when there is none. Actions for one
/// connection must be carried out in the order they come. The action's bytes stay valid until
/// the next call on this engine.
///
/// # Safety
/// `engine` must be a live engine; `action_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn muxql_engine_poll_action(
    engine: *mut muxql_engine,
    action_out: *mut muxql_action,
) -> muxql_result {
    with_engine(engine, |e| {
        if action_out.is_null() {
            return Err(muxql_result::MUXQL_NULL_PARAMETER);
        }
        let a = next_action(e).ok_or(muxql_result::MUXQL_NO_ACTION)?;
        // SAFETY: checked non-NULL; valid for a write (caller contract).
        unsafe { *action_out = a };
        Ok(())
    })
}

/// Up to `capacity` actions into `actions`, their number in `*count_out` (0 when none): one
/// call per batch for hosts whose foreign calls cost. Their bytes stay valid until the next
/// call on this engine.
///
/// # Safety
/// `engine` must be a live engine; `actions` valid for writes of `capacity` entries;
/// `count_out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn muxql_engine_poll_actions(
    engine: *mut muxql_engine,
    actions: *mut muxql_action,
    capacity: usize,
    count_out: *mut usize,
) -> muxql_result {
    with_engine(engine, |e| {
        if count_out.is_null() || (actions.is_null() && capacity > 0) {
            return Err(muxql_result::MUXQL_NULL_PARAMETER);
        }
        let mut n = 0;
        while n < capacity {
            let Some(a) = next_action(e) else {
                break;
            };
            // SAFETY: n < capacity; `actions` holds `capacity` entries (caller contract).
            unsafe { *actions.add(n) = a };
            n += 1;
        }
        // SAFETY: checked non-NULL (caller contract).
        unsafe { *count_out = n };
        Ok(())
    })
}

/// Route `route`'s target (`host:port` or a socket path, not NUL-terminated), for side
/// connections (`MUXQL_ACTION_SEND_CANCEL`). Valid as long as the engine.
///
/// # Safety
/// `engine` must be a live engine; `target_out` and `len_out` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn muxql_engine_route_target(
    engine: *mut muxql_engine,
    route: u32,
    target_out: *mut *const u8,
    len_out: *mut usize,
) -> muxql_result {
    with_engine_query(engine, |e| {
        if target_out.is_null() || len_out.is_null() {
            return Err(muxql_result::MUXQL_NULL_PARAMETER);
        }
        let r = usize::try_from(route)
            .ok()
            .and_then(|r| e.engine.config().routes.get(r))
            .ok_or(muxql_result::MUXQL_INVALID_ARGUMENT)?;
        // SAFETY: both checked non-NULL (caller contract).
        unsafe {
            *target_out = r.target.as_ptr();
            *len_out = r.target.len();
        }
        Ok(())
    })
}

/// Counters as JSON (`{"clients_logging_in":N,"errors":{"auth":N,..},"routes":[{"database":..,...}]}`),
/// NUL-terminated into `buf`; `*written_out` gets its length. When `len` is too small, returns
/// `MUXQL_INSUFFICIENT_SIZE` with the length needed (without the NUL) in `*written_out`.
///
/// # Safety
/// `engine` must be a live engine; `buf` valid for `len` bytes; `written_out` valid.
#[no_mangle]
pub unsafe extern "C" fn muxql_engine_stats_json(
    engine: *mut muxql_engine,
    buf: *mut libc::c_char,
    len: usize,
    written_out: *mut usize,
) -> muxql_result {
    with_engine_query(engine, |e| {
        if written_out.is_null() {
            return Err(muxql_result::MUXQL_NULL_PARAMETER);
        }
        let json = stats_json(&e.engine.stats(), &e.engine.config().routes);
        if buf.is_null() || len <= json.len() {
            // SAFETY: checked non-NULL (caller contract).
            unsafe { *written_out = json.len() };
            return Err(muxql_result::MUXQL_INSUFFICIENT_SIZE);
        }
        // SAFETY: the caller's contract on `buf`, `len`, `written_out`.
        unsafe { copy_text(&json, buf, len, written_out) };
        Ok(())
    })
}

/// The stats as JSON, routes named by database and protocol.
pub(crate) fn stats_json(stats: &Stats, routes: &[Route]) -> String {
    let e = &stats.errors;
    let mut out = format!(
        "{{\"clients_logging_in\":{},\"errors\":{{\"auth\":{},\"protocol\":{},\
         \"upstream\":{},\"timeout\":{}}},\"routes\":[",
        stats.clients_logging_in, e.auth, e.protocol, e.upstream, e.timeout
    );
    for (i, (r, route)) in stats.routes.iter().zip(routes).enumerate() {
        if i > 0 {
            out.push(',');
        }
        let protocol = match route.protocol {
            Protocol::Postgres => "postgres",
            _ => "mysql",
        };
        let db: String = route
            .database
            .chars()
            .flat_map(|c| match c {
                '"' | '\\' => vec!['\\', c],
                c if (c as u32) < 0x20 => format!("\\u{:04x}", c as u32).chars().collect(),
                c => vec![c],
            })
            .collect();
        out.push_str(&format!(
            "{{\"database\":\"{db}\",\"protocol\":\"{protocol}\",\"clients\":{},\
             \"clients_active\":{},\"clients_waiting\":{},\"clients_pinned\":{},\
             \"upstreams\":{},\"upstreams_active\":{},\"upstreams_idle\":{},\
             \"peak_clients\":{},\"peak_upstreams\":{},\"transactions\":{},\"queries\":{},\
             \"bytes_from_clients\":{},\"bytes_from_upstreams\":{},\"wait_ms\":{},\"pins\":{},\
             \"upstreams_discarded\":{},\"pipelined\":{},\"pipelined_retries\":{},\
             \"statements\":{},\"wait_histogram\":{:?}}}",
            r.clients,
            r.clients_active,
            r.clients_waiting,
            r.clients_pinned,
            r.upstreams,
            r.upstreams_active,
            r.upstreams_idle,
            r.peak_clients,
            r.peak_upstreams,
            r.transactions,
            r.queries,
            r.bytes_from_clients,
            r.bytes_from_upstreams,
            r.wait_ms,
            r.pins,
            r.upstreams_discarded,
            r.pipelined,
            r.pipelined_retries,
            r.statements,
            r.wait_histogram
        ));
    }
    out.push_str("]}");
    out
}
