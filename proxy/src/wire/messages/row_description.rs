//! RowDescription: the columns of a result.

use bytes::{BufMut, BytesMut};

use super::body::BodyReader;
use super::{DecodeError, Message};
use crate::wire::backend;

/// The fixed part of a column after its name: table OID (4), column number (2), type OID (4),
/// type length (2), type modifier (4), format code (2).
const FIELD_FIXED_LEN: usize = 18;

/// A RowDescription (`T`): the result columns of a query, or of a described statement or portal.
/// Validated when decoded; its columns are read again from the bytes by [`RowDescription::fields`]
/// (nothing is allocated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowDescription<'a> {
    count: u16,
    /// The fields, as sent.
    fields: &'a [u8],
}

/// One column of a RowDescription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowField<'a> {
    /// The column's name.
    pub name: &'a [u8],
    /// The table it comes from (0: none).
    pub table_oid: u32,
    /// Its column number in that table (0: none).
    pub column: i16,
    /// Its type's OID.
    pub type_oid: u32,
    /// The type's size (negative: variable).
    pub type_len: i16,
    /// The type modifier (-1: none).
    pub typmod: i32,
    /// The format code: 0 text, 1 binary.
    pub format: i16,
}

impl<'a> RowDescription<'a> {
    /// The number of columns.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether there are no columns.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The columns, in order.
    pub fn fields(&self) -> impl Iterator<Item = RowField<'a>> + 'a {
        let mut reader = BodyReader::new(self.fields, <Self as Message>::NAME);
        // Validated by `decode`: every field reads.
        (0..self.count).map_while(move |_| read_field(&mut reader).ok())
    }

    /// A RowDescription of `fields` (encoded into `out`, which the returned value borrows).
    pub fn encode_fields(fields: &[RowField<'_>], out: &'a mut Vec<u8>) -> Self {
        out.clear();
        for field in fields {
            out.extend_from_slice(field.name);
            out.push(0);
            out.extend_from_slice(&field.table_oid.to_be_bytes());
            out.extend_from_slice(&field.column.to_be_bytes());
            out.extend_from_slice(&field.type_oid.to_be_bytes());
            out.extend_from_slice(&field.type_len.to_be_bytes());
            out.extend_from_slice(&field.typmod.to_be_bytes());
            out.extend_from_slice(&field.format.to_be_bytes());
        }
        RowDescription {
            count: fields.len() as u16,
            fields: out,
        }
    }
}

fn read_field<'a>(reader: &mut BodyReader<'a>) -> Result<RowField<'a>, DecodeError> {
    let name = reader.cstr()?;
    let fixed = reader.bytes(FIELD_FIXED_LEN)?;
    let mut fixed = BodyReader::new(fixed, <RowDescription as Message>::NAME);
    Ok(RowField {
        name,
        table_oid: fixed.u32()?,
        column: fixed.i16()?,
        type_oid: fixed.u32()?,
        type_len: fixed.i16()?,
        typmod: fixed.i32()?,
        format: fixed.i16()?,
    })
}

impl<'a> Message<'a> for RowDescription<'a> {
    const TAG: u8 = backend::ROW_DESCRIPTION;
    const NAME: &'static str = "RowDescription";

    fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut reader = BodyReader::new(body, Self::NAME);
        let count = reader.i16()?;
        if count < 0 {
            return Err(reader.invalid("column count", count.into()));
        }
        let fields = reader.rest();
        let mut check = BodyReader::new(fields, Self::NAME);
        for _ in 0..count {
            read_field(&mut check)?;
        }
        check.finish()?;
        Ok(RowDescription {
            count: count as u16,
            fields,
        })
    }

    fn body_len(&self) -> usize {
        2 + self.fields.len()
    }

    fn encode_body(&self, out: &mut BytesMut) {
        out.put_u16(self.count);
        out.put_slice(self.fields);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::messages::round_trip::encoded;

    fn columns() -> [RowField<'static>; 2] {
        [
            RowField {
                name: b"id",
                table_oid: 16384,
                column: 1,
                type_oid: 23,
                type_len: 4,
                typmod: -1,
                format: 0,
            },
            RowField {
                name: b"note",
                table_oid: 16384,
                column: 2,
                type_oid: 1043,
                type_len: -1,
                typmod: 24,
                format: 1,
            },
        ]
    }

    #[test]
    fn round_trip() {
        let mut storage = Vec::new();
        let rows = RowDescription::encode_fields(&columns(), &mut storage);
        let bytes = encoded(&rows);
        let decoded = RowDescription::decode_message(&bytes).unwrap();
        assert_eq!(decoded, rows);
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded.fields().collect::<Vec<_>>(), columns());
    }

    #[test]
    fn malformed_bodies_are_errors() {
        let mut storage = Vec::new();
        let rows = RowDescription::encode_fields(&columns(), &mut storage);
        let body = rows.to_bytes()[5..].to_vec();
        assert!(RowDescription::decode(&body).is_ok());
        assert!(RowDescription::decode(&body[..body.len() - 3]).is_err());
        assert!(RowDescription::decode(&[body.clone(), vec![0]].concat()).is_err());
        assert!(RowDescription::decode(b"\xff\xff").is_err());
        assert!(RowDescription::decode(b"").is_err());
        assert!(RowDescription::decode(b"\0\0").unwrap().is_empty());
    }
}
