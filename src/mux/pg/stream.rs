//! Large messages pass through in chunks as they arrive, in both directions, instead of being
//! buffered whole: rows and COPY data from the server; COPY data, simple queries and Binds
//! from a client. PostgreSQL accepts messages up to 1 GB; `max_message` bounds only what muxql
//! buffers whole (the messages it looks into or rewrites), so memory stays small whatever the
//! row size.
//!
//! A message streams once its header is in and it is at least [`STREAM_FROM`] long: what has
//! arrived goes on at once, and the connection remembers how many bytes of it are still to
//! come; those pass through before anything else is read from that connection. A Bind waits
//! for its portal and statement names, which muxql may rewrite in front of the parameter
//! values (never decoded). A streamed Query is not looked into for session effects.

use bytes::{BufMut, BytesMut};

use super::expect::{Kind, Verdict};
use super::peek;
use crate::mux::engine::Engine;
use crate::mux::ids::{ClientId, UpstreamId};
use crate::mux::Action;
use crate::pg::frame::{Header, HEADER_LEN};
use crate::wire::limits::{HARD_MAX_MESSAGE, MAX_STARTUP_PACKET};
use crate::wire::{Error, Limits};

/// Messages at least this large stream through instead of being buffered whole.
pub(super) const STREAM_FROM: usize = 256 * 1024;

/// The bound of messages that stream: PostgreSQL's own.
pub(super) const STREAMING: Limits = Limits {
    max_message: HARD_MAX_MESSAGE,
    max_startup: MAX_STARTUP_PACKET,
};

/// Longest portal and statement names of a streamed Bind muxql waits for.
const MAX_BIND_NAMES: usize = 4096;

/// Backend messages that stream when large: rows and COPY data, which muxql never looks into.
pub(super) fn server_streams(tag: u8) -> bool {
    matches!(tag, b'D' | b'd')
}

/// Frontend messages that stream when large: COPY data, a simple query, a Bind.
pub(super) fn client_streams(tag: u8) -> bool {
    matches!(tag, b'd' | b'Q' | b'B')
}

/// The error for a message over `limits.max_message` that muxql would have to buffer.
pub(super) fn too_large(h: &Header, limits: &Limits) -> String {
    Error::TooLarge {
        len: (h.frame_len - HEADER_LEN) as u64,
        limit: limits.max_message as u64,
    }
    .to_string()
}

impl Engine {
    /// Passes on what has arrived of a server message being streamed; returns whether the rest
    /// of the input is to be relayed as usual (the message is complete).
    pub(super) fn pg_server_pass_through(&mut self, uid: UpstreamId) -> bool {
        let Some(u) = self.upstreams.pg_mut(uid) else {
            return false;
        };
        let Some((left, to)) = u.passthrough else {
            return true;
        };
        let n = left.min(u.core.buf.len());
        let chunk = u.core.buf.split_to(n).freeze();
        u.passthrough = (left > n).then_some((left - n, to));
        if let Some(to) = to.filter(|&c| self.clients.pg(c).is_some()) {
            self.send_client(to, chunk);
        }
        left == n
    }

    /// Starts streaming a large server message whose header is at the start of `buf` (after
    /// what went before it was passed on): its answer slot is taken now.
    pub(super) fn pg_stream_from_server(
        &mut self,
        uid: UpstreamId,
        cid: Option<ClientId>,
        h: &Header,
        buf: &mut BytesMut,
    ) -> Result<(), String> {
        if let Some(cid) = cid {
            self.release_synthetics(uid, cid);
        }
        let Some(u) = self.upstreams.pg_mut(uid) else {
            return Ok(());
        };
        let to = match u.expect.on_response(h.tag) {
            Verdict::Accept { swallow, .. } => cid.filter(|_| !swallow),
            Verdict::Unexpected => return Err("server response out of step with requests".into()),
        };
        u.passthrough = Some((h.frame_len - buf.len(), to));
        let chunk = buf.split().freeze();
        if let Some(to) = to {
            self.send_client(to, chunk);
        }
        Ok(())
    }

