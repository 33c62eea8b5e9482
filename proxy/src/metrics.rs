//! Proxy-wide counters and the query-latency histogram.
//!
//! The hot path never touches a shared cache line per chunk: byte and statement counters live in
//! each session ([`crate::session_registry::SessionInfo`]) and are summed on demand; the totals of closed
//! sessions are folded in here when they end. Latencies go into a few sharded histograms (each session
//! worker thread records into its own shard, so no lock or cache line is shared between threads on
//! the hot path), merged when a snapshot is taken — one histogram per session would
//! cost ~100 KB each with 1000 clients, one global one would be a contended lock.
//!
//! Besides the totals since start, each shard keeps a coarser histogram of the latencies recorded
//! since the last [`Metrics::tick_recent`] (same lock, one more increment). A ticker moves them
//! every [`RECENT_SLOT`] into a ring of sparse slots covering the last [`RECENT_KEPT`], from
//! which [`Metrics::recent_latency`] gives the percentiles of the last second or ten: what the
//! migration throttle compares with the clients' latency before the migration. Only client
//! sessions record here; duet's own control connections never pass through a session.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Number of latency histogram shards.
const SHARDS: usize = 8;
/// Highest latency tracked exactly, in microseconds (one hour); longer ones are clamped.
const MAX_LATENCY_US: u64 = 3_600_000_000;
/// How often the recent-latency window moves on (its granularity).
pub const RECENT_SLOT: Duration = Duration::from_millis(100);
/// The longest span of recent latency kept.
pub const RECENT_KEPT: Duration = Duration::from_secs(10);

/// Counters and histograms of the whole proxy.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    /// Client connections accepted since start.
    pub clients_total: AtomicU64,
    /// Backend connections opened since start.
    pub backends_total: AtomicU64,
    /// Backend connections open now.
    pub backends_current: AtomicU64,
    closed_bytes_client_to_server: AtomicU64,
    closed_bytes_server_to_client: AtomicU64,
    closed_statements: AtomicU64,
    latency: Vec<Shard>,
    /// The recent latencies, one slot per tick, oldest first.
    recent: Mutex<VecDeque<RecentSlot>>,
}

/// One latency shard, alone on its cache lines (128 bytes covers adjacent-line prefetching) so
/// that threads recording into neighbouring shards do not invalidate each other's lines.
#[derive(Debug)]
#[repr(align(128))]
struct Shard(Mutex<ShardHistograms>);

/// What one shard records.
#[derive(Debug)]
struct ShardHistograms {
    /// Every latency since start.
    total: Histogram<u64>,
    /// The latencies since the last tick (two significant figures: ~26 KB, reset each tick).
    fresh: Histogram<u64>,
}

/// The latencies of one tick of the recent window: `(value, count)` of every bucket that holds
/// any, by value (a few hundred entries at most, whatever the traffic).
#[derive(Debug)]
struct RecentSlot {
    /// When the tick that closed it ran.
    end: Instant,
    buckets: Vec<(u64, u64)>,
}

/// Client statement latency over a recent window, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RecentLatency {
    /// The window's length, in milliseconds.
    pub window_ms: u64,
    /// Statements that completed in it.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Maximum.
    pub max: u64,
}

