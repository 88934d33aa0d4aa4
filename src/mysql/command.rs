//! Client commands (Text Protocol, Prepared Statements, Utility Commands). Commands a proxy
//! must understand are typed; all others stay opaque.

use bytes::{BufMut, Bytes, BytesMut};

use super::binary::{is_null, null_bitmap_len, put_null_bitmap, Value, EXECUTE_NULL_OFFSET};
use super::cursor::Cursor;
use super::flags::CapabilityFlags;
use super::lenenc;
use crate::wire::Error;

/// Command codes.
#[allow(missing_docs)]
pub mod code {
    pub const COM_SLEEP: u8 = 0x00;
    pub const COM_QUIT: u8 = 0x01;
    pub const COM_INIT_DB: u8 = 0x02;
    pub const COM_QUERY: u8 = 0x03;
    pub const COM_FIELD_LIST: u8 = 0x04;
    pub const COM_STATISTICS: u8 = 0x09;
    pub const COM_PROCESS_KILL: u8 = 0x0C;
    pub const COM_DEBUG: u8 = 0x0D;
    pub const COM_PING: u8 = 0x0E;
    pub const COM_CHANGE_USER: u8 = 0x11;
    pub const COM_BINLOG_DUMP: u8 = 0x12;
    pub const COM_STMT_PREPARE: u8 = 0x16;
    pub const COM_STMT_EXECUTE: u8 = 0x17;
    pub const COM_STMT_SEND_LONG_DATA: u8 = 0x18;
    pub const COM_STMT_CLOSE: u8 = 0x19;
    pub const COM_STMT_RESET: u8 = 0x1A;
    pub const COM_SET_OPTION: u8 = 0x1B;
    pub const COM_STMT_FETCH: u8 = 0x1C;
    pub const COM_RESET_CONNECTION: u8 = 0x1F;
    /// MariaDB bulk execute.
    pub const COM_STMT_BULK_EXECUTE: u8 = 0xFA;
}

use code::*;

/// COM_STMT_EXECUTE flag: no cursor.
pub const CURSOR_TYPE_NO_CURSOR: u8 = 0x00;
/// COM_STMT_EXECUTE flag: open a read-only cursor (rows come with COM_STMT_FETCH).
pub const CURSOR_TYPE_READ_ONLY: u8 = 0x01;
/// COM_STMT_EXECUTE flag: cursor for update.
pub const CURSOR_TYPE_FOR_UPDATE: u8 = 0x02;
/// COM_STMT_EXECUTE flag: scrollable cursor.
pub const CURSOR_TYPE_SCROLLABLE: u8 = 0x04;
/// COM_STMT_EXECUTE flag: a parameter count follows (with `CLIENT_QUERY_ATTRIBUTES`).
pub const PARAMETER_COUNT_AVAILABLE: u8 = 0x08;
/// MariaDB: COM_STMT_EXECUTE of the statement prepared last in the same batch.
pub const MARIADB_LAST_STATEMENT_ID: u32 = 0xFFFF_FFFF;
/// Parameter type flag byte: the integer is unsigned.
pub const PARAM_UNSIGNED: u8 = 0x80;

/// A bound parameter (COM_STMT_EXECUTE) or query attribute (COM_QUERY).
#[derive(Debug, Clone, PartialEq)]
pub struct BoundParam {
    /// Wire type.
    pub param_type: u8,
    /// Unsigned flag.
    pub unsigned: bool,
    /// Name (query attributes; empty for positional parameters).
    pub name: Bytes,
    /// Value ([`Value::Null`] for NULL).
    pub value: Value,
}

/// COM_QUERY.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Query attributes (with `CLIENT_QUERY_ATTRIBUTES`).
    pub attributes: Vec<BoundParam>,
    /// The SQL text.
    pub sql: Bytes,
}

/// COM_STMT_EXECUTE; parameters stay raw until [`StmtExecute::params`] decodes them with the
/// statement's parameter count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StmtExecute {
    /// Statement id.
    pub statement_id: u32,
    /// Cursor type flags.
    pub flags: u8,
    /// Iteration count (always 1).
    pub iteration_count: u32,
    /// Raw parameter block.
    pub params: Bytes,
}

/// Decoded COM_STMT_EXECUTE parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecuteParams {
    /// The types were sent (new_params_bind_flag = 1).
    pub types_sent: bool,
    /// Parameters with their types and values.
    pub params: Vec<BoundParam>,
}

