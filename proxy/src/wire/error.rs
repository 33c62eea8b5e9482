//! ErrorResponse messages duet sends on its own behalf (pgwire's codec does the encoding).

use bytes::BytesMut;
use pgwire::messages::response::ErrorResponse;
use pgwire::messages::Message;

/// SQLSTATE 08P01 protocol_violation.
pub const PROTOCOL_VIOLATION: &str = "08P01";
/// SQLSTATE 08006 connection_failure.
pub const CONNECTION_FAILURE: &str = "08006";
/// SQLSTATE 57P01 admin_shutdown.
pub const ADMIN_SHUTDOWN: &str = "57P01";
/// SQLSTATE 28000 invalid_authorization_specification.
pub const INVALID_AUTHORIZATION: &str = "28000";
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
    let mut fields = vec![
        (b'S', severity.as_str().to_owned()),
        (b'V', severity.as_str().to_owned()),
        (b'C', code.to_owned()),
        (b'M', sanitize(message)),
    ];
    if let Some(hint) = hint {
        fields.push((b'H', sanitize(hint)));
    }
    let response = ErrorResponse::new(fields);
    let mut buf = BytesMut::with_capacity(response.message_length() + 1);
    // ErrorResponse allows messages up to i32::MAX bytes, so encoding cannot fail for ours; an empty
    // buffer (nothing sent) would be the harmless fallback.
    if response.encode(&mut buf).is_err() {
        buf.clear();
    }
    buf
}

/// A FATAL ErrorResponse.
pub fn fatal(code: &str, message: &str) -> BytesMut {
    error_response(Severity::Fatal, code, message, None)
}

/// Whether an ErrorResponse body (the fields, without type and length) ends the session: severity
/// FATAL or PANIC. The non-localized severity (`V`, PostgreSQL 9.6+) is preferred, since `S` is
/// translated under a non-English `lc_messages`; `S` is the fallback for servers without `V`.
pub fn ends_session(body: &[u8]) -> bool {
    let mut localized = None;
    let mut rest = body;
    while let Some((&kind, tail)) = rest.split_first() {
        if kind == 0 {
            break;
        }
        let Some(end) = tail.iter().position(|&b| b == 0) else {
            break;
        };
        let value = &tail[..end];
        match kind {
            b'V' => return matches!(value, b"FATAL" | b"PANIC"),
            b'S' => localized = Some(value),
            _ => {}
        }
        rest = &tail[end + 1..];
    }
    matches!(localized, Some(b"FATAL" | b"PANIC"))
}

/// Field values are C strings: a NUL inside would cut the message, so drop any.
fn sanitize(text: &str) -> String {
    text.replace('\0', "")
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
