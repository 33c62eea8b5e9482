//! The results of admin commands, as typed values: the server builds them, `duet admin`, `duet
//! demo` and [`super::render`] read them back from the reply's `result`. Their JSON is the admin
//! socket's documented format (field names and shapes are what scripts read).

/// A migration's phase, as replies carry it (re-exported: a client of the admin socket reads
/// replies with this crate alone).
pub use duet_shadow::migrate::Phase;
use duet_shadow::plan::{Plan, PlanKind};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::protocol::Reply;
use crate::control::status::{phase_name, MigrationStatus};
use crate::control::RunSettings;
use crate::metrics::RecentLatency;
use crate::session_registry::SessionView;

/// A reply's result that is not the shape the command answers with.
#[derive(Debug, thiserror::Error)]
#[error("the reply to {command} is not its documented shape: {source}")]
pub struct UnexpectedReply {
    /// The command.
    pub command: &'static str,
    /// The decoder's error.
    #[source]
    pub source: serde_json::Error,
}

/// Reads the result of a successful `reply` to `command` as `T`.
pub fn result_of<T: DeserializeOwned>(
    command: &'static str,
    result: &serde_json::Value,
) -> Result<T, UnexpectedReply> {
    T::deserialize(result).map_err(|source| UnexpectedReply { command, source })
}

impl Reply {
    /// A successful reply carrying `result`; a result that cannot be written as JSON (never
    /// expected: these are plain data) becomes an internal error reply.
    pub fn with<T: Serialize>(result: &T) -> Self {
        match serde_json::to_value(result) {
            Ok(value) => Reply::ok(value),
            Err(err) => Reply::error(format!("internal error rendering the reply: {err}")),
        }
    }
}

/// `pause`: whether every session reached a transaction boundary in time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PauseReply {
    /// Whether the proxy is now paused.
    pub paused: bool,
    /// Why not (`timeout`, `resumed`), when not paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How long the pause waited, in milliseconds.
    pub waited_ms: u64,
    /// The sessions that kept the proxy from being quiet (after a timeout), as `status` shows
    /// sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocking_sessions: Option<Vec<SessionRow>>,
}

/// A session as `status` and a timed-out `pause` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRow {
    /// duet's session id.
    pub id: u64,
    /// The client's address.
    pub client_addr: String,
    /// The user.
    pub user: String,
    /// The database.
    pub database: String,
    /// Its application_name.
    pub application_name: String,
    /// Its backend's pid (0 while not connected).
    pub backend_pid: i32,
    /// What it is doing (`idle in transaction`, …).
    pub state: String,
    /// Seconds in that state.
    pub state_secs: f64,
}

impl From<SessionView> for SessionRow {
    fn from(view: SessionView) -> Self {
        SessionRow {
            id: view.id,
            client_addr: view.client_addr,
            user: view.user,
            database: view.database,
            application_name: view.application_name,
            backend_pid: view.backend_pid,
            state: view.state.to_owned(),
            state_secs: view.state_secs,
        }
    }
}

/// `resume`: the proxy is no longer paused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumeReply {
    /// Always `false`: new transactions proceed.
    pub paused: bool,
}

/// `shutdown`: the proxy stopped accepting and closes its sessions within the budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShutdownReply {
    /// Always `true`.
    pub shutting_down: bool,
    /// Sessions still open when the shutdown began.
    pub sessions: usize,
}

/// One migration started by `migrate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartedMigration {
    /// Its id in `duet.migrations`.
    pub id: i64,
    /// The table, `schema.name`.
    pub table: String,
    /// The strategy the planner chose.
    pub strategy: PlanKind,
    /// Its phase when the reply was written.
    #[serde(with = "phase_name")]
    pub phase: Phase,
    /// Why the planner chose the strategy.
    pub reason: String,
    /// What the operator should know before going on.
    pub warnings: Vec<String>,
}

/// `migrate`: the first table's migration; for a migration of several tables, every table's in
/// flip order as `migrations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartedReply {
    /// The first (or only) table's migration.
    #[serde(flatten)]
    pub first: StartedMigration,
    /// Every table's migration, when there are several (empty, and left out, otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub migrations: Vec<StartedMigration>,
}

/// One table of a migration of several, in the reply of a command that acted on all of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberPhase {
    /// The table's migration id.
    pub id: i64,
    /// The table, `schema.name`.
    pub table: String,
    /// Its phase after the command.
    #[serde(with = "phase_name")]
    pub phase: Phase,
}

/// `cutover`, `revert`, `complete`, `abort`: the migration's phase after the command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseReply {
    /// The migration the command named.
    pub id: i64,
    /// Its phase now.
    #[serde(with = "phase_name")]
    pub phase: Phase,
    /// How long the cutover held the clients, in milliseconds (`cutover` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_ms: Option<u64>,
    /// Each table of a migration of several (left out for a migration of one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub migrations: Vec<MemberPhase>,
}

impl PhaseReply {
    /// The reply for migration `id`, of one table, now in `phase`.
    pub fn of(id: i64, phase: Phase) -> Self {
        PhaseReply {
            id,
            phase,
            stall_ms: None,
            migrations: Vec::new(),
        }
    }
}

