//! Capability flags (Capabilities Flags) and server status flags (SERVER_STATUS_flags_enum),
//! named as in the MySQL and MariaDB documentation.

use bitflags::bitflags;

bitflags! {
    /// Client/server capability flags. Bits 32..63 are MariaDB's extended capabilities, sent in
    /// the handshake's last reserved bytes when `CLIENT_MYSQL` (bit 0) is unset.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct CapabilityFlags: u64 {
        /// New, more secure passwords (MySQL); MariaDB calls it `CLIENT_MYSQL`.
        const CLIENT_LONG_PASSWORD = 1;
        /// Found rows instead of affected rows in OK packets.
        const CLIENT_FOUND_ROWS = 1 << 1;
        /// Get all column flags.
        const CLIENT_LONG_FLAG = 1 << 2;
        /// A database name may follow in the handshake response.
        const CLIENT_CONNECT_WITH_DB = 1 << 3;
        /// Do not permit database.table.column.
        const CLIENT_NO_SCHEMA = 1 << 4;
        /// Compression protocol.
        const CLIENT_COMPRESS = 1 << 5;
        /// ODBC client.
        const CLIENT_ODBC = 1 << 6;
        /// LOAD DATA LOCAL may be used.
        const CLIENT_LOCAL_FILES = 1 << 7;
        /// Ignore spaces before '('.
        const CLIENT_IGNORE_SPACE = 1 << 8;
        /// The 4.1 protocol.
        const CLIENT_PROTOCOL_41 = 1 << 9;
        /// Interactive client (wait_timeout vs interactive_timeout).
        const CLIENT_INTERACTIVE = 1 << 10;
        /// TLS; the client sends an SSLRequest first.
        const CLIENT_SSL = 1 << 11;
        /// Do not issue SIGPIPE.
        const CLIENT_IGNORE_SIGPIPE = 1 << 12;
        /// The client knows about transactions (status flags in OK).
        const CLIENT_TRANSACTIONS = 1 << 13;
        /// Deprecated 4.1 protocol flag.
        const CLIENT_RESERVED = 1 << 14;
        /// Native 4.1 authentication (`CLIENT_SECURE_CONNECTION`).
        const CLIENT_SECURE_CONNECTION = 1 << 15;
        /// Multiple statements per COM_QUERY.
        const CLIENT_MULTI_STATEMENTS = 1 << 16;
        /// Multiple result sets per COM_QUERY.
        const CLIENT_MULTI_RESULTS = 1 << 17;
        /// Multiple result sets per COM_STMT_EXECUTE.
        const CLIENT_PS_MULTI_RESULTS = 1 << 18;
        /// Pluggable authentication.
        const CLIENT_PLUGIN_AUTH = 1 << 19;
        /// Connection attributes in the handshake response.
        const CLIENT_CONNECT_ATTRS = 1 << 20;
        /// Length-encoded auth response in the handshake response.
        const CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21;
        /// The client can handle expired passwords.
        const CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS = 1 << 22;
        /// Session state change information in OK packets.
        const CLIENT_SESSION_TRACK = 1 << 23;
        /// OK packets (header 0xFE) replace EOF packets.
        const CLIENT_DEPRECATE_EOF = 1 << 24;
        /// Result set metadata may be omitted.
        const CLIENT_OPTIONAL_RESULTSET_METADATA = 1 << 25;
        /// zstd compression with a configurable level.
        const CLIENT_ZSTD_COMPRESSION_ALGORITHM = 1 << 26;
        /// Query attributes in COM_QUERY and COM_STMT_EXECUTE.
        const CLIENT_QUERY_ATTRIBUTES = 1 << 27;
        /// Multi-factor authentication.
        const MULTI_FACTOR_AUTHENTICATION = 1 << 28;
        /// Reserved for extending the 32-bit flags.
        const CLIENT_CAPABILITY_EXTENSION = 1 << 29;
        /// Verify the server certificate.
        const CLIENT_SSL_VERIFY_SERVER_CERT = 1 << 30;
        /// Keep options after a failed connect.
        const CLIENT_REMEMBER_OPTIONS = 1 << 31;
        /// MariaDB: progress reports (ERR packets with code 0xFFFF).
        const MARIADB_CLIENT_PROGRESS = 1 << 32;
        /// MariaDB: COM_MULTI.
        const MARIADB_CLIENT_COM_MULTI = 1 << 33;
        /// MariaDB: COM_STMT_BULK_EXECUTE.
        const MARIADB_CLIENT_STMT_BULK_OPERATIONS = 1 << 34;
        /// MariaDB: extended type information in column definitions.
        const MARIADB_CLIENT_EXTENDED_TYPE_INFO = 1 << 35;
        /// MariaDB: result set metadata may be cached (skipped) for prepared statements.
        const MARIADB_CLIENT_CACHE_METADATA = 1 << 36;
        /// MariaDB: unit results for bulk operations.
        const MARIADB_CLIENT_BULK_UNIT_RESULTS = 1 << 37;
    }
}

