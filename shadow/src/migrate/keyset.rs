//! The keyset walk: how every pass over a table in key order cuts its chunks — the copier, the
//! shadow column's backfill (the copier with another chunk statement) and the verification.
//!
//! A chunk is a key range `(lower, upper]` ([`KeyRange`]); a pass starts below the first key and
//! asks for the next chunk's upper key until none is left. Each bound is one index probe or one
//! index-only scan of the source's key, so no pass ever holds more than a chunk's rows, needs an
//! `OFFSET` from the table's start, or depends on the keys being dense. Keys travel as text
//! ([`KeyValue`]) and are cast back to the key's types in every statement, so a composite or
//! non-integer key walks the same way.
//!
//! The passes differ only in what they do with a range (insert, update, checksum) and where they
//! stop (the copier at the largest key that existed when it started; the verification at the
//! end, with its last range open above): that stays with them.

use tokio_postgres::{GenericClient, Row};

use crate::migrate::error::{DbContext, MigrateError};
use crate::migrate::key::KeyValue;
use crate::migrate::target::{as_params, CopyTarget, KeyRange, Side};

/// The key `skip` keys past `window`'s lower bound (its first key for `skip` 0) within the
/// window, or `None` when the window holds `skip` keys or fewer.
pub(crate) async fn key_after(
    client: &impl GenericClient,
    t: &CopyTarget,
    window: &KeyRange,
    skip: u32,
) -> Result<Option<KeyValue>, MigrateError> {
    let (pred, n) = t.range_predicate(Side::Source, None, window, 1);
    let mut params = CopyTarget::range_params(window);
    params.push(skip.to_string());
    let sql = format!(
        "SELECT {text} FROM {src} WHERE {pred} ORDER BY {asc} OFFSET ${off}::text::bigint LIMIT 1",
        text = t.key_text_list(None),
        src = t.source.sql(),
        asc = t.key_order(false),
        off = n + 1,
    );
    let row = client
        .query_opt(&sql, &as_params(&params))
        .await
        .ctx(format!("finding the next key range of {}", t.source))?;
    Ok(row.map(|row| key_from_row(&row, 0, t.key.columns.len())))
}

/// The last key of `window` and how many keys the window holds, or `None` when it is empty: the
/// end of a pass's last, shorter chunk.
pub(crate) async fn last_key_and_count(
    client: &impl GenericClient,
    t: &CopyTarget,
    window: &KeyRange,
) -> Result<Option<(i64, KeyValue)>, MigrateError> {
    let (pred, _) = t.range_predicate(Side::Source, None, window, 1);
    let sql = format!(
        "SELECT count(*) OVER (), {text} FROM {src} WHERE {pred} ORDER BY {desc} LIMIT 1",
        text = t.key_text_list(None),
        src = t.source.sql(),
        desc = t.key_order(true),
    );
    let row = client
        .query_opt(&sql, &as_params(&CopyTarget::range_params(window)))
        .await
        .ctx(format!("finding the last key range of {}", t.source))?;
    Ok(row.map(|row| (row.get(0), key_from_row(&row, 1, t.key.columns.len()))))
}

/// With a single integer key ([`CopyTarget::single_integer_key`], which names it), the end of the
/// key interval of `values` values that starts at the first key past `window`'s lower bound,
/// capped at the window's upper key: one index probe, and at most `values` rows whatever the gaps
/// in the keys. `None` when the window is empty (or has no upper bound).
pub(crate) async fn integer_interval_end(
    client: &impl GenericClient,
    t: &CopyTarget,
    key: &str,
    window: &KeyRange,
    values: u32,
) -> Result<Option<KeyValue>, MigrateError> {
    let Some(upper) = &window.upper else {
        return Ok(None);
    };
    let (pred, n) = t.range_predicate(Side::Source, None, window, 1);
    let mut params = CopyTarget::range_params(window);
    params.push(values.max(1).to_string());
    params.extend(upper.0.iter().cloned());
    let sql = format!(
        "SELECT least({key}::numeric + ${w}::text::numeric - 1, ${u}::text::numeric)::text
         FROM {src} WHERE {pred} ORDER BY {key} LIMIT 1",
        src = t.source.sql(),
        w = n + 1,
        u = n + 2,
    );
    let row = client
        .query_opt(&sql, &as_params(&params))
        .await
        .ctx(format!("finding the next key interval of {}", t.source))?;
    Ok(row.map(|row| key_from_row(&row, 0, 1)))
}

/// The table's largest key now, or `None` when it is empty: where the copier's pass stops (rows
/// above it arrive through dual-writes).
pub(crate) async fn largest_key(
    client: &impl GenericClient,
    t: &CopyTarget,
) -> Result<Option<KeyValue>, MigrateError> {
    let sql = format!(
        "SELECT {} FROM {} ORDER BY {} LIMIT 1",
        t.key_text_list(None),
        t.source.sql(),
        t.key_order(true)
    );
    let row = client
        .query_opt(&sql, &[])
        .await
        .ctx(format!("reading the largest key of {}", t.source))?;
    Ok(row.map(|row| key_from_row(&row, 0, t.key.columns.len())))
}

/// The `n` key columns read as text from `row`, starting at column `first`.
pub(crate) fn key_from_row(row: &Row, first: usize, n: usize) -> KeyValue {
    KeyValue(
        (first..first + n)
            .map(|i| row.get::<_, String>(i))
            .collect(),
    )
}
