//! Typed protocol messages: one type per message duet reads or writes whole, each with a `decode`
//! from a frame's body and an `encode` into a buffer.
//!
//! The types borrow from the bytes they were decoded from (no copy, no allocation: the upstream
//! loop decodes every Query and Parse, with or without a migration), and encode from borrowed
//! parts too (build the text first, then the message around it). Decoding never panics and
//! reports malformed input as a [`DecodeError`]; encoding writes exactly the bytes PostgreSQL
//! would.
//!
//! Only the messages duet acts on are here (in the startup phase: the authentication requests,
//! the client's answers to them and BackendKeyData; the StartupMessage and the other untyped
//! startup packets are read in [`super::startup`]); everything else is forwarded by its header
//! alone ([`super::frame`]).

mod authentication;
mod backend_key_data;
mod bind;
mod body;
mod close;
mod command_complete;
mod data_row;
mod describe;
mod error_response;
mod execute;
mod parameter_description;
mod parameter_status;
mod parse;
mod password;
mod query;
mod ready_for_query;
mod row_description;
mod sync;
mod target;

use bytes::{BufMut, BytesMut};

pub use authentication::{code as auth_code, Authentication, SaslMechanisms};
pub use backend_key_data::{BackendKeyData, MAX_SECRET_KEY_LEN, MIN_SECRET_KEY_LEN};
pub use bind::Bind;
pub use close::Close;
pub use command_complete::CommandComplete;
pub use data_row::DataRow;
pub use describe::Describe;
pub use error_response::{ErrorField, ErrorResponse};
pub use execute::Execute;
pub use parameter_description::ParameterDescription;
pub use parameter_status::ParameterStatus;
pub use parse::Parse;
pub use password::{PasswordMessage, SaslInitialResponse, SaslResponse};
pub use query::Query;
pub use ready_for_query::{ReadyForQuery, TransactionStatus};
pub use row_description::{RowDescription, RowField};
pub use sync::Sync;
pub use target::Target;

use super::frame::HEADER_LEN;

/// Why a message's bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The body ends before a field it must have.
    #[error("{message} message is truncated")]
    Truncated {
        /// The message's name.
        message: &'static str,
    },
    /// A string field has no terminating NUL.
    #[error("{message} message has a string without its terminating NUL")]
    UnterminatedString {
        /// The message's name.
        message: &'static str,
    },
    /// Bytes are left after the last field.
    #[error("{message} message has {extra} bytes after its last field")]
    TrailingBytes {
        /// The message's name.
        message: &'static str,
        /// How many bytes are left.
        extra: usize,
    },
    /// A field holds a value the protocol does not define.
    #[error("{message} message has an invalid {field} {value}")]
    InvalidValue {
        /// The message's name.
        message: &'static str,
        /// The field's name.
        field: &'static str,
        /// The value found.
        value: i64,
    },
    /// The whole message does not start with this type's tag.
    #[error("expected a {message} message (type {expected:?}), got type {found:?}")]
    WrongType {
        /// The message's name.
        message: &'static str,
        /// The type byte of this message.
        expected: char,
        /// The type byte found.
        found: char,
    },
    /// The whole message's length field does not match its size.
    #[error("{message} message: the length field says {declared}, the message has {actual} bytes")]
    Length {
        /// The message's name.
        message: &'static str,
        /// The length field (which counts itself).
        declared: i64,
        /// The bytes after the type byte.
        actual: usize,
    },
}

/// One protocol message type: its tag, how its body is read, and how it is written.
pub trait Message<'a>: Sized {
    /// The message type byte.
    const TAG: u8;
    /// The message's name, as the protocol documentation spells it (for errors).
    const NAME: &'static str;

    /// Reads a message from its body: the bytes after the length field (what
    /// [`super::frame::Frame::body`] gives).
    fn decode(body: &'a [u8]) -> Result<Self, DecodeError>;

    /// The size of the body [`Message::encode_body`] writes.
    fn body_len(&self) -> usize;

    /// Appends the body (without type byte and length).
    fn encode_body(&self, out: &mut BytesMut);

    /// Appends the whole message: type byte, length, body.
    fn encode(&self, out: &mut BytesMut) {
        let body_len = self.body_len();
        out.reserve(HEADER_LEN + body_len);
        out.put_u8(Self::TAG);
        // The length counts itself. The bodies duet builds are far below i32::MAX (statements are
        // capped at 1 GB by PostgreSQL and duet's own at 64 MB), as they were before typing.
        out.put_i32((body_len + 4) as i32);
        self.encode_body(out);
    }

    /// The whole message in a buffer of its own, allocated once at its exact size.
    fn to_bytes(&self) -> BytesMut {
        let mut out = BytesMut::with_capacity(HEADER_LEN + self.body_len());
        self.encode(&mut out);
        out
    }

    /// Reads a whole message (type byte, length, body), checking the type byte and the length.
    fn decode_message(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let Some((&found, rest)) = bytes.split_first() else {
            return Err(DecodeError::Truncated {
                message: Self::NAME,
            });
        };
        if found != Self::TAG {
            return Err(DecodeError::WrongType {
                message: Self::NAME,
                expected: Self::TAG as char,
                found: found as char,
            });
        }
        let Some((length, body)) = rest.split_first_chunk::<4>() else {
            return Err(DecodeError::Truncated {
                message: Self::NAME,
            });
        };
        let declared = i32::from_be_bytes(*length);
        if i64::from(declared) != rest.len() as i64 {
            return Err(DecodeError::Length {
                message: Self::NAME,
                declared: declared.into(),
                actual: rest.len(),
            });
        }
        Self::decode(body)
    }
}

/// What every message type's round-trip tests share.
#[cfg(test)]
pub(crate) mod round_trip {
    use super::Message;

    /// Encodes `message` and checks its header: its type byte, and a length that counts itself
    /// and matches [`Message::body_len`]. Decode the bytes back with [`Message::decode_message`].
    pub(crate) fn encoded<'a, M: Message<'a>>(message: &M) -> Vec<u8> {
        let bytes = message.to_bytes().to_vec();
        assert_eq!(bytes[0], M::TAG);
        let declared = i32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        assert_eq!(declared + 1, bytes.len(), "the length field counts itself");
        assert_eq!(bytes.len(), 5 + message.body_len());
        bytes
    }
}
