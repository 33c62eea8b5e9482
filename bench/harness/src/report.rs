//! What one load run measured, and how it is printed.
//!
//! One shape for both drivers (built-in and pgbench) so comparisons, JSON consumers and `duet
//! demo` read the same fields. Failures are part of the report, with their messages, never hidden.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::workload::{Protocol, Workload};

/// Largest latency the histograms hold (1 hour, in µs); larger samples saturate to it.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

/// A histogram for microsecond latencies, 1 µs to [`MAX_LATENCY_US`], 3 significant digits.
///
/// Fixed bounds on purpose: `saturating_record` never resizes, so an auto-resizing histogram would
/// silently clamp every sample above its initial (tiny) range.
pub fn new_latency_histogram() -> Histogram<u64> {
    // Constant bounds that hdrhistogram accepts (1 <= low, high >= 2 * low, sigfig <= 5): this
    // cannot fail at run time and no input reaches it.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant histogram bounds are valid")
}

/// Latency percentiles of one run, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Samples recorded.
    pub count: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest sample.
    pub max: u64,
}

impl LatencySummary {
    /// Summarises a histogram of microsecond samples.
    pub fn from_histogram(histogram: &Histogram<u64>) -> LatencySummary {
        if histogram.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: histogram.len(),
            mean: histogram.mean(),
            p50: histogram.value_at_quantile(0.50),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
        }
    }
}

/// One distinct error message and how often it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorCount {
    /// The message (SQLSTATE first when the server sent one).
    pub message: String,
    /// Occurrences during the measured window.
    pub count: u64,
}

/// The outcome of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Which driver produced it: `builtin` or `pgbench`.
    pub driver: String,
    /// The script.
    pub workload: Workload,
    /// How statements were sent.
    pub protocol: Protocol,
    /// Concurrent client connections.
    pub clients: u32,
    /// Length of the measured window, in seconds.
    pub duration_secs: f64,
    /// Transactions completed successfully in the window.
    pub transactions: u64,
    /// Transactions that failed in the window (including clients that could not connect).
    pub failures: u64,
    /// Successful transactions per second.
    pub tps: f64,
    /// Per-transaction latency of successful transactions.
    pub latency_us: LatencySummary,
    /// The distinct errors, most frequent first.
    pub errors: Vec<ErrorCount>,
}

impl Report {
    /// Multi-line human-readable rendering.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "workload {} ({}), {} clients, {:.1}s measured, driver {}",
            self.workload.name(),
            self.protocol.name(),
            self.clients,
            self.duration_secs,
            self.driver
        );
        let _ = writeln!(
            out,
            "  transactions: {}  tps: {:.1}  failures: {}",
            self.transactions, self.tps, self.failures
        );
        let l = &self.latency_us;
        let _ = writeln!(
            out,
            "  latency (µs): p50 {}  p99 {}  p999 {}  max {}  mean {:.0}",
            l.p50, l.p99, l.p999, l.max, l.mean
        );
        for error in &self.errors {
            let _ = writeln!(out, "  error ×{}: {}", error.count, error.message);
        }
        out
    }
}

/// Sorts error counts most frequent first, then by message, and keeps the first `limit`.
pub fn top_errors(
    errors: impl IntoIterator<Item = (String, u64)>,
    limit: usize,
) -> Vec<ErrorCount> {
    let mut list: Vec<ErrorCount> = errors
        .into_iter()
        .map(|(message, count)| ErrorCount { message, count })
        .collect();
    list.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.message.cmp(&b.message))
    });
    list.truncate(limit);
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_report() -> Report {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
        for value in 1..=1000u64 {
            histogram.record(value).expect("in range");
        }
        Report {
            driver: "builtin".into(),
            workload: Workload::SelectOnly,
            protocol: Protocol::Prepared,
            clients: 4,
            duration_secs: 10.0,
            transactions: 1000,
            failures: 2,
            tps: 100.0,
            latency_us: LatencySummary::from_histogram(&histogram),
            errors: top_errors([("57014: canceled".to_string(), 2)], 5),
        }
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let l = sample_report().latency_us;
        assert_eq!(l.count, 1000);
        assert_eq!(l.p50, 500);
        assert_eq!(l.p99, 990);
        assert_eq!(l.max, 1000);
        assert!((l.mean - 500.5).abs() < 1.0);
    }

    #[test]
    fn empty_histogram_gives_zeros() {
        let empty = Histogram::<u64>::new(3).expect("histogram");
        assert_eq!(
            LatencySummary::from_histogram(&empty),
            LatencySummary::default()
        );
    }

    #[test]
    fn json_has_the_documented_field_names() {
        let json = serde_json::to_value(sample_report()).expect("serialize");
        assert_eq!(json["workload"], "select-only");
        assert_eq!(json["protocol"], "prepared");
        assert_eq!(json["failures"], 2);
        assert_eq!(json["latency_us"]["p999"], 999);
        assert_eq!(json["errors"][0]["count"], 2);
    }

    #[test]
    fn human_output_shows_failures_and_errors() {
        let text = sample_report().human();
        assert!(text.contains("failures: 2"), "{text}");
        assert!(text.contains("error ×2: 57014: canceled"), "{text}");
        assert!(text.contains("p50 500"), "{text}");
    }

    #[test]
    fn errors_sorted_by_frequency_and_capped() {
        let errors = top_errors(
            [
                ("b".to_string(), 1),
                ("a".to_string(), 5),
                ("c".to_string(), 1),
            ],
            2,
        );
        assert_eq!(
            errors
                .iter()
                .map(|e| e.message.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
    }
}
