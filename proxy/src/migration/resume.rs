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

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::follow;
use crate::context::ProxyContext;
use crate::fleet::store::{SelfReport, TableCounts};

/// Why restoring failed in a way that must stop startup.
#[derive(Debug, thiserror::Error)]
#[error("cannot restore duet's migrations from the backend: {0}")]
pub struct RestoreError(pub String);

/// Joins the fleet, starts following it, and restores the stored migrations.
pub async fn restore(ctx: &Arc<ProxyContext>) -> Result<(), RestoreError> {
    crate::fleet::member::start(ctx, self_report).await;
    follow::spawn(ctx);
    if ctx.fleet.client().is_some() {
        return follow::sync(ctx)
            .await
            .map_err(|e| RestoreError(e.to_string()));
    }
    // Not joined: fine while the backend is down (the follower restores once it joins), not when
    // the backend answers and holds migrations this proxy cannot follow.
    let Ok(client) = super::control::connect(ctx).await else {
        tracing::warn!(
            "cannot reach the backend to restore migrations; retrying in the background"
        );
        return Ok(());
    };
    let exists: bool = client
        .query_one("SELECT to_regclass('duet.migrations') IS NOT NULL", &[])
        .await
        .map_err(|e| RestoreError(e.to_string()))?
        .get(0);
    if exists {
        return Err(RestoreError(
            "duet's schema exists but this proxy could not join the fleet in front of the database (the log says why): it cannot know which tables are under migration".to_owned(),
        ));
    }
    Ok(())
}

/// What this member publishes about itself with every heartbeat (and before it answers a
/// barrier, so the asker reads counts as of now).
pub(crate) fn self_report(ctx: &ProxyContext) -> SelfReport {
    let mut counters = serde_json::Map::new();
    for m in ctx.migrations.all() {
        if m.phase().is_terminal() {
            continue;
        }
        let c = &m.counters;
        let counts = TableCounts {
            old_shape_statements: c.old_shape_statements.load(Ordering::Relaxed),
            old_shape_last_seen_ms: c.old_shape_last_seen_ms.load(Ordering::Relaxed),
            dual_writes: c.dual_writes.load(Ordering::Relaxed),
            unrewritten_writes: c.unrewritten.load(Ordering::Relaxed),
        };
        if let Ok(mut value) = serde_json::to_value(counts) {
            let sample = super::status::bypass_views(&m.live().bypass);
            if let (Some(object), false) = (value.as_object_mut(), sample.is_empty()) {
                if let Ok(list) = serde_json::to_value(sample) {
                    object.insert(super::status::BYPASS_KEY.to_owned(), list);
                }
            }
            counters.insert(m.table_label(), value);
        }
    }
    if let Ok(latency) = serde_json::to_value(super::latency::member_report(ctx)) {
        counters.insert(super::latency::MEMBER_KEY.to_owned(), latency);
    }
    SelfReport {
        listen: ctx.config.listen.to_string(),
        admin_socket: ctx.config.admin_socket.display().to_string(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        route_epoch: i64::try_from(ctx.routes.epoch()).unwrap_or(i64::MAX),
        sessions: i32::try_from(ctx.sessions.len()).unwrap_or(i32::MAX),
        counters: serde_json::Value::Object(counters),
    }
}
