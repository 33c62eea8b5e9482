//! Why a helper process (PgBouncer, duet, pgbench) could not be started or driven.

use std::path::PathBuf;

/// Failure to launch or drive a helper process.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The program is not installed where we looked.
    #[error("{program} not found at {path}: {hint}")]
    NotFound {
        /// Which program.
        program: &'static str,
        /// Where we looked.
        path: PathBuf,
        /// How to get it.
        hint: String,
    },
    /// We are root, the program refuses root, and there is no account to switch to.
    #[error("{0}")]
    NoServerUser(String),
    /// A filesystem or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The program started but never became usable, or exited.
    #[error(
        "{program} did not become ready: {reason}\n--- {program} log (last lines) ---\n{log_tail}"
    )]
    NotReady {
        /// Which program.
        program: &'static str,
        /// What went wrong.
        reason: String,
        /// The end of its log.
        log_tail: String,
    },
    /// A command run against it failed.
    #[error("{program}: {message}")]
    Command {
        /// Which program.
        program: &'static str,
        /// What happened.
        message: String,
    },
}

/// Builds a closure mapping an I/O error to [`LaunchError::Io`] with context.
pub fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LaunchError {
    let what = what.into();
    move |source| LaunchError::Io { what, source }
}
