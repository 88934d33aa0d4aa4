//! Result codes of the C ABI, their text, and the library version.

use super::{copy_text, guard};

/// What a muxql C function reports. The values are stable: codes are added, never renumbered,
/// and start at a non-zero base so that a zeroed variable is never mistaken for success.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum muxql_result {
    /// Success.
    MUXQL_OK = 9000,
    /// A required pointer argument was NULL.
    MUXQL_NULL_PARAMETER = 9001,
    /// muxql panicked (a bug); the handle may be in any state and should be freed.
    MUXQL_PANIC = 9002,
    /// An argument is out of range or not valid UTF-8.
    MUXQL_INVALID_ARGUMENT = 9003,
    /// The configuration cannot be used (the message names the problem).
    MUXQL_INVALID_CONFIG = 9004,
    /// The client or upstream id is not (or no longer) known to the engine.
    MUXQL_UNKNOWN_ID = 9005,
    /// The output buffer is too small; the needed size was written where the call says.
    MUXQL_INSUFFICIENT_SIZE = 9006,
    /// The call is out of order (a commit without a read buffer, for example).
    MUXQL_WRONG_STATE = 9007,
    /// `muxql_engine_poll_action`: there is no action to carry out now.
    MUXQL_NO_ACTION = 9008,
}

impl muxql_result {
    fn text(self) -> &'static str {
        match self {
            muxql_result::MUXQL_OK => "ok",
            muxql_result::MUXQL_NULL_PARAMETER => "a required pointer argument was NULL",
            muxql_result::MUXQL_PANIC => "muxql panicked (a bug; please report it)",
            muxql_result::MUXQL_INVALID_ARGUMENT => {
                "an argument is out of range or not valid UTF-8"
            }
            muxql_result::MUXQL_INVALID_CONFIG => "the configuration cannot be used",
            muxql_result::MUXQL_UNKNOWN_ID => "unknown or closed client or upstream id",
            muxql_result::MUXQL_INSUFFICIENT_SIZE => "the output buffer is too small",
            muxql_result::MUXQL_WRONG_STATE => "call out of order",
            muxql_result::MUXQL_NO_ACTION => "no action pending",
        }
    }
}

/// Writes the text of `result` (NUL-terminated, truncated to `len` bytes) to `buf`, and its
/// length to `written` (which may be NULL). Unknown values are described as such.
///
/// # Safety
/// `buf` must be valid for writes of `len` bytes; `written` NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn muxql_result_text(
    result: u32,
    buf: *mut libc::c_char,
    len: usize,
    written: *mut usize,
) -> muxql_result {
    guard(|| {
        if buf.is_null() {
            return muxql_result::MUXQL_NULL_PARAMETER;
        }
        let known = [
            muxql_result::MUXQL_OK,
            muxql_result::MUXQL_NULL_PARAMETER,
            muxql_result::MUXQL_PANIC,
            muxql_result::MUXQL_INVALID_ARGUMENT,
            muxql_result::MUXQL_INVALID_CONFIG,
            muxql_result::MUXQL_UNKNOWN_ID,
            muxql_result::MUXQL_INSUFFICIENT_SIZE,
            muxql_result::MUXQL_WRONG_STATE,
            muxql_result::MUXQL_NO_ACTION,
        ];
        let text = known
            .iter()
            .find(|r| **r as u32 == result)
            .map_or("unknown result code", |r| r.text());
        // SAFETY: the caller's contract on `buf`, `len` and `written`.
        unsafe { copy_text(text, buf, len, written) };
        muxql_result::MUXQL_OK
    })
}

/// The version of the library, a static NUL-terminated string such as `"0.1.0"`.
#[no_mangle]
pub extern "C" fn muxql_version() -> *const libc::c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
