//! CommandComplete: a statement finished, with its command tag.

use bytes::{BufMut, BytesMut};

use super::body::BodyReader;
use super::{DecodeError, Message};
use crate::wire::backend;

/// A CommandComplete (`C`): the command tag of a finished statement (`INSERT 0 3`, `UPDATE 1`,
/// `SELECT 2`, `COPY 5`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandComplete<'a> {
    /// The command tag, without its NUL.
    pub tag: &'a [u8],
}

impl<'a> CommandComplete<'a> {
    /// A CommandComplete with this tag.
    pub fn new(tag: &'a str) -> Self {
        CommandComplete {
            tag: tag.as_bytes(),
        }
    }

    /// The tag as text (`None`: not UTF-8, which PostgreSQL's tags always are).
    pub fn tag_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.tag).ok()
    }
}

impl<'a> Message<'a> for CommandComplete<'a> {
    const TAG: u8 = backend::COMMAND_COMPLETE;
    const NAME: &'static str = "CommandComplete";

    fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut reader = BodyReader::new(body, Self::NAME);
        let tag = reader.cstr()?;
        reader.finish()?;
        Ok(CommandComplete { tag })
    }

    fn body_len(&self) -> usize {
        self.tag.len() + 1
    }

    fn encode_body(&self, out: &mut BytesMut) {
        out.put_slice(self.tag);
        out.put_u8(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::messages::round_trip::encoded;

    #[test]
    fn round_trip() {
        let complete = CommandComplete::new("UPDATE 3");
        let bytes = encoded(&complete);
        assert_eq!(bytes, b"C\0\0\0\x0dUPDATE 3\0");
        assert_eq!(CommandComplete::decode_message(&bytes), Ok(complete));
        assert_eq!(complete.tag_str(), Some("UPDATE 3"));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(CommandComplete::decode(b"garbage").is_err());
        assert!(CommandComplete::decode(b"SELECT 1\0\0").is_err());
    }
}
