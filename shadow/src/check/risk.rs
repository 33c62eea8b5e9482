//! Risk: how much harm a statement can do to a running application, from its locks, scans and
//! rewrites, the transaction context and (with `--database`) the real size of the table.

use super::classify::Classification;
use super::facts::ChangePhase;
use super::report::Risk;
use super::schema::Schema;

/// Tables at most this big (rows and bytes) count as small when the live size is known.
const SMALL_ROWS: f64 = 10_000.0;
const SMALL_BYTES: i64 = 16 * 1024 * 1024;
/// Tables at least this big make even a brief blocking lock worth a high risk.
const LARGE_ROWS: f64 = 10_000_000.0;
const LARGE_BYTES: i64 = 10 * 1024 * 1024 * 1024;

/// Scores one statement.
pub fn assess(class: &Classification, schema: &Schema, lock_timeout_set: bool) -> Risk {
    let long = class.rewrites_table || class.scans_table;
    let mut risk = match (class.blocks_reads(), class.blocks_writes(), long) {
        (true, _, true) => Risk::High,
        (false, true, true) => Risk::High,
        (true, _, false) | (false, true, false) => {
            if lock_timeout_set {
                Risk::Low
            } else {
                Risk::Medium
            }
        }
        (false, false, true) => Risk::Low,
        (false, false, false) => Risk::None,
    };
    if class.phase == ChangePhase::Breaking {
        risk = risk.max(Risk::Medium);
    }
    let sizes: Vec<_> = class
        .locks
        .keys()
        .filter(|r| !class.fresh.contains(r))
        .filter_map(|r| schema.table(r).and_then(|t| t.stats))
        .collect();
    if !sizes.is_empty() && risk > Risk::None {
        if sizes
            .iter()
            .all(|s| s.rows <= SMALL_ROWS && s.bytes <= SMALL_BYTES)
        {
            risk = match risk {
                Risk::High => Risk::Medium,
                Risk::Medium => Risk::Low,
                r => r,
            };
        } else if sizes
            .iter()
            .any(|s| s.rows >= LARGE_ROWS || s.bytes >= LARGE_BYTES)
            && (class.blocks_reads() || class.blocks_writes())
        {
            risk = Risk::High;
        }
    }
    risk
}
