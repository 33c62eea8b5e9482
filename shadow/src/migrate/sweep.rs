//! Tombstone sweep: remove shadow tombstones that no copier statement can ever need again.
//!
//! A tombstone keeps a deleted key occupied so that a copier chunk reading an older snapshot
//! cannot re-insert the row. Only keys at or below the copier's *committed* watermark are past
//! every chunk (the whole key space once the copy is done); above it a tombstone must stay. The
//! DELETE repeats `AND "__duet_deleted"` so EvalPlanQual re-checks it on the newest row version
//! and a key revived by a dual-write meanwhile is never deleted.

use tokio_postgres::GenericClient;

use crate::migrate::error::{DbContext, MigrateError};
use crate::migrate::progress;
use crate::migrate::target::{as_params, CopyTarget, KeyRange, Side};

/// Delete sweepable tombstones of migration `migration_id` in batches of `batch_rows`. Returns the
/// number removed; stops at the first short batch. Without a checkpoint (copy not started) nothing is swept.
pub async fn sweep_tombstones(
    client: &impl GenericClient,
    target: &CopyTarget,
    migration_id: i64,
    batch_rows: u32,
) -> Result<u64, MigrateError> {
    let Some(cp) = progress::load_checkpoint(client, migration_id, false).await? else {
        return Ok(0);
    };
    let range = if cp.done {
        KeyRange {
            lower: None,
            upper: None,
        }
    } else {
        match cp.last_key {
            Some(k) => KeyRange {
                lower: None,
                upper: Some(k),
            },
            None => return Ok(0),
        }
    };
    let t = target;
    let (pred, n) = t.range_predicate(Side::Shadow, None, &range, 1);
    let sql = format!(
        "DELETE FROM {shd} WHERE ({keys}) IN (
             SELECT {keys} FROM {shd} WHERE {deleted} AND {pred}
             ORDER BY {asc} LIMIT ${lim}::text::bigint)
           AND {deleted}",
        shd = t.shadow.sql(),
        keys = t.key_list(None),
        deleted = t.deleted(),
        asc = t.key_order(false),
        lim = n + 1,
    );
    let mut params = CopyTarget::range_params(&range);
    params.push(batch_rows.max(1).to_string());
    let mut total = 0;
    loop {
        let removed = client
            .execute(&sql, &as_params(&params))
            .await
            .ctx(format!("sweeping tombstones of {}", t.shadow))?;
        total += removed;
        // A short batch means the backlog is gone; stopping there keeps a sweep that runs beside
        // busy writers (who keep adding tombstones) from chasing them forever.
        if removed < u64::from(batch_rows.max(1)) {
            return Ok(total);
        }
    }
}
