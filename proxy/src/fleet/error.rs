//! What can go wrong between a member and the fleet.

use duet_shadow::migrate::DbErrorText;

/// A fleet operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The member connection is not up (not joined yet, or lost and rejoining).
    #[error("duet's fleet connection to the database is down")]
    Disconnected,
    /// The member connection could not be opened.
    #[error(transparent)]
    Connect(#[from] crate::control::connection::ControlError),
    /// Migration ids are advisory-lock keys, which are 32-bit.
    #[error("migration id {0} is beyond the driver lock's range")]
    IdRange(i64),
    /// duet's schema could not be created or read.
    #[error("creating duet's schema: {0}")]
    Schema(#[from] duet_shadow::migrate::MigrateError),
    /// A statement on the member connection failed.
    #[error("{what}: {}", DbErrorText(.source))]
    Db {
        /// What the member was doing.
        what: &'static str,
        /// The server's error.
        #[source]
        source: tokio_postgres::Error,
    },
}

impl FleetError {
    /// A `map_err` for a statement doing `what`.
    pub fn db(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> FleetError {
        move |source| FleetError::Db { what, source }
    }
}
