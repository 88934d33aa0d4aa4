//! Proptest strategies for every typed message, shared by the round-trip and differential tests.

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;

use super::backend::{
    Authentication, BackendMessage, CopyResponse, DataRow, FieldDescription, Fields,
    TransactionStatus,
};
use super::frontend::{
    Bind, Close, Describe, Execute, FrontendMessage, FunctionCall, Parse, TargetKind,
};

/// Bytes without NUL, as String fields hold: mostly printable ASCII (which peers that insist
/// on UTF-8 can compare), sometimes any non-NUL byte.
pub(crate) fn cstr() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        3 => "[ -~]{0,24}".prop_map(Bytes::from),
        1 => vec(1u8..=255, 0..24).prop_map(Bytes::from),
    ]
}

/// Arbitrary bytes.
pub(crate) fn bytes() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..48).prop_map(Bytes::from)
}

fn value() -> impl Strategy<Value = Option<Bytes>> {
    proptest::option::of(bytes())
}

fn kind() -> impl Strategy<Value = TargetKind> {
    prop_oneof![Just(TargetKind::Statement), Just(TargetKind::Portal)]
}

/// Format codes matching `n` values: none, one, or one per value.
fn formats_for(n: usize) -> impl Strategy<Value = Vec<i16>> {
    prop_oneof![Just(0), Just(1), Just(n)].prop_flat_map(|k| vec(0i16..=1, k))
}

fn bind() -> impl Strategy<Value = Bind> {
    vec(value(), 0..6).prop_flat_map(|params| {
        let n = params.len();
        (
            cstr(),
            cstr(),
            formats_for(n),
            Just(params),
            vec(any::<i16>(), 0..4),
        )
            .prop_map(
                |(portal, statement, param_formats, params, result_formats)| Bind {
                    portal,
                    statement,
                    param_formats,
                    params,
                    result_formats,
                },
            )
    })
}

fn function_call() -> impl Strategy<Value = FunctionCall> {
    vec(value(), 0..4).prop_flat_map(|args| {
        let n = args.len();
        (any::<u32>(), formats_for(n), Just(args), any::<i16>()).prop_map(
            |(oid, arg_formats, args, result_format)| FunctionCall {
                oid,
                arg_formats,
                args,
                result_format,
            },
        )
    })
}

/// Any frontend message.
pub(crate) fn frontend() -> impl Strategy<Value = FrontendMessage> {
    prop_oneof![
        bind().prop_map(FrontendMessage::Bind),
        (kind(), cstr()).prop_map(|(kind, name)| FrontendMessage::Close(Close { kind, name })),
        bytes().prop_map(FrontendMessage::CopyData),
        Just(FrontendMessage::CopyDone),
        cstr().prop_map(FrontendMessage::CopyFail),
        (kind(), cstr())
            .prop_map(|(kind, name)| FrontendMessage::Describe(Describe { kind, name })),
        (cstr(), any::<u32>())
            .prop_map(|(portal, max_rows)| FrontendMessage::Execute(Execute { portal, max_rows })),
        Just(FrontendMessage::Flush),
        function_call().prop_map(FrontendMessage::FunctionCall),
        (cstr(), cstr(), vec(any::<u32>(), 0..6)).prop_map(|(name, query, param_types)| {
            FrontendMessage::Parse(Parse {
                name,
                query,
                param_types,
            })
        }),
        bytes().prop_map(FrontendMessage::Password),
        cstr().prop_map(FrontendMessage::Query),
        Just(FrontendMessage::Sync),
        Just(FrontendMessage::Terminate),
    ]
}

fn authentication() -> impl Strategy<Value = Authentication> {
    prop_oneof![
        Just(Authentication::Ok),
        Just(Authentication::KerberosV5),
        Just(Authentication::CleartextPassword),
        any::<[u8; 4]>().prop_map(|salt| Authentication::Md5Password { salt }),
        Just(Authentication::Gss),
        bytes().prop_map(Authentication::GssContinue),
        Just(Authentication::Sspi),
        vec(vec(1u8..=255, 1..20).prop_map(Bytes::from), 0..4)
            .prop_map(|mechanisms| Authentication::Sasl { mechanisms }),
        bytes().prop_map(Authentication::SaslContinue),
        bytes().prop_map(Authentication::SaslFinal),
    ]
}

