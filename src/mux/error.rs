//! Why the Engine ends a client's session: one typed cause per failure, which each protocol
//! renders in its own terms (PostgreSQL: an ErrorResponse whose SQLSTATE comes from
//! [`crate::pg::sqlstate`]).

use std::fmt;

use crate::mysql::errcode::*;

/// What kind of error ended a session, for [`ErrorCounts`](super::ErrorCounts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// A refused login.
    Auth,
    /// Bad input.
    Protocol,
    /// A failed upstream.
    Upstream,
    /// A timeout.
    Timeout,
}

impl ErrorKind {
    /// The kind of a PostgreSQL error by its SQLSTATE (class 28 and an unknown database:
    /// auth; 08P01 and 0A000: protocol; 53300: timeout; the rest comes from upstreams).
    pub(crate) fn of_sqlstate(code: &str) -> ErrorKind {
        match code {
            c if c.starts_with("28") || c == "3D000" => ErrorKind::Auth,
            "08P01" | "0A000" => ErrorKind::Protocol,
            "53300" => ErrorKind::Timeout,
            _ => ErrorKind::Upstream,
        }
    }

    /// The kind of a MySQL error by its code.
    pub(crate) fn of_mysql(code: ErrorCode) -> ErrorKind {
        if [
            ER_ACCESS_DENIED_ERROR,
            ER_BAD_DB_ERROR,
            ER_SECURE_TRANSPORT_REQUIRED,
        ]
        .contains(&code)
        {
            ErrorKind::Auth
        } else if [
            ER_HANDSHAKE_ERROR,
            ER_MALFORMED_PACKET,
            ER_NET_PACKET_TOO_LARGE,
            ER_UNKNOWN_COM_ERROR,
        ]
        .contains(&code)
        {
            ErrorKind::Protocol
        } else if [ER_CON_COUNT_ERROR, ER_NET_READ_INTERRUPTED].contains(&code) {
            ErrorKind::Timeout
        } else {
            ErrorKind::Upstream
        }
    }
}

/// A failure the protocol-neutral core reports for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SessionError {
    /// The client did not finish logging in within `client_login_timeout_ms`.
    LoginTimeout,
    /// No upstream became free within `wait_timeout_ms`.
    WaitTimeout,
    /// `max_clients` clients are connected.
    TooManyClients,
    /// `max_logins` newer clients are logging in.
    TooManyLogins,
    /// The upstream running the client's request failed or closed.
    UpstreamLost(String),
    /// No upstream of the client's route can log in.
    Unservable(String),
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::LoginTimeout => f.write_str("client login timeout"),
            SessionError::WaitTimeout => {
                f.write_str("no upstream connection became free within wait_timeout")
            }
            SessionError::TooManyClients => f.write_str("sorry, too many clients already"),
            SessionError::TooManyLogins => f.write_str(
                "too many clients logging in: this connection, the longest logging in, was closed",
            ),
            SessionError::UpstreamLost(reason) => write!(f, "server connection lost: {reason}"),
            SessionError::Unservable(reason) => {
                write!(f, "could not connect to upstream server: {reason}")
            }
        }
    }
}

impl SessionError {
    /// Its kind.
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            SessionError::LoginTimeout
            | SessionError::WaitTimeout
            | SessionError::TooManyClients
            | SessionError::TooManyLogins => ErrorKind::Timeout,
            SessionError::UpstreamLost(_) | SessionError::Unservable(_) => ErrorKind::Upstream,
        }
    }
}
