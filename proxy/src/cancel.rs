//! Query cancellation across the proxy.
//!
//! Clients get the backend's pid but a secret key duet generates; the real key never leaves duet.
//! A CancelRequest arrives on a fresh connection: if (pid, key) is registered, duet opens its own
//! connection to that session's backend and sends the real key; unknown keys are ignored silently,
//! as PostgreSQL does. A cancel for a session that has nothing running (idle, or idle in a
//! transaction) is not forwarded: PostgreSQL ignores a cancel that reaches a backend waiting for a
//! command, and a cancel forwarded late — the extra hop and connection take time — would instead
//! cancel whatever the client sent next (asyncpg's suite hit this under load). The session is
//! looked at again once the connection to the backend is made, just before the request is sent:
//! the statement may have ended meanwhile (postgres.js's suite hit this once in five runs).
//! PgBouncer does the same. The cancel connection is opened like the session's (TLS when the backend URL
//! asks for it, as libpq 17 does), so a backend that only accepts TLS still gets it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::backend::Backend;
use crate::pool::Attachment;
use crate::session_registry::{SessionInfo, SessionState};
use crate::wire::startup::encode_cancel;

/// Where a cancel for a session must go.
#[derive(Debug, Clone)]
struct CancelTarget {
    backend: Arc<Backend>,
    real: RealKey,
    session: Arc<SessionInfo>,
}

/// The backend process a cancel is for.
#[derive(Debug, Clone)]
enum RealKey {
    /// The session's own backend (session mode): the pid the client has, and this key.
    Own(Bytes),
    /// Whichever pooled connection serves the session when the cancel arrives (transaction mode).
    Pooled(Arc<Attachment>),
}

/// The registry of live sessions' cancel keys.
#[derive(Debug, Default)]
pub struct CancelRegistry {
    targets: DashMap<(i32, Bytes), CancelTarget>,
}

impl CancelRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a session's backend pid and real key; returns the key to give the client (random,
    /// the same length as the real one so the client's protocol expectations hold).
    pub fn register(
        &self,
        pid: i32,
        real_key: Bytes,
        backend: Arc<Backend>,
        session: Arc<SessionInfo>,
    ) -> Bytes {
        loop {
            let mut key = vec![0u8; real_key.len().clamp(4, 256)];
            rand::fill(&mut key[..]);
            let key = Bytes::from(key);
            let entry = self.targets.entry((pid, key.clone()));
            if let dashmap::Entry::Vacant(vacant) = entry {
                vacant.insert(CancelTarget {
                    backend: backend.clone(),
                    real: RealKey::Own(real_key.clone()),
                    session: session.clone(),
                });
                return key;
            }
        }
    }

    /// Registers a pooled session (transaction mode): returns the process id and key to give
    /// the client (duet's own: the backend process changes from one transaction to the next).
    /// A cancel goes to the connection attached when it arrives.
    pub fn register_pooled(
        &self,
        attachment: Arc<Attachment>,
        backend: Arc<Backend>,
        session: Arc<SessionInfo>,
    ) -> (i32, Bytes) {
        loop {
            // A 4-byte key: the only length protocol 3.0 allows, and a pooled session speaks 3.0.
            let mut bytes = [0u8; 8];
            rand::fill(&mut bytes[..]);
            // A positive pid, as PostgreSQL's are.
            let pid = i32::from_be_bytes([bytes[0] & 0x7f, bytes[1], bytes[2], bytes[3]]).max(1);
            let key = Bytes::copy_from_slice(&bytes[4..]);
            if let dashmap::Entry::Vacant(vacant) = self.targets.entry((pid, key.clone())) {
                vacant.insert(CancelTarget {
                    backend: backend.clone(),
                    real: RealKey::Pooled(attachment.clone()),
                    session: session.clone(),
                });
                return (pid, key);
            }
        }
    }

    /// Forgets a session's key (when it ends).
    pub fn unregister(&self, pid: i32, key: &Bytes) {
        self.targets.remove(&(pid, key.clone()));
    }

    /// Number of registered keys.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether no key is registered.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Handles a client's CancelRequest. Returns whether it was forwarded to a backend.
    pub async fn cancel(&self, pid: i32, key: Bytes, connect_timeout: Duration) -> bool {
        let Some(target) = self.targets.get(&(pid, key)).map(|t| t.clone()) else {
            tracing::debug!(pid, "cancel request with an unknown key ignored");
            return false;
        };
        if nothing_running(&target.session) {
            tracing::debug!(
                pid,
                "cancel request for a session with nothing running ignored"
            );
            return false;
        }
        let (backend_pid, real_key) = match &target.real {
            RealKey::Own(key) => (pid, key.clone()),
            RealKey::Pooled(attachment) => match attachment.current() {
                Some(attached) => attached,
                None => {
                    tracing::debug!(
                        pid,
                        "cancel request for a pooled session between transactions ignored"
                    );
                    return false;
                }
            },
        };
        let request = encode_cancel(backend_pid, &real_key);
        let attempt = target.backend.first_attempt();
        match target.backend.open(attempt, connect_timeout).await {
            Ok(stream) => send_unless_ended(&target.session, pid, stream, &request).await,
            Err(err) => {
                tracing::warn!(pid, %err, "could not reach the backend to cancel a query");
                false
            }
        }
    }
}

