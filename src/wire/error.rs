//! The typed error of the codec layers, one variant per cause.

use thiserror::Error as ThisError;

/// A protocol error. Each variant maps to a stable [`ErrorCode`] for the C ABI and, on the wire,
/// to an ErrorResponse (SQLSTATE 08P01) or ERR packet for the offending session only.
#[derive(Debug, Clone, PartialEq, Eq, ThisError)]
pub enum Error {
    /// A declared length is below the protocol minimum.
    #[error("invalid message length {0}")]
    InvalidLength(u64),
    /// A declared length exceeds the configured or protocol limit.
    #[error("message of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The declared length.
        len: u64,
        /// The limit it exceeds.
        limit: u64,
    },
    /// A message type byte that is not valid in this direction and phase.
    #[error("unknown message type 0x{0:02x}")]
    UnknownMessageType(u8),
    /// A startup-phase request code that is not known.
    #[error("unknown startup request code {0}")]
    UnknownStartupCode(u32),
    /// A message body ended before a field did.
    #[error("truncated {0} message")]
    Truncated(&'static str),
    /// A string field lacks its NUL terminator.
    #[error("missing NUL terminator in {0}")]
    MissingNul(&'static str),
    /// Bytes remain after the last field of a message.
    #[error("trailing bytes in {0} message")]
    TrailingBytes(&'static str),
    /// A field holds a value outside its allowed range.
    #[error("invalid value in {0}")]
    InvalidValue(&'static str),
    /// A string field is not valid UTF-8 where the protocol requires it.
    #[error("invalid UTF-8 in {0}")]
    InvalidUtf8(&'static str),
    /// A MySQL packet sequence id other than the expected one.
    #[error("packet sequence id {got}, expected {expected}")]
    BadSequence {
        /// The sequence id received.
        got: u8,
        /// The sequence id expected.
        expected: u8,
    },
    /// A value too large to encode in its wire field (never wrapped).
    #[error("{0} too large to encode")]
    EncodeOverflow(&'static str),
    /// A message that is valid in itself but not in the current protocol state.
    #[error("unexpected {0} message")]
    Unexpected(&'static str),
    /// Bytes received where the protocol allows none (for example after an SSLRequest answer).
    #[error("unexpected bytes before the TLS handshake")]
    BytesBeforeTls,
    /// Authentication failed or was malformed.
    #[error("authentication failed: {0}")]
    Auth(&'static str),
}

/// Stable numeric codes for [`Error`] variants, shared with the C ABI. Never renumbered.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// See [`Error::InvalidLength`].
    InvalidLength = 7001,
    /// See [`Error::TooLarge`].
    TooLarge = 7002,
    /// See [`Error::UnknownMessageType`].
    UnknownMessageType = 7003,
    /// See [`Error::UnknownStartupCode`].
    UnknownStartupCode = 7004,
    /// See [`Error::Truncated`].
    Truncated = 7005,
    /// See [`Error::MissingNul`].
    MissingNul = 7006,
    /// See [`Error::TrailingBytes`].
    TrailingBytes = 7007,
    /// See [`Error::InvalidValue`].
    InvalidValue = 7008,
    /// See [`Error::InvalidUtf8`].
    InvalidUtf8 = 7009,
    /// See [`Error::BadSequence`].
    BadSequence = 7010,
    /// See [`Error::EncodeOverflow`].
    EncodeOverflow = 7011,
    /// See [`Error::Unexpected`].
    Unexpected = 7012,
    /// See [`Error::BytesBeforeTls`].
    BytesBeforeTls = 7013,
    /// See [`Error::Auth`].
    Auth = 7014,
}

impl Error {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidLength(_) => ErrorCode::InvalidLength,
            Error::TooLarge { .. } => ErrorCode::TooLarge,
            Error::UnknownMessageType(_) => ErrorCode::UnknownMessageType,
            Error::UnknownStartupCode(_) => ErrorCode::UnknownStartupCode,
            Error::Truncated(_) => ErrorCode::Truncated,
            Error::MissingNul(_) => ErrorCode::MissingNul,
            Error::TrailingBytes(_) => ErrorCode::TrailingBytes,
            Error::InvalidValue(_) => ErrorCode::InvalidValue,
            Error::InvalidUtf8(_) => ErrorCode::InvalidUtf8,
            Error::BadSequence { .. } => ErrorCode::BadSequence,
            Error::EncodeOverflow(_) => ErrorCode::EncodeOverflow,
            Error::Unexpected(_) => ErrorCode::Unexpected,
            Error::BytesBeforeTls => ErrorCode::BytesBeforeTls,
            Error::Auth(_) => ErrorCode::Auth,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        assert_eq!(Error::InvalidLength(1).code() as u32, 7001);
        assert_eq!(Error::Auth("x").code() as u32, 7014);
    }
}
