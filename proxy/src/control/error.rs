//! Why a migration's work or an operator's command did not go through.
//!
//! [`MigrationError`] is what the controller's steps and the commands' clean-up fail with: the
//! typed cause (a control connection's, a step's [`MigrateError`], the fleet's) kept as the
//! source, and a message that already says everything the operator needs (the server's own text
//! included), since it is shown as one line in `status` and in the admin reply.
//! [`CommandError`] is what an operator's command answers: refused, retryable or failed — the
//! difference an operator (or a script driving duet) acts on: retry now, or fix something first.

use duet_shadow::migrate::{DbErrorText, MigrateError, Phase};
use tokio_postgres::error::SqlState;

use super::connection::ControlError;
use super::driver::BarrierError;

/// What the operator reads about a command that was not carried out, and the typed error behind
/// it when there is one (kept as the source: a refused plan's `PlanError`, a lost connection's
/// `ControlError`).
#[derive(Debug)]
pub struct Reason {
    message: String,
    cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Reason {
    /// `cause`'s own message, with `cause` kept as the source.
    pub fn because(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Reason {
            message: cause.to_string(),
            cause: Some(Box::new(cause)),
        }
    }

    /// The typed error behind the message, if any (for a caller that acts on what it was).
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.cause.as_deref()
    }
}