impl CapabilityFlags {
    /// MariaDB's name for bit 0: when unset, extended capabilities are exchanged.
    pub const CLIENT_MYSQL: CapabilityFlags = CapabilityFlags::CLIENT_LONG_PASSWORD;

    /// The low 32 bits, as sent in the base capability fields.
    pub fn lower(self) -> u32 {
        (self.bits() & 0xFFFF_FFFF) as u32
    }

    /// The MariaDB extended bits (32..63), as sent in the reserved bytes.
    pub fn upper(self) -> u32 {
        (self.bits() >> 32) as u32
    }

    /// Joins base and extended halves.
    pub fn from_halves(lower: u32, upper: u32) -> Self {
        CapabilityFlags::from_bits_retain(u64::from(lower) | u64::from(upper) << 32)
    }

    /// True when MariaDB extended capabilities travel in the reserved bytes.
    pub fn has_mariadb_extended(self) -> bool {
        !self.contains(CapabilityFlags::CLIENT_MYSQL)
    }
}

bitflags! {
    /// Server status flags carried by OK and EOF packets.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct StatusFlags: u16 {
        /// A transaction is active.
        const SERVER_STATUS_IN_TRANS = 1;
        /// Autocommit mode is on.
        const SERVER_STATUS_AUTOCOMMIT = 1 << 1;
        /// Another result (set) follows.
        const SERVER_MORE_RESULTS_EXISTS = 1 << 3;
        /// The query used a bad index.
        const SERVER_STATUS_NO_GOOD_INDEX_USED = 1 << 4;
        /// The query used no index.
        const SERVER_STATUS_NO_INDEX_USED = 1 << 5;
        /// A read-only cursor is open (COM_STMT_EXECUTE with a cursor, COM_STMT_FETCH).
        const SERVER_STATUS_CURSOR_EXISTS = 1 << 6;
        /// The last row of a cursor was sent.
        const SERVER_STATUS_LAST_ROW_SENT = 1 << 7;
        /// A database was dropped.
        const SERVER_STATUS_DB_DROPPED = 1 << 8;
        /// NO_BACKSLASH_ESCAPES SQL mode is on.
        const SERVER_STATUS_NO_BACKSLASH_ESCAPES = 1 << 9;
        /// A prepared statement's metadata changed.
        const SERVER_STATUS_METADATA_CHANGED = 1 << 10;
        /// The query was slow.
        const SERVER_QUERY_WAS_SLOW = 1 << 11;
        /// The result set holds OUT parameters.
        const SERVER_PS_OUT_PARAMS = 1 << 12;
        /// The active transaction is read-only.
        const SERVER_STATUS_IN_TRANS_READONLY = 1 << 13;
        /// Session state changed; the OK packet carries tracker entries.
        const SERVER_SESSION_STATE_CHANGED = 1 << 14;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_round_trip() {
        let f = CapabilityFlags::CLIENT_PROTOCOL_41 | CapabilityFlags::MARIADB_CLIENT_PROGRESS;
        assert_eq!(CapabilityFlags::from_halves(f.lower(), f.upper()), f);
        assert!(f.has_mariadb_extended());
        assert_eq!(CapabilityFlags::CLIENT_DEPRECATE_EOF.bits(), 0x0100_0000);
        assert_eq!(StatusFlags::SERVER_SESSION_STATE_CHANGED.bits(), 0x4000);
    }
}
