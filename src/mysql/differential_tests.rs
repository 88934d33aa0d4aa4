//! Differential tests against the mysql_common crate: bytes one side encodes, the other
//! parses, for every message both implement.

use bytes::{Bytes, BytesMut};
use mysql_common::constants::{CapabilityFlags as TheirCaps, StatusFlags as TheirStatus};
use mysql_common::io::ParseBuf;
use mysql_common::packets as their;
use mysql_common::proto::{MyDeserialize, MySerialize};
use proptest::prelude::*;

use super::flags::{CapabilityFlags, StatusFlags};
use super::handshake::{ClientHello, HandshakeResponse41, HandshakeV10};
use super::packet::write_packet;
use super::response::{ErrPacket, OkPacket};
use super::stmt::ColumnDefinition;
use super::PacketCodec;
use crate::wire::Limits;

fn theirs(c: CapabilityFlags) -> TheirCaps {
    TheirCaps::from_bits_truncate(c.lower())
}

fn nz(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(1u8.., 0..max)
}

proptest! {
    #[test]
    fn framing_matches_packet_codec(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..2000), 1..6)) {
        // Theirs encodes, ours decodes.
        let mut peer = mysql_common::proto::codec::PacketCodec::default();
        let mut wire = BytesMut::new();
        for p in &payloads {
            peer.encode(&mut &p[..], &mut wire).unwrap();
        }
        let mut ours = PacketCodec::new(Limits::default(), 0);
        let mut got = Vec::new();
        while let Some(p) = ours.parse(&mut wire).unwrap() { got.push(p.payload.to_vec()); }
        prop_assert_eq!(&got, &payloads);
        // Ours encodes, theirs decodes.
        let mut wire = BytesMut::new();
        let mut seq = 0;
        for p in &payloads { write_packet(&mut wire, &mut seq, p).unwrap(); }
        let mut peer = mysql_common::proto::codec::PacketCodec::default();
        let mut got = Vec::new();
        loop {
            let mut dst = Vec::new();
            if !peer.decode(&mut wire, &mut dst).unwrap() { break; }
            got.push(dst);
        }
        prop_assert_eq!(got, payloads);
    }

    #[test]
    fn handshake_v10_matches(version in nz(20), id in any::<u32>(), scramble in proptest::collection::vec(1u8..0x80, 20),
                             caps in any::<u32>(), collation in any::<u8>(), status in any::<u16>(), plugin in nz(25)) {
        let caps = CapabilityFlags::from_bits_retain(u64::from(caps))
            | CapabilityFlags::CLIENT_SECURE_CONNECTION | CapabilityFlags::CLIENT_PLUGIN_AUTH | CapabilityFlags::CLIENT_MYSQL;
        let mut s2 = scramble[8..].to_vec();
        s2.push(0);
        let h = their::HandshakePacket::new(10, &version[..], id, scramble[..8].try_into().unwrap(), Some(&s2[..]),
            theirs(caps), collation, TheirStatus::from_bits_truncate(status), Some(&plugin[..]));
        let mut buf = Vec::new();
        h.serialize(&mut buf);
        let ours = HandshakeV10::parse(&Bytes::from(buf)).unwrap();
        prop_assert_eq!(&ours.server_version[..], &version[..]);
        prop_assert_eq!(ours.connection_id, id);
        prop_assert_eq!(&ours.auth_plugin_data[..], &scramble[..]);
        prop_assert_eq!(ours.capabilities.lower(), theirs(caps).bits());
        prop_assert_eq!(ours.auth_plugin_name.as_deref(), Some(&plugin[..]));

        let mut out = BytesMut::new();
        ours.encode(&mut out).unwrap();
        let back = their::HandshakePacket::deserialize((), &mut ParseBuf(&out)).unwrap();
        prop_assert_eq!(back.connection_id(), id);
        prop_assert_eq!(back.nonce(), scramble);
        prop_assert_eq!(back.auth_plugin_name_ref(), Some(&plugin[..]));
        prop_assert_eq!(back.status_flags().bits(), TheirStatus::from_bits_truncate(status).bits());
    }

    #[test]
    fn handshake_response_matches(user in nz(16), db in proptest::option::of(nz(16)), auth in proptest::collection::vec(any::<u8>(), 0..40), max in any::<u32>()) {
        let caps = TheirCaps::CLIENT_PROTOCOL_41 | TheirCaps::CLIENT_SECURE_CONNECTION
            | TheirCaps::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | TheirCaps::CLIENT_LONG_PASSWORD;
        let r = their::HandshakeResponse::new(Some(&auth[..]), (8, 0, 36), Some(&user[..]), db.as_deref(),
            Some(their::AuthPlugin::MysqlNativePassword), caps, None, max);
        let mut buf = Vec::new();
        r.serialize(&mut buf);
        let ClientHello::Response(ours) = ClientHello::parse(&Bytes::from(buf)).unwrap() else { panic!("SSLRequest") };
        prop_assert_eq!(&ours.username[..], &user[..]);
        prop_assert_eq!(&ours.auth_response[..], &auth[..]);
        prop_assert_eq!(ours.database.as_deref(), db.as_deref());
        prop_assert_eq!(ours.auth_plugin_name.as_deref(), Some(&b"mysql_native_password"[..]));
        prop_assert_eq!(ours.max_packet_size, max);

        let mine = HandshakeResponse41 { capabilities: ours.capabilities, ..ours.clone() };
        let mut out = BytesMut::new();
        mine.encode(&mut out).unwrap();
        let back = their::HandshakeResponse::deserialize((), &mut ParseBuf(&out)).unwrap();
        prop_assert_eq!(back.user(), &user[..]);
        prop_assert_eq!(back.scramble_buf(), &auth[..]);
        prop_assert_eq!(back.db_name(), db.as_deref());
    }

    #[test]
    fn ok_packet_matches(affected in any::<u64>(), id in any::<u64>(), status in any::<u16>(), warnings in any::<u16>(),
                         info in nz(30), track in any::<bool>()) {
        let mut caps = CapabilityFlags::CLIENT_PROTOCOL_41 | CapabilityFlags::CLIENT_TRANSACTIONS;
        if track { caps |= CapabilityFlags::CLIENT_SESSION_TRACK; }
        let mut status = StatusFlags::from_bits_retain(status) & StatusFlags::all();
        status.remove(StatusFlags::SERVER_SESSION_STATE_CHANGED);
        let ok = OkPacket { affected_rows: affected, last_insert_id: id, status, warnings, info: Bytes::from(info.clone()), ..OkPacket::new(status) };
        let mut out = BytesMut::new();
        ok.encode(&mut out, caps).unwrap();
        let back: their::OkPacket<'_> = their::OkPacketDeserializer::<their::CommonOkPacket>::deserialize(theirs(caps), &mut ParseBuf(&out)).unwrap().into();
        prop_assert_eq!(back.affected_rows(), affected);
        prop_assert_eq!(back.last_insert_id().unwrap_or(0), id);
        prop_assert_eq!(back.status_flags().bits(), status.bits());
        prop_assert_eq!(back.warnings(), warnings);
        prop_assert_eq!(back.info_ref().unwrap_or_default(), &info[..]);
    }

    #[test]
    fn err_packet_matches(code in 0u16..0xFFFF, msg in nz(40)) {
        let caps = CapabilityFlags::CLIENT_PROTOCOL_41;
        let e = ErrPacket { code, sql_state: Some(*b"HY000"), message: Bytes::from(msg.clone()) };
        let mut out = BytesMut::new();
        e.encode(&mut out, caps);
        let back = their::ErrPacket::deserialize(theirs(caps), &mut ParseBuf(&out)).unwrap();
        let back = back.server_error();
        prop_assert_eq!(back.error_code(), code);
        prop_assert_eq!(back.message_ref(), &msg[..]);
        prop_assert_eq!(back.sql_state_ref().map(|s| s.as_str().into_owned()), Some("HY000".to_string()));
    }

    #[test]
    fn column_definition_matches(name in nz(20), schema in nz(20), table in nz(20), len in any::<u32>(), ty in prop::sample::select(vec![1u8, 3, 8, 12, 15, 252, 253, 254]), flags in any::<u16>(), dec in any::<u8>()) {
        let c = ColumnDefinition {
            catalog: Bytes::from_static(b"def"), schema: Bytes::from(schema.clone()), table: Bytes::from(table.clone()),
            org_table: Bytes::new(), name: Bytes::from(name.clone()), org_name: Bytes::new(), extended_type_info: None,
            character_set: 33, column_length: len, column_type: ty, flags, decimals: dec,
        };
        let mut out = BytesMut::new();
        c.encode(&mut out, CapabilityFlags::CLIENT_PROTOCOL_41).unwrap();
        let back = mysql_common::packets::Column::deserialize((), &mut ParseBuf(&out)).unwrap();
        prop_assert_eq!(back.name_ref(), &name[..]);
        prop_assert_eq!(back.schema_ref(), &schema[..]);
        prop_assert_eq!(back.table_ref(), &table[..]);
        prop_assert_eq!(back.column_length(), len);
        prop_assert_eq!(back.column_type() as u8, ty);
        prop_assert_eq!(back.decimals(), dec);
    }
}