impl From<String> for Reason {
    fn from(message: String) -> Self {
        Reason {
            message,
            cause: None,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Reason {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .and_then(|cause| std::error::Error::source(cause))
    }
}

/// The outcome of a migration command that was not carried out. Every message says what happened
/// and what to do; the kind says whether the same command may succeed when simply run again.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Not possible in the migration's present state (its phase, its settings, old-shape
    /// statements still arriving, an object made outside duet): running it again changes nothing
    /// until that state changes.
    #[error(transparent)]
    Refused(Reason),
    /// Nothing was changed, and the same command may succeed when run again: a lock another
    /// connection held, sessions that did not reach a transaction boundary within the budget, a
    /// fleet member that did not answer, a connection that dropped.
    #[error(transparent)]
    Retryable(Reason),
    /// It failed in a way the error describes (a step's error from the database, an internal
    /// error); the migration's state is as `status` shows.
    #[error(transparent)]
    Failed(#[from] MigrationError),
}

impl CommandError {
    /// A refusal saying `message`.
    pub fn refused(message: impl Into<String>) -> Self {
        CommandError::Refused(Reason::from(message.into()))
    }

    /// A refusal because of `cause` (its message is the operator's).
    pub fn refused_because(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        CommandError::Refused(Reason::because(cause))
    }

    /// A retryable failure saying `message`.
    pub fn retryable(message: impl Into<String>) -> Self {
        CommandError::Retryable(Reason::from(message.into()))
    }

    /// A retryable failure because of `cause` (its message is the operator's).
    pub fn retryable_because(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        CommandError::Retryable(Reason::because(cause))
    }

    /// Whether running the same command again may succeed without changing anything first.
    pub fn is_retryable(&self) -> bool {
        matches!(self, CommandError::Retryable(_))
    }
}

/// Why a migration's background work, or the clean-up of an operator's command, stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// A control connection could not be opened, or a guarded step on one failed.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// A step of `duet_shadow::migrate` (copy, verification, repair, sweep, a recorded phase) failed;
    /// its message names the step.
    #[error(transparent)]
    Step(#[from] MigrateError),
    /// The fleet's members could not be brought to the new routes.
    #[error(transparent)]
    Fleet(#[from] BarrierError),
    /// Turning the safety net to plain deletes (after the copy) failed.
    #[error("turning the safety net to plain deletes: {}", DbErrorText(.0))]
    SafetyNet(#[source] tokio_postgres::Error),
    /// duet's state schema could not be created.
    #[error("cannot create duet's state schema: {0}")]
    StateSchema(#[source] MigrateError),
    /// The copier was stopped before it finished (an abort, the proxy shutting down).
    #[error("the copy was stopped")]
    CopyStopped,
    /// Verify-and-repair rounds did not make the shadow equal the converted source.
    #[error("the {shadow} of {table} still differs after {rounds} verify/repair rounds")]
    StillDiffers {
        /// `shadow` (a shadow table) or `shadow column`.
        shadow: &'static str,
        /// The table, `schema.name`.
        table: String,
        /// How many rounds ran.
        rounds: u32,
    },
    /// Something duet stores (a plan, its settings) could not be written as JSON.
    #[error("internal error storing the {what}: {source}")]
    Encode {
        /// What was being stored.
        what: &'static str,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// The table is already being migrated.
    #[error("table {table} already has an active migration: finish it first (`duet admin status` shows it; `duet admin abort --table {table}` or `complete`)")]
    AlreadyActive {
        /// The table, `schema.name`.
        table: String,
        /// The state layer's refusal.
        #[source]
        source: MigrateError,
    },
    /// Another member took the driver lock of a migration just recorded here.
    #[error("migration {id} is recorded but another member of the fleet took it over first; `duet admin status` shows it")]
    TakenOver {
        /// The migration.
        id: i64,
    },
    /// Another member drives the rest of a command and did not finish within the hand-over time.
    #[error("{command} of migration {id} is recorded; another member of the fleet is finishing it — `duet admin status` shows when it is done")]
    FinishingElsewhere {
        /// The command (`complete`, `the abort`, `the revert`).
        command: &'static str,
        /// The migration.
        id: i64,
    },
    /// The stored phase, which decides what a command does next, could not be read.
    #[error("cannot read the stored phase of migration {id}")]
    StoredPhaseUnreadable {
        /// The migration.
        id: i64,
    },
    /// The route change at the start of `complete` or `abort` did not happen.
    #[error("{command} not done (phase stays {from}): {source}")]
    NotDone {
        /// The command.
        command: &'static str,
        /// The phase it stays in.
        from: Phase,
        /// Why the change's hold or transaction failed.
        #[source]
        source: ChangeError,
    },
    /// One table of a migration of several failed its part of `complete`.
    #[error("{source} (migration {id} of {table}; run complete again for the rest)")]
    OfMember {
        /// That table's migration.
        id: i64,
        /// The table, `schema.name`.
        table: String,
        /// Its error.
        #[source]
        source: Box<MigrationError>,
    },
    /// A flip's or revert's transaction failed in a way running it again will not fix; the
    /// message says which command and what the server said.
    #[error("{message}")]
    Change {
        /// What the operator reads.
        message: String,
        /// The transaction's error.
        #[source]
        source: ChangeError,
    },
}

/// Why a change of a table's routes under the fleet's hold (the flip, the revert, the start of
/// `complete` and `abort`) did not happen; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The control connection for the change could not be opened.
    #[error(transparent)]
    Connect(#[from] ControlError),
    /// Not every member's clients could be held in time (the message names who held them).
    #[error("{0}")]
    Hold(String),
    /// A statement of the change's transaction failed (lock timeout, …).
    #[error("{}", DbErrorText(.0))]
    Db(#[source] tokio_postgres::Error),
    /// A fleet member joined or stopped holding during the change: nothing changed, run the
    /// command again.
    #[error("{0}")]
    State(String),
    /// The phase change was refused (someone else moved the migration): nothing changed, run
    /// the command again.
    #[error(transparent)]
    Transition(MigrateError),
    /// Objects bound to the table differ from the plan: nothing changed, and nothing will until
    /// the operator undoes the change.
    #[error("{0}")]
    Refused(String),
}

impl ChangeError {
    /// Whether the change's transaction gave up waiting for a lock.
    pub fn is_lock_timeout(&self) -> bool {
        matches!(self, ChangeError::Db(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE))
    }

    /// The command's error, `message` being what the operator reads: a lock, a deadlock, a lost
    /// connection, a missed hold or a moved phase may pass when the command is run again; a
    /// refusal of the server's (55000, the revert's check) or of the plan's check needs the
    /// operator first.
    pub fn into_command_error(self, message: String) -> CommandError {
        match &self {
            ChangeError::Refused(_) => CommandError::refused(message),
            ChangeError::State(_)
            | ChangeError::Transition(_)
            | ChangeError::Hold(_)
            | ChangeError::Connect(_) => CommandError::retryable(message),
            ChangeError::Db(e) => match e.code() {
                Some(c)
                    if *c == SqlState::LOCK_NOT_AVAILABLE
                        || *c == SqlState::T_R_DEADLOCK_DETECTED
                        || *c == SqlState::T_R_SERIALIZATION_FAILURE =>
                {
                    CommandError::retryable(message)
                }
                Some(c) if *c == SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE => {
                    CommandError::refused(message)
                }
                Some(_) => CommandError::Failed(MigrationError::Change {
                    message,
                    source: self,
                }),
                None => CommandError::retryable(message),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use super::*;

    #[test]
    fn a_command_error_says_what_its_cause_says_and_keeps_it() {
        let refused = CommandError::refused_because(crate::control::SelectError::NoneActive);
        assert_eq!(
            refused.to_string(),
            "no active migration; start one with `duet admin migrate`"
        );
        let CommandError::Refused(reason) = &refused else {
            panic!("a refusal: {refused:?}");
        };
        assert!(reason
            .cause()
            .is_some_and(|cause| cause.is::<crate::control::SelectError>()));
        assert!(!refused.is_retryable());
        assert!(CommandError::retryable("a lock").is_retryable());

        let decode = serde_json::from_str::<u8>("x").expect_err("not a number");
        let failed = CommandError::from(MigrationError::Encode {
            what: "plan",
            source: decode,
        });
        assert!(failed
            .to_string()
            .starts_with("internal error storing the plan: "));
        assert!(
            failed.source().is_some_and(|s| s.is::<serde_json::Error>()),
            "the failure's source is the encoder's error: {failed:?}"
        );
    }
}
