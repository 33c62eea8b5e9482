//! The copy checkpoint in `duet.copy_progress`: last copied key, counts, and the upper bound
//! fixed when the copy started. Written in the same transaction as each chunk.

use tokio_postgres::GenericClient;

use crate::migrate::error::{DbContext, MigrateError};
use crate::migrate::key::KeyValue;

/// The committed state of a copy.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyCheckpoint {
    /// Migration id.
    pub migration_id: i64,
    /// Last key whose chunk committed (the copy watermark); `None` before the first chunk.
    pub last_key: Option<KeyValue>,
    /// The largest key that existed when the copy started; `None` for an empty table.
    pub upper_key: Option<KeyValue>,
    /// Source rows scanned by committed chunks.
    pub rows_done: i64,
    /// Rows the copier actually inserted (the rest were already there from dual-writes).
    pub rows_copied: i64,
    /// Estimated total rows (reltuples at start).
    pub rows_total: Option<i64>,
    /// Chunk size of the last chunk.
    pub chunk_rows: Option<i32>,
    /// The copy reached its upper bound.
    pub done: bool,
}

/// Read the checkpoint; `lock` takes `FOR UPDATE` (one copier at a time per migration).
pub async fn load_checkpoint(
    client: &impl GenericClient,
    migration_id: i64,
    lock: bool,
) -> Result<Option<CopyCheckpoint>, MigrateError> {
    let sql = format!(
        "SELECT last_key::text, upper_key::text, rows_done, rows_copied, rows_total, chunk_rows, done
         FROM duet.copy_progress WHERE migration_id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row = client.query_opt(&sql, &[&migration_id]).await.ctx(format!(
        "reading the copy checkpoint of migration {migration_id}"
    ))?;
    let Some(row) = row else { return Ok(None) };
    let key = |i: usize| -> Result<Option<KeyValue>, MigrateError> {
        row.get::<_, Option<String>>(i)
            .map(|t| KeyValue::from_json(&t))
            .transpose()
    };
    Ok(Some(CopyCheckpoint {
        migration_id,
        last_key: key(0)?,
        upper_key: key(1)?,
        rows_done: row.get(2),
        rows_copied: row.get(3),
        rows_total: row.get(4),
        chunk_rows: row.get(5),
        done: row.get(6),
    }))
}

/// Create the checkpoint row at the start of a copy (no-op if it exists).
pub async fn init_checkpoint(
    client: &impl GenericClient,
    migration_id: i64,
    upper_key: Option<&KeyValue>,
    rows_total: Option<i64>,
) -> Result<(), MigrateError> {
    let upper = upper_key.map(KeyValue::to_json);
    let done = upper_key.is_none();
    client
        .execute(
            "INSERT INTO duet.copy_progress (migration_id, upper_key, rows_total, done)
             VALUES ($1, $2::text::jsonb, $3, $4) ON CONFLICT (migration_id) DO NOTHING",
            &[&migration_id, &upper, &rows_total, &done],
        )
        .await
        .ctx(format!(
            "creating the copy checkpoint of migration {migration_id}"
        ))?;
    Ok(())
}

/// Advance the checkpoint after a chunk (same transaction as the chunk).
pub async fn save_checkpoint(
    client: &impl GenericClient,
    migration_id: i64,
    last_key: &KeyValue,
    rows_scanned: i64,
    rows_copied: i64,
    chunk_rows: i32,
) -> Result<(), MigrateError> {
    client
        .execute(
            "UPDATE duet.copy_progress SET last_key = $2::text::jsonb,
                    rows_done = rows_done + $3, rows_copied = rows_copied + $4,
                    chunk_rows = $5, updated_at = now()
             WHERE migration_id = $1",
            &[
                &migration_id,
                &last_key.to_json(),
                &rows_scanned,
                &rows_copied,
                &chunk_rows,
            ],
        )
        .await
        .ctx(format!(
            "saving the copy checkpoint of migration {migration_id}"
        ))?;
    Ok(())
}

/// Mark the copy finished.
pub async fn mark_done(client: &impl GenericClient, migration_id: i64) -> Result<(), MigrateError> {
    client
        .execute(
            "UPDATE duet.copy_progress SET done = true, updated_at = now() WHERE migration_id = $1",
            &[&migration_id],
        )
        .await
        .ctx(format!("finishing the copy of migration {migration_id}"))?;
    Ok(())
}