/// COM_CHANGE_USER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeUser {
    /// User name.
    pub user: Bytes,
    /// Auth response.
    pub auth_response: Bytes,
    /// Schema.
    pub database: Bytes,
    /// Collation id (when anything follows the schema).
    pub character_set: Option<u16>,
    /// Auth plugin (with `CLIENT_PLUGIN_AUTH`).
    pub auth_plugin_name: Option<Bytes>,
    /// Connection attributes (with `CLIENT_CONNECT_ATTRS`).
    pub connect_attrs: Vec<(Bytes, Bytes)>,
}

/// A client command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// COM_QUIT (no response).
    Quit,
    /// COM_INIT_DB.
    InitDb(Bytes),
    /// COM_QUERY.
    Query(Query),
    /// COM_FIELD_LIST.
    FieldList {
        /// Table.
        table: Bytes,
        /// Column wildcard.
        wildcard: Bytes,
    },
    /// COM_STATISTICS (answered by one string packet).
    Statistics,
    /// COM_PROCESS_KILL.
    ProcessKill(u32),
    /// COM_PING.
    Ping,
    /// COM_CHANGE_USER.
    ChangeUser(ChangeUser),
    /// COM_STMT_PREPARE.
    StmtPrepare(Bytes),
    /// COM_STMT_EXECUTE.
    StmtExecute(StmtExecute),
    /// COM_STMT_SEND_LONG_DATA (no response).
    StmtSendLongData {
        /// Statement id.
        statement_id: u32,
        /// Parameter index.
        param_id: u16,
        /// Data chunk.
        data: Bytes,
    },
    /// COM_STMT_CLOSE (no response).
    StmtClose(u32),
    /// COM_STMT_RESET.
    StmtReset(u32),
    /// COM_SET_OPTION (0 = multi-statements on, 1 = off).
    SetOption(u16),
    /// COM_STMT_FETCH.
    StmtFetch {
        /// Statement id.
        statement_id: u32,
        /// Rows to fetch.
        num_rows: u32,
    },
    /// COM_RESET_CONNECTION.
    ResetConnection,
    /// Any other command, kept opaque.
    Other {
        /// Command byte.
        code: u8,
        /// Payload after the command byte.
        payload: Bytes,
    },
}

fn read_params(
    c: &mut Cursor<'_>,
    count: usize,
    with_names: bool,
    previous: Option<&[(u8, bool)]>,
) -> Result<ExecuteParams, Error> {
    let bitmap = c.bytes(null_bitmap_len(count, EXECUTE_NULL_OFFSET))?;
    let types_sent = match c.u8()? {
        0 => false,
        1 => true,
        _ => return Err(Error::InvalidValue("new_params_bind_flag")),
    };
    let mut params = Vec::with_capacity(count.min(c.remaining()));
    for i in 0..count {
        let (param_type, unsigned, name) = if types_sent {
            let t = c.u8()?;
            let f = c.u8()?;
            let name = if with_names {
                c.lenenc_bytes()?
            } else {
                Bytes::new()
            };
            (t, f & PARAM_UNSIGNED != 0, name)
        } else {
            let &(t, u) = previous
                .and_then(|p| p.get(i))
                .ok_or(Error::InvalidValue("execute parameters without types"))?;
            (t, u, Bytes::new())
        };
        params.push(BoundParam {
            param_type,
            unsigned,
            name,
            value: Value::Null,
        });
    }
    for (i, p) in params.iter_mut().enumerate() {
        if !is_null(&bitmap, i, EXECUTE_NULL_OFFSET) {
            p.value = Value::read(c, p.param_type)?;
        }
    }
    Ok(ExecuteParams { types_sent, params })
}

fn put_params(out: &mut BytesMut, params: &[BoundParam], with_names: bool, send_types: bool) {
    let nulls: Vec<bool> = params.iter().map(|p| p.value == Value::Null).collect();
    put_null_bitmap(out, &nulls, EXECUTE_NULL_OFFSET);
    out.put_u8(u8::from(send_types));
    if send_types {
        for p in params {
            out.put_u8(p.param_type);
            out.put_u8(if p.unsigned { PARAM_UNSIGNED } else { 0 });
            if with_names {
                lenenc::put_bytes(out, &p.name);
            }
        }
    }
    for p in params {
        p.value.encode(out);
    }
}

