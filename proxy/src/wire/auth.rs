//! Authentication messages duet looks into while relaying them.
//!
//! The only change duet makes is to AuthenticationSASL: it drops SCRAM-SHA-256-PLUS, because the
//! client's TLS session is with duet, not with the backend, so channel binding could never match.
//!
//! When duet's link to the backend is TLS too, the backend offers PLUS, and a client that is on
//! TLS with duet answers the stripped list with the GS2 flag `y` ("I support channel binding, you
//! seem not to"). PostgreSQL refuses that as a possible downgrade, and no relay can fix it: the
//! flag is covered by the client's proof. [`client_expects_channel_binding`] lets duet say so
//! clearly instead.

use bytes::BytesMut;
use pgwire::messages::startup::Authentication;
use pgwire::messages::{DecodeContext, Message, ProtocolVersion};

/// The SASL mechanism duet hides from clients.
pub const SCRAM_PLUS: &str = "SCRAM-SHA-256-PLUS";

/// Authentication request codes.
pub mod code {
    /// AuthenticationOk.
    pub const OK: i32 = 0;
    /// AuthenticationSASL (mechanism list).
    pub const SASL: i32 = 10;
    /// AuthenticationSASLFinal.
    pub const SASL_FINAL: i32 = 12;
}

/// The request code of an Authentication message (`msg` is the whole message), if well formed.
pub fn request_code(msg: &[u8]) -> Option<i32> {
    let code = msg.get(5..9)?;
    Some(i32::from_be_bytes([code[0], code[1], code[2], code[3]]))
}

/// Whether the client must answer this authentication request with a message of its own.
pub fn expects_client_response(code: i32) -> bool {
    // 3 cleartext, 5 md5, 7 GSS, 8 GSS continue, 9 SSPI, 10 SASL, 11 SASL continue.
    matches!(code, 3 | 5 | 7 | 8 | 9 | 10 | 11)
}

/// Rewrites an AuthenticationSASL message without SCRAM-SHA-256-PLUS. Returns `None` if `msg` is
/// not a well-formed AuthenticationSASL message or offers nothing else.
pub fn strip_channel_binding(msg: &[u8]) -> Option<BytesMut> {
    // pgwire's decoder reads the mechanism list safely but assumes a complete message of at least
    // the 4-byte code; check that before handing it over.
    if msg.len() < 10 || request_code(msg) != Some(code::SASL) || msg.last() != Some(&0) {
        return None;
    }
    let ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
    let decoded = Authentication::decode(&mut BytesMut::from(msg), &ctx).ok()??;
    let Authentication::SASL(mechanisms) = decoded else {
        return None;
    };
    let kept: Vec<String> = mechanisms.into_iter().filter(|m| m != SCRAM_PLUS).collect();
    if kept.is_empty() {
        return None;
    }
    let response = Authentication::SASL(kept);
    let mut out = BytesMut::with_capacity(response.message_length() + 1);
    response.encode(&mut out).ok()?;
    Some(out)
}

/// Whether `msg` (a whole frontend message) is a SASLInitialResponse whose GS2 header says the
/// client supports channel binding but thinks the server does not (`y,`).
pub fn client_expects_channel_binding(msg: &[u8]) -> bool {
    let Some(body) = msg.get(5..) else {
        return false;
    };
    if msg[0] != b'p' {
        return false;
    }
    // Mechanism name (C string), then the Int32 length of the client-first-message and the
    // message itself.
    let Some(end) = body.iter().position(|&b| b == 0) else {
        return false;
    };
    body.get(end + 5..)
        .is_some_and(|data| data.starts_with(b"y,"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sasl(mechanisms: &[&str]) -> BytesMut {
        let mut out = BytesMut::new();
        Authentication::SASL(mechanisms.iter().map(|m| m.to_string()).collect())
            .encode(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn drops_scram_plus_only() {
        let offered = sasl(&["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]);
        let stripped = strip_channel_binding(&offered).unwrap();
        assert_eq!(stripped, sasl(&["SCRAM-SHA-256"]));
        assert_eq!(request_code(&stripped), Some(code::SASL));
    }

    fn initial_response(data: &[u8]) -> Vec<u8> {
        let mut body = b"SCRAM-SHA-256\0".to_vec();
        body.extend_from_slice(&(data.len() as i32).to_be_bytes());
        body.extend_from_slice(data);
        let mut msg = vec![b'p'];
        msg.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        msg.extend_from_slice(&body);
        msg
    }

    #[test]
    fn finds_clients_that_support_channel_binding() {
        assert!(client_expects_channel_binding(&initial_response(
            b"y,,n=,r=abc"
        )));
        assert!(!client_expects_channel_binding(&initial_response(
            b"n,,n=,r=abc"
        )));
        assert!(!client_expects_channel_binding(&initial_response(
            b"p=tls-server-end-point,,n=,r=abc"
        )));
        assert!(!client_expects_channel_binding(b"p\0\0\0\x04"));
        assert!(!client_expects_channel_binding(b"p\0\0\0\x09abcd"));
        assert!(!client_expects_channel_binding(b"x"));
        // A password message (md5, cleartext) is not SASL.
        assert!(!client_expects_channel_binding(b"p\0\0\0\x08y,\0\0"));
    }

    #[test]
    fn refuses_other_or_broken_messages() {
        assert!(strip_channel_binding(&sasl(&["SCRAM-SHA-256-PLUS"])).is_none());
        assert!(strip_channel_binding(b"R\0\0\0\x08\0\0\0\0").is_none());
        assert!(strip_channel_binding(b"R\0\0").is_none());
        assert!(expects_client_response(5));
        assert!(!expects_client_response(code::SASL_FINAL));
    }
}
