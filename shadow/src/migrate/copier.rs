//! The chunked copier: fills the shadow with the rows that existed before dual-writes began.
//!
//! Each chunk is one short READ COMMITTED transaction with a short `lock_timeout`:
//!
//! 1. lock the checkpoint row (`FOR UPDATE`);
//! 2. find the chunk's upper key, never past the largest key that existed when the copy started:
//!    with a single integer key, the interval of `chunk_rows` key values from the first key past
//!    the watermark (one index probe, so gaps cost nothing, and at most `chunk_rows` rows);
//!    otherwise the `chunk_rows`-th key past the watermark (one index-only scan that skips
//!    `chunk_rows - 1` keys; only the last, shorter chunk counts what is left);
//! 3. probe the shadow's key index for any committed key in the chunk's range `(last, upper]`;
//! 4. copy the range `ORDER BY key`:
//!    * the shadow has keys there (dual-written rows or tombstones): `INSERT INTO shadow … SELECT
//!      <mapping> FROM source WHERE key > last AND key <= upper ON CONFLICT (key) DO NOTHING`;
//!    * it has none: the same insert *without* `ON CONFLICT`, under a savepoint. A plain insert is
//!      what a one-off `INSERT … SELECT` does; speculative insertion (`ON CONFLICT`) costs an
//!      extra index probe and an extra WAL record per row and made chunks about twice as slow;
//! 5. advance the checkpoint to the chunk's upper key and commit.
//!
//! # Why this is race-free with dual-writes
//!
//! The read is lock-free and the copier never overwrites: a dual-written row or a tombstone always
//! wins. On the `ON CONFLICT DO NOTHING` path this is PostgreSQL's arbitration, which sees the
//! latest committed row even when the statement's snapshot does not, and waits for an uncommitted
//! one. On the plain path the unique index enforces the same outcome: a key that a dual-write
//! committed after the probe (or holds uncommitted, which the insert waits for) makes the plain
//! insert fail with a unique violation and write nothing; the copier then rolls back to the
//! savepoint and redoes the chunk with `DO NOTHING` in the same transaction, still holding the
//! checkpoint lock. A plain insert can therefore never replace, update or resurrect anything: it
//! either inserts only keys the shadow does not have, or fails. Tombstones occupy their keys, so a
//! stale copy of a deleted row is refused on both paths. After a fallback the plain path is
//! skipped for a number of chunks that doubles per consecutive fallback (up to 64), so a copier
//! racing steady dual-writes into its range wastes at most one chunk in that many. The range never
//! goes past the upper key fixed when the copy started: rows above it arrived through dual-writes.
//!
//! # Resuming
//!
//! The checkpoint commits in the chunk's transaction, so a new copier for the same migration
//! continues exactly where the last committed chunk ended; the `FOR UPDATE` on the checkpoint row
//! keeps two copiers from copying the same chunk. A short `lock_timeout` makes the copier the one
//! that gives up when it meets an application transaction; retryable failures (lock timeout,
//! deadlock, serialization failure) roll the chunk back and retry it, smaller, after a backoff.
//!
//! # Commits
//!
//! The copier's connection runs with `synchronous_commit = off`: a chunk's commit does not wait
//! for its WAL flush. This is safe because a chunk's rows and its checkpoint are in one
//! transaction, hence one commit record, and WAL is replayed in order: a crash can lose only a
//! suffix of the most recent chunks, each together with its own checkpoint, and the copier
//! resumes after the last chunk that survived. Nothing durable can depend on a lost chunk: any
//! transaction that saw a chunk's commit and then commits synchronously (a dual-write, the
//! controller's phase change after the copy, the flip) writes its commit record after the chunk's
//! and flushes the WAL up to it, the chunk included. The backfill shares this loop and this
//! argument (its `UPDATE` and checkpoint also commit together).
//!
//! # Pacing
//!
//! The chunk size adapts towards a target chunk time. Before each chunk the throttle signals are
//! read (an unreadable signal throttles: fail closed), then the clients' latency
//! ([`crate::migrate::latency`]) when the proxy supplies it; a control handle pauses, resumes, stops and
//! changes settings while it runs, and progress is published on a watch channel.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::migrate::error::{DbContext, MigrateError};
use crate::migrate::guard::{backoff_with_jitter, in_short_transaction, is_retryable};
use crate::migrate::key::KeyValue;
use crate::migrate::keyset;
use crate::migrate::latency::{LatencyHandle, LatencyVerdict, LATENCY_RECHECK};
use crate::migrate::progress::{self, CopyCheckpoint};
use crate::migrate::target::{as_params, CopyTarget, KeyRange, Side};
use crate::migrate::throttle::{SignalReadings, ThrottleConfig};

