//! The C ABI (`include/muxql.h`), called as a C host would: configuration from fuzzer-chosen
//! keys and values, an engine fed bytes by copy and through the lent read buffer, actions
//! polled one at a time or in batches, ids live, dead or made up, NULL outputs, short buffers,
//! and calls after free (on NULL). Invariants: no call returns `MUXQL_PANIC` (a panic would
//! abort the run first); every byte an action points at is readable (AddressSanitizer checks
//! each read); outputs are written within the buffers given (the same), text is NUL-terminated
//! and the reported lengths are right; the lent buffer is never overrun by a commit.
#![no_main]

use std::ffi::CString;
use std::ptr;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use muxql::ffi::*;

const KEYS: &[&str] = &[
    "auth",
    "mysql_auth",
    "pin_policy",
    "pool_mode",
    "wait_timeout_ms",
    "idle_timeout_ms",
    "server_lifetime_ms",
    "connect_timeout_ms",
    "client_login_timeout_ms",
    "statement_cache_size",
    "pipeline_depth",
    "max_message",
    "scram_iterations",
    "client_backlog_limit",
    "rng_seed",
];

#[derive(Arbitrary, Debug)]
enum Call {
    Set {
        key: u8,
        value: String,
    },
    SetRaw {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    AddRoute {
        protocol: u32,
        database: String,
        pool: u8,
    },
    AddUser {
        name: String,
        password: String,
    },
    New {
        message_len: u8,
    },
    Free,
    Open {
        protocol: u32,
    },
    ClientData {
        client: u8,
        data: Vec<u8>,
    },
    UpstreamData {
        upstream: u8,
        data: Vec<u8>,
    },
    ReadBuffer {
        min: u32,
    },
    Commit {
        peer: u8,
        upstream: bool,
        n: u32,
        fill: u8,
    },
    ClientClosed {
        client: u8,
    },
    UpstreamConnected {
        upstream: u8,
    },
    UpstreamClosed {
        upstream: u8,
    },
    CancelDone {
        upstream: u8,
    },
    MadeUpId {
        id: u64,
        which: u8,
    },
    HandleTimeout {
        ms: u32,
    },
    Timeout,
    Blocked {
        kind: u32,
        peer: u8,
    },
    Drained {
        kind: u32,
        peer: u8,
    },
    Poll,
    PollBatch {
        capacity: u8,
    },
    RouteTarget {
        route: u32,
    },
    Stats {
        len: u16,
    },
    ResultText {
        code: u32,
        len: u8,
    },
    NullOutputs {
        which: u8,
    },
}

struct Host {
    config: *mut muxql_config,
    engine: *mut muxql_engine,
    now: u64,
    clients: Vec<u64>,
    upstreams: Vec<u64>,
    /// The lent read buffer and its capacity, while one is lent.
    lent: Option<(*mut u8, usize)>,
}

fn ok(r: muxql_result) -> bool {
    assert_ne!(
        r,
        muxql_result::MUXQL_PANIC,
        "muxql panicked behind the C ABI"
    );
    r == muxql_result::MUXQL_OK
}

fn c_string(s: &[u8]) -> CString {
    CString::new(s.iter().copied().filter(|&b| b != 0).collect::<Vec<u8>>()).expect("no NUL")
}

fn pick(ids: &[u64], i: u8) -> u64 {
    if ids.is_empty() {
        u64::from(i)
    } else {
        ids[usize::from(i) % ids.len()]
    }
}

/// Reads every byte of an action and notes the ids it names.
fn take(host: &mut Host, a: &muxql_action) {
    if a.len > 0 {
        assert!(!a.data.is_null(), "an action with bytes and no pointer");
        // SAFETY: the engine lends `len` bytes at `data` until the next call; ASan checks it.
        let bytes = unsafe { std::slice::from_raw_parts(a.data, a.len) };
        std::hint::black_box(bytes.iter().fold(0u8, |x, b| x ^ b));
    }
    if a.kind == MUXQL_ACTION_CONNECT_UPSTREAM {
        host.upstreams.push(a.id);
    }
}

impl Host {
    fn call(&mut self, call: Call) {
        let e = self.engine;
        let now = self.now;
        // SAFETY (every call below): the config and engine pointers are live or NULL, and every
        // other pointer argument points at memory of the stated size owned by this function.
        unsafe {
            match call {
                Call::Set { key, value } => {
                    let k = c_string(KEYS[usize::from(key) % KEYS.len()].as_bytes());
                    let v = c_string(value.as_bytes());
                    ok(muxql_config_set(self.config, k.as_ptr(), v.as_ptr()));
                }
                Call::SetRaw { key, value } => {
                    let (k, v) = (c_string(&key), c_string(&value));
                    ok(muxql_config_set(self.config, k.as_ptr(), v.as_ptr()));
                }
                Call::AddRoute {
                    protocol,
                    database,
                    pool,
                } => {
                    let db = c_string(database.as_bytes());
                    let target = c_string(b"127.0.0.1:5432");
                    let user = c_string(b"up");
                    ok(muxql_config_add_route(
                        self.config,
                        protocol % 4,
                        db.as_ptr(),
                        target.as_ptr(),
                        user.as_ptr(),
                        ptr::null(),
                        ptr::null(),
                        usize::from(pool % 4),
                    ));
                }
                Call::AddUser { name, password } => {
                    let (n, p) = (c_string(name.as_bytes()), c_string(password.as_bytes()));
                    ok(muxql_config_add_user(self.config, n.as_ptr(), p.as_ptr()));
                }
                Call::New { message_len } => {
                    if !e.is_null() {
                        return;
                    }
                    let mut message = vec![0x55u8; usize::from(message_len)];
                    let mut out = ptr::null_mut();
                    let r = muxql_engine_new(
                        self.config,
                        &mut out,
                        message.as_mut_ptr().cast(),
                        message.len(),
                    );
                    if ok(r) {
                        assert!(!out.is_null());
                        self.engine = out;
                        self.clients.clear();
                        self.upstreams.clear();
                    } else if !message.is_empty() && r == muxql_result::MUXQL_INVALID_CONFIG {
                        assert!(message.contains(&0), "the reason is NUL-terminated");
                    }
                }
                Call::Free => {
                    muxql_engine_free(e);
                    self.engine = ptr::null_mut();
                    self.lent = None;
                }
                Call::Open { protocol } => {
                    let mut id = 0;
                    if ok(muxql_engine_client_open(e, protocol % 4, now, &mut id)) {
                        self.clients.push(id);
                    }
                }
                Call::ClientData { client, data } => {
                    let id = pick(&self.clients, client);
                    ok(muxql_engine_client_data(
                        e,
                        id,
                        data.as_ptr(),
                        data.len(),
                        now,
                    ));
                }
                Call::UpstreamData { upstream, data } => {
                    let id = pick(&self.upstreams, upstream);
                    ok(muxql_engine_upstream_data(
                        e,
                        id,
                        data.as_ptr(),
                        data.len(),
                        now,
                    ));
                }
                Call::ReadBuffer { min } => {
                    let (mut buf, mut capacity) = (ptr::null_mut(), 0);
                    let min = (min as usize) % (1 << 20);
                    if ok(muxql_engine_read_buffer(e, min, &mut buf, &mut capacity)) {
                        assert!(!buf.is_null() && capacity >= min.max(1));
                        self.lent = Some((buf, capacity));
                    }
                }
                Call::Commit {
                    peer,
                    upstream,
                    n,
                    fill,
                } => {
                    let n = n as usize % (1 << 17);
                    if let Some((buf, capacity)) = self.lent {
                        if n <= capacity {
                            ptr::write_bytes(buf, fill, n);
                        }
                    }
                    let r = if upstream {
                        muxql_engine_upstream_commit(e, pick(&self.upstreams, peer), n, now)
                    } else {
                        muxql_engine_client_commit(e, pick(&self.clients, peer), n, now)
                    };
                    if self.lent.is_some_and(|(_, capacity)| n > capacity) {
                        assert!(!ok(r), "a commit past the lent buffer was taken");
                    }
                    if r != muxql_result::MUXQL_INVALID_ARGUMENT
                        && r != muxql_result::MUXQL_NULL_PARAMETER
                    {
                        self.lent = None;
                    }
                }
                Call::ClientClosed { client } => {
                    ok(muxql_engine_client_closed(
                        e,
                        pick(&self.clients, client),
                        now,
                    ));
                }
                Call::UpstreamConnected { upstream } => {
                    ok(muxql_engine_upstream_connected(
                        e,
                        pick(&self.upstreams, upstream),
                        now,
                    ));
                }
                Call::UpstreamClosed { upstream } => {
                    ok(muxql_engine_upstream_closed(
                        e,
                        pick(&self.upstreams, upstream),
                        now,
                    ));
                }
                Call::CancelDone { upstream } => {
                    ok(muxql_engine_cancel_done(
                        e,
                        pick(&self.upstreams, upstream),
                        now,
                    ));
                }
                Call::MadeUpId { id, which } => {
                    let r = match which % 3 {
                        0 => muxql_engine_client_closed(e, id, now),
                        1 => muxql_engine_upstream_connected(e, id, now),
                        _ => muxql_engine_client_data(e, id, b"x".as_ptr(), 1, now),
                    };
                    ok(r);
                }
                Call::HandleTimeout { ms } => {
                    self.now += u64::from(ms);
                    ok(muxql_engine_handle_timeout(e, self.now));
                }
                Call::Timeout => {
                    let mut deadline = 0;
                    ok(muxql_engine_timeout(e, &mut deadline));
                }
                Call::Blocked { kind, peer } => {
                    let id = pick(
                        if kind % 2 == 1 {
                            &self.clients
                        } else {
                            &self.upstreams
                        },
                        peer,
                    );
                    ok(muxql_engine_send_blocked(e, kind % 4, id, now));
                }
                Call::Drained { kind, peer } => {
                    let id = pick(
                        if kind % 2 == 1 {
                            &self.clients
                        } else {
                            &self.upstreams
                        },
                        peer,
                    );
                    ok(muxql_engine_send_drained(e, kind % 4, id, now));
                }
                Call::Poll => {
                    let mut a = std::mem::zeroed::<muxql_action>();
                    while ok(muxql_engine_poll_action(e, &mut a)) {
                        take(self, &a);
                        a = std::mem::zeroed();
                        if self.engine.is_null() {
                            break;
                        }
                    }
                }
                Call::PollBatch { capacity } => {
                    let mut actions =
                        vec![std::mem::zeroed::<muxql_action>(); usize::from(capacity)];
                    let mut count = usize::MAX;
                    if ok(muxql_engine_poll_actions(
                        e,
                        actions.as_mut_ptr(),
                        actions.len(),
                        &mut count,
                    )) {
                        assert!(count <= actions.len());
                        for a in &actions[..count] {
                            take(self, a);
                        }
                    }
                }
                Call::RouteTarget { route } => {
                    let (mut target, mut len) = (ptr::null(), 0);
                    if ok(muxql_engine_route_target(
                        e,
                        route % 4,
                        &mut target,
                        &mut len,
                    )) {
                        let t = std::slice::from_raw_parts(target, len);
                        std::hint::black_box(t);
                    }
                }
                Call::Stats { len } => {
                    let mut buf = vec![0xaau8; usize::from(len % 4096)];
                    let mut written = 0;
                    let r = muxql_engine_stats_json(
                        e,
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        &mut written,
                    );
                    if ok(r) {
                        assert!(
                            written < buf.len() && buf[written] == 0,
                            "JSON NUL-terminated"
                        );
                        assert!(!buf[..written].contains(&0));
                    } else if r == muxql_result::MUXQL_INSUFFICIENT_SIZE {
                        assert!(written >= buf.len(), "the needed size is reported");
                    }
                }
                Call::ResultText { code, len } => {
                    let mut buf = vec![0xaau8; usize::from(len)];
                    let mut written = usize::MAX;
                    let r =
                        muxql_result_text(code, buf.as_mut_ptr().cast(), buf.len(), &mut written);
                    if ok(r) && !buf.is_empty() {
                        assert!(written < buf.len() && buf[written] == 0);
                    }
                }
                Call::NullOutputs { which } => {
                    let r = match which % 5 {
                        0 => muxql_engine_client_open(e, 1, now, ptr::null_mut()),
                        1 => muxql_engine_poll_action(e, ptr::null_mut()),
                        2 => muxql_engine_timeout(e, ptr::null_mut()),
                        3 => muxql_engine_read_buffer(e, 1, ptr::null_mut(), ptr::null_mut()),
                        _ => muxql_engine_new(ptr::null(), ptr::null_mut(), ptr::null_mut(), 0),
                    };
                    assert!(!ok(r), "a NULL output was accepted");
                }
            }
        }
    }
}

fuzz_target!(|calls: Vec<Call>| {
    let mut config = ptr::null_mut();
    // SAFETY: a valid out-pointer.
    assert!(ok(unsafe { muxql_config_new(&mut config) }));
    let mut host = Host {
        config,
        engine: ptr::null_mut(),
        now: 1_000,
        clients: Vec::new(),
        upstreams: Vec::new(),
        lent: None,
    };
    for call in calls.into_iter().take(200) {
        host.call(call);
    }
    // SAFETY: both handles are live or NULL and not used afterwards.
    unsafe {
        muxql_engine_free(host.engine);
        muxql_config_free(host.config);
    }
});
