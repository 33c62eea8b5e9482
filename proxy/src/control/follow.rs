//! How a member of the fleet follows the migrations stored in the database, whoever started
//! them: it adopts each one it does not know, publishes the route of the stored phase, drives
//! the ones that need a driver and have none (the driver lock is free), and takes part in the
//! flip's hold.
//!
//! The stored row is the truth. A member looks at it when the trigger on `duet.migrations`
//! announces a change, when the fleet asks for a barrier or a hold ends, when it (re)joins, and
//! every heartbeat otherwise. A phase this member is moving itself (its controller's own steps,
//! an operator command running here) is left to that code.
//!
//! Holds: on `hold`, the member pauses its gate within the asked budget and acknowledges (or says
//! which sessions kept it busy); on the matching `release` — or when the flip's time is surely
//! over — it reads the stored phases, publishes their routes, and only then resumes its clients,
//! so none of them runs a statement under the routes of the wrong side of the flip.

use std::sync::Arc;
use std::time::Duration;

use duet_shadow::migrate::Phase;
use duet_shadow::plan::Plan;
use tokio::sync::broadcast::error::RecvError;

use super::driver::{needs_driver, release};
use super::settings::StoredSettingsError;
use super::{bypass, controller, flip, status, Migration, RunSettings};
use crate::context::ProxyContext;
use crate::fleet::{store, Event, Message};
use crate::gate::PauseOutcome;

/// A migration row as stored.
struct Stored {
    id: i64,
    phase: Phase,
    plan: Plan,
    error: Option<String>,
    settings: RunSettings,
    /// Seconds since the row last changed.
    idle_s: f64,
}

/// How long a `planned` migration is left to the member that started it (it takes the driver
/// lock right after recording it) before another member takes it over.
const PLANNED_GRACE_S: f64 = 5.0;

/// Why the stored migrations could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// Reading `duet.migrations` failed.
    #[error("reading duet.migrations: {}", duet_shadow::migrate::DbErrorText(.0))]
    Read(#[source] tokio_postgres::Error),
    /// A stored phase is not one duet knows.
    #[error(transparent)]
    Phase(#[from] duet_shadow::migrate::MigrateError),
    /// A stored plan cannot be read.
    #[error("migration {id}: unreadable plan: {source}")]
    Plan {
        /// The migration.
        id: i64,
        /// The decoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// Stored settings cannot be read.
    #[error("migration {id}: {source}")]
    Settings {
        /// The migration.
        id: i64,
        /// Why.
        #[source]
        source: StoredSettingsError,
    },
}

/// Starts the member's follower: reacts to the fleet's events until the proxy stops.
pub fn spawn(ctx: &Arc<ProxyContext>) {
    let ctx = ctx.clone();
    let mut events = ctx.fleet.subscribe();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::fleet::member::HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(Event::Joined) | Ok(Event::Message(Message::Changed { .. })) | Err(RecvError::Lagged(_)) => {
                        sync_logged(&ctx).await;
                    }
                    Ok(Event::Message(Message::Sync { token })) => {
                        sync_logged(&ctx).await;
                        report_now(&ctx).await;
                        acknowledge(&ctx, &token, true, "").await;
                    }
                    Ok(Event::Message(Message::Hold { token, from, budget_ms })) => {
                        if from != ctx.fleet.id() {
                            tokio::spawn(hold(ctx.clone(), token, from, Duration::from_millis(budget_ms)));
                        }
                    }
                    Ok(Event::Lost) => demote_all(&ctx),
                    Ok(Event::Message(_)) => {}
                    Err(RecvError::Closed) => return,
                },
                _ = tick.tick() => sync_logged(&ctx).await,
                _ = ctx.fleet.left() => return,
            }
        }
    });
}

async fn sync_logged(ctx: &Arc<ProxyContext>) {
    if let Err(error) = sync(ctx).await {
        tracing::warn!(%error, "following the stored migrations");
    }
}

/// Reads the stored migrations and brings this member in line with them (see the module docs).
/// Without a fleet connection there is nothing to read: `Ok`.
pub async fn sync(ctx: &Arc<ProxyContext>) -> Result<(), FollowError> {
    let Some(client) = ctx.fleet.client() else {
        return Ok(());
    };
    let _one_at_a_time = ctx.migrations.following.lock().await;
    // Sessions starting from now take their role's current default path.
    if let Err(err) = ctx.role_paths.refresh(client.as_ref()).await {
        tracing::debug!(%err, "reading the roles' search_path settings");
    }
    for stored in read(ctx, client.as_ref()).await? {
        match ctx.migrations.get(stored.id) {
            None if stored.phase.is_terminal() || ctx.migrations.is_starting() => {}
            None => adopt(ctx, stored).await,
            Some(m) => follow(ctx, &m, stored).await,
        }
    }
    Ok(())
}

