//! The startup phase: SSL/GSS negotiation, the StartupMessage, the backend connection, the
//! authentication relay and the backend's parameters up to the first ReadyForQuery.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{close_with_fatal, lost_backend, protocol_violation, Established, SessionGuard};
use crate::backend::BackendStream;
use crate::client_stream::{ClientSocket, ClientStream};
use crate::context::ProxyContext;
use crate::session_registry::{Identity, SessionInfo, SessionState};
use crate::wire::auth::{client_expects_channel_binding, strip_channel_binding};
use crate::wire::backend as tag;
use crate::wire::error::{error_response, Severity, CONNECTION_FAILURE, INVALID_AUTHORIZATION};
use crate::wire::frontend;
use crate::wire::messages::{Authentication, BackendKeyData, Message, SaslInitialResponse};
use crate::wire::read::{read_message, read_startup_packet, write_flushed, ReadError};
use crate::wire::startup::{
    parse_packet, StartupError, StartupMessage, StartupPacket, GSSENC_REQUEST_CODE,
    SSL_REQUEST_CODE,
};

/// First byte of a TLS handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// The ALPN protocol name PostgreSQL clients offer.
pub(crate) const ALPN_POSTGRESQL: &[u8] = crate::backend_tls::ALPN_POSTGRESQL;

/// Largest authentication message accepted from a client (SASL and GSS tokens are far smaller).
const MAX_CLIENT_AUTH_MESSAGE: usize = 64 * 1024;
/// Largest message accepted from the backend during startup.
const MAX_BACKEND_STARTUP_MESSAGE: usize = 16 * 1024 * 1024;

