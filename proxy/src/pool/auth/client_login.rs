//! duet as the server a client logs in to: the SCRAM-SHA-256 exchange PostgreSQL runs for a
//! `scram-sha-256` line in pg_hba.conf, with the same messages and the same errors.
//!
//! In transaction pooling duet cannot relay the exchange to a backend (backends are shared, and a
//! client's proof is bound to one exchange with one server), so duet checks the proof itself
//! against the user's verifier, and keeps the ClientKey the proof reveals to log the user's pooled
//! connections in ([`super::backend_login`]).

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::scram::{ClientKey, ScramError, ScramServer, ScramVerifier, SCRAM_SHA_256};
use crate::wire::error::{fatal, FEATURE_NOT_SUPPORTED, INVALID_PASSWORD, PROTOCOL_VIOLATION};
use crate::wire::frontend;
use crate::wire::messages::{
    Authentication, DecodeError, Message, SaslInitialResponse, SaslMechanisms, SaslResponse,
};
use crate::wire::read::{read_message, write_flushed, ReadError};

/// Largest authentication message accepted from a client (SCRAM messages are about 100 bytes;
/// the same limit as the session-mode relay).
const MAX_CLIENT_AUTH_MESSAGE: usize = 64 * 1024;

/// Why a client did not log in. The client has been told, with PostgreSQL's error, whenever it
/// is still there to hear it.
#[derive(Debug, thiserror::Error)]
pub enum ClientLoginError {
    /// The client closed the connection (or sent Terminate) during the exchange.
    #[error("the client closed the connection during authentication")]
    Closed,
    /// Reading from or writing to the client failed.
    #[error("the client connection failed during authentication: {0}")]
    Io(#[from] std::io::Error),
    /// The client sent bytes that are not a protocol message.
    #[error("the client sent an invalid authentication message: {reason}")]
    Garbage {
        /// What the frame reader found wrong.
        reason: String,
    },
    /// The client sent a message of another type than the authentication response.
    #[error("expected a SASL response from the client, got message type {tag:?}")]
    UnexpectedMessage {
        /// The message's type byte.
        tag: char,
    },
    /// The client's SASL message does not decode.
    #[error("the client's SASL message is malformed: {0}")]
    Decode(#[from] DecodeError),
    /// The client chose a mechanism duet did not offer.
    #[error("the client selected an invalid SASL authentication mechanism {mechanism:?}")]
    WrongMechanism {
        /// The mechanism's name, as sent (lossily decoded).
        mechanism: String,
    },
    /// The SCRAM exchange failed for another reason than the password.
    #[error("SCRAM authentication of user {user:?} failed: {source}")]
    Scram {
        /// The user from the startup packet.
        user: String,
        /// What was wrong.
        source: ScramError,
    },
    /// A wrong password, or a user duet does not know (the client cannot tell which, and neither
    /// can this error's Display: the caller logs it).
    #[error("password authentication failed for user {user:?}")]
    WrongPassword {
        /// The user from the startup packet.
        user: String,
    },
}

/// Runs SCRAM-SHA-256 with a client whose startup packet named `user`: sends AuthenticationSASL
/// (offering only `SCRAM-SHA-256`), reads the SASLInitialResponse, sends
/// AuthenticationSASLContinue, reads the SASLResponse, sends AuthenticationSASLFinal. Returns the
/// ClientKey the client's proof revealed.
///
/// It does not send AuthenticationOk: the caller does, followed by the ParameterStatus messages,
/// BackendKeyData and ReadyForQuery. `verifier` is `None` for a user duet does not know; the
/// exchange then runs to its end and fails like a wrong password, as in PostgreSQL. On failure the
/// client is sent PostgreSQL's FATAL (28P01 `password authentication failed for user "…"` for a
/// wrong password or unknown user, 08P01 for a protocol violation) and the stream is shut down.
/// `buf` holds what was already read from the client, and keeps what is read past the exchange.
pub async fn authenticate_client<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    user: &str,
    verifier: Option<&ScramVerifier>,
) -> Result<ClientKey, ClientLoginError> {
    let mut server = match verifier {
        Some(verifier) => ScramServer::new(Some(verifier.clone())),
        None => ScramServer::mock(user),
    };

    let mut list = Vec::new();
    let mechanisms = SaslMechanisms::encode_names([SCRAM_SHA_256.as_bytes()], &mut list);
    write_flushed(stream, &Authentication::Sasl(mechanisms).to_bytes()).await?;

    let message = read_response(stream, buf).await?;
    let initial: SaslInitialResponse = decode_or_refuse(stream, &message).await?;
    if initial.mechanism != SCRAM_SHA_256.as_bytes() {
        refuse(
            stream,
            PROTOCOL_VIOLATION,
            "client selected an invalid SASL authentication mechanism",
        )
        .await;
        return Err(ClientLoginError::WrongMechanism {
            mechanism: String::from_utf8_lossy(initial.mechanism).into_owned(),
        });
    }
    // A SASLInitialResponse without data (length -1) is an empty client-first-message to
    // PostgreSQL, which SCRAM refuses as malformed.
    let server_first = match server.client_first(initial.data.unwrap_or_default()) {
        Ok(server_first) => server_first,
        Err(err) => return Err(scram_failed(stream, user, err).await),
    };
    let continue_ = Authentication::SaslContinue {
        data: &server_first,
    };
    write_flushed(stream, &continue_.to_bytes()).await?;

    let message = read_response(stream, buf).await?;
    let response: SaslResponse = decode_or_refuse(stream, &message).await?;
    let (server_final, key) = match server.client_final(response.data) {
        Ok(done) => done,
        Err(err) => return Err(scram_failed(stream, user, err).await),
    };
    let final_ = Authentication::SaslFinal {
        data: &server_final,
    };
    write_flushed(stream, &final_.to_bytes()).await?;
    Ok(key)
}

/// Reads the client's next authentication response (type `p`), refusing anything else.
async fn read_response<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Result<BytesMut, ClientLoginError> {
    let message = match read_message(stream, buf, MAX_CLIENT_AUTH_MESSAGE).await {
        Ok(message) => message,
        Err(ReadError::Closed) => return Err(ClientLoginError::Closed),
        Err(ReadError::Io(err)) => return Err(err.into()),
        Err(err @ (ReadError::Malformed(_) | ReadError::Startup(_))) => {
            let reason = err.to_string();
            refuse(
                stream,
                PROTOCOL_VIOLATION,
                &format!("invalid authentication message: {reason}"),
            )
            .await;
            return Err(ClientLoginError::Garbage { reason });
        }
    };
    match message[0] {
        frontend::PASSWORD => Ok(message),
        // A client that gives up (libpq does when it cannot answer) says goodbye: nobody to tell.
        frontend::TERMINATE => Err(ClientLoginError::Closed),
        tag => {
            refuse(
                stream,
                PROTOCOL_VIOLATION,
                &format!("expected SASL response, got message type {}", tag),
            )
            .await;
            Err(ClientLoginError::UnexpectedMessage { tag: tag as char })
        }
    }
}

/// Tells the client why its SCRAM exchange failed, in PostgreSQL's words, and gives the error.
async fn scram_failed<S: AsyncWrite + Unpin>(
    stream: &mut S,
    user: &str,
    err: ScramError,
) -> ClientLoginError {
    let user = user.to_owned();
    match err {
        ScramError::WrongPassword => {
            let message = format!("password authentication failed for user \"{user}\"");
            refuse(stream, INVALID_PASSWORD, &message).await;
            ClientLoginError::WrongPassword { user }
        }
        source => {
            let code = match source {
                ScramError::AuthorizationIdentity => FEATURE_NOT_SUPPORTED,
                _ => PROTOCOL_VIOLATION,
            };
            refuse(stream, code, &source.to_string()).await;
            ClientLoginError::Scram { user, source }
        }
    }
}

/// Decodes the client's SASL message, or refuses it as PostgreSQL does (08P01).
async fn decode_or_refuse<'m, M: Message<'m>, S: AsyncWrite + Unpin>(
    stream: &mut S,
    message: &'m [u8],
) -> Result<M, ClientLoginError> {
    match M::decode_message(message) {
        Ok(decoded) => Ok(decoded),
        Err(err) => {
            refuse(
                stream,
                PROTOCOL_VIOLATION,
                &format!("malformed SASL message: {err}"),
            )
            .await;
            Err(err.into())
        }
    }
}

/// Sends a FATAL and closes the stream; errors are ignored, the client may be gone already.
async fn refuse<S: AsyncWrite + Unpin>(stream: &mut S, code: &str, message: &str) {
    let _ = write_flushed(stream, &fatal(code, message)).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::messages::ErrorResponse;
    use crate::wire::read::read_startup_packet;
    use tokio::net::TcpListener;
    use tokio_postgres::NoTls;

    /// Made by PostgreSQL 15 for the password `sekr3t`.
    use crate::pool::auth::scram::tests::PG_VERIFIER;

    /// Runs one login of a real client (tokio-postgres) against duet's side, with `verifier` for
    /// user `app`: what the client saw, and what `authenticate_client` returned.
    async fn login(
        password: &str,
        verifier: Option<ScramVerifier>,
    ) -> (
        Result<(), tokio_postgres::Error>,
        Result<ClientKey, ClientLoginError>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = BytesMut::new();
            read_startup_packet(&mut socket, &mut buf).await.unwrap();
            let result = authenticate_client(&mut socket, &mut buf, "app", verifier.as_ref()).await;
            if result.is_ok() {
                // AuthenticationOk and ReadyForQuery (idle): the client is connected.
                socket
                    .write_all(b"R\0\0\0\x08\0\0\0\0Z\0\0\0\x05I")
                    .await
                    .unwrap();
                // Wait for the client's Terminate (or its close).
                let _ = read_message(&mut socket, &mut buf, 1024).await;
            }
            result
        });
        let config = format!("host=127.0.0.1 port={port} user=app password={password} dbname=x");
        let client = match tokio_postgres::connect(&config, NoTls).await {
            Ok((client, connection)) => {
                drop(client);
                // The connection sends Terminate and ends once the client is gone.
                connection.await.unwrap();
                Ok(())
            }
            Err(err) => Err(err),
        };
        (client, server.await.unwrap())
    }

    fn verifier() -> Option<ScramVerifier> {
        Some(ScramVerifier::parse(PG_VERIFIER).unwrap())
    }

    #[tokio::test]
    async fn the_right_password_logs_in() {
        let (client, server) = login("sekr3t", verifier()).await;
        client.unwrap();
        server.unwrap();
    }

    /// The error as the client shows it (tokio-postgres's Display leaves the server's fields out).
    fn db_error(err: &tokio_postgres::Error) -> (String, String, String) {
        let db = err.as_db_error().expect("a server error");
        (
            db.severity().to_owned(),
            db.code().code().to_owned(),
            db.message().to_owned(),
        )
    }

    #[tokio::test]
    async fn a_wrong_password_is_refused_like_postgresql() {
        let (client, server) = login("wrong", verifier()).await;
        let expected = (
            "FATAL".to_owned(),
            "28P01".to_owned(),
            "password authentication failed for user \"app\"".to_owned(),
        );
        assert_eq!(db_error(&client.unwrap_err()), expected);
        assert!(matches!(
            server,
            Err(ClientLoginError::WrongPassword { user }) if user == "app"
        ));

        // An unknown user looks the same from the client.
        let (client, server) = login("sekr3t", None).await;
        assert_eq!(db_error(&client.unwrap_err()), expected);
        assert!(matches!(
            server,
            Err(ClientLoginError::WrongPassword { .. })
        ));
    }

    /// Runs `authenticate_client` against raw bytes from a client: what it returned and what the
    /// client received.
    async fn raw_login(client_sends: &[u8]) -> (Result<ClientKey, ClientLoginError>, Vec<u8>) {
        let (mut ours, mut theirs) = tokio::io::duplex(64 * 1024);
        theirs.write_all(client_sends).await.unwrap();
        theirs.shutdown().await.unwrap();
        let mut buf = BytesMut::new();
        let verifier = verifier();
        let result = authenticate_client(&mut ours, &mut buf, "app", verifier.as_ref()).await;
        drop(ours);
        let mut received = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut theirs, &mut received)
            .await
            .unwrap();
        (result, received)
    }

    /// The SQLSTATE of the ErrorResponse that follows duet's AuthenticationSASL in `received`.
    fn sqlstate(received: &[u8]) -> Option<String> {
        let sasl_len = i32::from_be_bytes(received.get(1..5)?.try_into().ok()?) as usize;
        let error = received.get(1 + sasl_len..)?;
        let error = ErrorResponse::decode_message(error).ok()?;
        Some(String::from_utf8_lossy(error.sqlstate()?).into_owned())
    }

    #[tokio::test]
    async fn clients_that_misbehave_get_typed_errors() {
        // Closes without answering: no error message to send.
        let (result, _) = raw_login(b"").await;
        assert!(matches!(result, Err(ClientLoginError::Closed)));
        // Terminate.
        let (result, _) = raw_login(b"X\0\0\0\x04").await;
        assert!(matches!(result, Err(ClientLoginError::Closed)));
        // A Query instead of the answer.
        let (result, received) = raw_login(b"Q\0\0\0\x0dselect 1\0").await;
        assert!(matches!(
            result,
            Err(ClientLoginError::UnexpectedMessage { tag: 'Q' })
        ));
        assert_eq!(sqlstate(&received).as_deref(), Some("08P01"));
        // Garbage: a length that cannot be.
        let (result, received) = raw_login(b"p\xff\xff\xff\xff").await;
        assert!(matches!(result, Err(ClientLoginError::Garbage { .. })));
        assert_eq!(sqlstate(&received).as_deref(), Some("08P01"));
        // Another mechanism.
        let mut message = BytesMut::new();
        SaslInitialResponse {
            mechanism: b"SCRAM-SHA-256-PLUS",
            data: Some(b"p=tls-server-end-point,,n=,r=abc"),
        }
        .encode(&mut message);
        let (result, received) = raw_login(&message).await;
        assert!(matches!(
            result,
            Err(ClientLoginError::WrongMechanism { .. })
        ));
        assert_eq!(sqlstate(&received).as_deref(), Some("08P01"));
        // A malformed client-first-message.
        message.clear();
        SaslInitialResponse {
            mechanism: b"SCRAM-SHA-256",
            data: Some(b"n,,garbage"),
        }
        .encode(&mut message);
        let (result, received) = raw_login(&message).await;
        assert!(matches!(result, Err(ClientLoginError::Scram { .. })));
        assert_eq!(sqlstate(&received).as_deref(), Some("08P01"));
        // No data at all.
        message.clear();
        SaslInitialResponse {
            mechanism: b"SCRAM-SHA-256",
            data: None,
        }
        .encode(&mut message);
        let (result, _) = raw_login(&message).await;
        assert!(matches!(result, Err(ClientLoginError::Scram { .. })));
        // A malformed SASLInitialResponse.
        let (result, received) = raw_login(b"p\0\0\0\x06ab").await;
        assert!(matches!(result, Err(ClientLoginError::Decode(_))));
        assert_eq!(sqlstate(&received).as_deref(), Some("08P01"));
        // A good first message, then the client leaves.
        message.clear();
        SaslInitialResponse {
            mechanism: b"SCRAM-SHA-256",
            data: Some(b"n,,n=,r=abc"),
        }
        .encode(&mut message);
        let (result, _) = raw_login(&message).await;
        assert!(matches!(result, Err(ClientLoginError::Closed)));
    }
}