/// The active migrations, and the ones this member still shows as active.
async fn read(
    ctx: &ProxyContext,
    client: &tokio_postgres::Client,
) -> Result<Vec<Stored>, FollowError> {
    let terminal: Vec<&str> = Phase::ALL
        .iter()
        .filter(|p| p.is_terminal())
        .map(|p| p.as_str())
        .collect();
    let known: Vec<i64> = ctx
        .migrations
        .all()
        .iter()
        .filter(|m| !m.phase().is_terminal())
        .map(|m| m.id)
        .collect();
    let rows = client
        .query(
            "SELECT id, phase, plan::text, error, settings::text,
                    extract(epoch FROM clock_timestamp() - updated_at)::float8
             FROM duet.migrations
             WHERE NOT (phase = ANY($1)) OR id = ANY($2) ORDER BY id",
            &[&terminal, &known],
        )
        .await
        .map_err(FollowError::Read)?;
    let mut stored = Vec::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.get(0);
        let phase: Phase = row.get::<_, String>(1).parse::<Phase>()?;
        let plan: Plan = serde_json::from_str(&row.get::<_, String>(2))
            .map_err(|source| FollowError::Plan { id, source })?;
        let settings = RunSettings::stored(&ctx.config.migration, &row.get::<_, String>(4))
            .map_err(|source| FollowError::Settings { id, source })?;
        stored.push(Stored {
            id,
            phase,
            plan,
            error: row.get(3),
            settings,
            idle_s: row.get(5),
        });
    }
    Ok(stored)
}

/// Registers a migration this member did not know (started by another member, or before this
/// one started), publishes the route of its phase, and drives it if it needs a driver.
async fn adopt(ctx: &Arc<ProxyContext>, stored: Stored) {
    let Stored {
        id,
        phase,
        plan,
        error,
        settings,
        idle_s,
    } = stored;
    // A plan stored by a duet without the safety net: before its expand has finished the net is
    // simply added (the expand steps run again, idempotently); later, writes that bypassed the
    // rewrite since have no mirror, which the operator must hear about (`shown_error`).
    let mut plan = plan;
    if matches!(phase, Phase::Planned | Phase::Expanding) {
        duet_shadow::plan::steps::add_safety_net(&mut plan);
    }
    let counters = ctx.routes.counters(&plan.table.schema, &plan.table.name);
    let error = shown_error(&plan, phase, error);
    let m = Arc::new(Migration::new(id, plan, phase, settings, counters));
    m.set_error(error);
    ctx.migrations.insert(m.clone());
    tracing::info!(migration = id, table = %m.table_label(), %phase, "following migration");
    m.publish_if_changed(ctx, m.route_for(phase));
    if phase != Phase::Planned || idle_s > PLANNED_GRACE_S {
        drive_if_needed(ctx, &m).await;
    }
}

/// Brings a known migration in line with its stored row.
async fn follow(ctx: &Arc<ProxyContext>, m: &Arc<Migration>, stored: Stored) {
    // An operator command running here moves the phase itself.
    let Ok(_op) = m.op.try_lock() else {
        return;
    };
    let local = m.phase();
    if m.driven_here() {
        if drivers_own(local, stored.phase) {
            return;
        }
        // The rows may have been read just before this member's own driver recorded its next
        // step (it records, then updates its memory): then the row is behind the memory, and
        // taking it for another member's move would stop the driver mid-step and hand the
        // migration to a member that repeats the step (found by the safety-net suite: a second
        // expand failing on the shadow column the first had added). Read the row again; if it
        // moved since the snapshot, the next round sees it as it is.
        if super::connection::stored_phase(ctx, m.id).await != Some(stored.phase) {
            return;
        }
        // Another member moved it (an abort, a cutover): stop what this one was doing.
        tracing::info!(migration = m.id, from = %local, to = %stored.phase, "moved by another member");
        m.stop_tasks();
        m.set_driven(false);
        ctx.fleet.stop_driving(m.id).await;
    }
    // Not driving it (any more): what stopped it is what its driver recorded on the row, shown
    // here as it changes, so `status` through any member says the same (and `retry` through
    // this one can say where to send it).
    let shown = shown_error(&m.plan, stored.phase, stored.error.clone());
    if m.error() != shown {
        m.set_error(shown);
    }
    if stored.phase != local {
        m.set_phase(stored.phase);
        if stored.phase.is_terminal() {
            m.live().copy = None;
            m.stop_tasks();
        }
    }
    if m.run_settings() != stored.settings {
        m.apply_settings(stored.settings);
    }
    m.publish_if_changed(ctx, m.route_for(stored.phase));
    drop(_op);
    if stored.phase != Phase::Planned || stored.idle_s > PLANNED_GRACE_S {
        drive_if_needed(ctx, m).await;
    }
}

