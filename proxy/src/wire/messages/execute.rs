//! Execute: run a portal.

use bytes::{BufMut, BytesMut};

use super::body::BodyReader;
use super::{DecodeError, Message};
use crate::wire::frontend;

/// An Execute (`E`) of a portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Execute<'a> {
    /// The portal's name (empty: the unnamed portal).
    pub portal: &'a [u8],
    /// The most rows to return (0: no limit).
    pub max_rows: i32,
}

impl<'a> Message<'a> for Execute<'a> {
    const TAG: u8 = frontend::EXECUTE;
    const NAME: &'static str = "Execute";

    fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut reader = BodyReader::new(body, Self::NAME);
        let portal = reader.cstr()?;
        let max_rows = reader.i32()?;
        reader.finish()?;
        Ok(Execute { portal, max_rows })
    }

    fn body_len(&self) -> usize {
        self.portal.len() + 1 + 4
    }

    fn encode_body(&self, out: &mut BytesMut) {
        out.put_slice(self.portal);
        out.put_u8(0);
        out.put_i32(self.max_rows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::messages::round_trip::encoded;

    #[test]
    fn round_trip() {
        let execute = Execute {
            portal: b"p1",
            max_rows: 10,
        };
        let bytes = encoded(&execute);
        assert_eq!(bytes, b"E\0\0\0\x0bp1\0\0\0\0\x0a");
        assert_eq!(Execute::decode_message(&bytes), Ok(execute));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(Execute::decode(b"p1").is_err());
        assert!(Execute::decode(b"p1\0\0\0").is_err());
        assert!(Execute::decode(b"p1\0\0\0\0\0\0").is_err());
    }
}
