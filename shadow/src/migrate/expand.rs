//! Expand: create the shadow table in the target shape, per the conventions: the mapped columns
//! (types from the mapping expressions), every non-key column nullable, the same key as arbiter,
//! the tombstone column, and no other constraints or indexes until after the backfill — except a
//! partial index over the tombstones, so that the flip's `DELETE … WHERE "__duet_deleted"` (run
//! while clients are held) reads a few index entries instead of scanning the whole table. It
//! holds only tombstone rows, costs nothing on other writes, and goes away with the column.

use crate::ident::{quote_ident, DELETED_COLUMN};
use crate::migrate::error::MigrateError;
use crate::migrate::guard::{GuardedConnection, PhaseStep};
use crate::migrate::target::CopyTarget;

/// The DDL creating `target.shadow` (one transaction; only ACCESS SHARE on the source).
pub fn shadow_table_ddl(target: &CopyTarget) -> String {
    let select = target
        .mapping
        .iter()
        .map(|m| format!("{} AS {}", m.expr, quote_ident(&m.target)))
        .collect::<Vec<_>>()
        .join(", ");
    let key = target.key_list(None);
    let not_null = target
        .key
        .columns
        .iter()
        .map(|c| format!("ALTER COLUMN {} SET NOT NULL", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "CREATE TABLE {shadow} AS SELECT {select} FROM {source} WITH NO DATA;
         ALTER TABLE {shadow} ADD COLUMN {deleted} boolean NOT NULL DEFAULT false, {not_null};
         ALTER TABLE {shadow} ADD PRIMARY KEY ({key});
         CREATE INDEX ON {shadow} ({key}) WHERE {deleted};",
        shadow = target.shadow.sql(),
        source = target.source.sql(),
        deleted = quote_ident(DELETED_COLUMN),
    )
}

/// Create the shadow through a guarded connection, recording `step` in the same transaction,
/// then read back the shadow's key types into `target`. Returns the attempts made.
pub async fn create_shadow_table(
    guard: &mut GuardedConnection,
    target: &mut CopyTarget,
    step: Option<&PhaseStep>,
) -> Result<u32, MigrateError> {
    let ddl = shadow_table_ddl(target);
    let attempts = guard
        .run_step(&format!("creating shadow {}", target.shadow), &ddl, step)
        .await?;
    target.refresh_shadow_types(guard.client()).await?;
    Ok(attempts)
}
