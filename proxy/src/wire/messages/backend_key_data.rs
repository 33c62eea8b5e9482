//! BackendKeyData: the process id and secret key a client cancels its queries with.

use bytes::{BufMut, BytesMut};

use super::body::BodyReader;
use super::{DecodeError, Message};
use crate::wire::backend;

/// The shortest secret key: protocol 3.0's Int32.
pub const MIN_SECRET_KEY_LEN: usize = 4;
/// The longest secret key protocol 3.2 allows.
pub const MAX_SECRET_KEY_LEN: usize = 256;

/// A BackendKeyData (`K`): the backend's process id and the secret key a CancelRequest must
/// carry. The key is 4 bytes in protocol 3.0 and up to 256 in 3.2 (PostgreSQL 18); duet reads it
/// as bytes either way (pgwire's type has the same two-sided key, `SecretKey`, but needs an owned
/// copy and a codec context; this one borrows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendKeyData<'a> {
    /// The backend's process id.
    pub pid: i32,
    /// The secret key, 4 to 256 bytes.
    pub key: &'a [u8],
}

impl<'a> Message<'a> for BackendKeyData<'a> {
    const TAG: u8 = backend::BACKEND_KEY_DATA;
    const NAME: &'static str = "BackendKeyData";

    fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut reader = BodyReader::new(body, Self::NAME);
        let pid = reader.i32()?;
        let key = reader.rest();
        if key.len() < MIN_SECRET_KEY_LEN {
            return Err(DecodeError::Truncated {
                message: Self::NAME,
            });
        }
        if key.len() > MAX_SECRET_KEY_LEN {
            return Err(reader.invalid("secret key length", key.len() as i64));
        }
        Ok(BackendKeyData { pid, key })
    }

    fn body_len(&self) -> usize {
        4 + self.key.len()
    }

    fn encode_body(&self, out: &mut BytesMut) {
        out.put_i32(self.pid);
        out.put_slice(self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::messages::round_trip::encoded;

    #[test]
    fn round_trip() {
        let data = BackendKeyData {
            pid: 4242,
            key: b"\x01\x02\x03\x04",
        };
        let bytes = encoded(&data);
        assert_eq!(bytes, b"K\0\0\0\x0c\0\0\x10\x92\x01\x02\x03\x04");
        assert_eq!(BackendKeyData::decode_message(&bytes), Ok(data));
        // A protocol 3.2 key.
        let long = [7u8; 32];
        let data = BackendKeyData { pid: 1, key: &long };
        assert_eq!(BackendKeyData::decode_message(&encoded(&data)), Ok(data));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(BackendKeyData::decode(b"").is_err());
        assert!(BackendKeyData::decode(b"\0\0\0\x01").is_err(), "no key");
        assert!(
            BackendKeyData::decode(b"\0\0\0\x01abc").is_err(),
            "short key"
        );
        let too_long = [0u8; 4 + MAX_SECRET_KEY_LEN + 1];
        assert!(matches!(
            BackendKeyData::decode(&too_long),
            Err(DecodeError::InvalidValue { value: 257, .. })
        ));
        assert!(BackendKeyData::decode(&too_long[..4 + MAX_SECRET_KEY_LEN]).is_ok());
    }
}
