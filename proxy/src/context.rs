//! What every part of a running proxy shares: settings, registries, gate, metrics, shutdown.

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use crate::backend::Backend;
use crate::backend_url::BackendAddr;
use crate::cancel::CancelRegistry;
use crate::config::Config;
use crate::control::Migrations;
use crate::fleet::Fleet;
use crate::gate::Gate;
use crate::metrics::Metrics;
use crate::pool::Pools;
use crate::role_paths::RolePaths;
use crate::routes::RouteTable;
use crate::session_registry::Sessions;
use crate::shutdown::Shutdown;

/// The shared state of one running proxy.
pub struct ProxyContext {
    /// The validated settings.
    pub config: Config,
    /// Where sessions are forwarded.
    pub backend_addr: Arc<BackendAddr>,
    /// How sessions, cancel requests and control connections reach the backend: its address and
    /// TLS (shared with cancel targets).
    pub backend: Arc<Backend>,
    /// TLS for clients, when a certificate is configured.
    pub tls: Option<TlsAcceptor>,
    /// Live sessions.
    pub sessions: Arc<Sessions>,
    /// The pause gate.
    pub gate: Gate,
    /// Cancel keys.
    pub cancels: CancelRegistry,
    /// Counters and histograms.
    pub metrics: Metrics,
    /// The shutdown switch.
    pub shutdown: Arc<Shutdown>,
    /// Tables under migration and how their writes are mirrored (read by every session).
    pub routes: Arc<RouteTable>,
    /// The migrations this proxy drives (and recently finished).
    pub migrations: Arc<Migrations>,
    /// This proxy's membership of the fleet in front of the same database.
    pub fleet: Fleet,
    /// The `search_path` each role's sessions start with (read from the catalog).
    pub role_paths: RolePaths,
    /// Transaction mode's backend pools and the users duet authenticates.
    pub pools: Pools,
}

impl std::fmt::Debug for ProxyContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyContext")
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .field("sessions", &self.sessions.len())
            .field("paused", &self.gate.is_paused())
            .finish_non_exhaustive()
    }
}

impl ProxyContext {
    /// Builds the context for `config` (TLS already loaded, if any).
    pub fn new(config: Config, tls: Option<TlsAcceptor>) -> Self {
        ProxyContext {
            backend_addr: Arc::new(config.backend.addr.clone()),
            backend: Arc::new(Backend {
                addr: config.backend.addr.clone(),
                tls: config.backend_tls.clone(),
            }),
            pools: Pools::new(&config),
            config,
            tls,
            sessions: Arc::new(Sessions::new()),
            gate: Gate::new(),
            cancels: CancelRegistry::new(),
            metrics: Metrics::new(),
            shutdown: Arc::new(Shutdown::new()),
            routes: Arc::new(RouteTable::new()),
            migrations: Arc::new(Migrations::new()),
            fleet: Fleet::new(),
            role_paths: RolePaths::new(),
        }
    }
}
