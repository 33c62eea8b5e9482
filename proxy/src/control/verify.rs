//! Verification until clean: checksum the shadow against the converted source, repair the
//! ranges that differ, and again, a bounded number of rounds. The controller runs it before a
//! migration is ready; it needs nothing from the controller or the flip, so either may call it.

use std::sync::Arc;

use duet_shadow::migrate::backfill::{repair_column, verify_column};
use duet_shadow::migrate::guard::GuardedConnection;
use duet_shadow::migrate::latency::LatencyHandle;
use duet_shadow::migrate::repair::{repair, RepairConfig};
use duet_shadow::migrate::verify::{verify, VerifyConfig};
use duet_shadow::migrate::{CopyTarget, MigrateError};
use duet_shadow::plan::CopySpec;

use super::error::MigrationError;
use super::Migration;
use crate::context::ProxyContext;

/// The copy target with the shadow's key types read back from the catalog.
pub(crate) async fn copy_target(
    guard: &GuardedConnection,
    target: &CopyTarget,
) -> Result<CopyTarget, MigrateError> {
    let mut target = target.clone();
    target.refresh_shadow_types(guard.client()).await?;
    Ok(target)
}

/// Verifies and repairs until the shadow equals the converted source (bounded rounds).
pub(crate) async fn verify_until_clean(
    ctx: &Arc<ProxyContext>,
    m: &Migration,
    guard: &mut GuardedConnection,
) -> Result<(), MigrationError> {
    let rounds = ctx.config.migration.verify_rounds.max(1);
    let target = match &m.plan.copy {
        Some(CopySpec::Table(target)) => copy_target(guard, target).await?,
        Some(CopySpec::Column(spec)) => {
            return verify_column_until_clean(ctx, m, guard, spec, rounds).await
        }
        None => return Ok(()),
    };
    for round in 1..=rounds {
        let report = verify(guard.client_mut(), &target, &verify_config(ctx, m)).await?;
        if report.is_clean() {
            tracing::info!(
                migration = m.id,
                rows = report.source_rows,
                round,
                "verified"
            );
            return Ok(());
        }
        let repaired = repair(
            guard.client(),
            &target,
            &report.mismatches,
            &RepairConfig::default(),
        )
        .await?;
        tracing::info!(
            migration = m.id,
            ranges = report.mismatches.len(),
            upserted = repaired.upserted,
            tombstoned = repaired.tombstoned,
            "repaired"
        );
    }
    Err(MigrationError::StillDiffers {
        shadow: "shadow",
        table: m.table_label(),
        rounds,
    })
}

/// Verification settings: the operator's nice ratio and the clients' latency apply to the
/// checksums as to the copy.
fn verify_config(ctx: &Arc<ProxyContext>, m: &Migration) -> VerifyConfig {
    VerifyConfig {
        nice_ratio: m.run_settings().nice_ratio,
        latency: Some(LatencyHandle(m.latency_throttle(ctx))),
        ..VerifyConfig::default()
    }
}

/// [`verify_until_clean`] for a shadow column: `c__duet = expr` on every row, repaired by range.
async fn verify_column_until_clean(
    ctx: &Arc<ProxyContext>,
    m: &Migration,
    guard: &mut GuardedConnection,
    spec: &duet_shadow::plan::BackfillSpec,
    rounds: u32,
) -> Result<(), MigrationError> {
    for round in 1..=rounds {
        let report = verify_column(guard.client_mut(), spec, &verify_config(ctx, m)).await?;
        if report.is_clean() {
            tracing::info!(migration = m.id, rows = report.rows, round, "verified");
            return Ok(());
        }
        let config = RepairConfig::default();
        let fixed = repair_column(
            guard.client(),
            spec,
            &report.mismatches,
            config.lock_timeout,
            config.max_attempts,
        )
        .await?;
        tracing::info!(
            migration = m.id,
            ranges = report.mismatches.len(),
            fixed,
            "repaired"
        );
    }
    Err(MigrationError::StillDiffers {
        shadow: "shadow column",
        table: m.table_label(),
        rounds,
    })
}
