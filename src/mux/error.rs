//! Why the Engine ends a client's session: one typed cause per failure, which each protocol
//! renders in its own terms (PostgreSQL: an ErrorResponse whose SQLSTATE comes from
//! [`crate::pg::sqlstate`]).

use std::fmt;

/// A failure the protocol-neutral core reports for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SessionError {
    /// The client did not finish logging in within `client_login_timeout_ms`.
    LoginTimeout,
    /// No upstream became free within `wait_timeout_ms`.
    WaitTimeout,
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
            SessionError::UpstreamLost(reason) => write!(f, "server connection lost: {reason}"),
            SessionError::Unservable(reason) => {
                write!(f, "could not connect to upstream server: {reason}")
            }
        }
    }
}
