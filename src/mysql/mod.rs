//! MySQL / MariaDB client/server protocol: zero-copy packet framing, handshake, authentication
//! (both roles), commands, responses and the sans-I/O response reader the multiplexer uses to
//! know when an upstream is free.
//!
//! Every parser takes a complete logical payload as [`bytes::Bytes`] and returns views that
//! borrow it; every encoder appends to a [`bytes::BytesMut`] and returns
//! [`Error::EncodeOverflow`](crate::wire::Error::EncodeOverflow) rather than truncating.

pub mod auth;
pub mod binary;
pub mod command;
mod cursor;
#[cfg(test)]
mod differential_tests;
pub mod errcode;
pub mod flags;
pub mod handshake;
pub mod lenenc;
#[cfg(test)]
mod malformed_tests;
pub mod packet;
pub mod response;
pub mod result_reader;
pub mod sql;
pub mod stmt;

pub use flags::{CapabilityFlags, StatusFlags};
pub use packet::{Packet, PacketCodec, PacketHeader};
pub use result_reader::{Completion, Expect, ResponseReader, Step};
