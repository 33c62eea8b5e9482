//! ErrorResponse messages duet sends on its own behalf, and the one thing duet reads in the
//! backend's: whether it ends the session.

use std::borrow::Cow;

use bytes::BytesMut;

use super::messages::{ErrorField, ErrorResponse, Message};

/// SQLSTATE 08P01 protocol_violation.
pub const PROTOCOL_VIOLATION: &str = "08P01";
/// SQLSTATE 08006 connection_failure.
pub const CONNECTION_FAILURE: &str = "08006";
/// SQLSTATE 57P01 admin_shutdown.
pub const ADMIN_SHUTDOWN: &str = "57P01";
/// SQLSTATE 28000 invalid_authorization_specification.
pub const INVALID_AUTHORIZATION: &str = "28000";
/// SQLSTATE 28P01 invalid_password: a wrong password, or a user that does not exist (PostgreSQL
/// does not tell the two apart).
pub const INVALID_PASSWORD: &str = "28P01";
/// SQLSTATE 0A000 feature_not_supported.
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";

/// Severity of an error duet reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The statement failed; the session goes on.
    Error,
    /// The session is closed after this message.
    Fatal,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        }
    }
}

/// Builds an ErrorResponse: severity (localized and not), SQLSTATE, message and optional hint.
pub fn error_response(
    severity: Severity,
    code: &str,
    message: &str,
    hint: Option<&str>,
) -> BytesMut {
    let severity = severity.as_str().as_bytes();
    let message = sanitize(message);
    let hint = hint.map(sanitize);
    let mut fields = vec![
        ErrorField {
            kind: b'S',
            value: severity,
        },
        ErrorField {
            kind: b'V',
            value: severity,
        },
        ErrorField {
            kind: b'C',
            value: code.as_bytes(),
        },
        ErrorField {
            kind: b'M',
            value: message.as_bytes(),
        },
    ];
    if let Some(hint) = &hint {
        fields.push(ErrorField {
            kind: b'H',
            value: hint.as_bytes(),
        });
    }
    let mut body = Vec::new();
    ErrorResponse::encode_fields(&fields, &mut body).to_bytes()
}

/// A FATAL ErrorResponse.
pub fn fatal(code: &str, message: &str) -> BytesMut {
    error_response(Severity::Fatal, code, message, None)
}

/// Whether an ErrorResponse body (the fields, without type and length) ends the session: severity
/// FATAL or PANIC. The non-localized severity (`V`, PostgreSQL 9.6+) is preferred, since `S` is
/// translated under a non-English `lc_messages`; `S` is the fallback for servers without `V`.
///
/// The body is read leniently ([`ErrorResponse::lenient_fields`]): the fields before a cut still
/// count, as they always have, where [`ErrorResponse`]'s decoder would refuse the whole body.
pub fn ends_session(body: &[u8]) -> bool {
    let mut localized = None;
    for field in ErrorResponse::lenient_fields(body) {
        match field.kind {
            b'V' => return matches!(field.value, b"FATAL" | b"PANIC"),
            b'S' => localized = Some(field.value),
            _ => {}
        }
    }
    matches!(localized, Some(b"FATAL" | b"PANIC"))
}

/// Field values are C strings: a NUL inside would cut the message, so drop any.
fn sanitize(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', ""))
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_fields_in_wire_format() {
        let buf = error_response(Severity::Fatal, "08P01", "bad", Some("fix it"));
        assert_eq!(buf[0], b'E');
        let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        assert_eq!(len + 1, buf.len());
        let body = &buf[5..];
        assert_eq!(body, b"SFATAL\0VFATAL\0C08P01\0Mbad\0Hfix it\0\0");
    }

    #[test]
    fn fatal_and_panic_end_the_session() {
        let body = |buf: &BytesMut| buf[5..].to_vec();
        assert!(ends_session(&body(&fatal("57P01", "terminating"))));
        assert!(!ends_session(&body(&error_response(
            Severity::Error,
            "42P01",
            "no such table",
            None
        ))));
        assert!(ends_session(b"SPANIC\0CXX000\0Mboom\0\0"));
        // V wins over a translated S; S alone is enough without V.
        assert!(ends_session(b"SSCHWERWIEGEND\0VFATAL\0C57P01\0\0"));
        assert!(!ends_session(b"SFEHLER\0VERROR\0C42P01\0\0"));
        assert!(ends_session(b"SFATAL\0C57P01\0\0"));
        // Truncated or empty bodies are not a goodbye.
        assert!(!ends_session(b"SFAT"));
        assert!(!ends_session(b""));
    }

    #[test]
    fn strips_nul_bytes() {
        let buf = fatal("08006", "a\0b");
        assert!(buf[5..].windows(4).any(|w| w == b"Mab\0"));
    }
}
