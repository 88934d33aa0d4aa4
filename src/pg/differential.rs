//! Differential tests against the postgres-protocol crate on generated message streams.
//!
//! Backend: the same byte stream is parsed by both; every message both accept must agree
//! field by field, and on mutated streams anything muxql accepts the peer must accept too
//! (muxql is the stricter parser). Frontend and startup: both encoders must produce identical
//! bytes, and muxql must parse the peer's bytes back to the original message.

use bytes::{BufMut, Bytes, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::Message as Peer;
use postgres_protocol::message::frontend as peer_fe;
use postgres_protocol::IsNull;
use proptest::collection::vec;
use proptest::prelude::*;

use super::arbitrary;
use super::backend::{
    Authentication, BackendMessage, CopyResponse, DataRow, FieldDescription, Fields,
    TransactionStatus,
};
use super::frame::{split_frame, Direction};
use super::frontend::{FrontendMessage, TargetKind};
use crate::wire::Limits;

fn b(s: &[u8]) -> Bytes {
    Bytes::copy_from_slice(s)
}

fn copy_response(format: u8, formats: Vec<u16>) -> CopyResponse {
    CopyResponse {
        format: i8::from_be_bytes([format]),
        column_formats: formats
            .into_iter()
            .map(|f| i16::from_be_bytes(f.to_be_bytes()))
            .collect(),
    }
}

fn fields(f: postgres_protocol::message::backend::ErrorFields<'_>) -> std::io::Result<Fields> {
    let mut out = Fields::default();
    f.for_each(|field| {
        out.push(field.type_(), b(field.value_bytes()));
        Ok(())
    })?;
    Ok(out)
}

/// The peer's view of a message, in muxql's types; `Err` when the peer cannot read it.
fn from_peer(m: Peer) -> std::io::Result<BackendMessage> {
    use BackendMessage as M;
    Ok(match m {
        Peer::AuthenticationOk => M::Authentication(Authentication::Ok),
        Peer::AuthenticationKerberosV5 => M::Authentication(Authentication::KerberosV5),
        Peer::AuthenticationCleartextPassword => {
            M::Authentication(Authentication::CleartextPassword)
        }
        Peer::AuthenticationMd5Password(body) => {
            M::Authentication(Authentication::Md5Password { salt: body.salt() })
        }
        Peer::AuthenticationGss => M::Authentication(Authentication::Gss),
        Peer::AuthenticationGssContinue(body) => {
            M::Authentication(Authentication::GssContinue(b(body.data())))
        }
        Peer::AuthenticationSspi => M::Authentication(Authentication::Sspi),
        Peer::AuthenticationSasl(body) => M::Authentication(Authentication::Sasl {
            mechanisms: body.mechanisms().map(|m| Ok(b(m.as_bytes()))).collect()?,
        }),
        Peer::AuthenticationSaslContinue(body) => {
            M::Authentication(Authentication::SaslContinue(b(body.data())))
        }
        Peer::AuthenticationSaslFinal(body) => {
            M::Authentication(Authentication::SaslFinal(b(body.data())))
        }
        Peer::BackendKeyData(body) => M::BackendKeyData {
            pid: u32::from_be_bytes(body.process_id().to_be_bytes()),
            key: b(&body.secret_key().to_be_bytes()),
        },
        Peer::BindComplete => M::BindComplete,
        Peer::CloseComplete => M::CloseComplete,
        Peer::CommandComplete(body) => M::CommandComplete(b(body.tag()?.as_bytes())),
        Peer::CopyData(body) => M::CopyData(b(body.data())),
        Peer::CopyDone => M::CopyDone,
        Peer::CopyInResponse(body) => M::CopyInResponse(copy_response(
            body.format(),
            body.column_formats().collect()?,
        )),
        Peer::CopyOutResponse(body) => M::CopyOutResponse(copy_response(
            body.format(),
            body.column_formats().collect()?,
        )),
        Peer::DataRow(body) => {
            let buf = body.buffer();
            let cols: Vec<Option<&[u8]>> = body
                .ranges()
                .map(|r| Ok(r.and_then(|r| buf.get(r))))
                .collect()?;
            M::DataRow(DataRow::from_values(cols).map_err(std::io::Error::other)?)
        }
        Peer::EmptyQueryResponse => M::EmptyQueryResponse,
        Peer::ErrorResponse(body) => M::ErrorResponse(fields(body.fields())?),
        Peer::NoData => M::NoData,
        Peer::NoticeResponse(body) => M::NoticeResponse(fields(body.fields())?),
        Peer::NotificationResponse(body) => M::NotificationResponse {
            pid: u32::from_be_bytes(body.process_id().to_be_bytes()),
            channel: b(body.channel()?.as_bytes()),
            payload: b(body.message()?.as_bytes()),
        },
        Peer::ParameterDescription(body) => M::ParameterDescription(body.parameters().collect()?),
        Peer::ParameterStatus(body) => M::ParameterStatus {
            name: b(body.name()?.as_bytes()),
            value: b(body.value()?.as_bytes()),
        },
        Peer::ParseComplete => M::ParseComplete,
        Peer::PortalSuspended => M::PortalSuspended,
        Peer::ReadyForQuery(body) => M::ReadyForQuery(
            TransactionStatus::from_byte(body.status()).map_err(std::io::Error::other)?,
        ),
        Peer::RowDescription(body) => M::RowDescription(
            body.fields()
                .map(|f| {
                    Ok(FieldDescription {
                        name: b(f.name().as_bytes()),
                        table_oid: f.table_oid(),
                        column: f.column_id(),
                        type_oid: f.type_oid(),
                        type_size: f.type_size(),
                        type_modifier: f.type_modifier(),
                        format: f.format(),
                    })
                })
                .collect()?,
        ),
        _ => return Err(std::io::Error::other("message the peer does not model")),
    })
}

/// Whether the peer models this message at all (it predates protocol 3.2 and lacks some).
fn peer_models(m: &BackendMessage) -> bool {
    match m {
        BackendMessage::NegotiateProtocolVersion { .. }
        | BackendMessage::FunctionCallResponse(_)
        | BackendMessage::CopyBothResponse(_) => false,
        BackendMessage::BackendKeyData { key, .. } => key.len() == 4,
        _ => true,
    }
}

/// Parses a whole stream with muxql: one result per frame until the first error.
fn ours(mut buf: BytesMut) -> Vec<Result<BackendMessage, crate::wire::Error>> {
    let mut out = Vec::new();
    loop {
        match split_frame(&mut buf, Direction::Backend, &Limits::default()) {
            Ok(Some(f)) => out.push(BackendMessage::parse(&f)),
            Ok(None) => return out,
            Err(e) => {
                out.push(Err(e));
                return out;
            }
        }
    }
}

/// Parses a whole stream with the peer, converted to muxql's types.
fn theirs(mut buf: BytesMut) -> Vec<std::io::Result<BackendMessage>> {
    let mut out = Vec::new();
    loop {
        match Peer::parse(&mut buf) {
            Ok(Some(m)) => out.push(from_peer(m)),
            Ok(None) => return out,
            Err(e) => {
                out.push(Err(e));
                return out;
            }
        }
    }
}

proptest! {
    #[test]
    fn backend_streams_agree(msgs in vec(arbitrary::backend(), 0..40), cut in any::<prop::sample::Index>()) {
        let msgs: Vec<_> = msgs.into_iter().filter(peer_models).collect();
        let mut stream = BytesMut::new();
        msgs.iter().for_each(|m| m.encode(&mut stream).unwrap());
        let ours_all = ours(stream.clone());
        prop_assert_eq!(ours_all.len(), msgs.len());
        let theirs_all = theirs(stream.clone());
        prop_assert_eq!(theirs_all.len(), msgs.len());
        for ((want, o), t) in msgs.iter().zip(&ours_all).zip(&theirs_all) {
            prop_assert_eq!(o.as_ref(), Ok(want));
            // The peer insists on UTF-8 in some fields; where it reads them it must agree.
            if let Ok(t) = t {
                prop_assert_eq!(t, want);
            }
        }
        // Both stop at the same place on a truncated stream.
        let cut = cut.index(stream.len() + 1);
        let prefix = BytesMut::from(&stream[..cut]);
        prop_assert_eq!(ours(prefix.clone()).len(), theirs(prefix).len());
    }

    #[test]
    fn whatever_muxql_accepts_the_peer_reads_alike(
        msgs in vec(arbitrary::backend(), 1..20),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut stream = BytesMut::new();
        msgs.iter().filter(|m| peer_models(m)).for_each(|m| m.encode(&mut stream).unwrap());
        if stream.is_empty() {
            return Ok(());
        }
        for (i, v) in flips {
            let i = i.index(stream.len());
            stream[i] = v;
        }
        let ours_all = ours(stream.clone());
        let theirs_all = theirs(stream);
        for (o, t) in ours_all.iter().zip(&theirs_all) {
            let Ok(o) = o else { break };
            if !peer_models(o) {
                break;
            }
            match t {
                Ok(t) => prop_assert_eq!(t, o),
                // Only the peer's UTF-8 requirement may reject what muxql accepts.
                Err(e) => prop_assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{:?} {:?}", o, e),
            }
        }
    }
}

/// The peer's encoding of a frontend message, or `None` when it has no encoder for it or
/// needs UTF-8 the message lacks.
fn peer_encode(m: &FrontendMessage) -> Option<BytesMut> {
    let s = |b: &Bytes| std::str::from_utf8(b).ok().map(str::to_owned);
    let kind = |k: TargetKind| k.byte();
    let mut buf = BytesMut::new();
    match m {
        FrontendMessage::Bind(bind) => {
            let r = peer_fe::bind(
                &s(&bind.portal)?,
                &s(&bind.statement)?,
                bind.param_formats.iter().copied(),
                bind.params.iter(),
                |v, buf| match v {
                    Some(v) => {
                        buf.put_slice(v);
                        Ok(IsNull::No)
                    }
                    None => Ok(IsNull::Yes),
                },
                bind.result_formats.iter().copied(),
                &mut buf,
            );
            r.ok()?;
        }
        FrontendMessage::Close(c) => peer_fe::close(kind(c.kind), &s(&c.name)?, &mut buf).ok()?,
        FrontendMessage::CopyData(d) => peer_fe::CopyData::new(&d[..]).ok()?.write(&mut buf),
        FrontendMessage::CopyDone => peer_fe::copy_done(&mut buf),
        FrontendMessage::CopyFail(m) => peer_fe::copy_fail(&s(m)?, &mut buf).ok()?,
        FrontendMessage::Describe(d) => {
            peer_fe::describe(kind(d.kind), &s(&d.name)?, &mut buf).ok()?
        }
        FrontendMessage::Execute(e) => peer_fe::execute(
            &s(&e.portal)?,
            i32::from_be_bytes(e.max_rows.to_be_bytes()),
            &mut buf,
        )
        .ok()?,
        FrontendMessage::Flush => peer_fe::flush(&mut buf),
        FrontendMessage::FunctionCall(_) => return None,
        FrontendMessage::Parse(p) => peer_fe::parse(
            &s(&p.name)?,
            &s(&p.query)?,
            p.param_types.iter().copied(),
            &mut buf,
        )
        .ok()?,
        FrontendMessage::Password(raw) => peer_fe::sasl_response(raw, &mut buf).ok()?,
        FrontendMessage::Query(q) => peer_fe::query(&s(q)?, &mut buf).ok()?,
        FrontendMessage::Sync => peer_fe::sync(&mut buf),
        FrontendMessage::Terminate => peer_fe::terminate(&mut buf),
    }
    Some(buf)
}

proptest! {
    #[test]
    fn frontend_encoders_agree_byte_for_byte(msgs in vec(arbitrary::frontend(), 0..30)) {
        let mut theirs = BytesMut::new();
        let mut ours = BytesMut::new();
        let mut want = Vec::new();
        for m in msgs {
            if let Some(bytes) = peer_encode(&m) {
                theirs.extend_from_slice(&bytes);
                m.encode(&mut ours).unwrap();
                want.push(m);
            }
        }
        prop_assert_eq!(&ours, &theirs);
        for m in want {
            let f = split_frame(&mut theirs, Direction::Frontend, &Limits::default()).unwrap().unwrap();
            prop_assert_eq!(FrontendMessage::parse(&f), Ok(m));
        }
        prop_assert!(theirs.is_empty());
    }
}

#[test]
fn sasl_sub_formats_agree() {
    let mut theirs = BytesMut::new();
    peer_fe::sasl_initial_response("SCRAM-SHA-256", b"n,,n=,r=abc", &mut theirs).unwrap();
    peer_fe::password_message(b"md5abc", &mut theirs).unwrap();
    let mut ours = BytesMut::new();
    super::frontend::SaslInitialResponse {
        mechanism: Bytes::from_static(b"SCRAM-SHA-256"),
        data: Some(Bytes::from_static(b"n,,n=,r=abc")),
    }
    .encode(&mut ours)
    .unwrap();
    super::frontend::encode_password_message(&mut ours, b"md5abc").unwrap();
    assert_eq!(ours, theirs);
}

proptest! {
    #[test]
    fn startup_packets_agree(params in vec(("[a-z_]{1,12}", "[ -~]{0,16}"), 0..6),
                             pid in any::<i32>(), key in any::<i32>()) {
        use super::startup::{CancelRequest, ProtocolVersion, Startup, StartupRequest, PROTOCOL_3_0};
        let mut theirs = BytesMut::new();
        peer_fe::startup_message(params.iter().map(|(k, v)| (k.as_str(), v.as_str())), &mut theirs)
            .unwrap();
        peer_fe::cancel_request(pid, key, &mut theirs);
        let mut ours = BytesMut::new();
        StartupRequest::Startup(Startup {
            version: ProtocolVersion(PROTOCOL_3_0),
            params: params.iter().map(|(k, v)| (b(k.as_bytes()), b(v.as_bytes()))).collect(),
        })
        .encode(&mut ours)
        .unwrap();
        StartupRequest::Cancel(CancelRequest {
            pid: u32::from_be_bytes(pid.to_be_bytes()),
            key: b(&key.to_be_bytes()),
        })
        .encode(&mut ours)
        .unwrap();
        prop_assert_eq!(ours, theirs);
    }
}
