//! Startup: restore the migrations a previous proxy left unfinished, before any client is
//! accepted, so no session ever runs against a table without the routes its migration needs.
//!
//! Per stored phase: `planned`/`expanding` → the task runs the (idempotent) expand steps again
//! and publishes dual-writes; `copying`/`verifying` → dual-writes republished at once, the copier
//! resumes from its checkpoint and verification starts over; `ready` → dual-writes republished,
//! waiting for a cutover; `flipped` → the flipped route; `completing` → the flipped route, and the
//! complete (whose checks had passed) is finished; `aborting` → routes stay cleared and the abort steps run again; `reverting`
//! → the after-revert clean-up runs again. `flipping` is never stored by this controller (the
//! flip's transaction commits `flipped` atomically); a row left there by another controller is
//! treated as `ready` would be and shown with an error. A resumed migration never cuts over by
//! itself (`--auto-cutover` is not stored).
//!
//! When the backend cannot be reached at startup, the proxy starts anyway (clients could not
//! reach it either) and restores in the background once it answers; when it answers but duet's
//! schema exists and cannot be read, startup fails: serving without knowing which tables are
//! under migration could route writes wrongly.

use std::sync::Arc;
use std::time::Duration;

use shadow::migrate::Phase;
use shadow::plan::Plan;

use super::{bypass, controller, flip, Migration, RunSettings};
use crate::context::ProxyContext;

/// Why restoring failed in a way that must stop startup.
#[derive(Debug, thiserror::Error)]
#[error("cannot restore duet's migrations from the backend: {0}")]
pub struct RestoreError(pub String);

/// Restores unfinished migrations; retries in the background when the backend is unreachable.
pub async fn restore(ctx: &Arc<ProxyContext>) -> Result<(), RestoreError> {
    match super::control::connect(ctx).await {
        Ok(client) => restore_with(ctx, client).await,
        Err(error) => {
            tracing::warn!(%error, "cannot reach the backend to restore migrations; retrying in the background");
            let ctx = ctx.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    if let Ok(client) = super::control::connect(&ctx).await {
                        if let Err(err) = restore_with(&ctx, client).await {
                            tracing::error!(%err, "restoring migrations failed");
                        }
                        return;
                    }
                }
            });
            Ok(())
        }
    }
}

async fn restore_with(
    ctx: &Arc<ProxyContext>,
    mut client: tokio_postgres::Client,
) -> Result<(), RestoreError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('duet.migrations') IS NOT NULL", &[])
        .await
        .map_err(|e| RestoreError(e.to_string()))?
        .get(0);
    if !exists {
        return Ok(());
    }
    shadow::migrate::state::ensure_schema(&mut client)
        .await
        .map_err(|e| RestoreError(e.to_string()))?;
    let terminal: Vec<&str> = Phase::ALL
        .iter()
        .filter(|p| p.is_terminal())
        .map(|p| p.as_str())
        .collect();
    let rows = client
        .query(
            "SELECT id, phase, plan::text, error, settings::text FROM duet.migrations
             WHERE NOT (phase = ANY($1)) ORDER BY id",
            &[&terminal],
        )
        .await
        .map_err(|e| RestoreError(format!("reading duet.migrations: {e}")))?;
    for row in rows {
        let id: i64 = row.get(0);
        let phase: Phase = row
            .get::<_, String>(1)
            .parse()
            .map_err(|e: shadow::migrate::MigrateError| RestoreError(e.to_string()))?;
        let plan: Plan = serde_json::from_str(&row.get::<_, String>(2))
            .map_err(|e| RestoreError(format!("migration {id}: unreadable plan: {e}")))?;
        let settings = RunSettings::stored(&ctx.config.migration, &row.get::<_, String>(4))
            .map_err(|e| RestoreError(format!("migration {id}: {e}")))?;
        // A plan stored by a duet without the safety net: before its expand has finished the
        // net is simply added (the expand steps run again, idempotently); later, writes that
        // bypassed the rewrite since have no mirror, which the operator must hear about.
        let mut netted = plan.clone();
        shadow::plan::steps::add_safety_net(&mut netted);
        let unnetted = netted != plan;
        let plan = if matches!(phase, Phase::Planned | Phase::Expanding) {
            netted
        } else {
            plan
        };
        let counters = ctx.routes.counters(&plan.table.schema, &plan.table.name);
        let m = Arc::new(Migration::new(id, plan, phase, settings, counters));
        m.set_error(row.get(3));
        if unnetted && !matches!(phase, Phase::Planned | Phase::Expanding) && !phase.is_terminal() {
            m.set_error(Some(
                "this migration was started by a duet without the safety net: writes that did not go through the rewrite (other connections, functions, PREPARE) since then have no mirror — abort it (or revert it after the cutover) and start it again".to_owned(),
            ));
        }
        ctx.migrations.insert(m.clone());
        tracing::info!(migration = id, table = %m.table_label(), %phase, "restoring migration");
        match phase {
            Phase::Planned | Phase::Expanding => controller::spawn(ctx, &m),
            Phase::Copying | Phase::Verifying => {
                m.publish(ctx, m.dual_write_route_in(phase));
                controller::spawn(ctx, &m);
            }
            Phase::Ready => {
                m.publish(ctx, m.dual_write_route_in(phase));
                if settings.auto_cutover {
                    // The controller's ready step is the automatic cutover.
                    controller::spawn(ctx, &m);
                }
            }
            Phase::Flipping => {
                m.publish(ctx, m.dual_write_route_in(phase));
                m.set_error(Some(
                    "stored in phase flipping by another controller: check the table, then abort or fix the row"
                        .to_owned(),
                ));
            }
            Phase::Flipped => {
                m.publish(ctx, m.plan.flipped_route.clone());
            }
            Phase::Completing => {
                // The operator's complete had passed its checks: finish it.
                m.publish(ctx, m.plan.flipped_route.clone());
                let (ctx, m) = (ctx.clone(), m.clone());
                tokio::spawn(async move {
                    if let Err(error) = flip::complete(&ctx, &m, true).await {
                        m.set_error(Some(error));
                    }
                });
            }
            Phase::Aborting => {
                let (ctx, m) = (ctx.clone(), m.clone());
                tokio::spawn(async move {
                    if let Err(error) = flip::abort(&ctx, &m).await {
                        m.set_error(Some(error));
                    }
                });
            }
            Phase::Reverting => {
                let (ctx, m) = (ctx.clone(), m.clone());
                tokio::spawn(async move {
                    if let Err(error) = flip::revert(&ctx, &m).await {
                        m.set_error(Some(error));
                    }
                });
            }
            Phase::Completed | Phase::Aborted | Phase::Reverted => {}
        }
        bypass::spawn_sampler(ctx, &m);
    }
    Ok(())
}
