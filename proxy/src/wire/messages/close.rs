//! Close: forget a prepared statement or a portal.

use bytes::BytesMut;

use super::{target, DecodeError, Message, Target};
use crate::wire::frontend;

/// A Close (`C`) of a prepared statement or a portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close<'a> {
    /// What is closed.
    pub target: Target,
    /// Its name (empty: the unnamed one).
    pub name: &'a [u8],
}

impl<'a> Close<'a> {
    /// A Close of the prepared statement `name`.
    pub fn statement(name: &'a [u8]) -> Self {
        Close {
            target: Target::Statement,
            name,
        }
    }
}

impl<'a> Message<'a> for Close<'a> {
    const TAG: u8 = frontend::CLOSE;
    const NAME: &'static str = "Close";

    fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let (target, name) = target::decode_named(body, Self::NAME)?;
        Ok(Close { target, name })
    }

    fn body_len(&self) -> usize {
        target::named_len(self.name)
    }

    fn encode_body(&self, out: &mut BytesMut) {
        target::encode_named(self.target, self.name, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::messages::round_trip::encoded;

    #[test]
    fn round_trip() {
        let close = Close::statement(b"s1");
        let bytes = encoded(&close);
        assert_eq!(bytes, b"C\0\0\0\x08Ss1\0");
        assert_eq!(Close::decode_message(&bytes), Ok(close));
        let portal = Close {
            target: Target::Portal,
            name: b"",
        };
        assert_eq!(Close::decode_message(&encoded(&portal)), Ok(portal));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(Close::decode(b"").is_err());
        assert!(Close::decode(b"Qs1\0").is_err());
        assert!(Close::decode(b"Ss1").is_err());
    }
}
