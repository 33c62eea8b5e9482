//! The client's answers to an authentication request: PasswordMessage, SASLInitialResponse and
//! SASLResponse. All three are type `p` (so is GSSResponse); which one a message is depends on
//! the request it answers.

use bytes::{BufMut, BytesMut};

use super::body::BodyReader;
use super::{DecodeError, Message};
use crate::wire::frontend;

/// A PasswordMessage (`p`): the answer to AuthenticationCleartextPassword or
/// AuthenticationMD5Password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordMessage<'a> {
    /// The password, cleartext or `md5` and the hash, without its NUL.
    pub password: &'a [u8],
}

impl<'a> Message<'a> for PasswordMessage<'a> {
    const TAG: u8 = frontend::PASSWORD;
    const NAME: &'static str = "PasswordMessage";

    fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut reader = BodyReader::new(body, Self::NAME);
        let password = reader.cstr()?;
        reader.finish()?;
        Ok(PasswordMessage { password })
    }

    fn body_len(&self) -> usize {
        self.password.len() + 1
    }

    fn encode_body(&self, out: &mut BytesMut) {
        out.put_slice(self.password);
        out.put_u8(0);
    }
}

/// A SASLInitialResponse (`p`): the answer to AuthenticationSASL, naming the mechanism the client
/// chose and carrying its first message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaslInitialResponse<'a> {
    /// The chosen mechanism, without its NUL.
    pub mechanism: &'a [u8],
    /// The mechanism's initial response (SCRAM: the client-first-message, starting with its GS2
    /// header); `None` when the client sent none (length -1).
    pub data: Option<&'a [u8]>,
}

impl<'a> Message<'a> for SaslInitialResponse<'a> {
    const TAG: u8 = frontend::PASSWORD;
    const NAME: &'static str = "SASLInitialResponse";

    fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut reader = BodyReader::new(body, Self::NAME);
        let mechanism = reader.cstr()?;
        let data = match reader.i32()? {
            -1 => None,
            len => {
                let Ok(len) = usize::try_from(len) else {
                    return Err(reader.invalid("data length", len.into()));
                };
                Some(reader.bytes(len)?)
            }
        };
        reader.finish()?;
        Ok(SaslInitialResponse { mechanism, data })
    }

    fn body_len(&self) -> usize {
        self.mechanism.len() + 1 + 4 + self.data.map_or(0, <[u8]>::len)
    }

    fn encode_body(&self, out: &mut BytesMut) {
        out.put_slice(self.mechanism);
        out.put_u8(0);
        match self.data {
            // Authentication messages are far below i32::MAX (duet caps them at 64 kB).
            Some(data) => {
                out.put_i32(data.len() as i32);
                out.put_slice(data);
            }
            None => out.put_i32(-1),
        }
    }
}

/// A SASLResponse (`p`): the answer to AuthenticationSASLContinue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaslResponse<'a> {
    /// The mechanism's message (SCRAM: the client-final-message), the whole body.
    pub data: &'a [u8],
}

impl<'a> Message<'a> for SaslResponse<'a> {
    const TAG: u8 = frontend::PASSWORD;
    const NAME: &'static str = "SASLResponse";

    fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        Ok(SaslResponse { data: body })
    }

    fn body_len(&self) -> usize {
        self.data.len()
    }

    fn encode_body(&self, out: &mut BytesMut) {
        out.put_slice(self.data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::messages::round_trip::encoded;

    #[test]
    fn round_trip() {
        let password = PasswordMessage {
            password: b"md5abc",
        };
        let bytes = encoded(&password);
        assert_eq!(bytes, b"p\0\0\0\x0bmd5abc\0");
        assert_eq!(PasswordMessage::decode_message(&bytes), Ok(password));

        let initial = SaslInitialResponse {
            mechanism: b"SCRAM-SHA-256",
            data: Some(b"n,,n=,r=abc"),
        };
        let bytes = encoded(&initial);
        assert_eq!(&bytes[5..], b"SCRAM-SHA-256\0\0\0\0\x0bn,,n=,r=abc");
        assert_eq!(SaslInitialResponse::decode_message(&bytes), Ok(initial));
        let empty = SaslInitialResponse {
            mechanism: b"X",
            data: None,
        };
        let bytes = encoded(&empty);
        assert_eq!(&bytes[5..], b"X\0\xff\xff\xff\xff");
        assert_eq!(SaslInitialResponse::decode_message(&bytes), Ok(empty));

        let response = SaslResponse {
            data: b"c=biws,r=abc,p=proof",
        };
        assert_eq!(
            SaslResponse::decode_message(&encoded(&response)),
            Ok(response)
        );
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(PasswordMessage::decode(b"secret").is_err());
        assert!(PasswordMessage::decode(b"secret\0x").is_err());
        assert!(SaslInitialResponse::decode(b"SCRAM-SHA-256").is_err());
        assert!(SaslInitialResponse::decode(b"SCRAM-SHA-256\0\0\0").is_err());
        assert!(
            SaslInitialResponse::decode(b"SCRAM-SHA-256\0\0\0\0\x09abcd").is_err(),
            "shorter than its length"
        );
        assert!(
            SaslInitialResponse::decode(b"SCRAM-SHA-256\0\0\0\0\x01ab").is_err(),
            "longer than its length"
        );
        assert!(matches!(
            SaslInitialResponse::decode(b"S\0\xff\xff\xff\xfe"),
            Err(DecodeError::InvalidValue { value: -2, .. })
        ));
    }
}
