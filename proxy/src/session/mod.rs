//! One client session: startup (TLS, authentication relay) and then forwarding until either side
//! closes.
//!
//! Session mode: each client gets its own backend connection, opened when its startup message
//! arrives, closed when it leaves.
//!
//! The parts: `startup` (TLS, authentication relay, up to the first ReadyForQuery), then
//! `forward` (the pumping: one loop per direction, in one task), whose scans are `upstream`
//! (client→backend: requests, the pause gate) and `downstream` (backend→client: ReadyForQuery,
//! the session's state), over the state in `shared` (the protocol position in `track`, the flags).
//! While tables are under migration both scans hand messages to `dual_write`, the hook, which
//! answers with `edit`s to the chunk being forwarded.

mod downstream;
mod dual_write;
mod duplex;
mod edit;
mod forward;
mod pooled_startup;
mod shared;
mod startup;
#[cfg(test)]
mod testing;
mod track;
mod upstream;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use crate::backend::BackendStream;
use crate::client_stream::{ClientSocket, ClientStream};
use crate::context::ProxyContext;
use crate::session_registry::SessionInfo;
use crate::shutdown::ShutdownPhase;
use crate::wire::error::{fatal, CONNECTION_FAILURE, PROTOCOL_VIOLATION};

pub use downstream::BackendViolation;
pub use forward::{BackendLoss, SessionEnd};
pub use upstream::ClientViolation;

/// Time a client gets to complete TLS, startup and authentication (PostgreSQL's default
/// authentication_timeout).
const STARTUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Cleans up a session's traces in the shared registries, whatever way it ends (even if its task
/// is dropped mid-flight).
struct SessionGuard {
    ctx: Arc<ProxyContext>,
    info: Arc<SessionInfo>,
    cancel_key: Option<(i32, Bytes)>,
    backend_open: bool,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if let Some((pid, key)) = self.cancel_key.take() {
            self.ctx.cancels.unregister(pid, &key);
        }
        if self.backend_open {
            self.ctx
                .metrics
                .backends_current
                .fetch_sub(1, Ordering::Relaxed);
        }
        self.ctx.sessions.unregister(self.info.id);
        self.ctx.metrics.add_closed(self.info.traffic());
        // A session that ends with work in flight must not keep a pause waiting.
        self.ctx.gate.end(&self.info);
    }
}

/// Serves one client connection to its end. Never panics on client or backend input; every
/// failure is reported to the client (when possible) and logged.
pub async fn run(ctx: Arc<ProxyContext>, socket: ClientSocket) {
    if let ClientSocket::Tcp(tcp, _) = &socket {
        let _ = tcp.set_nodelay(true);
    }
    ctx.metrics.clients_total.fetch_add(1, Ordering::Relaxed);
    let info = ctx.sessions.register(socket.peer());
    let mut guard = SessionGuard {
        ctx: ctx.clone(),
        info: info.clone(),
        cancel_key: None,
        backend_open: false,
    };
    // Like PostgreSQL's authentication_timeout: a client that never finishes its startup must not
    // hold a session (and a backend connection) forever; a shutdown ends it too.
    let startup = tokio::time::timeout(
        STARTUP_TIMEOUT,
        startup::establish(&ctx, &info, socket, &mut guard),
    );
    let established = tokio::select! {
        outcome = startup => match outcome {
            Ok(Some(established)) => established,
            Ok(None) => return,
            Err(_) => {
                tracing::debug!(session = info.id, "startup timed out");
                return;
            }
        },
        _ = ctx.shutdown.reached(ShutdownPhase::Terminating) => return,
    };
    let end = forward::run(&ctx, &info, established).await;
    tracing::debug!(session = info.id, ?end, "session ended");
}

/// Everything the forwarding phase needs once startup is done.
pub(crate) struct Established {
    client: ClientStream,
    backend: SessionBackend,
    /// Bytes the client sent that were read during startup but belong to the forwarding phase.
    client_buf: bytes::BytesMut,
    /// Likewise for the backend.
    backend_buf: bytes::BytesMut,
}

/// What a session forwards to.
pub(crate) enum SessionBackend {
    /// Its own backend connection (session mode).
    Own(BackendStream),
    /// The link to its (user, database)'s pool (transaction mode).
    Pooled(Box<crate::pool::link::Link>),
}

/// Sends a FATAL error to the client and closes its connection (best effort).
async fn close_with_fatal<S: tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    code: &str,
    message: &str,
) {
    let _ = stream.write_all(&fatal(code, message)).await;
    let _ = stream.shutdown().await;
}

/// The message for a lost backend.
const LOST_BACKEND: &str = "duet: lost the connection to the backend";

/// FATAL 08P01 for a client protocol violation.
async fn protocol_violation<S: tokio::io::AsyncWrite + Unpin>(stream: &mut S, message: &str) {
    close_with_fatal(stream, PROTOCOL_VIOLATION, message).await
}

/// FATAL 08006 for a lost backend.
async fn lost_backend<S: tokio::io::AsyncWrite + Unpin>(stream: &mut S) {
    close_with_fatal(stream, CONNECTION_FAILURE, LOST_BACKEND).await
}
