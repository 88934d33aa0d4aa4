//! One socket: its write queue and readiness flags.
//!
//! A connection owns no read buffer (reads go into the driver's shared buffer), no task and no
//! timer: the driver's single I/O task learns readiness from one mio registry and calls back.
//! Writes are attempted as soon as the engine emits them; only what the kernel refuses is
//! queued here, and the socket then waits for its next writable edge.
//!
//! A connection may switch to TLS when the engine says so — a client after muxql queued its
//! `S` answer, an upstream after muxql queued its SSLRequest: from then on, bytes read are
//! TLS records decrypted before the engine sees them, and bytes pushed are encrypted into
//! records before they are queued (rustls, sans-I/O).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use mio::net::{TcpStream, UnixStream};

use super::ws::{Decoded, WebSocket};
use crate::mux::{ClientId, Peer, Protocol, UpstreamId};

/// Most buffers handed to one `writev` call.
const MAX_IOV: usize = 64;

/// Poller tokens of the engine objects sockets belong to.
impl Peer {
    /// The mio token of this peer: clients even, upstreams odd.
    pub(crate) fn token(self) -> Option<mio::Token> {
        let (id, side) = match self {
            Peer::Client(c) => (c.0, 0),
            Peer::Upstream(u) => (u.0, 1),
        };
        let t = id.checked_mul(2)?.checked_add(side)?;
        usize::try_from(t).ok().map(mio::Token)
    }

    /// The peer a token stands for.
    pub(crate) fn from_token(t: mio::Token) -> Peer {
        let t = t.0 as u64;
        if t % 2 == 0 {
            Peer::Client(ClientId(t / 2))
        } else {
            Peer::Upstream(UpstreamId(t / 2))
        }
    }
}

/// A connected TCP or Unix stream socket (non-blocking, registered with mio).
#[derive(Debug)]
pub(crate) enum Stream {
    /// TCP (with `TCP_NODELAY`).
    Tcp(TcpStream),
    /// Unix domain socket.
    Unix(UnixStream),
}

impl Stream {
    /// Takes a socket over from tokio (deregistering it there), turning Nagle off for TCP.
    pub(crate) fn from_tokio_tcp(s: tokio::net::TcpStream) -> io::Result<Stream> {
        let s = s.into_std()?;
        s.set_nodelay(true)?;
        Ok(Stream::Tcp(TcpStream::from_std(s)))
    }

    /// Takes a Unix socket over from tokio.
    pub(crate) fn from_tokio_unix(s: tokio::net::UnixStream) -> io::Result<Stream> {
        Ok(Stream::Unix(UnixStream::from_std(s.into_std()?)))
    }

    /// Registers the socket for read and write readiness (edge-triggered).
    pub(crate) fn register(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
    ) -> io::Result<()> {
        let interest = mio::Interest::READABLE | mio::Interest::WRITABLE;
        match self {
            Stream::Tcp(s) => registry.register(s, token, interest),
            Stream::Unix(s) => registry.register(s, token, interest),
        }
    }

    fn fd(&self) -> std::os::fd::RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }

    /// Reads into the spare capacity of `buf` (which must have some) and extends its length.
    pub(crate) fn read_into(&self, buf: &mut BytesMut) -> io::Result<usize> {
        let spare = buf.spare_capacity_mut();
        // SAFETY: `spare` is writable memory of `spare.len()` bytes owned by `buf`; the kernel
        // writes at most that many bytes and never reads them.
        let n = unsafe { libc::read(self.fd(), spare.as_mut_ptr().cast(), spare.len()) };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        let len = buf.len() + n;
        // SAFETY: `read` initialised the first `n` bytes of the spare capacity.
        unsafe { buf.set_len(len) };
        Ok(n)
    }

    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).write_vectored(bufs),
            Stream::Unix(s) => (&*s).write_vectored(bufs),
        }
    }
}

