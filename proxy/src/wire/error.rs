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
    fn strips_nul_bytes() {
        let buf = fatal("08006", "a\0b");
        assert!(buf[5..].windows(4).any(|w| w == b"Mab\0"));
    }
}
