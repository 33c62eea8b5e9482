//! Reading a message body field by field, with every shortfall a [`DecodeError`].

use super::DecodeError;

/// A cursor over one message's body.
pub(super) struct BodyReader<'a> {
    rest: &'a [u8],
    message: &'static str,
}

impl<'a> BodyReader<'a> {
    /// A reader at the start of `body`, a message called `message` (for errors).
    pub(super) fn new(body: &'a [u8], message: &'static str) -> Self {
        BodyReader {
            rest: body,
            message,
        }
    }

    /// A NUL-terminated string, without its NUL.
    pub(super) fn cstr(&mut self) -> Result<&'a [u8], DecodeError> {
        let Some(nul) = self.rest.iter().position(|&b| b == 0) else {
            return Err(DecodeError::UnterminatedString {
                message: self.message,
            });
        };
        let (value, rest) = (&self.rest[..nul], &self.rest[nul + 1..]);
        self.rest = rest;
        Ok(value)
    }

    /// The next `n` bytes.
    pub(super) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(self.truncated());
        }
        let (value, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(value)
    }

    /// One byte.
    pub(super) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.bytes(1)?[0])
    }

    /// A big-endian 16-bit integer.
    pub(super) fn i16(&mut self) -> Result<i16, DecodeError> {
        let bytes = self.bytes(2)?;
        Ok(i16::from_be_bytes([bytes[0], bytes[1]]))
    }

    /// A big-endian 32-bit integer.
    pub(super) fn i32(&mut self) -> Result<i32, DecodeError> {
        let bytes = self.bytes(4)?;
        Ok(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// A big-endian 32-bit unsigned integer (an OID).
    pub(super) fn u32(&mut self) -> Result<u32, DecodeError> {
        let bytes = self.bytes(4)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// Whatever is left, consumed.
    pub(super) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    /// Checks that nothing is left after the last field.
    pub(super) fn finish(self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                message: self.message,
                extra: self.rest.len(),
            })
        }
    }

    /// A count that is negative or larger than what is left.
    pub(super) fn invalid(&self, field: &'static str, value: i64) -> DecodeError {
        DecodeError::InvalidValue {
            message: self.message,
            field,
            value,
        }
    }

    fn truncated(&self) -> DecodeError {
        DecodeError::Truncated {
            message: self.message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shortfall_is_an_error() {
        let mut reader = BodyReader::new(b"ab\0\x01", "Test");
        assert_eq!(reader.cstr().unwrap(), b"ab");
        assert!(matches!(reader.i16(), Err(DecodeError::Truncated { .. })));
        assert_eq!(reader.u8().unwrap(), 1);
        assert!(matches!(
            reader.cstr(),
            Err(DecodeError::UnterminatedString { .. })
        ));
        assert!(BodyReader::new(b"x", "Test").finish().is_err());
    }
}
