//! The operator's commands that start or tune a migration (the flip's commands are in
//! [`super::flip`]): record and start a planned migration, change its run settings. They sit
//! above the controller, which they start, and nothing below calls them.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use duet_shadow::migrate::{MigrateError, Phase};
use duet_shadow::plan::Plan;

use super::connection::{self, ControlError};
use super::error::MigrationError;
use super::settings::SettingsChange;
use super::{bypass, controller, driver, latency, Migration, Migrations, RunSettings};
use crate::context::ProxyContext;

/// Why a settings change was not made (nothing changed).
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The latency factor is out of range.
    #[error(
        "max-latency-factor {0}: must be 0 (client latency not watched) or a number from 1 to 1000"
    )]
    LatencyFactor(f64),
    /// Automatic cutover asked for one table of a migration of several.
    #[error("migration {id} is one table of a migration of several, which flip together: run `duet admin cutover` once `status` shows every table ready (auto-cutover is not available for it)")]
    AutoCutoverOfGroup {
        /// The migration.
        id: i64,
    },
    /// A zero longest pause.
    #[error("latency-max-pause must be longer than 0 (max-latency-factor=0 stops watching the clients' latency)")]
    ZeroMaxPause,
    /// Pausing or resuming a copy outside the copy.
    #[error("migration {id} is {phase}: there is no copy to {verb}")]
    NoCopy {
        /// The migration.
        id: i64,
        /// Its phase.
        phase: Phase,
        /// `pause` or `resume`.
        verb: &'static str,
    },
    /// The settings could not be written as JSON (never expected: plain numbers).
    #[error("internal error: {0}")]
    Encode(#[source] serde_json::Error),
    /// No control connection to store them with.
    #[error(transparent)]
    Connect(#[from] ControlError),
    /// Storing them failed.
    #[error("the settings were not changed: {0}")]
    Store(#[source] MigrateError),
}

/// Why `retry` did nothing (nothing was changed).
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    /// No error stopped it.
    #[error(
        "migration {id} has no failed step to run again: `duet admin status` shows how it is going"
    )]
    NothingFailed {
        /// The migration.
        id: i64,
    },
    /// Its step is still being tried.
    #[error("migration {id} is still at its step (the error shown is the last attempt's): wait, `duet admin status` shows when it stops")]
    Running {
        /// The migration.
        id: i64,
    },
    /// A phase whose work is an operator's command, run again by itself.
    #[error("migration {id} is {phase}: retry runs a stopped expand, copy or verification again; in this phase run the command that failed again (cutover, complete, revert or abort)")]
    NotBackgroundWork {
        /// The migration.
        id: i64,
        /// Its phase.
        phase: Phase,
    },
    /// Started by a duet without the safety net, past its expand: running it again would not
    /// mirror the writes that bypassed the rewrite meanwhile.
    #[error("migration {id} was started by a duet without the safety net: abort it (or revert it after the cutover) and start it again")]
    WithoutNet {
        /// The migration.
        id: i64,
    },
    /// Another member of the fleet drives it.
    #[error("migration {id} is driven by another duet in front of this database: run retry through that one (`duet admin status` there shows the error), or restart it")]
    DrivenElsewhere {
        /// The migration.
        id: i64,
    },
}

/// Runs the step that stopped migration `m` again (`duet admin retry`): the expand, the copy or
/// the verification, from where the stored state says — the same as a restart of duet would,
/// without dropping a client. The error is cleared (in memory and on the row), so `status` shows
/// the work going on, or the new error if it stops again. Returns the phase it goes on from.
pub async fn retry(ctx: &Arc<ProxyContext>, m: &Arc<Migration>) -> Result<Phase, RetryError> {
    let id = m.id;
    if m.error().is_none() {
        return Err(RetryError::NothingFailed { id });
    }
    // First: in any phase, such a migration cannot be made whole by running a step again.
    if duet_shadow::plan::steps::lacks_safety_net(&m.plan) {
        return Err(RetryError::WithoutNet { id });
    }
    let phase = m.phase();
    if !matches!(
        phase,
        Phase::Planned | Phase::Expanding | Phase::Copying | Phase::Verifying
    ) {
        return Err(RetryError::NotBackgroundWork { id, phase });
    }
    if m.driven_here() {
        if m.task_running() {
            return Err(RetryError::Running { id });
        }
    } else {
        match ctx.fleet.try_drive(id).await {
            Ok(true) => m.set_driven(true),
            Ok(false) | Err(_) => return Err(RetryError::DrivenElsewhere { id }),
        }
    }
    tracing::info!(migration = id, %phase, "retry: running the stopped step again");
    m.set_error(None);
    connection::store_error(ctx, id, None).await;
    controller::spawn(ctx, m);
    Ok(phase)
}

/// Marks a start in progress until dropped.
struct Starting<'a>(&'a Migrations);

