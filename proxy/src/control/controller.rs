//! The background task of one migration: from `planned` to `ready` (or `completed` for an
//! in-place change), then an automatic cutover when asked for.
//!
//! The task follows the stored phase, so the same code continues a migration after a restart:
//! expand steps are idempotent by contract (the planner writes `IF NOT EXISTS` where it can), the
//! copier resumes from its committed checkpoint, and verification starts over. A failure stops
//! the task with the error shown in `status` and stored on the row; the phase stays where it was,
//! so the operator can `abort`, or restart the proxy to retry.

use std::sync::Arc;
use std::time::Duration;

use duet_shadow::migrate::backfill::backfill;
use duet_shadow::migrate::copier::{CopierConfig, CopyOutcome};
use duet_shadow::migrate::guard::GuardedConnection;
use duet_shadow::migrate::latency::LatencyHandle;
use duet_shadow::migrate::old_transactions::{mark_dual_writes_enabled, old_transactions};
use duet_shadow::migrate::sweep::sweep_tombstones;
use duet_shadow::migrate::Phase;
use duet_shadow::plan::{CopySpec, PlanKind};

use super::error::{CommandError, MigrationError};
use super::verify::{copy_target, verify_until_clean};
use super::{connection, driver, flip, Migration};
use crate::context::ProxyContext;

/// How often the wait for older transactions looks again.
const OLD_TRANSACTION_POLL: Duration = Duration::from_millis(200);

/// Starts (or restarts) the background task of `m`.
pub fn spawn(ctx: &Arc<ProxyContext>, m: &Arc<Migration>) {
    let task = tokio::spawn({
        let (ctx, m) = (ctx.clone(), m.clone());
        async move {
            match drive(&ctx, &m).await {
                // Nothing left in the background: another member may drive what comes next.
                Ok(()) => driver::release(&ctx, &m).await,
                Err(error) => {
                    // A step that failed because the stored phase moved (another member drove it
                    // on after this one lost its lock, or an operator aborted) is not this
                    // migration's error: the follower takes the stored phase from here.
                    if moved_elsewhere(&ctx, &m).await {
                        tracing::info!(migration = m.id, %error, "moved on by another member; no longer driving");
                        driver::release(&ctx, &m).await;
                        return;
                    }
                    tracing::warn!(migration = m.id, %error, "migration stopped");
                    connection::report_error(&ctx, &m, error.to_string()).await;
                }
            }
        }
    });
    m.set_task(task);
}

/// Whether the stored phase differs from the one this member's task was in.
async fn moved_elsewhere(ctx: &ProxyContext, m: &Migration) -> bool {
    connection::stored_phase(ctx, m.id)
        .await
        .is_some_and(|stored| stored != m.phase())
}

async fn drive(ctx: &Arc<ProxyContext>, m: &Arc<Migration>) -> Result<(), MigrationError> {
    let mut guard = connection::guarded(ctx).await?;
    loop {
        let phase = m.phase();
        match phase {
            Phase::Planned => {
                let to = if m.plan.kind == PlanKind::Rename {
                    Phase::Ready
                } else {
                    Phase::Expanding
                };
                advance(&mut guard, m, phase, to).await?;
            }
            Phase::Expanding => expand(ctx, m, &mut guard).await?,
            Phase::Copying => copy(ctx, m, &mut guard).await?,
            Phase::Verifying => {
                end_tombstones(ctx, m, &mut guard).await?;
                verify_until_clean(ctx, m, &mut guard).await?;
                connection::run_steps(
                    ctx,
                    &mut guard,
                    &m.plan.table.schema,
                    "prepare flip",
                    &m.plan.prepare_flip,
                    Some((m.id, Phase::Verifying, Phase::Ready)),
                )
                .await?;
                m.set_phase(Phase::Ready);
                tracing::info!(migration = m.id, "ready for cutover");
            }
            Phase::Ready => {
                if m.run_settings().auto_cutover {
                    auto_cutover(ctx, m).await;
                }
                return Ok(());
            }
            _ => return Ok(()),
        }
    }
}

