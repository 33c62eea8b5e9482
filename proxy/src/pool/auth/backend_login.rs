//! duet logging a pooled connection in to the backend: the client side of PostgreSQL's startup,
//! from the StartupMessage to the first ReadyForQuery.
//!
//! duet answers the backend's authentication request itself: trust needs nothing, cleartext and
//! md5 need the user's password, SCRAM-SHA-256 needs the password or the ClientKey recovered
//! from the user's own login to duet ([`ScramSecret`]). What the backend reports on the way
//! (its parameters, the cancel key) is collected for the pool.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};

use super::scram::{ScramClient, ScramError, ScramSecret, SCRAM_SHA_256, SCRAM_SHA_256_PLUS};
use crate::wire::backend as tag;
use crate::wire::messages::{
    Authentication, BackendKeyData, DecodeError, ErrorResponse, Message, ParameterStatus,
    PasswordMessage, SaslInitialResponse, SaslResponse,
};
use crate::wire::read::{read_message, write_flushed, ReadError};
use crate::wire::startup::{parse_packet, StartupError, StartupPacket};

/// Largest message accepted from the backend during login (the session-mode relay's limit).
const MAX_BACKEND_STARTUP_MESSAGE: usize = 16 * 1024 * 1024;

/// A logged-in backend connection, ready for queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedIn {
    /// The ParameterStatus pairs the backend sent, in order (`server_version`,
    /// `client_encoding`, `TimeZone`, …).
    pub parameters: Vec<(String, String)>,
    /// The backend's process id from BackendKeyData (0 if the server sent none, which PostgreSQL
    /// always does but some servers speaking its protocol do not).
    pub pid: i32,
    /// The secret key from BackendKeyData, for CancelRequest: 4 bytes in protocol 3.0, up to 256
    /// in 3.2 (empty if the server sent none).
    pub key: Bytes,
}

/// Why a backend connection could not be logged in.
#[derive(Debug, thiserror::Error)]
pub enum BackendLoginError {
    /// The backend closed the connection.
    #[error("the backend closed the connection during login")]
    Closed,
    /// Reading from or writing to the backend failed.
    #[error("the backend connection failed during login: {0}")]
    Io(#[from] std::io::Error),
    /// The backend sent bytes that are not a protocol message.
    #[error("the backend sent an invalid message during login: {reason}")]
    Garbage {
        /// What the frame reader found wrong.
        reason: String,
    },
    /// A message from the backend does not decode.
    #[error("the backend sent a malformed message during login: {0}")]
    Decode(#[from] DecodeError),
    /// The backend sent a message that has no place in a login.
    #[error("the backend sent an unexpected message of type {tag:?} during login")]
    UnexpectedMessage {
        /// The message's type byte.
        tag: char,
    },
    /// The StartupMessage given to send is not one (only read for the user name md5 needs).
    #[error("the startup packet to send is invalid: {0}")]
    InvalidStartup(#[from] StartupError),
    /// The backend refused the login with an ErrorResponse, as it wrote it.
    #[error("the backend refused the login: {message} (SQLSTATE {code})")]
    Refused {
        /// The SQLSTATE (`28P01` wrong password, `3D000` no such database, `53300` too many
        /// connections, …).
        code: String,
        /// The server's message.
        message: String,
    },
    /// The backend asks for a method that needs the user's password, and duet does not have it.
    #[error(
        "the backend asks for {method} authentication, which needs the user's password: set a \
         `password` for this user in duet's [[pool.users]] list"
    )]
    NeedsPassword {
        /// The method: `password` (cleartext), `md5` or `scram-sha-256`, as pg_hba.conf names
        /// them.
        method: &'static str,
    },
    /// The backend asks for a method duet does not implement.
    #[error(
        "the backend asks for an authentication method duet does not support (request code \
         {code}); duet logs in with trust, password, md5 or scram-sha-256"
    )]
    UnsupportedMethod {
        /// The Authentication request code (2 Kerberos, 7 GSS, 9 SSPI, …).
        code: i32,
    },
    /// The backend offers SCRAM only with channel binding, which duet's logins do not do.
    #[error(
        "the backend offers only SCRAM-SHA-256-PLUS (SCRAM with channel binding), which duet's \
         pooled logins do not use; offer SCRAM-SHA-256 too"
    )]
    ChannelBindingOnly,
    /// The backend offers no SASL mechanism duet knows.
    #[error("the backend offers no SASL mechanism duet supports (offered: {offered})")]
    NoSaslMechanism {
        /// The mechanisms offered, comma-separated.
        offered: String,
    },
    /// The SCRAM exchange failed on duet's side (a wrong password shows as [`Refused`]).
    ///
    /// [`Refused`]: BackendLoginError::Refused
    #[error("SCRAM login to the backend failed: {0}")]
    Scram(#[from] ScramError),
    /// The backend said AuthenticationOk before finishing the SCRAM exchange it started: it
    /// skipped proving that it knows the user's verifier, which a genuine server never does.
    #[error("the backend accepted the login before completing the SCRAM exchange")]
    IncompleteScram,
}