fn read_attrs(c: &mut Cursor<'_>) -> Result<Vec<(Bytes, Bytes)>, Error> {
    let mut attrs = Vec::new();
    if !c.is_empty() {
        let block = c.lenenc_bytes()?;
        let mut a = Cursor::new(&block, "connection attributes");
        while !a.is_empty() {
            attrs.push((a.lenenc_bytes()?, a.lenenc_bytes()?));
        }
    }
    Ok(attrs)
}

impl StmtExecute {
    /// Decodes the parameters of a statement with `num_params` parameters. `previous` gives
    /// the types bound by an earlier execute, used when this one does not resend them.
    pub fn params(
        &self,
        num_params: u16,
        caps: CapabilityFlags,
        previous: Option<&[(u8, bool)]>,
    ) -> Result<ExecuteParams, Error> {
        let mut c = Cursor::new(&self.params, "COM_STMT_EXECUTE");
        let attrs = caps.contains(CapabilityFlags::CLIENT_QUERY_ATTRIBUTES);
        let mut count = usize::from(num_params);
        if num_params > 0 || (attrs && self.flags & PARAMETER_COUNT_AVAILABLE != 0) {
            if attrs {
                // A count, not a length: NULL parameters take no bytes, so it may exceed
                // what follows. A statement has at most 65,535 parameters.
                count = usize::try_from(c.lenenc()?)
                    .ok()
                    .filter(|&n| n <= usize::from(u16::MAX))
                    .ok_or(Error::InvalidValue("parameter_count"))?;
            }
            if count > 0 {
                let p = read_params(&mut c, count, attrs, previous)?;
                c.finish()?;
                return Ok(p);
            }
        }
        c.finish()?;
        Ok(ExecuteParams {
            types_sent: false,
            params: Vec::new(),
        })
    }

    /// Builds a COM_STMT_EXECUTE for a statement with `params.len()` parameters (with
    /// `CLIENT_QUERY_ATTRIBUTES` the parameter count is always sent).
    pub fn new(
        statement_id: u32,
        flags: u8,
        params: &[BoundParam],
        caps: CapabilityFlags,
        send_types: bool,
    ) -> Self {
        let attrs = caps.contains(CapabilityFlags::CLIENT_QUERY_ATTRIBUTES);
        let mut out = BytesMut::new();
        let mut flags = flags;
        if attrs {
            flags |= PARAMETER_COUNT_AVAILABLE;
            lenenc::put_int(&mut out, params.len() as u64);
        }
        if !params.is_empty() {
            put_params(&mut out, params, attrs, send_types);
        }
        StmtExecute {
            statement_id,
            flags,
            iteration_count: 1,
            params: out.freeze(),
        }
    }
}

impl Command {
    /// The command byte.
    pub fn code(&self) -> u8 {
        match self {
            Command::Quit => COM_QUIT,
            Command::InitDb(_) => COM_INIT_DB,
            Command::Query(_) => COM_QUERY,
            Command::FieldList { .. } => COM_FIELD_LIST,
            Command::Statistics => COM_STATISTICS,
            Command::ProcessKill(_) => COM_PROCESS_KILL,
            Command::Ping => COM_PING,
            Command::ChangeUser(_) => COM_CHANGE_USER,
            Command::StmtPrepare(_) => COM_STMT_PREPARE,
            Command::StmtExecute(_) => COM_STMT_EXECUTE,
            Command::StmtSendLongData { .. } => COM_STMT_SEND_LONG_DATA,
            Command::StmtClose(_) => COM_STMT_CLOSE,
            Command::StmtReset(_) => COM_STMT_RESET,
            Command::SetOption(_) => COM_SET_OPTION,
            Command::StmtFetch { .. } => COM_STMT_FETCH,
            Command::ResetConnection => COM_RESET_CONNECTION,
            Command::Other { code, .. } => *code,
        }
    }

