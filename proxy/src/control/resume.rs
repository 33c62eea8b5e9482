//! Startup: join the fleet and restore the migrations stored in the database — unfinished ones
//! a previous proxy left, and ones other members of the fleet run now — before any client is
//! accepted, so no session ever runs against a table without the routes its migration needs.
//!
//! Restoring is following ([`super::follow`]): each stored migration is adopted with the route
//! of its phase, and one that needs a driver and has none is driven from its stored phase:
//! `planned`/`expanding` → the (idempotent) expand steps run again and publish dual-writes;
//! `copying`/`verifying` → dual-writes republished at once, the copier resumes from its
//! checkpoint and verification starts over; `ready` → dual-writes, waiting for a cutover;
//! `flipped` → the flipped route; `completing`, `aborting`, `reverting` → the routes stay
//! cleared and the command's clean-up steps run again. `flipping` is never stored by this
//! controller (the flip's transaction commits `flipped` atomically); a row left there by another
//! controller is treated as `ready` would be and shown with an error. A resumed migration never
//! cuts over by itself unless its stored settings say so.
//!
//! When the backend cannot be reached at startup, the proxy starts anyway (clients could not
//! reach it either) and restores in the background once it joins; when it answers and duet's
//! schema exists but cannot be read, startup fails: serving without knowing which tables are
//! under migration could route writes wrongly.

use std::sync::Arc;

use super::follow::{self, FollowError};
use super::status::self_report;
use crate::context::ProxyContext;

/// Why restoring failed in a way that must stop startup.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The stored migrations could not be followed.
    #[error("cannot restore duet's migrations from the backend: {0}")]
    Follow(#[source] FollowError),
    /// Whether duet's schema exists could not be asked.
    #[error("cannot restore duet's migrations from the backend: {0}")]
    Query(#[source] tokio_postgres::Error),
    /// duet's schema exists, but this proxy could not join the fleet.
    #[error("cannot restore duet's migrations from the backend: duet's schema exists but this proxy could not join the fleet in front of the database (the log says why): it cannot know which tables are under migration")]
    NotJoined,
}

/// Joins the fleet, starts following it, and restores the stored migrations.
pub async fn restore(ctx: &Arc<ProxyContext>) -> Result<(), RestoreError> {
    crate::fleet::member::start(ctx, self_report).await;
    follow::spawn(ctx);
    if ctx.fleet.client().is_some() {
        return follow::sync(ctx).await.map_err(RestoreError::Follow);
    }
    // Not joined: fine while the backend is down (the follower restores once it joins), not when
    // the backend answers and holds migrations this proxy cannot follow.
    let Ok(client) = super::connection::connect(ctx).await else {
        tracing::warn!(
            "cannot reach the backend to restore migrations; retrying in the background"
        );
        return Ok(());
    };
    let exists: bool = client
        .query_one("SELECT to_regclass('duet.migrations') IS NOT NULL", &[])
        .await
        .map_err(RestoreError::Query)?
        .get(0);
    if exists {
        return Err(RestoreError::NotJoined);
    }
    Ok(())
}
