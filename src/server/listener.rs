//! TCP and Unix listeners: binding, the accept loop, and socket-file cleanup.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, UnixListener};

use super::config::ListenAddr;
use super::conn::Stream;
use super::driver::Driver;
use crate::mux::{self, Protocol};

/// Pending-connection queue length: bursts of hundreds of clients connect at once.
const BACKLOG: u32 = 4096;
/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How clients of a listener carry their protocol's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// As they are (TLS only when a client asks for it, with the protocol's SSLRequest).
    Raw,
    /// In WebSocket binary messages, over TLS from the first byte when `tls`.
    WebSocket {
        /// `wss`.
        tls: bool,
    },
}

/// A bound listening socket, what the Engine is told about its clients (protocol, login
/// settings) and how they carry their bytes.
#[derive(Debug)]
pub(crate) struct Listener {
    socket: Socket,
    settings: mux::Listener,
    transport: Transport,
}

/// The socket of a listener.
#[derive(Debug)]
enum Socket {
    /// TCP.
    Tcp(TcpListener),
    /// Unix; the path is removed when the listener is closed.
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// The protocol its clients speak.
    pub(crate) fn protocol(&self) -> Protocol {
        self.settings.protocol
    }

    /// The socket file of a Unix listener.
    pub(crate) fn unix_path(&self) -> Option<&Path> {
        match &self.socket {
            Socket::Unix(_, p) => Some(p),
            Socket::Tcp(_) => None,
        }
    }

    /// The address actually bound (with the real port when 0 was asked for).
    pub(crate) fn local_addr(&self) -> ListenAddr {
        match &self.socket {
            Socket::Tcp(l) => match l.local_addr() {
                Ok(a) => ListenAddr::Tcp(a.to_string()),
                Err(_) => ListenAddr::Tcp(String::new()),
            },
            Socket::Unix(_, p) => ListenAddr::Unix(p.clone()),
        }
    }

    /// Accepts clients forever, handing each to the driver.
    pub(crate) async fn serve(self, driver: Rc<Driver>) {
        loop {
            let res = match &self.socket {
                Socket::Tcp(l) => l
                    .accept()
                    .await
                    .and_then(|(s, _)| Stream::from_tokio_tcp(s)),
                Socket::Unix(l, _) => l
                    .accept()
                    .await
                    .and_then(|(s, _)| Stream::from_tokio_unix(s)),
            };
            match res {
                Ok(stream) => driver.accept(stream, &self.settings, self.transport),
                Err(e) => {
                    tracing::warn!("accept on {}: {e}", self.local_addr());
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }
}

/// Binds every address `addr` names (all resolved IPs of a host name) for clients of a
/// listener with `settings`; must run in a runtime.
pub(crate) fn bind(
    addr: &ListenAddr,
    settings: mux::Listener,
    transport: Transport,
) -> io::Result<Vec<Listener>> {
    let sockets = bind_sockets(addr)?;
    Ok(sockets
        .into_iter()
        .map(|socket| Listener {
            socket,
            settings,
            transport,
        })
        .collect())
}

fn bind_sockets(addr: &ListenAddr) -> io::Result<Vec<Socket>> {
    match addr {
        ListenAddr::Tcp(a) => {
            let ips: Vec<SocketAddr> = a.to_socket_addrs()?.collect();
            let mut out = Vec::new();
            let mut last_err = None;
            for ip in ips {
                match bind_tcp(ip) {
                    Ok(l) => out.push(Socket::Tcp(l)),
                    Err(e) => last_err = Some(e),
                }
            }
            match (out.is_empty(), last_err) {
                (true, Some(e)) => Err(e),
                (true, None) => Err(io::Error::new(
                    io::ErrorKind::AddrNotAvailable,
                    "host resolves to no address",
                )),
                _ => Ok(out),
            }
        }
        ListenAddr::Unix(path) => {
            remove_stale_socket(path)?;
            Ok(vec![Socket::Unix(UnixListener::bind(path)?, path.clone())])
        }
    }
}

fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Removes a leftover socket file nobody listens on; refuses when a server still answers.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another server listens on this socket",
                ));
            }
            std::fs::remove_file(path)
        }
        _ => Ok(()),
    }
}

/// Removes the socket files of Unix listeners (after they stopped accepting).
pub(crate) fn cleanup(paths: &[PathBuf]) {
    for p in paths {
        if let Err(e) = std::fs::remove_file(p) {
            tracing::debug!("removing {}: {e}", p.display());
        }
    }
}
