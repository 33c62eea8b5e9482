//! Authentication: the server's authentication requests (and its final AuthenticationOk).

use bytes::{BufMut, BytesMut};

use super::body::BodyReader;
use super::{DecodeError, Message};
use crate::wire::backend;

/// The request codes PostgreSQL defines (the Int32 after the length).
pub mod code {
    /// AuthenticationOk: the client is in.
    pub const OK: i32 = 0;
    /// AuthenticationKerberosV5 (no longer sent by PostgreSQL).
    pub const KERBEROS_V5: i32 = 2;
    /// AuthenticationCleartextPassword.
    pub const CLEARTEXT_PASSWORD: i32 = 3;
    /// AuthenticationMD5Password, with a 4-byte salt.
    pub const MD5_PASSWORD: i32 = 5;
    /// AuthenticationGSS.
    pub const GSS: i32 = 7;
    /// AuthenticationGSSContinue, with GSSAPI or SSPI data.
    pub const GSS_CONTINUE: i32 = 8;
    /// AuthenticationSSPI.
    pub const SSPI: i32 = 9;
    /// AuthenticationSASL, with the mechanism list.
    pub const SASL: i32 = 10;
    /// AuthenticationSASLContinue, with the server's SASL challenge.
    pub const SASL_CONTINUE: i32 = 11;
    /// AuthenticationSASLFinal, with the server's SASL outcome.
    pub const SASL_FINAL: i32 = 12;
}

/// An Authentication message (`R`): a request code and what that request carries.
///
/// duet relays these between backend and client; it reads the code (to know whether the client
/// must answer) and edits the SASL mechanism list (see [`crate::wire::auth`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authentication<'a> {
    /// AuthenticationOk (0).
    Ok,
    /// AuthenticationCleartextPassword (3): the client answers with a PasswordMessage.
    CleartextPassword,
    /// AuthenticationMD5Password (5): the client answers with a hashed PasswordMessage.
    Md5Password {
        /// The salt the client hashes with.
        salt: [u8; 4],
    },
    /// AuthenticationSASL (10): the client answers with a SASLInitialResponse.
    Sasl(SaslMechanisms<'a>),
    /// AuthenticationSASLContinue (11): the client answers with a SASLResponse.
    SaslContinue {
        /// The mechanism's challenge.
        data: &'a [u8],
    },
    /// AuthenticationSASLFinal (12).
    SaslFinal {
        /// The mechanism's outcome (SCRAM: the server's signature).
        data: &'a [u8],
    },
    /// Any other request (KerberosV5, GSS, GSSContinue, SSPI, or a code this version of the
    /// protocol does not define), its data uninterpreted. [`Message::decode`] gives the variants
    /// above for their codes; this one is never built for them.
    Other {
        /// The request code.
        code: i32,
        /// Whatever follows the code.
        data: &'a [u8],
    },
}

impl Authentication<'_> {
    /// The request code.
    pub fn code(&self) -> i32 {
        match self {
            Authentication::Ok => code::OK,
            Authentication::CleartextPassword => code::CLEARTEXT_PASSWORD,
            Authentication::Md5Password { .. } => code::MD5_PASSWORD,
            Authentication::Sasl(_) => code::SASL,
            Authentication::SaslContinue { .. } => code::SASL_CONTINUE,
            Authentication::SaslFinal { .. } => code::SASL_FINAL,
            Authentication::Other { code, .. } => *code,
        }
    }

    /// Whether the client must answer this request with a message of its own (a
    /// PasswordMessage, SASLInitialResponse, SASLResponse or GSSResponse, all type `p`).
    pub fn expects_response(&self) -> bool {
        matches!(
            self.code(),
            code::CLEARTEXT_PASSWORD
                | code::MD5_PASSWORD
                | code::GSS
                | code::GSS_CONTINUE
                | code::SSPI
                | code::SASL
                | code::SASL_CONTINUE
        )
    }
}

/// The mechanism list of an AuthenticationSASL: names, each NUL-terminated, and an empty name
/// to end the list. Validated when decoded; [`SaslMechanisms::names`] reads the names again from
/// the bytes (nothing is allocated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaslMechanisms<'a> {
    /// The names and the terminating zero, as sent.
    list: &'a [u8],
}

impl<'a> SaslMechanisms<'a> {
    /// The mechanism names, in the server's order of preference.
    pub fn names(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut reader = BodyReader::new(self.list, "AuthenticationSASL");
        // Validated by `decode` (or built by `encode_names`): every name reads, up to the empty one.
        std::iter::from_fn(move || reader.cstr().ok().filter(|name| !name.is_empty()))
    }

    /// A list of `names` (encoded into `out`, which the returned value borrows). A name with a NUL
    /// inside would end the list early: callers pass names they read from a list.
    pub fn encode_names<'n>(
        names: impl IntoIterator<Item = &'n [u8]>,
        out: &'a mut Vec<u8>,
    ) -> Self {
        out.clear();
        for name in names {
            out.extend_from_slice(name);
            out.push(0);
        }
        out.push(0);
        SaslMechanisms { list: out }
    }

    /// Reads a list from `reader`, up to and including its empty name.
    fn read(reader: &mut BodyReader<'a>) -> Result<Self, DecodeError> {
        let list = reader.rest();
        let mut names = BodyReader::new(list, <Authentication as Message>::NAME);
        while !names.cstr()?.is_empty() {}
        names.finish()?;
        Ok(SaslMechanisms { list })
    }
}

