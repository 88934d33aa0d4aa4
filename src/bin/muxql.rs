//! The `muxql` command: a PostgreSQL and MySQL/MariaDB connection multiplexer in front of one
//! or more servers. SIGINT/SIGTERM shut it down gracefully; SIGHUP reloads its configuration.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use muxql::server::{raise_fd_limit, Args, Error, Server, ServerConfig};
use tracing_subscriber::EnvFilter;

/// Exit code for a bad flag or configuration (the same as clap's usage errors).
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match ServerConfig::from_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("muxql: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::try_new(v),
        _ => EnvFilter::try_new(config.log_level.as_deref().unwrap_or("info")),
    };
    let filter = match filter {
        Ok(f) => f,
        Err(e) => {
            eprintln!("muxql: invalid log filter: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // Thousands of clients need thousands of descriptors: take what the hard limit allows.
    match raise_fd_limit() {
        Ok(limit) => tracing::debug!("file descriptor limit: {limit}"),
        Err(e) => tracing::warn!("cannot raise the file descriptor limit: {e}"),
    }
    let serve = Server::bind(config).and_then(|mut server| {
        // SIGHUP reads the config file and flags again; listeners and metrics stay as bound.
        server.reload_on_hangup(move || ServerConfig::from_args(&args).map_err(|e| e.to_string()));
        server.run()
    });
    match serve {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ Error::Config(_)) => {
            eprintln!("muxql: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e) => {
            eprintln!("muxql: {e}");
            ExitCode::FAILURE
        }
    }
}
