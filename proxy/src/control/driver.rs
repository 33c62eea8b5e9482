//! The driver lock of a migration — which member of the fleet runs its background work and its
//! operator commands' clean-up — and the barrier that waits for every member to take a new
//! route. The controller, the flip's commands and the follower all take and give up the lock
//! through here, so none of them calls another for it.

use std::time::Duration;

use duet_shadow::migrate::{DbErrorText, Phase};

use super::{Migration, RunSettings};
use crate::context::ProxyContext;
use crate::fleet::{store, Message};

/// Why the fleet's barrier failed: the message could not be sent or the answers read, or
/// members did not answer in time.
#[derive(Debug, thiserror::Error)]
pub enum BarrierError {
    /// Asking the fleet (NOTIFY) failed.
    #[error("asking the fleet to follow: {}", DbErrorText(.0))]
    Ask(#[source] tokio_postgres::Error),
    /// Reading the members' acknowledgements failed.
    #[error("reading the fleet's answers: {}", DbErrorText(.0))]
    Answers(#[source] tokio_postgres::Error),
    /// Members did not answer within the barrier's limit.
    #[error("fleet member(s) {} did not answer within {limit_ms} ms (stopped or cut off?)", .members.join(", "))]
    Silent {
        /// The members that did not answer.
        members: Vec<String>,
        /// The limit, in milliseconds.
        limit_ms: u128,
    },
}

/// Whether a migration in `phase` has background work that some member must run.
pub(crate) fn needs_driver(phase: Phase, settings: &RunSettings) -> bool {
    match phase {
        Phase::Planned
        | Phase::Expanding
        | Phase::Copying
        | Phase::Verifying
        | Phase::Completing
        | Phase::Aborting
        | Phase::Reverting => true,
        Phase::Ready => settings.auto_cutover,
        _ => false,
    }
}

/// Gives up driving `m` (its work is done or moved elsewhere).
pub(crate) async fn release(ctx: &ProxyContext, m: &Migration) {
    if m.driven_here() {
        m.set_driven(false);
        ctx.fleet.stop_driving(m.id).await;
    }
}

/// Gives up driving `m` unless its phase has work for a driver (an operator command that took
/// the lock and then changed nothing).
pub(crate) async fn release_if_idle(ctx: &ProxyContext, m: &Migration) {
    if !needs_driver(m.phase(), &m.run_settings()) {
        release(ctx, m).await;
    }
}

/// Takes the driver lock of `m` for an operator command running on this member, waiting up to
/// `wait` for a driver that is stopping; `false` when another member still drives it.
pub(crate) async fn acquire(ctx: &ProxyContext, m: &Migration, wait: Duration) -> bool {
    if m.driven_here() {
        return true;
    }
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match ctx.fleet.try_drive(m.id).await {
            Ok(true) => {
                m.set_driven(true);
                return true;
            }
            // No fleet connection: nothing to coordinate with (a proxy alone, or a database
            // that cannot hold duet's tables; the stored phase still serialises commands).
            Err(_) if ctx.fleet.client().is_none() => return true,
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every other live member has read the stored phase of `m`, published its route
/// and written its counters (after a route change that must not overlap the old one, such as
/// the end of tombstones; before `complete` counts old-shape statements); `status` shows who is
/// waited for. Members that die drop out of the wait; with a `limit`, members that do not
/// answer within it fail the barrier (named).
pub(crate) async fn barrier(
    ctx: &ProxyContext,
    m: &Migration,
    limit: Option<Duration>,
) -> Result<(), BarrierError> {
    let Some(client) = ctx.fleet.client() else {
        return Ok(());
    };
    let me = ctx.fleet.id();
    let token = ctx.fleet.token("sync");
    let mut events = ctx.fleet.subscribe();
    store::notify(
        client.as_ref(),
        &Message::Sync {
            token: token.clone(),
        },
    )
    .await
    .map_err(BarrierError::Ask)?;
    let started = std::time::Instant::now();
    loop {
        let waiting = store::not_acknowledged(client.as_ref(), me, &token)
            .await
            .map_err(BarrierError::Answers)?;
        if waiting.is_empty() {
            m.live().note = None;
            return Ok(());
        }
        if limit.is_some_and(|limit| started.elapsed() >= limit) {
            return Err(BarrierError::Silent {
                members: waiting,
                limit_ms: limit.map_or(0, |l| l.as_millis()),
            });
        }
        if limit.is_none() && started.elapsed() > Duration::from_secs(2) {
            m.live().note = Some(format!(
                "waiting for fleet member(s) {} to take the new routes",
                waiting.join(", ")
            ));
        }
        tokio::select! {
            _ = events.recv() => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}