    /// Parses a command payload negotiated with `caps`.
    pub fn parse(payload: &Bytes, caps: CapabilityFlags) -> Result<Self, Error> {
        let mut c = Cursor::new(payload, "command");
        let code = c.u8()?;
        let cmd = match code {
            COM_QUIT => Command::Quit,
            COM_PING => Command::Ping,
            COM_STATISTICS => Command::Statistics,
            COM_RESET_CONNECTION => Command::ResetConnection,
            COM_INIT_DB => Command::InitDb(c.rest()),
            COM_STMT_PREPARE => Command::StmtPrepare(c.rest()),
            COM_QUERY => {
                let mut attributes = Vec::new();
                if caps.contains(CapabilityFlags::CLIENT_QUERY_ATTRIBUTES) {
                    let count = c.lenenc_len()?;
                    let _param_set_count = c.lenenc()?;
                    if count > 0 {
                        attributes = read_params(&mut c, count, true, None)?.params;
                    }
                }
                Command::Query(Query {
                    attributes,
                    sql: c.rest(),
                })
            }
            COM_FIELD_LIST => Command::FieldList {
                table: c.null_str()?,
                wildcard: c.rest(),
            },
            COM_PROCESS_KILL => Command::ProcessKill(c.u32()?),
            COM_STMT_EXECUTE => Command::StmtExecute(StmtExecute {
                statement_id: c.u32()?,
                flags: c.u8()?,
                iteration_count: c.u32()?,
                params: c.rest(),
            }),
            COM_STMT_SEND_LONG_DATA => Command::StmtSendLongData {
                statement_id: c.u32()?,
                param_id: c.u16()?,
                data: c.rest(),
            },
            COM_STMT_CLOSE => Command::StmtClose(c.u32()?),
            COM_STMT_RESET => Command::StmtReset(c.u32()?),
            COM_SET_OPTION => Command::SetOption(c.u16()?),
            COM_STMT_FETCH => Command::StmtFetch {
                statement_id: c.u32()?,
                num_rows: c.u32()?,
            },
            COM_CHANGE_USER => {
                let user = c.null_str()?;
                let auth_response = if caps.contains(CapabilityFlags::CLIENT_SECURE_CONNECTION) {
                    let n = usize::from(c.u8()?);
                    c.bytes(n)?
                } else {
                    c.null_str()?
                };
                let database = c.null_str_or_rest();
                let mut cu = ChangeUser {
                    user,
                    auth_response,
                    database,
                    character_set: None,
                    auth_plugin_name: None,
                    connect_attrs: Vec::new(),
                };
                if !c.is_empty() {
                    cu.character_set = Some(c.u16()?);
                    if caps.contains(CapabilityFlags::CLIENT_PLUGIN_AUTH) && !c.is_empty() {
                        cu.auth_plugin_name = Some(c.null_str_or_rest());
                    }
                    // Clients send attributes here even when they did not negotiate
                    // CLIENT_CONNECT_ATTRS (mysql_common, libmariadb); servers read them then.
                    if caps.contains(CapabilityFlags::CLIENT_CONNECT_ATTRS) || !c.is_empty() {
                        cu.connect_attrs = read_attrs(&mut c)?;
                    }
                }
                Command::ChangeUser(cu)
            }
            _ => Command::Other {
                code,
                payload: c.rest(),
            },
        };
        c.finish()?;
        Ok(cmd)
    }