    /// Passes on what has arrived of a client message being streamed to `uid`; returns
    /// whether the rest of the input is to be relayed as usual (the message is complete).
    pub(super) fn pg_client_pass_through(&mut self, cid: ClientId, uid: UpstreamId) -> bool {
        let Some(c) = self.clients.pg_mut(cid) else {
            return false;
        };
        let Some((left, forward)) = c.passthrough else {
            return true;
        };
        let n = left.min(c.core.buf.len());
        let chunk = c.core.buf.split_to(n).freeze();
        c.passthrough = (left > n).then_some((left - n, forward));
        if forward && !chunk.is_empty() {
            self.actions.push_back(Action::SendUpstream {
                id: uid,
                bytes: chunk,
            });
        }
        left == n
    }

    /// Starts streaming a large client message whose header is at the start of `buf` (after
    /// what went before it was passed on) to `uid`. Leaves `buf` as it is when a Bind's names
    /// are not all in yet.
    pub(super) fn pg_stream_from_client(
        &mut self,
        cid: ClientId,
        uid: UpstreamId,
        h: &Header,
        buf: &mut BytesMut,
    ) -> Result<(), String> {
        let mut out = BytesMut::new();
        let mut forward = true;
        // All of `buf` is this message's first bytes (it is not complete).
        let received = buf.len();
        match h.tag {
            b'Q' => {
                if let Some(c) = self.clients.pg_mut(cid) {
                    c.unnamed = None;
                }
                self.expect(uid, Kind::Query, false, None);
                out.extend_from_slice(&buf.split());
            }
            b'B' => {
                let body = &buf[HEADER_LEN..];
                let names = peek::cstr(body).and_then(|(portal, rest)| {
                    let (stmt, _) = peek::cstr(rest)?;
                    Some((portal.to_vec(), stmt.to_vec()))
                });
                let Some((portal, stmt)) = names else {
                    return if body.len() > MAX_BIND_NAMES {
                        Err("Bind names too long".into())
                    } else {
                        Ok(())
                    };
                };
                let names_len = portal.len() + stmt.len() + 2;
                let own_unnamed = stmt.is_empty()
                    && self
                        .upstreams
                        .pg(uid)
                        .is_some_and(|u| u.unnamed_owner == Some(cid));
                if own_unnamed {
                    self.expect(uid, Kind::Bind, false, None);
                    out.extend_from_slice(&buf.split());
                } else if stmt.is_empty() {
                    self.unnamed_prefix(cid, uid, &mut out)?;
                    self.expect(uid, Kind::Bind, false, None);
                    out.extend_from_slice(&buf.split());
                } else {
                    match self.bind_target(cid, uid, &stmt, &mut out)? {
                        Some(server) => {
                            // The same message with the server's statement name: the length
                            // changes by the difference of the names.
                            let len = h.frame_len - HEADER_LEN - stmt.len() + server.len() + 4;
                            let len = u32::try_from(len).map_err(|_| "Bind too long")?;
                            out.put_u8(b'B');
                            out.put_u32(len);
                            out.put_slice(&portal);
                            out.put_u8(0);
                            out.put_slice(&server);
                            out.put_u8(0);
                            let _ = buf.split_to(HEADER_LEN + names_len);
                            out.extend_from_slice(&buf.split());
                        }
                        None => {
                            // Answered in its place: the rest of it goes nowhere.
                            forward = false;
                            buf.clear();
                        }
                    }
                }
            }
            _ => out.extend_from_slice(&buf.split()),
        }
        if let Some(c) = self.clients.pg_mut(cid) {
            c.passthrough = Some((h.frame_len - received, forward));
        }
        if !out.is_empty() {
            self.actions.push_back(Action::SendUpstream {
                id: uid,
                bytes: out.freeze(),
            });
        }
        Ok(())
    }
}
