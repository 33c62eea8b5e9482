//! The shadow-column backfill: fills `c__duet` of the rows that existed before dual-writes began,
//! in keyset chunks in key order: `UPDATE t SET "c__duet" = <expr> WHERE key in (lower, upper]`.
//!
//! It is the copier ([`crate::migrate::copier`]) with a different chunk statement: the same
//! keyset walk ([`crate::migrate::keyset`]), the same
//! checkpoint in `duet.copy_progress` committed in the chunk's transaction (a restarted backfill
//! resumes after the last committed chunk), the same adaptive chunk size, throttles, pause /
//! resume / settings through [`CopierControl`], the same short `lock_timeout` so the backfill
//! waits on the application and gives up first, never the reverse.
//!
//! Why a concurrent dual-write cannot be lost: every write of the application that changes a
//! source column also sets `c__duet = expr` in the same statement (the proxy's rewrite). The
//! backfill's `UPDATE` runs in READ COMMITTED: when it meets a row that a concurrent transaction
//! is changing, it waits for that row lock, and then PostgreSQL re-reads the *latest* row version
//! and re-evaluates both the `WHERE` and the `SET` expression on it (EvalPlanQual). So the value
//! the backfill writes is always `expr` of the newest committed source values, never of a stale
//! snapshot; and any dual-write after it takes the row lock in turn and writes `expr` of its own
//! values. Either order leaves `c__duet = expr(c)`.

use std::time::Duration;

use tokio_postgres::{Client, GenericClient};

use serde::{Deserialize, Serialize};

use crate::ident::{quote_ident, QualifiedName};
use crate::migrate::copier::{ChunkWrite, Copier, CopierConfig, CopierControl};
use crate::migrate::error::{DbContext, MigrateError};
use crate::migrate::guard::{in_short_transaction, retry_retryable};
use crate::migrate::key::CopyKey;
use crate::migrate::target::{as_params, ColumnMapping, CopyTarget, KeyRange, Side};
use crate::migrate::verify::{RangeWalk, VerifyConfig};

/// Backfill of a shadow column: `UPDATE t SET "c__duet" = expr` in keyset chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillSpec {
    /// The table.
    pub table: QualifiedName,
    /// Key columns (primary key or unique NOT NULL key), unquoted, in key order.
    pub key: Vec<String>,
    /// The shadow column, unquoted.
    pub column: String,
    /// SQL expression over the row's (quoted) columns that computes it.
    pub expr: String,
}

/// The copy target describing a backfill (source and "shadow" are the table; the mapping is the
/// one shadow column), with the key's types read from the catalog.
pub async fn backfill_target(
    client: &impl GenericClient,
    spec: &BackfillSpec,
) -> Result<CopyTarget, MigrateError> {
    let mut types = Vec::with_capacity(spec.key.len());
    for col in &spec.key {
        let row = client
            .query_opt(
                "SELECT format_type(atttypid, NULL) FROM pg_attribute
                 WHERE attrelid = $1::text::regclass AND attname = $2 AND NOT attisdropped",
                &[&spec.table.sql(), col],
            )
            .await
            .ctx(format!("reading the key types of {}", spec.table))?
            .ok_or_else(|| {
                MigrateError::InvalidPlan(format!(
                    "{} has no key column {}",
                    spec.table,
                    quote_ident(col)
                ))
            })?;
        types.push(row.get::<_, String>(0));
    }
    Ok(CopyTarget {
        source: spec.table.clone(),
        shadow: spec.table.clone(),
        key: CopyKey {
            columns: spec.key.clone(),
            source_types: types.clone(),
            index_name: String::new(),
            is_primary: true,
        },
        shadow_key_types: types,
        mapping: vec![ColumnMapping::new(spec.column.clone(), spec.expr.clone())],
    })
}

/// A backfill runner for migration `migration_id` and its control handle; `run()` it like a
/// copier. Progress, pause/resume and settings are the copier's.
pub async fn backfill(
    client: Client,
    spec: &BackfillSpec,
    migration_id: i64,
    config: CopierConfig,
) -> Result<(Copier, CopierControl), MigrateError> {
    let target = backfill_target(&client, spec).await?;
    Ok(Copier::with_write(
        client,
        target,
        migration_id,
        config,
        ChunkWrite::UpdateColumn,
    ))
}

/// Result of [`verify_column`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnVerifyReport {
    /// Ranges checked.
    pub ranges: u64,
    /// Rows seen.
    pub rows: i64,
    /// Ranges with rows where the shadow column differs from the expression, and how many.
    pub mismatches: Vec<(KeyRange, i64)>,
}

impl ColumnVerifyReport {
    /// True when every row's shadow column equals the expression.
    pub fn is_clean(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// Count rows where `c__duet IS DISTINCT FROM expr`, in key ranges of `chunk_rows`, from one
/// read-only snapshot (the shadow column and its sources change in the same statement, so any
/// snapshot is consistent).
pub async fn verify_column(
    client: &mut Client,
    spec: &BackfillSpec,
    config: &VerifyConfig,
) -> Result<ColumnVerifyReport, MigrateError> {
    let t = backfill_target(&*client, spec).await?;
    let column = quote_ident(&spec.column);
    let mut report = ColumnVerifyReport {
        ranges: 0,
        rows: 0,
        mismatches: Vec::new(),
    };
    let mut walk = RangeWalk::start(client, &t, config, "column verification").await?;
    while let Some(range) = walk.next().await? {
        let (pred, _) = t.range_predicate(Side::Source, None, &range, 1);
        let row = walk
            .tx()
            .query_one(
                &format!(
                    "SELECT count(*), count(*) FILTER (WHERE {column} IS DISTINCT FROM {expr})
                     FROM {src} WHERE {pred}",
                    expr = spec.expr,
                    src = t.source.sql()
                ),
                &as_params(&CopyTarget::range_params(&range)),
            )
            .await
            .ctx(format!("comparing {column} in {range} of {}", t.source))?;
        report.ranges += 1;
        report.rows += row.get::<_, i64>(0);
        let bad: i64 = row.get(1);
        if bad > 0 {
            report.mismatches.push((range, bad));
        }
    }
    walk.finish().await?;
    Ok(report)
}

/// Re-run the chunk update for each mismatching range (short `lock_timeout`, retried with
/// backoff). Returns the rows rewritten. Re-verify afterwards.
pub async fn repair_column(
    client: &Client,
    spec: &BackfillSpec,
    mismatches: &[(KeyRange, i64)],
    lock_timeout: Duration,
    max_attempts: u32,
) -> Result<u64, MigrateError> {
    let t = backfill_target(client, spec).await?;
    let mut fixed = 0;
    let mut retried = 0;
    for (range, _) in mismatches {
        let (pred, _) = t.range_predicate(Side::Source, None, range, 1);
        let sql = t.column_update(&pred);
        let params = CopyTarget::range_params(range);
        fixed += retry_retryable(max_attempts, &mut retried, || {
            in_short_transaction(client, lock_timeout, "a column repair", async {
                client
                    .execute(&sql, &as_params(&params))
                    .await
                    .ctx(format!("repairing {range} of {}", t.source))
            })
        })
        .await?;
    }
    Ok(fixed)
}
