//! The state store: migrations, their phase and an event log, in schema `duet` of the backend
//! database, so a restarted proxy resumes (or aborts cleanly) from what was committed.
//!
//! Every write takes a [`GenericClient`], so the caller passes the transaction of the step being
//! recorded and the record commits or rolls back with it. "One migration per table at a time" is a
//! partial unique index over the non-terminal phases: the database, not duet's memory, refuses a
//! second one, even from a second proxy.

use tokio_postgres::error::SqlState;
use tokio_postgres::GenericClient;

use crate::migrate::error::{DbContext, MigrateError};
use crate::migrate::phase::Phase;

pub use crate::rewrite::shadow_table::ROW_SINK;

/// Name of the partial unique index enforcing one active migration per table.
pub const ONE_ACTIVE_INDEX: &str = "migrations_one_active_per_table";

/// A stored migration.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationRecord {
    /// Id.
    pub id: i64,
    /// The table under migration (qualified, quoted SQL form).
    pub table: String,
    /// Strategy name (e.g. `shadow_table`).
    pub strategy: String,
    /// Current phase.
    pub phase: Phase,
    /// The plan, as JSON.
    pub plan: serde_json::Value,
    /// The last error recorded, if any.
    pub error: Option<String>,
    /// Creation time (server text form).
    pub created_at: String,
    /// Last change (server text form).
    pub updated_at: String,
}

/// One entry of the event log.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationEvent {
    /// When (server text form).
    pub at: String,
    /// What kind (`created`, `phase`, `copy_done`, …).
    pub kind: String,
    /// Details as JSON.
    pub detail: serde_json::Value,
}