/// Sends `startup` (a whole StartupMessage, see [`crate::wire::startup::encode_startup`]) and
/// logs in: answers the backend's authentication request with `secret`, then collects the
/// ParameterStatus pairs and BackendKeyData up to the first ReadyForQuery.
///
/// `buf` holds what was already read from the backend, and keeps what is read past the
/// ReadyForQuery (nothing, from a PostgreSQL server). Every write is flushed: the stream may be
/// TLS. NoticeResponse and NegotiateProtocolVersion are skipped: a notice during login is for a
/// person, and the pool has nobody to show it to; what the server negotiated does not change what
/// duet sends.
pub async fn log_in<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    startup: &[u8],
    secret: Option<&ScramSecret>,
) -> Result<LoggedIn, BackendLoginError> {
    write_flushed(stream, startup).await?;
    let mut logged_in = LoggedIn {
        parameters: Vec::new(),
        pid: 0,
        key: Bytes::new(),
    };
    // The SCRAM exchange under way, and whether its last step is done.
    let mut scram: Option<ScramClient> = None;
    let mut scram_done = false;
    loop {
        let message = match read_message(stream, buf, MAX_BACKEND_STARTUP_MESSAGE).await {
            Ok(message) => message,
            Err(ReadError::Closed) => return Err(BackendLoginError::Closed),
            Err(ReadError::Io(err)) => return Err(err.into()),
            Err(err @ (ReadError::Malformed(_) | ReadError::Startup(_))) => {
                return Err(BackendLoginError::Garbage {
                    reason: err.to_string(),
                })
            }
        };
        match message[0] {
            tag::AUTHENTICATION => match Authentication::decode_message(&message)? {
                Authentication::Ok => {
                    if scram.is_some() && !scram_done {
                        return Err(BackendLoginError::IncompleteScram);
                    }
                }
                Authentication::CleartextPassword => {
                    let password = password(secret, "password")?;
                    let answer = PasswordMessage {
                        password: password.as_bytes(),
                    };
                    write_flushed(stream, &answer.to_bytes()).await?;
                }
                Authentication::Md5Password { salt } => {
                    let password = password(secret, "md5")?;
                    let hash = postgres_protocol::authentication::md5_hash(
                        startup_user(startup)?.as_bytes(),
                        password.as_bytes(),
                        salt,
                    );
                    let answer = PasswordMessage {
                        password: hash.as_bytes(),
                    };
                    write_flushed(stream, &answer.to_bytes()).await?;
                }
                Authentication::Sasl(mechanisms) => {
                    if !mechanisms
                        .names()
                        .any(|name| name == SCRAM_SHA_256.as_bytes())
                    {
                        let plus = mechanisms
                            .names()
                            .any(|name| name == SCRAM_SHA_256_PLUS.as_bytes());
                        return Err(if plus {
                            BackendLoginError::ChannelBindingOnly
                        } else {
                            BackendLoginError::NoSaslMechanism {
                                offered: mechanisms
                                    .names()
                                    .map(String::from_utf8_lossy)
                                    .collect::<Vec<_>>()
                                    .join(", "),
                            }
                        });
                    }
                    let secret = secret.ok_or(BackendLoginError::NeedsPassword {
                        method: "scram-sha-256",
                    })?;
                    let client = ScramClient::new(secret.clone());
                    let first = client.client_first();
                    let answer = SaslInitialResponse {
                        mechanism: SCRAM_SHA_256.as_bytes(),
                        data: Some(&first),
                    };
                    write_flushed(stream, &answer.to_bytes()).await?;
                    scram = Some(client);
                }
                Authentication::SaslContinue { data } => {
                    let Some(client) = scram.as_mut() else {
                        return Err(out_of_exchange());
                    };
                    let client_final = client.server_first(data)?;
                    let answer = SaslResponse {
                        data: &client_final,
                    };
                    write_flushed(stream, &answer.to_bytes()).await?;
                }
                Authentication::SaslFinal { data } => {
                    let Some(client) = scram.as_ref() else {
                        return Err(out_of_exchange());
                    };
                    client.server_final(data)?;
                    scram_done = true;
                }
                Authentication::Other { code, .. } => {
                    return Err(BackendLoginError::UnsupportedMethod { code })
                }
            },
            tag::PARAMETER_STATUS => {
                let status = ParameterStatus::decode_message(&message)?;
                logged_in.parameters.push((
                    String::from_utf8_lossy(status.name).into_owned(),
                    String::from_utf8_lossy(status.value).into_owned(),
                ));
            }
            tag::BACKEND_KEY_DATA => {
                let data = BackendKeyData::decode_message(&message)?;
                logged_in.pid = data.pid;
                logged_in.key = Bytes::copy_from_slice(data.key);
            }
            tag::READY_FOR_QUERY => return Ok(logged_in),
            tag::ERROR_RESPONSE => return Err(refused(&message)),
            tag::NOTICE_RESPONSE | tag::NEGOTIATE_PROTOCOL_VERSION => {}
            other => return Err(BackendLoginError::UnexpectedMessage { tag: other as char }),
        }
    }
}

