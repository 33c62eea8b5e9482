//! Sync: end an extended-protocol batch.

use bytes::BytesMut;

use super::body::BodyReader;
use super::{DecodeError, Message};
use crate::wire::frontend;

/// A Sync (`S`): ends an extended-protocol batch; the server answers with ReadyForQuery (and
/// after an error, skips everything up to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sync;

impl Message<'_> for Sync {
    const TAG: u8 = frontend::SYNC;
    const NAME: &'static str = "Sync";

    fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        BodyReader::new(body, Self::NAME).finish()?;
        Ok(Sync)
    }

    fn body_len(&self) -> usize {
        0
    }

    fn encode_body(&self, _out: &mut BytesMut) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::messages::round_trip::encoded;

    #[test]
    fn round_trip() {
        let bytes = encoded(&Sync);
        assert_eq!(bytes, b"S\0\0\0\x04");
        assert_eq!(Sync::decode_message(&bytes), Ok(Sync));
        assert!(Sync::decode(b"x").is_err());
    }
}
