//! Repair of the ranges verification found different, online, without ever making the shadow
//! staler than it was.
//!
//! Per range, one READ COMMITTED transaction with a short `lock_timeout` (it loses to the
//! application and is retried):
//!
//! 1. Upsert every source row of the range, read `FOR SHARE`. A plain upsert from the statement
//!    snapshot could overwrite a newer dual-written value with an older one (the dual-write commits
//!    after our snapshot, our `DO UPDATE` then locks its row and writes the old value). `FOR SHARE`
//!    in READ COMMITTED waits for concurrent writers and returns the *latest* row version, and
//!    holds the row until we commit, so every later dual-write of the row overwrites ours.
//! 2. Tombstone (never delete) live shadow rows whose key is absent from the source. The absence is
//!    judged in the statement snapshot, so a concurrent re-insert could make it wrong; the
//!    tombstone is therefore written with `WHERE xmin = <the version we judged>`. Every write of
//!    the key in the source also upserts the shadow row (a new version, new xmin), so the guard,
//!    re-checked by EvalPlanQual on the newest version, skips any row touched after our judgement;
//!    an untouched row still has no source row. A tombstone (not a DELETE) keeps the key occupied
//!    so a stale copier chunk cannot re-insert it; the sweep removes it later.

use std::time::Duration;

use tokio_postgres::Client;

use crate::migrate::error::{DbContext, MigrateError};
use crate::migrate::guard::{in_short_transaction, retry_retryable};
use crate::migrate::keyset::key_from_row;
use crate::migrate::target::{as_params, CopyTarget, KeyRange, Side};
use crate::migrate::verify::RangeMismatch;

/// Repair settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RepairConfig {
    /// `lock_timeout` of each repair transaction (default 200 ms).
    pub lock_timeout: Duration,
    /// Attempts per range (default 20).
    pub max_attempts: u32,
}

impl Default for RepairConfig {
    fn default() -> Self {
        RepairConfig {
            lock_timeout: Duration::from_millis(200),
            max_attempts: 20,
        }
    }
}

/// What a repair changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Shadow rows (re)written from the source.
    pub upserted: u64,
    /// Shadow rows tombstoned because their key no longer exists in the source.
    pub tombstoned: u64,
    /// Retried attempts.
    pub retries: u32,
}

/// Re-copy every mismatching range from the source. Re-verify afterwards.
pub async fn repair(
    client: &Client,
    target: &CopyTarget,
    mismatches: &[RangeMismatch],
    config: &RepairConfig,
) -> Result<RepairReport, MigrateError> {
    let mut report = RepairReport::default();
    for m in mismatches {
        let (up, tomb) = retry_retryable(config.max_attempts, &mut report.retries, || {
            in_short_transaction(
                client,
                config.lock_timeout,
                "a repair",
                repair_body(client, target, &m.range),
            )
        })
        .await?;
        report.upserted += up;
        report.tombstoned += tomb;
    }
    Ok(report)
}

async fn repair_body(
    client: &Client,
    t: &CopyTarget,
    range: &KeyRange,
) -> Result<(u64, u64), MigrateError> {
    let params = CopyTarget::range_params(range);
    let (src_pred, _) = t.range_predicate(Side::Source, None, range, 1);
    let upsert = format!(
        "INSERT INTO {shd} ({targets}) SELECT {exprs} FROM {src} WHERE {src_pred}
         ORDER BY {asc} FOR SHARE
         ON CONFLICT ({keys}) DO UPDATE SET {assign}",
        shd = t.shadow.sql(),
        targets = t.target_list(),
        exprs = t.expr_list(),
        src = t.source.sql(),
        asc = t.key_order(false),
        keys = t.key_list(None),
        assign = t.excluded_assignments(),
    );
    let upserted = client
        .execute(&upsert, &as_params(&params))
        .await
        .ctx(format!("re-copying {range} of {}", t.source))?;
    let (shd_pred, _) = t.range_predicate(Side::Shadow, Some("s"), range, 1);
    let join = t
        .key
        .columns
        .iter()
        .map(|c| {
            let q = crate::ident::quote_ident(c);
            format!("o.{q} = s.{q}")
        })
        .collect::<Vec<_>>()
        .join(" AND ");
    let ghosts = client
        .query(
            &format!(
                "SELECT {text}, s.xmin::text FROM {shd} s
                 WHERE {shd_pred} AND NOT s.{deleted}
                   AND NOT EXISTS (SELECT 1 FROM {src} o WHERE {join})",
                text = t.key_text_list(Some("s")),
                shd = t.shadow.sql(),
                deleted = t.deleted(),
                src = t.source.sql(),
            ),
            &as_params(&params),
        )
        .await
        .ctx(format!("finding ghost rows in {range} of {}", t.shadow))?;
    let nkey = t.key.columns.len();
    let tombstone = format!(
        "UPDATE {shd} SET {deleted} = true
         WHERE ({keys}) = {key_params} AND xmin = ${x}::text::xid AND NOT {deleted}",
        shd = t.shadow.sql(),
        deleted = t.deleted(),
        keys = t.key_list(None),
        key_params = t.key_params(Side::Shadow, 1),
        x = nkey + 1,
    );
    let mut tombstoned = 0;
    for g in &ghosts {
        let mut p = key_from_row(g, 0, nkey).0;
        p.push(g.get::<_, String>(nkey));
        tombstoned += client
            .execute(&tombstone, &as_params(&p))
            .await
            .ctx(format!("tombstoning a ghost row of {}", t.shadow))?;
    }
    Ok((upserted, tombstoned))
}