/// Error or notice fields, sometimes without SQLSTATE.
pub(crate) fn fields() -> impl Strategy<Value = Fields> {
    vec((1u8..=255, cstr()), 0..6).prop_map(|list| {
        let mut f = Fields::default();
        list.into_iter().for_each(|(c, v)| f.push(c, v));
        f
    })
}

fn copy_response() -> impl Strategy<Value = CopyResponse> {
    (any::<i8>(), vec(any::<i16>(), 0..6)).prop_map(|(format, column_formats)| CopyResponse {
        format,
        column_formats,
    })
}

/// A DataRow of arbitrary columns.
pub(crate) fn data_row() -> impl Strategy<Value = DataRow> {
    vec(value(), 0..8).prop_map(|cols| {
        DataRow::from_values(cols.iter().map(|c| c.as_deref())).expect("small row encodes")
    })
}

fn field_description() -> impl Strategy<Value = FieldDescription> {
    (
        cstr(),
        any::<u32>(),
        any::<i16>(),
        any::<u32>(),
        any::<i16>(),
        any::<i32>(),
        any::<i16>(),
    )
        .prop_map(
            |(name, table_oid, column, type_oid, type_size, type_modifier, format)| {
                FieldDescription {
                    name,
                    table_oid,
                    column,
                    type_oid,
                    type_size,
                    type_modifier,
                    format,
                }
            },
        )
}

fn status() -> impl Strategy<Value = TransactionStatus> {
    prop_oneof![
        Just(TransactionStatus::Idle),
        Just(TransactionStatus::InTransaction),
        Just(TransactionStatus::Failed),
    ]
}

/// Any backend message.
pub(crate) fn backend() -> impl Strategy<Value = BackendMessage> {
    prop_oneof![
        authentication().prop_map(BackendMessage::Authentication),
        (any::<u32>(), vec(any::<u8>(), 4..=256)).prop_map(|(pid, key)| {
            BackendMessage::BackendKeyData {
                pid,
                key: key.into(),
            }
        }),
        Just(BackendMessage::BindComplete),
        Just(BackendMessage::CloseComplete),
        cstr().prop_map(BackendMessage::CommandComplete),
        bytes().prop_map(BackendMessage::CopyData),
        Just(BackendMessage::CopyDone),
        copy_response().prop_map(BackendMessage::CopyInResponse),
        copy_response().prop_map(BackendMessage::CopyOutResponse),
        copy_response().prop_map(BackendMessage::CopyBothResponse),
        data_row().prop_map(BackendMessage::DataRow),
        Just(BackendMessage::EmptyQueryResponse),
        fields().prop_map(BackendMessage::ErrorResponse),
        value().prop_map(BackendMessage::FunctionCallResponse),
        (any::<u32>(), vec(cstr(), 0..4)).prop_map(|(newest_minor, unsupported)| {
            BackendMessage::NegotiateProtocolVersion {
                newest_minor,
                unsupported,
            }
        }),
        Just(BackendMessage::NoData),
        fields().prop_map(BackendMessage::NoticeResponse),
        (any::<u32>(), cstr(), cstr()).prop_map(|(pid, channel, payload)| {
            BackendMessage::NotificationResponse {
                pid,
                channel,
                payload,
            }
        }),
        vec(any::<u32>(), 0..8).prop_map(BackendMessage::ParameterDescription),
        (cstr(), cstr()).prop_map(|(name, value)| BackendMessage::ParameterStatus { name, value }),
        Just(BackendMessage::ParseComplete),
        Just(BackendMessage::PortalSuspended),
        status().prop_map(BackendMessage::ReadyForQuery),
        vec(field_description(), 0..5).prop_map(BackendMessage::RowDescription),
    ]
}