/// The engine asked to close: flush what is queued, then close.
const CLOSING: u8 = 1;
/// Gone: removed from the driver; the socket closes when the last reference drops.
const DEAD: u8 = 2;
/// Listed in the driver's batch of connections to flush.
const DIRTY: u8 = 4;
/// The socket may have bytes to read (set by an event, cleared by a short or blocked read).
const READABLE: u8 = 8;
/// The socket may accept writes (set by an event, cleared by a short or blocked write).
const WRITABLE: u8 = 16;
/// Listed in the driver's ready queue.
const LISTED: u8 = 32;
/// The peer closed its side (reported once by the edge-triggered poller): reads go on until
/// one returns the end of the stream.
const READ_CLOSED: u8 = 64;
/// Closing, with a close deadline armed because the peer does not take what is queued.
const LINGERING: u8 = 128;

/// Per-socket state.
pub(crate) struct Conn {
    /// The engine object this socket serves.
    pub(crate) peer: Peer,
    /// The protocol a client speaks (`None` for an upstream).
    pub(crate) protocol: Option<Protocol>,
    /// The socket.
    pub(crate) stream: Stream,
    queue: RefCell<VecDeque<Bytes>>,
    queued: Cell<usize>,
    flags: Cell<u8>,
    paused: Cell<u16>,
    /// The engine was told that this connection's queue is over the high-water mark.
    pub(crate) blocked: Cell<bool>,
    /// TLS, once the engine asked for it (or from the start on a `wss` listener): the server
    /// side for a client, the client side for an upstream.
    tls: RefCell<Option<Box<rustls::Connection>>>,
    /// WebSocket framing, on a WebSocket listener (above TLS when both run).
    ws: RefCell<Option<Box<WebSocket>>>,
    /// The TLS handshake: 0 none, 1 running, 2 done (and counted).
    handshake: Cell<u8>,
}

impl Conn {
    /// A new connection with nothing queued, assumed writable and readable.
    pub(crate) fn new(peer: Peer, stream: Stream, protocol: Option<Protocol>) -> Conn {
        Conn {
            peer,
            protocol,
            stream,
            queue: RefCell::new(VecDeque::new()),
            queued: Cell::new(0),
            flags: Cell::new(READABLE | WRITABLE),
            paused: Cell::new(0),
            blocked: Cell::new(false),
            tls: RefCell::new(None),
            ws: RefCell::new(None),
            handshake: Cell::new(0),
        }
    }

    /// Speaks WebSocket: the HTTP upgrade first, then binary messages.
    pub(crate) fn start_ws(&self, max_message: usize) {
        *self.ws.borrow_mut() = Some(Box::new(WebSocket::new(max_message)));
    }

    /// Whether bytes read need [`Conn::receive`] rather than going to the engine as they are.
    pub(crate) fn is_layered(&self) -> bool {
        self.tls.borrow().is_some() || self.ws.borrow().is_some()
    }

    /// Bytes read from the socket: TLS records decrypted, WebSocket frames unwrapped; the
    /// protocol bytes for the engine are appended to `plain`, and what the layers answer
    /// themselves (handshakes, pongs, closes) is queued. Returns whether the connection ends
    /// once its queue is written (a WebSocket close); an error ends it at once.
    pub(crate) fn receive(&self, raw: &[u8], plain: &mut BytesMut) -> io::Result<bool> {
        let mut below = BytesMut::new();
        self.decrypt(raw, &mut below)?;
        let mut ws = self.ws.borrow_mut();
        let Some(socket) = ws.as_mut() else {
            plain.extend_from_slice(&below);
            return Ok(false);
        };
        let mut decoded = Decoded::default();
        socket.decode(&below, &mut decoded);
        drop(ws);
        plain.extend_from_slice(&decoded.data);
        self.push_wire(decoded.reply.freeze());
        Ok(decoded.close)
    }

    /// On a WebSocket connection the server is closing, queues the close frame.
    pub(crate) fn goodbye(&self) {
        let frame = self.ws.borrow_mut().as_mut().and_then(|ws| ws.goodbye());
        if let Some(frame) = frame {
            self.push_wire(frame);
        }
    }

    /// Switches a client to TLS: what is queued goes out as it is, the rest through
    /// `config`'s session.
    pub(crate) fn start_tls(&self, config: Arc<rustls::ServerConfig>) -> Result<(), rustls::Error> {
        let session = rustls::ServerConnection::new(config)?;
        *self.tls.borrow_mut() = Some(Box::new(session.into()));
        self.handshake.set(1);
        Ok(())
    }