/// Byte and statement totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    /// Bytes forwarded from clients to the backend.
    pub client_to_server: u64,
    /// Bytes forwarded from the backend to clients.
    pub server_to_client: u64,
    /// Query and Execute messages forwarded.
    pub statements: u64,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LatencySummary {
    /// Number of requests measured.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Maximum.
    pub max: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh metrics; the uptime clock starts now.
    pub fn new() -> Self {
        let latency = (0..SHARDS)
            .map(|_| {
                Shard(Mutex::new(ShardHistograms {
                    total: new_histogram(),
                    fresh: new_recent_histogram(),
                }))
            })
            .collect();
        Metrics {
            started: Instant::now(),
            clients_total: AtomicU64::new(0),
            backends_total: AtomicU64::new(0),
            backends_current: AtomicU64::new(0),
            closed_bytes_client_to_server: AtomicU64::new(0),
            closed_bytes_server_to_client: AtomicU64::new(0),
            closed_statements: AtomicU64::new(0),
            latency,
            recent: Mutex::new(VecDeque::new()),
        }
    }

    /// Time since the proxy started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Records one request→ReadyForQuery latency into shard `shard` (modulo the shard count);
    /// callers on a session worker pass the worker's index.
    pub fn record_latency(&self, shard: usize, latency: Duration) {
        let micros = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        if let Ok(mut histograms) = self.latency[shard % SHARDS].0.lock() {
            histograms.total.saturating_record(micros);
            histograms.fresh.saturating_record(micros);
        }
    }

    /// Closes a slot of the recent window: what the shards recorded since the last tick (called
    /// every [`RECENT_SLOT`] by the proxy's ticker).
    pub fn tick_recent(&self) {
        self.tick_recent_at(Instant::now());
    }

    /// [`Metrics::tick_recent`] at `now` (tests pass the time).
    pub fn tick_recent_at(&self, now: Instant) {
        let mut buckets = Vec::new();
        for shard in &self.latency {
            if let Ok(mut histograms) = shard.0.lock() {
                if !histograms.fresh.is_empty() {
                    buckets.extend(
                        histograms
                            .fresh
                            .iter_recorded()
                            .map(|v| (v.value_iterated_to(), v.count_at_value())),
                    );
                    histograms.fresh.reset();
                }
            }
        }
        buckets.sort_unstable_by_key(|&(value, _)| value);
        buckets.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 += later.1;
            }
            same
        });
        let mut slots = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        slots.push_back(RecentSlot { end: now, buckets });
        while slots
            .front()
            .is_some_and(|slot| now.saturating_duration_since(slot.end) > RECENT_KEPT)
        {
            slots.pop_front();
        }
    }

    /// Percentiles of the client statements that completed in the last `window` (at most
    /// [`RECENT_KEPT`]; as of the last tick).
    pub fn recent_latency(&self, window: Duration) -> RecentLatency {
        self.recent_latency_at(Instant::now(), window)
    }

    /// [`Metrics::recent_latency`] as of `now` (tests pass the time).
    pub fn recent_latency_at(&self, now: Instant, window: Duration) -> RecentLatency {
        let mut buckets: Vec<(u64, u64)> = {
            let slots = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            slots
                .iter()
                .filter(|slot| now.saturating_duration_since(slot.end) < window)
                .flat_map(|slot| slot.buckets.iter().copied())
                .collect()
        };
        buckets.sort_unstable_by_key(|&(value, _)| value);
        let count: u64 = buckets.iter().map(|&(_, n)| n).sum();
        let at = |quantile: f64| {
            // The smallest value with at least `quantile` of the statements at or below it.
            let rank = ((quantile * count as f64).ceil() as u64).clamp(1, count.max(1));
            let mut seen = 0;
            for &(value, n) in &buckets {
                seen += n;
                if seen >= rank {
                    return value;
                }
            }
            0
        };
        RecentLatency {
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
            count,
            p50: at(0.50),
            p99: at(0.99),
            max: buckets.last().map_or(0, |&(value, _)| value),
        }
    }

    /// Merges the shards into percentiles.
    pub fn latency_summary(&self) -> LatencySummary {
        let mut merged = new_histogram();
        for shard in &self.latency {
            if let Ok(histograms) = shard.0.lock() {
                // Same bounds everywhere, so adding cannot fail.
                let _ = merged.add(&histograms.total);
            }
        }
        if merged.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: merged.len(),
            p50: merged.value_at_quantile(0.50),
            p99: merged.value_at_quantile(0.99),
            p999: merged.value_at_quantile(0.999),
            max: merged.max(),
        }
    }

    /// Adds the totals of a session that ended.
    pub fn add_closed(&self, traffic: Traffic) {
        self.closed_bytes_client_to_server
            .fetch_add(traffic.client_to_server, Ordering::Relaxed);
        self.closed_bytes_server_to_client
            .fetch_add(traffic.server_to_client, Ordering::Relaxed);
        self.closed_statements
            .fetch_add(traffic.statements, Ordering::Relaxed);
    }

    /// Totals of the sessions that have ended.
    pub fn closed_traffic(&self) -> Traffic {
        Traffic {
            client_to_server: self.closed_bytes_client_to_server.load(Ordering::Relaxed),
            server_to_client: self.closed_bytes_server_to_client.load(Ordering::Relaxed),
            statements: self.closed_statements.load(Ordering::Relaxed),
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // Constant, valid bounds (low >= 1, high >= 2 * low, sigfig <= 5): hdrhistogram cannot refuse them.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant histogram bounds are valid")
}

/// The coarser histogram of one tick: 1 % resolution is plenty for a throttle.
fn new_recent_histogram() -> Histogram<u64> {
    // Constant, valid bounds, as above.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).expect("constant histogram bounds are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_shards_into_percentiles() {
        let metrics = Metrics::new();
        for i in 1..=1000u64 {
            metrics.record_latency(i as usize, Duration::from_micros(i));
        }
        let summary = metrics.latency_summary();
        assert_eq!(summary.count, 1000);
        assert!((495..=505).contains(&summary.p50), "{summary:?}");
        assert!((985..=1000).contains(&summary.p99), "{summary:?}");
        assert!(summary.max >= 999, "{summary:?}");
    }

    #[test]
    fn the_recent_window_covers_the_last_ticks_only() {
        let metrics = Metrics::new();
        let t0 = Instant::now();
        // Ten ticks of 100 fast statements each, then one tick with slow ones.
        for tick in 0..10u64 {
            for i in 0..100u64 {
                metrics.record_latency(i as usize, Duration::from_micros(200 + i));
            }
            metrics.tick_recent_at(t0 + RECENT_SLOT * tick as u32);
        }
        for i in 0..20u64 {
            metrics.record_latency(i as usize, Duration::from_millis(50));
        }
        let now = t0 + RECENT_SLOT * 10;
        metrics.tick_recent_at(now);
        let last_second = metrics.recent_latency_at(now, Duration::from_secs(1));
        // The slot closed at t0 is 1 s old: outside.
        assert_eq!(last_second.count, 9 * 100 + 20);
        assert_eq!(last_second.window_ms, 1000);
        assert!(
            (49_500..=50_500).contains(&last_second.p99),
            "{last_second:?}"
        );
        assert!((200..=300).contains(&last_second.p50), "{last_second:?}");
        let last_tick = metrics.recent_latency_at(now, RECENT_SLOT);
        assert_eq!(last_tick.count, 20);
        // Recorded since the last tick: not yet in the window; the totals have everything.
        metrics.record_latency(0, Duration::from_secs(1));
        assert_eq!(
            metrics.recent_latency_at(now, Duration::from_secs(1)).count,
            920
        );
        assert_eq!(metrics.latency_summary().count, 1021);
        // Old slots are dropped; an idle window is empty.
        let later = now + RECENT_KEPT + Duration::from_secs(1);
        metrics.tick_recent_at(later);
        let window =
            metrics.recent_latency_at(later + Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(
            window,
            RecentLatency {
                window_ms: 1000,
                ..RecentLatency::default()
            }
        );
        assert_eq!(metrics.recent.lock().map(|s| s.len()).unwrap_or(0), 1);
    }

    #[test]
    fn closed_totals_accumulate() {
        let metrics = Metrics::new();
        metrics.add_closed(Traffic {
            client_to_server: 1,
            server_to_client: 2,
            statements: 3,
        });
        metrics.add_closed(Traffic {
            client_to_server: 1,
            server_to_client: 2,
            statements: 3,
        });
        assert_eq!(metrics.closed_traffic().statements, 6);
    }
}
