//! Errors thrown to JavaScript: `code` is muxql's result code name (as in `include/muxql.h`),
//! `message` its text.

/// A muxql result code, the `code` property of the thrown Error.
#[derive(Debug, Clone, Copy)]
pub struct Code(&'static str);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        self.0
    }
}

/// An argument outside what the call accepts.
pub const INVALID_ARGUMENT: Code = Code("MUXQL_INVALID_ARGUMENT");
/// The configuration cannot be used.
pub const INVALID_CONFIG: Code = Code("MUXQL_INVALID_CONFIG");
/// The id names no live client or upstream.
pub const UNKNOWN_ID: Code = Code("MUXQL_UNKNOWN_ID");
/// The engine was closed.
pub const WRONG_STATE: Code = Code("MUXQL_WRONG_STATE");

/// What a method returns: a value, or an Error with a muxql code.
pub type Result<T> = napi::Result<T, Code>;

/// An Error with `code` and `message`.
pub fn error(code: Code, message: impl Into<String>) -> napi::Error<Code> {
    napi::Error::new(code, message.into())
}
