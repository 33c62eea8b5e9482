//! What a Describe or a Close names: a prepared statement or a portal. Both messages have the
//! same body — the kind byte and the name — read and written here once.

use bytes::{BufMut, BytesMut};

use super::body::BodyReader;
use super::DecodeError;

/// The kind of object a Describe or Close names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A prepared statement (`S`).
    Statement,
    /// A portal (`P`).
    Portal,
}

impl Target {
    /// Reads the kind byte of a `message` (for errors).
    pub(super) fn decode(byte: u8, message: &'static str) -> Result<Target, DecodeError> {
        match byte {
            b'S' => Ok(Target::Statement),
            b'P' => Ok(Target::Portal),
            other => Err(DecodeError::InvalidValue {
                message,
                field: "kind",
                value: other.into(),
            }),
        }
    }

    /// The kind byte on the wire.
    pub fn byte(self) -> u8 {
        match self {
            Target::Statement => b'S',
            Target::Portal => b'P',
        }
    }
}

/// The body a Describe and a Close share: the kind of object and its name (`message` names the
/// message in errors).
pub(super) fn decode_named<'a>(
    body: &'a [u8],
    message: &'static str,
) -> Result<(Target, &'a [u8]), DecodeError> {
    let mut reader = BodyReader::new(body, message);
    let target = Target::decode(reader.u8()?, message)?;
    let name = reader.cstr()?;
    reader.finish()?;
    Ok((target, name))
}

/// The length of that body.
pub(super) fn named_len(name: &[u8]) -> usize {
    1 + name.len() + 1
}

/// Writes that body.
pub(super) fn encode_named(target: Target, name: &[u8], out: &mut BytesMut) {
    out.put_u8(target.byte());
    out.put_slice(name);
    out.put_u8(0);
}
