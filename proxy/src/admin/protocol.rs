//! Admin requests and replies, as they travel on the socket.

use std::time::Duration;

/// What `migrate` and `plan` change (re-exported: a client of the admin socket builds requests
/// with this crate alone).
pub use duet_shadow::plan::PlanInput;
use serde::{Deserialize, Serialize};

/// Default `pause` timeout.
pub const DEFAULT_PAUSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `shutdown` budget.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest request line the server reads.
pub const MAX_REQUEST_LINE: usize = 64 * 1024;

/// Which migration a command is about: `table` (`schema.name` or unqualified) or `id`; with
/// neither, the only active migration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector {
    /// The table, `schema.name` or unqualified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// The migration id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
}

/// Run settings changed by `set` (each optional; stored with the migration, so they survive a
/// restart).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopySettings {
    /// Flip on its own as soon as the migration is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_cutover: Option<bool>,
    /// Target duration of one copy chunk, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_time_ms: Option<u64>,
    /// Pause the copy while a replica's replay lag is above this many milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replication_lag_ms: Option<u64>,
    /// Pause the copy while more client backends than this run a statement (0: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active_backends: Option<u32>,
    /// While the application is busy, rest this many times as long as each copy chunk or
    /// verified range took (0: never rest; at most 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nice_ratio: Option<f64>,
    /// Hold the copy and the verification while the clients' p99 is above this many times the
    /// baseline (0: not watched; else 1 to 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency_factor: Option<f64>,
    /// ...but never for a p99 at or below this many microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_floor_us: Option<u64>,
    /// Longest the clients' latency keeps the work from its next piece (rests included), in
    /// milliseconds (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_max_pause_ms: Option<u64>,
    /// The clients' p99 before the migration, in microseconds (0: measure it again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_baseline_us: Option<u64>,
}

/// One request. `command` is the variant in snake_case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Request {
    /// The status report.
    Status,
    /// Hold new transactions and wait for in-flight ones.
    Pause {
        /// Give up (and release) after this long; default 10 s.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// Release a pause.
    Resume,
    /// Stop accepting, let sessions finish within the budget, then close them and exit.
    Shutdown {
        /// The budget; default 30 s.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// Plan, record and start a migration (expand → copy → verify → ready in the background).
    Migrate {
        /// What to change.
        input: PlanInput,
        /// Flip as soon as the migration is ready.
        #[serde(default)]
        auto_cutover: bool,
        /// Leave the integer columns of other tables that reference a widened key as they are
        /// (by default they are widened in the same migration).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        keep_referencing_types: bool,
    },
    /// Plan only (dry run): the plan as JSON, nothing recorded or touched.
    Plan {
        /// What to change.
        input: PlanInput,
        /// As for `migrate`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        keep_referencing_types: bool,
    },
    /// Pause the copy after its current chunk.
    PauseCopy {
        /// Which migration.
        #[serde(flatten)]
        target: Selector,
    },
    /// Resume a paused copy.
    ResumeCopy {
        /// Which migration.
        #[serde(flatten)]
        target: Selector,
    },
    /// Run the step that stopped a migration (expand, copy, verification) again.
    Retry {
        /// Which migration.
        #[serde(flatten)]
        target: Selector,
    },
    /// Change copier settings while it runs.
    Set {
        /// The settings to change.
        settings: CopySettings,
        /// Which migration.
        #[serde(flatten)]
        target: Selector,
    },
    /// Flip a ready migration to the new shape under the gate.
    Cutover {
        /// Drain budget (default `[migration] flip_budget`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        budget_ms: Option<u64>,
        /// Flip even while bypassing writers are active.
        #[serde(default)]
        force: bool,
        /// Which migration.
        #[serde(flatten)]
        target: Selector,
    },
    /// Abandon a migration before its flip; drops the shadow.
    Abort {
        /// Which migration.
        #[serde(flatten)]
        target: Selector,
    },
    /// Go back to the old shape after a flip (before complete).
    Revert {
        /// Revert even though writes since the flip may be missing from the old shape (writers
        /// that bypassed duet, or writes forwarded without their mirror).
        #[serde(default)]
        force: bool,
        /// Which migration.
        #[serde(flatten)]
        target: Selector,
    },
    /// Finish a flipped migration: stop translating/mirroring, drop the old shape.
    Complete {
        /// Complete even though old-shape statements or bypassing writers were seen.
        #[serde(default)]
        force: bool,
        /// Which migration.
        #[serde(flatten)]
        target: Selector,
    },
}

impl Request {
    /// The command's name as sent (`pause_copy`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Pause { .. } => "pause",
            Request::Resume => "resume",
            Request::Shutdown { .. } => "shutdown",
            Request::Migrate { .. } => "migrate",
            Request::Plan { .. } => "plan",
            Request::PauseCopy { .. } => "pause_copy",
            Request::ResumeCopy { .. } => "resume_copy",
            Request::Retry { .. } => "retry",
            Request::Set { .. } => "set",
            Request::Cutover { .. } => "cutover",
            Request::Abort { .. } => "abort",
            Request::Revert { .. } => "revert",
            Request::Complete { .. } => "complete",
        }
    }
}

