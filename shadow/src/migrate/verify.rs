//! Pre-flip verification: chunked checksums of the old shape (converted through the mapping)
//! against the shadow's live rows, all read from ONE REPEATABLE READ snapshot.
//!
//! Dual-writes are synchronous and atomic with the application's statement, so once the copier is
//! past a range both tables agree in every snapshot; one snapshot for the whole comparison
//! therefore needs no table lock. Ranges are cut from the source's keys in that snapshot; the first
//! and last ranges are open so shadow rows outside the source's key span are counted too.

use std::time::{Duration, Instant};

use tokio_postgres::{Client, GenericClient, IsolationLevel, Transaction};

use crate::migrate::error::{DbContext, MigrateError};
use crate::migrate::key::KeyValue;
use crate::migrate::keyset;
use crate::migrate::latency::LatencyHandle;
use crate::migrate::target::{as_params, CopyTarget, KeyRange, Side};
use crate::migrate::throttle::SignalReadings;

/// How long the clients' latency may keep a verification waiting, as a multiple of the time it
/// has worked so far (plus one `max_pause` for the start): its snapshot stays open while it
/// waits, and an old snapshot keeps every row version written since from being pruned, which
/// slows the clients' updates the longer it lives. Measured with `duet-bench migrate`: a
/// verification held at the progress guarantee for five minutes took the clients' p99 from 3 to
/// 5-6 ms; one allowed to wait 3 × its work took 4.5 × as long as one that did not, for the same
/// p99 (2.5 × before the migration either way). Past the budget a range runs anyway. The
/// operator's `nice_ratio` rests are not counted.
pub const LATENCY_WAIT_PER_WORK: f64 = 1.0;

/// Why a range ran while the clients were slow (see [`LATENCY_WAIT_PER_WORK`]).
const SNAPSHOT_BUDGET: &str = "the verification has waited as long as it worked (its snapshot is open meanwhile), one range runs anyway";

/// Verification settings.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyConfig {
    /// Source rows per checksum range (default 10 000).
    pub chunk_rows: u32,
    /// Rest after each range while the application is busy (see
    /// [`crate::migrate::throttle::ThrottleConfig::nice_ratio`]; default 0: never).
    pub nice_ratio: f64,
    /// Before each range, wait while the clients' latency is above its limit (see
    /// [`crate::migrate::latency`]), within [`LATENCY_WAIT_PER_WORK`]: the snapshot stays open
    /// meanwhile; `None`: not watched.
    pub latency: Option<LatencyHandle>,
}

impl VerifyConfig {
    /// The defaults with ranges of `chunk_rows` source rows.
    pub fn with_chunk_rows(chunk_rows: u32) -> Self {
        VerifyConfig {
            chunk_rows,
            ..VerifyConfig::default()
        }
    }
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            chunk_rows: 10_000,
            nice_ratio: 0.0,
            latency: None,
        }
    }
}

/// Count and hash of one side of one range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeChecksum {
    /// Rows.
    pub count: i64,
    /// `bit_xor(hashtextextended(row(...)::text, 0))`.
    pub hash: i64,
}

/// A range whose checksums differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeMismatch {
    /// The key range.
    pub range: KeyRange,
    /// Source side (converted).
    pub source: RangeChecksum,
    /// Shadow side (live rows).
    pub shadow: RangeChecksum,
}

/// Result of a verification pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Ranges compared.
    pub ranges: u64,
    /// Source rows seen.
    pub source_rows: i64,
    /// Live shadow rows seen.
    pub shadow_rows: i64,
    /// The ranges that differ.
    pub mismatches: Vec<RangeMismatch>,
}

impl VerifyReport {
    /// True when the shadow equals the converted source.
    pub fn is_clean(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// Compare source and shadow range by range in one REPEATABLE READ, read-only snapshot.
pub async fn verify(
    client: &mut Client,
    target: &CopyTarget,
    config: &VerifyConfig,
) -> Result<VerifyReport, MigrateError> {
    let t = target;
    let deleted = t.deleted();
    let mut report = VerifyReport {
        ranges: 0,
        source_rows: 0,
        shadow_rows: 0,
        mismatches: Vec::new(),
    };
    let mut walk = RangeWalk::start(client, t, config, "verification").await?;
    while let Some(range) = walk.next().await? {
        let tx = walk.tx();
        let (src_pred, _) = t.range_predicate(Side::Source, None, &range, 1);
        let (shd_pred, _) = t.range_predicate(Side::Shadow, None, &range, 1);
        let range_params = CopyTarget::range_params(&range);
        let source = checksum(
            tx,
            &format!(
                "SELECT count(*), coalesce(bit_xor(hashtextextended(ROW({exprs})::text, 0)), 0)
                 FROM {src} WHERE {src_pred}",
                exprs = t.expr_list(),
                src = t.source.sql()
            ),
            &range_params,
        )
        .await?;
        let shadow = checksum(
            tx,
            &format!(
                "SELECT count(*), coalesce(bit_xor(hashtextextended(ROW({cols})::text, 0)), 0)
                 FROM {shd} WHERE NOT {deleted} AND {shd_pred}",
                cols = t.target_list(),
                shd = t.shadow.sql()
            ),
            &range_params,
        )
        .await?;
        report.ranges += 1;
        report.source_rows += source.count;
        report.shadow_rows += shadow.count;
        if source != shadow {
            report.mismatches.push(RangeMismatch {
                range,
                source,
                shadow,
            });
        }
    }
    walk.finish().await?;
    Ok(report)
}

/// The ranges of `config.chunk_rows` source keys, in key order, all read in one REPEATABLE READ
/// read-only snapshot: `next` gives the next range (after resting while the application is busy),
/// [`RangeWalk::tx`] reads it, `finish` ends the snapshot.
pub(crate) struct RangeWalk<'a> {
    tx: Transaction<'a>,
    target: &'a CopyTarget,
    config: &'a VerifyConfig,
    what: &'static str,
    /// Where the next range starts; `None` once the last (open) range was given.
    lower: Option<Option<KeyValue>>,
    /// When the range given last was cut.
    started: Option<Instant>,
    /// Time spent reading ranges so far.
    worked: Duration,
    /// Time the clients' latency kept it waiting so far (beyond the nice-ratio rests).
    latency_waited: Duration,
    /// Whether the application is busy, as last read.
    signals: SignalReadings,
}

impl<'a> RangeWalk<'a> {
    /// Opens the snapshot (`what` names it in errors).
    pub(crate) async fn start(
        client: &'a mut Client,
        target: &'a CopyTarget,
        config: &'a VerifyConfig,
        what: &'static str,
    ) -> Result<RangeWalk<'a>, MigrateError> {
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .ctx(format!("starting the {what} snapshot"))?;
        Ok(RangeWalk {
            tx,
            target,
            config,
            what,
            lower: Some(None),
            started: None,
            worked: Duration::ZERO,
            latency_waited: Duration::ZERO,
            signals: SignalReadings::default(),
        })
    }

