//! The `status` report: one snapshot of the proxy, shared by the admin socket and the metrics
//! endpoint. Its JSON shape is part of the user-facing contract (fields may be added, never
//! renamed).

use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use crate::context::ProxyContext;
use crate::control::status::MigrationStatus;
use crate::metrics::{LatencySummary, RecentLatency};
use crate::session_registry::SessionView;

/// A current/total pair.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Count {
    /// Open now.
    pub current: u64,
    /// Opened since start.
    pub total: u64,
}

/// Bytes forwarded each way.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ByteCounts {
    /// From clients to the backend.
    pub client_to_server: u64,
    /// From the backend to clients.
    pub server_to_client: u64,
}

/// The status report. The server writes it; `duet admin`, `duet demo` and the benchmark read it
/// back ([`crate::admin::reply`]), where the parts a proxy may leave out (the metrics endpoint
/// leaves out the sessions; a proxy without a fleet connection, the members) read as empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Seconds since start.
    pub uptime_secs: f64,
    /// Client-facing address.
    pub listen: String,
    /// The clients' unix socket duet listens on (empty: none).
    #[serde(default)]
    pub unix_socket: String,
    /// Backend address (never credentials).
    pub backend: String,
    /// How the link to the backend is secured: `off`, or the sslmode and what is verified.
    #[serde(default)]
    pub backend_tls: String,
    /// Whether the pause gate is closed.
    pub paused: bool,
    /// Client sessions.
    pub clients: Count,
    /// Backend connections.
    pub backend_connections: Count,
    /// Bytes forwarded.
    pub bytes: ByteCounts,
    /// Query and Execute messages forwarded.
    pub statements: u64,
    /// Request → ReadyForQuery latency.
    pub latency_us: LatencySummary,
    /// The same over the last second (what the migration throttle watches), as of the last
    /// tick of its window.
    #[serde(default)]
    pub latency_recent_us: RecentLatency,
    /// Live sessions, by id.
    #[serde(default)]
    pub sessions: Vec<SessionView>,
    /// Active and recently finished migrations, by id.
    #[serde(default)]
    pub migrations: Vec<MigrationStatus>,
    /// This proxy's id in the fleet.
    #[serde(default)]
    pub member_id: String,
    /// Every live duet in front of the same database (this one included), as of the last
    /// heartbeat; empty while this proxy has no fleet connection.
    #[serde(default)]
    pub members: Vec<crate::fleet::MemberView>,
    /// Transaction mode's pools, one per (user, database) that has had a client.
    #[serde(default)]
    pub pools: Vec<crate::pool::backend_pool::PoolView>,
}

/// Takes a snapshot. With `with_sessions = false` the session list is left empty (cheaper, for the
/// metrics endpoint).
pub fn report(ctx: &ProxyContext, with_sessions: bool) -> StatusReport {
    let closed = ctx.metrics.closed_traffic();
    // Pooled connections are the pools' (sessions in transaction mode own none).
    let pools = ctx.pools.views();
    let pooled_open: usize = pools.iter().map(|p| p.open).sum();
    let pooled_total: usize = pools.iter().map(|p| p.opened_total).sum();
    let live = ctx.sessions.live_traffic();
    StatusReport {
        uptime_secs: ctx.metrics.uptime().as_secs_f64(),
        listen: ctx.config.listen.to_string(),
        unix_socket: ctx
            .config
            .unix_socket
            .path(ctx.config.listen.port())
            .map(|path| path.display().to_string())
            .unwrap_or_default(),
        backend: ctx.backend_addr.to_string(),
        backend_tls: ctx
            .backend
            .tls
            .as_ref()
            .map_or_else(|| "off".to_owned(), |tls| tls.describe()),
        paused: ctx.gate.is_paused(),
        clients: Count {
            current: ctx.sessions.len() as u64,
            total: ctx.metrics.clients_total.load(Ordering::Relaxed),
        },
        backend_connections: Count {
            current: ctx.metrics.backends_current.load(Ordering::Relaxed) + pooled_open as u64,
            total: ctx.metrics.backends_total.load(Ordering::Relaxed) + pooled_total as u64,
        },
        bytes: ByteCounts {
            client_to_server: closed.client_to_server + live.client_to_server,
            server_to_client: closed.server_to_client + live.server_to_client,
        },
        statements: closed.statements + live.statements,
        latency_us: ctx.metrics.latency_summary(),
        latency_recent_us: ctx
            .metrics
            .recent_latency(crate::control::latency::THROTTLE_WINDOW),
        sessions: if with_sessions {
            ctx.sessions.views()
        } else {
            Vec::new()
        },
        migrations: crate::control::status::report(ctx),
        member_id: ctx.fleet.id().to_owned(),
        members: ctx.fleet.members(),
        pools,
    }
}