/// One reply line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// Whether the command was carried out.
    pub ok: bool,
    /// The command's result (when `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// What went wrong and what to do (when not `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When not `ok`: nothing was changed and the same command may succeed when simply run again
    /// (a lock another connection held, a missed budget, a fleet member that did not answer).
    /// Absent (false) when something must change first.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retryable: bool,
}

impl Reply {
    /// A successful reply.
    pub fn ok(result: serde_json::Value) -> Self {
        Reply {
            ok: true,
            result: Some(result),
            error: None,
            retryable: false,
        }
    }

    /// A refusal.
    pub fn error(message: impl Into<String>) -> Self {
        Reply {
            ok: false,
            result: None,
            error: Some(message.into()),
            retryable: false,
        }
    }

    /// This refusal, marked as one that may pass when the command is simply run again.
    pub fn retryable(self, retryable: bool) -> Self {
        Reply { retryable, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_the_documented_shape() {
        let pause: Request =
            serde_json::from_str(r#"{"command": "pause", "timeout_ms": 5000}"#).unwrap();
        assert_eq!(
            pause,
            Request::Pause {
                timeout_ms: Some(5000)
            }
        );
        let status: Request = serde_json::from_str(r#"{"command":"status"}"#).unwrap();
        assert_eq!(status, Request::Status);
        assert_eq!(
            serde_json::to_string(&Request::Shutdown {
                timeout_ms: Some(1)
            })
            .unwrap(),
            r#"{"command":"shutdown","timeout_ms":1}"#
        );
        assert!(serde_json::from_str::<Request>(r#"{"command":"drop"}"#).is_err());
    }

    #[test]
    fn migration_requests_have_the_documented_shape() {
        let migrate: Request = serde_json::from_str(
            r#"{"command":"migrate","input":{"kind":"sql","sql":"ALTER TABLE t ADD c int"},"auto_cutover":true}"#,
        )
        .unwrap();
        assert!(matches!(
            migrate,
            Request::Migrate {
                auto_cutover: true,
                ..
            }
        ));
        let cutover: Request =
            serde_json::from_str(r#"{"command":"cutover","budget_ms":500,"table":"public.t"}"#)
                .unwrap();
        assert_eq!(
            cutover,
            Request::Cutover {
                budget_ms: Some(500),
                force: false,
                target: Selector {
                    table: Some("public.t".into()),
                    id: None
                }
            }
        );
        let set: Request =
            serde_json::from_str(r#"{"command":"set","settings":{"chunk_time_ms":50},"id":3}"#)
                .unwrap();
        assert_eq!(set.name(), "set");
        let text = serde_json::to_string(&Request::PauseCopy {
            target: Selector::default(),
        })
        .unwrap();
        assert_eq!(text, r#"{"command":"pause_copy"}"#);
    }

    #[test]
    fn replies_have_the_documented_shape() {
        let ok = serde_json::to_string(&Reply::ok(serde_json::json!({"paused": false}))).unwrap();
        assert_eq!(ok, r#"{"ok":true,"result":{"paused":false}}"#);
        let err = serde_json::to_string(&Reply::error("no")).unwrap();
        assert_eq!(err, r#"{"ok":false,"error":"no"}"#);
    }
}