    /// The snapshot's transaction.
    pub(crate) fn tx(&self) -> &Transaction<'a> {
        &self.tx
    }

    /// The next range, or `None` after the last one.
    pub(crate) async fn next(&mut self) -> Result<Option<KeyRange>, MigrateError> {
        if let Some(started) = self.started {
            // The snapshot stays open while resting.
            let took = started.elapsed();
            self.worked += took;
            let mut rest = self
                .signals
                .rest_after(&self.tx, self.config.nice_ratio, took)
                .await;
            if let Some(LatencyHandle(latency)) = &self.config.latency {
                let budget = self.latency_budget(latency);
                let extra = latency.rest_after(took).saturating_sub(rest).min(budget);
                self.latency_waited += extra;
                rest += extra;
            }
            if !rest.is_zero() {
                tokio::time::sleep(rest).await;
            }
        }
        if let (Some(LatencyHandle(latency)), Some(_)) = (&self.config.latency, &self.lower) {
            let budget = self.latency_budget(latency);
            self.latency_waited += latency.wait_for_go_within(budget, SNAPSHOT_BUDGET).await;
        }
        let Some(lower) = self.lower.take() else {
            return Ok(None);
        };
        self.started = Some(Instant::now());
        let upper = next_range_bound(&self.tx, self.target, &lower, self.config.chunk_rows).await?;
        // An open upper end is the last range.
        self.lower = upper.clone().map(Some);
        Ok(Some(KeyRange { lower, upper }))
    }

    /// What the clients' latency may still keep this verification waiting.
    fn latency_budget(&self, latency: &crate::migrate::latency::LatencyThrottle) -> Duration {
        latency_budget(self.worked, self.latency_waited, latency.max_pause())
    }

    /// Ends the snapshot.
    pub(crate) async fn finish(self) -> Result<(), MigrateError> {
        let what = self.what;
        self.tx
            .commit()
            .await
            .ctx(format!("ending the {what} snapshot"))
    }
}

/// What the clients' latency may still keep a verification waiting that has `worked` and
/// `waited` so far: [`LATENCY_WAIT_PER_WORK`] × its work plus one `max_pause`, less what it
/// waited.
fn latency_budget(worked: Duration, waited: Duration, max_pause: Duration) -> Duration {
    (worked.mul_f64(LATENCY_WAIT_PER_WORK) + max_pause).saturating_sub(waited)
}

/// The upper bound of the verification range that starts after `lower`: the key `chunk_rows`
/// rows further in key order, or `None` when fewer remain (the last range is open above).
async fn next_range_bound(
    client: &impl GenericClient,
    t: &CopyTarget,
    lower: &Option<KeyValue>,
    chunk_rows: u32,
) -> Result<Option<KeyValue>, MigrateError> {
    let open = KeyRange {
        lower: lower.clone(),
        upper: None,
    };
    keyset::key_after(client, t, &open, chunk_rows.max(1) - 1).await
}

async fn checksum(
    tx: &tokio_postgres::Transaction<'_>,
    sql: &str,
    params: &[String],
) -> Result<RangeChecksum, MigrateError> {
    let row = tx
        .query_one(sql, &as_params(params))
        .await
        .ctx("computing a range checksum")?;
    Ok(RangeChecksum {
        count: row.get(0),
        hash: row.get(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latency_may_keep_a_verification_waiting_as_long_as_it_worked() {
        let ms = Duration::from_millis;
        // Before the first range: one max_pause.
        assert_eq!(latency_budget(ms(0), ms(0), ms(2000)), ms(2000));
        // 1 s of work: 1 s more, less what was waited.
        assert_eq!(latency_budget(ms(1000), ms(0), ms(2000)), ms(3000));
        assert_eq!(latency_budget(ms(1000), ms(2500), ms(2000)), ms(500));
        assert_eq!(latency_budget(ms(1000), ms(9000), ms(2000)), ms(0));
    }
}