    /// Appends the payload for a server negotiated with `caps`.
    pub fn encode(&self, out: &mut BytesMut, caps: CapabilityFlags) -> Result<(), Error> {
        out.put_u8(self.code());
        match self {
            Command::Quit | Command::Ping | Command::Statistics | Command::ResetConnection => {}
            Command::InitDb(s) | Command::StmtPrepare(s) => out.put_slice(s),
            Command::Query(q) => {
                if caps.contains(CapabilityFlags::CLIENT_QUERY_ATTRIBUTES) {
                    lenenc::put_int(out, q.attributes.len() as u64);
                    lenenc::put_int(out, 1);
                    if !q.attributes.is_empty() {
                        put_params(out, &q.attributes, true, true);
                    }
                } else if !q.attributes.is_empty() {
                    return Err(Error::InvalidValue(
                        "query attributes without CLIENT_QUERY_ATTRIBUTES",
                    ));
                }
                out.put_slice(&q.sql);
            }
            Command::FieldList { table, wildcard } => {
                lenenc::put_null_str(out, table, "COM_FIELD_LIST table")?;
                out.put_slice(wildcard);
            }
            Command::ProcessKill(id) | Command::StmtClose(id) | Command::StmtReset(id) => {
                out.put_u32_le(*id)
            }
            Command::StmtExecute(e) => {
                out.put_u32_le(e.statement_id);
                out.put_u8(e.flags);
                out.put_u32_le(e.iteration_count);
                out.put_slice(&e.params);
            }
            Command::StmtSendLongData {
                statement_id,
                param_id,
                data,
            } => {
                out.put_u32_le(*statement_id);
                out.put_u16_le(*param_id);
                out.put_slice(data);
            }
            Command::SetOption(o) => out.put_u16_le(*o),
            Command::StmtFetch {
                statement_id,
                num_rows,
            } => {
                out.put_u32_le(*statement_id);
                out.put_u32_le(*num_rows);
            }
            Command::ChangeUser(cu) => {
                lenenc::put_null_str(out, &cu.user, "user name")?;
                if caps.contains(CapabilityFlags::CLIENT_SECURE_CONNECTION) {
                    out.put_u8(lenenc::narrow(cu.auth_response.len(), "auth response")?);
                    out.put_slice(&cu.auth_response);
                } else {
                    lenenc::put_null_str(out, &cu.auth_response, "auth response")?;
                }
                lenenc::put_null_str(out, &cu.database, "database")?;
                let plugin = caps.contains(CapabilityFlags::CLIENT_PLUGIN_AUTH);
                let attrs = caps.contains(CapabilityFlags::CLIENT_CONNECT_ATTRS);
                match cu.character_set {
                    Some(cs) => {
                        out.put_u16_le(cs);
                        match (&cu.auth_plugin_name, plugin) {
                            (Some(p), true) => lenenc::put_null_str(out, p, "auth plugin name")?,
                            (None, _) if !attrs || cu.connect_attrs.is_empty() => {}
                            _ => {
                                return Err(Error::InvalidValue(
                                    "COM_CHANGE_USER plugin vs capabilities",
                                ))
                            }
                        }
                        if !cu.connect_attrs.is_empty() {
                            if !attrs {
                                return Err(Error::InvalidValue(
                                    "connection attributes without CLIENT_CONNECT_ATTRS",
                                ));
                            }
                            let mut block = BytesMut::new();
                            for (k, v) in &cu.connect_attrs {
                                lenenc::put_bytes(&mut block, k);
                                lenenc::put_bytes(&mut block, v);
                            }
                            lenenc::put_bytes(out, &block);
                        }
                    }
                    None if cu.auth_plugin_name.is_none() && cu.connect_attrs.is_empty() => {}
                    None => {
                        return Err(Error::InvalidValue(
                            "COM_CHANGE_USER fields without a charset",
                        ))
                    }
                }
            }
            Command::Other { payload, .. } => out.put_slice(payload),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::binary::tests::any_value;
    use proptest::prelude::*;

    #[test]
    fn spec_example_com_query() {
        // COM_QUERY example: "select @@version_comment limit 1".
        let p = Bytes::from_static(b"\x03select @@version_comment limit 1");
        let Command::Query(q) = Command::parse(&p, CapabilityFlags::CLIENT_PROTOCOL_41).unwrap()
        else {
            panic!()
        };
        assert_eq!(&q.sql[..], b"select @@version_comment limit 1");
    }

    #[test]
    fn spec_example_stmt_execute() {
        // COM_STMT_EXECUTE example: statement 1, no cursor, one string param "foo".
        let p = Bytes::from_static(
            b"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00\x00\x01\x0f\x00\x03\x66\x6f\x6f",
        );
        let Command::StmtExecute(e) =
            Command::parse(&p, CapabilityFlags::CLIENT_PROTOCOL_41).unwrap()
        else {
            panic!()
        };
        let params = e
            .params(1, CapabilityFlags::CLIENT_PROTOCOL_41, None)
            .unwrap();
        assert_eq!(
            params.params[0].value,
            Value::Bytes(Bytes::from_static(b"foo"))
        );
        assert!(e
            .params(1, CapabilityFlags::CLIENT_PROTOCOL_41, Some(&[]))
            .is_ok());
    }

    fn b(max: usize) -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
    }

    fn nz(max: usize) -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(1u8.., 0..max).prop_map(Bytes::from)
    }

    fn param(named: bool) -> impl Strategy<Value = BoundParam> {
        (any_value(), any::<bool>(), nz(10)).prop_map(move |(value, unsigned, name)| BoundParam {
            param_type: value.column_type(),
            unsigned,
            name: if named { name } else { Bytes::new() },
            value,
        })
    }