/// What `status` shows as the error of a migration in `phase` as it is stored (adopted, or
/// followed while another member drives it): a warning that follows from the stored state, else
/// the error its driver `stored`.
fn shown_error(plan: &Plan, phase: Phase, stored: Option<String>) -> Option<String> {
    if duet_shadow::plan::steps::lacks_safety_net(plan) {
        // Stored by a duet without the safety net, and past its expand (before it, the net is
        // added on adoption): writes that bypassed the rewrite since have no mirror.
        return Some(
            "this migration was started by a duet without the safety net: writes that did not go through the rewrite (other connections, functions, PREPARE) since then have no mirror — abort it (or revert it after the cutover) and start it again".to_owned(),
        );
    }
    if phase == Phase::Flipping {
        return Some(
            "stored in phase flipping by another controller: check the table, then abort or fix the row"
                .to_owned(),
        );
    }
    stored
}

/// Whether `stored` is a phase the driver's own task moves `local` to (it records first, then
/// updates its memory: the row may be a step ahead).
fn drivers_own(local: Phase, stored: Phase) -> bool {
    use Phase::*;
    local == stored
        || matches!(
            (local, stored),
            (Planned, Expanding)
                | (Planned, Ready)
                | (Expanding, Copying)
                | (Expanding, Completed)
                | (Copying, Verifying)
                | (Verifying, Ready)
                | (Verifying, Copying)
                | (Ready, Flipped)
                | (Completing, Completed)
                | (Aborting, Aborted)
                | (Reverting, Reverted)
        )
}

/// Takes the driver lock of `m` when its phase needs a driver and no live member holds it, and
/// starts the work of its phase.
async fn drive_if_needed(ctx: &Arc<ProxyContext>, m: &Arc<Migration>) {
    let phase = m.phase();
    if m.driven_here() || !needs_driver(phase, &m.run_settings()) {
        return;
    }
    match ctx.fleet.try_drive(m.id).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(error) => {
            tracing::debug!(migration = m.id, %error, "cannot take the driver lock");
            return;
        }
    }
    // The row may have moved while the lock was taken: drive what is stored now.
    m.set_driven(true);
    tracing::info!(migration = m.id, %phase, "driving migration");
    match phase {
        Phase::Completing | Phase::Aborting | Phase::Reverting => {
            let (ctx, m) = (ctx.clone(), m.clone());
            tokio::spawn(async move {
                let done = match phase {
                    Phase::Completing => flip::complete(&ctx, &m, true).await,
                    Phase::Aborting => flip::abort(&ctx, &m).await,
                    _ => flip::revert(&ctx, &m).await,
                };
                if let Err(error) = done {
                    // Stored: once released, this member shows what the row says.
                    super::connection::report_error(&ctx, &m, error.to_string()).await;
                }
                release(&ctx, &m).await;
            });
        }
        _ => {
            if matches!(phase, Phase::Copying | Phase::Verifying | Phase::Ready) {
                m.publish_if_changed(ctx, m.dual_write_route_in(phase));
            }
            controller::spawn(ctx, m);
            bypass::spawn_sampler(ctx, m);
        }
    }
}

/// The member connection was lost, and with it every driver lock: stop driving.
fn demote_all(ctx: &Arc<ProxyContext>) {
    for m in ctx.migrations.all() {
        if m.driven_here() {
            tracing::warn!(migration = m.id, "fleet connection lost: no longer driving");
            m.stop_tasks();
            m.set_driven(false);
        }
    }
}

