//! Query: a simple-protocol query string.

use bytes::{BufMut, BytesMut};

use super::body::BodyReader;
use super::{DecodeError, Message};
use crate::wire::frontend;

/// A simple-protocol Query (`Q`): one string of zero or more statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query<'a> {
    /// The query string, without its NUL (bytes: it is in the client's encoding, which duet
    /// checks is UTF-8 before it rewrites anything).
    pub text: &'a [u8],
}

impl<'a> Query<'a> {
    /// A Query of `text`.
    pub fn new(text: &'a str) -> Self {
        Query {
            text: text.as_bytes(),
        }
    }
}

impl<'a> Message<'a> for Query<'a> {
    const TAG: u8 = frontend::QUERY;
    const NAME: &'static str = "Query";

    fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut reader = BodyReader::new(body, Self::NAME);
        let text = reader.cstr()?;
        reader.finish()?;
        Ok(Query { text })
    }

    fn body_len(&self) -> usize {
        self.text.len() + 1
    }

    fn encode_body(&self, out: &mut BytesMut) {
        out.put_slice(self.text);
        out.put_u8(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::messages::round_trip::encoded;

    #[test]
    fn round_trip() {
        let query = Query::new("select 1; select 2");
        let bytes = encoded(&query);
        assert_eq!(bytes, b"Q\0\0\0\x17select 1; select 2\0");
        assert_eq!(Query::decode_message(&bytes), Ok(query));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(matches!(
            Query::decode(b"select 1"),
            Err(DecodeError::UnterminatedString { .. })
        ));
        assert!(matches!(
            Query::decode(b"select 1\0x"),
            Err(DecodeError::TrailingBytes { extra: 1, .. })
        ));
        assert!(matches!(
            Query::decode_message(b"P\0\0\0\x05\0"),
            Err(DecodeError::WrongType { .. })
        ));
        assert!(matches!(
            Query::decode_message(b"Q\0\0\0\x09\0"),
            Err(DecodeError::Length { .. })
        ));
        assert!(Query::decode_message(b"Q\0\0").is_err());
        assert!(Query::decode_message(b"").is_err());
    }
}
