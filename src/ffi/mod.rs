//! The C ABI over the Engine: opaque handles, result codes, time in and deadline out.
//!
//! Conventions (those of rustls-ffi): every symbol starts with `muxql_`; handles come from a
//! `_new` function and go back through `_free` (`_free(NULL)` does nothing); the handle is the
//! first argument and outputs come last, written only when the call returns `MUXQL_OK`; every
//! body runs inside [`guard`], so a panic becomes `MUXQL_PANIC` instead of unwinding into C;
//! NULL pointers are reported as `MUXQL_NULL_PARAMETER`. An engine is used by one thread at a
//! time (it is `Send`, not `Sync`); a config likewise.
//!
//! Time is an input on every call that may act (milliseconds from any monotonic origin the host
//! chooses); `muxql_engine_timeout` hands out the next deadline, `UINT64_MAX` for none (the
//! ngtcp2 model). Bytes an action points at stay valid until the next call on that engine that
//! may act (the nghttp2 `mem_send` rule; the queries `muxql_engine_timeout`,
//! `muxql_engine_route_target` and `muxql_engine_stats_json` do not end it).

mod config;
mod engine;
mod result;
#[cfg(feature = "server")]
mod server;

pub use config::*;
pub use engine::*;
pub use result::*;
#[cfg(feature = "server")]
pub use server::*;

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs an FFI body, turning a panic into [`muxql_result::MUXQL_PANIC`].
pub(crate) fn guard(body: impl FnOnce() -> muxql_result) -> muxql_result {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(muxql_result::MUXQL_PANIC)
}

/// Reads a NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `s` must be NULL or point to a NUL-terminated string that stays valid during the call.
pub(crate) unsafe fn c_str<'a>(s: *const libc::c_char) -> Result<&'a str, muxql_result> {
    if s.is_null() {
        return Err(muxql_result::MUXQL_NULL_PARAMETER);
    }
    // SAFETY: the caller passes a NUL-terminated string valid for the call (checked non-NULL).
    let c = unsafe { std::ffi::CStr::from_ptr(s) };
    c.to_str().map_err(|_| muxql_result::MUXQL_INVALID_ARGUMENT)
}

/// Copies `text` and a NUL into `buf` of `len` bytes, truncating on a character boundary;
/// `written` gets the bytes copied (without the NUL). Nothing happens when `buf` is NULL.
///
/// # Safety
/// `buf` must be NULL or valid for writes of `len` bytes; `written` NULL or valid.
pub(crate) unsafe fn copy_text(
    text: &str,
    buf: *mut libc::c_char,
    len: usize,
    written: *mut usize,
) {
    if buf.is_null() || len == 0 {
        return;
    }
    let mut n = text.len().min(len - 1);
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    // SAFETY: `buf` has room for `len` > n bytes (caller contract); the source is `text`.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
        *buf.add(n) = 0;
    }
    if !written.is_null() {
        // SAFETY: checked non-NULL; the caller passes a valid pointer.
        unsafe { *written = n };
    }
}
