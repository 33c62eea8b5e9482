//! ErrorResponse: a failed request, as typed fields.

use bytes::{BufMut, BytesMut};

use super::body::BodyReader;
use super::{DecodeError, Message};
use crate::wire::backend;

/// An ErrorResponse (`E`): fields, each a type byte and a string, ended by a zero byte.
/// Validated when decoded; the fields are read again from the bytes by
/// [`ErrorResponse::fields`] (nothing is allocated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorResponse<'a> {
    /// The fields and the terminating zero, as sent.
    body: &'a [u8],
}

/// One field of an ErrorResponse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorField<'a> {
    /// The field type: `S` severity, `V` severity (not localized), `C` SQLSTATE, `M` message,
    /// `H` hint, `W` context, …
    pub kind: u8,
    /// Its value, without the NUL.
    pub value: &'a [u8],
}

impl<'a> ErrorResponse<'a> {
    /// The fields, in order.
    pub fn fields(&self) -> impl Iterator<Item = ErrorField<'a>> + 'a {
        // Validated by `decode`: every field reads, up to the terminating zero.
        Self::lenient_fields(self.body)
    }

    /// The fields of a body that has not been validated, in order, up to the terminating zero or
    /// the first field that is cut short, whichever comes first; whatever follows is ignored.
    ///
    /// For reading what a body that [`Message::decode`] refuses still says (a truncated one, or
    /// one without its terminator): [`crate::wire::error::ends_session`] reads a severity this
    /// way, so that a malformed goodbye is still a goodbye when its severity arrived whole.
    pub fn lenient_fields(body: &'a [u8]) -> impl Iterator<Item = ErrorField<'a>> + 'a {
        let mut reader = BodyReader::new(body, <Self as Message>::NAME);
        std::iter::from_fn(move || match reader.u8() {
            Ok(0) | Err(_) => None,
            Ok(kind) => reader.cstr().ok().map(|value| ErrorField { kind, value }),
        })
    }

    /// The SQLSTATE and message of an ErrorResponse body, read leniently (a body cut short still
    /// gives what it has; a field it lacks is empty).
    pub fn lenient_code_and_message(body: &'a [u8]) -> (String, String) {
        let (mut code, mut message) = (String::new(), String::new());
        for field in Self::lenient_fields(body) {
            match field.kind {
                b'C' => code = String::from_utf8_lossy(field.value).into_owned(),
                b'M' => message = String::from_utf8_lossy(field.value).into_owned(),
                _ => {}
            }
        }
        (code, message)
    }

    /// The value of the first field of type `kind`.
    pub fn field(&self, kind: u8) -> Option<&'a [u8]> {
        self.fields()
            .find(|field| field.kind == kind)
            .map(|field| field.value)
    }

    /// The SQLSTATE (`C`).
    pub fn sqlstate(&self) -> Option<&'a [u8]> {
        self.field(b'C')
    }

    /// The primary message (`M`).
    pub fn message(&self) -> Option<&'a [u8]> {
        self.field(b'M')
    }

    /// An ErrorResponse of `fields` (encoded into `out`, which the returned value borrows).
    pub fn encode_fields(fields: &[ErrorField<'_>], out: &'a mut Vec<u8>) -> Self {
        out.clear();
        for field in fields {
            out.push(field.kind);
            out.extend_from_slice(field.value);
            out.push(0);
        }
        out.push(0);
        ErrorResponse { body: out }
    }
}

impl<'a> Message<'a> for ErrorResponse<'a> {
    const TAG: u8 = backend::ERROR_RESPONSE;
    const NAME: &'static str = "ErrorResponse";

    fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut reader = BodyReader::new(body, Self::NAME);
        loop {
            if reader.u8()? == 0 {
                break;
            }
            reader.cstr()?;
        }
        reader.finish()?;
        Ok(ErrorResponse { body })
    }

    fn body_len(&self) -> usize {
        self.body.len()
    }

    fn encode_body(&self, out: &mut BytesMut) {
        out.put_slice(self.body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::messages::round_trip::encoded;

    #[test]
    fn round_trip() {
        let mut storage = Vec::new();
        let fields = [
            ErrorField {
                kind: b'S',
                value: b"ERROR",
            },
            ErrorField {
                kind: b'C',
                value: b"42P01",
            },
            ErrorField {
                kind: b'M',
                value: b"no such table",
            },
        ];
        let error = ErrorResponse::encode_fields(&fields, &mut storage);
        let bytes = encoded(&error);
        assert_eq!(&bytes[5..], b"SERROR\0C42P01\0Mno such table\0\0");
        let decoded = ErrorResponse::decode_message(&bytes).unwrap();
        assert_eq!(decoded, error);
        assert_eq!(decoded.fields().collect::<Vec<_>>(), fields);
        assert_eq!(decoded.sqlstate(), Some(&b"42P01"[..]));
        assert_eq!(decoded.message(), Some(&b"no such table"[..]));
        assert_eq!(decoded.field(b'H'), None);
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(ErrorResponse::decode(b"SERROR\0Mtruncated").is_err());
        assert!(ErrorResponse::decode(b"SERROR\0").is_err(), "no terminator");
        assert!(ErrorResponse::decode(b"SERROR\0\0x").is_err());
        assert!(ErrorResponse::decode(b"").is_err());
        assert!(ErrorResponse::decode(b"\0").is_ok());
    }

    #[test]
    fn lenient_fields_stop_at_the_first_cut() {
        let kinds = |body: &'static [u8]| ErrorResponse::lenient_fields(body).collect::<Vec<_>>();
        let severity = ErrorField {
            kind: b'S',
            value: b"FATAL",
        };
        assert_eq!(kinds(b"SFATAL\0Mtrunc"), [severity]);
        assert_eq!(kinds(b"SFATAL\0"), [severity]);
        assert_eq!(kinds(b"SFATAL\0\0Mafter the end\0"), [severity]);
        assert_eq!(kinds(b"SFAT"), []);
        assert_eq!(kinds(b""), []);
    }
}
