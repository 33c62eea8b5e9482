//! The registry of live client sessions and what each one is doing.
//!
//! Each session publishes its identity, state and counters here so that `status`, `pause` and the
//! metrics endpoint can see them without talking to the session's task. Everything a session
//! updates on its hot path is an uncontended atomic in its own [`SessionInfo`].

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use serde::Serialize;
use tokio::sync::Notify;

use crate::client_stream::ClientPeer;
use crate::metrics::Traffic;

/// What a session is doing, as shown by `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SessionState {
    /// Negotiating TLS, authenticating, or connecting to the backend.
    Starting = 0,
    /// Idle outside a transaction (at a transaction boundary).
    Idle = 1,
    /// A request is being processed.
    Active = 2,
    /// Idle inside an open transaction block.
    IdleInTransaction = 3,
    /// Idle inside a failed transaction block.
    IdleInTransactionAborted = 4,
}

impl SessionState {
    /// The name used in `status` (PostgreSQL's pg_stat_activity wording).
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Starting => "starting",
            SessionState::Idle => "idle",
            SessionState::Active => "active",
            SessionState::IdleInTransaction => "idle in transaction",
            SessionState::IdleInTransactionAborted => "idle in transaction (aborted)",
        }
    }

    fn from_u8(value: u8) -> Self {
        match value {
            1 => SessionState::Idle,
            2 => SessionState::Active,
            3 => SessionState::IdleInTransaction,
            4 => SessionState::IdleInTransactionAborted,
            _ => SessionState::Starting,
        }
    }
}

/// Who a session is, known once its startup message has arrived.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The user it authenticates as.
    pub user: String,
    /// The database it connects to.
    pub database: String,
    /// Its application_name startup parameter.
    pub application_name: String,
    /// Its `search_path` as its startup packet set it (a `search_path` parameter, or `-c
    /// search_path=…` in `options`), else the server's default.
    pub search_path: duet_shadow::rewrite::search_path::SearchPath,
}

/// One session's published state. Aligned to its own cache lines: sessions on different worker
/// threads write their counters and flags on every request, and must not share a line.
#[derive(Debug)]
#[repr(align(128))]
pub struct SessionInfo {
    /// Proxy-unique session id.
    pub id: u64,
    /// Where the client connected from.
    pub client_addr: ClientPeer,
    identity: OnceLock<Identity>,
    backend_pid: AtomicI32,
    state: AtomicU8,
    /// When the state last changed, in microseconds since the registry's epoch.
    state_since_us: AtomicU64,
    /// True while the session has work in flight (an unfinished request, an open batch or an open
    /// transaction). Read by the pause gate; see [`crate::gate`] for the ordering protocol.
    pub(crate) busy: AtomicBool,
    /// Bytes forwarded from the client.
    pub bytes_client_to_server: AtomicU64,
    /// Bytes forwarded to the client.
    pub bytes_server_to_client: AtomicU64,
    /// Query and Execute messages forwarded.
    pub statements: AtomicU64,
    epoch: Instant,
}

impl SessionInfo {
    /// Publishes the session's identity (first call wins).
    pub fn set_identity(&self, identity: Identity) {
        let _ = self.identity.set(identity);
    }

    /// The identity, once known.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.get()
    }

    /// Publishes the backend's process id.
    pub fn set_backend_pid(&self, pid: i32) {
        self.backend_pid.store(pid, Ordering::Relaxed);
    }

    /// The backend's process id (0 before BackendKeyData).
    pub fn backend_pid(&self) -> i32 {
        self.backend_pid.load(Ordering::Relaxed)
    }

    /// Publishes a state change (no-op if unchanged, so the timestamp means "since").
    pub fn set_state(&self, state: SessionState) {
        self.set_state_at(state, Instant::now());
    }

    /// [`SessionInfo::set_state`] with a clock reading the caller already has (the forwarding
    /// loop reads the clock once per chunk for latencies and reuses it here).
    pub fn set_state_at(&self, state: SessionState, now: Instant) {
        // Plain load first: most calls change nothing (an extended batch's messages, pipelined
        // queries), and a load keeps the cache line shared where a swap would take it exclusive.
        if self.state.load(Ordering::Relaxed) == state as u8 {
            return;
        }
        self.state.store(state as u8, Ordering::Relaxed);
        let since = now.saturating_duration_since(self.epoch);
        self.state_since_us
            .store(since.as_micros() as u64, Ordering::Relaxed);
    }

    /// The current state.
    pub fn state(&self) -> SessionState {
        SessionState::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// How long the session has been in its current state.
    pub fn state_age(&self) -> Duration {
        let since = Duration::from_micros(self.state_since_us.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(since)
    }

    /// Whether the session has work in flight (not at a transaction boundary).
    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::SeqCst)
    }

    /// The session's byte and statement counters.
    pub fn traffic(&self) -> Traffic {
        Traffic {
            client_to_server: self.bytes_client_to_server.load(Ordering::Relaxed),
            server_to_client: self.bytes_server_to_client.load(Ordering::Relaxed),
            statements: self.statements.load(Ordering::Relaxed),
        }
    }

    /// A serializable snapshot of the session.
    pub fn view(&self) -> SessionView {
        let identity = self.identity().cloned().unwrap_or_default();
        SessionView {
            id: self.id,
            client_addr: self.client_addr.to_string(),
            user: identity.user,
            database: identity.database,
            application_name: identity.application_name,
            backend_pid: self.backend_pid(),
            state: self.state().as_str().into(),
            state_secs: self.state_age().as_secs_f64(),
        }
    }
}