/// `pause_copy`, `resume_copy`: the copy's state now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CopyStateReply {
    /// The migration.
    pub id: i64,
    /// `paused` or `running`.
    pub copy_state: String,
}

/// `status`: one snapshot of the proxy, as `duet admin` reads it (the server writes
/// [`crate::status::StatusReport`], whose JSON this is; parts a proxy may leave out read as
/// empty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReply {
    /// Seconds since start.
    pub uptime_secs: f64,
    /// Client-facing address.
    pub listen: String,
    /// Backend address.
    pub backend: String,
    /// How the link to the backend is secured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_tls: Option<String>,
    /// Whether the pause gate is closed.
    pub paused: bool,
    /// Client sessions.
    pub clients: CountReply,
    /// Backend connections.
    pub backend_connections: CountReply,
    /// Bytes forwarded.
    pub bytes: BytesReply,
    /// Query and Execute messages forwarded.
    pub statements: u64,
    /// Request → ReadyForQuery latency since start, in microseconds.
    pub latency_us: LatencyReply,
    /// The same over the last second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_recent_us: Option<RecentLatency>,
    /// Live sessions (absent or empty from the metrics endpoint).
    #[serde(default)]
    pub sessions: Vec<SessionRow>,
    /// Active and recently finished migrations.
    #[serde(default)]
    pub migrations: Vec<MigrationStatus>,
    /// This proxy's id in the fleet.
    #[serde(default)]
    pub member_id: String,
    /// Every live duet in front of the same database.
    #[serde(default)]
    pub members: Vec<MemberRow>,
}

/// A current/total pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountReply {
    /// Open now.
    pub current: u64,
    /// Opened since start.
    pub total: u64,
}

/// Bytes forwarded each way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BytesReply {
    /// From clients to the backend.
    pub client_to_server: u64,
    /// From the backend to clients.
    pub server_to_client: u64,
}

/// Latency percentiles since start, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyReply {
    /// Requests measured.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Slowest.
    pub max: u64,
}

/// A live member of the fleet, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRow {
    /// Its fleet id.
    pub id: String,
    /// Whether it is the proxy that answered.
    pub is_self: bool,
    /// Its client-facing address.
    pub listen: String,
    /// Its admin socket.
    pub admin_socket: String,
    /// Its duet version.
    pub version: String,
    /// Its process id.
    pub pid: i32,
    /// When it started.
    pub started_at: String,
    /// Seconds since its last heartbeat.
    pub heartbeat_age_s: f64,
    /// Its route epoch.
    pub route_epoch: i64,
    /// Its client sessions.
    pub sessions: i32,
}

/// `plan`: the plan of a migration of one table, or every table's in flip order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PlanReply {
    /// Several tables planned together: their names and their plans, in flip order.
    Group {
        /// The tables, `schema.name`.
        group: Vec<String>,
        /// Each table's plan.
        plans: Vec<Plan>,
    },
    /// One table's plan.
    One(Box<Plan>),
}

/// `set`: the migration's settings now in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingsReply {
    /// The migration.
    pub id: i64,
    /// Its settings.
    #[serde(flatten)]
    pub settings: RunSettings,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn command_replies_keep_their_documented_shape() {
        let cutover = PhaseReply {
            id: 3,
            phase: Phase::Flipped,
            stall_ms: Some(12),
            migrations: Vec::new(),
        };
        assert_eq!(
            serde_json::to_value(&cutover).expect("json"),
            json!({"id": 3, "phase": "flipped", "stall_ms": 12})
        );
        let group = json!({"id": 3, "phase": "aborted", "migrations": [
            {"id": 3, "table": "public.a", "phase": "aborted"},
            {"id": 4, "table": "public.b", "phase": "aborted"}]});
        let read: PhaseReply = result_of("abort", &group).expect("reads");
        assert_eq!(read.migrations.len(), 2);
        assert_eq!(serde_json::to_value(&read).expect("json"), group);
        let started = json!({"id": 7, "table": "public.t", "strategy": "shadow_table",
            "phase": "planned", "reason": "why", "warnings": ["w"]});
        let read: StartedReply = result_of("migrate", &started).expect("reads");
        assert_eq!(read.first.strategy, PlanKind::ShadowTable);
        assert_eq!(serde_json::to_value(&read).expect("json"), started);
        let pause = json!({"paused": false, "reason": "timeout", "waited_ms": 5,
            "blocking_sessions": []});
        let read: PauseReply = result_of("pause", &pause).expect("reads");
        assert_eq!(serde_json::to_value(&read).expect("json"), pause);
        assert!(result_of::<PhaseReply>("cutover", &json!({"id": 1})).is_err());
    }

    #[test]
    fn the_status_the_server_writes_reads_back_whole() {
        let overrides = crate::config::Overrides {
            backend: Some("postgres://postgres@127.0.0.1:5432/postgres".into()),
            ..Default::default()
        };
        let config = crate::config::from_str("", overrides).expect("config");
        let ctx = crate::context::ProxyContext::new(config, None);
        let written = serde_json::to_value(crate::status::report(&ctx, true)).expect("json");
        let read: StatusReply = result_of("status", &written).expect("the server's shape");
        assert_eq!(serde_json::to_value(&read).expect("json"), written);
    }
}
