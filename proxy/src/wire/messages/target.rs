//! What a Describe or a Close names: a prepared statement or a portal.

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