/// A session as shown by `status` and in pause reports.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct SessionView {
    /// Session id.
    pub id: u64,
    /// Client address (`[local]` for the unix socket).
    pub client_addr: String,
    /// User.
    pub user: String,
    /// Database.
    pub database: String,
    /// application_name.
    pub application_name: String,
    /// Backend process id (0 if not connected yet).
    pub backend_pid: i32,
    /// State name (a static name when written; owned when read back from a reply).
    pub state: std::borrow::Cow<'static, str>,
    /// Seconds in the current state.
    pub state_secs: f64,
}

/// All live sessions.
#[derive(Debug)]
pub struct Sessions {
    map: DashMap<u64, Arc<SessionInfo>>,
    next_id: AtomicU64,
    epoch: Instant,
    emptied: Notify,
}

impl Default for Sessions {
    fn default() -> Self {
        Self::new()
    }
}

impl Sessions {
    /// An empty registry.
    pub fn new() -> Self {
        Sessions {
            map: DashMap::new(),
            next_id: AtomicU64::new(1),
            epoch: Instant::now(),
            emptied: Notify::new(),
        }
    }

    /// Registers a new session in state `starting`.
    pub fn register(&self, client_addr: ClientPeer) -> Arc<SessionInfo> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let info = Arc::new(SessionInfo {
            id,
            client_addr,
            identity: OnceLock::new(),
            backend_pid: AtomicI32::new(0),
            state: AtomicU8::new(SessionState::Starting as u8),
            state_since_us: AtomicU64::new(self.epoch.elapsed().as_micros() as u64),
            busy: AtomicBool::new(false),
            bytes_client_to_server: AtomicU64::new(0),
            bytes_server_to_client: AtomicU64::new(0),
            statements: AtomicU64::new(0),
            epoch: self.epoch,
        });
        self.map.insert(id, info.clone());
        info
    }

    /// Removes a session; wakes [`Sessions::wait_empty`] when it was the last one.
    pub fn unregister(&self, id: u64) -> Option<Arc<SessionInfo>> {
        let removed = self.map.remove(&id).map(|(_, info)| info);
        if self.map.is_empty() {
            self.emptied.notify_waiters();
        }
        removed
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Calls `f` on every live session.
    pub fn for_each(&self, mut f: impl FnMut(&Arc<SessionInfo>)) {
        for entry in self.map.iter() {
            f(entry.value());
        }
    }

    /// Snapshots of all sessions, ordered by id.
    pub fn views(&self) -> Vec<SessionView> {
        let mut views: Vec<SessionView> = self.map.iter().map(|e| e.value().view()).collect();
        views.sort_by_key(|v| v.id);
        views
    }

    /// Sum of the live sessions' counters.
    pub fn live_traffic(&self) -> Traffic {
        let mut total = Traffic::default();
        for entry in self.map.iter() {
            let t = entry.value().traffic();
            total.client_to_server += t.client_to_server;
            total.server_to_client += t.server_to_client;
            total.statements += t.statements;
        }
        total
    }

    /// Waits until no session is live.
    pub async fn wait_empty(&self) {
        loop {
            let notified = self.emptied.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.map.is_empty() {
                return;
            }
            notified.await;
        }
    }
}
