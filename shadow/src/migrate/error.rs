//! The errors of the migration engine, as values with context.

use std::time::Duration;

use crate::migrate::old_transactions::Blocker;
use crate::migrate::phase::Phase;

/// Everything that can go wrong while expanding, copying, verifying or recording a migration.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A statement failed on the server (or the connection broke).
    #[error("{context}: {}", DbErrorText(source))]
    Db {
        /// What duet was doing.
        context: String,
        /// The driver's error (carries the SQLSTATE when the server answered).
        #[source]
        source: tokio_postgres::Error,
    },
    /// The table has no key the shadow-table strategy can copy and dual-write by.
    #[error("table {table} cannot use the shadow-table strategy: {reason}")]
    NoUsableKey {
        /// The table, as written by the operator.
        table: String,
        /// Why no key qualifies.
        reason: String,
    },
    /// A phase change that the state machine does not allow.
    #[error("migration {id}: illegal phase transition {from} -> {to}")]
    IllegalTransition {
        /// Migration id.
        id: i64,
        /// Current phase.
        from: Phase,
        /// Requested phase.
        to: Phase,
    },
    /// The migration was not in the phase the caller expected (someone else moved it).
    #[error("migration {id} is in phase {actual}, expected {expected}")]
    PhaseConflict {
        /// Migration id.
        id: i64,
        /// The phase the caller expected.
        expected: Phase,
        /// The phase stored in the database.
        actual: Phase,
    },
    /// The database refused a second active migration on the same table.
    #[error("table {table} already has an active migration")]
    AlreadyActive {
        /// The table.
        table: String,
    },
    /// No migration with this id.
    #[error("migration {0} not found")]
    NotFound(i64),
    /// The plan (mapping, key, names) is inconsistent.
    #[error("invalid migration plan: {0}")]
    InvalidPlan(String),
    /// Stored state could not be decoded.
    #[error("stored migration state is corrupt: {0}")]
    CorruptState(String),
    /// Transactions older than dual-writes are still running.
    #[error("{} transaction(s) older than dual-writes still running after {waited:?}: {}", blockers.len(), describe_blockers(blockers))]
    OldTransactions {
        /// How long duet waited.
        waited: Duration,
        /// The sessions that held it up.
        blockers: Vec<Blocker>,
    },
    /// A retryable error kept happening.
    #[error(
        "{context}: gave up after {attempts} attempts: {}",
        DbErrorText(source)
    )]
    RetriesExhausted {
        /// What duet was doing.
        context: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last error.
        #[source]
        source: tokio_postgres::Error,
    },
}

/// A driver error as the operator needs it: tokio-postgres's own `Display` of a server error is
/// just "db error", so the server's SQLSTATE, message, detail and hint are spelled out (every
/// migration error that carries a server error is rendered through this, in `status`, the admin
/// answers and the log). Other errors (a broken connection, say) keep the driver's text.
#[derive(Debug, Clone, Copy)]
pub struct DbErrorText<'a>(pub &'a tokio_postgres::Error);

impl std::fmt::Display for DbErrorText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(db) = self.0.as_db_error() else {
            return write!(f, "{}", self.0);
        };
        write!(
            f,
            "{} {}: {}",
            db.severity(),
            db.code().code(),
            db.message()
        )?;
        if let Some(detail) = db.detail() {
            write!(f, " (DETAIL: {detail})")?;
        }
        if let Some(hint) = db.hint() {
            write!(f, " (HINT: {hint})")?;
        }
        Ok(())
    }
}

fn describe_blockers(blockers: &[Blocker]) -> String {
    blockers
        .iter()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

impl MigrateError {
    /// The SQLSTATE of the underlying server error, if any.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            MigrateError::Db { source, .. } | MigrateError::RetriesExhausted { source, .. } => {
                source.code().map(|c| c.code())
            }
            _ => None,
        }
    }
}

/// Attach context to driver errors.
pub(crate) trait DbContext<T> {
    /// Wrap the error with what duet was doing.
    fn ctx(self, context: impl Into<String>) -> Result<T, MigrateError>;
}

impl<T> DbContext<T> for Result<T, tokio_postgres::Error> {
    fn ctx(self, context: impl Into<String>) -> Result<T, MigrateError> {
        self.map_err(|source| MigrateError::Db {
            context: context.into(),
            source,
        })
    }
}