impl Drop for Starting<'_> {
    fn drop(&mut self) {
        self.0.starting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Records, registers and starts a planned migration; returns it once recorded (the work goes on
/// in the background). Used by the `migrate` admin command after planning, and by embedders and
/// tests that build a [`Plan`] themselves.
pub async fn start(
    ctx: &Arc<ProxyContext>,
    mut plan: Plan,
    auto_cutover: bool,
) -> Result<Arc<Migration>, MigrationError> {
    // Whoever built the plan, no write may bypass its shadow (a no-op when it has the net).
    duet_shadow::plan::steps::add_safety_net(&mut plan);
    let mut client = connection::connect(ctx).await?;
    duet_shadow::migrate::state::ensure_schema(&mut client)
        .await
        .map_err(MigrationError::StateSchema)?;
    let plan_json = serde_json::to_value(&plan).map_err(|source| MigrationError::Encode {
        what: "plan",
        source,
    })?;
    let table = plan.table.sql();
    let settings = RunSettings {
        // The clients' latency before anything of the migration runs: what the copier's and
        // the verifier's latency throttle keeps them near.
        latency_baseline_us: latency::baseline_now(ctx)
            .map(|p99| u64::try_from(p99.as_micros()).unwrap_or(u64::MAX)),
        ..RunSettings::initial(&ctx.config.migration, auto_cutover)
    };
    ctx.migrations.starting.fetch_add(1, Ordering::SeqCst);
    let _started = Starting(&ctx.migrations);
    let settings_json =
        serde_json::to_value(settings).map_err(|source| MigrationError::Encode {
            what: "settings",
            source,
        })?;
    let id = duet_shadow::migrate::state::create_migration_with_settings(
        &client,
        &table,
        plan.kind.as_str(),
        &plan_json,
        &settings_json,
    )
    .await
    .map_err(|e| match e {
        MigrateError::AlreadyActive { .. } => MigrationError::AlreadyActive {
            table: format!("{}.{}", plan.table.schema, plan.table.name),
            source: e,
        },
        other => MigrationError::Step(other),
    })?;
    ctx.routes
        .reset_counters(&plan.table.schema, &plan.table.name);
    let counters = ctx.routes.counters(&plan.table.schema, &plan.table.name);
    let migration = Arc::new(Migration::new(id, plan, Phase::Planned, settings, counters));
    // The member that starts a migration drives it (a new id: no one else holds its lock).
    if !driver::acquire(ctx, &migration, std::time::Duration::ZERO).await {
        return Err(MigrationError::TakenOver { id });
    }
    ctx.migrations.insert(migration.clone());
    tracing::info!(migration = id, table = %migration.table_label(), strategy = migration.plan.kind.as_str(), "migration recorded");
    controller::spawn(ctx, &migration);
    bypass::spawn_sampler(ctx, &migration);
    Ok(migration)
}

/// Applies `change` to migration `m`: stores the new settings first, then hands them to the
/// running copier, so a change the operator was told about survives a restart and a change that
/// could not be stored never takes effect. Returns the settings now in force.
pub async fn change_settings(
    ctx: &Arc<ProxyContext>,
    m: &Arc<Migration>,
    change: SettingsChange,
) -> Result<RunSettings, SettingsError> {
    if let Some(factor) = change.max_latency_factor {
        if !crate::config::valid_latency_factor(factor) {
            return Err(SettingsError::LatencyFactor(factor));
        }
    }
    if change.auto_cutover == Some(true) && !m.plan.group.is_empty() {
        return Err(SettingsError::AutoCutoverOfGroup { id: m.id });
    }
    if change.latency_max_pause_ms == Some(0) {
        return Err(SettingsError::ZeroMaxPause);
    }
    // One change at a time, so two concurrent `set`s cannot store one and apply the other.
    let _one = m.settings_lock.lock().await;
    if let Some(paused) = change.copy_paused {
        let phase = m.phase();
        if !matches!(phase, Phase::Planned | Phase::Expanding | Phase::Copying) {
            return Err(SettingsError::NoCopy {
                id: m.id,
                phase,
                verb: if paused { "pause" } else { "resume" },
            });
        }
    }
    let before = m.run_settings();
    let next = before.with(&change);
    let stored = serde_json::to_value(next).map_err(SettingsError::Encode)?;
    let client = connection::connect(ctx).await?;
    duet_shadow::migrate::state::store_settings(&client, m.id, &stored)
        .await
        .map_err(SettingsError::Store)?;
    m.apply_settings(next);
    tracing::info!(migration = m.id, settings = %stored, "settings changed");
    if next.auto_cutover && !before.auto_cutover && m.phase() == Phase::Ready {
        // Ready means the controller has finished its work; its ready step is the automatic
        // cutover, so run it now rather than waiting for the operator's `cutover`.
        controller::spawn(ctx, m);
    }
    Ok(next)
}