/// Copier settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CopierConfig {
    /// Chunk time the chunk size adapts towards (default 100 ms).
    pub target_chunk_time: Duration,
    /// Rows in the first chunk (default 1000).
    pub initial_chunk_rows: u32,
    /// Smallest chunk (default 10).
    pub min_chunk_rows: u32,
    /// Largest chunk (default 100 000).
    pub max_chunk_rows: u32,
    /// `lock_timeout` of each chunk: short, so the copier loses to the application (default 100 ms).
    pub lock_timeout: Duration,
    /// Consecutive retryable failures before giving up (default 100).
    pub max_consecutive_retries: u32,
    /// Throttle signals and thresholds.
    pub throttle: ThrottleConfig,
    /// The clients' latency as a throttle signal (see [`crate::migrate::latency`]), shared with
    /// the migration's verifier; `None`: not watched.
    pub latency: Option<LatencyHandle>,
}

impl Default for CopierConfig {
    fn default() -> Self {
        CopierConfig {
            target_chunk_time: Duration::from_millis(100),
            initial_chunk_rows: 1000,
            min_chunk_rows: 10,
            max_chunk_rows: 100_000,
            lock_timeout: Duration::from_millis(100),
            max_consecutive_retries: 100,
            throttle: ThrottleConfig::default(),
            latency: None,
        }
    }
}

/// What the copier is doing.
#[derive(Debug, Clone, PartialEq)]
pub enum CopierState {
    /// Reading or creating the checkpoint.
    Starting,
    /// Copying chunks.
    Running,
    /// Paused by the operator.
    Paused,
    /// Waiting on a throttle signal (or failing closed on an unreadable one); the reason.
    Throttled(String),
    /// Stopped by the operator; resumable.
    Stopped,
    /// Past the upper key: the copy is complete.
    Done,
    /// Failed with this error; resumable once the cause is fixed.
    Failed(String),
}

/// Observable progress.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyProgress {
    /// Current state.
    pub state: CopierState,
    /// Source rows covered by committed chunks (all runs).
    pub rows_done: i64,
    /// Rows actually inserted by the copier (all runs).
    pub rows_copied: i64,
    /// Estimated total (reltuples when the copy started).
    pub rows_total: Option<i64>,
    /// The committed watermark.
    pub last_key: Option<KeyValue>,
    /// Current chunk size.
    pub chunk_rows: u32,
    /// Chunks committed by this run.
    pub chunks: u64,
    /// Retryable failures (lock timeouts, deadlocks) in this run.
    pub retries: u64,
    /// Chunks of this run whose plain insert met a key written concurrently by a dual-write
    /// (unique violation) and were redone, in the same transaction, with `ON CONFLICT DO NOTHING`.
    pub conflict_fallbacks: u64,
    /// Rows per second in this run.
    pub rate_rows_per_sec: f64,
    /// Estimated time left.
    pub eta: Option<Duration>,
}

#[derive(Debug, Clone)]
struct Settings {
    paused: bool,
    stop: bool,
    target_chunk_time: Duration,
    min_chunk_rows: u32,
    max_chunk_rows: u32,
    throttle: ThrottleConfig,
}

