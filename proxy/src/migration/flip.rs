//! The operator's commands that change what a table's statements mean: cutover (the flip),
//! revert, complete and abort. Each holds the pause gate only around its route change (and the
//! flip's or revert's one transaction), and resumes it on every path through `Resume`, a guard
//! that resumes when dropped.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use shadow::migrate::state;
use shadow::migrate::{DbErrorText, Phase};
use shadow::plan::Step;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::{bypass, control, BlockingSession, FlipRecord, Migration};
use crate::context::ProxyContext;
use crate::gate::{Gate, PauseOutcome};

/// Resumes the gate when dropped: every exit path of a gate hold releases the clients.
struct Resume<'a> {
    gate: &'a Gate,
    started: Instant,
}

impl Resume<'_> {
    /// Resumes now; returns how long clients were held.
    fn now(self) -> Duration {
        self.started.elapsed()
        // Dropped here: resumes.
    }
}

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        self.gate.resume();
    }
}

/// Why a pause did not hold the gate: the flip outcome to record, how long it waited, who
/// blocked it, and the message.
type Missed = (&'static str, Duration, Vec<BlockingSession>, String);

/// Pauses the gate within `budget`; a missed budget names the sessions that held it.
async fn pause<'a>(ctx: &'a ProxyContext, budget: Duration) -> Result<Resume<'a>, Missed> {
    if ctx.gate.is_paused() {
        // Our resume would release the operator's pause: leave that decision to them.
        return Err((
            "error",
            Duration::ZERO,
            Vec::new(),
            "the proxy is paused by an operator (duet admin pause): run `duet admin resume` first"
                .to_owned(),
        ));
    }
    let started = Instant::now();
    match ctx.gate.pause(&ctx.sessions, budget).await {
        PauseOutcome::Paused { .. } => Ok(Resume {
            gate: &ctx.gate,
            started,
        }),
        PauseOutcome::TimedOut { waited, blocking } => {
            let sessions: Vec<BlockingSession> = blocking
                .iter()
                .map(|s| BlockingSession {
                    id: s.id,
                    user: s.user.clone(),
                    state: s.state,
                    age_s: s.state_secs,
                    backend_pid: s.backend_pid,
                })
                .collect();
            let names = sessions
                .iter()
                .map(|s| {
                    format!(
                        "session {} (user {}, {} for {:.1}s, backend pid {})",
                        s.id, s.user, s.state, s.age_s, s.backend_pid
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            let message = format!(
                "sessions did not reach a transaction boundary within {} ms: {names}; the held clients were released",
                budget.as_millis()
            );
            Err(("budget_missed", waited, sessions, message))
        }
        PauseOutcome::Resumed { waited } => Err((
            "error",
            waited,
            Vec::new(),
            "an operator resumed the gate before every session was idle".to_owned(),
        )),
    }
}

fn record_flip(
    m: &Migration,
    outcome: &'static str,
    stall: Duration,
    blocked_by: Vec<BlockingSession>,
    message: Option<String>,
) {
    m.live().last_flip = Some(FlipRecord {
        outcome,
        stall_ms: crate::duration::whole_millis(stall),
        blocked_by,
        message,
    });
}

/// Why a one-transaction step (flip, revert) was rolled back.
enum TxError {
    /// A statement failed (lock timeout, …).
    Db(tokio_postgres::Error),
    /// The phase change was refused (someone else moved the migration).
    State(String),
}

impl TxError {
    fn is_lock_timeout(&self) -> bool {
        matches!(self, TxError::Db(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE))
    }
}

impl std::fmt::Display for TxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TxError::Db(err) => write!(f, "{}", DbErrorText(err)),
            TxError::State(message) => f.write_str(message),
        }
    }
}

/// Runs `steps` and the phase change `from → to` in one transaction with `lock_timeout`; any
/// failure rolls everything back (the transaction is dropped uncommitted).
async fn one_transaction(
    client: &mut Client,
    m: &Migration,
    steps: &[Step],
    lock_timeout: Duration,
    from: Phase,
    to: Phase,
) -> Result<(), TxError> {
    let tx = client.transaction().await.map_err(TxError::Db)?;
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = '{}ms'",
        lock_timeout.as_millis().max(1)
    ))
    .await
    .map_err(TxError::Db)?;
    for step in steps {
        tx.batch_execute(&step.sql).await.map_err(TxError::Db)?;
    }
    state::transition(&tx, m.id, from, to, None, &json!({}))
        .await
        .map_err(|e| TxError::State(e.to_string()))?;
    tx.commit().await.map_err(TxError::Db)
}

