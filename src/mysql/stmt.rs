//! COM_STMT_PREPARE_OK and the column definitions (Column Definition 41) that follow it and
//! every result set's column count.

use bytes::{BufMut, Bytes, BytesMut};

use super::cursor::Cursor;
use super::flags::CapabilityFlags;
use super::lenenc;
use crate::wire::Error;

/// Header byte of COM_STMT_PREPARE_OK.
pub const PREPARE_OK_HEADER: u8 = 0x00;
/// Length of the fixed-length fields of a column definition.
pub const COLUMN_FIXED_LEN: u8 = 0x0C;

/// The first packet of a successful COM_STMT_PREPARE response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrepareOk {
    /// Statement id for COM_STMT_EXECUTE etc.
    pub statement_id: u32,
    /// Number of result columns (column definitions follow the parameters).
    pub num_columns: u16,
    /// Number of parameters (their definitions follow).
    pub num_params: u16,
    /// Warning count.
    pub warnings: u16,
    /// With `CLIENT_OPTIONAL_RESULTSET_METADATA`: whether metadata follows.
    pub metadata_follows: Option<u8>,
}

impl PrepareOk {
    /// Parses the packet.
    pub fn parse(payload: &Bytes, caps: CapabilityFlags) -> Result<Self, Error> {
        let mut c = Cursor::new(payload, "COM_STMT_PREPARE_OK");
        if c.u8()? != PREPARE_OK_HEADER {
            return Err(Error::Unexpected("non-PREPARE_OK packet"));
        }
        let statement_id = c.u32()?;
        let num_columns = c.u16()?;
        let num_params = c.u16()?;
        c.skip(1)?;
        // The warning count is absent in a 9-byte packet (older servers).
        let warnings = if c.is_empty() { 0 } else { c.u16()? };
        let metadata_follows = if caps.contains(CapabilityFlags::CLIENT_OPTIONAL_RESULTSET_METADATA)
            && !c.is_empty()
        {
            Some(c.u8()?)
        } else {
            None
        };
        c.finish()?;
        Ok(PrepareOk {
            statement_id,
            num_columns,
            num_params,
            warnings,
            metadata_follows,
        })
    }

    /// Appends the payload.
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u8(PREPARE_OK_HEADER);
        out.put_u32_le(self.statement_id);
        out.put_u16_le(self.num_columns);
        out.put_u16_le(self.num_params);
        out.put_u8(0);
        out.put_u16_le(self.warnings);
        if let Some(m) = self.metadata_follows {
            out.put_u8(m);
        }
    }
}

/// A column (or parameter) definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDefinition {
    /// Catalog (always "def").
    pub catalog: Bytes,
    /// Schema.
    pub schema: Bytes,
    /// Virtual table name.
    pub table: Bytes,
    /// Physical table name.
    pub org_table: Bytes,
    /// Virtual column name.
    pub name: Bytes,
    /// Physical column name.
    pub org_name: Bytes,
    /// MariaDB extended type information (with `MARIADB_CLIENT_EXTENDED_TYPE_INFO`).
    pub extended_type_info: Option<Bytes>,
    /// Collation id.
    pub character_set: u16,
    /// Maximum column length.
    pub column_length: u32,
    /// Column type (see [`super::binary::column_type`]).
    pub column_type: u8,
    /// Column flags (UNSIGNED_FLAG = 32, ...).
    pub flags: u16,
    /// Decimals.
    pub decimals: u8,
}

/// Column flag: the integer is unsigned.
pub const UNSIGNED_FLAG: u16 = 32;

impl ColumnDefinition {
    /// Parses a Column Definition 41 packet.
    pub fn parse(payload: &Bytes, caps: CapabilityFlags) -> Result<Self, Error> {
        let mut c = Cursor::new(payload, "column definition");
        let catalog = c.lenenc_bytes()?;
        let schema = c.lenenc_bytes()?;
        let table = c.lenenc_bytes()?;
        let org_table = c.lenenc_bytes()?;
        let name = c.lenenc_bytes()?;
        let org_name = c.lenenc_bytes()?;
        let extended_type_info =
            if caps.contains(CapabilityFlags::MARIADB_CLIENT_EXTENDED_TYPE_INFO) {
                Some(c.lenenc_bytes()?)
            } else {
                None
            };
        if c.lenenc()? != u64::from(COLUMN_FIXED_LEN) {
            return Err(Error::InvalidValue("column definition fixed length"));
        }
        let character_set = c.u16()?;
        let column_length = c.u32()?;
        let column_type = c.u8()?;
        let flags = c.u16()?;
        let decimals = c.u8()?;
        c.skip(2)?;
        // COM_FIELD_LIST responses append default values; they are ignored.
        Ok(ColumnDefinition {
            catalog,
            schema,
            table,
            org_table,
            name,
            org_name,
            extended_type_info,
            character_set,
            column_length,
            column_type,
            flags,
            decimals,
        })
    }