async fn expand(
    ctx: &Arc<ProxyContext>,
    m: &Arc<Migration>,
    guard: &mut GuardedConnection,
) -> Result<(), MigrationError> {
    if m.plan.kind == PlanKind::InPlace {
        connection::run_steps(
            ctx,
            guard,
            &m.plan.table.schema,
            "expand",
            &m.plan.expand,
            Some((m.id, Phase::Expanding, Phase::Completed)),
        )
        .await?;
        m.set_phase(Phase::Completed);
        m.stop_sampler();
        tracing::info!(migration = m.id, "in-place migration completed");
        return Ok(());
    }
    connection::run_steps(
        ctx,
        guard,
        &m.plan.table.schema,
        "expand",
        &m.plan.expand,
        None,
    )
    .await?;
    // Dual-writes on: published without the gate (the copier covers older transactions).
    m.publish(ctx, m.plan.dual_write_route.clone());
    advance(guard, m, Phase::Expanding, Phase::Copying).await?;
    Ok(())
}

async fn copy(
    ctx: &Arc<ProxyContext>,
    m: &Arc<Migration>,
    guard: &mut GuardedConnection,
) -> Result<(), MigrationError> {
    if !m.has_route(ctx) {
        m.publish(ctx, m.plan.dual_write_route.clone());
    }
    wait_for_older_transactions(m, guard).await?;
    let settings = m.run_settings();
    let config = CopierConfig {
        target_chunk_time: settings.chunk_time(),
        throttle: settings.throttles().copier_config(),
        latency: Some(LatencyHandle(m.latency_throttle(ctx))),
        ..CopierConfig::default()
    };
    let (copier, handle, sweep) = match &m.plan.copy {
        Some(CopySpec::Table(target)) => {
            let target = copy_target(guard, target).await?;
            let client = connection::connect(ctx).await?;
            let (copier, handle) =
                duet_shadow::migrate::copier::Copier::new(client, target.clone(), m.id, config);
            (copier, handle, Some(target))
        }
        Some(CopySpec::Column(spec)) => {
            let client = connection::connect(ctx).await?;
            let (copier, handle) = backfill(client, spec, m.id, config).await?;
            (copier, handle, None)
        }
        None => {
            advance(guard, m, Phase::Copying, Phase::Verifying).await?;
            return Ok(());
        }
    };
    {
        let mut live = m.live();
        if live.settings.copy_paused {
            handle.pause();
        }
        live.copy = Some(handle);
    }
    let outcome = copier.run().await?;
    if outcome == CopyOutcome::Stopped {
        return Err(MigrationError::CopyStopped);
    }
    if let Some(target) = sweep {
        sweep_tombstones(guard.client(), &target, m.id, 10_000).await?;
    }
    advance(guard, m, Phase::Copying, Phase::Verifying).await?;
    Ok(())
}

/// Once the copy is done, deletes are mirrored as plain DELETEs (no copier can resurrect a row
/// any more) and the tombstones are swept, before `prepare_flip` gives the shadow its NOT NULL,
/// unique and foreign-key constraints, which tombstone rows (NULL columns, kept keys) would break.
/// Statements still using the tombstone route are waited out first. Idempotent: a restarted
/// controller runs it again.
async fn end_tombstones(
    ctx: &Arc<ProxyContext>,
    m: &Arc<Migration>,
    guard: &mut GuardedConnection,
) -> Result<(), MigrationError> {
    let Some(CopySpec::Table(target)) = &m.plan.copy else {
        return Ok(());
    };
    let route = m.dual_write_route_in(Phase::Verifying);
    // The safety net turns to plain deletes with the rewrite (a CREATE OR REPLACE of its
    // function: no lock on the table); the wait below covers writes still using either.
    if let Some(sql) = route
        .as_ref()
        .and_then(|r| duet_shadow::rewrite::net::function_sql(&m.plan.table, r))
    {
        guard
            .client()
            .batch_execute(&sql)
            .await
            .map_err(MigrationError::SafetyNet)?;
    }
    m.publish(ctx, route);
    // Every member must use plain deletes before the wait below marks where old writes end.
    driver::barrier(ctx, m, None).await?;
    wait_for_older_transactions(m, guard).await?;
    let target = copy_target(guard, target).await?;
    sweep_tombstones(guard.client(), &target, m.id, 10_000).await?;
    Ok(())
}

