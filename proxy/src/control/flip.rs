//! The operator's commands that change what a table's statements mean: cutover (the flip),
//! revert, complete and abort. Each holds the pause gate only around its route change (and the
//! flip's or revert's one transaction), and resumes it on every path through `Resume`, a guard
//! that resumes when dropped.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use duet_shadow::ident::QualifiedName;
use duet_shadow::migrate::state;
use duet_shadow::migrate::{DbErrorText, Phase};
use duet_shadow::plan::{CopySpec, Step};
use serde_json::json;
use tokio_postgres::Client;

use super::error::{ChangeError, CommandError, MigrationError};
use super::{bypass, connection, driver, BlockingSession, FlipOutcome, FlipRecord, Migration};
use crate::admin::reply::{MemberPhase, PhaseReply};
use crate::context::ProxyContext;
use crate::gate::{Gate, PauseOutcome};

/// Resumes the gate when dropped: every exit path of a gate hold releases the clients.
struct Resume<'a> {
    gate: &'a Gate,
    started: Instant,
}

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        self.gate.resume();
    }
}

/// Why a pause did not hold the gate: the flip outcome to record, how long it waited, who
/// blocked it, and the message.
type Missed = (FlipOutcome, Duration, Vec<BlockingSession>, String);

/// Pauses the gate within `budget`; a missed budget names the sessions that held it.
async fn pause<'a>(ctx: &'a ProxyContext, budget: Duration) -> Result<Resume<'a>, Missed> {
    if ctx.gate.is_paused() {
        // Our resume would release the operator's pause: leave that decision to them.
        return Err((
            FlipOutcome::Error,
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
                    state: s.state.clone().into_owned(),
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
            Err((FlipOutcome::BudgetMissed, waited, sessions, message))
        }
        PauseOutcome::Resumed { waited } => Err((
            FlipOutcome::Error,
            waited,
            Vec::new(),
            "an operator resumed the gate before every session was idle".to_owned(),
        )),
    }
}

/// The pause gate of this member and of every other live member of the fleet, held for one
/// change of a table's routes. Dropping it resumes this member and tells the others to
/// release (again: the change's own transaction already told them on commit).
struct Held<'a> {
    resume: Resume<'a>,
    /// The fleet hold's token; `None` when this member is the fleet's only one.
    token: Option<String>,
    /// Whether this member is in a fleet at all (its member connection is up): then the
    /// change's transaction checks that no other member is serving unheld, even one that joined
    /// after the hold began.
    in_fleet: bool,
    ctx: &'a ProxyContext,
}

impl Held<'_> {
    /// Resumes now; returns how long this member's clients were held.
    fn now(self) -> Duration {
        self.resume.started.elapsed()
    }

    /// What the change's transaction checks (every other live member acknowledged this token;
    /// with no token, that there is no other live member) and announces.
    fn fleet(&self) -> Option<(&str, &str)> {
        self.in_fleet
            .then(|| (self.ctx.fleet.id(), self.token.as_deref().unwrap_or("")))
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let (Some(token), Some(client)) = (self.token.take(), self.ctx.fleet.client()) {
            tokio::spawn(async move {
                let release = crate::fleet::Message::Release { token };
                if let Err(err) = crate::fleet::store::notify(client.as_ref(), &release).await {
                    tracing::warn!(%err, "cannot release the fleet's hold");
                }
            });
        }
    }
}