/// Runs the startup phase. `None` when the connection ended during it (the client has been told
/// why when that is possible).
pub(super) async fn establish(
    ctx: &ProxyContext,
    info: &Arc<SessionInfo>,
    socket: ClientSocket,
    guard: &mut SessionGuard,
) -> Option<Established> {
    let mut client_buf = BytesMut::with_capacity(1024);
    let (mut client, startup) = negotiate(ctx, info, socket, &mut client_buf).await?;

    let Some(user) = startup.user() else {
        close_with_fatal(
            &mut client,
            INVALID_AUTHORIZATION,
            "no PostgreSQL user name specified in startup packet",
        )
        .await;
        return None;
    };
    info.set_identity(Identity {
        user: user.to_owned(),
        database: startup.database().to_owned(),
        application_name: startup.application_name().to_owned(),
        search_path: duet_shadow::rewrite::search_path::from_startup(
            startup.parameter("search_path"),
            startup.parameter("options"),
        ),
    });

    if crate::pool::is_transaction_mode(&ctx.config, user, startup.database()) {
        return super::pooled_startup::establish(ctx, info, client, client_buf, &startup, guard)
            .await;
    }
    let (mut backend, mut backend_buf, first) =
        open_backend(ctx, info, &startup, &mut client, guard).await?;

    // Relay authentication and the backend's parameters. Messages for the client are collected
    // and written together whenever the client must answer or the backend is ready.
    let mut to_client = BytesMut::with_capacity(1024);
    let mut pending = Some(first);
    // Whether the backend offered SCRAM-SHA-256-PLUS (which duet hides from the client).
    let mut backend_offered_plus = false;
    loop {
        let message = match pending.take() {
            Some(message) => message,
            None => match read_message(&mut backend, &mut backend_buf, MAX_BACKEND_STARTUP_MESSAGE)
                .await
            {
                Ok(message) => message,
                Err(err) => {
                    tracing::debug!(session = info.id, %err, "backend failed during startup");
                    let _ = client.write_all(&to_client).await;
                    lost_backend(&mut client).await;
                    return None;
                }
            },
        };
        match message[0] {
            tag::AUTHENTICATION => {
                let request = match Authentication::decode_message(&message) {
                    Ok(request) => request,
                    Err(err) => {
                        tracing::warn!(session = info.id, %err, "malformed authentication request from the backend");
                        lost_backend(&mut client).await;
                        return None;
                    }
                };
                let mut stripped = Vec::new();
                match &request {
                    Authentication::Sasl(offered) => {
                        match strip_channel_binding(offered, &mut stripped) {
                            Some(kept) => {
                                backend_offered_plus = true;
                                Authentication::Sasl(kept).encode(&mut to_client);
                            }
                            None => to_client.extend_from_slice(&message),
                        }
                    }
                    _ => to_client.extend_from_slice(&message),
                }
                if request.expects_response() {
                    if client.write_all(&to_client).await.is_err() {
                        return None;
                    }
                    to_client.clear();
                    let answer =
                        match read_message(&mut client, &mut client_buf, MAX_CLIENT_AUTH_MESSAGE)
                            .await
                        {
                            Ok(answer) => answer,
                            Err(ReadError::Malformed(why)) => {
                                protocol_violation(
                                    &mut client,
                                    &format!("invalid authentication message: {why}"),
                                )
                                .await;
                                return None;
                            }
                            Err(_) => return None,
                        };
                    if answer[0] != frontend::PASSWORD {
                        if answer[0] != frontend::TERMINATE {
                            protocol_violation(
                                &mut client,
                                &format!(
                                    "expected an authentication response, got message type {:?}",
                                    answer[0] as char
                                ),
                            )
                            .await;
                        }
                        return None;
                    }
                    // The answer to the mechanism list is a SASLInitialResponse; one that does
                    // not decode is the backend's to refuse.
                    let refuses_stripped_list = backend_offered_plus
                        && matches!(request, Authentication::Sasl(_))
                        && SaslInitialResponse::decode_message(&answer)
                            .is_ok_and(|response| client_expects_channel_binding(&response));
                    if refuses_stripped_list {
                        // The backend (over TLS) offered channel binding and the client (over
                        // TLS to duet) could have used it: PostgreSQL refuses such a client as a
                        // possible downgrade attack, and rightly so. Say why, and what works.
                        tracing::info!(
                            session = info.id,
                            "SCRAM client that supports channel binding refused: TLS on both sides of duet"
                        );
                        let _ = client
                            .write_all(&error_response(
                                Severity::Fatal,
                                INVALID_AUTHORIZATION,
                                "duet cannot relay SCRAM channel binding (TLS on both sides of \
                                 duet): connect to duet with channel_binding=disable",
                                Some(
                                    "the client's TLS session ends at duet and duet's TLS session \
                                     with the backend is its own; PostgreSQL refuses a client that \
                                     could bind to a channel it does not see. Clients without TLS \
                                     to duet are not affected.",
                                ),
                            ))
                            .await;
                        let _ = client.shutdown().await;
                        return None;
                    }
                    if write_flushed(&mut backend, &answer).await.is_err() {
                        lost_backend(&mut client).await;
                        return None;
                    }
                }
            }
            tag::BACKEND_KEY_DATA => match BackendKeyData::decode_message(&message) {
                Ok(data) => {
                    let duet_key = replace_key(ctx, info, &data, &mut to_client);
                    info.set_backend_pid(data.pid);
                    guard.cancel_key = Some((data.pid, duet_key));
                }
                Err(err) => {
                    tracing::warn!(session = info.id, %err, "malformed BackendKeyData from the backend");
                    lost_backend(&mut client).await;
                    return None;
                }
            },
            tag::READY_FOR_QUERY => {
                to_client.extend_from_slice(&message);
                if client.write_all(&to_client).await.is_err() {
                    return None;
                }
                info.set_state(SessionState::Idle);
                return Some(Established {
                    client,
                    backend: super::SessionBackend::Own(backend),
                    client_buf,
                    backend_buf,
                });
            }
            tag::ERROR_RESPONSE => {
                // Authentication failed or the database refused the session: the backend closes.
                to_client.extend_from_slice(&message);
                let _ = client.write_all(&to_client).await;
                let _ = client.shutdown().await;
                return None;
            }
            _ => to_client.extend_from_slice(&message),
        }
    }
}