struct Shared {
    settings: Mutex<Settings>,
    wake: Notify,
    progress: watch::Sender<CopyProgress>,
}

impl Shared {
    fn settings(&self) -> MutexGuard<'_, Settings> {
        // A poisoned lock only means another thread panicked mid-update of plain values.
        self.settings.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Handle to steer a running copier (cheap to clone, usable from any task).
#[derive(Clone)]
pub struct CopierControl {
    shared: Arc<Shared>,
}

impl CopierControl {
    fn update(&self, f: impl FnOnce(&mut Settings)) {
        f(&mut self.shared.settings());
        self.shared.wake.notify_one();
    }

    /// Pause after the current chunk.
    pub fn pause(&self) {
        self.update(|s| s.paused = true);
    }

    /// Resume a paused copier.
    pub fn resume(&self) {
        self.update(|s| s.paused = false);
    }

    /// Stop after the current chunk; `run` returns [`CopyOutcome::Stopped`]. Resumable.
    pub fn stop(&self) {
        self.update(|s| s.stop = true);
    }

    /// Change the target chunk time.
    pub fn set_chunk_time(&self, target: Duration) {
        self.update(|s| s.target_chunk_time = target.max(Duration::from_millis(1)));
    }

    /// Change the chunk size limits.
    pub fn set_chunk_rows_limits(&self, min: u32, max: u32) {
        self.update(|s| {
            s.min_chunk_rows = min.max(1);
            s.max_chunk_rows = max.max(s.min_chunk_rows);
        });
    }

    /// Replace the throttle settings.
    pub fn set_throttle(&self, throttle: ThrottleConfig) {
        self.update(|s| s.throttle = throttle);
    }

    /// The latest progress.
    pub fn progress(&self) -> CopyProgress {
        self.shared.progress.borrow().clone()
    }

    /// A receiver that sees every progress update (`wait_for` a state, a row count, …).
    pub fn subscribe(&self) -> watch::Receiver<CopyProgress> {
        self.shared.progress.subscribe()
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyOutcome {
    /// Copy complete.
    Done,
    /// Stopped by the control handle.
    Stopped,
}

/// What each chunk writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChunkWrite {
    /// Shadow table: `INSERT INTO shadow … ON CONFLICT DO NOTHING` (the copier).
    Insert,
    /// Shadow column: `UPDATE t SET "column" = <the mapping's expression>` (the backfill, see
    /// `backfill`), with the target's source and shadow both the table.
    UpdateColumn,
}

/// A copier for one migration, owning its connection.
pub struct Copier {
    client: Client,
    target: CopyTarget,
    migration_id: i64,
    config: CopierConfig,
    shared: Arc<Shared>,
    write: ChunkWrite,
}

enum ChunkResult {
    Done(CopyCheckpoint),
    Copied(CopyCheckpoint, InsertPath),
}

/// How a chunk's rows went into the shadow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InsertPath {
    /// A plain `INSERT … SELECT`: the shadow had no key in the chunk's range.
    Plain,
    /// `ON CONFLICT DO NOTHING` from the start: the shadow already had keys in the range (or the
    /// plain path is backing off), or the chunk writes a shadow column.
    OnConflict,
    /// The plain insert met a concurrently dual-written key and the chunk was redone with
    /// `ON CONFLICT DO NOTHING`.
    Fallback,
}

/// Longest run of chunks that skip the plain insert after fallbacks.
const MAX_PLAIN_BACKOFF: u32 = 64;

/// When to try the plain insert: after a fallback it is skipped for a number of chunks that
/// doubles per consecutive fallback up to [`MAX_PLAIN_BACKOFF`] and is reset by a plain chunk that
/// succeeds, so a copier racing steady dual-writes into its range wastes at most one chunk in
/// that many.
#[derive(Debug, Default)]
struct PlainBackoff {
    /// Chunks left that skip the plain insert.
    skip: u32,
    /// The length of the current back-off (0: none).
    length: u32,
}

impl PlainBackoff {
    fn allow_plain(&self) -> bool {
        self.skip == 0
    }

