//! One socket: its write queue, flags, and the small task that waits for it to become ready.
//!
//! A connection owns no read buffer (reads go into the driver's shared buffer) and no timer.
//! Writes are attempted as soon as the engine emits them; only what the kernel refuses is
//! queued here, and only then does the task wait for writability.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use tokio::net::{TcpStream, UnixStream};

use super::driver::Driver;
use crate::mux::{ClientId, UpstreamId};

/// Most buffers handed to one `writev` call.
const MAX_IOV: usize = 64;

/// Which engine object a socket belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Peer {
    /// A client connection.
    Client(ClientId),
    /// An upstream server connection.
    Upstream(UpstreamId),
}

/// A connected TCP or Unix stream socket.
#[derive(Debug)]
pub(crate) enum Stream {
    /// TCP (with `TCP_NODELAY`).
    Tcp(TcpStream),
    /// Unix domain socket.
    Unix(UnixStream),
}

impl Stream {
    /// Wraps a TCP stream, turning Nagle's algorithm off.
    pub(crate) fn tcp(s: TcpStream) -> Stream {
        if let Err(e) = s.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY: {e}");
        }
        Stream::Tcp(s)
    }

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Tcp(s) => s.poll_read_ready(cx),
            Stream::Unix(s) => s.poll_read_ready(cx),
        }
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Tcp(s) => s.poll_write_ready(cx),
            Stream::Unix(s) => s.poll_write_ready(cx),
        }
    }

    /// Reads what is available into the spare capacity of `buf`.
    pub(crate) fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_read_buf(buf),
            Stream::Unix(s) => s.try_read_buf(buf),
        }
    }

    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_write_vectored(bufs),
            Stream::Unix(s) => s.try_write_vectored(bufs),
        }
    }
}

/// The engine asked to close: flush what is queued, then close.
const CLOSING: u8 = 1;
/// Gone: the task exits at its next poll and the socket is dropped.
const DEAD: u8 = 2;
/// Listed in the driver's batch of connections to flush.
const DIRTY: u8 = 4;

/// What woke a connection task.
enum Event {
    Readable,
    Writable,
    Exit,
}

/// Per-socket state shared by the driver and the socket's task.
pub(crate) struct Conn {
    /// The engine object this socket serves.
    pub(crate) peer: Peer,
    /// The socket.
    pub(crate) stream: Stream,
    queue: RefCell<VecDeque<Bytes>>,
    queued: Cell<usize>,
    flags: Cell<u8>,
    paused: Cell<u16>,
    /// The connection whose reads this one paused because its own queue grew too long.
    pub(crate) paused_peer: Cell<Option<Peer>>,
    waker: Cell<Option<Waker>>,
}

impl Conn {
    /// A new connection with nothing queued.
    pub(crate) fn new(peer: Peer, stream: Stream) -> Conn {
        Conn {
            peer,
            stream,
            queue: RefCell::new(VecDeque::new()),
            queued: Cell::new(0),
            flags: Cell::new(0),
            paused: Cell::new(0),
            paused_peer: Cell::new(None),
            waker: Cell::new(None),
        }
    }

    /// Bytes waiting to be written.
    pub(crate) fn queued(&self) -> usize {
        self.queued.get()
    }

    /// Appends bytes to the write queue (written by the next [`Conn::flush`]).
    pub(crate) fn push(&self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.queued
            .set(self.queued.get().saturating_add(bytes.len()));
        self.queue.borrow_mut().push_back(bytes);
    }

    /// Marks the connection as listed for flushing; false if it already was.
    pub(crate) fn mark_dirty(&self) -> bool {
        let f = self.flags.get();
        self.flags.set(f | DIRTY);
        f & DIRTY == 0
    }

    /// Clears the flush-listing mark.
    pub(crate) fn clear_dirty(&self) {
        self.flags.set(self.flags.get() & !DIRTY);
    }

    /// True once the engine asked to close this connection.
    pub(crate) fn is_closing(&self) -> bool {
        self.flags.get() & CLOSING != 0
    }

    /// True once the connection is gone.
    pub(crate) fn is_dead(&self) -> bool {
        self.flags.get() & DEAD != 0
    }

    /// Records the engine's request to close after flushing.
    pub(crate) fn set_closing(&self) {
        self.flags.set(self.flags.get() | CLOSING);
    }

    /// Ends the connection: its task exits and the socket closes.
    pub(crate) fn kill(&self) {
        self.flags.set(self.flags.get() | DEAD);
        self.queue.borrow_mut().clear();
        self.queued.set(0);
        self.wake();
    }

    /// Stops reading from this socket (counted: each pause needs one resume).
    pub(crate) fn pause(&self) {
        self.paused.set(self.paused.get().saturating_add(1));
    }

    /// Undoes one [`Conn::pause`].
    pub(crate) fn resume(&self) {
        self.paused.set(self.paused.get().saturating_sub(1));
        self.wake();
    }

    /// Wakes the task so it re-evaluates what to wait for.
    pub(crate) fn wake(&self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// Writes as much of the queue as the kernel takes, many buffers per syscall.
    ///
    /// `Ok(true)` when the queue is empty, `Ok(false)` when the socket would block.
    pub(crate) fn flush(&self) -> io::Result<bool> {
        let mut queue = self.queue.borrow_mut();
        loop {
            if queue.is_empty() {
                return Ok(true);
            }
            let n = {
                let mut iov = [IoSlice::new(&[]); MAX_IOV];
                let mut cnt = 0;
                for (slot, b) in iov.iter_mut().zip(queue.iter()) {
                    *slot = IoSlice::new(b);
                    cnt += 1;
                }
                match self.stream.try_write_vectored(&iov[..cnt]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
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
        }
    }

    fn poll_event(&self, cx: &mut Context<'_>) -> Poll<Event> {
        let flags = self.flags.get();
        if flags & DEAD != 0 {
            return Poll::Ready(Event::Exit);
        }
        if self.queued.get() > 0 && self.stream.poll_write_ready(cx).is_ready() {
            return Poll::Ready(Event::Writable);
        }
        if flags & CLOSING == 0
            && self.paused.get() == 0
            && self.stream.poll_read_ready(cx).is_ready()
        {
            return Poll::Ready(Event::Readable);
        }
        let mut slot = self.waker.take();
        match &slot {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => slot = Some(cx.waker().clone()),
        }
        self.waker.set(slot);
        Poll::Pending
    }
}

/// The task of one socket: wait for readiness, hand the event to the driver, repeat.
pub(crate) async fn run(driver: Rc<Driver>, conn: Rc<Conn>) {
    loop {
        match poll_fn(|cx| conn.poll_event(cx)).await {
            Event::Readable => driver.on_readable(&conn),
            Event::Writable => driver.on_writable(&conn),
            Event::Exit => return,
        }
    }
}