/// The password in `secret`, for a method (`method`) that needs it.
fn password<'s>(
    secret: Option<&'s ScramSecret>,
    method: &'static str,
) -> Result<&'s str, BackendLoginError> {
    match secret {
        Some(ScramSecret::Password(password)) => Ok(password),
        // A ClientKey only answers SCRAM; cleartext and md5 want the password itself.
        _ => Err(BackendLoginError::NeedsPassword { method }),
    }
}

/// The user of the StartupMessage duet sent (md5 hashes the password with it).
fn startup_user(startup: &[u8]) -> Result<String, BackendLoginError> {
    match parse_packet(startup)? {
        // A startup packet without a user is refused by the server before any authentication
        // request, so the empty name is never hashed.
        StartupPacket::Startup(message) => Ok(message.user().unwrap_or_default().to_owned()),
        _ => Err(StartupError::Malformed("not a StartupMessage").into()),
    }
}

/// A SASL continuation without an exchange under way.
fn out_of_exchange() -> BackendLoginError {
    BackendLoginError::UnexpectedMessage {
        tag: char::from(tag::AUTHENTICATION),
    }
}

/// The backend's ErrorResponse as an error: its SQLSTATE and message, read leniently so that a
/// refusal is reported as one even when its body is cut short.
fn refused(message: &[u8]) -> BackendLoginError {
    let body = message.get(5..).unwrap_or_default();
    let (code, text) = ErrorResponse::lenient_code_and_message(body);
    BackendLoginError::Refused {
        code,
        message: text,
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use tokio::io::{AsyncWriteExt, DuplexStream};
    use tokio::net::TcpStream;

    use super::*;
    use crate::pool::auth::scram::{ScramServer, ScramVerifier};
    use crate::wire::error::{fatal, INVALID_PASSWORD};
    use crate::wire::messages::SaslMechanisms;
    use crate::wire::read::read_startup_packet;
    use crate::wire::startup::encode_startup;

    /// Made by PostgreSQL 15 for the password `sekr3t`.
    use crate::pool::auth::scram::tests::PG_VERIFIER;

    fn app_startup() -> BytesMut {
        encode_startup(&[("user", "app"), ("database", "db")])
    }

    /// Logs in against `backend`, a task playing the server on the other end of a pipe.
    async fn against<F, Fut>(
        secret: Option<ScramSecret>,
        backend: F,
    ) -> Result<LoggedIn, BackendLoginError>
    where
        F: FnOnce(DuplexStream) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (mut ours, theirs) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(backend(theirs));
        let mut buf = BytesMut::new();
        let result = log_in(&mut ours, &mut buf, &app_startup(), secret.as_ref()).await;
        drop(ours);
        server.await.unwrap();
        result
    }

    /// The server's side after authentication: two parameters, the key, ReadyForQuery.
    async fn finish_startup(stream: &mut DuplexStream) {
        let mut out = BytesMut::new();
        Authentication::Ok.encode(&mut out);
        ParameterStatus {
            name: b"server_version",
            value: b"15.4",
        }
        .encode(&mut out);
        ParameterStatus {
            name: b"client_encoding",
            value: b"UTF8",
        }
        .encode(&mut out);
        BackendKeyData {
            pid: 4242,
            key: b"\x01\x02\x03\x04",
        }
        .encode(&mut out);
        out.extend_from_slice(b"Z\0\0\0\x05I");
        stream.write_all(&out).await.unwrap();
    }

    /// Reads the StartupMessage, then the client's next `p` message.
    async fn read_answer(stream: &mut DuplexStream, buf: &mut BytesMut) -> BytesMut {
        read_message(stream, buf, 1024).await.unwrap()
    }

    #[tokio::test]
    async fn trust_login_to_the_local_postgresql() {
        let mut stream = TcpStream::connect("127.0.0.1:5432")
            .await
            .expect("a PostgreSQL server on 127.0.0.1:5432 with trust authentication");
        let startup = encode_startup(&[
            ("user", "postgres"),
            ("database", "postgres"),
            ("application_name", "duet-pool-auth-test"),
        ]);
        let mut buf = BytesMut::new();
        let logged_in = log_in(&mut stream, &mut buf, &startup, None).await.unwrap();
        assert!(logged_in
            .parameters
            .iter()
            .any(|(name, value)| name == "server_version" && !value.is_empty()));
        assert!(logged_in
            .parameters
            .iter()
            .any(|(name, value)| name == "application_name" && value == "duet-pool-auth-test"));
        assert!(logged_in.pid > 0);
        assert_eq!(logged_in.key.len(), 4);
        assert!(buf.is_empty());

        // A database that does not exist: the server's own refusal.
        let mut stream = TcpStream::connect("127.0.0.1:5432").await.unwrap();
        let startup = encode_startup(&[("user", "postgres"), ("database", "duet_no_such_db")]);
        let err = log_in(&mut stream, &mut BytesMut::new(), &startup, None)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, BackendLoginError::Refused { code, message }
                if code == "3D000" && message.contains("duet_no_such_db")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn scram_login_with_a_password_and_with_a_client_key() {
        let scram_backend = |stream: DuplexStream| async move {
            let mut stream = stream;
            let mut buf = BytesMut::new();
            read_startup_packet(&mut stream, &mut buf).await.unwrap();
            let mut server = ScramServer::new(Some(ScramVerifier::parse(PG_VERIFIER).unwrap()));
            let mut list = Vec::new();
            let mechanisms = SaslMechanisms::encode_names(
                [&b"SCRAM-SHA-256-PLUS"[..], b"SCRAM-SHA-256"],
                &mut list,
            );
            stream
                .write_all(&Authentication::Sasl(mechanisms).to_bytes())
                .await
                .unwrap();
            let answer = read_answer(&mut stream, &mut buf).await;
            let initial = SaslInitialResponse::decode_message(&answer).unwrap();
            assert_eq!(initial.mechanism, b"SCRAM-SHA-256");
            let first = server.client_first(initial.data.unwrap()).unwrap();
            let message = Authentication::SaslContinue { data: &first }.to_bytes();
            stream.write_all(&message).await.unwrap();
            let answer = read_answer(&mut stream, &mut buf).await;
            let response = SaslResponse::decode_message(&answer).unwrap();
            match server.client_final(response.data) {
                Ok((last, _)) => {
                    let message = Authentication::SaslFinal { data: &last }.to_bytes();
                    stream.write_all(&message).await.unwrap();
                    finish_startup(&mut stream).await;
                }
                Err(_) => {
                    let message = "password authentication failed for user \"app\"";
                    let _ = stream.write_all(&fatal(INVALID_PASSWORD, message)).await;
                }
            }
        };
        let logged_in = against(Some(ScramSecret::Password("sekr3t".into())), scram_backend)
            .await
            .unwrap();
        assert_eq!(
            logged_in,
            LoggedIn {
                parameters: vec![
                    ("server_version".into(), "15.4".into()),
                    ("client_encoding".into(), "UTF8".into())
                ],
                pid: 4242,
                key: Bytes::from_static(b"\x01\x02\x03\x04"),
            }
        );

        // A ClientKey recovered by duet's own server side logs in too.
        let verifier = ScramVerifier::parse(PG_VERIFIER).unwrap();
        let mut server = ScramServer::new(Some(verifier.clone()));
        let mut client = ScramClient::new(ScramSecret::Password("sekr3t".into()));
        let first = server.client_first(&client.client_first()).unwrap();
        let (_, key) = server
            .client_final(&client.server_first(&first).unwrap())
            .unwrap();
        let secret = ScramSecret::ClientKey {
            key,
            verifier: Some(verifier),
        };
        assert!(against(Some(secret), scram_backend).await.is_ok());

        // A wrong password: the server's refusal.
        let err = against(Some(ScramSecret::Password("wrong".into())), scram_backend)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, BackendLoginError::Refused { code, .. } if code == "28P01"),
            "{err}"
        );

        // No secret at all: what to configure.
        let err = against(None, |mut stream: DuplexStream| async move {
            let mut list = Vec::new();
            let mechanisms = SaslMechanisms::encode_names([&b"SCRAM-SHA-256"[..]], &mut list);
            let message = Authentication::Sasl(mechanisms).to_bytes();
            let _ = stream.write_all(&message).await;
        })
        .await
        .unwrap_err();
        assert!(matches!(
            err,
            BackendLoginError::NeedsPassword {
                method: "scram-sha-256"
            }
        ));
        assert!(err.to_string().contains("[[pool.users]]"), "{err}");
    }

    #[tokio::test]
    async fn md5_and_cleartext_logins() {
        // The expected answer, computed by PostgreSQL itself:
        // 'md5' || md5(convert_to(md5('sekr3t' || 'app'), 'UTF8') || '\x01020304'::bytea)
        let md5_backend = |mut stream: DuplexStream| async move {
            let mut buf = BytesMut::new();
            read_startup_packet(&mut stream, &mut buf).await.unwrap();
            let request = Authentication::Md5Password { salt: [1, 2, 3, 4] };
            stream.write_all(&request.to_bytes()).await.unwrap();
            // duet hangs up when it has no password to answer with.
            let Ok(answer) = read_message(&mut stream, &mut buf, 1024).await else {
                return;
            };
            let password = PasswordMessage::decode_message(&answer).unwrap();
            if password.password == b"md5d2ad242dd2e116131273ea7dc1ad71f7" {
                finish_startup(&mut stream).await;
            } else {
                let message = "password authentication failed for user \"app\"";
                let _ = stream.write_all(&fatal(INVALID_PASSWORD, message)).await;
            }
        };
        let logged_in = against(Some(ScramSecret::Password("sekr3t".into())), md5_backend)
            .await
            .unwrap();
        assert_eq!(logged_in.pid, 4242);
        let err = against(Some(ScramSecret::Password("wrong".into())), md5_backend)
            .await
            .unwrap_err();
        assert!(matches!(err, BackendLoginError::Refused { .. }), "{err}");
        // A ClientKey cannot answer md5.
        let key_only = ScramSecret::ClientKey {
            key: {
                let verifier = ScramVerifier::parse(PG_VERIFIER).unwrap();
                let mut server = ScramServer::new(Some(verifier));
                let mut client = ScramClient::new(ScramSecret::Password("sekr3t".into()));
                let first = server.client_first(&client.client_first()).unwrap();
                server
                    .client_final(&client.server_first(&first).unwrap())
                    .unwrap()
                    .1
            },
            verifier: None,
        };
        let err = against(Some(key_only), md5_backend).await.unwrap_err();
        assert!(matches!(
            err,
            BackendLoginError::NeedsPassword { method: "md5" }
        ));

        let cleartext_backend = |mut stream: DuplexStream| async move {
            let mut buf = BytesMut::new();
            read_startup_packet(&mut stream, &mut buf).await.unwrap();
            let request = Authentication::CleartextPassword.to_bytes();
            stream.write_all(&request).await.unwrap();
            let answer = read_answer(&mut stream, &mut buf).await;
            let password = PasswordMessage::decode_message(&answer).unwrap();
            assert_eq!(password.password, b"sekr3t");
            finish_startup(&mut stream).await;
        };
        against(
            Some(ScramSecret::Password("sekr3t".into())),
            cleartext_backend,
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn servers_duet_cannot_log_in_to() {
        async fn sends(stream: DuplexStream, bytes: BytesMut) {
            let mut stream = stream;
            let mut buf = BytesMut::new();
            read_startup_packet(&mut stream, &mut buf).await.unwrap();
            let _ = stream.write_all(&bytes).await;
            // Read whatever duet answers until it hangs up, so that its writes do not fail first.
            let _ = tokio::io::copy(&mut stream, &mut tokio::io::sink()).await;
        }
        let secret = || Some(ScramSecret::Password("sekr3t".into()));

        let mut list = Vec::new();
        let plus_only = Authentication::Sasl(SaslMechanisms::encode_names(
            [&b"SCRAM-SHA-256-PLUS"[..]],
            &mut list,
        ))
        .to_bytes();
        let err = against(secret(), |s| sends(s, plus_only))
            .await
            .unwrap_err();
        assert!(
            matches!(err, BackendLoginError::ChannelBindingOnly),
            "{err}"
        );

        let mut list = Vec::new();
        let other = Authentication::Sasl(SaslMechanisms::encode_names(
            [&b"OAUTHBEARER"[..]],
            &mut list,
        ))
        .to_bytes();
        let err = against(secret(), |s| sends(s, other)).await.unwrap_err();
        assert!(
            matches!(&err, BackendLoginError::NoSaslMechanism { offered } if offered == "OAUTHBEARER"),
            "{err}"
        );

        let gss = Authentication::Other { code: 7, data: b"" }.to_bytes();
        let err = against(secret(), |s| sends(s, gss)).await.unwrap_err();
        assert!(matches!(
            err,
            BackendLoginError::UnsupportedMethod { code: 7 }
        ));

        // AuthenticationOk in the middle of SCRAM: the server skipped proving itself.
        let mut list = Vec::new();
        let mut skip = Authentication::Sasl(SaslMechanisms::encode_names(
            [&b"SCRAM-SHA-256"[..]],
            &mut list,
        ))
        .to_bytes();
        Authentication::Ok.encode(&mut skip);
        let err = against(secret(), |s| sends(s, skip)).await.unwrap_err();
        assert!(matches!(err, BackendLoginError::IncompleteScram), "{err}");

        // A continuation without an exchange.
        let stray = Authentication::SaslContinue { data: b"r=x" }.to_bytes();
        let err = against(secret(), |s| sends(s, stray)).await.unwrap_err();
        assert!(matches!(
            err,
            BackendLoginError::UnexpectedMessage { tag: 'R' }
        ));

        // Garbage, a message out of place, a closed connection.
        let garbage = BytesMut::from(&b"R\xff\xff\xff\xff"[..]);
        let err = against(secret(), |s| sends(s, garbage)).await.unwrap_err();
        assert!(matches!(err, BackendLoginError::Garbage { .. }), "{err}");
        let row = BytesMut::from(&b"D\0\0\0\x06\0\0"[..]);
        let err = against(secret(), |s| sends(s, row)).await.unwrap_err();
        assert!(matches!(
            err,
            BackendLoginError::UnexpectedMessage { tag: 'D' }
        ));
        let err = against(secret(), |mut stream: DuplexStream| async move {
            let mut buf = BytesMut::new();
            read_startup_packet(&mut stream, &mut buf).await.unwrap();
        })
        .await
        .unwrap_err();
        assert!(matches!(err, BackendLoginError::Closed), "{err}");
        let bad_status = BytesMut::from(&b"S\0\0\0\x06x\0"[..]);
        let err = against(secret(), |s| sends(s, bad_status))
            .await
            .unwrap_err();
        assert!(matches!(err, BackendLoginError::Decode(_)), "{err}");
    }
}
