//! ParameterStatus: the value of a run-time parameter the server reports.

use bytes::{BufMut, BytesMut};

use super::body::BodyReader;
use super::{DecodeError, Message};
use crate::wire::backend;

/// A ParameterStatus (`S`): a parameter's name and its current value, sent by the server during
/// startup for every reported parameter (`server_version`, `client_encoding`, `TimeZone`, …) and
/// again whenever one of them changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParameterStatus<'a> {
    /// The parameter's name, without its NUL.
    pub name: &'a [u8],
    /// Its value, without its NUL.
    pub value: &'a [u8],
}

impl<'a> Message<'a> for ParameterStatus<'a> {
    const TAG: u8 = backend::PARAMETER_STATUS;
    const NAME: &'static str = "ParameterStatus";

    fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut reader = BodyReader::new(body, Self::NAME);
        let name = reader.cstr()?;
        let value = reader.cstr()?;
        reader.finish()?;
        Ok(ParameterStatus { name, value })
    }

    fn body_len(&self) -> usize {
        self.name.len() + 1 + self.value.len() + 1
    }

    fn encode_body(&self, out: &mut BytesMut) {
        out.put_slice(self.name);
        out.put_u8(0);
        out.put_slice(self.value);
        out.put_u8(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::messages::round_trip::encoded;

    #[test]
    fn round_trip() {
        let status = ParameterStatus {
            name: b"server_version",
            value: b"15.4",
        };
        let bytes = encoded(&status);
        assert_eq!(bytes, b"S\0\0\0\x18server_version\x0015.4\0");
        assert_eq!(ParameterStatus::decode_message(&bytes), Ok(status));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(ParameterStatus::decode(b"").is_err());
        assert!(ParameterStatus::decode(b"name\0").is_err(), "no value");
        assert!(ParameterStatus::decode(b"name\0value").is_err());
        assert!(ParameterStatus::decode(b"name\0value\0x").is_err());
        assert!(ParameterStatus::decode(b"\0\0").is_ok());
    }
}