/// Opens the session's backend connection as the sslmode says, sends the client's startup message
/// and reads the backend's first answer. A refusal before any authentication exchange (say a
/// pg_hba.conf line for the other kind of connection) is retried the way libpq's `allow` and
/// `prefer` do; later ones cannot be, because the client's answers are bound to the connection.
async fn open_backend(
    ctx: &ProxyContext,
    info: &SessionInfo,
    startup: &StartupMessage,
    client: &mut ClientStream,
    guard: &mut SessionGuard,
) -> Option<(BackendStream, BytesMut, BytesMut)> {
    let mut attempt = ctx.backend.first_attempt();
    // When both of `prefer`'s attempts are refused, the refusal over TLS is the one that names the
    // real problem (the plain one is the server's "no encryption" rule), as libpq reports both.
    let mut tls_refusal: Option<BytesMut> = None;
    loop {
        let mut backend = match ctx.backend.open(attempt, ctx.config.connect_timeout).await {
            Ok(stream) => stream,
            Err(err) => {
                if err.is_tls() {
                    tracing::warn!(session = info.id, backend = %ctx.backend_addr, %err, "backend TLS failed");
                } else {
                    tracing::warn!(session = info.id, backend = %ctx.backend_addr, %err, "backend unreachable");
                }
                let message = format!(
                    "duet could not reach the backend at {}: {err}",
                    ctx.backend_addr
                );
                close_with_fatal(client, CONNECTION_FAILURE, &message).await;
                return None;
            }
        };
        ctx.metrics.backends_total.fetch_add(1, Ordering::Relaxed);
        if !guard.backend_open {
            ctx.metrics.backends_current.fetch_add(1, Ordering::Relaxed);
            guard.backend_open = true;
        }
        if write_flushed(&mut backend, &startup.raw).await.is_err() {
            lost_backend(client).await;
            return None;
        }
        let mut backend_buf = BytesMut::with_capacity(4096);
        let first =
            match read_message(&mut backend, &mut backend_buf, MAX_BACKEND_STARTUP_MESSAGE).await {
                Ok(message) => message,
                Err(err) => {
                    tracing::debug!(session = info.id, %err, "backend failed during startup");
                    lost_backend(client).await;
                    return None;
                }
            };
        if first[0] == tag::ERROR_RESPONSE {
            if let Some(next) = ctx.backend.retry_after_refusal(attempt, backend.is_tls()) {
                tracing::debug!(
                    session = info.id,
                    tls = backend.is_tls(),
                    "the backend refused the session; retrying as the sslmode allows"
                );
                if backend.is_tls() {
                    tls_refusal = Some(first);
                }
                let _ = backend.shutdown().await;
                attempt = next;
                continue;
            }
            if let (false, Some(refusal)) = (backend.is_tls(), tls_refusal) {
                return Some((backend, backend_buf, refusal));
            }
        }
        return Some((backend, backend_buf, first));
    }
}

/// Answers SSLRequest/GSSENCRequest and handles CancelRequest until the StartupMessage arrives.
async fn negotiate(
    ctx: &ProxyContext,
    info: &SessionInfo,
    socket: ClientSocket,
    buf: &mut BytesMut,
) -> Option<(ClientStream, StartupMessage)> {
    let mut client = match socket {
        ClientSocket::Tcp(tcp, _) => direct_tls(ctx, tcp).await?,
        // Like PostgreSQL, no TLS over the unix socket: its SSLRequest is answered 'N' below.
        ClientSocket::Local(unix) => ClientStream::Local(unix),
    };
    // A client already on TLS (direct) may not ask for it again.
    let mut ssl_done = matches!(client, ClientStream::Tls(_));
    let mut gss_done = false;
    loop {
        let packet = match read_startup_packet(&mut client, buf).await {
            Ok(packet) => packet,
            Err(ReadError::Startup(err)) => {
                refuse_startup(&mut client, info, &err).await;
                return None;
            }
            Err(ReadError::Closed) if !buf.is_empty() => {
                // What PostgreSQL logs as "incomplete startup packet"; nobody is left to tell.
                tracing::info!(
                    session = info.id,
                    peer = %info.client_addr,
                    received = buf.len(),
                    "incomplete startup packet: the client closed the connection"
                );
                return None;
            }
            // A client that connects and leaves without a byte (a health check, a client that
            // did not like the SSL answer) is normal: like PostgreSQL, nothing to log.
            Err(_) => return None,
        };
        let packet = match parse_packet(&packet) {
            Ok(packet) => packet,
            Err(err) => {
                refuse_startup(&mut client, info, &err).await;
                return None;
            }
        };
        match packet {
            StartupPacket::SslRequest if ssl_done => {
                // PostgreSQL answers only the first request and then reads the code as a
                // protocol version (1234.5679), which it does not support.
                refuse_startup(&mut client, info, &repeated_request(SSL_REQUEST_CODE)).await;
                return None;
            }
            StartupPacket::SslRequest => {
                ssl_done = true;
                client = match (client, &ctx.tls) {
                    (ClientStream::Plain(mut tcp), Some(acceptor)) => {
                        if !buf.is_empty() {
                            // Bytes after SSLRequest would be processed as if they came over TLS
                            // (CVE-2021-23214): refuse like PostgreSQL does.
                            protocol_violation(
                                &mut tcp,
                                "received unencrypted data after SSL request",
                            )
                            .await;
                            return None;
                        }
                        tcp.write_all(b"S").await.ok()?;
                        match acceptor.accept(tcp).await {
                            Ok(tls) => ClientStream::Tls(Box::new(tls)),
                            Err(err) => {
                                tracing::debug!(%err, "TLS handshake failed");
                                return None;
                            }
                        }
                    }
                    (mut other, _) => {
                        other.write_all(b"N").await.ok()?;
                        other
                    }
                };
            }
            StartupPacket::GssEncRequest if gss_done => {
                refuse_startup(&mut client, info, &repeated_request(GSSENC_REQUEST_CODE)).await;
                return None;
            }
            StartupPacket::GssEncRequest => {
                gss_done = true;
                client.write_all(b"N").await.ok()?;
            }
            StartupPacket::Cancel { pid, key } => {
                ctx.cancels
                    .cancel(pid, key, ctx.config.connect_timeout)
                    .await;
                return None;
            }
            StartupPacket::Startup(startup) => return Some((client, startup)),
        }
    }
}