impl<'a> Message<'a> for Authentication<'a> {
    const TAG: u8 = backend::AUTHENTICATION;
    const NAME: &'static str = "Authentication";

    fn decode(body: &'a [u8]) -> Result<Self, DecodeError> {
        let mut reader = BodyReader::new(body, Self::NAME);
        let request = match reader.i32()? {
            code::OK => Authentication::Ok,
            code::CLEARTEXT_PASSWORD => Authentication::CleartextPassword,
            code::MD5_PASSWORD => {
                let salt = reader.bytes(4)?;
                Authentication::Md5Password {
                    salt: [salt[0], salt[1], salt[2], salt[3]],
                }
            }
            code::SASL => Authentication::Sasl(SaslMechanisms::read(&mut reader)?),
            code::SASL_CONTINUE => Authentication::SaslContinue {
                data: reader.rest(),
            },
            code::SASL_FINAL => Authentication::SaslFinal {
                data: reader.rest(),
            },
            code => Authentication::Other {
                code,
                data: reader.rest(),
            },
        };
        reader.finish()?;
        Ok(request)
    }

    fn body_len(&self) -> usize {
        4 + match self {
            Authentication::Ok | Authentication::CleartextPassword => 0,
            Authentication::Md5Password { .. } => 4,
            Authentication::Sasl(mechanisms) => mechanisms.list.len(),
            Authentication::SaslContinue { data }
            | Authentication::SaslFinal { data }
            | Authentication::Other { data, .. } => data.len(),
        }
    }

    fn encode_body(&self, out: &mut BytesMut) {
        out.put_i32(self.code());
        match self {
            Authentication::Ok | Authentication::CleartextPassword => {}
            Authentication::Md5Password { salt } => out.put_slice(salt),
            Authentication::Sasl(mechanisms) => out.put_slice(mechanisms.list),
            Authentication::SaslContinue { data }
            | Authentication::SaslFinal { data }
            | Authentication::Other { data, .. } => out.put_slice(data),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::messages::round_trip::encoded;

    #[test]
    fn round_trip() {
        let mut storage = Vec::new();
        let mechanisms = SaslMechanisms::encode_names(
            [&b"SCRAM-SHA-256-PLUS"[..], b"SCRAM-SHA-256"],
            &mut storage,
        );
        let requests = [
            Authentication::Ok,
            Authentication::CleartextPassword,
            Authentication::Md5Password { salt: *b"salt" },
            Authentication::Sasl(mechanisms),
            Authentication::SaslContinue {
                data: b"r=abc,s=xyz,i=4096",
            },
            Authentication::SaslFinal { data: b"v=sig" },
            Authentication::Other {
                code: code::GSS_CONTINUE,
                data: b"token",
            },
        ];
        for request in requests {
            let bytes = encoded(&request);
            assert_eq!(
                i32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]),
                request.code()
            );
            assert_eq!(Authentication::decode_message(&bytes), Ok(request));
        }
        assert_eq!(
            encoded(&Authentication::Sasl(mechanisms)),
            b"R\0\0\0\x2a\0\0\0\x0aSCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"
        );
        assert_eq!(
            mechanisms.names().collect::<Vec<_>>(),
            [&b"SCRAM-SHA-256-PLUS"[..], b"SCRAM-SHA-256"]
        );
        assert_eq!(encoded(&Authentication::Ok), b"R\0\0\0\x08\0\0\0\0");
    }

    #[test]
    fn which_requests_the_client_answers() {
        let answered = |code, data: &'static [u8]| {
            Authentication::decode(&[&i32::to_be_bytes(code)[..], data].concat())
                .unwrap()
                .expects_response()
        };
        assert!(answered(code::CLEARTEXT_PASSWORD, b""));
        assert!(answered(code::MD5_PASSWORD, b"salt"));
        assert!(answered(code::GSS, b""));
        assert!(answered(code::GSS_CONTINUE, b"token"));
        assert!(answered(code::SSPI, b""));
        assert!(answered(code::SASL, b"SCRAM-SHA-256\0\0"));
        assert!(answered(code::SASL_CONTINUE, b"r=abc"));
        assert!(!answered(code::OK, b""));
        assert!(!answered(code::SASL_FINAL, b"v=sig"));
        assert!(!answered(code::KERBEROS_V5, b""));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(Authentication::decode(b"").is_err());
        assert!(Authentication::decode(b"\0\0\0").is_err());
        assert!(
            Authentication::decode(b"\0\0\0\0x").is_err(),
            "Ok with data"
        );
        assert!(Authentication::decode(b"\0\0\0\x03x").is_err());
        assert!(
            Authentication::decode(b"\0\0\0\x05sal").is_err(),
            "short salt"
        );
        assert!(Authentication::decode(b"\0\0\0\x05salts").is_err());
        // A mechanism list must end with an empty name, and nothing may follow it.
        assert!(Authentication::decode(b"\0\0\0\x0aSCRAM-SHA-256\0").is_err());
        assert!(Authentication::decode(b"\0\0\0\x0aSCRAM-SHA-256").is_err());
        assert!(Authentication::decode(b"\0\0\0\x0a").is_err());
        assert!(Authentication::decode(b"\0\0\0\x0aSCRAM-SHA-256\0\0x").is_err());
        // An empty list is well formed (PostgreSQL never sends one).
        assert!(Authentication::decode(b"\0\0\0\x0a\0").is_ok());
    }
}
