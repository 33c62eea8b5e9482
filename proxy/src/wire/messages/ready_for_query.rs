//! ReadyForQuery: the server has finished a request and says where the transaction stands.

use bytes::{BufMut, BytesMut};

use super::body::BodyReader;
use super::{DecodeError, Message};
use crate::wire::backend;

/// The transaction status a ReadyForQuery reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionStatus {
    /// `I`: not in a transaction block.
    Idle,
    /// `T`: in a transaction block.
    InTransaction,
    /// `E`: in a failed transaction block (statements are refused until it ends).
    Failed,
}

impl TransactionStatus {
    /// The status byte on the wire.
    pub fn byte(self) -> u8 {
        match self {
            TransactionStatus::Idle => b'I',
            TransactionStatus::InTransaction => b'T',
            TransactionStatus::Failed => b'E',
        }
    }
}

/// A ReadyForQuery (`Z`): the answer to a request is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyForQuery {
    /// Where the session's transaction stands.
    pub status: TransactionStatus,
}

impl Message<'_> for ReadyForQuery {
    const TAG: u8 = backend::READY_FOR_QUERY;
    const NAME: &'static str = "ReadyForQuery";

    fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = BodyReader::new(body, Self::NAME);
        let byte = reader.u8()?;
        reader.finish()?;
        let status = match byte {
            b'I' => TransactionStatus::Idle,
            b'T' => TransactionStatus::InTransaction,
            b'E' => TransactionStatus::Failed,
            other => {
                return Err(DecodeError::InvalidValue {
                    message: Self::NAME,
                    field: "transaction status",
                    value: other.into(),
                })
            }
        };
        Ok(ReadyForQuery { status })
    }

    fn body_len(&self) -> usize {
        1
    }

    fn encode_body(&self, out: &mut BytesMut) {
        out.put_u8(self.status.byte());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::messages::round_trip::encoded;

    #[test]
    fn round_trip() {
        for status in [
            TransactionStatus::Idle,
            TransactionStatus::InTransaction,
            TransactionStatus::Failed,
        ] {
            let ready = ReadyForQuery { status };
            let bytes = encoded(&ready);
            assert_eq!(bytes[5], status.byte());
            assert_eq!(ReadyForQuery::decode_message(&bytes), Ok(ready));
        }
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(matches!(
            ReadyForQuery::decode(b"Q"),
            Err(DecodeError::InvalidValue { value: 81, .. })
        ));
        assert!(ReadyForQuery::decode(b"").is_err());
        assert!(ReadyForQuery::decode(b"II").is_err());
    }
}