/// A TCP client that opens with a TLS ClientHello instead of SSLRequest (PostgreSQL 17+
/// `sslnegotiation=direct`) gets its TLS session at once; any other stays plain. `None`: the
/// handshake failed (the connection is dropped).
async fn direct_tls(ctx: &ProxyContext, tcp: TcpStream) -> Option<ClientStream> {
    // A TLS handshake record starts with byte 0x16, which can never begin a startup packet (its
    // length would exceed the 10000-byte limit).
    let mut first = [0u8; 1];
    let Some(acceptor) = &ctx.tls else {
        return Some(ClientStream::Plain(tcp));
    };
    if !matches!(tcp.peek(&mut first).await, Ok(1) if first[0] == TLS_HANDSHAKE_RECORD) {
        return Some(ClientStream::Plain(tcp));
    }
    match acceptor.accept(tcp).await {
        // Like PostgreSQL, direct TLS requires the client to have negotiated ALPN "postgresql",
        // so a stray TLS client of another protocol is turned away.
        Ok(tls) if tls.get_ref().1.alpn_protocol() == Some(ALPN_POSTGRESQL) => {
            Some(ClientStream::Tls(Box::new(tls)))
        }
        Ok(_) => {
            tracing::debug!("direct TLS connection without ALPN \"postgresql\" refused");
            None
        }
        Err(err) => {
            tracing::debug!(%err, "direct TLS handshake failed");
            None
        }
    }
}

/// Ends a connection whose first packet was refused, the way PostgreSQL does: a FATAL for a
/// StartupMessage it cannot serve, silence (and a line in the log, with the peer's address) for
/// bytes that are not a startup packet at all.
async fn refuse_startup(client: &mut ClientStream, info: &SessionInfo, err: &StartupError) {
    match err.reply() {
        Some(code) => {
            tracing::info!(session = info.id, peer = %info.client_addr, %err, "startup packet refused");
            close_with_fatal(client, code, &err.to_string()).await;
        }
        None => {
            tracing::warn!(
                session = info.id,
                peer = %info.client_addr,
                %err,
                "closing a connection that did not send a valid startup packet"
            );
            let _ = client.shutdown().await;
        }
    }
}

/// The error for a second SSLRequest or GSSENCRequest: its request code read as a protocol
/// version, as PostgreSQL reads it.
fn repeated_request(code: i32) -> StartupError {
    StartupError::Protocol {
        major: (code >> 16) as u16,
        minor: (code & 0xffff) as u16,
    }
}

/// Registers the backend's process id and secret key with the cancel registry and writes the
/// client's BackendKeyData, with a key of duet's in place of the backend's, to `out`. Returns
/// duet's key.
fn replace_key(
    ctx: &ProxyContext,
    info: &Arc<SessionInfo>,
    backend: &BackendKeyData<'_>,
    out: &mut BytesMut,
) -> Bytes {
    let real_key = Bytes::copy_from_slice(backend.key);
    let duet_key = ctx
        .cancels
        .register(backend.pid, real_key, ctx.backend.clone(), info.clone());
    BackendKeyData {
        pid: backend.pid,
        key: &duet_key,
    }
    .encode(out);
    duet_key
}