/// Waits until every transaction older than the moment dual-writes were enabled has ended; the
/// status shows who is waited for.
async fn wait_for_older_transactions(
    m: &Arc<Migration>,
    guard: &GuardedConnection,
) -> Result<(), MigrationError> {
    let mark = mark_dual_writes_enabled(guard.client()).await?;
    loop {
        let blockers = old_transactions(guard.client(), &mark).await?;
        if blockers.is_empty() {
            m.live().note = None;
            return Ok(());
        }
        let who = blockers
            .iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        m.live().note = Some(format!(
            "waiting for {} transaction(s) older than dual-writes: {who}",
            blockers.len()
        ));
        tokio::time::sleep(OLD_TRANSACTION_POLL).await;
    }
}

/// The automatic cutover of a `ready` migration: a few attempts with back-off for what may pass
/// when tried again (a held lock, a missed budget); a refusal ends it with the reason in
/// `status`. An operator's pause (`duet admin pause`) holds it rather than ending it: it waits for
/// the resume, without using up an attempt, and flips then if automatic cutover is still on.
async fn auto_cutover(ctx: &Arc<ProxyContext>, m: &Arc<Migration>) {
    let attempts = ctx.config.migration.auto_cutover_attempts.max(1);
    let mut attempt = 0;
    while attempt < attempts {
        if ctx.gate.is_paused() {
            tracing::info!(
                migration = m.id,
                "automatic cutover waits for the operator's resume"
            );
            ctx.gate.wait_resumed().await;
            if !m.run_settings().auto_cutover || m.phase() != Phase::Ready {
                return;
            }
        }
        attempt += 1;
        match flip::cutover(ctx, m, ctx.config.migration.flip_budget).await {
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(migration = m.id, attempt, %error, "automatic cutover missed");
                if m.phase() != Phase::Ready {
                    return;
                }
                if let CommandError::Refused(why) = &error {
                    if ctx.gate.is_paused() {
                        // Paused by an operator since the check above: wait for the resume.
                        attempt -= 1;
                        continue;
                    }
                    // Running it again now changes nothing until something changes (the
                    // refusal says what): stop here. The member following the migration drives
                    // the ready phase again within a heartbeat, which tries once more.
                    connection::report_error(ctx, m, format!("automatic cutover refused: {why}"))
                        .await;
                    return;
                }
                tokio::time::sleep(duet_shadow::migrate::guard::backoff_with_jitter(
                    attempt,
                    Duration::from_millis(500),
                    Duration::from_secs(10),
                ))
                .await;
            }
        }
    }
    connection::report_error(
        ctx,
        m,
        format!("automatic cutover gave up after {attempts} attempts; run `duet admin cutover`"),
    )
    .await;
}

/// Records the step from phase `from` to `to` in the database, then takes it in memory: a
/// restarted controller resumes from what was recorded, never from a phase only memory had.
async fn advance(
    guard: &mut GuardedConnection,
    m: &Migration,
    from: Phase,
    to: Phase,
) -> Result<(), MigrationError> {
    connection::record(guard, m.id, from, to).await?;
    m.set_phase(to);
    // The step that failed before (shown since, and kept on the row until now) has been done:
    // the recorded transition cleared the stored error, and status must not show it any more.
    m.set_error(None);
    Ok(())
}
