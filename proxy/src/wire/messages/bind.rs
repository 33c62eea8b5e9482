//! Bind: a portal from a prepared statement and parameter values.

use bytes::{BufMut, BytesMut};

use super::body::BodyReader;
use super::{DecodeError, Message};
use crate::wire::frontend;

/// A Bind (`B`): the portal to create and the statement it binds. duet routes by the names only,
/// so the parameter formats, values and result formats after them stay undecoded — and a Bind
/// too large to hold (huge parameter values) can be decoded from its first bytes alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bind<'a> {
    /// The portal's name (empty: the unnamed portal).
    pub portal: &'a [u8],
    /// The prepared statement's name (empty: the unnamed statement).
    pub statement: &'a [u8],
    /// Everything after the names, as sent (or as much of it as was read).
    pub rest: &'a [u8],
}

impl<'a> Message<'a> for Bind<'a> {
    const TAG: u8 = frontend::BIND;
    const NAME: &'static str = "Bind";

    /// Reads the two names; the rest is kept as it is (a prefix of a body decodes too, as long
    /// as it holds both names).
    fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut reader = BodyReader::new(body, Self::NAME);
        let portal = reader.cstr()?;
        let statement = reader.cstr()?;
        Ok(Bind {
            portal,
            statement,
            rest: reader.rest(),
        })
    }

    fn body_len(&self) -> usize {
        self.portal.len() + 1 + self.statement.len() + 1 + self.rest.len()
    }

    fn encode_body(&self, out: &mut BytesMut) {
        out.put_slice(self.portal);
        out.put_u8(0);
        out.put_slice(self.statement);
        out.put_u8(0);
        out.put_slice(self.rest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::messages::round_trip::encoded;

    #[test]
    fn round_trip() {
        let bind = Bind {
            portal: b"p1",
            statement: b"s1",
            rest: b"\0\0\0\x01\0\0\0\x011\0\0",
        };
        let bytes = encoded(&bind);
        assert_eq!(Bind::decode_message(&bytes), Ok(bind));
    }

    #[test]
    fn the_names_decode_from_the_start_of_a_body() {
        let bind = Bind::decode(b"p1\0s1\0\0\0\0\x01\0\0\0\x10abc").unwrap();
        assert_eq!((bind.portal, bind.statement), (&b"p1"[..], &b"s1"[..]));
        assert!(matches!(
            Bind::decode(b"p1\0s"),
            Err(DecodeError::UnterminatedString { .. })
        ));
        assert!(Bind::decode(b"").is_err());
    }
}