/// Holds every member's clients at a transaction boundary within `budget`: this member's gate,
/// and each other live member's through the fleet (hold → acknowledge). A member that cannot
/// hold in time, or does not answer, fails the hold; everyone is released and nothing changed.
async fn hold<'a>(ctx: &'a ProxyContext, budget: Duration) -> Result<Held<'a>, Missed> {
    let started = Instant::now();
    let me = ctx.fleet.id().to_owned();
    let Some(client) = ctx.fleet.client() else {
        // Without its member connection this member cannot hold the others: refuse while any
        // is live (asked on a connection of its own), go on alone otherwise.
        let others = match connection::connect(ctx).await {
            Ok(control) => crate::fleet::store::live_members(&control, &me)
                .await
                .map(|members| members.into_iter().filter(|m| !m.is_self).count())
                .unwrap_or(0),
            Err(_) => 0,
        };
        if others > 0 {
            return Err((
                FlipOutcome::Error,
                started.elapsed(),
                Vec::new(),
                format!("this member's fleet connection is down, so it cannot hold the {others} other live member(s); retry in a moment (it rejoins within seconds) or run the command on another member"),
            ));
        }
        let resume = pause(ctx, budget).await?;
        return Ok(Held {
            resume,
            token: None,
            in_fleet: false,
            ctx,
        });
    };
    let alone = crate::fleet::store::live_members(client.as_ref(), &me)
        .await
        .map(|members| members.iter().all(|m| m.is_self))
        .unwrap_or(true);
    if alone {
        let resume = pause(ctx, budget).await?;
        return Ok(Held {
            resume,
            token: None,
            in_fleet: true,
            ctx,
        });
    }
    let token = ctx.fleet.token("hold");
    let mut events = ctx.fleet.subscribe();
    let ask = crate::fleet::Message::Hold {
        token: token.clone(),
        from: me.clone(),
        budget_ms: crate::duration::whole_millis(budget),
    };
    if let Err(err) = crate::fleet::store::notify(client.as_ref(), &ask).await {
        return Err((
            FlipOutcome::Error,
            started.elapsed(),
            Vec::new(),
            format!("cannot ask the fleet to hold: {}", DbErrorText(&err)),
        ));
    }
    let resume = match pause(ctx, budget).await {
        Ok(resume) => resume,
        Err(mut missed) => {
            // This member's own sessions missed the boundary; they may be waiting for rows that
            // a stopped member's open transactions hold. Name the members that did not answer
            // too, so the operator sees the cause and not only its victims.
            if let Ok(silent) =
                crate::fleet::store::not_acknowledged(client.as_ref(), &me, &token).await
            {
                if !silent.is_empty() {
                    missed.3.push_str(&format!(
                        "; fleet member(s) {} had not acknowledged the hold either (stopped, cut off or \
                         busy too; a stopped member's open transactions may be what these \
                         sessions wait for)",
                        silent.join(", ")
                    ));
                }
            }
            let release = crate::fleet::Message::Release { token };
            if let Err(err) = crate::fleet::store::notify(client.as_ref(), &release).await {
                tracing::warn!(%err, "cannot release the fleet's hold");
            }
            return Err(missed);
        }
    };
    let mut held = Held {
        resume,
        token: Some(token.clone()),
        in_fleet: true,
        ctx,
    };
    let deadline = tokio::time::Instant::now() + budget.saturating_sub(started.elapsed());
    let mut refused: Vec<String> = Vec::new();
    loop {
        let waiting = crate::fleet::store::not_acknowledged(client.as_ref(), &me, &token)
            .await
            .map_err(|e| {
                (
                    FlipOutcome::Error,
                    started.elapsed(),
                    Vec::new(),
                    format!("reading the fleet's answers: {}", DbErrorText(&e)),
                )
            })?;
        if waiting.is_empty() {
            return Ok(held);
        }
        if !refused.is_empty() || tokio::time::Instant::now() >= deadline {
            let mut why = refused;
            let silent: Vec<String> = waiting
                .iter()
                .filter(|w| !why.iter().any(|r| r.starts_with(w.as_str())))
                .map(|w| format!("{w} (no answer: stopped or cut off?)"))
                .collect();
            why.extend(silent);
            // Dropping `held` releases everyone.
            held.token = Some(token);
            return Err((
                FlipOutcome::MembersMissed,
                started.elapsed(),
                Vec::new(),
                format!(
                    "fleet members could not hold their clients within {} ms: {}; every member's clients were released",
                    budget.as_millis(),
                    why.join("; ")
                ),
            ));
        }
        tokio::select! {
            event = events.recv() => {
                if let Ok(crate::fleet::Event::Message(crate::fleet::Message::Ack { token: t, member, ok: false, detail })) = event {
                    if t == token {
                        refused.push(format!("{member} ({detail})"));
                    }
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

fn record_flip(
    m: &Migration,
    outcome: FlipOutcome,
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

/// Whether `m`'s flip (and revert) swaps the table or a column by renames, so that objects
/// bound to the table by identity would stay with the side that is renamed away.
fn moves_dependents(m: &Migration) -> bool {
    matches!(
        m.plan.kind,
        duet_shadow::plan::PlanKind::ShadowTable | duet_shadow::plan::PlanKind::ShadowColumn
    )
}

/// Refuses the swap while what is bound to the table differs from what the plan carries over:
/// objects made elsewhere that depend on the table (a view, a rule, a foreign key of another
/// table, a policy of another table reading it, a `BEGIN ATOMIC` function) or on a view the plan
/// carries, and — at the cutover — a carried view, trigger, policy or rule that was dropped,
/// changed or made since planning (straight on PostgreSQL, or a GRANT or COMMENT on a carried
/// view, which duet passes; other such DDL through duet is refused).
/// Such an object would stay bound to the side the swap renames away, or be re-created as
/// planned and the change lost.
async fn refuse_new_dependents(
    tx: &tokio_postgres::Transaction<'_>,
    m: &Migration,
    from: Phase,
    own_shadows: &[QualifiedName],
) -> Result<(), ChangeError> {
    let plan = &m.plan;
    let cutover = from == Phase::Ready;
    let mut found = duet_shadow::plan::carried::differences_ignoring(
        tx,
        &plan.table,
        &plan.carried,
        cutover,
        own_shadows,
    )
    .await
    .map_err(ChangeError::Db)?;
    let dependents =
        duet_shadow::plan::carried::uncarried_dependents(tx, &plan.table, &plan.carried)
            .await
            .map_err(ChangeError::Db)?;
    if !dependents.is_empty() {
        found.push(format!(
            "objects made outside duet depend on {} or a view over it ({})",
            m.table_label(),
            dependents.join(", ")
        ));
    }
    if found.is_empty() {
        return Ok(());
    }
    let (what, after) = if cutover {
        ("the cutover", "`complete`")
    } else {
        ("the revert", "the revert")
    };
    Err(ChangeError::Refused(format!(
        "{what} would leave behind or lose objects bound to {} that the migration did not plan for: {}. They are bound to the table itself and would stay with the side the swap renames away (or be re-created as planned): drop them (or undo the change) and re-create them after {after}, or abort the migration and plan it again",
        m.table_label(),
        found.join("; ")
    )))
}

/// Runs each migration's steps and its phase change `from → to`, in the order given, in one
/// transaction with `lock_timeout`; any failure rolls everything back (the transaction is dropped
/// uncommitted). What is bound to each table is checked against its plan before any step runs
/// (a step of one table may change what another's check would read: a referencing table's
/// swap).
async fn one_transaction(
    client: &mut Client,
    work: &[(&Migration, &[Step])],
    lock_timeout: Duration,
    from: Phase,
    to: Phase,
    fleet: Option<(&str, &str)>,
) -> Result<(), ChangeError> {
    let tx = client.transaction().await.map_err(ChangeError::Db)?;
    // Never longer than half the server's `deadlock_timeout`, so that a writer straight on
    // PostgreSQL in a lock cycle with the change is never the one aborted (the change gives up
    // first and is retried).
    tx.batch_execute(&duet_shadow::migrate::guard::capped_lock_timeout_sql(
        lock_timeout,
        true,
    ))
    .await
    .map_err(ChangeError::Db)?;
    if let Some((me, token)) = fleet {
        // Exclusive against registrations: a member joining now waits for this transaction and
        // then reads its result; every member registered before must be holding.
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, 0)",
            &[&crate::fleet::store::FLEET_LOCK_CLASS],
        )
        .await
        .map_err(ChangeError::Db)?;
        let unheld = crate::fleet::store::not_acknowledged(&tx, me, token)
            .await
            .map_err(ChangeError::Db)?;
        if !unheld.is_empty() {
            return Err(ChangeError::State(format!(
                "fleet member(s) {} joined or stopped holding during the change; nothing changed — run the command again",
                unheld.join(", ")
            )));
        }
    }
    // The shadow tables of the migration's own tables: their foreign keys to another of its
    // tables were made by the migration.
    let own_shadows: Vec<QualifiedName> = work
        .iter()
        .filter_map(|(m, _)| match &m.plan.copy {
            Some(CopySpec::Table(target)) => Some(target.shadow.clone()),
            _ => None,
        })
        .collect();
    for (m, steps) in work {
        if !steps.is_empty() && moves_dependents(m) {
            refuse_new_dependents(&tx, m, from, &own_shadows).await?;
        }
    }
    for (m, steps) in work {
        for step in *steps {
            tx.batch_execute(&step.sql).await.map_err(ChangeError::Db)?;
        }
        state::transition(&tx, m.id, from, to, None, &json!({}))
            .await
            .map_err(ChangeError::Transition)?;
    }
    if let Some((_, token)) = fleet.filter(|(_, token)| !token.is_empty()) {
        // Delivered at commit: the members read the new phase as soon as it is there.
        let release = crate::fleet::Message::Release {
            token: token.to_owned(),
        };
        crate::fleet::store::notify(&tx, &release)
            .await
            .map_err(ChangeError::Db)?;
    }
    tx.commit().await.map_err(ChangeError::Db)
}

/// Flips a `ready` migration — every table of a migration of several, in one transaction: hold
/// the fleet (within `budget`), one transaction with each table's flip steps and its phase change
/// to `flipped`, publish the flipped routes, release.
pub async fn cutover(
    ctx: &Arc<ProxyContext>,
    m: &Arc<Migration>,
    budget: Duration,
) -> Result<PhaseReply, CommandError> {
    let members = ctx
        .migrations
        .group(m)
        .map_err(CommandError::retryable_because)?;
    let mut ops = Vec::new();
    for member in &members {
        ops.push(member.op.lock().await);
    }
    let label = tables_label(&members);
    for member in &members {
        let phase = member.phase();
        if phase != Phase::Ready {
            return Err(CommandError::refused(format!(
                "migration {} of {} is {phase}, not ready: a cutover is possible once `status` shows {} ready",
                member.id,
                member.table_label(),
                if members.len() > 1 { "every table of the migration" } else { "it" }
            )));
        }
    }
    if ctx.gate.is_paused() {
        return Err(CommandError::refused(
            "the proxy is paused by an operator (duet admin pause): run `duet admin resume` first"
                .to_owned(),
        ));
    }
    // Writers that bypass duet, and writes duet forwarded unchanged, were mirrored by the safety
    // net in their own transactions: nothing to reconcile, whoever wrote. A writer still inside
    // a transaction on the table only delays the flip's lock (`flip_lock_timeout`).
    // Connect before holding: clients are held only for the flip itself.
    let mut client = connection::connect(ctx)
        .await
        .map_err(CommandError::retryable_because)?;
    let held = match hold(ctx, budget).await {
        Ok(held) => held,
        Err((outcome, waited, blocked_by, message)) => {
            for member in &members {
                record_flip(
                    member,
                    outcome,
                    waited,
                    blocked_by.clone(),
                    Some(message.clone()),
                );
            }
            return Err(CommandError::retryable(format!(
                "cutover not done (phase stays ready): {message}"
            )));
        }
    };
    let work: Vec<(&Migration, &[Step])> = members
        .iter()
        .map(|member| (member.as_ref(), member.plan.flip.as_slice()))
        .collect();
    let flipped = one_transaction(
        &mut client,
        &work,
        ctx.config.migration.flip_lock_timeout,
        Phase::Ready,
        Phase::Flipped,
        held.fleet(),
    )
    .await;
    // A connection lost around COMMIT leaves the outcome unknown: the stored phase decides
    // (still under the hold, so the routes follow the database either way; the phases of a
    // migration of several tables changed in one transaction).
    let flipped = match flipped {
        Err(ChangeError::Db(err)) if err.as_db_error().is_none() => {
            match stored_phase(ctx, m.id).await {
                Some(Phase::Flipped) => Ok(()),
                _ => Err(ChangeError::Db(err)),
            }
        }
        other => other,
    };
    match flipped {
        Ok(()) => {
            for member in &members {
                member.publish(ctx, member.plan.flipped_route.clone());
                member.set_phase(Phase::Flipped);
            }
            let stall = held.now();
            for member in &members {
                member.set_error(None);
                record_flip(member, FlipOutcome::Flipped, stall, Vec::new(), None);
            }
            let stall_ms = crate::duration::whole_millis(stall);
            tracing::info!(migration = m.id, tables = %label, stall_ms, "flipped");
            Ok(phase_reply(m, Phase::Flipped, Some(stall_ms), &members))
        }
        Err(err) => {
            let stall = held.now();
            let lock = err.is_lock_timeout();
            let message = err.to_string();
            let outcome = if lock {
                FlipOutcome::LockTimeout
            } else {
                FlipOutcome::Error
            };
            for member in &members {
                record_flip(member, outcome, stall, Vec::new(), Some(message.clone()));
            }
            Err(err.into_command_error(if lock {
                let writers: Vec<String> = members
                    .iter()
                    .flat_map(|member| bypass::active_writers(member))
                    .collect();
                let around = if writers.is_empty() {
                    String::new()
                } else {
                    format!("; writing it around duet: {}", writers.join("; "))
                };
                format!(
                    "cutover not done (phase stays ready): the flip could not lock {label} within {} ms ({message}); another connection holds a lock on it — retry when it is gone{around}",
                    ctx.config.migration.flip_lock_timeout.as_millis()
                )
            } else {
                format!("cutover not done (phase stays ready): the flip failed: {message}")
            }))
        }
    }
}

/// The tables of `members`, for messages (`public.lines, public.orders`).
fn tables_label(members: &[Arc<Migration>]) -> String {
    members
        .iter()
        .map(|member| member.table_label())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The reply of a command on the migration `m` (with `members`, all its tables) that left it in
/// `phase`.
fn phase_reply(
    m: &Migration,
    phase: Phase,
    stall_ms: Option<u64>,
    members: &[Arc<Migration>],
) -> PhaseReply {
    PhaseReply {
        id: m.id,
        phase,
        stall_ms,
        migrations: member_phases(members),
    }
}

/// The id, table and phase of every table of a migration of several, for a command's reply;
/// nothing for a migration of one.
fn member_phases(members: &[Arc<Migration>]) -> Vec<MemberPhase> {
    if members.len() < 2 {
        return Vec::new();
    }
    members
        .iter()
        .map(|member| MemberPhase {
            id: member.id,
            table: member.table_label(),
            phase: member.phase(),
        })
        .collect()
}

/// How long an operator command waits for the member that drove a migration to stop, before it
/// leaves the rest to that member.
const DRIVER_HANDOVER: Duration = Duration::from_secs(10);

/// Whether this member runs the rest of a command (its clean-up steps), or another member of
/// the fleet already finished it.
enum TakeOver {
    /// This member holds the driver lock: run the steps.
    Here,
    /// The stored migration reached this phase meanwhile (another member ran the steps).
    Done(Phase),
}

/// Takes over the rest of `what` (its clean-up steps) from whichever member drives `m`: the
/// driver lock, once that member has stopped (it stops when it sees the new phase), or the news
/// that another member already finished.
async fn take_over(
    ctx: &ProxyContext,
    m: &Migration,
    command: &'static str,
) -> Result<TakeOver, MigrationError> {
    let deadline = Instant::now() + DRIVER_HANDOVER;
    loop {
        if driver::acquire(ctx, m, Duration::ZERO).await {
            // Taken after another member may have finished: the stored phase decides.
            return Ok(match stored_phase(ctx, m.id).await {
                Some(phase) if phase.is_terminal() => TakeOver::Done(phase),
                _ => TakeOver::Here,
            });
        }
        if let Some(phase) = stored_phase(ctx, m.id).await.filter(|p| p.is_terminal()) {
            return Ok(TakeOver::Done(phase));
        }
        if Instant::now() >= deadline {
            return Err(MigrationError::FinishingElsewhere { command, id: m.id });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Goes back to the old shape after a flip — every table of a migration of several, in one
/// transaction, in the reverse of the flip's order: one transaction with the revert steps (phase
/// → reverting) under the fleet's hold, routes cleared, release; then each table's after-revert
/// clean-up (→ reverted).
pub async fn revert(
    ctx: &Arc<ProxyContext>,
    m: &Arc<Migration>,
) -> Result<PhaseReply, CommandError> {
    let mut members = ctx
        .migrations
        .group(m)
        .map_err(CommandError::retryable_because)?;
    members.reverse();
    let mut ops = Vec::new();
    for member in &members {
        ops.push(member.op.lock().await);
    }
    // A member already reverted is skipped (the command is run again after one stopped half-way),
    // but a revert of nothing is refused.
    let all_reverted = members
        .iter()
        .all(|member| member.phase() == Phase::Reverted);
    for member in &members {
        let phase = member.phase();
        if all_reverted
            || (phase != Phase::Flipped && phase != Phase::Reverting && phase != Phase::Reverted)
        {
            return Err(CommandError::refused(format!(
                "migration {} of {} is {phase}: revert is possible only after a cutover (use abort before it)",
                member.id,
                member.table_label()
            )));
        }
    }
    // Every write since the flip, through duet or not, was mirrored into the old shape by the
    // rewrite or the safety net; rows the old types cannot hold make the revert step refuse.
    let flipped: Vec<Arc<Migration>> = members
        .iter()
        .filter(|member| member.phase() == Phase::Flipped)
        .cloned()
        .collect();
    if !flipped.is_empty() {
        // Driver locks first: no other member may start the clean-up this change leads to.
        for member in &flipped {
            driver::acquire(ctx, member, Duration::ZERO).await;
        }
        let flipped_back = async {
            let mut client = connection::connect(ctx)
                .await
                .map_err(CommandError::retryable_because)?;
            let held = hold(ctx, ctx.config.migration.flip_budget).await.map_err(
                |(_, _, _, message)| {
                    CommandError::retryable(format!("revert not done (still flipped): {message}"))
                },
            )?;
            let work: Vec<(&Migration, &[Step])> = flipped
                .iter()
                .map(|member| (member.as_ref(), member.plan.revert.as_slice()))
                .collect();
            one_transaction(
                &mut client,
                &work,
                ctx.config.migration.flip_lock_timeout,
                Phase::Flipped,
                Phase::Reverting,
                held.fleet(),
            )
            .await
            .map_err(|e| {
                let message = format!("revert not done (still flipped): {e}");
                e.into_command_error(message)
            })?;
            for member in &flipped {
                member.publish(ctx, None);
                member.set_phase(Phase::Reverting);
            }
            drop(held);
            Ok::<(), CommandError>(())
        }
        .await;
        if flipped_back.is_err() {
            for member in &flipped {
                driver::release_if_idle(ctx, member).await;
            }
        }
        flipped_back?;
    }
    let mut phase = Phase::Reverted;
    for member in &members {
        if member.phase() == Phase::Reverted {
            continue;
        }
        phase = after_revert(ctx, member).await?;
    }
    Ok(phase_reply(m, phase, None, &members))
}

/// The after-revert clean-up of one table (→ reverted), here or by the member that drives it.
async fn after_revert(
    ctx: &Arc<ProxyContext>,
    m: &Arc<Migration>,
) -> Result<Phase, MigrationError> {
    if let TakeOver::Done(phase) = take_over(ctx, m, "the revert").await? {
        finish(ctx, m, phase).await;
        return Ok(phase);
    }
    let mut guard = connection::guarded(ctx).await?;
    connection::run_steps(
        ctx,
        &mut guard,
        &m.plan.table.schema,
        "after revert",
        &m.plan.after_revert,
        Some((m.id, Phase::Reverting, Phase::Reverted)),
    )
    .await?;
    finish(ctx, m, Phase::Reverted).await;
    Ok(Phase::Reverted)
}

/// The latest old-shape statement for `m`'s table that any live member of the fleet saw (ms
/// since the Unix epoch), and how many they counted.
async fn old_shape_across_fleet(ctx: &ProxyContext, m: &Migration) -> (u64, u64) {
    let counters = &m.counters;
    let mut last = counters
        .old_shape_last_seen_ms
        .load(std::sync::atomic::Ordering::Relaxed);
    let mut count = counters
        .old_shape_statements
        .load(std::sync::atomic::Ordering::Relaxed);
    let members = match ctx.fleet.client() {
        Some(client) => crate::fleet::store::live_members(client.as_ref(), ctx.fleet.id())
            .await
            .unwrap_or_else(|_| ctx.fleet.members()),
        None => Vec::new(),
    };
    for member in members.iter().filter(|member| !member.is_self) {
        let seen = member
            .counters
            .get(m.table_label())
            .and_then(|c| {
                serde_json::from_value::<crate::fleet::store::TableCounts>(c.clone()).ok()
            })
            .unwrap_or_default();
        last = last.max(seen.old_shape_last_seen_ms);
        count += seen.old_shape_statements;
    }
    (last, count)
}

/// Finishes a flipped migration — each table of a migration of several in flip order, so a
/// referencing table's old table goes before the old table its key references; a table already
/// completed is skipped (the command is run again after one stopped half-way).
pub async fn complete(
    ctx: &Arc<ProxyContext>,
    m: &Arc<Migration>,
    force: bool,
) -> Result<PhaseReply, CommandError> {
    let members = ctx
        .migrations
        .group(m)
        .map_err(CommandError::retryable_because)?;
    if members.len() == 1 {
        return complete_one(ctx, m, force).await;
    }
    for member in &members {
        if member.phase() != Phase::Completed {
            complete_one(ctx, member, force).await.map_err(|e| {
                let message = format!(
                    "{e} (migration {} of {}; run complete again for the rest)",
                    member.id,
                    member.table_label()
                );
                match e {
                    CommandError::Refused(_) => CommandError::refused(message),
                    CommandError::Retryable(_) => CommandError::retryable(message),
                    CommandError::Failed(source) => {
                        CommandError::Failed(MigrationError::OfMember {
                            id: member.id,
                            table: member.table_label(),
                            source: Box::new(source),
                        })
                    }
                }
            })?;
        }
    }
    Ok(phase_reply(m, Phase::Completed, None, &members))
}

/// Finishes one flipped table: refused while old-shape statements arrived within the window at
/// any member of the fleet (unless `force`); then routes cleared under the fleet's hold with the
/// phase change to completing, and the complete steps (→ completed).
async fn complete_one(
    ctx: &Arc<ProxyContext>,
    m: &Arc<Migration>,
    force: bool,
) -> Result<PhaseReply, CommandError> {
    let _op = m.op.lock().await;
    let phase = m.phase();
    if phase != Phase::Flipped && phase != Phase::Completing {
        return Err(CommandError::refused(format!(
            "migration {} is {phase}: complete is possible only after a cutover",
            m.id
        )));
    }
    if !force && phase == Phase::Flipped {
        // Every member writes its counts now: a heartbeat's may be a second old.
        driver::barrier(ctx, m, Some(ctx.config.migration.flip_budget))
            .await
            .map_err(|e| {
                CommandError::retryable(format!("complete not done (still flipped): cannot count old-shape statements across the fleet: {e}; retry, or `complete --force`"))
            })?;
        let (last, count) = old_shape_across_fleet(ctx, m).await;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(crate::duration::whole_millis)
            .unwrap_or(0);
        let window = ctx.config.migration.old_shape_window;
        if last > 0 && now_ms.saturating_sub(last) < crate::duration::whole_millis(window) {
            return Err(CommandError::refused(format!(
                "statements written for the old shape of {} still arrive ({count} so far across the fleet, the last {:.1}s ago, window {}s): update those clients first, or `complete --force`",
                m.table_label(),
                now_ms.saturating_sub(last) as f64 / 1000.0,
                window.as_secs()
            )));
        }
    }
    if phase == Phase::Flipped {
        change_under_hold(ctx, m, Phase::Flipped, Phase::Completing, "complete")
            .await
            .map_err(CommandError::retryable_because)?;
    } else if m.has_route(ctx) {
        m.publish(ctx, None);
    }
    if let TakeOver::Done(phase) = take_over(ctx, m, "complete").await? {
        finish(ctx, m, phase).await;
        return Ok(PhaseReply::of(m.id, phase));
    }
    let mut guard = connection::guarded(ctx)
        .await
        .map_err(MigrationError::from)?;
    Ok(finish_steps(ctx, m, &mut guard, Phase::Completing, Phase::Completed).await?)
}

/// Records `from → to` in one transaction under the fleet's hold and clears the table's route
/// on every member before their clients go on (the start of `complete` and `abort`).
async fn change_under_hold(
    ctx: &Arc<ProxyContext>,
    m: &Arc<Migration>,
    from: Phase,
    to: Phase,
    command: &'static str,
) -> Result<(), MigrationError> {
    let changed = change_under_hold_once(ctx, m, from, to)
        .await
        .map_err(|source| MigrationError::NotDone {
            command,
            from,
            source,
        });
    if changed.is_err() {
        driver::release_if_idle(ctx, m).await;
    }
    changed
}

async fn change_under_hold_once(
    ctx: &Arc<ProxyContext>,
    m: &Arc<Migration>,
    from: Phase,
    to: Phase,
) -> Result<(), ChangeError> {
    // Driver lock first when free: no other member may start the clean-up this change leads to
    // (when another member drives — a copy — it stops on seeing the change and `take_over` waits).
    driver::acquire(ctx, m, Duration::ZERO).await;
    let mut client = connection::connect(ctx).await?;
    let held = hold(ctx, ctx.config.migration.flip_budget)
        .await
        .map_err(|(_, _, _, message)| ChangeError::Hold(message))?;
    one_transaction(
        &mut client,
        &[(m.as_ref(), &[])],
        ctx.config.migration.flip_lock_timeout,
        from,
        to,
        held.fleet(),
    )
    .await?;
    m.publish(ctx, None);
    m.set_phase(to);
    drop(held);
    Ok(())
}

/// The end of `complete` and `abort`: the guarded clean-up steps of `from`, recording `to` with
/// the last of them.
async fn finish_steps(
    ctx: &Arc<ProxyContext>,
    m: &Arc<Migration>,
    guard: &mut duet_shadow::migrate::guard::GuardedConnection,
    from: Phase,
    to: Phase,
) -> Result<PhaseReply, MigrationError> {
    let (name, steps) = match to {
        Phase::Aborted => ("abort", &m.plan.abort),
        _ => ("complete", &m.plan.complete),
    };
    connection::run_steps(
        ctx,
        guard,
        &m.plan.table.schema,
        name,
        steps,
        Some((m.id, from, to)),
    )
    .await?;
    finish(ctx, m, to).await;
    Ok(PhaseReply::of(m.id, to))
}

/// Abandons a migration before its flip — every table of a migration of several (a table
/// already aborted is skipped).
pub async fn abort(
    ctx: &Arc<ProxyContext>,
    m: &Arc<Migration>,
) -> Result<PhaseReply, CommandError> {
    let members = ctx
        .migrations
        .group(m)
        .map_err(CommandError::retryable_because)?;
    if members.len() == 1 {
        return abort_one(ctx, m).await;
    }
    for member in &members {
        if member.phase() != Phase::Aborted {
            abort_one(ctx, member).await?;
        }
    }
    Ok(phase_reply(m, Phase::Aborted, None, &members))
}

/// Abandons one table's migration before its flip: stops the copy and the background task
/// (here, or — by recording `aborting` — on the member that drives it), clears the route on every
/// member under the fleet's hold, then runs the abort steps (→ aborted).
async fn abort_one(
    ctx: &Arc<ProxyContext>,
    m: &Arc<Migration>,
) -> Result<PhaseReply, CommandError> {
    let phase = m.phase();
    if !phase.can_transition_to(Phase::Aborting) && phase != Phase::Aborting {
        return Err(CommandError::refused(format!(
            "migration {} is {phase}: abort is possible only before the cutover (use revert after it)",
            m.id
        )));
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
    let stored = stored_phase(ctx, m.id)
        .await
        .ok_or(MigrationError::StoredPhaseUnreadable { id: m.id })?;
    m.set_phase(stored);
    if stored != Phase::Aborting {
        if !stored.can_transition_to(Phase::Aborting) {
            return Err(CommandError::refused(format!(
                "migration {} is {stored}: abort is possible only before the cutover",
                m.id
            )));
        }
        change_under_hold(ctx, m, stored, Phase::Aborting, "abort").await?;
    } else if m.has_route(ctx) {
        m.publish(ctx, None);
    }
    m.live().copy = None;
    if let TakeOver::Done(phase) = take_over(ctx, m, "the abort").await? {
        finish(ctx, m, phase).await;
        return Ok(PhaseReply::of(m.id, phase));
    }
    let mut guard = connection::guarded(ctx)
        .await
        .map_err(MigrationError::from)?;
    Ok(finish_steps(ctx, m, &mut guard, Phase::Aborting, Phase::Aborted).await?)
}

/// The phase stored for migration `id`, if it can be read.
async fn stored_phase(ctx: &ProxyContext, id: i64) -> Option<Phase> {
    let client = connection::connect(ctx).await.ok()?;
    state::get_migration(&client, id)
        .await
        .ok()
        .map(|r| r.phase)
}

async fn finish(ctx: &ProxyContext, m: &Migration, phase: Phase) {
    m.set_phase(phase);
    m.set_error(None);
    m.live().copy = None;
    m.stop_tasks();
    driver::release(ctx, m).await;
    tracing::info!(migration = m.id, %phase, "migration finished");
}