    fn after(&mut self, path: InsertPath) {
        self.skip = self.skip.saturating_sub(1);
        match path {
            InsertPath::Plain => self.length = 0,
            InsertPath::OnConflict => {}
            InsertPath::Fallback => {
                self.length = self.length.saturating_mul(2).clamp(1, MAX_PLAIN_BACKOFF);
                self.skip = self.length;
            }
        }
    }
}

/// Savepoint around a chunk's plain insert, so a unique violation undoes only that statement.
const PLAIN_SAVEPOINT: &str = "duet_plain_chunk";

impl Copier {
    /// Create a copier and its control handle.
    pub fn new(
        client: Client,
        target: CopyTarget,
        migration_id: i64,
        config: CopierConfig,
    ) -> (Copier, CopierControl) {
        Copier::with_write(client, target, migration_id, config, ChunkWrite::Insert)
    }

    /// A copier whose chunks write `write` (the backfill uses [`ChunkWrite::UpdateColumn`]).
    pub(crate) fn with_write(
        client: Client,
        target: CopyTarget,
        migration_id: i64,
        config: CopierConfig,
        write: ChunkWrite,
    ) -> (Copier, CopierControl) {
        let settings = Settings {
            paused: false,
            stop: false,
            target_chunk_time: config.target_chunk_time,
            min_chunk_rows: config.min_chunk_rows.max(1),
            max_chunk_rows: config.max_chunk_rows.max(config.min_chunk_rows.max(1)),
            throttle: config.throttle.clone(),
        };
        let (progress, _) = watch::channel(CopyProgress {
            state: CopierState::Starting,
            rows_done: 0,
            rows_copied: 0,
            rows_total: None,
            last_key: None,
            chunk_rows: config.initial_chunk_rows,
            chunks: 0,
            retries: 0,
            conflict_fallbacks: 0,
            rate_rows_per_sec: 0.0,
            eta: None,
        });
        let shared = Arc::new(Shared {
            settings: Mutex::new(settings),
            wake: Notify::new(),
            progress,
        });
        let control = CopierControl {
            shared: shared.clone(),
        };
        (
            Copier {
                client,
                target,
                migration_id,
                config,
                shared,
                write,
            },
            control,
        )
    }

    fn publish(&self, f: impl FnOnce(&mut CopyProgress)) {
        self.shared.progress.send_modify(f);
    }

    fn publish_checkpoint(&self, cp: &CopyCheckpoint, run_rows: i64, started: Instant) {
        let secs = started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            run_rows as f64 / secs
        } else {
            0.0
        };
        self.publish(|p| {
            p.rows_done = cp.rows_done;
            p.rows_copied = cp.rows_copied;
            p.rows_total = cp.rows_total;
            p.last_key = cp.last_key.clone();
            p.rate_rows_per_sec = rate;
            p.eta = match cp.rows_total {
                Some(total) if rate > 0.0 => {
                    let left = (total - cp.rows_done).max(0) as f64;
                    Some(Duration::from_secs_f64(left / rate))
                }
                _ => None,
            };
        });
    }

    /// Copy until done or stopped. On error the state is `Failed`; a new copier resumes.
    pub async fn run(self) -> Result<CopyOutcome, MigrateError> {
        let result = self.run_inner().await;
        if let Err(e) = &result {
            let msg = e.to_string();
            self.publish(|p| p.state = CopierState::Failed(msg));
        }
        result
    }

