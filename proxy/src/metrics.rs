//! Proxy-wide counters and the query-latency histogram.
//!
//! The hot path never touches a shared cache line per chunk: byte and statement counters live in
//! each session ([`crate::sessions::SessionInfo`]) and are summed on demand; the totals of closed
//! sessions are folded in here when they end. Latencies go into a few sharded histograms (each session
//! worker thread records into its own shard, so no lock or cache line is shared between threads on
//! the hot path), merged when a snapshot is taken — one histogram per session would
//! cost ~100 KB each with 1000 clients, one global one would be a contended lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Number of latency histogram shards.
const SHARDS: usize = 8;
/// Highest latency tracked exactly, in microseconds (one hour); longer ones are clamped.
const MAX_LATENCY_US: u64 = 3_600_000_000;

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
}

/// One latency shard, alone on its cache lines (128 bytes covers adjacent-line prefetching) so
/// that threads recording into neighbouring shards do not invalidate each other's lines.
#[derive(Debug)]
#[repr(align(128))]
struct Shard(Mutex<Histogram<u64>>);

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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
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
            .map(|_| Shard(Mutex::new(new_histogram())))
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
        if let Ok(mut histogram) = self.latency[shard % SHARDS].0.lock() {
            histogram.saturating_record(micros);
        }
    }

    /// Merges the shards into percentiles.
    pub fn latency_summary(&self) -> LatencySummary {
        let mut merged = new_histogram();
        for shard in &self.latency {
            if let Ok(histogram) = shard.0.lock() {
                // Same bounds everywhere, so adding cannot fail.
                let _ = merged.add(&*histogram);
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
