//! Parse: prepare a statement (extended protocol).

use bytes::{BufMut, BytesMut};

use super::body::BodyReader;
use super::{DecodeError, Message};
use crate::wire::frontend;

/// A Parse (`P`): a statement's name, its text, and the types of its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parse<'a> {
    /// The statement's name (empty: the unnamed statement).
    pub name: &'a [u8],
    /// The statement's text, without its NUL.
    pub text: &'a [u8],
    /// The parameter section as sent: a 16-bit count, then one type OID (32 bits) each. Kept
    /// whole because duet only ever forwards it again, under another text (and a
    /// [`super::ParameterDescription`] body has the same layout).
    pub parameters: &'a [u8],
}

impl Parse<'_> {
    /// The number of parameter types the section declares.
    pub fn parameter_count(&self) -> usize {
        self.parameters.len().saturating_sub(2) / 4
    }
}

impl<'a> Message<'a> for Parse<'a> {
    const TAG: u8 = frontend::PARSE;
    const NAME: &'static str = "Parse";

    fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut reader = BodyReader::new(body, Self::NAME);
        let name = reader.cstr()?;
        let text = reader.cstr()?;
        let parameters = reader.rest();
        check_parameter_section(parameters, Self::NAME)?;
        Ok(Parse {
            name,
            text,
            parameters,
        })
    }

    fn body_len(&self) -> usize {
        self.name.len() + 1 + self.text.len() + 1 + self.parameters.len()
    }

    fn encode_body(&self, out: &mut BytesMut) {
        out.put_slice(self.name);
        out.put_u8(0);
        out.put_slice(self.text);
        out.put_u8(0);
        out.put_slice(self.parameters);
    }
}

/// Checks a parameter-type section (16-bit count, then that many 32-bit OIDs, nothing after).
pub(super) fn check_parameter_section(
    section: &[u8],
    message: &'static str,
) -> Result<(), DecodeError> {
    let mut reader = BodyReader::new(section, message);
    let count = reader.i16()?;
    if count < 0 {
        return Err(reader.invalid("parameter count", count.into()));
    }
    reader.bytes(usize::from(count as u16) * 4)?;
    reader.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::messages::round_trip::encoded;

    #[test]
    fn round_trip() {
        let parse = Parse {
            name: b"s1",
            text: b"select $1",
            parameters: b"\0\x01\0\0\0\x17",
        };
        let bytes = encoded(&parse);
        assert_eq!(bytes, b"P\0\0\0\x17s1\0select $1\0\0\x01\0\0\0\x17");
        assert_eq!(Parse::decode_message(&bytes), Ok(parse));
        assert_eq!(parse.parameter_count(), 1);
    }

    #[test]
    fn parse_bodies_split_and_rebuild() {
        let body = b"s1\0insert into t values ($1)\0\0\x01\0\0\0\x17";
        let parse = Parse::decode(body).unwrap();
        assert_eq!(parse.name, b"s1");
        assert_eq!(parse.text, b"insert into t values ($1)");
        assert_eq!(parse.parameters, b"\0\x01\0\0\0\x17");
        let rebuilt = Parse {
            text: b"select 1",
            ..parse
        };
        assert_eq!(
            &rebuilt.to_bytes()[..],
            b"P\0\0\0\x16s1\0select 1\0\0\x01\0\0\0\x17"
        );
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(Parse::decode(b"no nul").is_err());
        assert!(Parse::decode(b"s\0text").is_err());
        assert!(matches!(
            Parse::decode(b"s\0t\0"),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            Parse::decode(b"s\0t\0\0\x02\0\0\0\x17"),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            Parse::decode(b"s\0t\0\xff\xff"),
            Err(DecodeError::InvalidValue { .. })
        ));
        assert!(matches!(
            Parse::decode(b"s\0t\0\0\0x"),
            Err(DecodeError::TrailingBytes { .. })
        ));
    }
}