    /// Appends the payload; `extended_type_info` must be present exactly when
    /// `MARIADB_CLIENT_EXTENDED_TYPE_INFO` is in `caps`.
    pub fn encode(&self, out: &mut BytesMut, caps: CapabilityFlags) -> Result<(), Error> {
        for s in [
            &self.catalog,
            &self.schema,
            &self.table,
            &self.org_table,
            &self.name,
            &self.org_name,
        ] {
            lenenc::put_bytes(out, s);
        }
        match (
            &self.extended_type_info,
            caps.contains(CapabilityFlags::MARIADB_CLIENT_EXTENDED_TYPE_INFO),
        ) {
            (Some(e), true) => lenenc::put_bytes(out, e),
            (None, false) => {}
            _ => return Err(Error::InvalidValue("extended type info vs capabilities")),
        }
        out.put_u8(COLUMN_FIXED_LEN);
        out.put_u16_le(self.character_set);
        out.put_u32_le(self.column_length);
        out.put_u8(self.column_type);
        out.put_u16_le(self.flags);
        out.put_u8(self.decimals);
        out.put_u16_le(0);
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn column(name: &'static [u8], column_type: u8) -> ColumnDefinition {
        ColumnDefinition {
            catalog: Bytes::from_static(b"def"),
            schema: Bytes::new(),
            table: Bytes::new(),
            org_table: Bytes::new(),
            name: Bytes::from_static(name),
            org_name: Bytes::new(),
            extended_type_info: None,
            character_set: 63,
            column_length: 11,
            column_type,
            flags: 0,
            decimals: 0,
        }
    }

    #[test]
    fn spec_example_column_definition() {
        // Column Definition example: `SELECT @@version_comment` (VAR_STRING, utf8 collation 8).
        let p = Bytes::from_static(
            b"\x03def\x00\x00\x00\x11@@version_comment\x00\x0c\x08\x00\x1c\x00\x00\x00\xfd\x00\x00\x1f\x00\x00",
        );
        let c = ColumnDefinition::parse(&p, CapabilityFlags::CLIENT_PROTOCOL_41).unwrap();
        assert_eq!(&c.name[..], b"@@version_comment");
        assert_eq!(c.column_type, 0xFD);
        assert_eq!(c.column_length, 28);
        assert_eq!(c.decimals, 0x1F);
        let mut out = BytesMut::new();
        c.encode(&mut out, CapabilityFlags::CLIENT_PROTOCOL_41)
            .unwrap();
        assert_eq!(&out[..], &p[..]);
    }

    #[test]
    fn spec_example_prepare_ok() {
        // COM_STMT_PREPARE_OK example: statement 1, 1 column, 2 params.
        let p = Bytes::from_static(b"\x00\x01\x00\x00\x00\x01\x00\x02\x00\x00\x00\x00");
        let ok = PrepareOk::parse(&p, CapabilityFlags::CLIENT_PROTOCOL_41).unwrap();
        assert_eq!((ok.statement_id, ok.num_columns, ok.num_params), (1, 1, 2));
    }

    fn b(max: usize) -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
    }

    proptest! {
        #[test]
        fn column_round_trip(s in proptest::collection::vec(b(30), 6), ext in proptest::option::of(b(10)),
                             cs in any::<u16>(), len in any::<u32>(), ty in any::<u8>(), flags in any::<u16>(), dec in any::<u8>()) {
            let caps = if ext.is_some() { CapabilityFlags::MARIADB_CLIENT_EXTENDED_TYPE_INFO } else { CapabilityFlags::empty() };
            let c = ColumnDefinition {
                catalog: s[0].clone(), schema: s[1].clone(), table: s[2].clone(), org_table: s[3].clone(),
                name: s[4].clone(), org_name: s[5].clone(), extended_type_info: ext, character_set: cs,
                column_length: len, column_type: ty, flags, decimals: dec,
            };
            let mut out = BytesMut::new();
            c.encode(&mut out, caps).unwrap();
            prop_assert_eq!(ColumnDefinition::parse(&out.freeze(), caps).unwrap(), c);
        }

        #[test]
        fn prepare_ok_round_trip(id in any::<u32>(), cols in any::<u16>(), params in any::<u16>(), w in any::<u16>(), m in proptest::option::of(any::<u8>())) {
            let caps = if m.is_some() { CapabilityFlags::CLIENT_OPTIONAL_RESULTSET_METADATA } else { CapabilityFlags::empty() };
            let ok = PrepareOk { statement_id: id, num_columns: cols, num_params: params, warnings: w, metadata_follows: m };
            let mut out = BytesMut::new();
            ok.encode(&mut out);
            prop_assert_eq!(PrepareOk::parse(&out.freeze(), caps).unwrap(), ok);
        }
    }
}