/// Flips a `ready` migration: pause (within `budget`), one transaction with the flip steps and
/// the phase change to `flipped`, publish the flipped route, resume.
pub async fn cutover(
    ctx: &Arc<ProxyContext>,
    m: &Arc<Migration>,
    budget: Duration,
) -> Result<Value, String> {
    let _op = m.op.lock().await;
    let phase = m.phase();
    if phase != Phase::Ready {
        return Err(format!(
            "migration {} of {} is {phase}, not ready: a cutover is possible once `status` shows ready",
            m.id,
            m.table_label()
        ));
    }
    // Writers that bypass duet, and writes duet forwarded unchanged, were mirrored by the safety
    // net in their own transactions: nothing to reconcile, whoever wrote. A writer still inside
    // a transaction on the table only delays the flip's lock (`flip_lock_timeout`).
    // Connect before pausing: the gate is held only for the flip itself.
    let mut client = control::connect(ctx).await?;
    let resume = match pause(ctx, budget).await {
        Ok(resume) => resume,
        Err((outcome, waited, blocked_by, message)) => {
            record_flip(m, outcome, waited, blocked_by, Some(message.clone()));
            return Err(format!("cutover not done (phase stays ready): {message}"));
        }
    };
    let flipped = one_transaction(
        &mut client,
        m,
        &m.plan.flip,
        ctx.config.migration.flip_lock_timeout,
        Phase::Ready,
        Phase::Flipped,
    )
    .await;
    // A connection lost around COMMIT leaves the outcome unknown: the stored phase decides
    // (still under the gate, so the route follows the database either way).
    let flipped = match flipped {
        Err(TxError::Db(err)) if err.as_db_error().is_none() => {
            match stored_phase(ctx, m.id).await {
                Some(Phase::Flipped) => Ok(()),
                _ => Err(TxError::Db(err)),
            }
        }
        other => other,
    };
    match flipped {
        Ok(()) => {
            m.publish(ctx, m.plan.flipped_route.clone());
            let stall = resume.now();
            m.set_phase(Phase::Flipped);
            m.set_error(None);
            record_flip(m, "flipped", stall, Vec::new(), None);
            let stall_ms = crate::duration::whole_millis(stall);
            tracing::info!(migration = m.id, stall_ms, "flipped");
            Ok(json!({"id": m.id, "phase": "flipped", "stall_ms": stall_ms}))
        }
        Err(err) => {
            let stall = resume.now();
            let lock = err.is_lock_timeout();
            let message = err.to_string();
            let outcome = if lock { "lock_timeout" } else { "error" };
            record_flip(m, outcome, stall, Vec::new(), Some(message.clone()));
            Err(if lock {
                let writers = bypass::active_writers(m);
                let around = if writers.is_empty() {
                    String::new()
                } else {
                    format!("; writing it around duet: {}", writers.join("; "))
                };
                format!(
                    "cutover not done (phase stays ready): the flip could not lock {} within {} ms ({message}); another connection holds a lock on it — retry when it is gone{around}",
                    m.table_label(),
                    ctx.config.migration.flip_lock_timeout.as_millis()
                )
            } else {
                format!("cutover not done (phase stays ready): the flip failed: {message}")
            })
        }
    }
}

/// Goes back to the old shape after a flip: one transaction with the revert steps (phase →
/// reverting) under the gate, routes cleared, resume; then the after-revert clean-up (→ reverted).
pub async fn revert(ctx: &Arc<ProxyContext>, m: &Arc<Migration>) -> Result<Value, String> {
    let _op = m.op.lock().await;
    let phase = m.phase();
    // Every write since the flip, through duet or not, was mirrored into the old shape by the
    // rewrite or the safety net; rows the old types cannot hold make the revert step refuse.
    if phase == Phase::Flipped {
        let mut client = control::connect(ctx).await?;
        let resume = pause(ctx, ctx.config.migration.flip_budget)
            .await
            .map_err(|(_, _, _, message)| format!("revert not done (still flipped): {message}"))?;
        one_transaction(
            &mut client,
            m,
            &m.plan.revert,
            ctx.config.migration.flip_lock_timeout,
            Phase::Flipped,
            Phase::Reverting,
        )
        .await
        .map_err(|e| format!("revert not done (still flipped): {e}"))?;
        m.publish(ctx, None);
        drop(resume);
        m.set_phase(Phase::Reverting);
    } else if phase != Phase::Reverting {
        return Err(format!(
            "migration {} is {phase}: revert is possible only after a cutover (use abort before it)",
            m.id
        ));
    }
    let mut guard = control::guarded(ctx).await?;
    control::run_steps(
        ctx,
        &mut guard,
        &m.plan.table.schema,
        "after revert",
        &m.plan.after_revert,
        Some((m.id, Phase::Reverting, Phase::Reverted)),
    )
    .await?;
    finish(m, Phase::Reverted);
    Ok(json!({"id": m.id, "phase": "reverted"}))
}