/// Writes this member's heartbeat (its counters) now.
async fn report_now(ctx: &ProxyContext) {
    let Some(client) = ctx.fleet.client() else {
        return;
    };
    match store::heartbeat(client.as_ref(), ctx.fleet.id(), &status::self_report(ctx)).await {
        Ok(members) => ctx.fleet.set_members(members),
        Err(err) => tracing::warn!(%err, "fleet heartbeat failed"),
    }
}

/// The longest a member holds its clients for another member's flip without a release.
const HOLD_LIMIT: Duration = Duration::from_secs(30);

/// Whether member `id` is still live (unknown counts as live: keep holding).
async fn asker_is_live(ctx: &ProxyContext, id: &str) -> bool {
    let Some(client) = ctx.fleet.client() else {
        return true;
    };
    match store::live_members(client.as_ref(), ctx.fleet.id()).await {
        Ok(members) => members.iter().any(|m| m.id == id),
        Err(_) => true,
    }
}

async fn acknowledge(ctx: &ProxyContext, token: &str, ok: bool, detail: &str) {
    let Some(client) = ctx.fleet.client() else {
        return;
    };
    if let Err(err) = store::acknowledge(client.as_ref(), ctx.fleet.id(), token, ok, detail).await {
        tracing::warn!(%err, token, "cannot acknowledge to the fleet");
    }
}

/// A hold asked by another member (see the module docs).
async fn hold(ctx: Arc<ProxyContext>, token: String, from: String, budget: Duration) {
    let mut events = ctx.fleet.subscribe();
    // Subscribed first, then checked: a release is either seen here or arrives on `events`.
    if ctx.fleet.is_released(&token) {
        return;
    }
    // After the previous hold has read the stored phase and released its clients: acknowledging
    // while its pause still holds the gate would let its resume open the gate under this one.
    let _one_hold_at_a_time = ctx.fleet.holding.lock().await;
    if ctx.fleet.is_released(&token) {
        return;
    }
    let started = std::time::Instant::now();
    // Paused already (an operator's pause, another hold): the sessions are held; leave the
    // resume to whoever paused.
    let paused_here = if ctx.gate.is_paused() {
        false
    } else {
        match ctx.gate.pause(&ctx.sessions, budget).await {
            PauseOutcome::Paused { .. } => true,
            PauseOutcome::TimedOut { blocking, .. } => {
                let names = blocking
                    .iter()
                    .map(|s| {
                        format!(
                            "session {} (user {}, {} for {:.1}s)",
                            s.id, s.user, s.state, s.state_secs
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                acknowledge(&ctx, &token, false, &names).await;
                return;
            }
            PauseOutcome::Resumed { .. } => {
                acknowledge(&ctx, &token, false, "an operator resumed its gate").await;
                return;
            }
        }
    };
    acknowledge(&ctx, &token, true, "").await;
    // The asker releases on its transaction's commit, or when it gives up. Without a release,
    // the clients stay held while the asker is alive (its transaction may still commit), up to
    // HOLD_LIMIT; then, or once it is gone, the stored phase says what happened.
    let hold_limit = tokio::time::Instant::now() + HOLD_LIMIT;
    let mut look = tokio::time::Instant::now()
        + budget
        + ctx.config.migration.flip_lock_timeout
        + Duration::from_secs(1);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(Event::Message(Message::Release { token: t })) if t == token => break,
                Err(RecvError::Closed) => break,
                _ => {}
            },
            _ = tokio::time::sleep_until(look) => {
                if tokio::time::Instant::now() >= hold_limit || !asker_is_live(&ctx, &from).await {
                    tracing::warn!(token, asker = %from, "no release from the member holding the fleet; reading the stored state");
                    break;
                }
                look = tokio::time::Instant::now() + Duration::from_millis(500);
            }
        }
    }
    // Release only with the routes of the stored phase: when the member connection is down,
    // wait for it to come back (it rejoins within a second) rather than guess.
    loop {
        if ctx.fleet.client().is_some() {
            match sync(&ctx).await {
                Ok(()) => break,
                Err(error) => tracing::warn!(%error, "reading the stored migrations after a hold"),
            }
        }
        if tokio::time::Instant::now() >= hold_limit {
            tracing::error!(token, "cannot read the stored migrations; releasing the held clients with the routes they had");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if paused_here {
        ctx.gate.resume();
    }
    tracing::info!(
        token,
        held_ms = started.elapsed().as_millis() as u64,
        "fleet hold released"
    );
}