    async fn run_inner(&self) -> Result<CopyOutcome, MigrateError> {
        let started = Instant::now();
        // Asynchronous commit on the copier's own connection: see "Commits" in the module doc
        // for why a crash can only lose whole chunks together with their checkpoints.
        self.client
            .batch_execute("SET synchronous_commit = off")
            .await
            .ctx("setting synchronous_commit of the copier's connection")?;
        let first = self.start().await?;
        let base_rows = first.rows_done;
        self.publish_checkpoint(&first, 0, started);
        if first.done {
            self.publish(|p| p.state = CopierState::Done);
            return Ok(CopyOutcome::Done);
        }
        let mut chunk_rows = self.config.initial_chunk_rows.max(1);
        let mut consecutive_failures = 0u32;
        let mut plain = PlainBackoff::default();
        let mut signals = SignalReadings::default();
        loop {
            let settings = self.shared.settings().clone();
            if settings.stop {
                self.publish(|p| p.state = CopierState::Stopped);
                return Ok(CopyOutcome::Stopped);
            }
            if settings.paused {
                self.publish(|p| p.state = CopierState::Paused);
                self.wait(Duration::from_secs(1)).await;
                continue;
            }
            if let Some(reason) = signals.reason(&self.client, &settings.throttle).await {
                self.publish(|p| p.state = CopierState::Throttled(reason));
                self.wait(settings.throttle.recheck_interval).await;
                continue;
            }
            if let Some(LatencyHandle(latency)) = &self.config.latency {
                if let LatencyVerdict::Wait(reason) = latency.check() {
                    self.publish(|p| p.state = CopierState::Throttled(reason));
                    self.wait(LATENCY_RECHECK).await;
                    continue;
                }
            }
            chunk_rows = chunk_rows.clamp(settings.min_chunk_rows, settings.max_chunk_rows);
            self.publish(|p| {
                p.state = CopierState::Running;
                p.chunk_rows = chunk_rows;
            });
            let t0 = Instant::now();
            match self.copy_chunk(chunk_rows, plain.allow_plain()).await {
                Ok(ChunkResult::Done(cp)) => {
                    self.publish_checkpoint(&cp, cp.rows_done - base_rows, started);
                    self.publish(|p| p.state = CopierState::Done);
                    return Ok(CopyOutcome::Done);
                }
                Ok(ChunkResult::Copied(cp, path)) => {
                    consecutive_failures = 0;
                    plain.after(path);
                    if path == InsertPath::Fallback {
                        self.publish(|p| p.conflict_fallbacks += 1);
                    }
                    chunk_rows = adapt_chunk_rows(
                        chunk_rows,
                        t0.elapsed(),
                        settings.target_chunk_time,
                        settings.min_chunk_rows,
                        settings.max_chunk_rows,
                    );
                    self.publish_checkpoint(&cp, cp.rows_done - base_rows, started);
                    self.publish(|p| p.chunks += 1);
                    // Give the application the machine back for a while when it is busy: the
                    // operator's nice ratio, or the clients' latency's pace if longer.
                    let took = t0.elapsed();
                    let mut rest = signals
                        .rest_after(&self.client, settings.throttle.nice_ratio, took)
                        .await;
                    if let Some(LatencyHandle(latency)) = &self.config.latency {
                        rest = rest.max(latency.rest_after(took));
                    }
                    if !rest.is_zero() {
                        self.wait(rest).await;
                    }
                }
                Err(e) if is_retryable_migrate(&e) => {
                    consecutive_failures += 1;
                    self.publish(|p| p.retries += 1);
                    if consecutive_failures > self.config.max_consecutive_retries {
                        return Err(into_exhausted(e, consecutive_failures));
                    }
                    chunk_rows = (chunk_rows / 2).max(settings.min_chunk_rows);
                    tokio::time::sleep(backoff_with_jitter(
                        consecutive_failures,
                        Duration::from_millis(10),
                        Duration::from_secs(1),
                    ))
                    .await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn wait(&self, at_most: Duration) {
        tokio::select! {
            _ = self.shared.wake.notified() => {}
            _ = tokio::time::sleep(at_most) => {}
        }
    }

    /// Load the checkpoint, creating it (upper key, reltuples) on the first run.
    async fn start(&self) -> Result<CopyCheckpoint, MigrateError> {
        if let Some(cp) = progress::load_checkpoint(&self.client, self.migration_id, false).await? {
            return Ok(cp);
        }
        let t = &self.target;
        let upper = keyset::largest_key(&self.client, t).await?;
        let total: Option<i64> = self
            .client
            .query_one(
                "SELECT CASE WHEN reltuples < 0 THEN NULL ELSE reltuples::bigint END
                 FROM pg_class WHERE oid = $1::text::regclass",
                &[&t.source.sql()],
            )
            .await
            .ctx(format!("estimating the rows of {}", t.source))?
            .get(0);
        progress::init_checkpoint(&self.client, self.migration_id, upper.as_ref(), total).await?;
        progress::load_checkpoint(&self.client, self.migration_id, false)
            .await?
            .ok_or_else(|| MigrateError::CorruptState("copy checkpoint vanished".into()))
    }

    async fn copy_chunk(
        &self,
        chunk_rows: u32,
        allow_plain: bool,
    ) -> Result<ChunkResult, MigrateError> {
        let t = &self.target;
        // `transaction()` needs `&mut Client`; the copier owns its client, so a raw BEGIN on the
        // shared reference is equivalent and keeps `run` usable through `&self`.
        let client = &self.client;
        in_short_transaction(
            client,
            self.config.lock_timeout,
            "a copy chunk",
            self.chunk_body(client, t, chunk_rows, allow_plain),
        )
        .await
    }

    async fn chunk_body(
        &self,
        client: &Client,
        t: &CopyTarget,
        chunk_rows: u32,
        allow_plain: bool,
    ) -> Result<ChunkResult, MigrateError> {
        let cp = progress::load_checkpoint(client, self.migration_id, true)
            .await?
            .ok_or_else(|| MigrateError::CorruptState("copy checkpoint missing".into()))?;
        let Some(upper_key) = cp.upper_key.clone().filter(|_| !cp.done) else {
            progress::mark_done(client, self.migration_id).await?;
            return Ok(ChunkResult::Done(CopyCheckpoint { done: true, ..cp }));
        };
        let window = KeyRange {
            lower: cp.last_key.clone(),
            upper: Some(upper_key),
        };
        let Some((scanned, chunk_upper)) = self.next_bound(client, t, &window, chunk_rows).await?
        else {
            progress::mark_done(client, self.migration_id).await?;
            return Ok(ChunkResult::Done(CopyCheckpoint { done: true, ..cp }));
        };
        let chunk = KeyRange {
            lower: cp.last_key.clone(),
            upper: Some(chunk_upper.clone()),
        };
        let (pred, _) = t.range_predicate(Side::Source, None, &chunk, 1);
        let (copied, path) = match self.write {
            ChunkWrite::Insert => self.insert_chunk(client, t, &chunk, allow_plain).await?,
            ChunkWrite::UpdateColumn => {
                let update = t.column_update(&pred);
                let n = client
                    .execute(&update, &as_params(&CopyTarget::range_params(&chunk)))
                    .await
                    .ctx(format!("copying a chunk of {} into {}", t.source, t.shadow))?;
                (n, InsertPath::OnConflict)
            }
        };
        let copied = i64::try_from(copied).unwrap_or(i64::MAX);
        let scanned = match scanned {
            Some(n) => n,
            // A plain insert inserted every source row of the range.
            None if path == InsertPath::Plain => copied,
            None => client
                .query_one(
                    &format!("SELECT count(*) FROM {} WHERE {pred}", t.source.sql()),
                    &as_params(&CopyTarget::range_params(&chunk)),
                )
                .await
                .ctx(format!("counting a chunk of {}", t.source))?
                .get(0),
        };
        let chunk_rows_i32 = i32::try_from(chunk_rows).unwrap_or(i32::MAX);
        progress::save_checkpoint(
            client,
            self.migration_id,
            &chunk_upper,
            scanned,
            copied,
            chunk_rows_i32,
        )
        .await?;
        Ok(ChunkResult::Copied(
            CopyCheckpoint {
                last_key: Some(chunk_upper),
                rows_done: cp.rows_done + scanned,
                rows_copied: cp.rows_copied + copied,
                chunk_rows: Some(chunk_rows_i32),
                ..cp
            },
            path,
        ))
    }

    /// The chunk past the watermark: `(rows in it if known, its upper key)`, at most
    /// `chunk_rows` keys of `window`; `None` when the window is empty.
    ///
    /// With a single integer key (shadow-table copies), the chunk is the key interval of
    /// `chunk_rows` values starting at the first key past the watermark (one index probe; a gap in
    /// the keys costs nothing), capped at the window's upper key: it holds at most `chunk_rows`
    /// rows, and how many is counted by the insert itself. Otherwise a full chunk is one index-only
    /// scan that skips `chunk_rows - 1` keys (`OFFSET`), and only the last, shorter chunk counts
    /// what is left.
    async fn next_bound(
        &self,
        client: &Client,
        t: &CopyTarget,
        window: &KeyRange,
        chunk_rows: u32,
    ) -> Result<Option<(Option<i64>, KeyValue)>, MigrateError> {
        if let (ChunkWrite::Insert, Some(key), Some(_)) =
            (&self.write, t.single_integer_key(), &window.upper)
        {
            let end = keyset::integer_interval_end(client, t, &key, window, chunk_rows).await?;
            return Ok(end.map(|end| (None, end)));
        }
        if let Some(key) =
            keyset::key_after(client, t, window, chunk_rows.saturating_sub(1)).await?
        {
            return Ok(Some((Some(i64::from(chunk_rows)), key)));
        }
        let tail = keyset::last_key_and_count(client, t, window).await?;
        Ok(tail.map(|(scanned, key)| (Some(scanned), key)))
    }

    /// Insert the chunk's rows into the shadow; returns the rows inserted and how.
    async fn insert_chunk(
        &self,
        client: &Client,
        t: &CopyTarget,
        chunk: &KeyRange,
        allow_plain: bool,
    ) -> Result<(u64, InsertPath), MigrateError> {
        let (pred, _) = t.range_predicate(Side::Source, None, chunk, 1);
        let params = CopyTarget::range_params(chunk);
        let insert = format!(
            "INSERT INTO {shadow} ({targets}) SELECT {exprs} FROM {src} WHERE {pred} ORDER BY {asc}",
            shadow = t.shadow.sql(),
            targets = t.target_list(),
            exprs = t.expr_list(),
            src = t.source.sql(),
            asc = t.key_order_of(&t.source),
        );
        let on_conflict = format!(
            "{insert} ON CONFLICT ({keys}) DO NOTHING",
            keys = t.key_list(None)
        );
        let ctx = || format!("copying a chunk of {} into {}", t.source, t.shadow);
        if !allow_plain || self.shadow_has_keys_in(client, t, chunk).await? {
            let n = client
                .execute(&on_conflict, &as_params(&params))
                .await
                .ctx(ctx())?;
            return Ok((n, InsertPath::OnConflict));
        }
        client
            .batch_execute(&format!("SAVEPOINT {PLAIN_SAVEPOINT}"))
            .await
            .ctx(ctx())?;
        match client.execute(&insert, &as_params(&params)).await {
            Ok(n) => Ok((n, InsertPath::Plain)),
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                // A dual-write committed a key of this range after the probe: undo the plain
                // insert and let the dual-written row win, exactly as `DO NOTHING` would.
                client
                    .batch_execute(&format!("ROLLBACK TO SAVEPOINT {PLAIN_SAVEPOINT}"))
                    .await
                    .ctx(ctx())?;
                let n = client
                    .execute(&on_conflict, &as_params(&params))
                    .await
                    .ctx(ctx())?;
                Ok((n, InsertPath::Fallback))
            }
            Err(e) => Err(e).ctx(ctx()),
        }
    }

    /// Whether the shadow holds a committed key in `chunk` (dual-written or a tombstone): one
    /// probe of the shadow's key index.
    async fn shadow_has_keys_in(
        &self,
        client: &Client,
        t: &CopyTarget,
        chunk: &KeyRange,
    ) -> Result<bool, MigrateError> {
        let (pred, _) = t.range_predicate(Side::Shadow, None, chunk, 1);
        let probe = format!(
            "SELECT 1 FROM {shadow} WHERE {pred} ORDER BY {asc} LIMIT 1",
            shadow = t.shadow.sql(),
            asc = t.key_order(false),
        );
        let row = client
            .query_opt(&probe, &as_params(&CopyTarget::range_params(chunk)))
            .await
            .ctx(format!("probing {} for dual-written keys", t.shadow))?;
        Ok(row.is_some())
    }
}

/// Scale the chunk towards the target time, at most ×2 or ÷2 per step, within the limits.
pub fn adapt_chunk_rows(current: u32, took: Duration, target: Duration, min: u32, max: u32) -> u32 {
    let took = took.as_secs_f64().max(1e-4);
    let factor = (target.as_secs_f64() / took).clamp(0.5, 2.0);
    let next = (f64::from(current) * factor).round();
    let next = if next.is_finite() {
        next as u32
    } else {
        current
    };
    next.clamp(min.max(1), max.max(min.max(1)))
}

fn is_retryable_migrate(e: &MigrateError) -> bool {
    matches!(e, MigrateError::Db { source, .. } if is_retryable(source))
}

fn into_exhausted(e: MigrateError, attempts: u32) -> MigrateError {
    match e {
        MigrateError::Db { context, source } => MigrateError::RetriesExhausted {
            context,
            attempts,
            source,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_size_moves_towards_the_target_within_limits() {
        let target = Duration::from_millis(100);
        assert_eq!(
            adapt_chunk_rows(1000, Duration::from_millis(50), target, 10, 100_000),
            2000
        );
        assert_eq!(
            adapt_chunk_rows(1000, Duration::from_secs(5), target, 10, 100_000),
            500
        );
        assert_eq!(
            adapt_chunk_rows(1000, Duration::from_millis(1), target, 10, 1500),
            1500
        );
        assert_eq!(
            adapt_chunk_rows(10, Duration::from_secs(5), target, 10, 100),
            10
        );
    }

    #[test]
    fn plain_inserts_back_off_after_fallbacks_and_return_after_a_success() {
        let mut b = PlainBackoff::default();
        assert!(b.allow_plain());
        b.after(InsertPath::Plain);
        b.after(InsertPath::OnConflict);
        assert!(
            b.allow_plain(),
            "a shadow key in range is no reason to back off"
        );
        // First fallback: skip one chunk.
        b.after(InsertPath::Fallback);
        assert!(!b.allow_plain());
        b.after(InsertPath::OnConflict);
        assert!(b.allow_plain());
        // Consecutive fallbacks double the skip, up to the cap.
        let mut skipped = Vec::new();
        for _ in 0..9 {
            b.after(InsertPath::Fallback);
            let mut n = 0;
            while !b.allow_plain() {
                b.after(InsertPath::OnConflict);
                n += 1;
            }
            skipped.push(n);
        }
        assert_eq!(skipped, [2, 4, 8, 16, 32, 64, 64, 64, 64]);
        // A plain chunk that succeeds resets it.
        b.after(InsertPath::Plain);
        b.after(InsertPath::Fallback);
        assert!(!b.allow_plain());
        b.after(InsertPath::OnConflict);
        assert!(b.allow_plain());
    }
}