/// Whether the session has nothing running (idle, or idle in a transaction).
fn nothing_running(session: &SessionInfo) -> bool {
    matches!(
        session.state(),
        SessionState::Idle
            | SessionState::IdleInTransaction
            | SessionState::IdleInTransactionAborted
    )
}

/// Sends `request` on `stream` (a connection to the session's backend) unless the session's
/// statement ended while the connection was made: the server cancels whatever runs when the
/// request arrives — the client's next statement included — where without the extra hop the
/// request would have found nothing running and been ignored. Returns whether it was sent.
async fn send_unless_ended<S: AsyncWrite + Unpin>(
    session: &SessionInfo,
    pid: i32,
    mut stream: S,
    request: &[u8],
) -> bool {
    if nothing_running(session) {
        tracing::debug!(
            pid,
            "cancel request dropped: the session's statement ended while it was forwarded"
        );
        return false;
    }
    if let Err(err) = stream.write_all(request).await {
        tracing::warn!(pid, %err, "could not send a cancel request to the backend");
        return false;
    }
    // Shutdown flushes (and ends TLS with close_notify).
    let _ = stream.shutdown().await;
    tracing::debug!(pid, "cancel request forwarded");
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend_at(port: u16) -> Arc<Backend> {
        Arc::new(Backend {
            addr: crate::backend_url::BackendAddr::Tcp {
                host: "127.0.0.1".into(),
                port,
            },
            tls: None,
        })
    }

    fn session() -> Arc<SessionInfo> {
        crate::session_registry::Sessions::new().register("127.0.0.1:1".parse().expect("address"))
    }

    #[test]
    fn keys_are_replaced_and_forgotten() {
        let registry = CancelRegistry::new();
        let backend = backend_at(5432);
        let real = Bytes::from_static(&[1, 2, 3, 4]);
        let given = registry.register(7, real.clone(), backend.clone(), session());
        assert_eq!(given.len(), 4);
        let long = registry.register(8, Bytes::from(vec![5u8; 32]), backend, session());
        assert_eq!(long.len(), 32);
        assert_eq!(registry.len(), 2);
        registry.unregister(7, &given);
        registry.unregister(8, &long);
        assert!(registry.is_empty());
    }

    /// A cancel reaches the backend (a real socket standing in for it) only while the session
    /// has something running; idle, it is dropped, as PostgreSQL drops it.
    #[tokio::test]
    async fn a_cancel_is_forwarded_only_while_something_runs() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listener");
        let port = listener.local_addr().expect("address").port();
        let registry = CancelRegistry::new();
        let info = session();
        let key = registry.register(
            42,
            Bytes::from_static(&[9, 9, 9, 9]),
            backend_at(port),
            info.clone(),
        );
        let now = std::time::Instant::now();
        for idle in [
            SessionState::Idle,
            SessionState::IdleInTransaction,
            SessionState::IdleInTransactionAborted,
        ] {
            info.set_state_at(idle, now);
            assert!(
                !registry
                    .cancel(42, key.clone(), Duration::from_secs(5))
                    .await,
                "{idle:?}: not forwarded"
            );
        }
        info.set_state_at(SessionState::Active, now);
        let (forwarded, received) = tokio::join!(
            registry.cancel(42, key.clone(), Duration::from_secs(5)),
            async {
                let (mut stream, _) = listener.accept().await.expect("the cancel's connection");
                let mut packet = Vec::new();
                stream.read_to_end(&mut packet).await.expect("the packet");
                packet
            }
        );
        assert!(forwarded);
        assert_eq!(packet_key(&received), [9, 9, 9, 9], "the real key, once");
    }

    /// A statement that ends while the cancel's connection is being made is not cancelled: the
    /// request would hit whatever the client sends next.
    #[tokio::test]
    async fn a_cancel_whose_statement_ended_meanwhile_is_not_sent() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listener");
        let port = listener.local_addr().expect("address").port();
        let info = session();
        let now = std::time::Instant::now();
        for (state, sent) in [(SessionState::Active, true), (SessionState::Idle, false)] {
            info.set_state_at(state, now);
            let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            let (mut accepted, _) = listener.accept().await.expect("accept");
            assert_eq!(
                send_unless_ended(&info, 42, stream, b"cancel!").await,
                sent,
                "{state:?}"
            );
            let mut received = Vec::new();
            accepted
                .read_to_end(&mut received)
                .await
                .expect("read to the end");
            assert_eq!(received.is_empty(), !sent, "{state:?}: {received:?}");
        }
    }

    /// The secret key of a CancelRequest packet (length, code, pid, key).
    fn packet_key(packet: &[u8]) -> &[u8] {
        &packet[12..]
    }
}
