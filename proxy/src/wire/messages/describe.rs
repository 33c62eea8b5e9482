//! Describe: ask for the parameters and result columns of a statement, or a portal's columns.

use bytes::BytesMut;

use super::{target, DecodeError, Message, Target};
use crate::wire::frontend;

/// A Describe (`D`) of a prepared statement (answered with ParameterDescription, then
/// RowDescription or NoData) or of a portal (RowDescription or NoData).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Describe<'a> {
    /// What is described.
    pub target: Target,
    /// Its name (empty: the unnamed one).
    pub name: &'a [u8],
}

impl<'a> Message<'a> for Describe<'a> {
    const TAG: u8 = frontend::DESCRIBE;
    const NAME: &'static str = "Describe";

    fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let (target, name) = target::decode_named(body, Self::NAME)?;
        Ok(Describe { target, name })
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
        for target in [Target::Statement, Target::Portal] {
            let describe = Describe {
                target,
                name: b"s1",
            };
            let bytes = encoded(&describe);
            assert_eq!(Describe::decode_message(&bytes), Ok(describe));
        }
        assert_eq!(
            &Describe {
                target: Target::Statement,
                name: b""
            }
            .to_bytes()[..],
            b"D\0\0\0\x06S\0"
        );
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(matches!(
            Describe::decode(b"Xs1\0"),
            Err(DecodeError::InvalidValue { .. })
        ));
        assert!(Describe::decode(b"").is_err());
        assert!(Describe::decode(b"Ss1").is_err());
        assert!(Describe::decode(b"Ss1\0\0").is_err());
    }
}
