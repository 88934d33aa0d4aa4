//! The SQLSTATE codes muxql itself sends to PostgreSQL clients or reads in server errors, by
//! their names in the PostgreSQL documentation (Appendix A, "PostgreSQL Error Codes"). Every
//! code muxql emits or looks for lives here.

/// Class 08: connection_failure.
pub const CONNECTION_FAILURE: &str = "08006";
/// Class 08: protocol_violation.
pub const PROTOCOL_VIOLATION: &str = "08P01";
/// Class 0A: feature_not_supported.
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
/// Class 28: invalid_authorization_specification.
pub const INVALID_AUTHORIZATION_SPECIFICATION: &str = "28000";
/// Class 28: invalid_password.
pub const INVALID_PASSWORD: &str = "28P01";
/// Class 57: query_canceled (a cancel request or a statement timeout).
pub const QUERY_CANCELED: &str = "57014";
/// Class 26: invalid_sql_statement_name (a prepared statement that does not exist).
pub const INVALID_SQL_STATEMENT_NAME: &str = "26000";
/// Class 42: duplicate_prepared_statement.
pub const DUPLICATE_PREPARED_STATEMENT: &str = "42P05";
/// Class 3D: invalid_catalog_name.
pub const INVALID_CATALOG_NAME: &str = "3D000";
/// Class 53: too_many_connections.
pub const TOO_MANY_CONNECTIONS: &str = "53300";
/// Class 25: in_failed_sql_transaction, a command other than a transaction end in an aborted
/// transaction block.
pub const IN_FAILED_SQL_TRANSACTION: &str = "25P02";
