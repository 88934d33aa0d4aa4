//! File descriptors: the process limit, and the share of it clients may take.

/// Descriptors kept for what is not a client: listeners, the metrics endpoint, files read on
/// reload, the runtime's own.
const RESERVED: u64 = 64;
/// Fewest clients allowed whatever the limit.
const MIN_CLIENTS: u64 = 16;

/// Raises the soft limit on open files to the hard one and returns the limit in force (for
/// the `muxql` command: a library leaves its process's limits alone).
pub fn raise_fd_limit() -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for the call to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        lim = raised;
    }
    Ok(lim.rlim_cur)
}

/// The soft limit on open files in force.
fn fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit for the call to fill.
    match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } {
        0 => lim.rlim_cur,
        _ => u64::MAX,
    }
}

/// `config.max_clients` where it is 0: as many clients as the descriptor limit leaves room
/// for, next to two descriptors per pooled upstream (its socket and a cancel's).
pub(crate) fn default_max_clients(config: &mut crate::mux::Config) {
    if config.max_clients != 0 {
        return;
    }
    let upstreams: u64 = config.routes.iter().map(|r| r.pool_size as u64).sum();
    let budget = fd_limit()
        .saturating_sub(RESERVED + 2 * upstreams)
        .max(MIN_CLIENTS);
    config.max_clients = usize::try_from(budget).unwrap_or(usize::MAX);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_get_what_upstreams_and_the_reserve_leave() {
        let mut config = crate::mux::Config::default();
        let mut route = crate::mux::Route::new(crate::mux::Protocol::Postgres, "db", "h:1", "u");
        route.pool_size = 10;
        config.routes = vec![route];
        default_max_clients(&mut config);
        let limit = fd_limit();
        let expected = limit.saturating_sub(RESERVED + 20).max(MIN_CLIENTS);
        assert_eq!(config.max_clients as u64, expected.min(usize::MAX as u64));
        config.max_clients = 7;
        default_max_clients(&mut config);
        assert_eq!(config.max_clients, 7, "a configured limit stays");
    }
}
