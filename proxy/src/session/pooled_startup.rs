//! The startup of a session pooled per transaction: duet authenticates the client itself, gives
//! it the server's parameters from a pooled connection that has just taken the client's
//! settings, and links the session to the pool.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use tokio::io::AsyncWriteExt;

use super::{close_with_fatal, Established, SessionBackend, SessionGuard};
use crate::client_stream::ClientStream;
use crate::context::ProxyContext;
use crate::pool::auth::client_login::authenticate_client;
use crate::pool::auth::scram::ScramSecret;
use crate::pool::link::{self, ClientState, Link};
use crate::pool::own_query;
use crate::pool::settings::Settings;
use crate::pool::Attachment;
use crate::session_registry::{SessionInfo, SessionState};
use crate::wire::error::CONNECTION_FAILURE;
use crate::wire::messages::{
    Authentication, BackendKeyData, Message, ParameterStatus, ReadyForQuery, TransactionStatus,
};
use crate::wire::startup::StartupMessage;

/// Runs the pooled startup. `None` when the session ended during it (the client was told why).
pub(super) async fn establish(
    ctx: &ProxyContext,
    info: &Arc<SessionInfo>,
    mut client: ClientStream,
    mut client_buf: BytesMut,
    startup: &StartupMessage,
    guard: &mut SessionGuard,
) -> Option<Established> {
    let user = startup.user().unwrap_or_default();
    let database = startup.database();
    // As PostgreSQL: NegotiateProtocolVersion comes first, before the authentication exchange
    // (libpq reads it only while it waits for the server's first answer).
    let mut negotiation = BytesMut::new();
    negotiate_protocol(startup, &mut negotiation);
    if !negotiation.is_empty() && client.write_all(&negotiation).await.is_err() {
        return None;
    }
    let verifier = match ctx.pools.verifier(user) {
        Some(verifier) => Some(verifier),
        None => look_up(ctx, info, user).await,
    };
    let client_key =
        match authenticate_client(&mut client, &mut client_buf, user, verifier.as_deref()).await {
            Ok(key) => key,
            Err(err) => {
                tracing::info!(session = info.id, user, %err, "client authentication failed");
                return None;
            }
        };
    let pool = ctx.pools.pool(&ctx.config, &ctx.backend, user, database);
    if let Some(verifier) = verifier {
        pool.learn_secret(ScramSecret::ClientKey {
            key: client_key,
            verifier: Some((*verifier).clone()),
        });
    }
    let settings = Settings::from_startup(&startup.parameters);
    let mut checkout = match pool.checkout().await {
        Ok(checkout) => checkout,
        Err(err) => {
            tracing::warn!(session = info.id, %err, "no pooled connection for a new session");
            close_with_fatal(&mut client, CONNECTION_FAILURE, &format!("duet: {err}")).await;
            return None;
        }
    };
    if let Err(err) = own_query::apply_settings(&mut checkout.conn, &settings).await {
        // A startup parameter the server refuses (an unknown setting, a bad value): its words.
        tracing::info!(session = info.id, %err, "the server refused the client's startup settings");
        pool.discard(checkout);
        let code = match &err {
            link::LinkError::Refused { code, .. } if !code.is_empty() => code.as_str(),
            _ => CONNECTION_FAILURE,
        };
        close_with_fatal(&mut client, code, &err.to_string()).await;
        return None;
    }
    let attachment = Arc::new(Attachment::default());
    let (pid, key) =
        ctx.cancels
            .register_pooled(attachment.clone(), ctx.backend.clone(), info.clone());
    guard.cancel_key = Some((pid, key.clone()));

    let mut hello = BytesMut::with_capacity(512);
    Authentication::Ok.encode(&mut hello);
    for (name, value) in &checkout.conn.parameters {
        ParameterStatus {
            name: name.as_bytes(),
            value: value.as_bytes(),
        }
        .encode(&mut hello);
    }
    BackendKeyData { pid, key: &key }.encode(&mut hello);
    ReadyForQuery {
        status: TransactionStatus::Idle,
    }
    .encode(&mut hello);
    // The connection now has this client's settings: the likeliest one for its first transaction.
    pool.checkin(checkout);
    if client.write_all(&hello).await.is_err() {
        return None;
    }
    let link = Link::new(
        pool,
        ClientState {
            startup: settings.clone(),
            settings,
            statements: Default::default(),
        },
        info.clone(),
        attachment,
    );
    info.set_state(SessionState::Idle);
    Some(Established {
        client,
        backend: SessionBackend::Pooled(Box::new(link)),
        client_buf,
        backend_buf: BytesMut::new(),
    })
}

/// A pooled session speaks protocol 3.0 (its backend connections are shared, and were opened
/// with 3.0): a client asking for a later minor version, or for protocol options (`_pq_.*`), is
/// told so with NegotiateProtocolVersion, as PostgreSQL tells it what it does not support.
fn negotiate_protocol(startup: &StartupMessage, out: &mut BytesMut) {
    let options: Vec<&str> = startup
        .parameters
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| name.starts_with("_pq_."))
        .collect();
    if startup.minor == 0 && options.is_empty() {
        return;
    }
    let len = 4 + 4 + 4 + options.iter().map(|o| o.len() + 1).sum::<usize>();
    out.put_u8(crate::wire::backend::NEGOTIATE_PROTOCOL_VERSION);
    out.put_i32(len as i32);
    out.put_i32(0);
    out.put_i32(options.len() as i32);
    for option in options {
        out.put_slice(option.as_bytes());
        out.put_u8(0);
    }
}

/// The verifier of a user who is not in `[[pool.users]]`, from the server by `[pool]
/// auth_query` (one control connection per login) (none configured, no such row, or a secret that is not a SCRAM verifier: `None`,
/// and the client gets PostgreSQL's "password authentication failed" after a mock exchange).
async fn look_up(
    ctx: &ProxyContext,
    info: &SessionInfo,
    user: &str,
) -> Option<Arc<crate::pool::auth::scram::ScramVerifier>> {
    let query = ctx.config.pool.auth_query.as_deref()?;
    let client = match crate::control::connection::connect(ctx).await {
        Ok(client) => client,
        Err(err) => {
            tracing::warn!(session = info.id, %err, "auth_query: no control connection");
            return None;
        }
    };
    let row = match client.query_opt(query, &[&user]).await {
        Ok(row) => row?,
        Err(err) => {
            tracing::warn!(
                session = info.id,
                error = %crate::control::connection::connect_error_text(&err),
                "auth_query failed"
            );
            return None;
        }
    };
    let secret: Option<String> = row.try_get(1).ok().flatten();
    match secret
        .as_deref()
        .map(crate::pool::auth::scram::ScramVerifier::parse)
    {
        // Not kept: the next login asks again, so a password changed on the server counts at
        // once (as PgBouncer's auth_query).
        Some(Ok(verifier)) => Some(Arc::new(verifier)),
        _ => {
            tracing::info!(
                session = info.id,
                user,
                "auth_query found no SCRAM verifier for the user"
            );
            None
        }
    }
}