/// Finishes a flipped migration: refused while old-shape statements arrived within the window
/// (unless `force`); then routes cleared under the gate and the complete steps (→ completed).
pub async fn complete(
    ctx: &Arc<ProxyContext>,
    m: &Arc<Migration>,
    force: bool,
) -> Result<Value, String> {
    let _op = m.op.lock().await;
    let phase = m.phase();
    if phase != Phase::Flipped && phase != Phase::Completing {
        return Err(format!(
            "migration {} is {phase}: complete is possible only after a cutover",
            m.id
        ));
    }
    if !force {
        let counters = &m.counters;
        let last = counters
            .old_shape_last_seen_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        let count = counters
            .old_shape_statements
            .load(std::sync::atomic::Ordering::Relaxed);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(crate::duration::whole_millis)
            .unwrap_or(0);
        let window = ctx.config.migration.old_shape_window;
        if last > 0 && now_ms.saturating_sub(last) < crate::duration::whole_millis(window) {
            return Err(format!(
                "statements written for the old shape of {} still arrive ({count} so far, the last {:.1}s ago, window {}s): update those clients first, or `complete --force`",
                m.table_label(),
                now_ms.saturating_sub(last) as f64 / 1000.0,
                window.as_secs()
            ));
        }
    }
    let mut guard = control::guarded(ctx).await?;
    if phase == Phase::Flipped {
        control::record(&mut guard, m.id, Phase::Flipped, Phase::Completing).await?;
        m.set_phase(Phase::Completing);
    }
    let published = m.has_route(ctx);
    clear_route_and_finish(
        ctx,
        m,
        &mut guard,
        published,
        Phase::Completing,
        Phase::Completed,
    )
    .await
}

/// The end of `complete` and `abort`: clear the table's route while the gate holds every session
/// (no transaction sees it vanish mid-way), then run the guarded clean-up steps of `from` and
/// record `to` with the last of them.
async fn clear_route_and_finish(
    ctx: &Arc<ProxyContext>,
    m: &Arc<Migration>,
    guard: &mut shadow::migrate::guard::GuardedConnection,
    route_published: bool,
    from: Phase,
    to: Phase,
) -> Result<Value, String> {
    let (name, steps) = match to {
        Phase::Aborted => ("abort", &m.plan.abort),
        _ => ("complete", &m.plan.complete),
    };
    if route_published {
        let resume =
            pause(ctx, ctx.config.migration.flip_budget)
                .await
                .map_err(|(_, _, _, message)| {
                    format!("{name} not finished (phase {from}; run {name} again): {message}")
                })?;
        m.publish(ctx, None);
        drop(resume);
    }
    control::run_steps(
        ctx,
        guard,
        &m.plan.table.schema,
        name,
        steps,
        Some((m.id, from, to)),
    )
    .await?;
    finish(m, to);
    Ok(json!({"id": m.id, "phase": to.as_str()}))
}

/// Abandons a migration before its flip: stops the copy and the background task, clears the
/// route under the gate, then runs the abort steps (→ aborted).
pub async fn abort(ctx: &Arc<ProxyContext>, m: &Arc<Migration>) -> Result<Value, String> {
    let phase = m.phase();
    if !phase.can_transition_to(Phase::Aborting) && phase != Phase::Aborting {
        return Err(format!(
            "migration {} is {phase}: abort is possible only before the cutover (use revert after it)",
            m.id
        ));
    }
    // The background task is stopped first (it may be waiting or copying, not holding `op`);
    // everything it did is committed or rolled back with its connection.
    if phase != Phase::Ready {
        if let Some(copy) = m.copier() {
            copy.stop();
        }
        if let Some(task) = m.take_task() {
            task.abort();
            let _ = task.await;
        }
    }
    let _op = m.op.lock().await;
    let mut guard = control::guarded(ctx).await?;
    let stored = state::get_migration(guard.client(), m.id)
        .await
        .map_err(|e| e.to_string())?
        .phase;
    m.set_phase(stored);
    if stored != Phase::Aborting {
        if !stored.can_transition_to(Phase::Aborting) {
            return Err(format!(
                "migration {} is {stored}: abort is possible only before the cutover",
                m.id
            ));
        }
        control::record(&mut guard, m.id, stored, Phase::Aborting).await?;
        m.set_phase(Phase::Aborting);
    }
    m.live().copy = None;
    let published = m.has_route(ctx);
    clear_route_and_finish(
        ctx,
        m,
        &mut guard,
        published,
        Phase::Aborting,
        Phase::Aborted,
    )
    .await
}

/// The phase stored for migration `id`, if it can be read.
async fn stored_phase(ctx: &ProxyContext, id: i64) -> Option<Phase> {
    let client = control::connect(ctx).await.ok()?;
    state::get_migration(&client, id)
        .await
        .ok()
        .map(|r| r.phase)
}

fn finish(m: &Migration, phase: Phase) {
    m.set_phase(phase);
    m.set_error(None);
    m.live().copy = None;
    m.stop_tasks();
    tracing::info!(migration = m.id, %phase, "migration finished");
}
