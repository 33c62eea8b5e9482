//! ParameterDescription: the parameter types of a described statement.

use bytes::{BufMut, BytesMut};

use super::parse::check_parameter_section;
use super::{DecodeError, Message};
use crate::wire::backend;

/// A ParameterDescription (`t`): the types the server gave a statement's parameters (those the
/// client left unspecified included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParameterDescription<'a> {
    /// The body as sent: a 16-bit count, then one type OID (32 bits) each — the layout of a
    /// Parse's parameter section, so it can stand in for one ([`super::Parse::parameters`]).
    pub types: &'a [u8],
}

impl ParameterDescription<'_> {
    /// The parameter type OIDs, in order.
    pub fn oids(&self) -> impl Iterator<Item = u32> + '_ {
        self.types
            .get(2..)
            .unwrap_or_default()
            .chunks_exact(4)
            .map(|oid| u32::from_be_bytes([oid[0], oid[1], oid[2], oid[3]]))
    }
}

impl<'a> Message<'a> for ParameterDescription<'a> {
    const TAG: u8 = backend::PARAMETER_DESCRIPTION;
    const NAME: &'static str = "ParameterDescription";

    fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        check_parameter_section(body, Self::NAME)?;
        Ok(ParameterDescription { types: body })
    }

    fn body_len(&self) -> usize {
        self.types.len()
    }

    fn encode_body(&self, out: &mut BytesMut) {
        out.put_slice(self.types);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::messages::round_trip::encoded;

    #[test]
    fn round_trip() {
        let described = ParameterDescription {
            types: b"\0\x02\0\0\0\x17\0\0\0\x19",
        };
        let bytes = encoded(&described);
        assert_eq!(ParameterDescription::decode_message(&bytes), Ok(described));
        assert_eq!(described.oids().collect::<Vec<_>>(), [23, 25]);
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(ParameterDescription::decode(b"").is_err());
        assert!(ParameterDescription::decode(b"\0\x01\0\0").is_err());
        assert!(ParameterDescription::decode(b"\0\0\0").is_err());
    }
}
