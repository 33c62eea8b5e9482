//! Authentication messages duet looks into while relaying them (typed in [`super::messages`]:
//! [`Authentication`] and [`SaslInitialResponse`]).
//!
//! The only change duet makes is to AuthenticationSASL: it drops SCRAM-SHA-256-PLUS, because the
//! client's TLS session is with duet, not with the backend, so channel binding could never match.
//!
//! When duet's link to the backend is TLS too, the backend offers PLUS, and a client that is on
//! TLS with duet answers the stripped list with the GS2 flag `y` ("I support channel binding, you
//! seem not to"). PostgreSQL refuses that as a possible downgrade, and no relay can fix it: the
//! flag is covered by the client's proof. [`client_expects_channel_binding`] lets duet say so
//! clearly instead.
//!
//! [`Authentication`]: super::messages::Authentication

use super::messages::{SaslInitialResponse, SaslMechanisms};

/// The SASL mechanism duet hides from clients.
pub const SCRAM_PLUS: &[u8] = b"SCRAM-SHA-256-PLUS";

/// The backend's SASL mechanism list without SCRAM-SHA-256-PLUS, written into `out` (which the
/// returned list borrows). `None` when the list does not offer PLUS, or offers nothing else: the
/// list is relayed as the backend sent it.
pub fn strip_channel_binding<'o>(
    offered: &SaslMechanisms<'_>,
    out: &'o mut Vec<u8>,
) -> Option<SaslMechanisms<'o>> {
    if !offered.names().any(|name| name == SCRAM_PLUS) {
        return None;
    }
    if offered.names().all(|name| name == SCRAM_PLUS) {
        return None;
    }
    Some(SaslMechanisms::encode_names(
        offered.names().filter(|&name| name != SCRAM_PLUS),
        out,
    ))
}

/// Whether a SASLInitialResponse's GS2 header says the client supports channel binding but
/// thinks the server does not (`y,`).
pub fn client_expects_channel_binding(response: &SaslInitialResponse<'_>) -> bool {
    response.data.is_some_and(|data| data.starts_with(b"y,"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::messages::{Authentication, Message};

    fn names<'a>(mechanisms: &SaslMechanisms<'a>) -> Vec<&'a [u8]> {
        mechanisms.names().collect()
    }

    #[test]
    fn drops_scram_plus_only() {
        let mut offered = Vec::new();
        let offered = SaslMechanisms::encode_names([SCRAM_PLUS, b"SCRAM-SHA-256"], &mut offered);
        let mut out = Vec::new();
        let stripped = strip_channel_binding(&offered, &mut out).unwrap();
        assert_eq!(names(&stripped), [b"SCRAM-SHA-256"]);
        // The bytes PostgreSQL would send for that list.
        assert_eq!(
            Authentication::Sasl(stripped).to_bytes(),
            &b"R\0\0\0\x17\0\0\0\x0aSCRAM-SHA-256\0\0"[..]
        );
    }

    #[test]
    fn leaves_lists_without_plus_or_with_only_plus() {
        let mut storage = Vec::new();
        let mut out = Vec::new();
        let plain = SaslMechanisms::encode_names([&b"SCRAM-SHA-256"[..]], &mut storage);
        assert!(strip_channel_binding(&plain, &mut out).is_none());
        let only_plus = SaslMechanisms::encode_names([SCRAM_PLUS], &mut storage);
        assert!(strip_channel_binding(&only_plus, &mut out).is_none());
        let empty = SaslMechanisms::encode_names([], &mut storage);
        assert!(strip_channel_binding(&empty, &mut out).is_none());
    }

    fn initial_response(data: &[u8]) -> SaslInitialResponse<'_> {
        SaslInitialResponse {
            mechanism: b"SCRAM-SHA-256",
            data: Some(data),
        }
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
        assert!(!client_expects_channel_binding(&initial_response(b"")));
        assert!(!client_expects_channel_binding(&SaslInitialResponse {
            mechanism: b"SCRAM-SHA-256",
            data: None,
        }));
        // A password message (md5, cleartext) is not a SASLInitialResponse.
        assert!(SaslInitialResponse::decode(b"y,\0\0").is_err());
    }
}
