//! DataRow: one row of a result, each column's value or NULL.

use bytes::{BufMut, BytesMut};

use super::body::BodyReader;
use super::{DecodeError, Message};
use crate::wire::backend;

/// A DataRow (`D`): the row's columns, each its bytes or NULL. duet reads rows only of its own
/// queries (a pooled connection's settings read back); clients' rows are forwarded by header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRow<'a> {
    /// The columns, `None` for NULL.
    pub columns: Vec<Option<&'a [u8]>>,
}

impl<'a> Message<'a> for DataRow<'a> {
    const TAG: u8 = backend::DATA_ROW;
    const NAME: &'static str = "DataRow";

    fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut reader = BodyReader::new(body, Self::NAME);
        let count = reader.i16()?;
        if count < 0 {
            return Err(reader.invalid("column count", count.into()));
        }
        let mut columns = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let len = reader.i32()?;
            columns.push(match len {
                -1 => None,
                len if len < 0 => return Err(reader.invalid("column length", len.into())),
                len => Some(reader.bytes(len as usize)?),
            });
        }
        reader.finish()?;
        Ok(DataRow { columns })
    }

    fn body_len(&self) -> usize {
        2 + self
            .columns
            .iter()
            .map(|column| 4 + column.map_or(0, <[u8]>::len))
            .sum::<usize>()
    }

    fn encode_body(&self, out: &mut BytesMut) {
        out.put_i16(self.columns.len() as i16);
        for column in &self.columns {
            match column {
                None => out.put_i32(-1),
                Some(value) => {
                    out.put_i32(value.len() as i32);
                    out.put_slice(value);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::messages::round_trip::encoded;

    #[test]
    fn round_trip() {
        let row = DataRow {
            columns: vec![Some(b"work_mem"), None, Some(b"")],
        };
        let bytes = encoded(&row);
        assert_eq!(DataRow::decode_message(&bytes), Ok(row));
    }

    #[test]
    fn malformed_rows_are_refused() {
        for body in [
            &b"\0"[..],
            b"\xff\xff",
            b"\0\x01\0\0\0\x05ab",
            b"\0\x01\xff\xff\xff\xfe",
            b"\0\0x",
        ] {
            assert!(DataRow::decode(body).is_err(), "{body:?}");
        }
    }
}