    /// Switches an upstream to TLS: what is queued goes out as it is, then the ClientHello,
    /// then everything pushed later, encrypted once the handshake is done.
    pub(crate) fn start_client_tls(
        &self,
        config: Arc<rustls::ClientConfig>,
        name: rustls_pki_types::ServerName<'static>,
    ) -> Result<(), rustls::Error> {
        let mut session = rustls::Connection::from(rustls::ClientConnection::new(config, name)?);
        let hello = take_records(&mut session);
        *self.tls.borrow_mut() = Some(Box::new(session));
        self.handshake.set(1);
        self.push_raw(hello);
        Ok(())
    }

    /// Whether a TLS handshake runs (an error now is a failed handshake).
    pub(crate) fn is_handshaking(&self) -> bool {
        self.handshake.get() == 1
    }

    /// True once, when the TLS handshake has just completed.
    pub(crate) fn handshake_done(&self) -> bool {
        let done = self.handshake.get() == 1
            && self
                .tls
                .borrow()
                .as_ref()
                .is_some_and(|s| !s.is_handshaking());
        if done {
            self.handshake.set(2);
        }
        done
    }

    /// TLS records just read: decrypts them, appending the plaintext to `plain`, and queues
    /// what the session has to send (handshake messages, alerts). An error ends the
    /// connection (the alert describing it is queued first).
    pub(crate) fn decrypt(&self, mut records: &[u8], plain: &mut BytesMut) -> io::Result<()> {
        let mut tls = self.tls.borrow_mut();
        let Some(session) = tls.as_mut() else {
            plain.extend_from_slice(records);
            return Ok(());
        };
        let mut failure = None;
        while !records.is_empty() {
            if let Err(e) = session.read_tls(&mut records) {
                failure = Some(e);
                break;
            }
            if let Err(e) = session.process_new_packets() {
                failure = Some(io::Error::new(io::ErrorKind::InvalidData, e));
                break;
            }
            read_plaintext(session, plain)?;
        }
        let out = take_records(session);
        drop(tls);
        self.push_raw(out);
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn set(&self, flag: u8, on: bool) -> bool {
        let f = self.flags.get();
        self.flags.set(if on { f | flag } else { f & !flag });
        f & flag != 0
    }

    fn has(&self, flag: u8) -> bool {
        self.flags.get() & flag != 0
    }

    /// Bytes waiting to be written.
    pub(crate) fn queued(&self) -> usize {
        self.queued.get()
    }

    /// Appends protocol bytes to the write queue (written by the next [`Conn::flush`]), framed
    /// first on a WebSocket connection and encrypted on a TLS one.
    pub(crate) fn push(&self, bytes: Bytes) {
        let framed = match self.ws.borrow_mut().as_mut() {
            Some(ws) => ws.encode(&bytes),
            None => Some(bytes),
        };
        if let Some(framed) = framed {
            self.push_wire(framed);
        }
    }

    /// Appends bytes of the transport (encrypted when TLS runs).
    fn push_wire(&self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        let records = match self.tls.borrow_mut().as_mut() {
            Some(session) => {
                // rustls buffers plaintext written before the handshake ends.
                if session.writer().write_all(&bytes).is_err() {
                    return;
                }
                Some(take_records(session))
            }
            None => None,
        };
        match records {
            Some(out) => self.push_raw(out),
            None => self.push_raw(bytes),
        }
    }

    fn push_raw(&self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.queued
            .set(self.queued.get().saturating_add(bytes.len()));
        self.queue.borrow_mut().push_back(bytes);
    }

    /// Marks the connection as listed for flushing; false if it already was.
    pub(crate) fn mark_dirty(&self) -> bool {
        !self.set(DIRTY, true)
    }

    /// Clears the flush-listing mark.
    pub(crate) fn clear_dirty(&self) {
        self.set(DIRTY, false);
    }

    /// Marks the connection as in the ready queue; false if it already was.
    pub(crate) fn mark_listed(&self) -> bool {
        !self.set(LISTED, true)
    }

    /// Clears the ready-queue mark.
    pub(crate) fn clear_listed(&self) {
        self.set(LISTED, false);
    }

    /// Records readiness reported by the poller.
    pub(crate) fn set_ready(&self, readable: bool, read_closed: bool, writable: bool) {
        if readable || read_closed {
            self.set(READABLE, true);
        }
        if read_closed {
            self.set(READ_CLOSED, true);
        }
        if writable {
            self.set(WRITABLE, true);
        }
    }

    /// Forgets read readiness until the next event, unless the peer closed its side: a short
    /// read may leave the end of the stream unread, and no further event will announce it.
    pub(crate) fn clear_readable(&self) {
        if !self.has(READ_CLOSED) {
            self.set(READABLE, false);
        }
    }

    /// True when a read should be attempted now.
    pub(crate) fn wants_read(&self) -> bool {
        self.flags.get() & (READABLE | CLOSING | DEAD) == READABLE && self.paused.get() == 0
    }

    /// True when a flush should be attempted now.
    pub(crate) fn wants_write(&self) -> bool {
        self.has(WRITABLE) && self.queued.get() > 0 && !self.has(DEAD)
    }

    /// True once the engine asked to close this connection.
    pub(crate) fn is_closing(&self) -> bool {
        self.has(CLOSING)
    }

    /// True once the connection is gone.
    pub(crate) fn is_dead(&self) -> bool {
        self.has(DEAD)
    }

    /// Marks a closing connection as having its close deadline armed; false if it already had.
    pub(crate) fn mark_lingering(&self) -> bool {
        !self.set(LINGERING, true)
    }

    /// Records the engine's request to close after flushing.
    pub(crate) fn set_closing(&self) {
        self.set(CLOSING, true);
    }

    /// Ends the connection: drops its queue; the socket closes with the last reference.
    pub(crate) fn kill(&self) {
        self.set(DEAD, true);
        self.queue.borrow_mut().clear();
        self.queued.set(0);
    }

    /// Stops reading from this socket (counted: each pause needs one resume).
    pub(crate) fn pause(&self) {
        self.paused.set(self.paused.get().saturating_add(1));
    }

    /// Undoes one [`Conn::pause`]; true when reading may resume.
    pub(crate) fn resume(&self) -> bool {
        self.paused.set(self.paused.get().saturating_sub(1));
        self.paused.get() == 0
    }

    /// Writes as much of the queue as the kernel takes, many buffers per syscall.
    ///
    /// `Ok(true)` when the queue is empty, `Ok(false)` when the socket is full (then the
    /// connection waits for its next writable event).
    pub(crate) fn flush(&self) -> io::Result<bool> {
        let mut queue = self.queue.borrow_mut();
        loop {
            if queue.is_empty() {
                return Ok(true);
            }
            let (n, offered) = {
                let mut iov = [IoSlice::new(&[]); MAX_IOV];
                let mut cnt = 0;
                let mut offered = 0usize;
                for (slot, b) in iov.iter_mut().zip(queue.iter()) {
                    *slot = IoSlice::new(b);
                    offered += b.len();
                    cnt += 1;
                }
                match self.stream.write_vectored(&iov[..cnt]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => (n, offered),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.set(WRITABLE, false);
                        return Ok(false);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            self.queued.set(self.queued.get().saturating_sub(n));
            let mut left = n;
            while left > 0 {
                let Some(front) = queue.front_mut() else {
                    break;
                };
                if front.len() <= left {
                    left -= front.len();
                    queue.pop_front();
                } else {
                    front.advance(left);
                    left = 0;
                }
            }
            if n < offered {
                self.set(WRITABLE, false);
                return Ok(queue.is_empty());
            }
        }
    }
}

/// Moves the plaintext a TLS session has decrypted into `plain`.
fn read_plaintext(session: &mut rustls::Connection, plain: &mut BytesMut) -> io::Result<()> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match session.reader().read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => plain.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// The TLS records a session has ready to send.
fn take_records(session: &mut rustls::Connection) -> Bytes {
    let mut out = Vec::new();
    while session.wants_write() {
        if session.write_tls(&mut out).is_err() {
            break;
        }
    }
    Bytes::from(out)
}
