//! Table-driven malformed-input tests: every parser, fed every truncation of a valid message,
//! a length-encoded string longer than the packet, or bad sequence ids, returns a typed error
//! and never panics.

use bytes::{Bytes, BytesMut};

use super::binary::{parse_binary_row, parse_text_row};
use super::command::Command;
use super::flags::CapabilityFlags;
use super::handshake::{AuthSwitchRequest, ClientHello, HandshakeV10};
use super::response::{EofPacket, ErrPacket, OkPacket};
use super::stmt::{ColumnDefinition, PrepareOk};
use super::{PacketCodec, ResponseReader};
use crate::mysql::result_reader::Expect;
use crate::wire::{Error, Limits};

type Parser = fn(&Bytes) -> Result<(), Error>;

fn caps() -> CapabilityFlags {
    CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::CLIENT_SECURE_CONNECTION
        | CapabilityFlags::CLIENT_PLUGIN_AUTH
        | CapabilityFlags::CLIENT_SESSION_TRACK
        | CapabilityFlags::CLIENT_CONNECT_WITH_DB
        | CapabilityFlags::CLIENT_CONNECT_ATTRS
}

/// (name, a valid payload, parser, whether every strict prefix must fail).
fn table() -> Vec<(&'static str, &'static [u8], Parser, bool)> {
    vec![
        ("HandshakeV10", b"\x0a8.0.36\x00\x0b\x00\x00\x00abcdefgh\x00\xff\xff\x21\x02\x00\xff\x01\x15\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00ijklmnopqrst\x00caching_sha2_password\x00",
            |b| HandshakeV10::parse(b).map(drop), false),
        ("HandshakeResponse41", b"\x0d\x82\x1b\x00\x00\x00\x00\x01\x21\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00u\x00\x02ab" ,
            |b| ClientHello::parse(b).map(drop), false),
        ("OK", b"\x00\x01\x02\x02\x40\x00\x00\x00\x05\x01\x03\x02db", |b| OkPacket::parse(b, caps()).map(drop), false),
        ("ERR", b"\xff\x48\x04#HY000x", |b| ErrPacket::parse(b, caps()).map(drop), false),
        ("EOF", b"\xfe\x00\x00\x02\x00", |b| EofPacket::parse(b, caps()).map(drop), true),
        ("PREPARE_OK", b"\x00\x01\x00\x00\x00\x01\x00\x02\x00\x00\x00\x00", |b| PrepareOk::parse(b, caps()).map(drop), false),
        ("ColumnDefinition", b"\x03def\x00\x00\x00\x01c\x00\x0c\x08\x00\x1c\x00\x00\x00\xfd\x00\x00\x1f\x00\x00",
            |b| ColumnDefinition::parse(b, caps()).map(drop), true),
        ("AuthSwitchRequest", b"\xfemysql_native_password\x00abc", |b| AuthSwitchRequest::parse(b).map(drop), false),
        ("binary row", b"\x00\x00\x01\x02\x00\x03abc\x0b\xe8\x07\x01\x02\x03\x04\x05\x01\x00\x00\x00",
            |b| parse_binary_row(b, &[1, 2, 253, 12]).map(drop), true),
        ("text row", b"\x01a\xfb\x02bc", |b| parse_text_row(b, 3).map(drop), true),
        ("COM_STMT_EXECUTE", b"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00\x00\x01\x0f\x00\x03foo",
            |b| match Command::parse(b, caps())? {
                Command::StmtExecute(e) => e.params(1, caps(), None).map(drop),
                _ => Err(Error::Unexpected("command")),
            }, false),
        ("COM_CHANGE_USER", b"\x11u\x00\x02ab\x00\x21\x00p\x00\x04\x01k\x01v", |b| Command::parse(b, caps()).map(drop), false),
    ]
}

#[test]
fn valid_messages_parse() {
    for (name, bytes, parse, _) in table() {
        assert_eq!(parse(&Bytes::from_static(bytes)), Ok(()), "{name}");
    }
}

#[test]
fn truncated_at_every_offset_is_an_error_or_a_shorter_message() {
    for (name, bytes, parse, strict) in table() {
        for cut in 0..bytes.len() {
            let r = parse(&Bytes::copy_from_slice(&bytes[..cut]));
            if strict {
                assert!(r.is_err(), "{name} cut at {cut} parsed");
            }
        }
    }
}

#[test]
fn lenenc_longer_than_the_rest_is_truncated() {
    let cases: [(&str, &[u8], Parser); 4] = [
        ("column definition", b"\x20def", |b| {
            ColumnDefinition::parse(b, caps()).map(drop)
        }),
        ("text row", b"\xfc\xff\x00abc", |b| {
            parse_text_row(b, 1).map(drop)
        }),
        (
            "OK session state",
            b"\x00\x00\x00\x00\x40\x00\x00\x00\x10ab",
            |b| OkPacket::parse(b, caps()).map(drop),
        ),
        (
            "binary row",
            b"\x00\x00\xfe\xff\xff\xff\xff\xff\xff\xff\xffab",
            |b| parse_binary_row(b, &[253]).map(drop),
        ),
    ];
    for (name, bytes, parse) in cases {
        assert_eq!(
            parse(&Bytes::from_static(bytes)),
            Err(Error::Truncated(match name {
                "column definition" => "column definition",
                "text row" => "text row",
                "OK session state" => "OK",
                _ => "binary row",
            })),
            "{name}"
        );
    }
}

#[test]
fn bad_sequence_ids_are_errors() {
    // (first expected seq, wire bytes, expected error)
    let cases: [(u8, &[u8], Error); 3] = [
        (
            0,
            &[1, 0, 0, 1, 0x0e],
            Error::BadSequence {
                got: 1,
                expected: 0,
            },
        ),
        (
            5,
            &[1, 0, 0, 4, 0x0e],
            Error::BadSequence {
                got: 4,
                expected: 5,
            },
        ),
        (
            255,
            &[1, 0, 0, 255, 0x0e, 1, 0, 0, 1, 0x0e],
            Error::BadSequence {
                got: 1,
                expected: 0,
            },
        ),
    ];
    for (first, wire, err) in cases {
        let mut codec = PacketCodec::new(Limits::default(), first);
        let mut buf = BytesMut::from(wire);
        let mut result = Ok(None);
        for _ in 0..2 {
            result = codec.parse(&mut buf);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(err));
    }
    let mut reader = ResponseReader::new(Expect::Query, caps(), Limits::default());
    assert_eq!(
        reader.scan(&[1, 0, 0, 0, 0]),
        Err(Error::BadSequence {
            got: 0,
            expected: 1
        })
    );
}

#[test]
fn garbage_never_panics() {
    let mut x: u32 = 0x1234_5678;
    for len in 0..400usize {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let b = Bytes::from(bytes);
        for (_, _, parse, _) in table() {
            let _ = parse(&b);
        }
        for expect in [
            Expect::Query,
            Expect::Prepare,
            Expect::Execute,
            Expect::ChangeUser,
        ] {
            let _ = ResponseReader::new(expect, caps(), Limits::default()).scan(&b);
        }
    }
}