/// Create schema `duet` and its tables if they do not exist (idempotent, safe to race: the DDL
/// runs under a transaction-level advisory lock).
pub async fn ensure_schema(client: &mut tokio_postgres::Client) -> Result<(), MigrateError> {
    let phases = Phase::ALL
        .iter()
        .map(|p| format!("'{}'", p.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let terminal = Phase::ALL
        .iter()
        .filter(|p| p.is_terminal())
        .map(|p| format!("'{}'", p.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let ddl = format!(
        "SELECT pg_advisory_xact_lock(hashtext('duet.state_schema'));
         CREATE SCHEMA IF NOT EXISTS duet;
         CREATE TABLE IF NOT EXISTS duet.migrations (
             id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             table_name text NOT NULL,
             strategy text NOT NULL,
             phase text NOT NULL CHECK (phase IN ({phases})),
             plan jsonb NOT NULL,
             error text,
             settings jsonb NOT NULL DEFAULT '{{}}',
             created_at timestamptz NOT NULL DEFAULT now(),
             updated_at timestamptz NOT NULL DEFAULT now());
         CREATE UNIQUE INDEX IF NOT EXISTS {ONE_ACTIVE_INDEX}
             ON duet.migrations (table_name) WHERE phase NOT IN ({terminal});
         CREATE TABLE IF NOT EXISTS duet.copy_progress (
             migration_id bigint PRIMARY KEY REFERENCES duet.migrations (id) ON DELETE CASCADE,
             last_key jsonb,
             upper_key jsonb,
             rows_done bigint NOT NULL DEFAULT 0,
             rows_copied bigint NOT NULL DEFAULT 0,
             rows_total bigint,
             chunk_rows integer,
             done boolean NOT NULL DEFAULT false,
             started_at timestamptz NOT NULL DEFAULT now(),
             updated_at timestamptz NOT NULL DEFAULT now());
         CREATE TABLE IF NOT EXISTS duet.events (
             id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             migration_id bigint NOT NULL REFERENCES duet.migrations (id) ON DELETE CASCADE,
             at timestamptz NOT NULL DEFAULT clock_timestamp(),
             kind text NOT NULL,
             detail jsonb NOT NULL DEFAULT '{{}}');
         CREATE INDEX IF NOT EXISTS events_by_migration ON duet.events (migration_id, id);
         CREATE OR REPLACE FUNCTION duet.row_sink_discard() RETURNS trigger
             LANGUAGE plpgsql AS $sink$ BEGIN RETURN NEW; END $sink$;
         CREATE OR REPLACE VIEW duet.{ROW_SINK} AS SELECT NULL::boolean AS counted;
         DROP TRIGGER IF EXISTS row_sink_discard ON duet.{ROW_SINK};
         CREATE TRIGGER row_sink_discard INSTEAD OF INSERT ON duet.{ROW_SINK}
             FOR EACH ROW EXECUTE FUNCTION duet.row_sink_discard();
         GRANT USAGE ON SCHEMA duet TO PUBLIC;
         GRANT INSERT ON duet.{ROW_SINK} TO PUBLIC;"
    );
    let tx = client
        .transaction()
        .await
        .ctx("starting the state schema transaction")?;
    tx.batch_execute(&ddl).await.ctx("creating schema duet")?;
    tx.commit().await.ctx("committing schema duet")
}

/// Record a new migration in phase `planned` with no run settings; refused by the database when
/// the table already has an active one.
pub async fn create_migration(
    client: &impl GenericClient,
    table: &str,
    strategy: &str,
    plan: &serde_json::Value,
) -> Result<i64, MigrateError> {
    create_migration_with_settings(client, table, strategy, plan, &serde_json::json!({})).await
}

/// [`create_migration`] with the operator's run settings (automatic cutover, throttles, …) stored
/// in the same row, so they are never recorded half.
pub async fn create_migration_with_settings(
    client: &impl GenericClient,
    table: &str,
    strategy: &str,
    plan: &serde_json::Value,
    settings: &serde_json::Value,
) -> Result<i64, MigrateError> {
    let row = client
        .query_one(
            "INSERT INTO duet.migrations (table_name, strategy, phase, plan, settings)
             VALUES ($1, $2, $3, $4::text::jsonb, $5::text::jsonb) RETURNING id",
            &[
                &table,
                &strategy,
                &Phase::Planned.as_str(),
                &plan.to_string(),
                &settings.to_string(),
            ],
        )
        .await
        .map_err(|source| {
            let one_active = source.as_db_error().is_some_and(|d| {
                *d.code() == SqlState::UNIQUE_VIOLATION && d.constraint() == Some(ONE_ACTIVE_INDEX)
            });
            if one_active {
                MigrateError::AlreadyActive {
                    table: table.to_string(),
                }
            } else {
                MigrateError::Db {
                    context: format!("recording a migration of {table}"),
                    source,
                }
            }
        })?;
    let id: i64 = row.get(0);
    log_event(
        client,
        id,
        "created",
        &serde_json::json!({ "table": table, "strategy": strategy }),
    )
    .await?;
    Ok(id)
}

/// Replace migration `id`'s run settings (what the operator changed with `set`, `pause-copy`, …),
/// so that a restarted duet keeps them.
pub async fn store_settings(
    client: &impl GenericClient,
    id: i64,
    settings: &serde_json::Value,
) -> Result<(), MigrateError> {
    let updated = client
        .execute(
            "UPDATE duet.migrations SET settings = $2::text::jsonb, updated_at = now() WHERE id = $1",
            &[&id, &settings.to_string()],
        )
        .await
        .ctx(format!("storing the settings of migration {id}"))?;
    if updated == 0 {
        return Err(MigrateError::NotFound(id));
    }
    Ok(())
}

/// Read a migration.
pub async fn get_migration(
    client: &impl GenericClient,
    id: i64,
) -> Result<MigrationRecord, MigrateError> {
    let row = client
        .query_opt(
            "SELECT id, table_name, strategy, phase, plan::text, error,
                    created_at::text, updated_at::text
             FROM duet.migrations WHERE id = $1",
            &[&id],
        )
        .await
        .ctx(format!("reading migration {id}"))?
        .ok_or(MigrateError::NotFound(id))?;
    record_from_row(&row)
}

/// The active (non-terminal) migration of `table`, if any.
pub async fn active_migration(
    client: &impl GenericClient,
    table: &str,
) -> Result<Option<MigrationRecord>, MigrateError> {
    let terminal: Vec<&str> = Phase::ALL
        .iter()
        .filter(|p| p.is_terminal())
        .map(|p| p.as_str())
        .collect();
    let row = client
        .query_opt(
            "SELECT id, table_name, strategy, phase, plan::text, error,
                    created_at::text, updated_at::text
             FROM duet.migrations WHERE table_name = $1 AND NOT (phase = ANY($2))",
            &[&table, &terminal],
        )
        .await
        .ctx(format!("reading the active migration of {table}"))?;
    row.as_ref().map(record_from_row).transpose()
}

fn record_from_row(row: &tokio_postgres::Row) -> Result<MigrationRecord, MigrateError> {
    let plan_text: String = row.get(4);
    Ok(MigrationRecord {
        id: row.get(0),
        table: row.get(1),
        strategy: row.get(2),
        phase: row.get::<_, String>(3).parse()?,
        plan: serde_json::from_str(&plan_text)
            .map_err(|e| MigrateError::CorruptState(format!("plan: {e}")))?,
        error: row.get(5),
        created_at: row.get(6),
        updated_at: row.get(7),
    })
}

/// Move migration `id` from `from` to `to`, with an event; `error` is stored (or cleared).
///
/// Illegal jumps are refused before touching the database; the update is conditional on the
/// stored phase being `from`, so two controllers cannot both make the same step. Pass the
/// transaction of the step being recorded.
pub async fn transition(
    client: &impl GenericClient,
    id: i64,
    from: Phase,
    to: Phase,
    error: Option<&str>,
    detail: &serde_json::Value,
) -> Result<(), MigrateError> {
    from.check_transition(id, to)?;
    let updated = client
        .execute(
            "UPDATE duet.migrations SET phase = $3, error = $4, updated_at = now()
             WHERE id = $1 AND phase = $2",
            &[&id, &from.as_str(), &to.as_str(), &error],
        )
        .await
        .ctx(format!("moving migration {id} to {to}"))?;
    if updated == 0 {
        let actual = get_migration(client, id).await?.phase;
        return Err(MigrateError::PhaseConflict {
            id,
            expected: from,
            actual,
        });
    }
    log_event(
        client,
        id,
        "phase",
        &serde_json::json!({ "from": from.as_str(), "to": to.as_str(), "error": error, "detail": detail }),
    )
    .await
}

/// Append to the event log.
pub async fn log_event(
    client: &impl GenericClient,
    id: i64,
    kind: &str,
    detail: &serde_json::Value,
) -> Result<(), MigrateError> {
    client
        .execute(
            "INSERT INTO duet.events (migration_id, kind, detail) VALUES ($1, $2, $3::text::jsonb)",
            &[&id, &kind, &detail.to_string()],
        )
        .await
        .ctx(format!("logging event {kind} of migration {id}"))?;
    Ok(())
}

/// The event log of a migration, oldest first.
pub async fn events(
    client: &impl GenericClient,
    id: i64,
) -> Result<Vec<MigrationEvent>, MigrateError> {
    let rows = client
        .query(
            "SELECT at::text, kind, detail::text FROM duet.events
             WHERE migration_id = $1 ORDER BY id",
            &[&id],
        )
        .await
        .ctx(format!("reading events of migration {id}"))?;
    rows.iter()
        .map(|r| {
            let detail: String = r.get(2);
            Ok(MigrationEvent {
                at: r.get(0),
                kind: r.get(1),
                detail: serde_json::from_str(&detail)
                    .map_err(|e| MigrateError::CorruptState(format!("event detail: {e}")))?,
            })
        })
        .collect()
}
