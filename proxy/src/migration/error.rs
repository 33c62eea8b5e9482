//! Why an operator's migration command was not carried out, and whether running it again may
//! succeed — the difference an operator (or a script driving duet) acts on: retry now, or fix
//! something first.

/// The outcome of a migration command that was not carried out. Every message says what happened
/// and what to do; the kind says whether the same command may succeed when simply run again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Not possible in the migration's present state (its phase, its settings, old-shape
    /// statements still arriving, an object made outside duet): running it again changes nothing
    /// until that state changes.
    #[error("{0}")]
    Refused(String),
    /// Nothing was changed, and the same command may succeed when run again: a lock another
    /// connection held, sessions that did not reach a transaction boundary within the budget, a
    /// fleet member that did not answer, a connection that dropped.
    #[error("{0}")]
    Retryable(String),
    /// It failed in a way the message describes (a step's error from the database, an internal
    /// error); the migration's state is as `status` shows.
    #[error("{0}")]
    Failed(String),
}

impl CommandError {
    /// Whether running the same command again may succeed without changing anything first.
    pub fn is_retryable(&self) -> bool {
        matches!(self, CommandError::Retryable(_))
    }
}

impl From<String> for CommandError {
    fn from(message: String) -> Self {
        CommandError::Failed(message)
    }
}
