//! The results of admin commands, as typed values: the server builds them, `duet admin`, `duet
//! demo` and [`super::render`] read them back from the reply's `result`. Their JSON is the admin
//! socket's documented format (field names and shapes are what scripts read).

/// A migration's phase, as replies carry it (re-exported: a client of the admin socket reads
/// replies with this crate alone).
pub use duet_shadow::migrate::Phase;
use duet_shadow::plan::{Plan, PlanKind};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::protocol::Reply;
use crate::control::status::phase_name;
use crate::control::RunSettings;
pub use crate::session_registry::SessionView;

/// `status`: one snapshot of the proxy. The server writes it and every reader reads it back as
/// the same type (no copy of its shape to keep in step).
pub use crate::status::StatusReport;

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
    pub blocking_sessions: Option<Vec<SessionView>>,
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
        let read: StatusReport = result_of("status", &written).expect("the server's shape");
        assert_eq!(serde_json::to_value(&read).expect("json"), written);
    }
}