    fn any_command() -> impl Strategy<Value = Command> {
        prop_oneof![
            Just(Command::Quit),
            Just(Command::Ping),
            Just(Command::Statistics),
            Just(Command::ResetConnection),
            b(50).prop_map(Command::InitDb),
            b(50).prop_map(Command::StmtPrepare),
            (proptest::collection::vec(param(true), 0..4), b(50))
                .prop_map(|(attributes, sql)| Command::Query(Query { attributes, sql })),
            (nz(20), b(10)).prop_map(|(table, wildcard)| Command::FieldList { table, wildcard }),
            any::<u32>().prop_map(Command::ProcessKill),
            any::<u32>().prop_map(Command::StmtClose),
            any::<u32>().prop_map(Command::StmtReset),
            any::<u16>().prop_map(Command::SetOption),
            (any::<u32>(), any::<u32>()).prop_map(|(statement_id, num_rows)| Command::StmtFetch {
                statement_id,
                num_rows
            }),
            (any::<u32>(), any::<u16>(), b(50)).prop_map(|(statement_id, param_id, data)| {
                Command::StmtSendLongData {
                    statement_id,
                    param_id,
                    data,
                }
            }),
            (
                nz(10),
                b(30),
                nz(10),
                any::<u16>(),
                nz(20),
                proptest::collection::vec((b(5), b(5)), 0..3)
            )
                .prop_map(
                    |(user, auth_response, database, cs, plugin, connect_attrs)| {
                        Command::ChangeUser(ChangeUser {
                            user,
                            auth_response,
                            database,
                            character_set: Some(cs),
                            auth_plugin_name: Some(plugin),
                            connect_attrs,
                        })
                    }
                ),
            (0x20u8..0xFA, b(30)).prop_map(|(code, payload)| Command::Other { code, payload }),
        ]
    }

    /// Found by `execute_round_trip`: with CLIENT_QUERY_ATTRIBUTES, all-NULL parameters whose
    /// types are not resent take fewer bytes than their count, which was read as a length.
    #[test]
    fn null_parameters_without_types_outnumber_their_bytes() {
        let caps = CapabilityFlags::CLIENT_QUERY_ATTRIBUTES;
        let null = BoundParam {
            param_type: 6,
            unsigned: false,
            name: Bytes::new(),
            value: crate::mysql::binary::Value::Null,
        };
        let params = vec![null.clone(), null.clone(), null];
        let e = StmtExecute::new(0, 0, &params, caps, false);
        assert_eq!(&e.params[..], b"\x03\x07\x00");
        let previous = vec![(6, false); 3];
        let decoded = e.params(3, caps, Some(&previous)).expect("decodes");
        assert_eq!(decoded.params, params);
    }

    proptest! {
        #[test]
        fn command_round_trip(cmd in any_command()) {
            let caps = CapabilityFlags::CLIENT_PROTOCOL_41 | CapabilityFlags::CLIENT_SECURE_CONNECTION
                | CapabilityFlags::CLIENT_PLUGIN_AUTH | CapabilityFlags::CLIENT_CONNECT_ATTRS
                | CapabilityFlags::CLIENT_QUERY_ATTRIBUTES;
            let mut out = BytesMut::new();
            cmd.encode(&mut out, caps).unwrap();
            prop_assert_eq!(Command::parse(&out.freeze(), caps).unwrap(), cmd);
        }

        #[test]
        fn execute_round_trip(id in any::<u32>(), flags in 0u8..8, attrs in any::<bool>(), types in any::<bool>(),
                              params in proptest::collection::vec(param(false), 0..6)) {
            let caps = if attrs { CapabilityFlags::CLIENT_QUERY_ATTRIBUTES } else { CapabilityFlags::empty() };
            let e = StmtExecute::new(id, flags, &params, caps, types);
            let cmd = Command::StmtExecute(e);
            let mut out = BytesMut::new();
            cmd.encode(&mut out, caps).unwrap();
            let Command::StmtExecute(back) = Command::parse(&out.freeze(), caps).unwrap() else { panic!() };
            let previous: Vec<(u8, bool)> = params.iter().map(|p| (p.param_type, p.unsigned)).collect();
            let decoded = back.params(params.len() as u16, caps, Some(&previous)).unwrap();
            prop_assert_eq!(decoded.params, params);
        }
    }
}
