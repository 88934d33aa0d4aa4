//! Runs the built `muxql` binary as a child process for integration tests.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound then released; a race is unlikely).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// Runs `muxql` with `args` to completion and returns (exit status, stderr).
pub fn run(args: &[&str]) -> (ExitStatus, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_muxql"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run muxql");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running `muxql`; killed when dropped.
pub struct Muxql {
    child: Option<Child>,
    /// The PostgreSQL listen port.
    pub port: u16,
    /// The metrics port.
    pub metrics_port: u16,
}

impl Muxql {
    /// Starts `muxql --listen-pg 127.0.0.1:<free> --metrics 127.0.0.1:<free> <args>` and waits
    /// until it accepts connections. A port found free can be taken by another test before
    /// muxql binds it: an early exit is retried on new ports, twice.
    pub fn start(args: &[&str]) -> Muxql {
        Muxql::start_with_fd_limit(args, None)
    }

    /// [`Muxql::start`] under an open-file limit of `fd_limit` (soft and hard), when given.
    pub fn start_with_fd_limit(args: &[&str], fd_limit: Option<u64>) -> Muxql {
        let mut status = None;
        for _ in 0..3 {
            match Muxql::try_start(args, fd_limit) {
                Ok(m) => return m,
                Err(s) => status = Some(s),
            }
        }
        panic!("muxql exited early: {status:?}");
    }

    fn try_start(args: &[&str], fd_limit: Option<u64>) -> Result<Muxql, ExitStatus> {
        use std::os::unix::process::CommandExt;
        let port = free_port();
        let metrics_port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_muxql"));
        cmd.arg("--listen-pg")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--metrics")
            .arg(format!("127.0.0.1:{metrics_port}"))
            .args(args)
            .stdin(Stdio::null());
        if let Some(n) = fd_limit {
            let lim = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            // SAFETY: setrlimit is async-signal-safe; `lim` lives across the call.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let child = cmd.spawn().expect("spawn muxql");
        let mut m = Muxql {
            child: Some(child),
            port,
            metrics_port,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", metrics_port)).is_err() {
            if let Some(status) = m.child_mut().try_wait().expect("try_wait") {
                m.child = None;
                return Err(status);
            }
            assert!(Instant::now() < deadline, "muxql did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(m)
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("child present")
    }

    /// GETs `path` from the metrics endpoint and returns the whole HTTP response.
    pub fn http_get(&self, path: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.metrics_port)).expect("connect metrics");
        write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send request");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read response");
        out
    }

    /// The value of the series `name{labels}` in `/metrics`, if present.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let text = self.http_get("/metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// Sends SIGTERM and waits (at most `limit`) for the exit status.
    pub fn terminate(self, limit: Duration) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit(limit)
    }

    /// Sends signal `name` (`TERM`, `INT`...).
    pub fn signal(&self, name: &str) {
        let child = self.child.as_ref().expect("child present");
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(ok.success(), "kill -{name} failed");
    }

    /// The largest resident set of the process so far, in KiB (Linux `VmHWM`).
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    /// The resident set of the process now, in KiB (Linux `VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// How many file descriptors the process has open.
    pub fn open_fds(&self) -> usize {
        let child = self.child.as_ref().expect("child present");
        std::fs::read_dir(format!("/proc/{}/fd", child.id()))
            .expect("read /proc/PID/fd")
            .count()
    }

    fn status_kib(&self, field: &str) -> u64 {
        let child = self.child.as_ref().expect("child present");
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a kB field of /proc/PID/status")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        let child = self.child.as_mut().expect("child present");
        child.try_wait().expect("try_wait").is_none()
    }

    /// Waits (at most `limit`) for the exit status.
    pub fn wait_exit(mut self, limit: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("child present");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("muxql did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Muxql {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
