//! The server error codes muxql itself sends to MySQL clients, with their SQLSTATEs, by their
//! names in the MySQL and MariaDB error references. Every ERR packet muxql emits takes its
//! code from here.

/// An error code and its SQLSTATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode {
    /// The numeric error code.
    pub code: u16,
    /// The SQLSTATE.
    pub sql_state: [u8; 5],
}

const fn err(code: u16, sql_state: &[u8; 5]) -> ErrorCode {
    ErrorCode {
        code,
        sql_state: *sql_state,
    }
}

/// Too many connections (no upstream became free in time).
pub const ER_CON_COUNT_ERROR: ErrorCode = err(1040, b"08004");
/// Bad handshake.
pub const ER_HANDSHAKE_ERROR: ErrorCode = err(1043, b"08S01");
/// Access denied for user.
pub const ER_ACCESS_DENIED_ERROR: ErrorCode = err(1045, b"28000");
/// Unknown command.
pub const ER_UNKNOWN_COM_ERROR: ErrorCode = err(1047, b"08S01");
/// Unknown database.
pub const ER_BAD_DB_ERROR: ErrorCode = err(1049, b"42000");
/// The used command is not allowed (LOAD DATA LOCAL the client did not enable).
pub const ER_NOT_ALLOWED_COMMAND: ErrorCode = err(1148, b"42000");
/// Got a packet bigger than max_allowed_packet.
pub const ER_NET_PACKET_TOO_LARGE: ErrorCode = err(1153, b"08S01");
/// Got timeout reading communication packets (login took too long).
pub const ER_NET_READ_INTERRUPTED: ErrorCode = err(1159, b"08S01");
/// Feature not supported (a statement refused under the reject pin policy).
pub const ER_NOT_SUPPORTED_YET: ErrorCode = err(1235, b"42000");
/// Unknown prepared statement handler.
pub const ER_UNKNOWN_STMT_HANDLER: ErrorCode = err(1243, b"HY000");
/// You are not owner of thread (KILL of another user's connection).
pub const ER_KILL_DENIED_ERROR: ErrorCode = err(1095, b"HY000");
/// Unknown thread id (KILL of a connection that does not exist).
pub const ER_NO_SUCH_THREAD: ErrorCode = err(1094, b"HY000");
/// Malformed communication packet.
pub const ER_MALFORMED_PACKET: ErrorCode = err(1835, b"HY000");
/// Insecure transport refused (`require_secure_transport`; muxql's `--client-tls require`).
pub const ER_SECURE_TRANSPORT_REQUIRED: ErrorCode = err(3159, b"08004");
/// Query execution was interrupted (a statement whose upstream connection was lost; the
/// client's session goes on, as after KILL QUERY).
pub const ER_QUERY_INTERRUPTED: ErrorCode = err(1317, b"70100");
/// Deadlock found; try restarting transaction. InnoDB rolls the whole transaction back and the
/// session goes on outside it: what muxql answers when a transaction was lost with its
/// upstream connection (SQLSTATE 40001, which drivers treat as "retry the transaction").
pub const ER_LOCK_DEADLOCK: ErrorCode = err(1213, b"40001");
/// Connection was killed (the upstream connection serving the client was lost).
pub const ER_CONNECTION_KILLED: ErrorCode = err(1927, b"70100");
